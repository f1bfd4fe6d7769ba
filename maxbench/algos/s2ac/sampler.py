"""S2AC's actor: SVGD on the energy ``min_k Q_k(s, ·)`` with the closed-form log-density.

One call runs the ``L`` SVGD steps of spec §1.2 for a batch of states × particles (no Python
loop over states or particles; the only loop is over the ``L`` steps) and, when asked, tracks each
particle's log-density with the closed form of Theorem 3.3 (spec §1.3)::

    s_j  = grad_u E(s, u_j) / T,   E(s, u) = min_k Q_k(s, tanh u)   (energy_on="post_tanh")
                                   E(s, u) = min_k Q_k(s, u)        (energy_on="pre_tanh")
    s_j  = grad_u [E(s, u_j) / T + sum_d log(1 - tanh(u_jd)^2)]     (energy_on="post_tanh_jacobian")
    u   <- u + eps * phi(u),       log q <- log q - eps * Tr grad phi(u)

The field and the trace come from :mod:`maxbench.algos.svgd` (``svgd_field_and_trace``); when
only the particles are needed (acting) the field is :func:`acting_field`, the same numbers as
``svgd.svgd_field`` from a single kernel evaluation (per-operation overhead dominates at batch 1).
The score comes from :class:`~maxbench.algos.s2ac.energy.CriticEnergy` (analytic or autograd).
With grad mode on everything stays differentiable, so the actor loss reaches ``mu_theta`` and
``sigma_theta`` through all ``L`` steps (spec §1.4).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from maxbench.algos.s2ac.energy import CriticEnergy
from maxbench.algos.svgd import (
    SigmaLike,
    rbf_kernel,
    svgd_field_and_trace,
    tanh_log_det_jacobian,
)

__all__ = ["ENERGY_INPUTS", "SteinSample", "acting_field", "squashed_log_prob", "stein_sample"]

#: Where the critic is evaluated during the SVGD steps (spec §1.2, "Decision, energy input").
#: ``"post_tanh_jacobian"`` adds the tanh log-Jacobian to the target's log-density in u-space, so
#: that the particles target exactly the u-space image of ``exp(min Q(s, a) / T) da``: without it
#: the u-space target ``exp(min Q(s, tanh u) / T)`` is flat (improper) where tanh saturates, and
#: the kernel's repulsion can push particles there without bound.
ENERGY_INPUTS = ("post_tanh", "pre_tanh", "post_tanh_jacobian")


@dataclass
class SteinSample:
    """The outcome of :func:`stein_sample`.

    Attributes:
        particles: ``(B, m, d)`` final pre-tanh particles ``u_L``.
        log_q: ``(B, m)`` ``log q_L(u_L)`` (None when not tracked).
    """

    particles: torch.Tensor
    log_q: torch.Tensor | None


def acting_field(u: torch.Tensor, scores: torch.Tensor, sigma: SigmaLike = None) -> torch.Tensor:
    """The SVGD field of :func:`maxbench.algos.svgd.svgd_field` from one kernel evaluation.

    With the symmetric RBF kernel ``K`` (:func:`maxbench.algos.svgd.rbf_kernel`)::

        phi_i = 1/m sum_j [K_ji s_j - K_ji (u_j - u_i) / sigma_k^2]
              = 1/m [ (K (s - u / sigma_k^2))_i + u_i / sigma_k^2 * sum_j K_ij ],

    two matrix products instead of ``svgd_field``'s pairwise-difference contractions (the same
    numbers up to rounding; tested).

    Args:
        u: ``(B, m, d)`` particles.
        scores: ``(B, m, d)`` scores.
        sigma: kernel std (float / tensor) or None for the adaptive detached bandwidth.

    Returns:
        ``(B, m, d)`` field.
    """
    K, sigma2 = rbf_kernel(u, sigma)
    scaled = u / sigma2
    field = torch.bmm(K, scores - scaled) + scaled * K.sum(dim=-1, keepdim=True)
    return field / u.shape[-2]


def _divided(score: torch.Tensor, temperature: float | torch.Tensor) -> torch.Tensor:
    """``score / T``; a float T of 1 skips the division (a tensor T is always divided by)."""
    if isinstance(temperature, torch.Tensor) or temperature != 1.0:
        return score / temperature
    return score


def _score(
    energy: CriticEnergy, u: torch.Tensor, energy_on: str, temperature: float | torch.Tensor
) -> torch.Tensor:
    """The score for the chosen energy input: ``grad_u E(s, u) / T`` (chain rule through tanh
    for the post-tanh inputs), plus ``grad_u sum_d log(1 - tanh(u_d)^2)`` for
    ``"post_tanh_jacobian"``."""
    if energy_on == "pre_tanh":
        _, score = energy.min_q_and_grad(u, create_graph=torch.is_grad_enabled())
        return _divided(score, temperature)
    a = torch.tanh(u)
    _, grad_a = energy.min_q_and_grad(a, create_graph=torch.is_grad_enabled())
    score = _divided(grad_a * (1.0 - a * a), temperature)
    if energy_on == "post_tanh_jacobian":  # d/du sum_d log(1 - tanh(u_d)^2) = -2 tanh(u)
        score = score - 2.0 * a
    return score


def stein_sample(
    energy: CriticEnergy,
    u0: torch.Tensor,
    log_q0: torch.Tensor | None,
    *,
    n_steps: int,
    step_size: float,
    kernel_sigma: SigmaLike = None,
    energy_on: str = "post_tanh",
    temperature: float | torch.Tensor = 1.0,
) -> SteinSample:
    """Run S2AC's ``n_steps`` SVGD steps from ``u0`` (spec §1.2-1.3).

    Differentiability follows torch's grad mode: under ``torch.no_grad()`` nothing is recorded
    (acting, critic targets); with grad enabled the result is differentiable w.r.t. ``u0`` and
    ``log_q0`` through every step, the scores included (the actor loss).

    Args:
        energy: the critics for this batch of states.
        u0: ``(B, m, d)`` initial particles.
        log_q0: ``(B, m)`` their log-density under q0, or None to skip the log-density (acting).
        n_steps: L.
        step_size: epsilon.
        kernel_sigma: RBF kernel std (float, fixed), or None for the adaptive bandwidth.
        energy_on: ``"post_tanh"`` (maxbench default), ``"pre_tanh"`` (the authors' code) or
            ``"post_tanh_jacobian"`` (the target in u-space includes the tanh log-Jacobian).
        temperature: T dividing the score (1 in the authors' code, or alpha).

    Returns:
        :class:`SteinSample` with the final particles and, if ``log_q0`` was given, ``log q_L``.
    """
    if energy_on not in ENERGY_INPUTS:
        raise ValueError(f"energy_on must be one of {ENERGY_INPUTS}, got {energy_on!r}")
    u, log_q = u0, log_q0
    if not torch.compiler.is_compiling():  # compiled, T stays a tensor: no host sync
        temperature = float(temperature)
    for _ in range(n_steps):
        score = _score(energy, u, energy_on, temperature)
        if log_q is None:
            phi = acting_field(u, score, kernel_sigma)
        else:
            phi, trace, _ = svgd_field_and_trace(u, score, kernel_sigma)
            log_q = torch.sub(log_q, trace, alpha=step_size)
        u = torch.add(u, phi, alpha=step_size)
    return SteinSample(particles=u, log_q=log_q)


def squashed_log_prob(u: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
    """``log pi(tanh u | s) = log q_L(u) - sum_d log(1 - tanh(u)^2)`` (spec §1.3), ``(B, m)``."""
    return log_q - tanh_log_det_jacobian(u)
