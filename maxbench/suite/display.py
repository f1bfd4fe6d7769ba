"""What a user sees while a suite runs: a live overall bar (cells, env steps, ETA), a bar for each
running cell, a line when a cell ends, and a summary table of every cell at the end."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console
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

from maxbench.results.layout import FINISHED, read_run_json
from maxbench.suite.plan import PlannedCell

_STATUS_STYLE = {"finished": "green", "failed": "red", "interrupted": "yellow", "busy": "yellow"}


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
            f"  {key}", total=planned.cell.budget, completed=planned.done_steps
        )
        if planned.done_steps:
            self.console.log(f"resuming {key} from step {planned.done_steps}")

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
        style = _STATUS_STYLE.get(status, "white")
        detail = ""
        if run and status == FINISHED:
            final = run.get("final", {})
            timings = run.get("timings", {})
            if final.get("mean_return") is not None:
                detail = (
                    f": return {final['mean_return']:.2f} at step {final['timestep']}, "
                    f"{timings.get('env_steps_per_s', 0):.0f} steps/s"
                )
        elif run and run.get("error"):
            detail = f": {run['error']} (see {planned.cell.key}/train.log)"
        self.console.log(f"[{style}]{status}[/] {key}{detail}")


def summary_table(planned: list[PlannedCell], out: Path, title: str) -> Table:
    """Every cell of the selection with its status and final evaluation return."""
    table = Table(title=title)
    for column in ("algo", "env", "seed", "status", "final return", "at step", "steps/s", "wall"):
        table.add_column(column, justify="right" if column not in ("algo", "env") else "left")
    for item in planned:
        cell = item.cell
        run = read_run_json(cell.folder(out)) or {}
        status = run.get("status", "pending")
        final = run.get("final") or {}
        timings = run.get("timings") or {}
        mean = final.get("mean_return")
        table.add_row(
            cell.algo,
            cell.env_name,
            str(cell.seed),
            f"[{_STATUS_STYLE.get(status, 'white')}]{status}[/]",
            "" if mean is None else f"{mean:.2f} ± {final.get('std_return', 0):.2f}",
            str(final.get("timestep", "")),
            f"{timings['env_steps_per_s']:.0f}" if "env_steps_per_s" in timings else "",
            f"{timings['wall_time_s']:.0f} s" if "wall_time_s" in timings else "",
        )
    return table
