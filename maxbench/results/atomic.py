"""Durable atomic file writes: a temporary sibling, fsync, rename, fsync of the folder.

A reader (or a resumed run) therefore sees either the old file or the new one, never half a file,
whatever moment the process is killed at (DESIGN.md, "Everything written is written atomically").
The rename itself is made durable by an fsync of the folder that holds it: without it, a power
loss after the rename can bring back the old file, or no file at all, although the new one had
been written (issue 16, "Durability"). A failed write leaves no temporary file behind.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

_UMASK = os.umask(0)
os.umask(_UMASK)

# fsync of a folder is refused by some filesystems (a few FUSE and network ones) although the
# rename is as durable there as they make anything; that is no reason to fail a run.
_DIRECTORY_FSYNC_UNSUPPORTED = {errno.EINVAL, errno.EBADF, errno.ENOTSUP, errno.EOPNOTSUPP}
TEMP_SUFFIX = ".tmp"


def fsync_directory(path: str | os.PathLike[str]) -> None:
    """Make the entries of folder ``path`` (renames, new files) durable.

    Filesystems that cannot fsync a folder (EINVAL, EBADF, ENOTSUP) are tolerated; any other
    error (EIO, ENOSPC) is raised, since then the data may not be on disk.
    """
    flags = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0)
    try:
        fd = os.open(path, flags)
    except OSError as err:
        if err.errno in _DIRECTORY_FSYNC_UNSUPPORTED:
            return
        raise
    try:
        os.fsync(fd)
    except OSError as err:
        if err.errno not in _DIRECTORY_FSYNC_UNSUPPORTED:
            raise
    finally:
        os.close(fd)


def make_dirs_durably(path: str | os.PathLike[str]) -> None:
    """``mkdir -p path``, fsyncing the parent of every folder it creates.

    A folder that exists only in the page cache disappears with everything under it after a
    power loss, however carefully the files in it were fsynced.
    """
    folder = Path(path)
    missing: list[Path] = []
    while not folder.is_dir():
        missing.append(folder)
        if folder.parent == folder:
            break
        folder = folder.parent
    for created in reversed(missing):
        with contextlib.suppress(FileExistsError):
            created.mkdir()
        fsync_directory(created.parent)


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike[str], mode: str = "w") -> Iterator[IO[Any]]:
    """Open a temporary sibling of ``path`` for writing; make it ``path`` durably on success.

    On success the file is flushed and fsynced, renamed over ``path``, and the folder fsynced.
    On any exception (a full disk included) the temporary file is removed and ``path`` is left
    untouched. ``mode`` is ``"w"`` (text) or ``"wb"`` (binary).
    """
    target = Path(path)
    make_dirs_durably(target.parent)
    fd, tmp_name = tempfile.mkstemp(
        prefix=f".{target.name}.", suffix=TEMP_SUFFIX, dir=target.parent
    )
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp makes 0600 files; give the usual permissions
        handle = os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8"}))
    except BaseException:
        os.close(fd)
        os.unlink(tmp_name)
        raise
    try:
        with handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise
    fsync_directory(target.parent)


def is_temporary_name(name: str) -> bool:
    """Whether ``name`` is one of the temporary names :func:`atomic_open` writes under."""
    return name.startswith(".") and name.endswith(TEMP_SUFFIX)


def write_text_atomic(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` to ``path`` atomically and durably."""
    with atomic_open(path, "w") as handle:
        handle.write(text)


def write_json_atomic(path: str | os.PathLike[str], data: Any) -> None:
    """Write ``data`` as indented JSON to ``path`` atomically and durably."""
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")


def read_json(path: str | os.PathLike[str]) -> Any:
    """Read a JSON file."""
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)
