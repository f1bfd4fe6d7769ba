"""Shared fixtures: small suites written to a temporary folder."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
TESTS = Path(__file__).resolve().parent

# pytest-xdist workers inherit COLUMNS=80 / LINES=24 from the terminal emulation of their
# controller; maxbench's console would then wrap the CLI's output at 80 columns in the tests that
# read it (unlike a single pytest process, where piped output gets 120). The tests see what a
# user piping the output sees.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.pop("COLUMNS", None)
    os.environ.pop("LINES", None)


def write_suite(folder: Path, name: str = "tiny", **overrides: Any) -> Path:
    """Write a small valid suite (SAC on the multi-goal env) with top-level ``overrides``."""
    suite: dict[str, Any] = {
        "name": name,
        "algorithms": {
            "sac": {
                "hyperparams": {
                    "default": {
                        "learning_starts": 50,
                        "batch_size": 32,
                        "buffer_size": 5000,
                        "policy_kwargs": {"net_arch": [16, 16]},
                    }
                }
            }
        },
        "environments": ["MultiGoal-v0"],
        "seeds": 1,
        "budget": 200,
        "evaluation": {"every": 50, "episodes": 2, "deterministic": False},
        "checkpoint_every": 100,
    }
    suite.update(overrides)
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(suite, sort_keys=False))
    return path


@pytest.fixture
def suite_writer(tmp_path: Path):
    """``suite_writer(**overrides) -> path`` of a small suite in tmp_path."""

    def make(**overrides: Any) -> Path:
        return write_suite(tmp_path, **overrides)

    return make


@pytest.fixture
def subprocess_env() -> dict[str, str]:
    """Environment for ``maxbench`` subprocesses: tests/ importable (for test algorithms)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


MAXBENCH = [sys.executable, "-m", "maxbench"]


def tiny_cell(**overrides: Any) -> Any:
    """One Cell: SAC on the multi-goal env, 200 steps, evaluations every 50, a checkpoint at 100."""
    from maxbench.suite.cells import Cell

    spec: dict[str, Any] = dict(
        suite="tiny",
        algo="sac",
        algo_target="stable_baselines3:SAC",
        policy="MlpPolicy",
        hyperparams={
            "learning_starts": 50,
            "batch_size": 32,
            "buffer_size": 5000,
            "policy_kwargs": {"net_arch": [16, 16]},
        },
        env_id="MultiGoal-v0",
        env_name="MultiGoal-v0",
        env_kwargs={},
        max_episode_steps=None,
        wrappers=[],
        seed=0,
        budget=200,
        eval_every=50,
        eval_episodes=2,
        eval_deterministic=False,
        n_envs=1,
        checkpoint_every=100,
    )
    spec.update(overrides)
    return Cell(**spec)


@pytest.fixture(autouse=True)
def sb3_logs_in_tmp_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """SB3's default logger (``learn()`` without ``set_logger``) makes a new ``SB3-<date>`` folder
    in the system temp dir per call; keep those inside the test's own tmp_path."""
    monkeypatch.setenv("SB3_LOGDIR", str(tmp_path / "sb3-default-logs"))


@pytest.fixture
def boundary_reports_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Progress reports only at a cell's evaluation and checkpoint points, none from inside
    training (every 0.5 s by default): a test that interrupts a cell from its ``report`` then
    stops it at a known point, however slow the machine (a timed report at step 300 comes
    before the evaluation at 300)."""
    import math

    from maxbench.suite import health

    monkeypatch.setattr(health, "PROGRESS_INTERVAL_S", math.inf)
