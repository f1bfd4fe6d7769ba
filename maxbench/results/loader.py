"""Load a results folder into tidy pandas DataFrames (DESIGN.md: "loader -> DataFrame -> report").

A results folder is anything that holds run folders ``<suite>/<algo>/<env>/seed_<n>/`` (the
output folder of ``maxbench run``, one suite below it, or a single cell). Each run folder gives

- one row of :attr:`Results.runs`: its spec (suite, algorithm, environment id, seed, budget,
  evaluation protocol), its status and the run-time facts of its ``run.json`` (env steps, train,
  evaluation and wall-clock time, env steps per second, CPU, device, torch threads, software
  versions, the error of a failed run);
- one row of :attr:`Results.episodes` per evaluation episode of its ``evals.csv``: tidy data
  (suite, algo, env, seed, status, timestep, wall time, episode index, return, length).

Nothing is dropped here: running, failed, interrupted and pending runs are loaded with their
status, and the report decides what to do with them (issue 5, point 7).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from maxbench.errors import UserInputError
from maxbench.results.layout import (
    EVALS_CSV,
    LOCK_FILE,
    PENDING,
    RUN_JSON,
    TRAIN_LOG,
    read_evals,
    read_run_json,
)

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "EPISODE_COLUMNS",
    "RUN_COLUMNS",
    "Results",
    "find_run_folders",
    "load_results",
]

_SEED_FOLDER = re.compile(r"^seed_(\d+)$")
_RUN_FILES = (RUN_JSON, EVALS_CSV, TRAIN_LOG, LOCK_FILE)

#: Columns of :attr:`Results.runs`, in order.
RUN_COLUMNS: tuple[str, ...] = (
    "suite",
    "algo",
    "algo_target",
    "policy",
    "hyperparams",
    "env",
    "env_id",
    "seed",
    "status",
    "budget",
    "eval_every",
    "eval_episodes",
    "eval_deterministic",
    "n_envs",
    "env_kwargs",
    "max_episode_steps",
    "wrappers",
    "evaluations",
    "last_timestep",
    "env_steps",
    "train_time_s",
    "eval_time_s",
    "wall_time_s",
    "env_steps_per_s",
    "cpu",
    "cpu_count",
    "device",
    "torch_threads",
    "python",
    "torch",
    "stable_baselines3",
    "sb3_contrib",
    "gymnasium",
    "mujoco",
    "box2d",
    "numpy",
    "maxbench",
    "git_revision",
    "error",
    "folder",
)

#: Columns of :attr:`Results.episodes`, in order.
EPISODE_COLUMNS: tuple[str, ...] = (
    "suite",
    "algo",
    "env",
    "seed",
    "status",
    "timestep",
    "wall_time_s",
    "episode",
    "return",
    "length",
)

_PACKAGE_COLUMNS = {
    "torch": "torch",
    "stable-baselines3": "stable_baselines3",
    "sb3-contrib": "sb3_contrib",
    "gymnasium": "gymnasium",
    "mujoco": "mujoco",
    "box2d": "box2d",
    "numpy": "numpy",
    "maxbench": "maxbench",
}


@dataclass(frozen=True)
class Results:
    """A results folder as two tidy tables.

    Attributes:
        root: The folder that was loaded.
        runs: One row per run folder (:data:`RUN_COLUMNS`), sorted by suite, algo, env, seed.
        episodes: One row per evaluation episode (:data:`EPISODE_COLUMNS`), same order, then
            timestep and episode.
    """

    root: Path
    runs: pd.DataFrame
    episodes: pd.DataFrame

    def evaluations(self) -> pd.DataFrame:
        """One row per evaluation: mean, standard deviation and count of its episode returns.

        Columns: suite, algo, env, seed, status, timestep, wall_time_s, mean_return, std_return
        (population standard deviation, as in evals.csv), episodes.
        """
        keys = ["suite", "algo", "env", "seed", "status", "timestep", "wall_time_s"]
        grouped = self.episodes.groupby(keys, sort=True, dropna=False)["return"]
        table = grouped.agg(
            mean_return="mean", std_return=lambda r: float(r.std(ddof=0)), episodes="count"
        )
        return table.reset_index()


def find_run_folders(root: Path) -> list[Path]:
    """Every run folder below ``root`` (or ``root`` itself): a ``seed_<n>`` folder, sorted.

    A folder counts when its name is ``seed_<n>`` and it holds a run.json, an evals.csv, a
    train.log or a lock file (a cell that was created but wrote no run.json yet is ``pending``).
    """
    root = Path(root)
    candidates = [root] if _SEED_FOLDER.match(root.name) else []
    candidates += [p for p in root.rglob("seed_*") if p.is_dir()]
    found = [
        folder
        for folder in candidates
        if _SEED_FOLDER.match(folder.name) and any((folder / name).exists() for name in _RUN_FILES)
    ]
    return sorted(set(found))


def _spec_from_path(folder: Path) -> dict[str, Any]:
    """suite/algo/env/seed from a run folder's path, for runs without a run.json."""
    parts = folder.parts
    seed = int(_SEED_FOLDER.match(folder.name).group(1))  # type: ignore[union-attr]
    env = parts[-2] if len(parts) >= 2 else ""
    algo = parts[-3] if len(parts) >= 3 else ""
    suite = parts[-4] if len(parts) >= 4 else ""
    return {"suite": suite, "algo": algo, "env_name": env, "env_id": env, "seed": seed}


def _run_row(folder: Path, run: dict[str, Any] | None, evals: list[Any]) -> dict[str, Any]:
    spec = dict(_spec_from_path(folder))
    spec.update((run or {}).get("spec", {}))
    provenance = (run or {}).get("provenance", {})
    packages = provenance.get("packages", {})
    timings = (run or {}).get("timings", {})
    row: dict[str, Any] = {
        "suite": spec.get("suite"),
        "algo": spec.get("algo"),
        "algo_target": spec.get("algo_target"),
        "policy": spec.get("policy"),
        "hyperparams": json.dumps(spec.get("hyperparams") or {}, sort_keys=True),
        "env": spec.get("env_name"),
        "env_id": spec.get("env_id"),
        "seed": int(spec.get("seed")),
        "status": (run or {}).get("status", PENDING),
        "budget": spec.get("budget"),
        "eval_every": spec.get("eval_every"),
        "eval_episodes": spec.get("eval_episodes"),
        "eval_deterministic": spec.get("eval_deterministic"),
        "n_envs": spec.get("n_envs"),
        "env_kwargs": json.dumps(spec.get("env_kwargs") or {}, sort_keys=True),
        "max_episode_steps": spec.get("max_episode_steps"),
        "wrappers": json.dumps(spec.get("wrappers") or [], sort_keys=True),
        "evaluations": len(evals),
        "last_timestep": evals[-1].timestep if evals else None,
        "env_steps": timings.get("env_steps"),
        "train_time_s": timings.get("train_time_s"),
        "eval_time_s": timings.get("eval_time_s"),
        "wall_time_s": timings.get("wall_time_s"),
        "env_steps_per_s": timings.get("env_steps_per_s"),
        "cpu": provenance.get("cpu"),
        "cpu_count": provenance.get("cpu_count"),
        "device": provenance.get("device"),
        "torch_threads": provenance.get("torch_threads"),
        "python": provenance.get("python"),
        "git_revision": provenance.get("git_revision"),
        "error": (run or {}).get("error"),
        "folder": str(folder),
    }
    for package, column in _PACKAGE_COLUMNS.items():
        row[column] = packages.get(package)
    return row


def load_results(root: str | Path) -> Results:
    """Read every run below ``root`` into a :class:`Results`.

    Raises:
        UserInputError: ``root`` does not exist, is not a folder, or holds no run.
    """
    import pandas as pd

    root = Path(root)
    if not root.exists():
        raise UserInputError(f"results folder '{root}' does not exist")
    if not root.is_dir():
        raise UserInputError(f"'{root}' is not a folder (expected a results folder)")
    folders = find_run_folders(root)
    if not folders:
        raise UserInputError(
            f"no runs in '{root}' (expected <suite>/<algo>/<env>/seed_<n>/ folders with a "
            f"run.json, as written by 'maxbench run')"
        )
    run_rows: list[dict[str, Any]] = []
    episode_rows: list[dict[str, Any]] = []
    for folder in folders:
        try:
            run = read_run_json(folder)
            evals = read_evals(folder)
        except (OSError, ValueError, KeyError) as err:
            raise UserInputError(f"cannot read run folder '{folder}': {err}") from None
        row = _run_row(folder, run, evals)
        run_rows.append(row)
        for evaluation in evals:
            for episode, (ret, length) in enumerate(
                zip(evaluation.returns, evaluation.lengths, strict=False)
            ):
                episode_rows.append(
                    {
                        "suite": row["suite"],
                        "algo": row["algo"],
                        "env": row["env"],
                        "seed": row["seed"],
                        "status": row["status"],
                        "timestep": evaluation.timestep,
                        "wall_time_s": evaluation.wall_time_s,
                        "episode": episode,
                        "return": float(ret),
                        "length": int(length),
                    }
                )
    runs = pd.DataFrame(run_rows, columns=list(RUN_COLUMNS))
    runs = runs.sort_values(["suite", "algo", "env", "seed"], kind="stable").reset_index(drop=True)
    episodes = pd.DataFrame(episode_rows, columns=list(EPISODE_COLUMNS))
    episodes = episodes.astype(
        {"seed": "int64", "timestep": "int64", "episode": "int64", "length": "int64"}
    )
    episodes = episodes.sort_values(
        ["suite", "algo", "env", "seed", "timestep", "episode"], kind="stable"
    ).reset_index(drop=True)
    return Results(root=root, runs=runs, episodes=episodes)
