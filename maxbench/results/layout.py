"""The on-disk layout of one cell's results folder, and reading/writing its small files.

``<out>/<suite>/<algo>/<env>/seed_<n>/`` holds:

- ``run.json``: spec, status, provenance, timings, final evaluation, error;
- ``evals.csv``: one row per evaluation (timestep, wall time, every episode's return and length);
- ``train.log``: the run's own log (events, tracebacks of crashes);
- ``sb3/attempt_<k>/``: stable-baselines3's progress log of each attempt (progress.csv, log.txt);
- ``model.zip``: the final model (SB3's ``save`` format);
- ``checkpoints/``: periodic checkpoints for resuming (removed when the run finishes).
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from maxbench.results.atomic import read_json, write_text_atomic

RUN_JSON = "run.json"
EVALS_CSV = "evals.csv"
TRAIN_LOG = "train.log"
MODEL_ZIP = "model.zip"
CHECKPOINTS = "checkpoints"
SB3_LOGS = "sb3"
LOCK_FILE = ".lock"

PENDING, RUNNING, FINISHED, FAILED, INTERRUPTED = (
    "pending",
    "running",
    "finished",
    "failed",
    "interrupted",
)
EVAL_COLUMNS = ("timestep", "wall_time_s", "mean_return", "std_return", "returns", "lengths")


@dataclass(frozen=True)
class EvalRow:
    """One evaluation: every test episode's return and length at a training timestep."""

    timestep: int
    wall_time_s: float
    returns: tuple[float, ...]
    lengths: tuple[int, ...]

    @property
    def mean_return(self) -> float:
        return sum(self.returns) / len(self.returns)

    @property
    def std_return(self) -> float:
        mean = self.mean_return
        return math.sqrt(sum((r - mean) ** 2 for r in self.returns) / len(self.returns))


def read_run_json(folder: Path) -> dict[str, Any] | None:
    """The cell's run.json, or None when there is none (never started)."""
    path = Path(folder) / RUN_JSON
    return read_json(path) if path.exists() else None


def read_status(folder: Path) -> str:
    """The cell's status; ``pending`` when it has no run.json."""
    run = read_run_json(folder)
    return run.get("status", PENDING) if run else PENDING


def write_evals(folder: Path, rows: list[EvalRow]) -> None:
    """Rewrite evals.csv atomically with ``rows``.

    Returns and lengths are space-separated lists so that one evaluation stays one row.
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(EVAL_COLUMNS)
    for row in rows:
        writer.writerow(
            [
                row.timestep,
                f"{row.wall_time_s:.3f}",
                repr(row.mean_return),
                repr(row.std_return),
                " ".join(repr(float(r)) for r in row.returns),
                " ".join(str(int(n)) for n in row.lengths),
            ]
        )
    write_text_atomic(Path(folder) / EVALS_CSV, buffer.getvalue())


def read_evals(folder: Path) -> list[EvalRow]:
    """Read evals.csv (empty list when there is none)."""
    path = Path(folder) / EVALS_CSV
    if not path.exists():
        return []
    with open(path, newline="") as handle:
        return [
            EvalRow(
                timestep=int(record["timestep"]),
                wall_time_s=float(record["wall_time_s"]),
                returns=tuple(float(r) for r in record["returns"].split()),
                lengths=tuple(int(n) for n in record["lengths"].split()),
            )
            for record in csv.DictReader(handle)
        ]
