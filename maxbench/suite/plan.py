"""Decide what to do with each cell of a suite, from what its folder already holds.

finished -> skip (run.json untouched); failed -> skip unless retrying; interrupted or a stale
``running`` (its process died) -> resume from the last checkpoint; no folder -> start; a cell
whose lock another live process holds -> busy (left to that process).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from maxbench.results.layout import FAILED, FINISHED, PENDING, read_evals, read_run_json
from maxbench.results.lock import is_locked
from maxbench.suite.cells import Cell

START, RESUME, SKIP_FINISHED, SKIP_FAILED, RETRY, BUSY = (
    "start",
    "resume",
    "skip (finished)",
    "skip (failed; --retry-failed runs it)",
    "retry (failed)",
    "busy (another process is training it)",
)
RUNNABLE = (START, RESUME, RETRY)


@dataclass(frozen=True)
class PlannedCell:
    """A cell and what this invocation will do with it."""

    cell: Cell
    action: str
    status: str
    done_steps: int

    @property
    def runnable(self) -> bool:
        return self.action in RUNNABLE


def _checkpoint_step(folder: Path) -> int:
    try:
        history = json.loads((folder / "checkpoints" / "latest.json").read_text())["history"]
        return int(history[-1]["timestep"])
    except (OSError, ValueError, KeyError, IndexError):
        return 0


def plan_cells(cells: list[Cell], out: Path, retry_failed: bool = False) -> list[PlannedCell]:
    """What to do with each of ``cells`` given the results under ``out``."""
    planned = []
    for cell in cells:
        folder = cell.folder(out)
        run = read_run_json(folder) if folder.exists() else None
        status = run.get("status", PENDING) if run else PENDING
        if status == FINISHED:
            planned.append(PlannedCell(cell, SKIP_FINISHED, status, cell.budget))
            continue
        if is_locked(folder):
            planned.append(PlannedCell(cell, BUSY, status, 0))
            continue
        if status == FAILED:
            action = RETRY if retry_failed else SKIP_FAILED
            planned.append(PlannedCell(cell, action, status, 0))
            continue
        step = _checkpoint_step(folder) if folder.exists() else 0
        has_work = step > 0 or (folder.exists() and bool(read_evals(folder)))
        planned.append(PlannedCell(cell, RESUME if has_work else START, status, step))
    return planned
