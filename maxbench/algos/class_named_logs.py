"""``learn()`` whose TensorBoard run is named after the algorithm's class.

Every SB3 algorithm overrides ``learn`` only to change the default ``tb_log_name``; maxbench's
algorithms inherit this one instead of repeating the override.
"""

from __future__ import annotations

from typing import Any

from stable_baselines3.common.type_aliases import MaybeCallback

__all__ = ["ClassNamedLogs"]


class ClassNamedLogs:
    """Mixin (before the SB3 base class): ``tb_log_name`` defaults to the class's name."""

    def learn(
        self,
        total_timesteps: int,
        callback: MaybeCallback = None,
        log_interval: int = 4,
        tb_log_name: str | None = None,
        reset_num_timesteps: bool = True,
        progress_bar: bool = False,
    ) -> Any:
        return super().learn(  # type: ignore[misc]
            total_timesteps=total_timesteps,
            callback=callback,
            log_interval=log_interval,
            tb_log_name=type(self).__name__ if tb_log_name is None else tb_log_name,
            reset_num_timesteps=reset_num_timesteps,
            progress_bar=progress_bar,
        )
