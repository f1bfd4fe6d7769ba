"""What a user sees while a suite runs: a live overall bar (cells, env steps, ETA), a bar for each
running cell, a line when a cell ends, and a summary table of every cell at the end."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from maxbench.results.layout import FINISHED
from maxbench.suite.plan import PlannedCell, read_cell_folder

_STATUS_STYLE = {
    "finished": "green",
    "failed": "red",
    "damaged": "red",
    "interrupted": "yellow",
    "busy": "yellow",
}


def _number(value: Any) -> float | None:
    """``value`` as a float when it is a real number (a run.json may hold anything)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _status_markup(status: str) -> str:
    return f"[{_STATUS_STYLE.get(status, 'white')}]{escape(status)}[/]"


class LiveProgress:
    """A rich display that implements the executor's ProgressSink."""

    def __init__(self, planned: list[PlannedCell], console: Console) -> None:
        self.console = console
        runnable = [p for p in planned if p.runnable]
        self.cells_total = len(runnable)
        self.cells_done = 0
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("steps"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=console,
            transient=False,
        )
        self.overall = self.progress.add_task(
            self._overall_label(), total=sum(p.cell.budget for p in runnable)
        )
        self.tasks: dict[str, TaskID] = {}
        self.steps: dict[str, int] = {p.cell.key: p.done_steps for p in runnable}
        self.progress.update(self.overall, completed=sum(self.steps.values()))

    def _overall_label(self) -> str:
        return f"[bold]suite[/] cells {self.cells_done}/{self.cells_total}"

    def __enter__(self) -> LiveProgress:
        self.progress.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.progress.stop()

    def cell_started(self, planned: PlannedCell) -> None:
        key = planned.cell.key
        self.tasks[key] = self.progress.add_task(
            f"  {escape(key)}", total=planned.cell.budget, completed=planned.done_steps
        )
        if planned.done_steps:
            self.console.log(f"resuming {escape(key)} from step {planned.done_steps}")

    def cell_progress(self, key: str, timestep: int) -> None:
        if key in self.tasks:
            self.progress.update(self.tasks[key], completed=timestep)
        self.steps[key] = timestep
        self.progress.update(self.overall, completed=sum(self.steps.values()))

    def cell_ended(self, planned: PlannedCell, status: str, run: dict[str, Any] | None) -> None:
        key = planned.cell.key
        if key in self.tasks:
            self.progress.remove_task(self.tasks.pop(key))
        self.cells_done += 1
        if status == FINISHED:
            self.steps[key] = planned.cell.budget
        self.progress.update(
            self.overall, description=self._overall_label(), completed=sum(self.steps.values())
        )
        self.console.log(f"{_status_markup(status)} {escape(key)}{_detail(planned, status, run)}")


def _detail(planned: PlannedCell, status: str, run: dict[str, Any] | None) -> str:
    """What to say after a cell's status when it ends (markup-safe)."""
    if not isinstance(run, dict):
        return ""
    if status == FINISHED:
        final = run.get("final") if isinstance(run.get("final"), dict) else {}
        timings = run.get("timings") if isinstance(run.get("timings"), dict) else {}
        mean, speed = _number(final.get("mean_return")), _number(timings.get("env_steps_per_s"))
        if mean is None:
            return ""
        at = escape(str(final.get("timestep", "?")))
        return f": return {mean:.2f} at step {at}, {speed or 0:.0f} steps/s"
    if run.get("error"):
        return f": {escape(str(run['error']))} (see {escape(planned.cell.key)}/train.log)"
    return ""


def summary_table(planned: list[PlannedCell], out: Path, title: str) -> Table:
    """Every cell of the selection with its status and final evaluation return.

    Read tolerantly: a damaged cell shows ``damaged``, and a run.json value that is not a number
    shows as blank, never as a crash.
    """
    table = Table(title=escape(title))
    for column in ("algo", "env", "seed", "status", "final return", "at step", "steps/s", "wall"):
        table.add_column(column, justify="right" if column not in ("algo", "env") else "left")
    for item in planned:
        cell = item.cell
        files = read_cell_folder(cell.folder(out))
        run = files.run or {}
        final = run.get("final") or {}
        timings = run.get("timings") or {}
        mean, std = _number(final.get("mean_return")), _number(final.get("std_return"))
        speed, wall = _number(timings.get("env_steps_per_s")), _number(timings.get("wall_time_s"))
        step = final.get("timestep", "")
        table.add_row(
            escape(cell.algo),
            escape(cell.env_name),
            str(cell.seed),
            _status_markup(files.status),
            "" if mean is None else f"{mean:.2f} ± {std or 0:.2f}",
            escape(str(step)) if isinstance(step, int | float | str) else "",
            "" if speed is None else f"{speed:.0f}",
            "" if wall is None else f"{wall:.0f} s",
        )
    return table
