"""Test episodes of trained agents on the multi-goal environments (S2AC §5.1, Fig. 7 and 12).

:func:`find_multigoal_runs` finds the finished cells of a results folder whose environment is a
multi-goal env; :func:`evaluate_agents` loads each final model, runs stochastic test episodes on
the training env and on its obstacle variant (spec §1.7: the obstacle is placed at test time
only), and returns per-episode :class:`Episode` records grouped by agent. ``maxbench multigoal``
draws them (:mod:`maxbench.repro.multigoal_plots`) and tabulates the goals reached.

A results folder may come from someone else (issue 16): damaged cells are named and skipped, and
an algorithm class is imported only when the run.json names a registered algorithm, never an
arbitrary ``module:Class``. (Loading ``model.zip`` itself unpickles parts of it, as any SB3
``load`` does: open only results you trust.)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from maxbench.errors import UserInputError
from maxbench.results.layout import MODEL_ZIP

if TYPE_CHECKING:
    from maxbench.results.layout import CellFiles

__all__ = [
    "OBSTACLE_VARIANT",
    "AgentEpisodes",
    "Episode",
    "MultigoalRun",
    "evaluate_agents",
    "find_multigoal_runs",
    "goal_count_rows",
    "multigoal_run_from_cell",
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


def find_multigoal_runs(
    results: Path, warn: Callable[[str], None] | None = None
) -> list[MultigoalRun]:
    """Finished cells under ``results`` whose ``run.json`` spec names a multi-goal env.

    Each cell is read with the tolerant reader (:func:`maxbench.results.layout.read_cell`): a
    damaged cell, and a cell whose run.json names an algorithm that is not registered, is named
    through ``warn`` (default: :func:`warnings.warn`) and skipped; the others are used. The
    algorithm class of a cell is imported only through maxbench's registry (see
    :func:`registered_target`): a results folder may come from someone else.

    Raises:
        UserInputError: if ``results`` does not exist, holds no ``run.json``, or none of its runs
            is a finished multi-goal run with a final ``model.zip`` that can be used.
    """
    from maxbench.results.layout import read_cell
    from maxbench.results.loader import find_run_folders

    warn = warn or _warn
    results = Path(results)
    if not results.exists():
        raise UserInputError(f"results folder '{results}' does not exist")
    if not results.is_dir():
        raise UserInputError(f"'{results}' is not a folder (give a results folder)")
    runs, seen_envs, skipped = [], set(), 0
    for folder in find_run_folders(results):
        cell = read_cell(folder)
        env_id = (cell.spec or {}).get("env_id") if cell.damage is None else None
        if isinstance(env_id, str):
            seen_envs.add(env_id)
        outcome = _run_of_cell(cell)
        if isinstance(outcome, MultigoalRun):
            runs.append(outcome)
        elif outcome.warning is not None:
            warn(f"{_name(folder, results)} {outcome.warning}")
            skipped += 1
    if not runs:
        found = ", ".join(sorted(e for e in seen_envs if e)) or "no run.json at all"
        also = f"; {skipped} cell(s) skipped (see the warnings)" if skipped else ""
        raise UserInputError(
            f"no finished multi-goal run (a {', '.join(OBSTACLE_VARIANT)} cell with a final "
            f"{MODEL_ZIP}) under '{results}'; found: {found}{also}"
        )
    return runs


@dataclass(frozen=True)
class _Refusal:
    """Why a cell is no multi-goal run: ``reason`` for one cell, ``warning`` for a folder scan.

    ``warning`` is None for a cell that is simply something else (another env, unfinished):
    :func:`find_multigoal_runs` passes over those in silence.
    """

    reason: str
    warning: str | None


def multigoal_run_from_cell(folder: Path) -> MultigoalRun | str:
    """The finished multi-goal run of one cell folder, or one line saying why it is none.

    The cell is read as :func:`find_multigoal_runs` reads each cell (the tolerant reader, the
    registry check of :func:`registered_target`); the line names no folder, so that a caller can
    write ``f"{folder} {reason}"``.
    """
    from maxbench.results.layout import read_cell

    found = _run_of_cell(read_cell(Path(folder)))
    return found if isinstance(found, MultigoalRun) else found.reason


def _run_of_cell(cell: CellFiles) -> MultigoalRun | _Refusal:
    """A read cell as a :class:`MultigoalRun`, or why it is none."""
    from maxbench.results.layout import FINISHED

    folder = cell.folder
    if cell.damage is not None:
        return _Refusal(f"is damaged: {cell.damage}", f"is damaged and skipped: {cell.damage}")
    spec = cell.spec or {}
    env_id = spec.get("env_id")
    if env_id not in _MULTIGOAL_IDS:
        return _Refusal(
            f"was not trained on a multi-goal env (env {_quoted(env_id)}; expected one of "
            f"{', '.join(_MULTIGOAL_IDS)})",
            None,
        )
    if cell.status != FINISHED:
        return _Refusal(f"is not finished (status {_quoted(cell.status)})", None)
    if not (folder / MODEL_ZIP).exists():
        return _Refusal(
            f"is finished but has no {MODEL_ZIP}", f"is finished but has no {MODEL_ZIP}; skipped"
        )
    target, refusal = registered_target(spec)
    if target is None:
        return _Refusal(refusal, f"{refusal}; skipped")
    seed = spec.get("seed", folder.name.removeprefix("seed_"))
    try:
        seed = int(seed)
    except ValueError:  # no seed in the spec and a folder not named seed_<n>
        why = f"names no seed (no spec seed, folder {_quoted(folder.name)})"
        return _Refusal(why, f"{why}; skipped")
    return MultigoalRun(
        folder=folder,
        algo=str(spec.get("algo", folder.parent.parent.name)),
        algo_target=target,
        env_id=env_id,
        seed=seed,
        hyperparams=dict(spec.get("hyperparams") or {}),
    )


def registered_target(spec: dict[str, Any]) -> tuple[str | None, str]:
    """The registered class target of a run.json's algorithm, or None and why it is refused.

    A cell's ``algo_target`` is used only when it is the target of a registered algorithm
    (``maxbench.registry.ALGORITHMS``) or a registered name; a cell without one is resolved by
    its ``algo`` key when that is a registered name. Anything else (``os:system``, a module of
    the results folder's own) is refused and never imported: importing a module runs its code.
    """
    from maxbench.registry import ALGORITHMS

    targets = {entry.target for entry in ALGORITHMS.values()}
    named = spec.get("algo_target")
    if isinstance(named, str) and named:
        if named in targets:
            return named, ""
        if named.lower() in ALGORITHMS:
            return ALGORITHMS[named.lower()].target, ""
        return None, (
            f"names algorithm {_quoted(named)}, which is not a registered algorithm: maxbench "
            "imports code from results only through its registry"
        )
    algo = spec.get("algo")
    if isinstance(algo, str) and algo.lower() in ALGORITHMS:
        return ALGORITHMS[algo.lower()].target, ""
    return None, (
        f"names no registered algorithm (algo {_quoted(algo)}, no algo_target): maxbench imports "
        "code from results only through its registry"
    )


def _quoted(value: Any) -> str:
    text = " ".join(str(value).split())
    return repr(text if len(text) <= 80 else text[:77] + "...")


def _name(folder: Path, results: Path) -> str:
    """A cell's folder relative to the results folder (the folder itself when it is the cell)."""
    try:
        relative = folder.relative_to(results).as_posix()
    except ValueError:
        relative = folder.as_posix()
    return relative if relative != "." else folder.as_posix()


def _warn(text: str) -> None:
    import warnings

    warnings.warn(text, stacklevel=3)


def _load_model(run: MultigoalRun) -> Any:
    """The run's final model; its class comes from the registry (checked again here)."""
    from maxbench.registry import ALGORITHMS, import_target

    if run.algo_target not in {entry.target for entry in ALGORITHMS.values()}:
        raise UserInputError(
            f"{run.folder}: algorithm '{run.algo_target}' is not a registered algorithm: "
            "maxbench imports code from results only through its registry"
        )
    cls = import_target(run.algo_target)
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
    warn: Callable[[str], None] | None = None,
) -> list[AgentEpisodes]:
    """Run test episodes for every run on its env and (``obstacle``) the obstacle variant.

    A run whose final model cannot be loaded or tested is named through ``warn`` and skipped.

    Args:
        runs: from :func:`find_multigoal_runs`.
        episodes: test episodes per run and env (the paper draws 20).
        deterministic: deterministic actions (the paper's figures use the stochastic policy).
        per_seed: one agent per (algorithm, seed) instead of pooling a suite key's seeds.
        seed: torch / numpy seed set before each run's episodes (reproducible draws).
        obstacle: also test on the obstacle variant of the training env.
        warn: where to say which runs were skipped (default: :func:`warnings.warn`).

    Returns:
        One :class:`AgentEpisodes` per agent and env, in a stable order.
    """
    import gymnasium as gym
    import torch

    import maxbench.envs  # noqa: F401

    warn = warn or _warn
    groups: dict[tuple[str, str], AgentEpisodes] = {}
    for run in sorted(runs, key=lambda r: (r.env_id, r.algo, r.seed)):
        agent = f"{run.agent} seed {run.seed}" if per_seed else run.agent
        test_envs = [run.env_id]
        if obstacle and run.env_id in OBSTACLE_VARIANT:
            test_envs.append(OBSTACLE_VARIANT[run.env_id])
        try:
            model = _load_model(run)
            tested = {}
            for env_id in test_envs:
                torch.manual_seed(seed + run.seed)
                np.random.seed(seed + run.seed)
                tested[env_id] = run_episodes(model, env_id, episodes, deterministic)
        except UserInputError as err:
            warn(f"{run.folder} is skipped: {err}")
            continue
        except Exception as err:  # noqa: BLE001  (a damaged model.zip: name the cell, go on)
            text = " ".join(str(err).split())[:300]
            warn(
                f"{run.folder}: its {MODEL_ZIP} cannot be used ({type(err).__name__}: {text}); "
                "skipped"
            )
            continue
        for env_id, found in tested.items():
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
            groups[key].seeds.append(run.seed)
            groups[key].episodes.extend(found)
    if not groups:
        raise UserInputError(
            "no multi-goal run could be tested: every final model was skipped (see the warnings)"
        )
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
