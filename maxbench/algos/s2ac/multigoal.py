"""Test episodes of trained agents on the multi-goal environments (S2AC §5.1, Fig. 7 and 12).

:func:`find_multigoal_runs` finds the finished cells of a results folder whose environment is a
multi-goal env; :func:`evaluate_agents` loads each final model, runs stochastic test episodes on
the training env and on its obstacle variant (spec §1.7: the obstacle is placed at test time
only), and returns per-episode :class:`Episode` records grouped by agent. ``maxbench multigoal``
draws them (:mod:`maxbench.algos.s2ac.multigoal_plots`) and tabulates the goals reached.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from maxbench.errors import UserInputError
from maxbench.results.layout import MODEL_ZIP, RUN_JSON

__all__ = [
    "OBSTACLE_VARIANT",
    "AgentEpisodes",
    "Episode",
    "MultigoalRun",
    "evaluate_agents",
    "find_multigoal_runs",
    "goal_count_rows",
]

#: Training env -> the same goals with the test-time obstacle (spec §1.7).
OBSTACLE_VARIANT = {
    "MultiGoal-v0": "MultiGoalObstacle-v0",
    "MultiGoalMaxEnt-v0": "MultiGoalMaxEntObstacle-v0",
}
_MULTIGOAL_IDS = (*OBSTACLE_VARIANT, *OBSTACLE_VARIANT.values())


@dataclass(frozen=True)
class MultigoalRun:
    """A finished cell trained on a multi-goal env."""

    folder: Path
    algo: str
    algo_target: str
    env_id: str
    seed: int
    hyperparams: dict[str, Any]

    @property
    def agent(self) -> str:
        """The agent's name: the suite's algorithm key (it names the entropy weight, if any)."""
        return self.algo


@dataclass
class Episode:
    """One test episode: the path, the goal reached (-1: none), the return, the length."""

    path: np.ndarray
    goal: int
    episode_return: float
    length: int
    blocked_steps: int


@dataclass
class AgentEpisodes:
    """An agent's test episodes on one env (all its seeds, or one seed)."""

    agent: str
    env_id: str
    trained_on: str
    seeds: list[int]
    goals: np.ndarray
    obstacle: np.ndarray | None
    episodes: list[Episode] = field(default_factory=list)

    @property
    def hits(self) -> list[int]:
        """Episodes ending at each goal (index order of ``goals``)."""
        return [sum(e.goal == g for e in self.episodes) for g in range(len(self.goals))]

    @property
    def distinct_goals(self) -> int:
        """Number of goals reached at least once."""
        return sum(count > 0 for count in self.hits)

    @property
    def success_rate(self) -> float:
        """Fraction of episodes that reached a goal."""
        return sum(e.goal >= 0 for e in self.episodes) / max(1, len(self.episodes))

    @property
    def mean_return(self) -> float:
        return float(np.mean([e.episode_return for e in self.episodes]))


def find_multigoal_runs(results: Path) -> list[MultigoalRun]:
    """Finished cells under ``results`` whose ``run.json`` spec names a multi-goal env.

    Raises:
        UserInputError: if ``results`` does not exist, holds no ``run.json``, or none of its runs
            is a finished multi-goal run with a final ``model.zip``.
    """
    results = Path(results)
    if not results.exists():
        raise UserInputError(f"results folder '{results}' does not exist")
    if not results.is_dir():
        raise UserInputError(f"'{results}' is not a folder (give a results folder)")
    import json

    runs, seen_envs = [], set()
    for run_json in sorted(results.rglob(RUN_JSON)):
        try:
            spec = json.loads(run_json.read_text()).get("spec") or {}
        except (OSError, ValueError):
            continue
        env_id = spec.get("env_id", "")
        seen_envs.add(env_id)
        if env_id not in _MULTIGOAL_IDS or not (run_json.parent / MODEL_ZIP).exists():
            continue
        runs.append(
            MultigoalRun(
                folder=run_json.parent,
                algo=str(spec.get("algo", "?")),
                algo_target=str(spec.get("algo_target", spec.get("algo", ""))),
                env_id=env_id,
                seed=int(spec.get("seed", 0)),
                hyperparams=dict(spec.get("hyperparams") or {}),
            )
        )
    if not runs:
        found = ", ".join(sorted(e for e in seen_envs if e)) or "no run.json at all"
        raise UserInputError(
            f"no finished multi-goal run (a {', '.join(OBSTACLE_VARIANT)} cell with a final "
            f"{MODEL_ZIP}) under '{results}'; found: {found}"
        )
    return runs


def _load_model(run: MultigoalRun) -> Any:
    from maxbench.registry import resolve_algorithm

    cls, _ = resolve_algorithm(run.algo_target)
    return cls.load(run.folder / MODEL_ZIP, device="cpu")


def run_episodes(model: Any, env_id: str, n: int, deterministic: bool) -> list[Episode]:
    """``n`` test episodes of ``model`` on ``env_id`` (reset seeds 0 ... n - 1)."""
    import gymnasium as gym

    import maxbench.envs  # noqa: F401  (registers the multi-goal ids)

    env = gym.make(env_id)
    episodes = []
    for index in range(n):
        obs, _ = env.reset(seed=index)
        path, total, goal, blocked, length = [obs.copy()], 0.0, -1, 0, 0
        done = False
        while not done:
            action, _ = model.predict(obs, deterministic=deterministic)
            obs, reward, terminated, truncated, info = env.step(action)
            path.append(obs.copy())
            total += float(reward)
            length += 1
            blocked += bool(info.get("blocked", False))
            goal = int(info.get("goal_index", -1))
            done = terminated or truncated
        episodes.append(Episode(np.array(path), goal, total, length, blocked))
    env.close()
    return episodes


def evaluate_agents(
    runs: Iterable[MultigoalRun],
    episodes: int = 20,
    deterministic: bool = False,
    per_seed: bool = False,
    seed: int = 0,
    obstacle: bool = True,
) -> list[AgentEpisodes]:
    """Run test episodes for every run on its env and (``obstacle``) the obstacle variant.

    Args:
        runs: from :func:`find_multigoal_runs`.
        episodes: test episodes per run and env (the paper draws 20).
        deterministic: deterministic actions (the paper's figures use the stochastic policy).
        per_seed: one agent per (algorithm, seed) instead of pooling a suite key's seeds.
        seed: torch / numpy seed set before each run's episodes (reproducible draws).
        obstacle: also test on the obstacle variant of the training env.

    Returns:
        One :class:`AgentEpisodes` per agent and env, in a stable order.
    """
    import gymnasium as gym
    import torch

    import maxbench.envs  # noqa: F401

    groups: dict[tuple[str, str], AgentEpisodes] = {}
    for run in sorted(runs, key=lambda r: (r.env_id, r.algo, r.seed)):
        model = _load_model(run)
        agent = f"{run.agent} seed {run.seed}" if per_seed else run.agent
        test_envs = [run.env_id]
        if obstacle and run.env_id in OBSTACLE_VARIANT:
            test_envs.append(OBSTACLE_VARIANT[run.env_id])
        for env_id in test_envs:
            key = (agent, env_id)
            if key not in groups:
                base = gym.make(env_id).unwrapped
                groups[key] = AgentEpisodes(
                    agent=agent,
                    env_id=env_id,
                    trained_on=run.env_id,
                    seeds=[],
                    goals=np.array(base.goals),
                    obstacle=None if base.obstacle is None else np.array(base.obstacle),
                )
            torch.manual_seed(seed + run.seed)
            np.random.seed(seed + run.seed)
            groups[key].seeds.append(run.seed)
            groups[key].episodes.extend(run_episodes(model, env_id, episodes, deterministic))
    return list(groups.values())


def goal_count_rows(agents: Iterable[AgentEpisodes]) -> list[dict[str, Any]]:
    """One row per agent and env: episodes, hits per goal, distinct goals, success, return."""
    rows = []
    for group in agents:
        row: dict[str, Any] = {
            "agent": group.agent,
            "env": group.env_id,
            "trained_on": group.trained_on,
            "seeds": " ".join(str(s) for s in group.seeds),
            "episodes": len(group.episodes),
            "distinct_goals": group.distinct_goals,
            "success_rate": group.success_rate,
            "mean_return": group.mean_return,
            "no_goal": sum(e.goal < 0 for e in group.episodes),
        }
        for index, count in enumerate(group.hits):
            x, y = group.goals[index]
            row[f"G{index + 1} ({x:g},{y:g})"] = count
        rows.append(row)
    return rows
