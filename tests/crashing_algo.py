"""An SB3 algorithm that crashes mid-training, to test that a crash stays inside its cell."""

from __future__ import annotations

from typing import Any

from stable_baselines3 import SAC


class CrashingSAC(SAC):
    """SAC whose ``train`` raises once it is called (after ``learning_starts``)."""

    def train(self, gradient_steps: int, batch_size: int = 64) -> None:
        raise RuntimeError("deliberate crash inside train()")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
