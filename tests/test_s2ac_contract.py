"""The stable-baselines3 contract (tests/sb3_contract.py) for the three S2AC variants (§1.1)."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from maxbench.algos.s2ac import S2AC

from sb3_contract import SB3Contract

_TINY: dict[str, Any] = {
    "learning_starts": 16,
    "random_exploration_steps": 0,
    "batch_size": 16,
    "train_freq": 1,
    "gradient_steps": 1,
    "n_particles": 4,
    "svgd_steps": 2,
    "policy_kwargs": {"net_arch": [16]},
}
_KEYS = ("train/actor_loss", "train/critic_loss", "train/ent_coef", "train/entropy")


@pytest.fixture(autouse=True, scope="module")
def _single_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


class TestS2ACPhiThetaContract(SB3Contract):
    """S2AC(phi, theta): the default, learned q0, with alpha tuned (the extension)."""

    algorithm = S2AC
    hyperparams = {**_TINY, "ent_coef": "auto"}
    logger_keys = (*_KEYS, "train/ent_coef_loss")


class TestS2ACPhiContract(SB3Contract):
    """S2AC(phi): fixed q0, nothing to train in the actor."""

    algorithm = S2AC
    hyperparams = {**_TINY, "init": "fixed"}
    logger_keys = _KEYS


class TestS2ACAmortizedContract(SB3Contract):
    """S2AC(phi, theta, psi): acts with the amortised sampler."""

    algorithm = S2AC
    hyperparams = {**_TINY, "amortized": True, "sampler_temperature": "alpha"}
    logger_keys = (*_KEYS, "train/amortized_loss")
