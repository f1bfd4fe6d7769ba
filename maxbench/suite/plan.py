"""Decide what to do with each cell of a suite, from what its folder already holds.

finished -> skip (run.json untouched); failed -> skip unless retrying; interrupted or a stale
``running`` (its process died) -> resume from the last checkpoint; no folder -> start; a cell
whose lock another live process holds -> busy (left to that process).

Two states are never run as they are (issue 16):

- **damaged**: a file of the cell cannot be read as what maxbench wrote (run.json truncated or
  not an object, an unknown status, a damaged evals.csv or checkpoints/latest.json). The cell is
  listed with the reason and stepped over; ``reset_damaged`` sets its folder aside
  (``seed_<n>.damaged-<UTC time>``, nothing deleted) and starts it again.
- **changed**: the spec stored in its run.json differs from the suite's cell (the suite was
  edited: a budget, a hyperparameter, anything that determines the results). Without a choice
  the run is refused (:func:`changed_refusal`); ``changed="rerun"`` sets the old folder aside
  (``seed_<n>.changed-<UTC time>``) and starts again; ``changed="keep"`` keeps the old results
  and never resumes them under the new settings.

Planning reads only; :func:`set_aside` is the one function here that writes (a rename).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from maxbench.results.layout import (
    CHECKPOINTS,
    DAMAGED,
    FAILED,
    FINISHED,
    CellFiles,
    read_cell,
)
from maxbench.results.lock import is_locked
from maxbench.suite.cells import Cell

START, RESUME, SKIP_FINISHED, SKIP_FAILED, RETRY, BUSY = (
    "start",
    "resume",
    "skip (finished)",
    "skip (failed; --retry-failed runs it)",
    "retry (failed)",
    "busy (another process is training it)",
)
RUNNABLE = (START, RESUME, RETRY)
CHANGED = "changed"
CHANGED_CHOICES = ("rerun", "keep")
_UNDECIDED = f"{CHANGED} ("  # the action of a changed cell without --rerun/--keep-changed
LATEST_JSON = "latest.json"
_MAX_VALUE_CHARS = 40


@dataclass(frozen=True)
class PlannedCell:
    """A cell and what this invocation will do with it.

    ``damage`` is the reason a file of the cell cannot be read (None when none is damaged);
    ``changes`` the settings whose stored value differs from the suite's ("budget 128 -> 200");
    ``set_aside`` the label ("damaged" or "changed") under which the cell's folder is moved aside
    before it starts again (None when it is not).
    """

    cell: Cell
    action: str
    status: str
    done_steps: int
    damage: str | None = None
    changes: tuple[str, ...] = ()
    set_aside: str | None = None

    @property
    def runnable(self) -> bool:
        return self.action in RUNNABLE or self.set_aside is not None

    @property
    def damaged(self) -> bool:
        return self.damage is not None

    @property
    def changed(self) -> bool:
        return bool(self.changes)


# -- tolerant reading -----------------------------------------------------------------------------
def checkpoint_step(folder: Path) -> tuple[int, str | None]:
    """The timestep of the cell's newest checkpoint (0 when none) and the damage, if any.

    ``checkpoints/latest.json`` must be an object whose ``history`` is a list of objects with an
    integer ``timestep`` and a ``folder`` name; anything else is damage, named in one line.
    """
    path = Path(folder) / CHECKPOINTS / LATEST_JSON
    where = f"{CHECKPOINTS}/{LATEST_JSON}"
    try:
        if not path.exists():
            return 0, None
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        return 0, f"{where} is not valid JSON (line {err.lineno}: {err.msg})"
    except UnicodeDecodeError:
        return 0, f"{where} is not UTF-8 text"
    except OSError as err:
        return 0, f"{where} cannot be read ({err.strerror or err})"
    except ValueError as err:  # e.g. a number too long to parse
        return 0, f"{where} cannot be read ({err})"
    if not isinstance(data, dict):
        return 0, f"{where} is not a JSON object (a {_json_type(data)})"
    history = data.get("history", [])
    if not isinstance(history, list):
        return 0, f"{where}: 'history' is not a list (a {_json_type(history)})"
    steps = []
    for number, entry in enumerate(history):
        if not isinstance(entry, dict):
            return 0, f"{where}: history entry {number} is not an object"
        step = entry.get("timestep")
        if isinstance(step, bool) or not isinstance(step, int) or step < 0:
            return 0, f"{where}: history entry {number} has no valid timestep"
        if not isinstance(entry.get("folder"), str):
            return 0, f"{where}: history entry {number} has no folder name"
        steps.append(step)
    return (steps[-1] if steps else 0), None


def _json_type(value: Any) -> str:
    names = {list: "list", dict: "object", str: "string", bool: "boolean", type(None): "null"}
    return names.get(type(value), "number")


def read_cell_folder(folder: Path) -> CellFiles:
    """:func:`read_cell`, plus two damages it does not see: a damaged checkpoints/latest.json
    of an unfinished cell, and a cell "folder" that is a file or lies below one.

    Never raises: a folder that cannot be read is damage too.
    """
    folder = Path(folder)
    try:
        files = _read_folder(folder)
    except OSError as err:  # e.g. a folder that cannot be listed
        return CellFiles(folder, None, [], f"{folder.name} cannot be read ({err.strerror or err})")
    if files.damage is None and files.status != FINISHED:  # a finished cell needs no checkpoint
        damage = checkpoint_step(folder)[1]
        if damage is not None:
            return CellFiles(folder, files.run, files.evals, damage)
    return files


def _read_folder(folder: Path) -> CellFiles:
    if folder.exists() and not folder.is_dir():
        return CellFiles(folder, None, [], f"{folder.name} is a file, not a folder")
    for parent in folder.parents:
        if parent.exists():
            if not parent.is_dir():
                return CellFiles(folder, None, [], f"{parent} is a file, not a folder")
            break
    return read_cell(folder)


# -- changed settings -----------------------------------------------------------------------------
def _normalised(value: Any) -> Any:
    """``value`` as JSON would store it (tuples become lists, keys strings...)."""
    return json.loads(json.dumps(value, sort_keys=True, default=str))


_MISSING = object()
_FIELD_DEFAULTS = {
    f.name: (f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default)
    for f in dataclasses.fields(Cell)
    if f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
}


def _show(value: Any) -> str:
    if value is _MISSING:
        return "unset"
    text = json.dumps(value, sort_keys=True, ensure_ascii=True)
    return text if len(text) <= _MAX_VALUE_CHARS else text[: _MAX_VALUE_CHARS - 3] + "..."


def _differences(old: Any, new: Any, path: str) -> list[str]:
    """One "path old -> new" per leaf that differs (mappings are compared key by key)."""
    if isinstance(old, dict) and isinstance(new, dict):
        found = []
        for key in sorted(set(old) | set(new), key=str):
            found += _differences(
                old.get(key, _MISSING), new.get(key, _MISSING), f"{path}.{key}" if path else key
            )
        return found
    if old is _MISSING and new is _MISSING:
        return []
    same_kind = isinstance(old, bool) == isinstance(new, bool)  # 200 == 200.0, but True != 1
    if old is not _MISSING and new is not _MISSING and old == new and same_kind:
        return []
    return [f"{path} {_show(old)} -> {_show(new)}"]


def spec_changes(stored: dict[str, Any] | None, cell: Cell) -> tuple[str, ...]:
    """The settings in which a cell's stored spec differs from ``cell`` ("budget 128 -> 200").

    Nothing that determines the results is ignored: every field of the spec is compared after
    JSON normalisation. A field that the stored spec lacks (written by an older maxbench) is no
    difference when the suite's value is that field's default. A cell without a stored spec (it
    failed before it had one) has no changes.
    """
    if stored is None:
        return ()
    old = _normalised(stored)
    new = _normalised(cell.to_dict())
    for name, default in _FIELD_DEFAULTS.items():
        if name not in old and new.get(name) == _normalised(default):
            old[name] = new[name]
    return tuple(_differences(old, new, ""))


# -- planning -------------------------------------------------------------------------------------
def plan_cells(
    cells: list[Cell],
    out: Path,
    retry_failed: bool = False,
    reset_damaged: bool = False,
    changed: str | None = None,
) -> list[PlannedCell]:
    """What to do with each of ``cells`` given the results under ``out`` (nothing is written).

    ``reset_damaged`` plans damaged cells to be set aside and started again; ``changed`` is
    None (changed cells are only reported: the runner refuses them), ``"rerun"`` (set aside and
    start again) or ``"keep"`` (leave the old results; never resume them under new settings).
    """
    if changed not in (None, *CHANGED_CHOICES):
        raise ValueError(f"changed must be one of {CHANGED_CHOICES} or None (got {changed!r})")
    return [_plan_one(cell, out, retry_failed, reset_damaged, changed) for cell in cells]


def _plan_one(
    cell: Cell, out: Path, retry_failed: bool, reset_damaged: bool, changed: str | None
) -> PlannedCell:
    folder = cell.folder(out)
    files = read_cell_folder(folder)
    damage, status = files.damage, files.status
    step = checkpoint_step(folder)[0] if damage is None and status != FINISHED else 0
    changes = spec_changes(files.spec, cell) if damage is None else ()
    if status == FINISHED and not changes:
        return PlannedCell(cell, SKIP_FINISHED, status, cell.budget)
    try:
        busy = folder.is_dir() and is_locked(folder)
    except OSError as err:
        busy, damage = False, damage or f"its lock cannot be checked ({err.strerror or err})"
    if busy:
        return PlannedCell(cell, BUSY, status, 0)
    if damage is not None:
        return _plan_damaged(cell, damage, reset_damaged)
    if changes:
        return _plan_changed(cell, status, changes, changed)
    if status == FAILED:
        return PlannedCell(cell, RETRY if retry_failed else SKIP_FAILED, status, 0)
    has_work = step > 0 or bool(files.evals)
    return PlannedCell(cell, RESUME if has_work else START, status, step)


def _plan_damaged(cell: Cell, damage: str, reset: bool) -> PlannedCell:
    if reset:
        action = f"restart (damaged: {damage}; its folder is set aside)"
        return PlannedCell(cell, action, DAMAGED, 0, damage=damage, set_aside=DAMAGED)
    return PlannedCell(cell, f"{DAMAGED}: {damage}", DAMAGED, 0, damage=damage)


def _plan_changed(
    cell: Cell, status: str, changes: tuple[str, ...], choice: str | None
) -> PlannedCell:
    what = "; ".join(changes)
    if choice == "rerun":
        action = f"restart (changed: {what}; old results are set aside)"
        return PlannedCell(cell, action, status, 0, changes=changes, set_aside=CHANGED)
    if choice == "keep":
        done = cell.budget if status == FINISHED else 0
        kept = "finished under the old settings" if status == FINISHED else "not resumed"
        action = f"keep (changed: {what}; {kept})"
        return PlannedCell(cell, action, status, done, changes=changes)
    return PlannedCell(cell, f"{_UNDECIDED}{what})", status, 0, changes=changes)


# -- what the runner and the dry run say ---------------------------------------------------------
def _first_keys(planned: list[PlannedCell], count: int = 3) -> str:
    keys = [p.cell.key for p in planned]
    return ", ".join(keys[:count]) + (", ..." if len(keys) > count else "")


def changed_refusal(suite_name: str, planned: list[PlannedCell]) -> str | None:
    """One line refusing to run a suite whose changed cells have no decision; None if none."""
    undecided = [p for p in planned if p.action.startswith(_UNDECIDED)]
    if not undecided:
        return None
    fields: list[str] = []
    for item in undecided:
        fields += [c for c in item.changes if c not in fields]
    shown = "; ".join(fields[:3]) + ("; ..." if len(fields) > 3 else "")
    count = len(undecided)
    were = "cell of suite {!r} was" if count == 1 else "cells of suite {!r} were"
    return (
        f"{count} {were.format(suite_name)} run with different settings "
        f"({shown}; {_first_keys(undecided)}): add --rerun-changed to start "
        f"{'it' if count == 1 else 'them'} again (old results are moved aside to "
        f"seed_<n>.changed-<timestamp>) or --keep-changed to keep "
        f"{'its' if count == 1 else 'their'} old results"
    )


# -- setting a folder aside -----------------------------------------------------------------------
def aside_name(folder: Path, label: str, now: dt.datetime | None = None) -> Path:
    """A free sibling name ``seed_<n>.<label>-<UTC time>`` for ``folder``."""
    stamp = (now or dt.datetime.now(dt.timezone.utc)).strftime("%Y%m%dT%H%M%SZ")
    target = folder.with_name(f"{folder.name}.{label}-{stamp}")
    number = 1
    while target.exists() or target.is_symlink():
        number += 1
        target = folder.with_name(f"{folder.name}.{label}-{stamp}-{number}")
    return target


def set_aside(folder: Path, label: str) -> Path | None:
    """Rename the cell's folder to a free ``seed_<n>.<label>-<UTC time>`` next to it.

    Nothing is deleted. Returns the new path, or None when there was nothing to move. Raises
    OSError when the rename fails; CellBusyError when another process holds the cell's lock
    (the rename happens under the lock, so no process can be training the cell meanwhile).
    """
    from maxbench.results.lock import cell_lock

    folder = Path(folder)
    if not (folder.exists() or folder.is_symlink()):
        return None
    if not folder.is_dir():  # a file where the folder should be: no lock to take
        target = aside_name(folder, label)
        os.rename(folder, target)
        return target
    with cell_lock(folder):
        target = aside_name(folder, label)
        os.rename(folder, target)
    return target
