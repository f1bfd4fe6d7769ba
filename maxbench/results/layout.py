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
import json
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
    """Read evals.csv (empty list when there is none).

    Raises :class:`DamagedCellError` (a ValueError) naming the row when the file is not what
    :func:`write_evals` writes: a missing column, a short row, a number that does not parse,
    returns and lengths of different counts.
    """
    path = Path(folder) / EVALS_CSV
    if not path.exists():
        return []
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = [
            c
            for c in ("timestep", "wall_time_s", "returns", "lengths")
            if c not in (reader.fieldnames or ())
        ]
        if missing:
            raise DamagedCellError(f"{EVALS_CSV} lacks the column(s) {', '.join(missing)}")
        rows = []
        for number, record in enumerate(reader, start=2):
            try:
                row = EvalRow(
                    timestep=int(record["timestep"]),
                    wall_time_s=float(record["wall_time_s"]),
                    returns=tuple(float(r) for r in record["returns"].split()),
                    lengths=tuple(int(n) for n in record["lengths"].split()),
                )
            except (TypeError, ValueError, AttributeError):
                raise DamagedCellError(f"{EVALS_CSV} line {number} is damaged") from None
            if not row.returns or len(row.returns) != len(row.lengths):
                raise DamagedCellError(
                    f"{EVALS_CSV} line {number}: {len(row.returns)} returns and "
                    f"{len(row.lengths)} lengths"
                )
            rows.append(row)
        return rows


DAMAGED = "damaged"
_KNOWN_STATUSES = (PENDING, RUNNING, FINISHED, FAILED, INTERRUPTED)


class DamagedCellError(ValueError):
    """A file of a cell's folder cannot be read as what maxbench wrote there."""


@dataclass(frozen=True)
class CellFiles:
    """What a cell's folder holds, read tolerantly: damage is a reason, never an exception.

    ``run`` is run.json (None when absent or damaged), ``evals`` the rows of evals.csv (empty
    when absent or damaged), ``damage`` one line naming the damaged file and what is wrong with
    it (None when every file present could be read). Commands list damaged cells and step over
    them (issue 16: one tolerant reader for ``run``, ``report``, ``multigoal`` and the loader).
    """

    folder: Path
    run: dict[str, Any] | None
    evals: list[EvalRow]
    damage: str | None = None

    @property
    def status(self) -> str:
        """``damaged`` when a file is damaged, else run.json's status (``pending`` without one)."""
        if self.damage is not None:
            return DAMAGED
        return str(self.run.get("status", PENDING)) if self.run else PENDING

    @property
    def spec(self) -> dict[str, Any] | None:
        """The cell's spec from run.json, or None (a cell that failed before it had one)."""
        spec = (self.run or {}).get("spec")
        return spec if isinstance(spec, dict) else None


def _check_run_json(run: Any) -> dict[str, Any]:
    if not isinstance(run, dict):
        raise DamagedCellError(f"{RUN_JSON} is not a JSON object (a {type(run).__name__})")
    status = run.get("status", PENDING)
    if status not in _KNOWN_STATUSES:
        raise DamagedCellError(f"{RUN_JSON} has an unknown status {status!r}")
    for key in ("spec", "timings", "final", "provenance"):
        if key in run and run[key] is not None and not isinstance(run[key], dict):
            raise DamagedCellError(f"{RUN_JSON}: '{key}' is not an object")
    return run


def _describe_read_error(name: str, err: Exception) -> str:
    if isinstance(err, DamagedCellError):
        return str(err)  # already names the file
    if isinstance(err, RecursionError):
        return f"{name} is not what maxbench writes (nested too deeply)"
    if isinstance(err, json.JSONDecodeError):
        return f"{name} is not valid JSON (line {err.lineno}: {err.msg})"
    if isinstance(err, UnicodeDecodeError):
        return f"{name} is not UTF-8 text"
    if isinstance(err, OSError):
        return f"{name} cannot be read ({err.strerror or err})"
    return f"{name}: {err}"


def read_cell(folder: Path) -> CellFiles:
    """Read a cell's run.json and evals.csv; any damage becomes :attr:`CellFiles.damage`."""
    folder = Path(folder)
    run: dict[str, Any] | None = None
    try:
        path = folder / RUN_JSON
        if path.exists():
            run = _check_run_json(read_json(path))
    except (OSError, ValueError, RecursionError) as err:
        return CellFiles(folder, None, [], _describe_read_error(RUN_JSON, err))
    try:
        evals = read_evals(folder)
    except (OSError, ValueError, RecursionError) as err:
        return CellFiles(folder, run, [], _describe_read_error(EVALS_CSV, err))
    from maxbench.results.run_checks import evals_problem, run_json_problem  # (imports layout)

    problem = (run_json_problem(run) if run is not None else None) or evals_problem(evals)
    if problem is not None:
        return CellFiles(folder, None, [], problem)
    return CellFiles(folder, run, evals)
