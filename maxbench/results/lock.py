"""A per-cell lock so that no cell is ever trained by two processes at once.

``fcntl.flock`` locks are released by the kernel when their process dies, even by ``kill -9``,
so a stale lock never blocks a resumed suite.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from maxbench.results.layout import LOCK_FILE


class CellBusyError(RuntimeError):
    """Another process holds the cell's lock."""


@contextlib.contextmanager
def cell_lock(folder: Path) -> Iterator[None]:
    """Hold the cell's lock for the duration of the block; raise CellBusyError if it is taken."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise CellBusyError(f"{folder} is being trained by another process") from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        yield
    finally:
        os.close(fd)


def is_locked(folder: Path) -> bool:
    """Whether another process holds the cell's lock right now."""
    path = Path(folder) / LOCK_FILE
    if not path.exists():
        return False
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def lock_holder(folder: Path) -> int | None:
    """The pid written by the process holding the cell's lock (None when unknown)."""
    try:
        return int((Path(folder) / LOCK_FILE).read_text().strip())
    except (OSError, ValueError):
        return None
