"""State-conditioned normalizing-flow layers for the SAC-NF actor (zuko transforms).

SAC-NF (Mazoure et al. 2020, "Leveraging exploration in off-policy algorithms via normalizing
flows", §3) pushes a sample of a state-conditioned Gaussian through a few invertible layers before
the tanh squash, and keeps the policy's log-density exact by the change of variables
``log q(u) = log N(z) - sum_k log |det dT_k/dx|``.

The layers are zuko's masked autoregressive transforms (Papamakarios et al. 2017; zuko
``MaskedAutoregressiveTransform``), conditioned on the actor's latent state features. A
transform's forward direction ``y_i = f(x_i | x_<i, c)`` needs one network pass and returns its
exact log-determinant, so we *sample* in that direction (the inverse-autoregressive-flow use of
Kingma et al. 2016) and only invert, in ``d`` sequential passes, when a given action has to be
scored (:meth:`ConditionalFlow.inverse`, used by tests and probes, never in training). The
ordering of the action dimensions alternates between layers so every dimension conditions on
every other one after two layers. With one action dimension zuko uses an element-wise transform
whose parameters come from the context alone.

Two univariate families are offered:

* ``"spline"`` (default): monotonic rational-quadratic splines on ``[-bound, bound]``, the
  identity outside (Durkan et al. 2019, "Neural Spline Flows"). They are non-Gaussian even in one
  dimension, which affine layers are not.
* ``"affine"``: ``y = exp(a) x + b`` (MAF/IAF affine layers).

Under ``torch.compile`` (SAC-NF's ``compile`` option, issue 14) the splines are built by
:class:`CompilableRQSTransform`: the same knots, with a cumulative-sum backward that inductor's CPU
code generator compiles correctly (see there); run eagerly they are zuko's own.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import partial
from typing import Any

import torch
import torch.nn.functional as F
import zuko
from torch import nn

__all__ = ["FLOW_TYPES", "CompilableRQSTransform", "ConditionalFlow"]

#: The univariate transform families of :class:`ConditionalFlow`.
FLOW_TYPES = ("spline", "affine")


class _CumsumLastAxis(torch.autograd.Function):
    """``torch.cumsum(x, dim=-1)`` with its backward, the reversed cumulative sum
    ``r_i = sum_{j >= i} g_j``, written ``sum(g) - cumsum(g) + g`` rather than autograd's
    ``flip(cumsum(flip(g)))`` (the same sums, rounded differently)."""

    @staticmethod
    def forward(x: torch.Tensor) -> torch.Tensor:
        return torch.cumsum(x, dim=-1)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: Any) -> None:
        pass

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        return grad.sum(dim=-1, keepdim=True) - torch.cumsum(grad, dim=-1) + grad


def _knots(unconstrained: torch.Tensor, bound: float) -> torch.Tensor:
    """Spline knots ``bound (2 cumsum([0, softmax(v)]) - 1)`` on ``[-bound, bound]`` (zuko's)."""
    mass = F.pad(F.softmax(unconstrained, dim=-1), (1, 0), value=0)
    return bound * (2 * _CumsumLastAxis.apply(mass) - 1)


class CompilableRQSTransform(zuko.transforms.MonotonicRQSTransform):
    """zuko's monotonic rational-quadratic spline (Durkan et al. 2019), safe to ``torch.compile``.

    Eagerly it *is* zuko's transform (its own constructor runs). Under ``torch.compile`` the knots
    are built by the same formula as zuko's (1.6) constructor, but their cumulative sums go
    through :class:`_CumsumLastAxis`: with autograd's ``flip(cumsum(flip(g)))`` backward, inductor's
    CPU code generator (torch 2.13) fuses the flipped read with the softmax backward into a
    row-tiled loop whose per-row local buffer is shared by the tile's rows, and returns wrong
    width and height gradients (tens of percent off) for any batch of more than one state.
    ``tests/test_compile_sacnf.py`` checks that the two constructions give the same knots.
    """

    def __init__(
        self,
        widths: torch.Tensor,
        heights: torch.Tensor,
        derivatives: torch.Tensor,
        bound: float = 5.0,
        slope: float = 1e-3,
        **kwargs: Any,
    ) -> None:
        if not torch.compiler.is_compiling():
            super().__init__(widths, heights, derivatives, bound=bound, slope=slope, **kwargs)
            return
        zuko.transforms.Transform.__init__(self, **kwargs)
        widths = widths / (1 + abs(2 * widths / math.log(slope)))
        heights = heights / (1 + abs(2 * heights / math.log(slope)))
        derivatives = derivatives / (1 + abs(derivatives / math.log(slope)))
        self.horizontal = _knots(widths, bound)
        self.vertical = _knots(heights, bound)
        self.derivatives = torch.exp(F.pad(derivatives, (1, 1), value=0))


class ConditionalFlow(nn.Module):
    """A stack of ``n_layers`` zuko masked autoregressive transforms conditioned on a context.

    Args:
        features: dimension ``d`` of the transformed variable (the action dimension).
        context: dimension of the conditioning vector (the actor's latent state features).
        n_layers: number of invertible layers ``K`` (Mazoure et al. use a few; default 2).
        flow_type: ``"spline"`` or ``"affine"`` (see the module docstring).
        bins: spline bins per dimension (``"spline"`` only).
        bound: the splines act on ``[-bound, bound]`` and are the identity outside it.
        hidden_features: hidden widths of each layer's (masked) conditioner network.
    """

    def __init__(
        self,
        features: int,
        context: int,
        n_layers: int = 2,
        flow_type: str = "spline",
        bins: int = 8,
        bound: float = 5.0,
        hidden_features: Sequence[int] = (64, 64),
    ) -> None:
        super().__init__()
        if flow_type not in FLOW_TYPES:
            raise ValueError(f"flow_type must be one of {FLOW_TYPES}, got {flow_type!r}")
        if n_layers < 1:
            raise ValueError(f"n_layers must be at least 1, got {n_layers}")
        if flow_type == "spline":
            univariate = partial(CompilableRQSTransform, bound=bound)
            shapes: list[tuple[int, ...]] = [(bins,), (bins,), (bins - 1,)]
        else:
            univariate = zuko.transforms.MonotonicAffineTransform
            shapes = [(), ()]
        ascending = torch.arange(features)
        self.layers = nn.ModuleList(
            zuko.flows.MaskedAutoregressiveTransform(
                features=features,
                context=context,
                order=ascending if k % 2 == 0 else ascending.flip(0),
                univariate=univariate,
                shapes=shapes,
                hidden_features=tuple(hidden_features),
            )
            for k in range(n_layers)
        )

    def forward(self, z: torch.Tensor, context: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Push ``z`` through all layers (one pass each).

        Args:
            z: ``(B, d)`` base samples.
            context: ``(B, c)`` conditioning features.

        Returns:
            ``u`` ``(B, d)`` and ``log |det du/dz|`` ``(B,)`` (summed over layers and dimensions).
        """
        log_det = z.new_zeros(z.shape[:-1])
        for layer in self.layers:
            z, ladj = layer(context).call_and_ladj(z)
            log_det = log_det + ladj
        return z, log_det

    def inverse(self, u: torch.Tensor, context: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Invert :meth:`forward` (``d`` sequential passes per layer).

        Args:
            u: ``(B, d)`` flow outputs.
            context: ``(B, c)`` conditioning features.

        Returns:
            ``z`` ``(B, d)`` with ``forward(z) == u`` and ``log |det du/dz|`` ``(B,)`` at that ``z``
            (the same quantity :meth:`forward` returns, so ``log q(u) = log N(z) - it``).
        """
        log_det = u.new_zeros(u.shape[:-1])
        for layer in reversed(self.layers):
            transform = layer(context)
            u = transform.inv(u)
            _, ladj = transform.call_and_ladj(u)
            log_det = log_det + ladj
        return u, log_det
