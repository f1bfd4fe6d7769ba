"""Fault injection (issue 16): durability, locks on shared storage, code in data, unbounded work.

Each case injects one fault (a full disk, a filesystem without locks or one that emulates them,
a hostile file in a checkpoint, a huge schedule) and asserts the promise: the system's error
named, every file already written intact, no temporary file left, no traceback on the terminal,
no code run from data, nothing materialised in proportion to the budget.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import io
import itertools
import json
import os
import random
import re
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from stable_baselines3 import SAC

from maxbench.errors import UserInputError
from maxbench.results import atomic, lock
from maxbench.results.layout import read_evals, read_run_json
from maxbench.results.lock import (
    CellBusyError,
    LockUnsupportedError,
    cell_lock,
    check_lock_support,
    is_locked,
)
from maxbench.suite import checkpoint as ckpt
from maxbench.suite.cell_runner import CellRun, boundaries, run_cell
from maxbench.suite.cells import Cell

from conftest import tiny_cell as conftest_tiny_cell

KEY = "sac/MultiGoal-v0/seed_0"
ENOSPC_LINE = re.compile(
    rf"^maxbench: {re.escape(KEY)}: writing .+ failed: \[Errno 28\] No space left on device"
)


def tiny_cell(**overrides) -> Cell:
    """The shared tiny cell (conftest), in this module's suite folder."""
    return conftest_tiny_cell(**{"suite": "faults", **overrides})


def _leftovers(folder: Path) -> list[str]:
    """maxbench's temporary files and staging folders anywhere under ``folder``."""
    return [
        str(path.relative_to(folder))
        for path in folder.rglob(".*")
        if path.name.endswith(".tmp") or path.name.endswith(".tmp.zip")
    ]


def _no_traceback(capfd: pytest.CaptureFixture[str]) -> tuple[str, str]:
    out, err = capfd.readouterr()
    assert "Traceback" not in out + err
    assert "Logging error" not in err
    return out, err


def _interrupt_at(step: int):
    def report(timestep: int) -> None:
        if timestep >= step:
            raise KeyboardInterrupt

    return report


def _rewrite_checksum(folder: Path, name: str) -> None:
    """Make latest.json vouch for a replaced file (what a hostile folder would do)."""
    latest_path = folder / "checkpoints" / "latest.json"
    latest = json.loads(latest_path.read_text())
    entry = latest["history"][-1]
    file = folder / "checkpoints" / entry["folder"] / name
    entry["files"][name] = hashlib.sha256(file.read_bytes()).hexdigest()
    latest_path.write_text(json.dumps(latest))


# == durability ====================================================================================
class _FsyncRecorder:
    """os.fsync that records whether each fd was a folder or a file, and can fail on demand."""

    def __init__(self) -> None:
        self.kinds: list[str] = []
        self.file_error: int | None = None
        self.folder_error: int | None = None
        self.real = os.fsync

    def __call__(self, fd: int) -> None:
        is_folder = stat.S_ISDIR(os.fstat(fd).st_mode)
        self.kinds.append("folder" if is_folder else "file")
        error = self.folder_error if is_folder else self.file_error
        if error is not None:
            raise OSError(error, os.strerror(error))
        self.real(fd)


@pytest.fixture
def fsync(monkeypatch: pytest.MonkeyPatch) -> _FsyncRecorder:
    recorder = _FsyncRecorder()
    monkeypatch.setattr(os, "fsync", recorder)
    return recorder


def test_atomic_write_fsyncs_the_file_then_its_folder(tmp_path: Path, fsync) -> None:
    atomic.write_text_atomic(tmp_path / "new" / "a.txt", "hello")
    assert (tmp_path / "new" / "a.txt").read_text() == "hello"
    # The file before the rename, the folder after it (and the parent of the new folder).
    assert fsync.kinds[-2:] == ["file", "folder"]
    assert fsync.kinds.count("folder") >= 2


@pytest.mark.parametrize("code", [errno.EINVAL, errno.EBADF])
def test_a_filesystem_refusing_folder_fsync_is_tolerated(tmp_path: Path, fsync, code) -> None:
    fsync.folder_error = code
    atomic.write_json_atomic(tmp_path / "run.json", {"status": "running"})
    assert json.loads((tmp_path / "run.json").read_text()) == {"status": "running"}


def test_a_folder_fsync_io_error_is_not_hidden(tmp_path: Path, fsync) -> None:
    fsync.folder_error = errno.EIO
    with pytest.raises(OSError, match="Errno 5"):
        atomic.write_text_atomic(tmp_path / "a.txt", "x")


def test_a_failed_atomic_write_leaves_the_old_file_and_no_temporary(tmp_path: Path, fsync) -> None:
    target = tmp_path / "evals.csv"
    target.write_text("old\n")
    fsync.file_error = errno.ENOSPC
    with pytest.raises(OSError, match="No space left on device"):
        atomic.write_text_atomic(target, "new\n" * 1000)
    assert target.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["evals.csv"]


def test_full_disk_midway_fails_the_cell_clearly_and_damages_nothing(
    tmp_path: Path, fsync, capfd: pytest.CaptureFixture[str]
) -> None:
    """The disk fills after the evaluation at 150: nothing more can be written, not even run.json.

    The cell names the system's error on stderr in one line, run.json stays the valid file it
    was, evals.csv and the checkpoint at 100 are intact, no temporary file is left; once space
    is freed the next run resumes from the checkpoint and evaluates each timestep once.
    """
    cell = tiny_cell()
    folder = cell.folder(tmp_path)

    def fill_disk(timestep: int) -> None:
        if timestep >= 150:
            fsync.file_error = errno.ENOSPC

    assert run_cell(cell, tmp_path, report=fill_disk) == "failed"
    _, err = _no_traceback(capfd)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and ENOSPC_LINE.match(lines[0]), err
    assert read_run_json(folder)["status"] == "running"  # the old run.json, whole
    steps = [r.timestep for r in read_evals(folder)]
    assert steps[:2] == [50, 100] and steps == [50, 100, 150, 200][: len(steps)]
    assert ckpt.find_checkpoint(folder).timestep == 100
    assert not (folder / "model.zip").exists()
    assert _leftovers(folder) == []

    fsync.file_error = None  # space freed
    assert run_cell(cell, tmp_path) == "finished"
    assert [r.timestep for r in read_evals(folder)] == [50, 100, 150, 200]
    assert read_run_json(folder)["attempts"][-1]["resumed_from"] == 100
    _no_traceback(capfd)


def _failing_final_save(budget: int):
    """SAC.save that writes a few bytes of the final model, then fails as a full disk does."""
    original = SAC.save

    def save(self, target, *args, **kwargs) -> None:
        if self.num_timesteps >= budget:  # not a checkpoint's model: the final one
            target.write(b"partial")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return original(self, target, *args, **kwargs)

    return save


def test_full_disk_at_the_final_model_is_recorded_in_run_json(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    cell = tiny_cell()
    monkeypatch.setattr(SAC, "save", _failing_final_save(cell.budget))
    folder = cell.folder(tmp_path)
    assert run_cell(cell, tmp_path) == "failed"
    run = read_run_json(folder)
    assert run["error"] == "writing model.zip failed: [Errno 28] No space left on device"
    assert not (folder / "model.zip").exists()
    assert _leftovers(folder) == []
    assert [r.timestep for r in read_evals(folder)] == [50, 100, 150, 200]
    assert ckpt.find_checkpoint(folder).timestep == 100  # kept: the cell is not finished
    _no_traceback(capfd)

    monkeypatch.undo()
    assert run_cell(cell, tmp_path, retry_failed=True) == "finished"
    assert read_run_json(folder)["attempts"][-1]["resumed_from"] == 100


def test_full_disk_at_a_checkpoint_leaves_no_staging_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    def failing_buffer_save(self, target) -> None:
        target.write(b"partial")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(SAC, "save_replay_buffer", failing_buffer_save)
    cell = tiny_cell()
    folder = cell.folder(tmp_path)
    assert run_cell(cell, tmp_path) == "failed"
    run = read_run_json(folder)
    assert run["error"] == (
        "writing the checkpoint at timestep 100 failed: [Errno 28] No space left on device"
    )
    assert _leftovers(folder) == []
    assert not list((folder / "checkpoints").glob("step_*"))
    assert [r.timestep for r in read_evals(folder)] == [50, 100]
    _no_traceback(capfd)


@pytest.mark.usefixtures("boundary_reports_only")
def test_temporary_files_of_a_killed_run_are_swept_when_it_resumes(tmp_path: Path) -> None:
    cell = tiny_cell()
    folder = cell.folder(tmp_path)
    assert run_cell(cell, tmp_path, report=_interrupt_at(150)) == "interrupted"
    stale = [
        folder / ".run.json.x1y2z3.tmp",
        folder / ".evals.csv.abcd.tmp",
        folder / ".model.zip.tmp.zip",
        folder / "checkpoints" / ".latest.json.q.tmp",
        folder / "checkpoints" / ".step_000000000150.tmp" / "model.zip",
    ]
    for path in stale:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"half a file")
    mine = folder / "notes.tmp"  # not a name maxbench writes: left alone
    mine.write_text("keep me")
    assert run_cell(cell, tmp_path) == "finished"
    assert _leftovers(folder) == []
    assert mine.read_text() == "keep me"
    assert "removed temporary files" in (folder / "train.log").read_text()


def test_a_failure_after_finished_is_recorded_never_undoes_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def failing_removal(self, finishing) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(CellRun, "remove_checkpoints", failing_removal)
    cell = tiny_cell(budget=100, checkpoint_every=50)
    assert run_cell(cell, tmp_path) == "finished"
    assert read_run_json(cell.folder(tmp_path))["status"] == "finished"


def test_a_cell_with_a_damaged_run_json_is_named_and_left_as_it_is(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    cell = tiny_cell()
    folder = cell.folder(tmp_path)
    folder.mkdir(parents=True)
    (folder / "run.json").write_text('{"status": "runn')
    assert run_cell(cell, tmp_path) == "damaged"
    _, err = _no_traceback(capfd)
    (line,) = err.strip().splitlines()
    assert line.startswith(f"maxbench: {KEY}: damaged: run.json is not valid JSON")
    assert (folder / "run.json").read_text() == '{"status": "runn'
    assert not (folder / "evals.csv").exists()


# == locks on shared storage =======================================================================
HOLDER = """
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)
fcntl.flock(fd, fcntl.LOCK_EX)
print("locked", flush=True)
sys.stdin.read()
"""


@pytest.fixture
def held_by_another_process(tmp_path: Path):
    """A cell folder whose lock another process holds until the test ends."""
    folder = tmp_path / "cell"
    folder.mkdir()
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(folder / ".lock")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "locked"
    yield folder
    holder.stdin.close()
    holder.wait(timeout=30)


def test_a_lock_held_by_another_process_is_seen_and_respected(
    held_by_another_process: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(lock, "BUSY_RETRY_S", 0.05)
    assert is_locked(held_by_another_process) is True
    with pytest.raises(CellBusyError), cell_lock(held_by_another_process):
        pass


def _emulate_nfs(monkeypatch: pytest.MonkeyPatch) -> None:
    """flock as NFS gives it: fcntl locks underneath, so a read-only fd cannot lock (EBADF)."""
    real = fcntl.flock

    def nfs_flock(fd: int, operation: int) -> None:
        read_only = fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_ACCMODE == os.O_RDONLY
        if read_only and operation & fcntl.LOCK_EX:
            raise OSError(errno.EBADF, os.strerror(errno.EBADF))
        real(fd, operation)

    monkeypatch.setattr(fcntl, "flock", nfs_flock)


def test_the_probe_works_where_flock_is_emulated_by_fcntl_locks(
    held_by_another_process: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _emulate_nfs(monkeypatch)
    assert is_locked(held_by_another_process) is True
    free = tmp_path / "free"
    with cell_lock(free):
        pass
    assert is_locked(free) is False


@pytest.mark.parametrize("code", [errno.EACCES, errno.EROFS])
def test_the_probe_reads_a_lock_it_cannot_write(
    held_by_another_process: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int
) -> None:
    free = tmp_path / "free"
    with cell_lock(free):
        pass
    real_open = os.open

    def read_only_mount(path, flags, *args):
        if flags & os.O_ACCMODE != os.O_RDONLY:
            raise OSError(code, os.strerror(code))
        return real_open(path, flags, *args)

    monkeypatch.setattr(os, "open", read_only_mount)
    assert is_locked(held_by_another_process) is True
    assert is_locked(free) is False


def test_a_probe_at_the_moment_a_worker_locks_is_not_a_false_busy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "cell"
    folder.mkdir()
    probe = os.open(folder / ".lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(probe, fcntl.LOCK_SH | fcntl.LOCK_NB)  # what is_locked holds for an instant
    waits = []

    def probe_finishes(seconds: float) -> None:
        waits.append(seconds)
        fcntl.flock(probe, fcntl.LOCK_UN)

    monkeypatch.setattr(lock.time, "sleep", probe_finishes)
    try:
        with cell_lock(folder):
            assert is_locked(folder) is True  # a probe from this process sees the worker
    finally:
        os.close(probe)
    assert waits, "the worker should have met the probe's lock"


def test_two_probes_do_not_see_each_other_as_workers(tmp_path: Path) -> None:
    folder = tmp_path / "cell"
    folder.mkdir()
    other_probe = os.open(folder / ".lock", os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(other_probe, fcntl.LOCK_SH | fcntl.LOCK_NB)
        assert is_locked(folder) is False
    finally:
        os.close(other_probe)


def test_a_filesystem_without_locks_is_refused_clearly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    cell = tiny_cell()
    folder = cell.folder(tmp_path)
    folder.mkdir(parents=True)
    (folder / ".lock").write_text("")

    def no_locks(fd: int, operation: int) -> None:
        raise OSError(errno.ENOLCK, os.strerror(errno.ENOLCK))

    monkeypatch.setattr(fcntl, "flock", no_locks)
    with pytest.raises(LockUnsupportedError) as probe_error:
        is_locked(folder)
    message = str(probe_error.value)
    assert isinstance(probe_error.value, UserInputError)
    assert "does not support file locks" in message and "Shared storage" in message
    assert f"[Errno {errno.ENOLCK}]" in message and "\n" not in message
    with pytest.raises(LockUnsupportedError):
        check_lock_support(tmp_path)
    assert not list(tmp_path.glob(".maxbench-lock-probe"))

    assert run_cell(cell, tmp_path) == "failed"  # a worker: said, recorded, nothing trained
    _, err = _no_traceback(capfd)
    assert err.strip().splitlines() == [f"maxbench: {KEY}: {message}"]
    assert read_run_json(folder)["error"] == message
    assert not (folder / "evals.csv").exists()


def test_run_refuses_a_results_folder_without_locks_in_one_line(
    suite_writer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from maxbench.cli import app

    path, out = suite_writer(budget=100), tmp_path / "results"
    folder = out / "tiny" / KEY
    folder.mkdir(parents=True)
    (folder / ".lock").write_text("")
    before = sorted(p.relative_to(out) for p in out.rglob("*"))

    def no_locks(fd: int, operation: int) -> None:
        raise OSError(errno.ENOLCK, os.strerror(errno.ENOLCK))

    monkeypatch.setattr(fcntl, "flock", no_locks)
    result = CliRunner().invoke(app, ["run", str(path), "--out", str(out), "--dry-run"])
    assert result.exit_code == 2, result.output
    (line,) = result.output.strip().splitlines()
    assert line.startswith("error: the results folder's filesystem does not support file locks")
    assert "Traceback" not in result.output
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == before


# == code in data ==================================================================================
class _RunsCode:
    """Unpickling this creates a folder: the proof that loading ran code from the file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (str(self.marker),))


@pytest.mark.usefixtures("boundary_reports_only")
def test_a_hostile_rng_file_is_never_executed_on_resume(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    cell = tiny_cell()
    folder = cell.folder(tmp_path)
    assert run_cell(cell, tmp_path, report=_interrupt_at(150)) == "interrupted"
    marker = tmp_path / "code-was-run"
    rng_file = next((folder / "checkpoints").glob("step_*")) / "rng.pt"
    torch.save({"torch": _RunsCode(marker), "numpy": None, "python": None}, rng_file)
    _rewrite_checksum(folder, "rng.pt")
    torch.load(rng_file, weights_only=False)  # the file really is hostile:
    assert marker.exists()
    marker.rmdir()

    assert run_cell(cell, tmp_path) == "finished"
    assert not marker.exists()
    log = (folder / "train.log").read_text()
    assert "rng.pt cannot be loaded safely" in log
    assert read_run_json(folder)["attempts"][-1]["resumed_from"] == 0  # no other checkpoint
    assert [r.timestep for r in read_evals(folder)] == [50, 100, 150, 200]
    _no_traceback(capfd)


def test_rng_states_round_trip_exactly_through_a_weights_only_file(tmp_path: Path) -> None:
    np.random.randn()  # an odd number of normals: numpy caches the next Gaussian
    random.gauss(0.0, 1.0)  # python keeps one too
    buffer = io.BytesIO()
    torch.save(ckpt.rng_state(), buffer)
    path = tmp_path / "rng.pt"
    path.write_bytes(buffer.getvalue())

    def draws() -> tuple:
        return (
            torch.rand(5).tolist(),
            np.random.rand(5).tolist(),
            np.random.randn(3).tolist(),
            [random.random() for _ in range(3)],
            random.gauss(0.0, 1.0),
        )

    expected = draws()
    draws()  # move every stream on
    ckpt.restore_rng_state(ckpt.load_rng_file(path))
    assert draws() == expected


def test_an_rng_file_of_earlier_maxbench_resumes_under_weights_only(tmp_path: Path) -> None:
    """Checkpoints written before issue 16 pickled numpy's state as an ndarray: still usable."""
    legacy = tmp_path / "legacy.pt"
    torch.save(
        {
            "torch": torch.get_rng_state(),
            "numpy": np.random.get_state(),
            "python": random.getstate(),
        },
        legacy,
    )
    expected = (torch.rand(2).tolist(), np.random.rand(2).tolist(), random.random())
    ckpt.restore_rng_state(ckpt.load_rng_file(legacy))
    assert (torch.rand(2).tolist(), np.random.rand(2).tolist(), random.random()) == expected


def test_an_rng_file_of_another_shape_marks_the_checkpoint_damaged(tmp_path: Path) -> None:
    old_format = tmp_path / "old.pt"  # numpy arrays: needs weights_only=False
    torch.save(
        {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": None},
        old_format,
    )
    wrong = tmp_path / "wrong.pt"
    torch.save({"torch": torch.zeros(3), "numpy": (), "python": ()}, wrong)
    for path in (old_format, wrong, tmp_path / "missing.pt"):
        with pytest.raises(ckpt.CheckpointDamagedError):
            ckpt.load_rng_file(path)


@pytest.mark.parametrize(
    "latest",
    [
        [],
        {"history": "x"},
        {"history": [{"folder": "../../../elsewhere", "timestep": 5, "files": {}}]},
        {
            "history": [
                {
                    "folder": "step_000000000100",
                    "timestep": 100,
                    "files": {
                        "../../run.json": "0",
                        "model.zip": "0",
                        "rng.pt": "0",
                        "state.json": "0",
                    },
                }
            ]
        },
    ],
    ids=["not-an-object", "history-not-a-list", "folder-outside", "file-outside"],
)
def test_a_hostile_or_damaged_latest_json_names_no_checkpoint(tmp_path: Path, latest) -> None:
    root = tmp_path / "checkpoints"
    root.mkdir()
    (root / "latest.json").write_text(json.dumps(latest))
    messages: list[str] = []
    assert ckpt.find_checkpoint(tmp_path, log=messages.append) is None
    assert ckpt.checkpoint_timestep(tmp_path) == 0
    assert messages


# == unbounded work ================================================================================
def _old_boundaries(cell: Cell) -> list[tuple[int, bool, bool]]:
    """The schedule as it was materialised before issue 16 (the reference semantics)."""
    evals = set(range(cell.eval_every, cell.budget + 1, cell.eval_every)) | {cell.budget}
    checkpoints = set(range(cell.checkpoint_every, cell.budget, cell.checkpoint_every))
    return [(t, t in evals, t in checkpoints) for t in sorted(evals | checkpoints)]


def test_the_lazy_schedule_is_the_materialised_one() -> None:
    for budget, every, checkpoint_every in itertools.product(
        [1, 2, 7, 50, 99, 100, 230], [1, 3, 50, 100, 500], [1, 4, 50, 100, 1000]
    ):
        cell = tiny_cell(budget=budget, eval_every=every, checkpoint_every=checkpoint_every)
        expected = _old_boundaries(cell)
        assert list(boundaries(cell)) == expected, (budget, every, checkpoint_every)
        for after in (0, 1, budget // 2, budget - 1, budget):
            assert list(boundaries(cell, after=after)) == [p for p in expected if p[0] > after]


def test_a_huge_schedule_is_not_materialised() -> None:
    cell = tiny_cell(budget=10**15, eval_every=1, checkpoint_every=10**6)
    assert list(itertools.islice(boundaries(cell), 3)) == [
        (1, True, False),
        (2, True, False),
        (3, True, False),
    ]
    resumed = boundaries(cell, after=10**15 - 2)
    assert list(resumed) == [(10**15 - 1, True, False), (10**15, True, False)]
    spaced = tiny_cell(budget=10**15, eval_every=10**14, checkpoint_every=3 * 10**14)
    assert len(list(boundaries(spaced))) == 10
