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


def _interrupt_once(signum: int, frame: Any) -> None:
    """First SIGINT/SIGTERM: raise KeyboardInterrupt so the cell records it; ignore the rest."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise KeyboardInterrupt


def cell_process_main(cell_data: dict[str, Any], out: str, threads: int, queue: Any) -> None:
    """Run one cell in this (spawned) process, reporting progress on ``queue``."""
    signal.signal(signal.SIGINT, _interrupt_once)
    signal.signal(signal.SIGTERM, _interrupt_once)
    configure_threads(threads)
    from maxbench.results.lock import CellBusyError
    from maxbench.suite.cell_runner import run_cell
    from maxbench.suite.cells import Cell

    cell = Cell.from_dict(cell_data)

    def report(timestep: int) -> None:
        queue.put((cell.key, timestep))

    try:
        run_cell(cell, Path(out), threads=threads, report=report)
    except CellBusyError:
        sys.exit(EXIT_BUSY)
