"""Guards on the installed dependencies that maxbench needs but does not import at startup.

rliable 1.2 needs arch < 8, and arch 7 breaks under pandas 3, so the constraints pin pandas < 3;
the MuJoCo and Box2D extras of gymnasium must be installed for the benchmark suites.
"""

from __future__ import annotations

import importlib

import gymnasium as gym
import numpy as np
import pytest


def test_pandas_is_older_than_3() -> None:
    import pandas

    major = int(pandas.__version__.split(".")[0])
    assert major < 3, (
        f"pandas {pandas.__version__}: rliable 1.2 (through arch < 8) needs pandas < 3"
    )


@pytest.mark.parametrize("module", ["rliable.library", "rliable.metrics", "rliable.plot_utils"])
def test_rliable_imports(module: str) -> None:
    importlib.import_module(module)


def test_rliable_computes_an_interval_estimate() -> None:
    from rliable import library, metrics

    scores = {"algo": np.linspace(0.0, 1.0, 12).reshape(4, 3)}  # runs x tasks
    estimates, intervals = library.get_interval_estimates(
        scores, lambda x: np.array([metrics.aggregate_iqm(x)]), reps=20
    )
    assert estimates["algo"].shape == (1,)
    assert intervals["algo"].shape == (2, 1)


@pytest.mark.filterwarnings("ignore:builtin type .* has no __module__:DeprecationWarning")
@pytest.mark.parametrize(
    ("env_id", "backend"),
    [
        ("HalfCheetah-v5", "mujoco"),
        ("LunarLanderContinuous-v3", "Box2D"),
        ("MultiGoal-v0", "maxbench.envs"),
    ],
)
def test_environment_can_be_made(env_id: str, backend: str) -> None:
    import maxbench.envs  # noqa: F401  (registers MultiGoal-v0 and the other maxbench ids)

    env = gym.make(env_id)
    try:
        assert isinstance(env.action_space, gym.spaces.Box), backend
        observation, _ = env.reset(seed=0)
        assert env.observation_space.contains(observation)
        observation, reward, terminated, truncated, _ = env.step(env.action_space.sample())
        assert np.isfinite(reward)
        assert isinstance(terminated, bool) and isinstance(truncated, bool)
    finally:
        env.close()
