"""Count the distinct goals a trained agent reaches on a multi-goal environment.

What it measures
----------------
For each trained model, ``--episodes`` test episodes (default 20, stochastic actions unless
``--deterministic``) on the multi-goal environment the model was trained on (spec §1.7). An
episode *reaches* goal ``g`` when the environment terminates it there: the multi-goal env's
``step`` puts the index of the goal in ``info["goal_index"]`` when the agent comes within the goal
radius (and ``-1`` otherwise, also on truncation after 30 steps). The script reads that value at
each episode's last step and reports hits per goal, the number of distinct goals reached, the
episodes that reached none, and the mean return.

How to run
----------
From the repository root, on a results folder (every ``model.zip`` below it), a cell folder or a
``model.zip``::

    .venv/bin/python benchmarks/multigoal_goals.py /tmp/sql-multigoal-results
    .venv/bin/python benchmarks/multigoal_goals.py path/to/seed_0/model.zip --episodes 50

The algorithm class and the environment id are read from the cell's ``run.json`` (written by
``maxbench run``); ``--algo`` (a registry name or ``module:Class``) and ``--env`` override them.
Episodes are seeded (``--seed``): environment resets and torch's global RNG, so a run repeats.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

import maxbench.envs  # noqa: F401  (registers the multi-goal environments)
from maxbench.registry import resolve_algorithm


@dataclass
class GoalCount:
    """Outcome of the test episodes of one model."""

    model: Path
    algo: str
    env_id: str
    goal_indices: list[int]
    returns: list[float]

    @property
    def hits(self) -> Counter[int]:
        return Counter(index for index in self.goal_indices if index >= 0)

    @property
    def distinct(self) -> int:
        return len(self.hits)


def find_models(paths: list[Path]) -> list[Path]:
    """``model.zip`` files: the paths themselves, or every final one below a folder (sorted).

    Below a folder, the models of unfinished runs' ``checkpoints/`` are skipped; name a checkpoint's
    ``model.zip`` explicitly to count it.
    """
    models: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = sorted(path.rglob("model.zip"))
            models.extend(m for m in found if "checkpoints" not in m.relative_to(path).parts)
        elif path.is_file():
            models.append(path)
        else:
            raise SystemExit(f"multigoal_goals: no such file or folder: {path}")
    if not models:
        raise SystemExit("multigoal_goals: no model.zip found")
    return models


def cell_spec(model: Path) -> dict[str, Any]:
    """The ``spec`` of the cell's ``run.json``: next to ``model`` or, for a checkpoint, 2 levels up.

    Empty if there is none.
    """
    for folder in (model.parent, *model.parents[1:3]):
        run_json = folder / "run.json"
        if run_json.exists():
            return json.loads(run_json.read_text()).get("spec", {})
    return {}


def count_goals(
    model_path: Path,
    algo: str | None,
    env_id: str | None,
    episodes: int,
    seed: int,
    deterministic: bool,
) -> GoalCount:
    """Run ``episodes`` test episodes of the model at ``model_path`` and record where each ends."""
    spec = cell_spec(model_path)
    algo = algo or spec.get("algo_target")
    env_id = env_id or spec.get("env_id") or "MultiGoal-v0"
    if algo is None:
        raise SystemExit(f"multigoal_goals: no run.json found for {model_path}: pass --algo")
    cls, _ = resolve_algorithm(algo)
    model = cls.load(model_path, device="cpu")
    env = gym.make(env_id)
    torch.manual_seed(seed)
    goal_indices: list[int] = []
    returns: list[float] = []
    for episode in range(episodes):
        obs, info = env.reset(seed=seed + episode)
        total, done = 0.0, False
        while not done:
            action, _ = model.predict(obs, deterministic=deterministic)
            obs, reward, terminated, truncated, info = env.step(action)
            total += float(reward)
            done = terminated or truncated
        goal_indices.append(int(info.get("goal_index", -1)))
        returns.append(total)
    env.close()
    return GoalCount(model_path, algo, env_id, goal_indices, returns)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="+", type=Path, help="results folder(s) or model.zip")
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--deterministic", action="store_true", help="deterministic actions")
    parser.add_argument("--algo", default=None, help="registry name or module:Class")
    parser.add_argument("--env", default=None, help="environment id (default: from run.json)")
    parser.add_argument("--json", type=Path, default=None, help="also write the counts here")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    mode = "deterministic" if args.deterministic else "stochastic"
    print(f"{args.episodes} {mode} test episodes per model, seed {args.seed}")
    results = []
    for model_path in find_models(args.paths):
        count = count_goals(
            model_path, args.algo, args.env, args.episodes, args.seed, args.deterministic
        )
        hits = ", ".join(f"goal {g}: {n}" for g, n in sorted(count.hits.items())) or "none"
        missed = sum(1 for index in count.goal_indices if index < 0)
        print(
            f"{model_path}: {count.env_id}: distinct goals {count.distinct}; hits {hits}; "
            f"no goal {missed}; mean return {np.mean(count.returns):.2f}"
        )
        results.append(
            {
                "model": str(model_path),
                "algo": count.algo,
                "env_id": count.env_id,
                "episodes": args.episodes,
                "deterministic": args.deterministic,
                "seed": args.seed,
                "goal_indices": count.goal_indices,
                "distinct_goals": count.distinct,
                "returns": count.returns,
            }
        )
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
