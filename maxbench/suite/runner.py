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

from maxbench.errors import UserInputError
from maxbench.results.layout import FINISHED
from maxbench.suite.cells import expand_suite
from maxbench.suite.loading import load_suite
from maxbench.suite.plan import PlannedCell, plan_cells

EXIT_OK, EXIT_SOME_FAILED, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130
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


def plan_suite(
    suite_path: Path, out: Path, only: str | None = None, retry_failed: bool = False
) -> tuple[str, list[PlannedCell]]:
    """Validate the suite and decide what to do with each cell (nothing is written)."""
    loaded = load_suite(suite_path)
    cells = expand_suite(loaded.suite, loaded.name, only=only)
    if not cells:
        raise UserInputError(
            f"--only '{only}' matches no cell of {suite_path} (keys: algo/env/seed_n)"
        )
    return loaded.name, plan_cells(cells, out, retry_failed=retry_failed)


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
) -> SuiteOutcome:
    """Run every cell of the suite that is not finished; return the statuses and exit status.

    ``backend`` is ``"local"`` (a process pool on this machine) or ``"ray"`` (Ray tasks on the
    cluster at ``address``, or on a local Ray instance when there is none).
    """
    from maxbench.suite.display import LiveProgress, summary_table
    from maxbench.suite.local import run_local

    console = console or Console()
    if backend not in BACKENDS:
        raise UserInputError(f"unknown backend '{backend}'; use one of {', '.join(BACKENDS)}")
    if address is not None and backend != "ray":
        raise UserInputError("--address is for the Ray backend: add --backend ray")
    if backend == "ray":
        from maxbench.suite.ray_backend import _import_ray

        _import_ray()  # a missing extra is bad input, said before anything is written
    if threads < 1:
        raise UserInputError(f"--threads must be at least 1 (got {threads})")
    if workers is not None and workers < 1:
        raise UserInputError(f"--workers must be at least 1 (got {workers})")
    name, planned = plan_suite(suite_path, out, only=only, retry_failed=retry_failed)
    _check_writable(out)
    runnable = [p for p in planned if p.runnable]
    workers = min(workers or default_workers(), max(1, len(runnable)))
    console.print(
        f"suite [bold]{name}[/]: {len(planned)} cells, {len(runnable)} to run "
        f"on {_where(backend, address, workers)} × {threads} thread(s) → {out / name}"
    )
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
                    planned, out, workers=workers, threads=threads, address=address, sink=display
                )
            else:
                statuses = run_local(planned, out, workers=workers, threads=threads, sink=display)
        except KeyboardInterrupt:
            interrupted = True
        finally:
            if in_main_thread:
                signal.signal(signal.SIGINT, previous_int)
    console.print(summary_table(planned, out, title=f"{name}: final evaluation returns"))
    _say_what_others_took(statuses, console)
    from maxbench.results.layout import read_status

    all_finished = all(read_status(p.cell.folder(out)) == FINISHED for p in planned)
    if interrupted:
        console.print("[yellow]interrupted[/]: run the same command again to resume.")
        code = EXIT_INTERRUPTED
    elif all_finished:
        code = EXIT_OK
    else:
        console.print(
            "some cells did not finish: see the table; `--retry-failed` runs failed ones again, "
            "and running the same command resumes the others."
        )
        code = EXIT_SOME_FAILED
    return SuiteOutcome(planned, statuses, code, out, name)


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
            f"(pid {', '.join(holders)}); they are left to it[/]: {keys}"
        )


def _say_what_others_took(statuses: dict[str, str], console: Console) -> None:
    """Name the cells that another maxbench process started between planning and their turn."""
    from maxbench.suite.local import BUSY

    taken = sorted(key for key, status in statuses.items() if status == BUSY)
    if taken:
        keys = ", ".join(taken[:5]) + (" ..." if len(taken) > 5 else "")
        console.print(
            f"[yellow]{len(taken)} cells were being trained by another maxbench process "
            f"when their turn came; they were left to it[/]: {keys}"
        )


def _check_writable(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserInputError(f"cannot create the results folder {out}: {err.strerror}") from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise UserInputError(f"the results folder {out} is not writable")
