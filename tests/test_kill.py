"""Kill test: ``kill -9`` a running suite's whole process group, run it again, check the results.

Finished cells are not re-run (run.json byte-identical), interrupted cells resume from their
checkpoint, evals.csv has every evaluation timestep exactly once, and every file parses.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import time
import zipfile
from pathlib import Path

import pytest

from conftest import MAXBENCH

pytestmark = pytest.mark.slow

BUDGETS = {"MultiGoal-v0": 300, "Pendulum-v1": 1500}


def _suite(suite_writer) -> Path:
    return suite_writer(
        name="killme",
        algorithms={
            "sac": {
                "hyperparams": {
                    "default": {"learning_starts": 50, "policy_kwargs": {"net_arch": [32, 32]}}
                }
            }
        },
        environments=[{"id": env, "budget": budget} for env, budget in BUDGETS.items()],
        seeds=[0, 1],
        evaluation={"every": 100, "episodes": 1, "deterministic": True},
        checkpoint_every=100,
    )


def _cells(out: Path) -> list[Path]:
    return sorted(out.glob("killme/sac/*/seed_*"))


def _status(folder: Path) -> str | None:
    try:
        return json.loads((folder / "run.json").read_text())["status"]
    except (OSError, ValueError, KeyError):
        return None


def _has_checkpoint(folder: Path) -> bool:
    return (folder / "checkpoints" / "latest.json").exists()


def test_kill_minus_nine_then_resume(suite_writer, tmp_path: Path, subprocess_env) -> None:
    path, out = _suite(suite_writer), tmp_path / "results"
    command = [*MAXBENCH, "run", str(path), "--out", str(out), "--workers", "2"]
    process = subprocess.Popen(
        command,
        env=subprocess_env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 300
    try:
        while time.monotonic() < deadline:
            cells = _cells(out)
            finished = [c for c in cells if _status(c) == "finished"]
            midway = [c for c in cells if _status(c) == "running" and _has_checkpoint(c)]
            if finished and midway:
                break
            assert process.poll() is None, "the suite ended before it could be killed"
            time.sleep(0.2)
        else:
            pytest.fail("no finished and no checkpointed running cell within 300 s")
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()

    finished_before = {c: (c / "run.json").read_bytes() for c in finished}
    resumed = {c: json.loads((c / "checkpoints/latest.json").read_text()) for c in midway}

    result = subprocess.run(
        command, env=subprocess_env, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stdout + result.stderr

    assert len(_cells(out)) == 4
    for cell, before in finished_before.items():
        assert (cell / "run.json").read_bytes() == before, f"{cell} was re-run"
    for cell, history in resumed.items():
        run = json.loads((cell / "run.json").read_text())
        assert run["attempts"][-1]["resumed_from"] == history["history"][-1]["timestep"]
        assert run["attempts"][-1]["resumed_from"] > 0
    for cell in _cells(out):
        run = json.loads((cell / "run.json").read_text())
        assert run["status"] == "finished"
        budget = BUDGETS[cell.parent.name]
        with open(cell / "evals.csv", newline="") as handle:
            steps = [int(row["timestep"]) for row in csv.DictReader(handle)]
        assert steps == list(range(100, budget + 1, 100)), cell
        with zipfile.ZipFile(cell / "model.zip") as model:
            assert model.testzip() is None
        assert not list(cell.glob(".*.tmp")), "a temporary file was left behind"
