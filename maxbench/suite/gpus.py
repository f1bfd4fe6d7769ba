"""Which GPU each cell runs on when the local backend has several (issue 14).

A cell whose device is ``cuda`` (or ``auto``, which is CUDA wherever torch sees a GPU) is given
one visible GPU when it starts: the one with the fewest of this run's cells on it, the lowest
index first among equals. ``cells_per_gpu`` caps how many cells share one GPU at a time (None:
no cap; the number of workers is the only bound). The cell's process then sees only that GPU
(``CUDA_VISIBLE_DEVICES`` set before torch is imported), so ``cuda`` inside it is that GPU. A
cell that names its GPU (``cuda:N``) or the CPU is left alone.
"""

from __future__ import annotations

import os

__all__ = ["GpuSlots", "visible_gpu_ids"]

#: Devices that a free GPU is given to.
SPREAD_DEVICES = ("auto", "cuda")


def visible_gpu_ids() -> list[str]:
    """The ids (as ``CUDA_VISIBLE_DEVICES`` names them) of the GPUs this process can use."""
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is None:
        return [str(index) for index in range(count)]
    names = [name.strip() for name in listed.split(",") if name.strip()]
    return names[:count]


class GpuSlots:
    """The GPUs of a run and how many of its cells are on each.

    Args:
        ids: the visible GPUs' ids (:func:`visible_gpu_ids`); empty on a machine without one.
        cells_per_gpu: at most this many cells on one GPU at once (None: no cap).
    """

    def __init__(self, ids: list[str], cells_per_gpu: int | None = None) -> None:
        if cells_per_gpu is not None and cells_per_gpu < 1:
            raise ValueError(f"cells_per_gpu must be at least 1 (got {cells_per_gpu})")
        self.ids = list(ids)
        self.cells_per_gpu = cells_per_gpu
        self.load = [0] * len(self.ids)

    def wants_gpu(self, device: str) -> bool:
        """Whether a cell on ``device`` is to be given one of the GPUs."""
        return bool(self.ids) and device in SPREAD_DEVICES

    def take(self) -> int | None:
        """The index of the GPU for the next cell (its count goes up), or None when all are
        at ``cells_per_gpu``."""
        if not self.ids:
            return None
        index = min(range(len(self.ids)), key=lambda i: (self.load[i], i))
        if self.cells_per_gpu is not None and self.load[index] >= self.cells_per_gpu:
            return None
        self.load[index] += 1
        return index

    def give_back(self, index: int) -> None:
        """A cell on GPU ``index`` ended."""
        if self.load[index] <= 0:
            raise ValueError(f"GPU {self.ids[index]} has no cell to give back")
        self.load[index] -= 1
