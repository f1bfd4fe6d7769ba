"""Batched Stein variational gradient descent (SVGD) with a closed-form log-density.

This module is the mathematical core of S2AC (Stein Soft Actor-Critic, Messaoud et al. 2024,
arXiv 2405.00987, §3.2-3.3) and is shared with the Soft Q-Learning baseline (amortised SVGD,
Haarnoja et al. 2017). SVGD itself is Liu & Wang (2016), "Stein Variational Gradient Descent".

Conventions used throughout:

* ``B`` = batch of states, ``m`` = particles per state, ``d`` = particle (action) dimension.
* Particles ``u`` have shape ``(B, m, d)``; scores ``s_j = grad_u log p(u_j)`` have the same shape.
* Kernel matrices are indexed ``K[b, j, i] = k(u_j, u_i)``: the *second-to-last* index ``j`` is the
  particle that exerts the force (summed over in the SVGD field), the *last* index ``i`` is the
  particle / query point the field is evaluated at. The RBF kernel is symmetric, so for the
  particle-particle kernel this is only a naming convention, but it matters for
  :func:`stein_direction` where the two sets differ (there ``K`` has shape ``(B, m, n)``).
* ``sigma`` always means the kernel *standard deviation* sigma_k
  (``k = exp(-|x-y|^2/(2 sigma_k^2))``); functions return ``sigma2 = sigma_k^2`` with shape
  ``(B, 1, 1)``.

Everything is batched over ``B`` (no Python loop over states); the only Python loop is over SVGD
steps in :func:`svgd_sample`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

__all__ = [
    "SVGDResult",
    "adaptive_bandwidth",
    "rbf_kernel",
    "score_from_log_prob",
    "stein_direction",
    "svgd_field",
    "svgd_field_and_trace",
    "svgd_logdensity_trace",
    "svgd_sample",
    "tanh_log_det_jacobian",
    "truncated_normal_particles",
]

#: Lower bound on the adaptive kernel variance sigma_k^2. Only reached when all particles of a state
#: coincide (then every pairwise distance is 0 and the kernel is constant anyway).
MIN_BANDWIDTH = 1e-12

#: Truncation of the initial normal, in standard deviations (S2AC §3.3: "mu +- 3 sigma").
TRUNCATION = 3.0

SigmaLike = float | torch.Tensor | None


def _pairwise(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Differences and squared distances between two particle sets.

    Args:
        x: ``(B, m, d)`` source points ``x_j``.
        y: ``(B, n, d)`` target points ``y_i``.

    Returns:
        ``diff`` of shape ``(B, m, n, d)`` with ``diff[b, j, i] = x_j - y_i`` and ``sq`` of shape
        ``(B, m, n)`` with ``sq[b, j, i] = |x_j - y_i|^2`` (computed from ``diff``, so the diagonal
        of a set with itself is exactly 0).
    """
    diff = x.unsqueeze(-2) - y.unsqueeze(-3)
    return diff, diff.pow(2).sum(-1)


def adaptive_bandwidth(sq_dists: torch.Tensor) -> torch.Tensor:
    """Adaptive RBF kernel variance sigma_k^2 per state, detached (S2AC §3.3 / authors' code).

    ``h = (mean of the m x m squared pairwise distances / 2) / (2 log(m + 1))`` and sigma_k^2 = h.
    This is the "mean/2" variant of the median heuristic of Liu & Wang (2016) (the mean includes
    the zero diagonal). The result is detached from the autograd graph: gradients never flow
    through the bandwidth.

    Args:
        sq_dists: ``(B, m, m)`` squared pairwise distances of one particle set.

    Returns:
        ``(B, 1, 1)`` kernel variance sigma_k^2, clamped below at :data:`MIN_BANDWIDTH`.
    """
    m = sq_dists.shape[-1]
    mean_sq = sq_dists.detach().mean(dim=(-2, -1), keepdim=True)
    h = (mean_sq / 2.0) / (2.0 * math.log(m + 1.0))
    return h.clamp_min(MIN_BANDWIDTH)


def _sigma2_from(sigma: SigmaLike, sq_dists: torch.Tensor) -> torch.Tensor:
    """sigma_k^2 with shape ``(B, 1, 1)``: adaptive if ``sigma`` is None, else ``sigma**2``."""
    if sigma is None:
        return adaptive_bandwidth(sq_dists)
    B = sq_dists.shape[0]
    if isinstance(sigma, torch.Tensor):
        s = sigma.to(dtype=sq_dists.dtype, device=sq_dists.device)
        s = s.reshape(-1, 1, 1) if s.dim() <= 1 else s
        return s.pow(2).expand(B, 1, 1)
    if sigma <= 0:
        raise ValueError(f"kernel sigma must be positive, got {sigma}")
    return torch.full((B, 1, 1), float(sigma) ** 2, dtype=sq_dists.dtype, device=sq_dists.device)


def rbf_kernel(u: torch.Tensor, sigma: SigmaLike = None) -> tuple[torch.Tensor, torch.Tensor]:
    """RBF kernel matrix between the particles of each state (S2AC §3.2; Liu & Wang 2016).

    ``k(x, y) = exp(-|x - y|^2 / (2 sigma_k^2))``.

    Args:
        u: ``(B, m, d)`` particles.
        sigma: kernel standard deviation sigma_k: a float (fixed, shared by all states), a tensor of
            shape ``()``, ``(B,)`` or ``(B, 1, 1)``, or ``None`` for the detached adaptive bandwidth
            of :func:`adaptive_bandwidth`.

    Returns:
        ``K`` of shape ``(B, m, m)`` with ``K[b, j, i] = k(u_j, u_i)`` (symmetric), and
        ``sigma2 = sigma_k^2`` of shape ``(B, 1, 1)``.
    """
    _, sq = _pairwise(u, u)
    sigma2 = _sigma2_from(sigma, sq)
    return torch.exp(-sq / (2.0 * sigma2)), sigma2


def score_from_log_prob(
    log_prob_fn: Callable[[torch.Tensor], torch.Tensor],
    u: torch.Tensor,
    create_graph: bool = False,
    temperature: float = 1.0,
) -> torch.Tensor:
    """Score ``s = grad_u log p(u) / temperature`` via autograd (S2AC §3.2, Eq. for phi).

    Args:
        log_prob_fn: maps ``(B, m, d)`` particles to ``(B, m)`` unnormalised log target values.
            It must treat particles independently (``log_prob_fn(u)[b, j]`` depends only on
            ``u[b, j]``), as a Q-function evaluated per action does.
        u: ``(B, m, d)`` particles.
        create_graph: if True the score stays differentiable w.r.t. ``u`` and whatever ``u``
            depends on (needed to backpropagate through SVGD steps). If False the score is
            computed on a detached copy of ``u`` and returned detached.
        temperature: the score is divided by it (use 1.0 if ``log_prob_fn`` already includes it).

    Returns:
        ``(B, m, d)`` scores. Works inside ``torch.no_grad()`` too (grad mode is enabled locally).
        Note: with ``create_graph=True`` a later ``backward`` also reaches the parameters of
        ``log_prob_fn`` (e.g. the critic); zero their gradients before updating them.
    """
    with torch.enable_grad():
        x = u if (create_graph and u.requires_grad) else u.detach().requires_grad_(True)
        lp = log_prob_fn(x)
        (g,) = torch.autograd.grad(lp.sum(), x, create_graph=create_graph)
    if temperature != 1.0:
        g = g / temperature
    return g if create_graph else g.detach()


def svgd_field_and_trace(
    u: torch.Tensor, scores: torch.Tensor, sigma: SigmaLike = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """SVGD field and S2AC's closed-form leave-one-out trace, sharing one kernel evaluation.

    Field (Liu & Wang 2016, Eq. 8; S2AC §3.2), normalised by ``1/m``::

        phi(u_i) = 1/m sum_j [ k(u_j, u_i) s_j + grad_{u_j} k(u_j, u_i) ],
        grad_{u_j} k(u_j, u_i) = -(u_j - u_i) / sigma_k^2 * k(u_j, u_i).

    Trace (S2AC Theorem 3.3, leave-one-out, RBF kernel), normalised by ``1/(m-1)`` as in the
    authors' code::

        Tr grad phi(u_i) = 1/((m-1) sigma_k^2) sum_{j != i} k_ij [ (u_j - u_i)^T s_j + d
                                                                   - |u_i - u_j|^2 / sigma_k^2 ].

    This is the exact trace of the Jacobian of the leave-one-out field
    ``phi_loo(x) = 1/(m-1) sum_{j != i} [k(u_j, x) s_j + grad_{u_j} k(u_j, x)]`` at ``x = u_i``
    with sigma_k, the other particles and their scores held fixed.

    Args:
        u: ``(B, m, d)`` particles, ``m >= 2``.
        scores: ``(B, m, d)`` scores ``s_j = grad log p(u_j)``.
        sigma: kernel std (float / tensor) or None for the adaptive detached bandwidth.

    Returns:
        ``phi`` ``(B, m, d)``, ``trace`` ``(B, m)``, ``sigma2`` ``(B, 1, 1)``.
    """
    m, d = u.shape[-2], u.shape[-1]
    if m < 2:
        raise ValueError("the leave-one-out trace needs at least 2 particles per state")
    diff, sq = _pairwise(u, u)  # diff[b, j, i] = u_j - u_i
    sigma2 = _sigma2_from(sigma, sq)
    K = torch.exp(-sq / (2.0 * sigma2))  # K[b, j, i] = k(u_j, u_i)
    drive = torch.einsum("bji,bjd->bid", K, scores)
    repulse = torch.einsum("bji,bjid->bid", K, diff) / sigma2
    phi = (drive - repulse) / m
    inner = torch.einsum("bjid,bjd->bji", diff, scores) + d - sq / sigma2
    off_diag = 1.0 - torch.eye(m, dtype=u.dtype, device=u.device)
    trace = (K * off_diag * inner).sum(dim=-2) / ((m - 1) * sigma2.squeeze(-1))
    return phi, trace, sigma2


def svgd_field(u: torch.Tensor, scores: torch.Tensor, sigma: SigmaLike = None) -> torch.Tensor:
    """SVGD field phi(u_i) with 1/m normalisation (Liu & Wang 2016; S2AC §3.2).

    Args:
        u: ``(B, m, d)`` particles.
        scores: ``(B, m, d)`` scores; compute them from an energy with
            :func:`score_from_log_prob`.
        sigma: kernel std (float / tensor) or None for the adaptive detached bandwidth.

    Returns:
        ``(B, m, d)`` field; one SVGD step is ``u + step_size * phi``.
    """
    return stein_direction(u, scores, u, sigma=sigma)


def svgd_logdensity_trace(
    u: torch.Tensor, scores: torch.Tensor, sigma: SigmaLike = None
) -> torch.Tensor:
    """Closed-form leave-one-out ``Tr grad phi(u_i)`` (S2AC Theorem 3.3), shape ``(B, m)``.

    See :func:`svgd_field_and_trace` for the formula; one SVGD step changes the log-density by
    ``log q_{l+1}(u_{l+1}) = log q_l(u_l) - step_size * trace``.
    """
    return svgd_field_and_trace(u, scores, sigma)[1]


def stein_direction(
    particles: torch.Tensor,
    scores: torch.Tensor,
    query: torch.Tensor,
    sigma: SigmaLike = None,
) -> torch.Tensor:
    """Kernelised Stein direction evaluated at query points (Liu & Wang 2016; SQL's amortised SVGD).

    ``Delta(x) = 1/m sum_j [ k(a_j, x) s_j + grad_{a_j} k(a_j, x) ]`` for each query point ``x``.
    With ``query = particles`` this is exactly the SVGD field of :func:`svgd_field`.

    Args:
        particles: ``(B, m, d)`` points ``a_j`` carrying the scores.
        scores: ``(B, m, d)`` scores ``s_j = grad log p(a_j)``.
        query: ``(B, n, d)`` evaluation points ``x``.
        sigma: kernel std (float / tensor), or None for the adaptive detached bandwidth computed
            from the pairwise distances of ``particles`` alone (not of ``query``).

    Returns:
        ``(B, n, d)`` direction. Not detached: callers that use it as a fixed ascent direction
        (SQL's surrogate loss) should ``.detach()`` it.
    """
    m = particles.shape[-2]
    diff, sq = _pairwise(particles, query)  # diff[b, j, i] = a_j - x_i
    if sigma is None:
        sigma2 = adaptive_bandwidth(_pairwise(particles, particles)[1])
    else:
        sigma2 = _sigma2_from(sigma, sq)
    K = torch.exp(-sq / (2.0 * sigma2))  # (B, m, n), K[b, j, i] = k(a_j, x_i)
    drive = torch.einsum("bji,bjd->bid", K, scores)
    repulse = torch.einsum("bji,bjid->bid", K, diff) / sigma2
    return (drive - repulse) / m


@dataclass
class SVGDResult:
    """Output of :func:`svgd_sample`.

    Attributes:
        particles: ``(B, m, d)`` final particles u_L (pre-squash actions for S2AC).
        log_q: ``(B, m)`` log q_L(u_L) = log q_0(u_0) - sum_l step_size * Tr grad phi(u_l).
        sigma2: ``(B, 1, 1)`` kernel variance used at the last step (None if ``n_steps == 0``).
    """

    particles: torch.Tensor
    log_q: torch.Tensor
    sigma2: torch.Tensor | None


def svgd_sample(
    u0: torch.Tensor,
    log_q0: torch.Tensor | None,
    log_prob_fn: Callable[[torch.Tensor], torch.Tensor],
    n_steps: int,
    step_size: float,
    sigma: SigmaLike = None,
    create_graph: bool = False,
    temperature: float = 1.0,
) -> SVGDResult:
    """Run ``n_steps`` of SVGD and track each particle's log-density (S2AC §3.2-3.3, Thm 3.3).

    Per step ``l`` (all quantities at the current particles u_l):
    ``s = grad log_prob_fn(u_l) / temperature``; ``u_{l+1} = u_l + step_size * phi(u_l)``;
    ``log q_{l+1} = log q_l - step_size * Tr grad phi(u_l)`` with the leave-one-out closed-form
    trace (:func:`svgd_field_and_trace`).

    Args:
        u0: ``(B, m, d)`` initial particles (e.g. from :func:`truncated_normal_particles`).
        log_q0: ``(B, m)`` their initial log-density, or None for 0 (then ``log_q`` is only the
            accumulated log-density change).
        log_prob_fn: ``(B, m, d) -> (B, m)`` unnormalised log target; for S2AC
            ``min_k Q_k(s, tanh u) / alpha`` (or pass ``temperature=alpha`` and the bare Q).
        n_steps: number of SVGD steps L (0 returns the inputs).
        step_size: epsilon.
        sigma: kernel std (float / tensor) or None for the adaptive detached bandwidth.
        create_graph: True keeps the whole unrolled chain differentiable w.r.t. what ``u0`` and
            ``log_q0`` depend on (the S2AC actor loss backpropagates through all steps into
            mu_theta, sigma_theta); must then be called with grad mode enabled. False detaches the
            particles and log-density after every step so no graph grows (the outputs are
            detached), e.g. for acting or for computing critic targets.
        temperature: divides the score.

    Returns:
        :class:`SVGDResult` with ``particles`` ``(B, m, d)`` and ``log_q`` ``(B, m)``.
    """
    if u0.dim() != 3:
        raise ValueError(f"u0 must have shape (B, m, d), got {tuple(u0.shape)}")
    if create_graph and not torch.is_grad_enabled():
        raise RuntimeError("svgd_sample(create_graph=True) needs grad mode (not torch.no_grad())")
    u = u0
    log_q = (
        torch.zeros(u0.shape[:-1], dtype=u0.dtype, device=u0.device) if log_q0 is None else log_q0
    )
    if not create_graph:
        u, log_q = u.detach(), log_q.detach()
    sigma2: torch.Tensor | None = None
    for _ in range(n_steps):
        scores = score_from_log_prob(log_prob_fn, u, create_graph, temperature)
        if create_graph:
            phi, trace, sigma2 = svgd_field_and_trace(u, scores, sigma)
            u = u + step_size * phi
            log_q = log_q - step_size * trace
        else:
            with torch.no_grad():
                phi, trace, sigma2 = svgd_field_and_trace(u, scores, sigma)
                u = (u + step_size * phi).detach()
                log_q = (log_q - step_size * trace).detach()
    return SVGDResult(particles=u, log_q=log_q, sigma2=sigma2)


def truncated_normal_particles(
    mu: torch.Tensor,
    std: torch.Tensor,
    m: int,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Reparameterised initial particles from N(mu, std^2) truncated to mu +- 3 std (S2AC §3.3).

    Inverse-CDF sampling, no rejection loop::

        u0 = mu + std * ndtri(ndtr(-3) + U * (ndtr(3) - ndtr(-3))),   U ~ Uniform[0, 1).

    ``log_q0`` is the *untruncated* normal log-density summed over ``d`` (as in S2AC and the
    authors' code); it differs from the truncated density by the constant
    ``-d log(ndtr(3) - ndtr(-3)) ~= 0.0027 d``.

    Args:
        mu: ``(B, d)`` means.
        std: ``(B, d)`` standard deviations (> 0).
        m: particles per state.
        generator: optional RNG for ``U``.

    Returns:
        ``u0`` ``(B, m, d)`` (differentiable w.r.t. ``mu`` and ``std``) and ``log_q0`` ``(B, m)``.
    """
    B, d = mu.shape
    lo = torch.special.ndtr(torch.tensor(-TRUNCATION, dtype=mu.dtype, device=mu.device))
    hi = torch.special.ndtr(torch.tensor(TRUNCATION, dtype=mu.dtype, device=mu.device))
    U = torch.rand((B, m, d), generator=generator, dtype=mu.dtype, device=mu.device)
    z = torch.special.ndtri(lo + U * (hi - lo))
    mu_, std_ = mu.unsqueeze(-2), std.unsqueeze(-2)
    u0 = mu_ + std_ * z
    zz = (u0 - mu_) / std_
    log_q0 = (-0.5 * zz.pow(2) - torch.log(std_) - 0.5 * math.log(2.0 * math.pi)).sum(-1)
    return u0, log_q0


def tanh_log_det_jacobian(u: torch.Tensor) -> torch.Tensor:
    """``sum_d log(1 - tanh(u)^2)`` in the stable form ``sum_d 2 (log 2 - u - softplus(-2u))``.

    Used for the tanh squash of S2AC (§3.3, as in SAC): ``log pi(a|s) = log q_L(u) - this``.

    Args:
        u: ``(..., d)`` pre-squash particles.

    Returns:
        ``(...)`` log-determinant of the Jacobian of ``tanh`` (sum over the last axis).
    """
    return (2.0 * (math.log(2.0) - u - F.softplus(-2.0 * u))).sum(-1)
