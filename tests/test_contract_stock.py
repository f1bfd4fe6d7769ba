"""The SB3 contract harness run on SB3's own SAC: it must pass on the reference implementation."""

from __future__ import annotations

from stable_baselines3 import SAC

from sb3_contract import SB3Contract


class TestSACContract(SB3Contract):
    algorithm = SAC
    hyperparams = {"learning_starts": 16, "batch_size": 16, "policy_kwargs": {"net_arch": [16]}}
    logger_keys = ("train/actor_loss", "train/critic_loss", "train/ent_coef")
