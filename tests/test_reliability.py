"""Reliability: signals, concurrent invocations, a diverging cell, unwritable and full folders.

These run real (tiny) suites through the ``maxbench`` command in subprocesses.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from maxbench.cli import app

from conftest import MAXBENCH

pytestmark = pytest.mark.slow


def _status(folder: Path) -> str | None:
    try:
        return json.loads((folder / "run.json").read_text())["status"]
    except (OSError, ValueError, KeyError):
        return None


def _eval_steps(folder: Path) -> list[int]:
    with open(folder / "evals.csv", newline="") as handle:
        return [int(row["timestep"]) for row in csv.DictReader(handle)]


def _digest(root: Path) -> dict[str, str]:
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file() and path.name != ".lock"
    }


def _pendulum_suite(suite_writer, budget: int = 1500, seeds: int = 2) -> Path:
    return suite_writer(
        name="rel",
        algorithms={
            "sac": {
                "hyperparams": {
                    "default": {"learning_starts": 50, "policy_kwargs": {"net_arch": [32, 32]}}
                }
            }
        },
        environments=["Pendulum-v1"],
        seeds=seeds,
        budget=budget,
        evaluation={"every": 100, "episodes": 1, "deterministic": True},
        checkpoint_every=500,
    )


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_checkpoints_running_cells_then_resume(
    signum: int, suite_writer, tmp_path: Path, subprocess_env
) -> None:
    path, out = _pendulum_suite(suite_writer), tmp_path / "results"
    command = [*MAXBENCH, "run", str(path), "--out", str(out), "--workers", "2"]
    process = subprocess.Popen(
        command, env=subprocess_env, start_new_session=True, stdout=subprocess.PIPE, text=True
    )
    cells = [out / "rel/sac/Pendulum-v1/seed_0", out / "rel/sac/Pendulum-v1/seed_1"]
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        progressed = [
            c for c in cells if _status(c) == "running" and len(_eval_steps(c) or []) >= 2
        ]
        if progressed:
            break
        assert process.poll() is None, "the suite ended before the signal"
        time.sleep(0.1)
    # Ctrl-C reaches the whole process group; SIGTERM (a scheduler, `kill`) only the parent.
    if signum == signal.SIGINT:
        os.killpg(process.pid, signum)
    else:
        os.kill(process.pid, signum)
    output, _ = process.communicate(timeout=120)
    assert process.returncode == 130, output
    assert "interrupted" in output

    interrupted = [c for c in cells if _status(c) == "interrupted"]
    assert interrupted, [(_status(c), c) for c in cells]
    stopped_at = {}
    for cell in interrupted:
        history = json.loads((cell / "checkpoints/latest.json").read_text())["history"]
        stopped_at[cell] = history[-1]["timestep"]
        assert "checkpoint written at timestep" in (cell / "train.log").read_text()

    result = subprocess.run(command, env=subprocess_env, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    for cell in cells:
        assert _status(cell) == "finished"
        assert _eval_steps(cell) == list(range(100, 1501, 100))
    for cell, step in stopped_at.items():
        run = json.loads((cell / "run.json").read_text())
        assert run["attempts"][-1]["resumed_from"] == step


@pytest.mark.slow
def test_concurrent_invocations_never_train_a_cell_twice(
    suite_writer, tmp_path: Path, subprocess_env
) -> None:
    path, out = _pendulum_suite(suite_writer, budget=400, seeds=4), tmp_path / "results"
    command = [*MAXBENCH, "run", str(path), "--out", str(out), "--workers", "1"]
    first = subprocess.Popen(command, env=subprocess_env, stdout=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while _status(out / "rel/sac/Pendulum-v1/seed_0") != "running":
        assert time.monotonic() < deadline and first.poll() is None
        time.sleep(0.05)
    second = subprocess.Popen(command, env=subprocess_env, stdout=subprocess.PIPE, text=True)
    outputs = [first.communicate(timeout=600)[0], second.communicate(timeout=600)[0]]
    assert first.returncode in (0, 1) and second.returncode in (0, 1), outputs
    assert "Traceback" not in "".join(outputs)
    # The two collide on at least one cell: one of them says it left that cell to the other
    # (at planning, or when the cell's turn came: which one depends on timing).
    assert "being trained by another maxbench process" in "".join(outputs)
    for seed in range(4):
        cell = out / f"rel/sac/Pendulum-v1/seed_{seed}"
        run = json.loads((cell / "run.json").read_text())
        assert run["status"] == "finished"
        assert len(run["attempts"]) == 1, f"seed {seed} was trained {len(run['attempts'])} times"
        assert _eval_steps(cell) == [100, 200, 300, 400]
    # Whatever is left for a later run: nothing.
    final = subprocess.run(command, env=subprocess_env, capture_output=True, text=True)
    assert final.returncode == 0


def test_diverging_cell_fails_with_its_reason_and_the_others_finish(
    suite_writer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).parent))
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    small = {"learning_starts": 20, "policy_kwargs": {"net_arch": [8]}}
    path = suite_writer(
        algorithms={
            "nan": {"algo": "crashing_algo:NaNSAC", "hyperparams": {"default": small}},
            "sac": {"hyperparams": {"default": small}},
        },
        budget=300,
    )
    out = tmp_path / "results"
    result = CliRunner().invoke(app, ["run", str(path), "--out", str(out), "--workers", "2"])
    assert result.exit_code == 1, result.output
    nan = json.loads((out / "tiny/nan/MultiGoal-v0/seed_0/run.json").read_text())
    assert nan["status"] == "failed"
    assert "NonFiniteError: non-finite parameter actor." in nan["error"]
    assert _status(out / "tiny/sac/MultiGoal-v0/seed_0") == "finished"


def test_unwritable_output_folder_is_bad_input(suite_writer, tmp_path: Path) -> None:
    path = suite_writer()
    result = CliRunner().invoke(app, ["run", str(path), "--out", "/proc/maxbench-test/results"])
    assert result.exit_code == 2
    assert "cannot create the results folder" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def _mount_tmpfs(folder: Path, size: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {done.stderr.decode().strip()}")


@pytest.fixture
def small_disk(tmp_path: Path):
    """A 4 MiB tmpfs (root only), unmounted afterwards."""
    folder = tmp_path / "disk"
    _mount_tmpfs(folder, "4m")
    yield folder
    subprocess.run(["umount", "-l", str(folder)], check=False)


def test_read_only_results_folder_is_bad_input_and_untouched(
    suite_writer, small_disk: Path
) -> None:
    path = suite_writer(budget=100)
    out = small_disk / "results"
    assert CliRunner().invoke(app, ["run", str(path), "--out", str(out)]).exit_code == 0
    before = _digest(out)
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    result = CliRunner().invoke(app, ["run", str(path), "--out", str(out), "--retry-failed"])
    assert result.exit_code == 2
    assert "not writable" in result.stderr
    assert _digest(out) == before


def test_full_disk_fails_the_cell_clearly_and_damages_nothing(
    suite_writer, small_disk: Path
) -> None:
    out = small_disk / "results"
    first = suite_writer(budget=100)
    assert CliRunner().invoke(app, ["run", str(first), "--out", str(out)]).exit_code == 0
    before = _digest(out)
    filler = small_disk / "filler"
    with open(filler, "wb") as handle:  # fill the disk to the last byte
        try:
            while True:
                handle.write(b"\0" * 65536)
                handle.flush()
        except OSError:
            pass
    more_seeds = suite_writer(budget=100, seeds=[0, 1])
    result = CliRunner().invoke(app, ["run", str(more_seeds), "--out", str(out)])
    assert result.exit_code == 1, result.output
    assert "No space left on device" in result.output
    assert "Traceback" not in result.output
    after = _digest(out)
    assert {k: v for k, v in after.items() if "seed_0" in k} == before
    filler.unlink()
    retry = CliRunner().invoke(app, ["run", str(more_seeds), "--out", str(out), "--retry-failed"])
    assert retry.exit_code == 0, retry.output
