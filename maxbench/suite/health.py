"""Watchdogs for a running cell: a graceful stop request, and non-finite losses or parameters.

A stop request (SIGTERM in a worker, Ctrl-C in the parent) is honoured at the next env step:
SB3's ``learn`` returns cleanly, the runner writes a checkpoint at that timestep and marks the
cell interrupted. A NaN or an infinity in a parameter or a logged loss stops the cell as failed,
naming the tensor and the timestep, instead of training on garbage for hours.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

import torch
from stable_baselines3.common.callbacks import BaseCallback

_STOP = threading.Event()


def request_stop() -> None:
    """Ask the cell running in this process to checkpoint and stop at its next step."""
    _STOP.set()


def stop_requested() -> bool:
    """Whether a stop was requested."""
    return _STOP.is_set()


def clear_stop() -> None:
    """Forget a stop request (a new cell starts in this process)."""
    _STOP.clear()


class NonFiniteError(RuntimeError):
    """A loss or a parameter became NaN or infinite."""


def explain_crash(model: object, error: Exception) -> NonFiniteError | None:
    """If ``model`` holds a non-finite parameter, the real reason behind ``error``; else None.

    NaN weights often surface first as an error elsewhere (a distribution that rejects NaN
    means, an assertion in an environment); the parameter is what the user needs to hear about.
    """
    policy = getattr(model, "policy", None)
    name = first_non_finite_parameter(policy) if isinstance(policy, torch.nn.Module) else None
    if name is None:
        return None
    timestep = getattr(model, "num_timesteps", "?")
    return NonFiniteError(
        f"non-finite parameter {name} at timestep {timestep} "
        f"(surfaced as {type(error).__name__}: {str(error).splitlines()[0]})"
    )


def first_non_finite_parameter(module: torch.nn.Module) -> str | None:
    """The name of the first parameter or buffer holding a NaN or an infinity, or None."""
    with torch.no_grad():
        for name, tensor in [*module.named_parameters(), *module.named_buffers()]:
            if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
                return name
    return None


def first_non_finite_loss(values: dict[str, object]) -> str | None:
    """The first logged ``*loss*`` or ``*ent_coef*`` value that is NaN or infinite, or None."""
    for key, value in values.items():
        watched = "loss" in key or "ent_coef" in key
        if watched and isinstance(value, (int, float)) and not math.isfinite(float(value)):
            return key
    return None


#: Seconds between two progress reports from inside training (the default of CellWatchdog).
PROGRESS_INTERVAL_S = 0.5


class CellWatchdog(BaseCallback):
    """Reports progress, honours stop requests, and checks for non-finite values.

    ``report`` gets the timestep at most every ``interval`` seconds (default
    :data:`PROGRESS_INTERVAL_S`); parameters and losses are checked every ``check_every`` env
    steps (a check costs about one small forward pass).
    """

    def __init__(
        self,
        report: Callable[[int], None] | None,
        interval: float | None = None,
        check_every: int = 100,
    ) -> None:
        super().__init__()
        if interval is None:
            interval = PROGRESS_INTERVAL_S
        self.report, self.interval, self.check_every = report, interval, check_every
        self.last_report = 0.0
        self.last_check = 0

    def check_losses(self) -> None:
        """Raise NonFiniteError if a logged loss is not finite (cheap: a dict scan)."""
        loss = first_non_finite_loss(self.model.logger.name_to_value)
        if loss is not None:
            raise NonFiniteError(f"non-finite {loss} at timestep {self.num_timesteps}")

    def check(self) -> None:
        """Raise NonFiniteError if a parameter or a logged loss is not finite."""
        self.check_losses()
        parameter = first_non_finite_parameter(self.model.policy)
        if parameter is not None:
            raise NonFiniteError(
                f"non-finite parameter {parameter} at timestep {self.num_timesteps}"
            )

    def _on_rollout_start(self) -> None:
        # Off-policy algorithms train between rollouts: a diverged loss shows here first.
        self.check_losses()

    def _on_step(self) -> bool:
        if self.num_timesteps - self.last_check >= self.check_every:
            self.last_check = self.num_timesteps
            self.check()
        now = time.monotonic()
        if self.report is not None and now - self.last_report >= self.interval:
            self.last_report = now
            self.report(self.num_timesteps)
        return not stop_requested()
