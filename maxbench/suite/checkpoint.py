"""Checkpoints for resuming a cell: model and optimizers, replay buffer, RNG state, timestep.

Layout: ``checkpoints/step_<t>/`` holds ``model.zip`` (SB3's ``save``: parameters and optimizer
states), ``replay_buffer.pkl`` (off-policy algorithms), ``rng.pt`` (torch, numpy and Python RNG
states) and ``state.json`` (timestep, accumulated timings). A checkpoint folder is written under a
temporary name and renamed when complete; ``checkpoints/latest.json`` then names it, with a
SHA-256 of every file so that a damaged checkpoint is detected. The previous checkpoint is kept
until a newer one is complete.
"""

from __future__ import annotations

import hashlib
import random
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from maxbench.results.atomic import read_json, write_json_atomic
from maxbench.results.layout import CHECKPOINTS

LATEST = "latest.json"
KEEP = 2


@dataclass
class LoadedCheckpoint:
    """A checkpoint found on disk and verified."""

    folder: Path
    state: dict[str, Any]

    @property
    def model_path(self) -> Path:
        return self.folder / "model.zip"

    @property
    def replay_buffer_path(self) -> Path | None:
        path = self.folder / "replay_buffer.pkl"
        return path if path.exists() else None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def rng_state() -> dict[str, Any]:
    """The global RNG states that SB3 algorithms draw from."""
    return {
        "torch": torch.get_rng_state(),
        "numpy": np.random.get_state(),
        "python": random.getstate(),
    }


def restore_rng_state(state: dict[str, Any]) -> None:
    """Inverse of :func:`rng_state`."""
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])


def save_checkpoint(cell_folder: Path, model: Any, state: dict[str, Any]) -> Path:
    """Write a complete checkpoint for ``model`` at ``state["timestep"]``; return its folder."""
    root = Path(cell_folder) / CHECKPOINTS
    root.mkdir(parents=True, exist_ok=True)
    name = f"step_{int(state['timestep']):012d}"
    staging = root / f".{name}.tmp"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    model.save(staging / "model.zip")
    if hasattr(model, "replay_buffer") and model.replay_buffer is not None:
        model.save_replay_buffer(staging / "replay_buffer.pkl")
    torch.save(rng_state(), staging / "rng.pt")
    write_json_atomic(staging / "state.json", state)
    files = {path.name: _sha256(path) for path in sorted(staging.iterdir())}
    final = root / name
    shutil.rmtree(final, ignore_errors=True)
    staging.rename(final)
    history = _read_latest(root).get("history", [])
    history = [entry for entry in history if entry["folder"] != name][-(KEEP - 1) :]
    history.append({"folder": name, "timestep": int(state["timestep"]), "files": files})
    write_json_atomic(root / LATEST, {"history": history})
    keep = {entry["folder"] for entry in history}
    for old in root.glob("step_*"):
        if old.name not in keep:
            shutil.rmtree(old, ignore_errors=True)
    return final


def _read_latest(root: Path) -> dict[str, Any]:
    try:
        return read_json(root / LATEST)
    except (OSError, ValueError):
        return {}


def find_checkpoint(cell_folder: Path, log: Any = None) -> LoadedCheckpoint | None:
    """The newest checkpoint whose files are all present and intact, or None.

    A damaged checkpoint (missing file, wrong checksum) is skipped with a message to ``log``.
    """
    root = Path(cell_folder) / CHECKPOINTS
    for entry in reversed(_read_latest(root).get("history", [])):
        folder = root / entry["folder"]
        damaged = [
            name
            for name, digest in entry["files"].items()
            if not (folder / name).exists() or _sha256(folder / name) != digest
        ]
        if damaged:
            if log is not None:
                log(f"checkpoint {entry['folder']} is damaged ({', '.join(damaged)}); skipping it")
            continue
        return LoadedCheckpoint(folder=folder, state=read_json(folder / "state.json"))
    return None


def remove_checkpoints(cell_folder: Path) -> None:
    """Delete every checkpoint of a finished cell (the final model is kept separately)."""
    shutil.rmtree(Path(cell_folder) / CHECKPOINTS, ignore_errors=True)
