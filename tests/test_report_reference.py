"""Reference scores: the versioned file, the multi-goal optimum, ``maxbench reference random``."""

from __future__ import annotations

import json
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from test_report import invoke

import maxbench.envs  # noqa: F401
from maxbench.report.reference import (
    REFERENCE_FILE,
    load_references,
    multigoal_best_return,
)


def test_reference_file_is_complete() -> None:
    table = load_references()
    assert table.path == REFERENCE_FILE and table.version >= 1
    for env_id in (
        "Hopper-v5",
        "Walker2d-v5",
        "HalfCheetah-v5",
        "Ant-v5",
        "Humanoid-v5",
        "Pendulum-v1",
        "LunarLanderContinuous-v3",
        "BipedalWalker-v3",
        "MultiGoal-v0",
        "MultiGoalMaxEnt-v0",
        "MultiGoalObstacle-v0",
        "MultiGoalMaxEntObstacle-v0",
    ):
        score = table.get(env_id)
        assert score is not None and score.normalisable, env_id
        assert score.random_source and "maxbench reference random" in score.random_source
        assert score.reference_source
        assert score.reference > score.random, env_id  # type: ignore[operator]
    # D4RL's expert scores (d4rl/infos.py REF_MAX_SCORE)
    expected = {
        "Hopper-v5": 3234.3,
        "Walker2d-v5": 4592.3,
        "HalfCheetah-v5": 12135.0,
        "Ant-v5": 3879.7,
    }
    for env_id, value in expected.items():
        assert table.get(env_id).reference == value  # type: ignore[union-attr]
        assert "D4RL" in table.get(env_id).reference_source  # type: ignore[union-attr,operator]


def test_normalise() -> None:
    score = load_references().get("Pendulum-v1")
    assert score is not None
    assert score.normalise(score.random) == 0.0
    assert score.normalise(score.reference) == pytest.approx(1.0)
    values = np.array([-1000.0, -500.0])
    np.testing.assert_allclose(
        score.normalise(values), (values - score.random) / (score.reference - score.random)
    )


def replay(env_id: str, actions: np.ndarray) -> tuple[float, bool]:
    env = gym.make(env_id)
    env.reset(seed=0)
    total, terminated = 0.0, False
    for action in actions:
        _, reward, terminated, truncated, _ = env.step(action)
        total += float(reward)
        if terminated or truncated:
            break
    return total, terminated


def test_multigoal_reference_is_the_optimum_found_and_recorded() -> None:
    best, actions = multigoal_best_return("MultiGoal-v0")
    recorded = load_references().get("MultiGoal-v0")
    # The env steps float32 positions, so a return is exact only to float32's resolution
    # (about 1e-7 relative per step): SLSQP's optimum, cast to float32 actions, replays to
    # returns that differ by ~1e-5 between BLAS builds (-113.7622797 here, -113.76229 recorded
    # on the machine that wrote the file). A relative 1e-6 holds on any machine of this kind.
    assert recorded is not None and recorded.reference == pytest.approx(best, rel=1e-6)
    achieved, reached = replay("MultiGoal-v0", actions)
    assert achieved == pytest.approx(best, abs=1e-9) and reached
    # full speed to (5, 0): rewards -30 - d^2 for d = 4, 3, 2, 1, 0, and +10 at the goal
    assert replay("MultiGoal-v0", np.tile([1.0, 0.0], (5, 1)).astype(np.float32))[0] == -170.0
    assert best > -170.0
    # no small perturbation of the optimal actions does better (local optimality, in the env)
    rng = np.random.default_rng(0)
    for _ in range(100):
        noisy = np.clip(actions + rng.normal(0.0, 0.02, actions.shape), -1, 1).astype(np.float32)
        assert replay("MultiGoal-v0", noisy)[0] <= best + 1e-6


def test_reference_random_command(tmp_path: Path) -> None:
    path = tmp_path / "refs.json"
    path.write_text(
        json.dumps(
            {"version": 3, "envs": {"Pendulum-v1": {"reference": {"score": -150.0, "source": "x"}}}}
        )
    )
    result = invoke("reference", "random", "Pendulum-v1", "--episodes", "3", "--file", path)
    assert result.exit_code == 0, result.output
    data = json.loads(path.read_text())
    assert data["version"] == 4
    entry = data["envs"]["Pendulum-v1"]
    assert entry["reference"] == {"score": -150.0, "source": "x"}
    # the same protocol, written out: action space seeded with 0, episode i reset with seed i
    env = gym.make("Pendulum-v1")
    env.action_space.seed(0)
    returns = []
    for episode in range(3):
        env.reset(seed=episode)
        total, done = 0.0, False
        while not done:
            _, reward, terminated, truncated, _ = env.step(env.action_space.sample())
            total += float(reward)
            done = terminated or truncated
        returns.append(total)
    assert entry["random"]["score"] == pytest.approx(np.mean(returns), abs=1e-6)
    assert entry["random"]["episodes"] == 3
    assert (
        "maxbench reference random Pendulum-v1 --episodes 3 --seed 0" in entry["random"]["source"]
    )

    again = invoke("reference", "random", "Pendulum-v1", "-n", "2", "--file", path, "--dry-run")
    assert again.exit_code == 0 and json.loads(path.read_text())["version"] == 4


def test_reference_random_unknown_env(tmp_path: Path) -> None:
    result = invoke("reference", "random", "Pendulm-v1", "--file", tmp_path / "r.json")
    assert result.exit_code == 2
    assert result.stderr.startswith("error: cannot make environment 'Pendulm-v1'")
    assert not (tmp_path / "r.json").exists()
