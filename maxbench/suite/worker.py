"""The entry point of a worker process: fix the thread count, then run one cell.

This module must not import torch at its top level: the thread variables have to be set before
torch is first imported in the process (DESIGN.md, "Threads").
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from pathlib import Path
from typing import Any

THREAD_VARIABLES = (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
)
EXIT_BUSY = 3
EXIT_UNEXPECTED = 4  # run_cell raised although it never should: said on stderr


def set_thread_environment(threads: int) -> None:
    """Set the BLAS/OpenMP thread variables (inherited by processes started afterwards)."""
    for name in THREAD_VARIABLES:
        os.environ[name] = str(threads)


def configure_threads(threads: int) -> None:
    """Use ``threads`` torch threads in this process (call before anything imports torch)."""
    set_thread_environment(threads)
    import torch

    torch.set_num_threads(threads)
    with contextlib.suppress(RuntimeError):  # already set, or parallel work has started
        torch.set_num_interop_threads(1)


def _stop_then_interrupt(signum: int, frame: Any) -> None:
    """First SIGTERM: checkpoint and stop at the next step; a second one: stop at once."""
    from maxbench.suite.health import request_stop, stop_requested

    if stop_requested():
        raise KeyboardInterrupt
    request_stop()


def cell_process_main(
    cell_data: dict[str, Any],
    out: str,
    threads: int,
    queue: Any,
    retry_failed: bool = False,
    gpu: str | None = None,
) -> None:
    """Run one cell in this (spawned) process, reporting progress on ``queue``.

    ``gpu``: the one GPU this cell may see (its ``CUDA_VISIBLE_DEVICES`` id), or None.
    """
    # Ctrl-C reaches the whole process group; the parent relays it once, as SIGTERM.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _stop_then_interrupt)
    if gpu is not None:  # before torch is imported: ``cuda`` is then that GPU
        os.environ["CUDA_VISIBLE_DEVICES"] = gpu
    configure_threads(threads)
    from maxbench.results.lock import CellBusyError
    from maxbench.suite.cell_runner import run_cell
    from maxbench.suite.cells import Cell

    cell = Cell.from_dict(cell_data)

    def report(timestep: int) -> None:
        queue.put((cell.key, timestep))

    try:
        run_cell(cell, Path(out), report=report, retry_failed=retry_failed)
    except CellBusyError:
        sys.exit(EXIT_BUSY)
    except Exception as err:  # noqa: BLE001  (run_cell records its own failures; a last resort)
        print(f"maxbench: {cell.key}: {type(err).__name__}: {err}", file=sys.stderr)
        sys.exit(EXIT_UNEXPECTED)
