"""Load a results folder into tidy pandas DataFrames (DESIGN.md: "loader -> DataFrame -> report").

A results folder is anything that holds run folders ``<suite>/<algo>/<env>/seed_<n>/`` (the
output folder of ``maxbench run``, one suite below it, or a single cell). Each run folder gives

- one row of :attr:`Results.runs`: its spec (suite, algorithm, environment id, seed, budget,
  evaluation protocol), its status and the run-time facts of its ``run.json`` (env steps, train,
  compilation, evaluation and wall-clock time, env steps per second, compile mode, CPU, device,
  torch threads, software versions, the error of a failed run);
- one row of :attr:`Results.episodes` per evaluation episode of its ``evals.csv``: tidy data
  (suite, algo, env, seed, status, timestep, wall time, episode index, return, length).

Nothing is dropped here: running, failed, interrupted and pending runs are loaded with their
status, and the report decides what to do with them (issue 5, point 7). A folder whose files are
not what maxbench writes (a truncated or non-object run.json, an unknown status, a short or
non-numeric evals.csv row, a spec field of the wrong type, a second folder holding the same
cell) is loaded as status ``damaged`` with the reason in ``error`` and no evaluations: one
damaged folder never stops the loading of the others (issue 16). A run without a spec (it failed
while its model was being built, or it has only a lock) gets suite, algo, env and seed from its
path and leaves the other spec columns empty.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from maxbench.compile_modes import compile_label
from maxbench.errors import UserInputError
from maxbench.results.layout import (
    DAMAGED,
    EVALS_CSV,
    LOCK_FILE,
    PENDING,
    RUN_JSON,
    TRAIN_LOG,
    EvalRow,
    read_cell,
)
from maxbench.results.run_checks import SPEC_FIELDS, TIMING_FIELDS

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "EPISODE_COLUMNS",
    "RUN_COLUMNS",
    "Results",
    "compile_mode",
    "find_run_folders",
    "load_results",
]

# At most 18 digits: every seed fits pandas' int64 (a suite's seeds are below 2**32).
_SEED_FOLDER = re.compile(r"^seed_(\d{1,18})$")
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
    *TIMING_FIELDS,
    "compile",
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

    def evaluations(self, finite_only: bool = False) -> pd.DataFrame:
        """One row per evaluation: mean, standard deviation and count of its episode returns.

        Columns: suite, algo, env, seed, status, timestep, wall_time_s, mean_return, std_return
        (population standard deviation, as in evals.csv), episodes. With ``finite_only`` the
        episodes whose return is NaN or infinite are left out (see :meth:`non_finite_episodes`),
        and an evaluation with no other episode has no row.
        """
        keys = ["suite", "algo", "env", "seed", "status", "timestep", "wall_time_s"]
        episodes = self.episodes
        if finite_only:
            episodes = episodes[np.isfinite(episodes["return"].to_numpy(dtype=np.float64))]
        grouped = episodes.groupby(keys, sort=True, dropna=False)["return"]
        table = grouped.agg(
            mean_return="mean", std_return=lambda r: float(r.std(ddof=0)), episodes="count"
        )
        return table.reset_index()

    def non_finite_episodes(self) -> pd.DataFrame:
        """The evaluation episodes whose return is NaN or infinite (rows of :attr:`episodes`)."""
        finite = np.isfinite(self.episodes["return"].to_numpy(dtype=np.float64))
        return self.episodes[~finite].reset_index(drop=True)


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
    """suite/algo/env/seed from a run folder's path, for runs without a (usable) spec."""
    parts = folder.parts
    seed = int(_SEED_FOLDER.match(folder.name).group(1))  # type: ignore[union-attr]
    env = parts[-2] if len(parts) >= 2 else ""
    algo = parts[-3] if len(parts) >= 3 else ""
    suite = parts[-4] if len(parts) >= 4 else ""
    return {"suite": suite, "algo": algo, "env_name": env, "seed": seed}


def _read_folder(folder: Path) -> tuple[dict[str, Any] | None, list[EvalRow], str | None]:
    """run.json, the evaluations and the damage (None when intact) of one run folder."""
    try:
        cell = read_cell(folder)
    except RecursionError:
        return None, [], f"{RUN_JSON} is not what maxbench writes (nested too deeply)"
    except Exception as err:  # noqa: BLE001  (the tolerant reader's own guarantee, enforced)
        text = " ".join(str(err).split())[:200]
        return None, [], f"its files cannot be read ({type(err).__name__}: {text})"
    if cell.damage is not None:
        return None, [], _tidy(cell.damage)
    return cell.run, cell.evals, None


def _tidy(damage: str) -> str:
    """One line, without a file name said twice ("run.json: run.json is ...")."""
    text = " ".join(damage.split())
    for name in (RUN_JSON, EVALS_CSV):
        if text.startswith(f"{name}: {name}"):
            return text[len(name) + 2 :]
    return text


def _run_row(
    folder: Path, run: dict[str, Any] | None, evals: list[EvalRow], damage: str | None
) -> dict[str, Any]:
    """One row of :attr:`Results.runs`; a damaged cell keeps only what its path says."""
    spec: dict[str, Any] = dict.fromkeys(SPEC_FIELDS)
    spec.update(_spec_from_path(folder))
    known = (run or {}).get("spec")
    if isinstance(known, dict):
        spec.update((key, known[key]) for key in SPEC_FIELDS if key in known)
    provenance = (run or {}).get("provenance") or {}
    packages = provenance.get("packages") or {}
    timings = (run or {}).get("timings") or {}
    has_spec = isinstance(known, dict)
    row: dict[str, Any] = {
        "suite": spec["suite"],
        "algo": spec["algo"],
        "algo_target": spec["algo_target"],
        "policy": spec["policy"],
        "hyperparams": _json_or_none(spec["hyperparams"], {}, has_spec),
        "env": spec["env_name"],
        "env_id": spec["env_id"],
        "seed": int(spec["seed"]),
        "status": DAMAGED if damage is not None else (run or {}).get("status", PENDING),
        "budget": spec["budget"],
        "eval_every": spec["eval_every"],
        "eval_episodes": spec["eval_episodes"],
        "eval_deterministic": spec["eval_deterministic"],
        "n_envs": spec["n_envs"],
        "env_kwargs": _json_or_none(spec["env_kwargs"], {}, has_spec),
        "max_episode_steps": spec["max_episode_steps"],
        "wrappers": _json_or_none(spec["wrappers"], [], has_spec),
        "evaluations": len(evals),
        "last_timestep": evals[-1].timestep if evals else None,
        **{field: timings.get(field) for field in TIMING_FIELDS},
        "compile": compile_mode(spec["hyperparams"]) if has_spec else None,
        "cpu": provenance.get("cpu"),
        "cpu_count": provenance.get("cpu_count"),
        "device": provenance.get("device"),
        "torch_threads": provenance.get("torch_threads"),
        "python": provenance.get("python"),
        "git_revision": provenance.get("git_revision"),
        "error": damage if damage is not None else (run or {}).get("error"),
        "folder": str(folder),
    }
    for package, column in _PACKAGE_COLUMNS.items():
        row[column] = packages.get(package)
    return row


def compile_mode(hyperparams: Any) -> str:
    """How a run's model was compiled, from its hyperparameters' ``compile`` option (issue 14).

    "eager" without the option or with ``compile: false``, "inductor" for ``true`` (torch's
    default backend), else the backend named.
    """
    value = hyperparams.get("compile", False) if isinstance(hyperparams, dict) else False
    return compile_label(value)


def _json_or_none(value: Any, default: Any, has_spec: bool) -> str | None:
    """A spec's dict or list as sorted JSON; None when the run has no spec (unknown)."""
    if not has_spec:
        return None
    return json.dumps(value if value is not None else default, sort_keys=True)


def _mark_duplicates(rows: list[dict[str, Any]]) -> None:
    """Two folders with the same cell (suite, algo, env, seed): keep one, the others damaged.

    A copied cell folder keeps its run.json, so two folders can name the same cell; scoring both
    would count one run twice. The folder whose path is the cell's own path is kept (the first,
    sorted, when several are); every other one becomes ``damaged`` and names the one kept.
    """
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for row in rows:
        if row["status"] != DAMAGED:
            groups.setdefault((row["suite"], row["algo"], row["env"], row["seed"]), []).append(row)
    for (suite, algo, env, seed), group in groups.items():
        if len(group) < 2:
            continue
        own = (str(suite), str(algo), str(env), f"seed_{seed}")
        kept = next((r for r in group if Path(r["folder"]).parts[-4:] == own), group[0])
        for row in group:
            if row is kept:
                continue
            identity = _spec_from_path(Path(row["folder"]))
            row.update(
                {column: None for column in RUN_COLUMNS if column not in ("folder", "evaluations")}
            )
            row.update(
                suite=identity["suite"],
                algo=identity["algo"],
                env=identity["env_name"],
                seed=identity["seed"],
                status=DAMAGED,
                evaluations=0,
                error=f"{RUN_JSON} names the cell {algo}/{env}/seed_{seed} of suite {suite}, "
                f"which the folder {kept['folder']} holds too",
            )


def load_results(root: str | Path) -> Results:
    """Read every run below ``root`` into a :class:`Results`.

    Raises:
        UserInputError: ``root`` does not exist, is not a folder, or holds no run.
    """
    import pandas as pd

    root = Path(root)
    try:
        if not root.exists():
            raise UserInputError(f"results folder '{root}' does not exist")
        if not root.is_dir():
            raise UserInputError(f"'{root}' is not a folder (expected a results folder)")
        folders = find_run_folders(root)
    except (OSError, ValueError) as err:  # unreadable, a name too long, a NUL byte
        text = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
        raise UserInputError(f"results folder '{root}' cannot be read: {text}") from None
    if not folders:
        raise UserInputError(
            f"no runs in '{root}' (expected <suite>/<algo>/<env>/seed_<n>/ folders with a "
            f"run.json, as written by 'maxbench run')"
        )
    run_rows: list[dict[str, Any]] = []
    evals_of: dict[str, list[EvalRow]] = {}
    for folder in folders:
        run, evals, damage = _read_folder(folder)
        run_rows.append(_run_row(folder, run, evals, damage))
        evals_of[str(folder)] = evals
    _mark_duplicates(run_rows)
    episode_rows: list[dict[str, Any]] = []
    for row in run_rows:
        if row["status"] == DAMAGED:
            continue
        for evaluation in evals_of[row["folder"]]:
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
