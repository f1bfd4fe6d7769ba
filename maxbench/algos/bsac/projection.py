"""The forward-KL projection of Bidirectional SAC: quadrature moments and the Gaussian KL.

Bidirectional SAC (arXiv 2506.01639; spec ``algorithms.md`` §2) projects the Boltzmann policy
q(a|s) ∝ exp(Q(s, a)/α) onto a diagonal Gaussian by the *forward* KL. The minimiser of
KL(q ‖ N(μ, diag σ²)) matches moments: per dimension, μ_i = E_{q_i}[u_i], σ_i² = Var_{q_i}[u_i],
so only the 1-D marginals q_i are needed. KL is invariant under the bijection a = tanh(u), so for a
tanh-squashed Gaussian actor the exact projection is taken in the latent u = atanh(a):

    μ_i = E_{q_i}[atanh a_i],  σ_i² = Var_{q_i}[atanh a_i],  q_i(a_i|s) ∝ exp(Q_i(s, a_i)/α),

a density *in a* on (−1, 1). This module computes those moments by 1-D quadrature, batched over any
leading dimensions (states × action dimensions) with no Python loop, and the closed-form KL between
the projected Gaussian and the actor's Gaussian that the forward step minimises.

The quadrature (a maxbench decision; the paper's formulas did not survive, spec §2)
--------------------------------------------------------------------------------------
Spec §2 fixes G = 64 points in (−1, 1) with the endpoints kept inside ±(1 − 1e−3). Within that:

* **Nodes**: Gauss–Legendre nodes scaled to [−b, b], b = 1 − ε (ε = 1e−3), weights scaled by b.
  The outermost node for G = 64 is at ±0.99830. Gauss–Legendre was chosen over a uniform
  trapezoid grid because atanh has logarithmic singularities at ±1: a uniform grid is spectrally
  accurate for peaked marginals in the interior but loses 0.06–0.09 on the variance of a wide
  marginal, while Gauss–Legendre clusters nodes at the ends.
* **The two end slivers** (b, 1) and (−1, −b), where no node may lie, are not dropped: q is taken
  as constant there (its value at the outermost node) and the exact integrals of atanh and atanh²
  over a sliver (computed once, in float64, by Gauss–Laguerre quadrature after the substitution
  1 − a = ε e^{−y}) are merged into the outermost nodes. Each node g therefore carries a weight
  w_g, the mean m_g of u over its cell, and the within-cell variance v_g of u (zero except at the
  two ends), and

      E[u] = Σ_g p_g m_g,   Var[u] = Σ_g p_g ((m_g − E[u])² + v_g),
      p_g = softmax_g(Q(a_g)/α + log w_g).

  Without the slivers a flat marginal loses ≈ 0.019 of its variance (the sliver holds
  ∫ atanh² ≈ 0.0187 per side).

Measured accuracy (G = 64, float64, marginal q(a) ∝ exp(−(a−m)²/(2s²)) on (−1, 1), against
``scipy.integrate.quad``; worst absolute error on mean or variance of u):

* ≤ 6e−5 for s ≥ 0.3 anywhere in the box, including flat marginals (3e−5 at s = 3);
* ≤ 2e−4 for 0.03 ≤ s ≤ 0.1 with |m| ≤ 0.9 (≤ 2e−5 for |m| ≤ 0.7);
* up to 3e−3 for very narrow peaks (s = 0.02, narrower than the node spacing ≈ π/G ≈ 0.05 near
  the centre) and for narrow modes at a bound (m = 0.95 to 1, s ≤ 0.05);
* 3e−3 to 0.3 when the mode lies beyond the box (m = 1.2, s ≤ 0.1): the mass piles up against
  the bound, u = atanh(a) has a heavy tail that no grid inside ±(1 − 1e−3) resolves, and the true
  mean of u is 2 to 4 (|a| > 0.96), so the error does not change the squashed action.

With the temperature α tuned to SAC's target entropy −d the marginals' width in u is ≈ 0.1, well
inside the accurate regime.

Cost: the moments are one softmax and two weighted sums over G per (state, dimension):
O(B · d · G) work and memory, negligible beside the networks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

__all__ = [
    "DEFAULT_EDGE",
    "DEFAULT_GRID_SIZE",
    "QuadratureGrid",
    "boltzmann_marginal_moments",
    "forward_kl_loss",
    "gaussian_kl",
    "quadrature_grid",
    "sliver_integrals",
]

#: Grid size G of spec §2.
DEFAULT_GRID_SIZE = 64
#: Distance ε of the outermost admissible node from ±1 (spec §2: nodes inside ±(1 − 1e−3)).
DEFAULT_EDGE = 1e-3
#: Gauss–Laguerre nodes for the sliver integrals (exact to float64 precision already at ~30).
_LAGUERRE_NODES = 64


@dataclass(frozen=True)
class QuadratureGrid:
    """A 1-D quadrature rule on (−1, 1) for moments of u = atanh(a) (see the module docstring).

    Attributes:
        actions: ``(G,)`` nodes a_g, all inside ±(1 − ε); the points where Q_i is evaluated.
        log_weights: ``(G,)`` log of the quadrature weights w_g of the measure da (they sum to 2).
        latent_mean: ``(G,)`` mean m_g of u over node g's cell (atanh(a_g) except at the ends).
        latent_var: ``(G,)`` within-cell variance v_g of u (zero except at the two ends).
    """

    actions: torch.Tensor
    log_weights: torch.Tensor
    latent_mean: torch.Tensor
    latent_var: torch.Tensor

    @property
    def size(self) -> int:
        """Number of nodes G."""
        return int(self.actions.shape[0])

    def to(self, device: torch.device | str, dtype: torch.dtype = torch.float32) -> QuadratureGrid:
        """The same grid as tensors on ``device`` with ``dtype``."""
        return QuadratureGrid(
            *(
                t.to(device=device, dtype=dtype)
                for t in (self.actions, self.log_weights, self.latent_mean, self.latent_var)
            )
        )


def sliver_integrals(edge: float = DEFAULT_EDGE) -> tuple[float, float]:
    """``(∫_{1−ε}^1 atanh(a) da, ∫_{1−ε}^1 atanh(a)² da)`` in float64.

    Substituting 1 − a = ε e^{−y} turns each into ε ∫_0^∞ atanh(1 − ε e^{−y})^k e^{−y} dy, whose
    integrand grows like a polynomial in y: Gauss–Laguerre quadrature is exact to round-off.
    """
    y, w = np.polynomial.laguerre.laggauss(_LAGUERRE_NODES)
    t = edge * np.exp(-y)  # 1 - a, in (0, ε]
    u = 0.5 * (np.log(2.0 - t) - np.log(t))  # atanh(1 - t) without cancellation
    return float(edge * np.sum(w * u)), float(edge * np.sum(w * u * u))


def quadrature_grid(
    size: int = DEFAULT_GRID_SIZE,
    edge: float = DEFAULT_EDGE,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> QuadratureGrid:
    """Gauss–Legendre nodes on [−(1−ε), 1−ε] with the end slivers merged in (module docstring).

    Built in float64, then cast to ``dtype`` on ``device``.
    """
    if size < 2:
        raise ValueError(f"grid size must be at least 2, got {size}")
    if not 0.0 < edge < 1.0:
        raise ValueError(f"edge must lie in (0, 1), got {edge}")
    bound = 1.0 - edge
    x, w = np.polynomial.legendre.leggauss(size)
    actions = bound * x
    weights = bound * w
    latent = np.arctanh(actions)
    first, second = sliver_integrals(edge)
    mean = latent.copy()
    second_moment = latent * latent
    for index, sign in ((-1, 1.0), (0, -1.0)):  # right end: +∫atanh; left end: -∫atanh (odd)
        merged = weights[index] + edge
        mean[index] = (weights[index] * latent[index] + sign * first) / merged
        second_moment[index] = (weights[index] * latent[index] ** 2 + second) / merged
        weights[index] = merged
    variance = np.maximum(second_moment - mean * mean, 0.0)
    return QuadratureGrid(
        *(
            torch.as_tensor(array, dtype=torch.float64).to(device=device, dtype=dtype)
            for array in (actions, np.log(weights), mean, variance)
        )
    )


def boltzmann_marginal_moments(
    scaled_q: torch.Tensor, grid: QuadratureGrid
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and variance of u = atanh(a) under q(a) ∝ exp(scaled_q(a)) on (−1, 1).

    Args:
        scaled_q: ``(..., G)`` values Q_i(s, a_g)/α at the grid's nodes, any leading shape
            (typically ``(B, d, G)``); an additive constant per row does not matter.
        grid: the quadrature rule the values were taken on.

    Returns:
        ``(mean, var)``, each of shape ``scaled_q.shape[:-1]``: μ_i and σ_i² of spec §2.
    """
    probs = torch.softmax(scaled_q + grid.log_weights, dim=-1)
    mean = (probs * grid.latent_mean).sum(-1)
    centred = grid.latent_mean - mean.unsqueeze(-1)
    var = (probs * (centred * centred + grid.latent_var)).sum(-1)
    return mean, var


def gaussian_kl(
    mean_p: torch.Tensor, var_p: torch.Tensor, mean_q: torch.Tensor, var_q: torch.Tensor
) -> torch.Tensor:
    """Elementwise KL(N(mean_p, var_p) ‖ N(mean_q, var_q)) between 1-D Gaussians.

    ½ [log(var_q/var_p) + (var_p + (mean_p − mean_q)²)/var_q − 1].
    """
    return 0.5 * (
        torch.log(var_q) - torch.log(var_p) + (var_p + (mean_p - mean_q) ** 2) / var_q - 1.0
    )


def forward_kl_loss(
    target_mean: torch.Tensor,
    target_var: torch.Tensor,
    mean: torch.Tensor,
    var: torch.Tensor,
) -> torch.Tensor:
    """The forward step's loss: KL(N(μ*, σ*²) ‖ N(μθ, σθ²)), summed over dims, batch-averaged.

    The targets (μ*, σ*²) are the projected moments and are detached here (spec §2: "targets
    detached"), so the gradient only moves the actor's (μθ, σθ²) of shape ``(B, d)``. The loss is
    zero, and its gradient vanishes, exactly at μθ = μ*, σθ² = σ*².
    """
    kl = gaussian_kl(target_mean.detach(), target_var.detach(), mean, var)
    return kl.sum(-1).mean()
