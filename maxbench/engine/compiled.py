"""Pieces of the engine that make one gradient step cheap (issue 14): compile, fused updates, logs.

* :func:`compile_step`: ``torch.compile`` of an algorithm's gradient step (a function over a
  batch that computes the losses, calls ``backward`` and the optimisers' ``step``): inductor on
  CPU; on CUDA ``mode="reduce-overhead"``, which replays the step as CUDA graphs (the optimisers
  must then be ``capturable``: :func:`tune_optimizer`). Off, the eager function itself.
* :func:`tune_optimizer`: switch an existing ``torch.optim`` optimiser to its multi-tensor
  (``foreach``) implementation, and ``capturable`` on CUDA, without changing its mathematics.
* :func:`polyak_`: the target update ``θ' ← (1 − τ) θ' + τ θ`` as one ``torch._foreach_lerp_``
  over all parameters (SB3's ``polyak_update`` loops over them one by one).
* :class:`DeviceMeans`: logged values summed on the device and read once, at logging time, so a
  gradient step never waits for the host (no ``.item()`` per step).

It knows no algorithm (DESIGN.md: algos → engine).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch

__all__ = ["DeviceMeans", "compile_step", "polyak_", "tune_optimizer"]


def compile_step(
    function: Callable[..., Any],
    compile: bool | str,
    device: torch.device,  # noqa: A002
) -> Callable:
    """``function`` compiled for ``device``, or ``function`` itself when ``compile`` is False.

    ``True`` is inductor (CUDA graphs on CUDA); a string names another ``torch.compile``
    backend, e.g. ``"aot_eager"`` (traced and run through AOTAutograd, no code generation:
    what the tests use to check the API quickly, and a debugging aid).
    """
    if compile is False:
        return function
    if isinstance(compile, str):
        return torch.compile(function, backend=compile)
    if torch.device(device).type == "cuda":
        return torch.compile(function, mode="reduce-overhead")
    return torch.compile(function)


def tune_optimizer(optimizer: torch.optim.Optimizer, device: torch.device) -> None:
    """Use the optimiser's multi-tensor kernels (and ``capturable`` on CUDA), same mathematics."""
    cuda = torch.device(device).type == "cuda"
    for group in optimizer.param_groups:
        if "foreach" in group:
            group["foreach"] = True
        if cuda and "capturable" in group:
            group["capturable"] = True
    if cuda:  # capturable Adam keeps its step counters on the device
        for state in optimizer.state.values():
            step = state.get("step")
            if isinstance(step, torch.Tensor):
                state["step"] = step.to(device=device, dtype=torch.float32)


@torch.no_grad()
def polyak_(params: Iterable[torch.Tensor], targets: Iterable[torch.Tensor], tau: float) -> None:
    """``target ← target + τ (param − target)`` for every pair, in one multi-tensor call."""
    sources, destinations = list(params), list(targets)
    if len(sources) != len(destinations):
        raise ValueError(
            f"{len(sources)} parameters but {len(destinations)} target parameters: "
            "the networks differ"
        )
    if sources:
        torch._foreach_lerp_(destinations, sources, tau)


class DeviceMeans:
    """Sums of logged scalars kept on the device; :meth:`read` returns their means (one sync)."""

    def __init__(self) -> None:
        self._sums: dict[str, torch.Tensor] = {}
        self._counts: dict[str, int] = {}

    def add(self, name: str, value: torch.Tensor) -> None:
        """Add a scalar tensor (detached) to ``name``'s sum."""
        value = value.detach().reshape(())
        if name in self._sums:
            self._sums[name] = self._sums[name] + value
        else:
            self._sums[name] = value.clone()
        self._counts[name] = self._counts.get(name, 0) + 1

    def read(self) -> dict[str, float]:
        """Every name's mean over what was added since the last read; then start over."""
        if not self._sums:
            return {}
        names = list(self._sums)
        values = torch.stack([self._sums[n] for n in names]).double().cpu().tolist()
        means = {n: v / self._counts[n] for n, v in zip(names, values, strict=True)}
        self._sums.clear()
        self._counts.clear()
        return means
