"""Checkpoints for resuming a cell: model and optimizers, replay buffer, RNG state, timestep.

Layout: ``checkpoints/step_<t>/`` holds ``model.zip`` (SB3's ``save``: parameters and optimizer
states), ``replay_buffer.pkl`` (off-policy algorithms), ``rng.pt`` (torch, numpy and Python RNG
states) and ``state.json`` (timestep, accumulated timings). A checkpoint folder is written under a
temporary name, every file fsynced, and renamed when complete (then its parent fsynced);
``checkpoints/latest.json`` then names it, with a SHA-256 of every file so that a damaged
checkpoint is detected. The previous checkpoint is kept until a newer one is complete. A failed
write (a full disk) removes the temporary folder and leaves the previous checkpoints intact.

``rng.pt`` holds only tensors, numbers and tuples, and is read with ``weights_only=True``: a
checkpoint cannot make a resumed run execute code through it (issue 16, "Code in data"); a file
that does not load that way marks its checkpoint damaged. (``model.zip`` and
``replay_buffer.pkl`` are SB3's formats, which are pickles: README, "Trust".)
"""

from __future__ import annotations

import hashlib
import random
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch

from maxbench.results.atomic import (
    atomic_open,
    fsync_directory,
    is_temporary_name,
    make_dirs_durably,
    read_json,
    write_json_atomic,
)
from maxbench.results.layout import CHECKPOINTS

LATEST = "latest.json"
KEEP = 2
MODEL_FILE = "model.zip"
BUFFER_FILE = "replay_buffer.pkl"
RNG_FILE = "rng.pt"
STATE_FILE = "state.json"
REQUIRED_FILES = (MODEL_FILE, RNG_FILE, STATE_FILE)
_FOLDER_NAME = re.compile(r"step_\d{1,20}")
_FILE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}")
_STAGING = re.compile(r"\.step_\d+\.tmp")


class CheckpointDamagedError(ValueError):
    """A checkpoint's file cannot be read as what maxbench wrote there."""


@dataclass
class LoadedCheckpoint:
    """A checkpoint found on disk and verified (checksums, state, RNG file)."""

    folder: Path
    state: dict[str, Any]
    rng: dict[str, Any]

    @property
    def timestep(self) -> int:
        return int(self.state["timestep"])

    @property
    def model_path(self) -> Path:
        return self.folder / MODEL_FILE

    @property
    def replay_buffer_path(self) -> Path | None:
        path = self.folder / BUFFER_FILE
        return path if path.exists() else None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# -- RNG states, in a form torch.load(weights_only=True) accepts ---------------------------------
def rng_state() -> dict[str, Any]:
    """The global RNG states that SB3 algorithms draw from, as tensors, numbers and tuples."""
    kind, keys, pos, has_gauss, cached_gaussian = np.random.get_state(legacy=True)
    return {
        "torch": torch.get_rng_state(),
        "numpy": (
            str(kind),
            torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            int(pos),
            int(has_gauss),
            float(cached_gaussian),
        ),
        "python": _python_state_to_data(random.getstate()),
    }


def _python_state_to_data(state: tuple) -> tuple:
    version, internal, gauss_next = state
    return (int(version), tuple(int(x) for x in internal), gauss_next)


def _decode(state: Any) -> tuple[torch.Tensor, tuple, tuple]:
    """Check the structure written by :func:`rng_state`; raise CheckpointDamagedError if not."""
    try:
        torch_state = state["torch"]
        kind, keys, pos, has_gauss, cached = state["numpy"]
        version, internal, gauss_next = state["python"]
        ok = (
            isinstance(torch_state, torch.Tensor)
            and torch_state.dtype == torch.uint8
            and torch_state.shape == torch.get_rng_state().shape
            and kind == "MT19937"
            and isinstance(keys, (torch.Tensor, np.ndarray))
            and tuple(keys.shape) == (624,)
            and bool(((keys >= 0) & (keys < 2**32)).all())
            and all(isinstance(v, int) for v in (pos, has_gauss, version))
            and isinstance(cached, float)
            and isinstance(internal, (tuple, list))
            and all(isinstance(x, int) for x in internal)
            and (gauss_next is None or isinstance(gauss_next, float))
        )
    except (KeyError, TypeError, ValueError, AttributeError):
        ok = False
    if not ok:
        raise CheckpointDamagedError(f"{RNG_FILE} does not hold the RNG states maxbench writes")
    keys = keys.numpy() if isinstance(keys, torch.Tensor) else keys  # ndarray: a legacy file
    numpy_state = ("MT19937", keys.astype(np.uint32), pos, has_gauss, cached)
    return torch_state, numpy_state, (version, tuple(internal), gauss_next)


def restore_rng_state(state: dict[str, Any]) -> None:
    """Inverse of :func:`rng_state` (raises CheckpointDamagedError on a malformed state)."""
    torch_state, numpy_state, python_state = _decode(state)
    try:
        torch.set_rng_state(torch_state)
        np.random.set_state(numpy_state)
        random.setstate(python_state)
    except (TypeError, ValueError, RuntimeError) as err:
        raise CheckpointDamagedError(f"{RNG_FILE}: {err}") from None


def _legacy_numpy_globals() -> list[Any]:
    """What a numpy array needs under ``weights_only=True``: its reconstructor, class and dtype.

    Checkpoints of maxbench before issue 16 stored numpy's RNG keys as an ndarray; torch's own
    guidance allowlists exactly these (no other callable can be reached), so such a checkpoint
    resumes instead of being discarded.
    """
    try:
        from numpy._core.multiarray import _reconstruct
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import _reconstruct
    return [_reconstruct, np.ndarray, np.dtype, type(np.dtype(np.uint32))]


_LEGACY_NUMPY_GLOBALS = _legacy_numpy_globals()


def load_rng_file(path: Path) -> dict[str, Any]:
    """Read an RNG file with ``weights_only=True`` and check it; never runs code from it."""
    try:
        with torch.serialization.safe_globals(_LEGACY_NUMPY_GLOBALS):
            state = torch.load(path, weights_only=True, map_location="cpu")
    except Exception as err:  # noqa: BLE001  (any failure to load safely is damage)
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointDamagedError(f"{RNG_FILE} cannot be loaded safely ({reason})") from None
    _decode(state)
    return state


# -- writing -----------------------------------------------------------------------------------
def _write_file(path: Path, write: Callable[[IO[bytes]], None]) -> None:
    """Write a binary file with ``write(handle)``: fsynced, complete or absent."""
    with atomic_open(path, "wb") as handle:
        write(handle)


def save_checkpoint(cell_folder: Path, model: Any, state: dict[str, Any]) -> Path:
    """Write a complete, durable checkpoint for ``model`` at ``state["timestep"]``.

    Returns its folder. On any error the temporary folder is removed, the checkpoints already
    written are left as they were, and the error is raised.
    """
    root = Path(cell_folder) / CHECKPOINTS
    make_dirs_durably(root)
    name = f"step_{int(state['timestep']):012d}"
    staging = root / f".{name}.tmp"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        staging.mkdir()
        _write_file(staging / MODEL_FILE, model.save)
        if getattr(model, "replay_buffer", None) is not None:
            _write_file(staging / BUFFER_FILE, model.save_replay_buffer)
        _write_file(staging / RNG_FILE, lambda handle: torch.save(rng_state(), handle))
        write_json_atomic(staging / STATE_FILE, state)
        files = {path.name: _sha256(path) for path in sorted(staging.iterdir())}
        final = root / name
        shutil.rmtree(final, ignore_errors=True)
        staging.rename(final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    fsync_directory(root)
    fsync_directory(root.parent)
    history = [entry for entry in _history(root) if entry["folder"] != name][-(KEEP - 1) :]
    history.append({"folder": name, "timestep": int(state["timestep"]), "files": files})
    write_json_atomic(root / LATEST, {"history": history})
    keep = {entry["folder"] for entry in history}
    for old in root.glob("step_*"):
        if old.name not in keep:
            shutil.rmtree(old, ignore_errors=True)
    return final


# -- reading -----------------------------------------------------------------------------------
def _valid_entry(entry: Any) -> bool:
    """Whether a history entry of latest.json is well-formed and names only safe paths."""
    if not isinstance(entry, dict):
        return False
    folder, timestep, files = entry.get("folder"), entry.get("timestep"), entry.get("files")
    return (
        isinstance(folder, str)
        and _FOLDER_NAME.fullmatch(folder) is not None
        and isinstance(timestep, int)
        and not isinstance(timestep, bool)
        and timestep >= 0
        and isinstance(files, dict)
        and all(isinstance(k, str) and _FILE_NAME.fullmatch(k) for k in files)
        and all(isinstance(v, str) for v in files.values())
        and all(required in files for required in REQUIRED_FILES)
    )


def _history(root: Path, log: Callable[[str], Any] | None = None) -> list[dict[str, Any]]:
    """The well-formed entries of latest.json's history, oldest first (damage is logged)."""
    try:
        latest = read_json(root / LATEST)
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as err:
        if log is not None:
            log(f"{CHECKPOINTS}/{LATEST} cannot be read ({err}); ignoring the checkpoints")
        return []
    history = latest.get("history") if isinstance(latest, dict) else None
    if not isinstance(history, list):
        if log is not None:
            log(f"{CHECKPOINTS}/{LATEST} has no history list; ignoring the checkpoints")
        return []
    valid = [entry for entry in history if _valid_entry(entry)]
    if len(valid) != len(history) and log is not None:
        log(f"{CHECKPOINTS}/{LATEST}: {len(history) - len(valid)} malformed entries skipped")
    return valid


def checkpoint_timestep(cell_folder: Path) -> int:
    """The timestep of the newest checkpoint latest.json names (0 when none; never raises)."""
    history = _history(Path(cell_folder) / CHECKPOINTS)
    return int(history[-1]["timestep"]) if history else 0


def _verify(folder: Path, entry: dict[str, Any]) -> LoadedCheckpoint:
    """Check every file of a checkpoint; raise CheckpointDamagedError naming what is wrong."""
    damaged = [
        name
        for name, digest in entry["files"].items()
        if not (folder / name).is_file() or _sha256(folder / name) != digest
    ]
    if damaged:
        raise CheckpointDamagedError(", ".join(damaged))
    try:
        state = read_json(folder / STATE_FILE)
    except (OSError, ValueError) as err:
        raise CheckpointDamagedError(f"{STATE_FILE}: {err}") from None
    timestep = state.get("timestep") if isinstance(state, dict) else None
    if not isinstance(timestep, int) or isinstance(timestep, bool) or timestep < 0:
        raise CheckpointDamagedError(f"{STATE_FILE} has no valid timestep")
    return LoadedCheckpoint(folder=folder, state=state, rng=load_rng_file(folder / RNG_FILE))


def find_checkpoint(
    cell_folder: Path, log: Callable[[str], Any] | None = None
) -> LoadedCheckpoint | None:
    """The newest checkpoint whose files are all present and intact, or None.

    A damaged checkpoint (missing file, wrong checksum, an RNG file that does not load with
    ``weights_only=True``) is skipped with a message to ``log``.
    """
    root = Path(cell_folder) / CHECKPOINTS
    for entry in reversed(_history(root, log)):
        try:
            return _verify(root / entry["folder"], entry)
        except CheckpointDamagedError as err:
            if log is not None:
                log(f"checkpoint {entry['folder']} is damaged ({err}); skipping it")
    return None


# -- cleaning ----------------------------------------------------------------------------------
def remove_temporary(cell_folder: Path) -> list[str]:
    """Remove what an interrupted checkpoint write left in ``checkpoints/``; return the names.

    Only maxbench's own temporary names are touched: staging folders ``.step_<t>.tmp`` and the
    temporary files of atomic writes.
    """
    root = Path(cell_folder) / CHECKPOINTS
    if not root.is_dir():
        return []
    removed = []
    for path in root.iterdir():
        if _STAGING.fullmatch(path.name) and path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path.name)
        elif is_temporary_name(path.name) and path.is_file():
            path.unlink(missing_ok=True)
            removed.append(path.name)
    return removed


def remove_checkpoints(cell_folder: Path) -> None:
    """Delete every checkpoint of a finished cell (the final model is kept separately)."""
    shutil.rmtree(Path(cell_folder) / CHECKPOINTS, ignore_errors=True)
