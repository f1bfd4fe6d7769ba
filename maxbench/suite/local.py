"""The local executor: run cells on a pool of spawned worker processes.

Each cell runs in a fresh process (spawned, so the thread count is set before torch loads), at
most ``workers`` at a time. A process that dies without recording an outcome (segfault, OOM
kill) is marked failed in its cell; the other cells go on. Ctrl-C or SIGTERM asks every worker to
stop: each records ``interrupted`` and the next ``maxbench run`` resumes from its checkpoint.
"""

from __future__ import annotations

import multiprocessing
import os
import queue as queue_module
import signal
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from maxbench.results.atomic import write_json_atomic
from maxbench.results.layout import (
    DAMAGED,
    FAILED,
    INTERRUPTED,
    PENDING,
    RUN_JSON,
    RUNNING,
    read_cell,
)
from maxbench.suite.cells import Cell
from maxbench.suite.gpus import SPREAD_DEVICES, GpuSlots, visible_gpu_ids
from maxbench.suite.plan import RETRY, PlannedCell
from maxbench.suite.worker import EXIT_BUSY, cell_process_main, set_thread_environment

BUSY = "busy"


class ProgressSink(Protocol):
    """What the executor tells a display."""

    def cell_started(self, planned: PlannedCell) -> None: ...

    def cell_progress(self, key: str, timestep: int) -> None: ...

    def cell_ended(self, planned: PlannedCell, status: str, run: dict[str, Any] | None) -> None: ...


@dataclass
class _Running:
    planned: PlannedCell
    process: Any
    gpu: int | None = None  # its index in the run's GpuSlots, when it was given a GPU


def record_outcome(
    planned: PlannedCell, out: Path, exitcode: int | None
) -> tuple[str, dict | None]:
    """The cell's final status, from its run.json; a process that died is recorded here.

    A worker that ended without a final status (killed, or unable to write it: a full disk) is
    recorded ``interrupted`` (killed by SIGINT/SIGTERM) or ``failed``. The message prefers the
    ``error`` that the cell itself recorded, and adds the system's error when even this record
    cannot be written. A run.json that cannot be read is left untouched (status ``damaged``).
    Never raises.
    """
    folder = planned.cell.folder(out)
    if exitcode == EXIT_BUSY:
        return BUSY, None
    try:
        files = read_cell(folder)
    except OSError as err:  # the folder itself cannot be read
        return FAILED, {"error": f"cannot read the cell's results: {err.strerror or err}"}
    if files.run is None and (files.damage or "").startswith(RUN_JSON):  # not ours to overwrite
        return DAMAGED, {"error": f"damaged: {files.damage}"}
    run = dict(files.run) if files.run is not None else None
    status = run.get("status") if run else None
    if status in (None, PENDING, RUNNING):
        run = run or {"spec": planned.cell.to_dict()}
        if exitcode is not None and exitcode < 0 and -exitcode in (signal.SIGINT, signal.SIGTERM):
            run.update(status=INTERRUPTED)
        else:
            recorded = run.get("error")
            run.update(
                status=FAILED,
                error=str(recorded)
                if recorded
                else f"the worker recorded no outcome (exit code {exitcode})",
            )
        status = run["status"]
        try:
            write_json_atomic(folder / RUN_JSON, run)
        except (OSError, TypeError, ValueError) as err:
            reason = err.strerror if isinstance(err, OSError) and err.strerror else err
            errno = f"[Errno {err.errno}] " if isinstance(err, OSError) and err.errno else ""
            run["error"] = f"{run.get('error', status)}; cannot record it: {errno}{reason}"
    return status, run


def run_local(
    planned: list[PlannedCell],
    out: Path,
    workers: int,
    threads: int = 1,
    sink: ProgressSink | None = None,
    cells_per_gpu: int | None = None,
) -> dict[str, str]:
    """Run the runnable cells of ``planned``; return ``{cell key: final status}``.

    On a machine with GPUs, each cell on ``auto`` or ``cuda`` is given the GPU with the fewest
    of the run's cells (:mod:`maxbench.suite.gpus`), at most ``cells_per_gpu`` at once.
    Raises KeyboardInterrupt after the workers have stopped when interrupted.
    """
    todo = deque(p for p in planned if p.runnable)
    spread = any(p.cell.device in SPREAD_DEVICES for p in todo)
    slots = GpuSlots(visible_gpu_ids() if spread else [], cells_per_gpu)
    context = multiprocessing.get_context("spawn")
    reports = context.Queue()
    running: dict[str, _Running] = {}
    outcomes: dict[str, str] = {}
    set_thread_environment(threads)  # inherited by the spawned workers
    previous_term = signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    try:
        while todo or running:
            while todo and len(running) < max(1, workers):
                gpu = None
                if slots.wants_gpu(todo[0].cell.device):
                    gpu = slots.take()
                    if gpu is None:  # every GPU has its cells_per_gpu: wait for one to end
                        break
                item = todo.popleft()
                process = context.Process(
                    target=cell_process_main,
                    args=(
                        item.cell.to_dict(),
                        str(out),
                        threads,
                        reports,
                        item.action == RETRY,
                        None if gpu is None else slots.ids[gpu],
                    ),
                    name=f"maxbench:{item.cell.key}",
                )
                process.start()
                running[item.cell.key] = _Running(item, process, gpu)
                if sink:
                    sink.cell_started(item)
            _drain(reports, sink, timeout=0.25)
            for key, entry in list(running.items()):
                if entry.process.exitcode is None:
                    continue
                entry.process.join()
                _drain(reports, sink, timeout=0)
                status, run = record_outcome(entry.planned, out, entry.process.exitcode)
                outcomes[key] = status
                del running[key]
                if entry.gpu is not None:
                    slots.give_back(entry.gpu)
                if sink:
                    sink.cell_ended(entry.planned, status, run)
    except KeyboardInterrupt:
        _stop_workers(running, out, outcomes, sink)
        raise
    finally:
        signal.signal(signal.SIGTERM, previous_term)
    return outcomes


def _drain(reports: Any, sink: ProgressSink | None, timeout: float) -> None:
    try:
        key, timestep = reports.get(timeout=timeout) if timeout else reports.get_nowait()
    except queue_module.Empty:
        return
    while True:
        if sink:
            sink.cell_progress(key, timestep)
        try:
            key, timestep = reports.get_nowait()
        except queue_module.Empty:
            return


def _stop_workers(
    running: dict[str, _Running], out: Path, outcomes: dict[str, str], sink: ProgressSink | None
) -> None:
    """Ask every worker to stop (one SIGTERM: checkpoint, then exit), wait, end stragglers."""
    for entry in running.values():
        if entry.process.exitcode is None:
            os.kill(entry.process.pid, signal.SIGTERM)
    deadline = time.monotonic() + 60
    for entry in running.values():
        entry.process.join(timeout=max(0.1, deadline - time.monotonic()))
        if entry.process.exitcode is None:
            entry.process.terminate()  # a second SIGTERM: stop without a checkpoint
            entry.process.join(timeout=5)
        if entry.process.exitcode is None:
            entry.process.kill()
            entry.process.join()
        status, run = record_outcome(entry.planned, out, entry.process.exitcode)
        outcomes[entry.planned.cell.key] = status
        if sink:
            sink.cell_ended(entry.planned, status, run)


def _raise_keyboard_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def cells_by_key(cells: list[Cell]) -> dict[str, Cell]:
    """Index cells by their key."""
    return {cell.key: cell for cell in cells}
