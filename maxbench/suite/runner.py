"""Run a suite from Python: validate, expand, plan, execute, summarise.

``maxbench run`` is a thin shell over :func:`run_suite`.
"""

from __future__ import annotations

import os
import signal
import threading
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from maxbench.errors import UserInputError
from maxbench.results.layout import DAMAGED, FINISHED
from maxbench.suite.cells import expand_suite
from maxbench.suite.loading import load_suite
from maxbench.suite.plan import (
    START,
    PlannedCell,
    changed_refusal,
    plan_cells,
    read_cell_folder,
    set_aside,
)

EXIT_OK, EXIT_SOME_FAILED, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130
NOT_MOVED = "not run"  # the action of a cell whose folder could not be set aside
BACKENDS = ("local", "ray")


@dataclass
class SuiteOutcome:
    """The cells of an invocation and its exit status."""

    planned: list[PlannedCell]
    statuses: dict[str, str]
    exit_code: int
    out: Path
    suite_name: str


def default_workers() -> int:
    """One worker per core."""
    return os.cpu_count() or 1


def changed_choice(rerun_changed: bool = False, keep_changed: bool = False) -> str | None:
    """The decision for cells whose settings changed: "rerun", "keep" or None (refuse them)."""
    if rerun_changed and keep_changed:
        raise UserInputError("--rerun-changed and --keep-changed exclude each other: choose one")
    return "rerun" if rerun_changed else "keep" if keep_changed else None


def plan_suite(
    suite_path: Path,
    out: Path,
    only: str | None = None,
    retry_failed: bool = False,
    reset_damaged: bool = False,
    rerun_changed: bool = False,
    keep_changed: bool = False,
) -> tuple[str, list[PlannedCell]]:
    """Validate the suite and decide what to do with each cell (nothing is written).

    Damaged and changed cells are planned, never raised: see :mod:`maxbench.suite.plan`.
    """
    changed = changed_choice(rerun_changed, keep_changed)
    loaded = load_suite(suite_path)
    cells = expand_suite(loaded.suite, loaded.name, only=only)
    if not cells:
        raise UserInputError(
            f"--only {_one_line(only)} matches no cell of {_one_line(suite_path)} "
            "(keys: algo/env/seed_n)"
        )
    _check_folder_shape(out, loaded.name)
    planned = plan_cells(
        cells, out, retry_failed=retry_failed, reset_damaged=reset_damaged, changed=changed
    )
    return loaded.name, planned


def run_suite(
    suite_path: Path,
    out: Path = Path("results"),
    workers: int | None = None,
    threads: int = 1,
    only: str | None = None,
    retry_failed: bool = False,
    console: Console | None = None,
    backend: str = "local",
    address: str | None = None,
    reset_damaged: bool = False,
    rerun_changed: bool = False,
    keep_changed: bool = False,
    cells_per_gpu: int | None = None,
) -> SuiteOutcome:
    """Run every cell of the suite that is not finished; return the statuses and exit status.

    ``backend`` is ``"local"`` (a process pool on this machine) or ``"ray"`` (Ray tasks on the
    cluster at ``address``, or on a local Ray instance when there is none).

    Damaged cells are listed and stepped over (``reset_damaged`` sets their folders aside and
    starts them again). Cells whose stored settings differ from the suite's make the run refuse
    with a UserInputError, before anything is written, unless ``rerun_changed`` (set aside and
    start again) or ``keep_changed`` (keep the old results) says what to do with them.
    """
    from maxbench.suite.display import LiveProgress, summary_table
    from maxbench.suite.local import run_local

    console = console or Console()
    if backend not in BACKENDS:
        raise UserInputError(
            f"unknown backend {_one_line(backend)}; use one of {', '.join(BACKENDS)}"
        )
    if address is not None and backend != "ray":
        raise UserInputError("--address is for the Ray backend: add --backend ray")
    if backend == "ray":
        from maxbench.suite.ray_backend import _import_ray

        _import_ray()  # a missing extra is bad input, said before anything is written
    if threads < 1:
        raise UserInputError(f"--threads must be at least 1 (got {threads})")
    if workers is not None and workers < 1:
        raise UserInputError(f"--workers must be at least 1 (got {workers})")
    if cells_per_gpu is not None and cells_per_gpu < 1:
        raise UserInputError(f"--cells-per-gpu must be at least 1 (got {cells_per_gpu})")
    name, planned = plan_suite(
        suite_path,
        out,
        only=only,
        retry_failed=retry_failed,
        reset_damaged=reset_damaged,
        rerun_changed=rerun_changed,
        keep_changed=keep_changed,
    )
    refusal = changed_refusal(name, planned)
    if refusal is not None:
        raise UserInputError(refusal)
    _check_writable(out)
    _check_lock_support(out)
    planned = [_set_aside_if_planned(p, out, console) for p in planned]
    runnable = [p for p in planned if p.runnable]
    workers = min(workers or default_workers(), max(1, len(runnable)))
    console.print(
        f"suite [bold]{escape(name)}[/]: {len(planned)} cells, {len(runnable)} to run "
        f"on {escape(_where(backend, address, workers))} × {threads} thread(s) → "
        f"{escape(str(out / name))}",
        soft_wrap=True,
    )
    _say_what_is_damaged(planned, console)
    _say_what_is_kept(planned, console)
    _say_what_others_hold(planned, out, console)
    statuses: dict[str, str] = {}
    interrupted = False
    # Ctrl-C / `kill -INT` stop the suite gracefully even when this process was started with
    # SIGINT ignored (a background job of a non-interactive shell inherits SIG_IGN).
    in_main_thread = threading.current_thread() is threading.main_thread()
    if in_main_thread:  # signal handlers can only be set there (the Python API may run elsewhere)
        previous_int = signal.signal(signal.SIGINT, signal.default_int_handler)
    with LiveProgress(planned, console) as display:
        try:
            if backend == "ray":
                from maxbench.suite.ray_backend import run_ray

                statuses = run_ray(
                    planned,
                    out,
                    workers=workers,
                    threads=threads,
                    address=address,
                    sink=display,
                    cells_per_gpu=cells_per_gpu,
                )
            else:
                statuses = run_local(
                    planned,
                    out,
                    workers=workers,
                    threads=threads,
                    sink=display,
                    cells_per_gpu=cells_per_gpu,
                )
        except KeyboardInterrupt:
            interrupted = True
        finally:
            if in_main_thread:
                signal.signal(signal.SIGINT, previous_int)
    console.print(summary_table(planned, out, title=f"{name}: final evaluation returns"))
    _say_what_others_took(statuses, console)
    code = _exit_code(planned, out, interrupted, console)
    return SuiteOutcome(planned, statuses, code, out, name)


def _exit_code(planned: list[PlannedCell], out: Path, interrupted: bool, console: Console) -> int:
    """The suite's exit status from what the cells' folders now hold; say what to do next."""
    if interrupted:
        console.print("[yellow]interrupted[/]: run the same command again to resume.")
        return EXIT_INTERRUPTED
    final = [read_cell_folder(p.cell.folder(out)).status for p in planned]
    not_moved = any(p.action.startswith(NOT_MOVED) for p in planned)
    if all(status == FINISHED for status in final) and not not_moved:
        return EXIT_OK
    damaged = ""
    if DAMAGED in final:
        damaged = " `--reset-damaged` sets damaged ones aside and starts them again."
    console.print(
        "some cells did not finish: see the table; `--retry-failed` runs failed ones again, "
        f"and running the same command resumes the others.{damaged}"
    )
    return EXIT_SOME_FAILED


def _one_line(value: object) -> str:
    """``value`` quoted on one line, for a UserInputError (control characters escaped)."""
    text = str(value)
    return repr(text) if any(ord(c) < 32 or c == "\x7f" for c in text) else f"'{text}'"


def _check_folder_shape(out: Path, suite_name: str) -> None:
    """--out and the suite's folder must be folders (or not exist yet): never a file."""
    for path in (Path(out), Path(out) / suite_name):
        for candidate in (path, *path.parents):
            if candidate.exists():
                if not candidate.is_dir():
                    where = "" if candidate == path else f" ({candidate} is a file)"
                    raise UserInputError(
                        f"the results folder {_one_line(path)} is not a folder{where}: "
                        "give --out a folder (it is created if missing)"
                    )
                break


def _set_aside_if_planned(item: PlannedCell, out: Path, console: Console) -> PlannedCell:
    """Move a cell's folder aside when the plan says so; the cell then starts from scratch.

    A cell that another process locked meanwhile is left to it; a folder that cannot be renamed
    stays as it is and the cell is not run.
    """
    from maxbench.results.lock import CellBusyError
    from maxbench.suite.plan import BUSY

    if item.set_aside is None:
        return item
    folder = item.cell.folder(out)
    why = item.damage or "; ".join(item.changes)
    try:
        moved = set_aside(folder, item.set_aside)
    except CellBusyError:
        return PlannedCell(item.cell, BUSY, item.status, 0)
    except OSError as err:
        reason = f"cannot set its folder aside ({err.strerror or err})"
        console.print(
            f"[red]not run[/] {escape(item.cell.key)}: {escape(reason)}",
            soft_wrap=True,
            highlight=False,
        )
        return PlannedCell(item.cell, f"{NOT_MOVED} ({reason})", item.status, 0)
    if moved is not None:
        console.print(
            f"[yellow]set aside[/] {escape(item.cell.key)} ({item.set_aside}: {escape(why)}) → "
            f"{escape(str(moved))}; it starts again",
            soft_wrap=True,
            highlight=False,
        )
    return PlannedCell(item.cell, START, "pending", 0)


def _say_what_is_damaged(planned: list[PlannedCell], console: Console) -> None:
    """One line per damaged cell that is stepped over, naming it and what is damaged."""
    damaged = [p for p in planned if p.damaged and not p.runnable]
    for item in damaged:
        console.print(
            f"[yellow]damaged[/] {escape(item.cell.key)}: {escape(item.damage or '')} "
            "(stepped over)",
            soft_wrap=True,
            highlight=False,
        )
    if damaged:
        console.print(
            f"{len(damaged)} damaged cell(s) left as they are: `--reset-damaged` moves a damaged "
            "cell's folder aside (to seed_<n>.damaged-<timestamp>) and starts it again.",
            soft_wrap=True,
            highlight=False,
        )


def _say_what_is_kept(planned: list[PlannedCell], console: Console) -> None:
    """Name the changed cells whose old results --keep-changed keeps (never resumed)."""
    kept = [p for p in planned if p.changed and not p.runnable]
    if kept:
        keys = ", ".join(p.cell.key for p in kept[:5]) + (" ..." if len(kept) > 5 else "")
        console.print(
            f"[yellow]{len(kept)} changed cell(s) keep their old results and are not run[/]: "
            f"{escape(keys)}",
            soft_wrap=True,
            highlight=False,
        )


def _where(backend: str, address: str | None, workers: int) -> str:
    if backend == "ray":
        return f"Ray ({address or f'local, {workers} workers'})"
    return f"{workers} workers"


def _say_what_others_hold(planned: list[PlannedCell], out: Path, console: Console) -> None:
    """Name the cells that another maxbench process is training (they are left to it)."""
    from maxbench.results.lock import lock_holder
    from maxbench.suite.plan import BUSY

    busy = [p for p in planned if p.action == BUSY]
    if busy:
        holders = sorted({str(lock_holder(p.cell.folder(out)) or "?") for p in busy})
        keys = ", ".join(p.cell.key for p in busy[:5]) + (" ..." if len(busy) > 5 else "")
        console.print(
            f"[yellow]{len(busy)} cells are being trained by another maxbench process "
            f"(pid {escape(', '.join(holders))}); they are left to it[/]: {escape(keys)}"
        )


def _say_what_others_took(statuses: dict[str, str], console: Console) -> None:
    """Name the cells that another maxbench process started between planning and their turn."""
    from maxbench.suite.local import BUSY

    taken = sorted(key for key, status in statuses.items() if status == BUSY)
    if taken:
        keys = ", ".join(taken[:5]) + (" ..." if len(taken) > 5 else "")
        console.print(
            f"[yellow]{len(taken)} cells were being trained by another maxbench process "
            f"when their turn came; they were left to it[/]: {escape(keys)}"
        )


def _check_writable(out: Path) -> None:
    """Create --out if missing; refuse (exit 2) a file or a folder this process cannot write."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserInputError(f"the results folder {_one_line(out)} is a file, not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserInputError(
            f"cannot create the results folder {_one_line(out)}: {err.strerror or err}"
        ) from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise UserInputError(f"the results folder {_one_line(out)} is not writable")


def _check_lock_support(out: Path) -> None:
    """Refuse (exit 2, one line) a results folder whose filesystem gives no working locks."""
    from maxbench.results.lock import check_lock_support

    try:
        check_lock_support(out)
    except OSError as err:
        raise UserInputError(
            f"cannot write a file in the results folder {_one_line(out)}: {err.strerror or err}"
        ) from None
