"""Tests of the multi-goal toy environments (S2AC paper, arXiv 2405.00987, Sec. 5.1).

Expected rewards are computed by hand in the tests, independently of the environment code.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from gymnasium.wrappers import TimeLimit

import maxbench.envs  # noqa: F401  (registers the ids)
from maxbench.envs.multigoal import MultiGoalEnv, segments_intersect
from maxbench.envs.registration import register_envs

ALL_IDS = [
    "MultiGoal-v0",
    "MultiGoalObstacle-v0",
    "MultiGoalMaxEnt-v0",
    "MultiGoalMaxEntObstacle-v0",
]


def _run(
    env: gym.Env, actions: Sequence[Sequence[float]]
) -> list[tuple[np.ndarray, float, bool, bool, dict[str, Any]]]:
    """Reset ``env`` and apply ``actions``, returning every step's result.

    Args:
        env: The environment.
        actions: Actions to apply in order.

    Returns:
        ``(obs, reward, terminated, truncated, info)`` per step.
    """
    env.reset(seed=0)
    out = []
    for a in actions:
        obs, r, term, trunc, info = env.step(np.asarray(a, dtype=np.float32))
        out.append((obs, float(r), term, trunc, info))
    return out


def test_reward_formula_hand_computed() -> None:
    """r = -30 ||a||^2 - min_g ||s' - g||^2 at hand-computed points."""
    env = gym.make("MultiGoal-v0")
    # (0,0) + (0.5,-0.5): cost 30*0.5 = 15; nearest goals (5,0)/(0,-5): 4.5^2 + 0.5^2 = 20.5.
    (obs, r, term, trunc, info) = _run(env, [(0.5, -0.5)])[0]
    np.testing.assert_allclose(obs, [0.5, -0.5])
    assert r == pytest.approx(-35.5)
    assert not term and not trunc and info["goal_index"] == -1 and info["blocked"] is False
    # Then + (0.5, 0.5) -> (1, 0): cost 15; to (5,0): 16. Then + (0, 0): cost 0, 16.
    steps = _run(env, [(0.5, -0.5), (0.5, 0.5), (0.0, 0.0)])
    assert steps[1][1] == pytest.approx(-31.0)
    assert steps[2][1] == pytest.approx(-16.0)
    np.testing.assert_allclose(steps[2][4]["position"], [1.0, 0.0])

    env3 = gym.make("MultiGoalMaxEnt-v0")
    # (0,0) + (-1,1) -> (-1,1): cost 60; to (-4,3): 9+4 = 13 (vs 37 and 25).
    (obs, r, *_rest) = _run(env3, [(-1.0, 1.0)])[0]
    np.testing.assert_allclose(obs, [-1.0, 1.0])
    assert r == pytest.approx(-73.0)
    # Then + (-1, 0.5) -> (-2, 1.5): cost 30*1.25 = 37.5; to (-4,3): 4 + 2.25 = 6.25.
    assert _run(env3, [(-1.0, 1.0), (-1.0, 0.5)])[1][1] == pytest.approx(-43.75)


def test_goal_bonus_and_termination() -> None:
    """Five (1,0) steps reach (5,0): terminated, +10 bonus, goal_index 0."""
    env = gym.make("MultiGoal-v0")
    steps = _run(env, [(1.0, 0.0)] * 5)
    for k, (_obs, r, term, trunc, info) in enumerate(steps[:4]):
        x = k + 1.0
        assert not term and not trunc and info["goal_index"] == -1
        assert r == pytest.approx(-30.0 - (5.0 - x) ** 2)
    obs, r, term, trunc, info = steps[4]
    np.testing.assert_allclose(obs, [5.0, 0.0])
    assert term is True and trunc is False
    assert info["goal_index"] == 0
    assert r == pytest.approx(-30.0 - 0.0 + 10.0)

    # Ending at distance 0.6 from (5,0): no termination, no bonus.
    steps = _run(env, [(1.0, 0.0)] * 4 + [(0.4, 0.0)])
    obs, r, term, trunc, info = steps[-1]
    np.testing.assert_allclose(obs, [4.4, 0.0], atol=1e-6)
    assert not term and info["goal_index"] == -1
    assert r == pytest.approx(-30.0 * 0.16 - 0.36, abs=1e-4)

    # Ending at distance 0.4 from (-5,0) terminates with goal index 1.
    steps = _run(env, [(-1.0, 0.0)] * 4 + [(-0.6, 0.0)])
    obs, r, term, trunc, info = steps[-1]
    assert term and info["goal_index"] == 1
    assert r == pytest.approx(-30.0 * 0.36 - 0.16 + 10.0, abs=1e-4)


def test_action_clipping() -> None:
    """Action (3,-5) acts as (1,-1): same position, same cost."""
    env = gym.make("MultiGoal-v0")
    big = _run(env, [(3.0, -5.0)])[0]
    unit = _run(env, [(1.0, -1.0)])[0]
    np.testing.assert_allclose(big[0], [1.0, -1.0])
    np.testing.assert_allclose(big[0], unit[0])
    # cost 30*2 = 60; to (5,0): 16 + 1 = 17 (to (0,-5): 1 + 16 = 17 as well).
    assert big[1] == pytest.approx(-77.0)
    assert big[1] == pytest.approx(unit[1])


def test_position_clipping_at_border() -> None:
    """The position is clipped to [-7, 7]^2."""
    env = TimeLimit(MultiGoalEnv(goals=[(100.0, 100.0)]), max_episode_steps=100)
    steps = _run(env, [(1.0, -1.0)] * 9)
    for k, (obs, *_rest) in enumerate(steps):
        expected = min(k + 1.0, 7.0)
        np.testing.assert_allclose(obs, [expected, -expected])
        assert obs.dtype == np.float32
        assert env.observation_space.contains(obs)
    # Last step is clipped back to (7,-7): still charged cost 60; dist^2 = 93^2 + 107^2.
    assert steps[-1][1] == pytest.approx(-60.0 - 93.0**2 - 107.0**2)
    assert steps[-1][4]["blocked"] is False


def test_time_limit_truncates_at_30() -> None:
    """30 zero actions: truncated exactly at step 30, never terminated."""
    env = gym.make("MultiGoal-v0")
    steps = _run(env, [(0.0, 0.0)] * 30)
    for k, (_obs, r, term, trunc, _info) in enumerate(steps):
        assert term is False
        assert trunc is (k == 29)
        assert r == pytest.approx(-25.0)


def test_obstacle_blocks_horizontal_wall() -> None:
    """MultiGoalObstacle-v0: moving (0,2)->(0,3) touches the wall y=3 and is blocked."""
    env = gym.make("MultiGoalObstacle-v0")
    np.testing.assert_allclose(env.unwrapped.obstacle, [[-1.5, 3.0], [1.5, 3.0]])
    steps = _run(env, [(0.0, 1.0)] * 3)
    assert [s[4]["blocked"] for s in steps] == [False, False, True]
    obs, r, term, _trunc, info = steps[2]
    np.testing.assert_allclose(obs, [0.0, 2.0])
    np.testing.assert_allclose(info["position"], [0.0, 2.0])
    # Cost still charged: 30; nearest goal (0,5) at distance 3.
    assert r == pytest.approx(-30.0 - 9.0)
    assert not term

    # Beside the wall's end (x = 2): (0,0)->(1,1)->(2,2)->(2,3)->(2,4), never blocked.
    steps = _run(env, [(1.0, 1.0), (1.0, 1.0), (0.0, 1.0), (0.0, 1.0)])
    assert not any(s[4]["blocked"] for s in steps)
    np.testing.assert_allclose(steps[-1][0], [2.0, 4.0])

    # Ending exactly on the wall's end point (1.5, 3) counts as crossing.
    steps = _run(env, [(1.0, 1.0), (0.0, 1.0), (0.5, 1.0)])
    assert steps[-1][4]["blocked"] is True
    np.testing.assert_allclose(steps[-1][0], [1.0, 2.0])
    # cost 30*1.25 = 37.5; from (1,2): to (0,5) 1 + 9 = 10, to (5,0) 16 + 4 = 20.
    assert steps[-1][1] == pytest.approx(-37.5 - 10.0)


def test_obstacle_blocks_diagonal_wall() -> None:
    """MultiGoalMaxEntObstacle-v0: the diagonal wall (-2,0)-(0,2), i.e. y = x + 2."""
    env = gym.make("MultiGoalMaxEntObstacle-v0")
    # (0,0)->(-1,0)->(-1,1): (-1,1) lies on the wall (touch) -> blocked at (-1,0).
    steps = _run(env, [(-1.0, 0.0), (0.0, 1.0)])
    assert steps[0][4]["blocked"] is False
    assert steps[1][4]["blocked"] is True
    np.testing.assert_allclose(steps[1][0], [-1.0, 0.0])
    # cost 30; from (-1,0): to (-4,3) 9+9 = 18, to (-4,-3) 18, to (5,0) 36.
    assert steps[1][1] == pytest.approx(-30.0 - 18.0)

    # Proper crossing: (0,0)->(-1,0.5)->(-1,1.5) crosses y = x + 2 at (-1,1).
    steps = _run(env, [(-1.0, 0.5), (0.0, 1.0)])
    assert steps[0][4]["blocked"] is False
    assert steps[1][4]["blocked"] is True
    np.testing.assert_allclose(steps[1][0], [-1.0, 0.5])

    # Beside the wall's end (0,2): (0,0)->(0.5,1)->(0.5,2)->(0.5,3): not blocked.
    steps = _run(env, [(0.5, 1.0), (0.0, 1.0), (0.0, 1.0)])
    assert not any(s[4]["blocked"] for s in steps)
    np.testing.assert_allclose(steps[-1][0], [0.5, 3.0])

    # Without an obstacle the same move goes through.
    free = _run(gym.make("MultiGoalMaxEnt-v0"), [(-1.0, 0.5), (0.0, 1.0)])
    assert free[1][4]["blocked"] is False
    np.testing.assert_allclose(free[1][0], [-1.0, 1.5])


@pytest.mark.parametrize(
    ("p1", "p2", "q1", "q2", "expected"),
    [
        ((0, 0), (2, 2), (0, 2), (2, 0), True),  # proper crossing
        ((0, 0), (1, 1), (1, 1), (2, 0), True),  # shared end point
        ((0, 0), (2, 0), (1, 0), (3, 0), True),  # collinear overlap
        ((0, 0), (1, 0), (2, 0), (3, 0), False),  # collinear, disjoint
        ((0, 0), (1, 1), (0, 1), (1, 2), False),  # parallel
        ((0, 0), (1, 0), (2, -1), (2, 1), False),  # would cross only when extended
        ((1, 1), (1, 1), (0, 0), (2, 2), True),  # point on segment
    ],
)
def test_segments_intersect(
    p1: tuple[float, float],
    p2: tuple[float, float],
    q1: tuple[float, float],
    q2: tuple[float, float],
    expected: bool,
) -> None:
    """The segment test on hand-made cases, in both argument orders."""
    assert segments_intersect(p1, p2, q1, q2) is expected
    assert segments_intersect(q1, q2, p1, p2) is expected
    assert segments_intersect(p2, p1, q2, q1) is expected


@pytest.mark.parametrize("env_id", ALL_IDS)
def test_check_env_and_spaces(env_id: str) -> None:
    """gymnasium's checker passes; spaces, time limit and goal sets are as specified."""
    env = gym.make(env_id)
    assert env.spec is not None and env.spec.max_episode_steps == 30
    raw = env.unwrapped
    assert isinstance(raw, MultiGoalEnv)
    check_env(raw, skip_render_check=True)
    check_env(gym.make(env_id, render_mode="rgb_array").unwrapped)
    assert raw.observation_space == gym.spaces.Box(-7.0, 7.0, (2,), np.float32)
    assert raw.action_space == gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
    expected_goals = (
        [(5, 0), (-4, 3), (-4, -3)] if "MaxEnt" in env_id else [(5, 0), (-5, 0), (0, 5), (0, -5)]
    )
    np.testing.assert_allclose(raw.goals, expected_goals)
    assert (raw.obstacle is not None) == ("Obstacle" in env_id)
    obs, info = env.reset(seed=3)
    assert obs.dtype == np.float32 and np.array_equal(obs, [0.0, 0.0])
    rng = np.random.default_rng(0)
    for _ in range(30):
        obs, _r, term, trunc, _info = env.step(rng.uniform(-3, 3, size=2).astype(np.float32))
        assert obs.dtype == np.float32 and raw.observation_space.contains(obs)
        if term or trunc:
            break


def test_render() -> None:
    """rgb_array render: uint8 (H, W, 3), non-constant, changes with the path."""
    env = MultiGoalEnv(obstacle=((-1.5, 3.0), (1.5, 3.0)), render_mode="rgb_array")
    env.reset(seed=0)
    first = env.render()
    assert isinstance(first, np.ndarray)
    assert first.dtype == np.uint8 and first.ndim == 3 and first.shape[2] == 3
    assert first.shape[0] >= 100 and first.shape[1] >= 100
    assert first.min() != first.max()
    for a in [(1.0, 1.0), (1.0, 0.0), (1.0, -1.0)]:
        env.step(np.array(a, dtype=np.float32))
    second = env.render()
    assert second is not None and second.shape == first.shape
    assert not np.array_equal(first, second)
    assert MultiGoalEnv().render() is None


def test_bad_render_mode_and_arguments() -> None:
    """Unsupported render modes and malformed arguments raise ValueError."""
    with pytest.raises(ValueError):
        MultiGoalEnv(render_mode="human")
    with pytest.raises(ValueError):
        MultiGoalEnv(goals=[(1.0, 2.0, 3.0)])
    with pytest.raises(ValueError):
        MultiGoalEnv(obstacle=((0.0, 0.0),))


def test_register_envs_idempotent() -> None:
    """Calling register_envs() again neither warns nor fails, and keeps all ids."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        register_envs()
        register_envs()
    for env_id in ALL_IDS:
        assert env_id in gym.envs.registry
        spec = gym.envs.registry[env_id]
        assert spec.entry_point == "maxbench.envs.multigoal:MultiGoalEnv"
        assert spec.max_episode_steps == 30


def test_seeding_reset_is_deterministic() -> None:
    """reset(seed=0) twice gives the same observation (the origin), also after moving."""
    env = gym.make("MultiGoalMaxEntObstacle-v0")
    obs1, info1 = env.reset(seed=0)
    env.step(np.array([0.3, -0.7], dtype=np.float32))
    obs2, _info2 = env.reset(seed=0)
    np.testing.assert_array_equal(obs1, obs2)
    np.testing.assert_array_equal(obs1, [0.0, 0.0])
    np.testing.assert_array_equal(info1["position"], [0.0, 0.0])
    assert env.unwrapped.path.shape == (1, 2)
