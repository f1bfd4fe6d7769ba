"""The Ray executor: each cell is a Ray task with ``num_cpus`` equal to its threads.

The cell folders are the local backend's (the same :func:`run_cell` writes them), so a suite
started on one backend resumes on the other. On a real cluster the results folder must be
shared storage that every node mounts at the same path. Without an address, a local Ray
instance is started with ``workers × threads`` CPUs and shut down at the end.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Any

from maxbench.errors import UserInputError
from maxbench.suite.local import BUSY, ProgressSink, record_outcome
from maxbench.suite.plan import RETRY, PlannedCell
from maxbench.suite.worker import THREAD_VARIABLES

_CANCEL_GRACE_S = 60.0


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise UserInputError(
            "the Ray backend needs the 'ray' extra: pip install -c constraints.txt -e \".[ray]\""
        ) from None
    return ray


def ray_cell(
    cell_data: dict[str, Any], out: str, threads: int, queue: Any, retry_failed: bool
) -> str:
    """Body of a cell's Ray task: fix the thread count, run the cell, return its status."""
    import torch

    from maxbench.results.lock import CellBusyError
    from maxbench.suite.cell_runner import run_cell
    from maxbench.suite.cells import Cell

    torch.set_num_threads(threads)
    cell = Cell.from_dict(cell_data)

    def report(timestep: int) -> None:
        with contextlib.suppress(Exception):  # progress is best effort
            queue.put_nowait((cell.key, timestep))

    try:
        return run_cell(cell, Path(out), report=report, retry_failed=retry_failed)
    except CellBusyError:
        return BUSY


def run_ray(
    planned: list[PlannedCell],
    out: Path,
    workers: int,
    threads: int = 1,
    address: str | None = None,
    sink: ProgressSink | None = None,
    cells_per_gpu: int | None = None,
) -> dict[str, str]:
    """Run the runnable cells of ``planned`` as Ray tasks; return ``{cell key: status}``.

    A cell on ``cuda`` (or ``cuda:N``) asks Ray for ``1 / cells_per_gpu`` of a GPU (a whole one
    when None): Ray picks the GPU and shows the task only that one, as its ``cuda:0``.
    """
    ray = _import_ray()
    from ray.util.queue import Empty, Queue

    out = Path(out).resolve()
    started_here = not ray.is_initialized()
    if started_here:
        options: dict[str, Any] = {
            "runtime_env": {"env_vars": {name: str(threads) for name in THREAD_VARIABLES}},
            "include_dashboard": False,
            "log_to_driver": False,
            "configure_logging": False,
        }
        if address is None:
            options["num_cpus"] = max(1, workers) * threads
        try:
            ray.init(address=address, **options)
        except (ConnectionError, RuntimeError, ValueError) as err:
            first_line = (str(err).strip().splitlines() or [type(err).__name__])[0]
            raise UserInputError(
                f"cannot start or reach Ray at {address or 'local'!r}: {first_line}"
            ) from None
    reports = Queue(actor_options={"num_cpus": 0})
    task = ray.remote(num_cpus=threads, max_retries=0)(ray_cell)
    pending: dict[Any, PlannedCell] = {}
    outcomes: dict[str, str] = {}
    try:
        for item in planned:
            if item.runnable:
                gpus = gpu_share(item.cell.device, cells_per_gpu)
                ref = task.options(num_gpus=gpus).remote(
                    item.cell.to_dict(), str(out), threads, reports, item.action == RETRY
                )
                pending[ref] = item
                if sink:
                    sink.cell_started(item)
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=0.25)
            _drain(reports, Empty, sink)
            for ref in ready:
                _finish(ray, ref, pending.pop(ref), out, outcomes, sink)
    except KeyboardInterrupt:
        for ref in pending:
            ray.cancel(ref)  # raises KeyboardInterrupt in the task: the cell marks itself
        deadline = time.monotonic() + _CANCEL_GRACE_S
        while pending and time.monotonic() < deadline:
            ready, _ = ray.wait(list(pending), num_returns=len(pending), timeout=1.0)
            for ref in ready:
                _finish(ray, ref, pending.pop(ref), out, outcomes, sink)
        raise
    finally:
        if started_here:
            ray.shutdown()
    return outcomes


def gpu_share(device: str, cells_per_gpu: int | None) -> float:
    """The share of a GPU a cell on ``device`` asks Ray for (0 for the CPU and ``auto``)."""
    if not device.startswith("cuda"):
        return 0.0
    return 1.0 / (cells_per_gpu or 1)


def _finish(
    ray: Any,
    ref: Any,
    item: PlannedCell,
    out: Path,
    outcomes: dict[str, str],
    sink: ProgressSink | None,
) -> None:
    try:
        returned = ray.get(ref)
    except (ray.exceptions.RayError, KeyboardInterrupt):
        returned = None  # the task died or was cancelled: the cell's run.json says the rest
    if returned == BUSY:  # another process holds the cell: its files are not ours to touch
        status, run = BUSY, None
    else:
        status, run = record_outcome(item, out, exitcode=None if returned is None else 0)
    outcomes[item.cell.key] = status
    if sink:
        sink.cell_ended(item, status, run)


def _drain(reports: Any, empty: type[Exception], sink: ProgressSink | None) -> None:
    while True:
        try:
            key, timestep = reports.get_nowait()
        except empty:
            return
        if sink:
            sink.cell_progress(key, timestep)
