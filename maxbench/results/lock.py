"""A per-cell lock so that no cell is ever trained by two processes at once.

The lock is an exclusive ``flock`` on the cell's ``.lock`` file. ``flock`` locks belong to the
open file description: the kernel releases them when their process dies, even by ``kill -9``,
so a stale lock never blocks a resumed suite; and a probe from the same process (``plan``, before
the workers start) sees a lock of another descriptor like any other process would. (POSIX
``fcntl``/``lockf`` locks would not do: they belong to the process and are dropped when *any*
descriptor of that process on the file is closed.)

On NFS the kernel emulates ``flock`` with ``fcntl`` byte-range locks (Linux 2.6.12 and later),
which need the file open for writing to take an exclusive lock: the lock file is therefore
always opened read-write. A filesystem that offers no locks at all (SSHFS, most FUSE mounts, SMB
without them) is refused with :class:`LockUnsupportedError`, never silently run without a lock
(README, "Shared storage").
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import time
from collections.abc import Iterator
from pathlib import Path

from maxbench.errors import UserInputError
from maxbench.results.layout import LOCK_FILE

# A probe (``is_locked``) holds a shared lock for an instant; a worker that asks for the
# exclusive lock at that very moment retries for this long before it calls the cell busy.
BUSY_RETRY_S = 1.0
BUSY_RETRY_SLEEP_S = 0.02
_WOULD_BLOCK = {errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES}
_PROBE_FILE = ".maxbench-lock-probe"
_CANNOT_WRITE = {errno.EACCES, errno.EPERM, errno.EROFS}


class CellBusyError(RuntimeError):
    """Another process holds the cell's lock."""


class LockUnsupportedError(UserInputError):
    """The results folder's filesystem does not give working file locks."""


def _unsupported(path: Path, err: OSError) -> LockUnsupportedError:
    return LockUnsupportedError(
        f"the results folder's filesystem does not support file locks "
        f"(flock on {path}: {err}): use a local disk, or NFSv4 / NFSv3 with lockd; "
        f"see README 'Shared storage'"
    )


def _try_flock(fd: int, operation: int, path: Path) -> bool:
    """``flock(fd, operation | LOCK_NB)``: True when taken, False when another holder blocks it.

    Any other failure (EBADF, ENOLCK, EOPNOTSUPP, ...) means locks do not work here.
    """
    try:
        fcntl.flock(fd, operation | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError as err:
        if err.errno in _WOULD_BLOCK:
            return False
        raise _unsupported(path, err) from None
    return True


@contextlib.contextmanager
def cell_lock(folder: Path) -> Iterator[None]:
    """Hold the cell's lock for the duration of the block.

    Raises CellBusyError when another process holds it (after retrying for ``BUSY_RETRY_S``,
    so that a momentary probe is not mistaken for a worker), LockUnsupportedError when the
    filesystem gives no locks.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + BUSY_RETRY_S
        while not _try_flock(fd, fcntl.LOCK_EX, path):
            if time.monotonic() >= deadline:
                raise CellBusyError(f"{folder} is being trained by another process")
            time.sleep(BUSY_RETRY_SLEEP_S)
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        yield
    finally:
        os.close(fd)


def is_locked(folder: Path) -> bool:
    """Whether another process (or another descriptor of this one) holds the cell's lock.

    The probe asks for a *shared* lock, so two probes (two ``maxbench run --dry-run``) never see
    each other as a worker; it conflicts only with the exclusive lock of :func:`cell_lock`. A
    missing lock file means unlocked. Raises LockUnsupportedError when locks do not work here,
    OSError when the lock file cannot be opened at all.
    """
    path = Path(folder) / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        return False
    except OSError as err:
        if err.errno not in _CANNOT_WRITE:
            raise
        # Not writable by us (or a read-only mount): a shared lock needs only read access on
        # local filesystems, and nobody can be training a cell on a read-only mount.
        fd = os.open(path, os.O_RDONLY)
    try:
        if not _try_flock(fd, fcntl.LOCK_SH, path):
            return True
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def check_lock_support(folder: Path) -> None:
    """Raise LockUnsupportedError unless ``folder``'s filesystem gives working ``flock`` locks.

    Called once before a suite writes anything, so that a results folder on a filesystem
    without locks is refused with one clear line instead of failing every cell. ``folder``
    must exist; a small probe file is created and removed in it.
    """
    path = Path(folder) / _PROBE_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        if _try_flock(fd, fcntl.LOCK_EX, path):
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(path)


def lock_holder(folder: Path) -> int | None:
    """The pid written by the process holding the cell's lock (None when unknown)."""
    try:
        return int((Path(folder) / LOCK_FILE).read_text().strip())
    except (OSError, ValueError):
        return None
