"""Build a cell's training and evaluation environments from its spec."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gymnasium as gym
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv

import maxbench.envs  # noqa: F401  (registers maxbench's own environments)
from maxbench.registry import import_target
from maxbench.suite.cells import Cell


def env_factory(cell: Cell) -> Callable[[], gym.Env]:
    """A function that makes one environment of the cell, wrappers applied in order."""

    def make() -> gym.Env:
        kwargs: dict[str, Any] = dict(cell.env_kwargs)
        if cell.max_episode_steps is not None:
            kwargs["max_episode_steps"] = cell.max_episode_steps
        env = gym.make(cell.env_id, **kwargs)
        for wrapper in cell.wrappers:
            wrap = import_target(wrapper["target"], what="wrapper")
            env = wrap(env, **(wrapper.get("kwargs") or {}))
        return env

    return make


def training_env(cell: Cell, seed: int) -> VecEnv:
    """``cell.n_envs`` copies in a DummyVecEnv, each in a Monitor, seeded from ``seed``."""
    return make_vec_env(env_factory(cell), n_envs=cell.n_envs, seed=seed)


def evaluation_env(cell: Cell) -> VecEnv:
    """One separate copy for evaluation (seeded per evaluation by the runner)."""
    return make_vec_env(env_factory(cell), n_envs=1, vec_env_cls=DummyVecEnv)
