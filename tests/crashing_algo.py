"""SB3 algorithms that misbehave on purpose, to test that the damage stays inside their cell."""

from __future__ import annotations

import torch
from stable_baselines3 import SAC


class CrashingSAC(SAC):
    """SAC whose ``train`` raises once it is called (after ``learning_starts``)."""

    def train(self, gradient_steps: int, batch_size: int = 64) -> None:
        raise RuntimeError("deliberate crash inside train()")


class NaNSAC(SAC):
    """SAC whose actor weights turn NaN at the first gradient step (a diverging run)."""

    def train(self, gradient_steps: int, batch_size: int = 64) -> None:
        super().train(gradient_steps, batch_size)
        with torch.no_grad():
            next(self.actor.parameters()).fill_(float("nan"))
