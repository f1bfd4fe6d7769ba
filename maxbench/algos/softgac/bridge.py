"""The SoftGAC bridge actor, its reference process and the control energy (spec §3).

SoftGAC (arXiv 2605.08733; authors' code ``skypitcher/soft_gac_jax``, ``models/actor.py`` and
``algorithms/soft_gac.py``) draws an action by running a short stochastic "bridge" in the
pre-tanh latent space, K steps of size h = 1/K, each step with its own small network:

    z_0 ~ logistic base law:  z_0 = atanh(U),  U ~ U(-1 + 1e-6, 1 - 1e-6)   (tanh z_0 uniform)
    z_{k+1} = z_k + h f_k(s, z_k) + sqrt(2h) sigma_k(s, z_k) * eps_k,       eps_k ~ N(0, I)
    a = tanh(z_K)

The reference process is the Euler step of the Langevin diffusion whose stationary law is
proportional to sech^2(z) (uniform actions after tanh):

    r_k(z_{k+1} | z_k) = N(z_k - 2h tanh z_k, 2h I).

Each actor transition is Gaussian, N(z_k + h f_k, 2h sigma_k^2), so the KL divergence between
the actor's path law and the reference's (same base law) is the expected sum of per-step Gaussian
KLs, the *control energy* on the sampled path:

  C(s, tau) = 1/2 sum_k sum_d [sigma_kd^2 + (h f_kd + 2h tanh z_kd)^2 / (2h) - 1 - log sigma_kd^2]

E[C] = KL(actor path || reference path) >= KL(actor's z_K law || reference's z_K law) (data
processing), which is -H(pi) + log|A| up to the Euler discretisation of the reference (see
:func:`control_energy`). SoftGAC uses alpha * C wherever SAC uses alpha * log pi.

This module knows nothing about stable-baselines3: it maps features to paths and paths to control
energies. :mod:`maxbench.algos.softgac.policies` wraps it into an SB3 actor.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "BASE_LATENT_EPS",
    "LAYER_NORM_EPS",
    "SIGMA_INIT_BIAS",
    "SIGMA_SQ_EPS",
    "BridgeNetwork",
    "BridgePath",
    "BridgeStep",
    "StepParameters",
    "bridge_step_drift",
    "bridge_step_hidden",
    "bridge_step_sigma",
    "control_energy",
    "per_step_control_energy",
    "reference_transition",
    "sample_base_latent",
    "sample_bridge_noise",
]

#: softplus^-1(1) = log(e - 1): the scale head's bias, so that sigma_k = 1 at initialisation
#: (authors' ``bridge_scale_init``).
SIGMA_INIT_BIAS = 0.541324854612918
#: Added to sigma^2 inside the control energy (authors' ``_path_control_cost``; spec §3).
SIGMA_SQ_EPS = 1e-6
#: The base uniform is drawn from (-1 + eps, 1 - eps) so that atanh stays finite.
BASE_LATENT_EPS = 1e-6
#: flax.linen.LayerNorm's default epsilon (the authors' layers), not torch's 1e-5.
LAYER_NORM_EPS = 1e-6

PARTICLE_SCHEMES = ("random", "antithetic")


@dataclass(frozen=True)
class BridgePath:
    """One sampled bridge path per row: everything the control energy needs.

    Attributes:
        latents: ``(B, K + 1, d)``, the latents z_0 ... z_K.
        drifts: ``(B, K, d)``, the drifts f_k(s, z_k).
        sigmas: ``(B, K, d)``, the noise scales sigma_k(s, z_k) > 0.
    """

    latents: torch.Tensor
    drifts: torch.Tensor
    sigmas: torch.Tensor

    @property
    def final_latent(self) -> torch.Tensor:
        """``(B, d)``, z_K; the action in [-1, 1]^d is ``tanh`` of it."""
        return self.latents[:, -1]

    @property
    def n_steps(self) -> int:
        """K, the number of bridge steps."""
        return self.drifts.shape[1]


class StepParameters(NamedTuple):
    """One bridge step's parameter tensors (the ``nn.Parameter`` objects themselves)."""

    input_norm_weight: torch.Tensor | None
    input_norm_bias: torch.Tensor | None
    hidden_weight: torch.Tensor
    hidden_bias: torch.Tensor
    hidden_norm_weight: torch.Tensor
    hidden_norm_bias: torch.Tensor
    drift_weight: torch.Tensor
    drift_bias: torch.Tensor
    scale_weight: torch.Tensor
    scale_bias: torch.Tensor


def bridge_step_hidden(
    params: StepParameters, features: torch.Tensor, latent: torch.Tensor
) -> torch.Tensor:
    """``(B, H)``: x = LayerNorm(ELU(Linear(LayerNorm([s, z_k])))), the trunk of step k (spec §3).

    Written with ``torch.nn.functional`` on the parameter tensors: for one observation the
    module-call overhead of K small steps is most of the cost.
    """
    x = torch.cat([features, latent], dim=-1)
    if params.input_norm_weight is not None:  # the authors' input LayerNorm (an option)
        x = F.layer_norm(
            x, x.shape[-1:], params.input_norm_weight, params.input_norm_bias, LAYER_NORM_EPS
        )
    x = F.elu(F.linear(x, params.hidden_weight, params.hidden_bias))
    return F.layer_norm(
        x, x.shape[-1:], params.hidden_norm_weight, params.hidden_norm_bias, LAYER_NORM_EPS
    )


def bridge_step_drift(params: StepParameters, hidden: torch.Tensor) -> torch.Tensor:
    """``(B, d)``, the drift f_k = Linear(d)(x)."""
    return F.linear(hidden, params.drift_weight, params.drift_bias)


def bridge_step_sigma(params: StepParameters, hidden: torch.Tensor) -> torch.Tensor:
    """``(B, d)``, the noise scale sigma_k = softplus(Linear(d)(x)) > 0."""
    return F.softplus(F.linear(hidden, params.scale_weight, params.scale_bias))


class BridgeStep(nn.Module):
    """One bridge step's network: (features, z_k) -> (drift f_k, scale sigma_k) (spec §3).

    x = LayerNorm([s, z_k]) -> Linear(H) -> ELU -> LayerNorm; f_k = Linear(d)(x) (Xavier-uniform
    weights, zero bias); sigma_k = softplus(Linear(d)(x)) with zero weights and bias
    softplus^-1(1), so sigma_k = 1 at initialisation. The hidden layer is Xavier-uniform with a
    zero bias and the layer norms have a learnable scale (1) and bias (0), as in the authors'
    flax ``BridgePolicy`` (flax ``Dense`` layers: Xavier-uniform over (fan_in, fan_out)).

    The step holds its parameters directly, with no sub-modules: SB3 switches train/eval mode on
    every ``predict``, which walks every module, and the forward passes are functional
    (:func:`bridge_step_hidden`, :func:`bridge_step_drift`, :func:`bridge_step_sigma`).

    ``input_layer_norm=False`` drops the first LayerNorm (a maxbench option; the authors always
    have it). Over a few inputs it discards information: LayerNorm([s, z_k]) keeps only the
    input's shape up to an offset and a scale, 2 of the 4 numbers of Pendulum-v1 (3-D state, 1-D
    action) or of the multi-goal envs (2-D + 2-D). On Pendulum-v1 with the authors' input norm
    SoftGAC stayed at about -750 after 15k steps (2 seeds); without it, it reached -146 by 6k.
    """

    def __init__(
        self, features_dim: int, action_dim: int, hidden_size: int, input_layer_norm: bool = True
    ) -> None:
        super().__init__()
        in_dim = features_dim + action_dim
        self.input_norm_weight: nn.Parameter | None = None
        self.input_norm_bias: nn.Parameter | None = None
        if input_layer_norm:
            self.input_norm_weight = nn.Parameter(torch.empty(in_dim))
            self.input_norm_bias = nn.Parameter(torch.empty(in_dim))
        self.hidden_weight = nn.Parameter(torch.empty(hidden_size, in_dim))
        self.hidden_bias = nn.Parameter(torch.empty(hidden_size))
        self.hidden_norm_weight = nn.Parameter(torch.empty(hidden_size))
        self.hidden_norm_bias = nn.Parameter(torch.empty(hidden_size))
        self.drift_weight = nn.Parameter(torch.empty(action_dim, hidden_size))
        self.drift_bias = nn.Parameter(torch.empty(action_dim))
        self.scale_weight = nn.Parameter(torch.empty(action_dim, hidden_size))
        self.scale_bias = nn.Parameter(torch.empty(action_dim))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """The authors' initialisation (``models/actor.py``): see the class docstring."""
        with torch.no_grad():
            if self.input_norm_weight is not None and self.input_norm_bias is not None:
                self.input_norm_weight.fill_(1.0)
                self.input_norm_bias.zero_()
            self.hidden_norm_weight.fill_(1.0)
            for zero in (
                self.hidden_bias,
                self.hidden_norm_bias,
                self.drift_bias,
                self.scale_weight,
            ):
                zero.zero_()
            nn.init.xavier_uniform_(self.hidden_weight)
            nn.init.xavier_uniform_(self.drift_weight)
            self.scale_bias.fill_(SIGMA_INIT_BIAS)

    def step_parameters(self) -> StepParameters:
        """The parameter tensors themselves (not copies)."""
        return StepParameters(
            self.input_norm_weight,
            self.input_norm_bias,
            self.hidden_weight,
            self.hidden_bias,
            self.hidden_norm_weight,
            self.hidden_norm_bias,
            self.drift_weight,
            self.drift_bias,
            self.scale_weight,
            self.scale_bias,
        )

    def forward(
        self, features: torch.Tensor, latent: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(drift, sigma)``, each ``(B, d)``."""
        params = self.step_parameters()
        hidden = bridge_step_hidden(params, features, latent)
        return bridge_step_drift(params, hidden), bridge_step_sigma(params, hidden)


class BridgeNetwork(nn.Module):
    """K bridge steps with their own parameters, h = 1/K (spec §3; authors' ``BridgePolicy``).

    The forward passes read the steps' parameter tensors from a list made once at construction
    (``StepParameters`` of the very ``nn.Parameter`` objects, which optimizers, ``.to()`` and
    ``load_state_dict`` update in place), avoiding K module calls and attribute look-ups per pass;
    while the parameters are replaced (``torch.func.functional_call``, as the engine's compiled
    gradients do), from the steps themselves (:meth:`_current_step_parameters`).

    Args:
        features_dim: size of the state features s.
        action_dim: d.
        n_steps: K (authors' default 6).
        hidden_size: H (256 for MuJoCo/Box2D, 512 for humanoid-scale tasks).
        input_layer_norm: the authors' LayerNorm over [s, z_k] at each step's input (see
            :class:`BridgeStep` for when to turn it off).
    """

    def __init__(
        self,
        features_dim: int,
        action_dim: int,
        n_steps: int = 6,
        hidden_size: int = 256,
        input_layer_norm: bool = True,
    ) -> None:
        super().__init__()
        if n_steps < 1:
            raise ValueError(f"n_steps must be >= 1 (got {n_steps})")
        self.features_dim = features_dim
        self.action_dim = action_dim
        self.n_steps = n_steps
        self.hidden_size = hidden_size
        self.input_layer_norm = input_layer_norm
        self.step_size = 1.0 / n_steps
        self.steps = nn.ModuleList(
            BridgeStep(features_dim, action_dim, hidden_size, input_layer_norm)
            for _ in range(n_steps)
        )
        self._step_parameters = [step.step_parameters() for step in self.steps]

    def _current_step_parameters(self) -> list[StepParameters]:
        """The cached list while it holds the steps' own parameters; else (the parameters
        swapped for ``torch.func``'s, whose gradients the cached tensors would never reach)
        each step's current ones."""
        cached = self._step_parameters
        if cached[0].hidden_weight is not self.steps[0].hidden_weight:
            return [step.step_parameters() for step in self.steps]
        return cached

    def path(
        self, features: torch.Tensor, base_latent: torch.Tensor, step_noise: torch.Tensor
    ) -> BridgePath:
        """Run the bridge from given noises and keep the whole path.

        Args:
            features: ``(B, features_dim)``.
            base_latent: ``(B, d)``, z_0.
            step_noise: ``(B, K, d)``, eps_0 ... eps_{K-1}.

        Returns:
            The path; differentiable in the parameters (reparameterised in the noises).
        """
        h = self.step_size
        scaled_noise = (math.sqrt(2.0 * h) * step_noise).unbind(1)
        latent = base_latent
        latents, drifts, sigmas = [latent], [], []
        for params, noise in zip(self._current_step_parameters(), scaled_noise, strict=True):
            hidden = bridge_step_hidden(params, features, latent)
            drift = bridge_step_drift(params, hidden)
            sigma = bridge_step_sigma(params, hidden)
            # z_{k+1} = z_k + h f_k + sqrt(2h) sigma_k eps_k
            latent = torch.addcmul(torch.add(latent, drift, alpha=h), sigma, noise)
            latents.append(latent)
            drifts.append(drift)
            sigmas.append(sigma)
        return BridgePath(
            latents=torch.stack(latents, dim=1),
            drifts=torch.stack(drifts, dim=1),
            sigmas=torch.stack(sigmas, dim=1),
        )

    def final_latent(self, features: torch.Tensor, deterministic: bool = False) -> torch.Tensor:
        """``(B, d)``, z_K alone, for acting (no path kept).

        ``deterministic=True`` sets every noise to zero: z_0 = 0 and eps_k = 0 (spec §3; the
        authors' ``deterministic_action``), which is *not* the mean action. Then the scales are
        not needed.
        """
        h = self.step_size
        if deterministic:
            latent = features.new_zeros(features.shape[0], self.action_dim)
            for params in self._current_step_parameters():
                hidden = bridge_step_hidden(params, features, latent)
                latent = torch.add(latent, bridge_step_drift(params, hidden), alpha=h)
            return latent
        latent, step_noise = sample_bridge_noise(
            features.shape[0],
            self.n_steps,
            self.action_dim,
            device=features.device,
            dtype=features.dtype,
        )
        scaled_noise = (math.sqrt(2.0 * h) * step_noise).unbind(1)
        for params, noise in zip(self._current_step_parameters(), scaled_noise, strict=True):
            hidden = bridge_step_hidden(params, features, latent)
            latent = torch.addcmul(
                torch.add(latent, bridge_step_drift(params, hidden), alpha=h),
                bridge_step_sigma(params, hidden),
                noise,
            )
        return latent


def sample_base_latent(
    shape: tuple[int, ...],
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """z_0 = atanh(U), U ~ U(-1 + 1e-6, 1 - 1e-6): the logistic base law (tanh z_0 uniform).

    Its density, sech^2(z) / 2, is the reference process's stationary law (spec §3).
    """
    bound = 1.0 - BASE_LATENT_EPS
    return torch.empty(shape, device=device, dtype=dtype).uniform_(-bound, bound).atanh_()


def sample_bridge_noise(
    batch_size: int,
    n_steps: int,
    action_dim: int,
    n_particles: int = 1,
    scheme: str = "random",
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Noises for ``n_particles`` paths per state: z_0 ``(B m, d)`` and eps ``(B m, K, d)``.

    Rows are grouped by state: rows ``b m ... b m + m - 1`` belong to state ``b`` (the order of
    ``repeat_interleave``). ``scheme="antithetic"`` pairs each path's noises (z_0, eps) with their
    negation (-z_0, -eps) (both have the same law: the base law and N(0, I) are symmetric), the
    authors' ``particle_scheme: antithetic``; an odd ``n_particles`` adds one independent path.
    """
    if scheme not in PARTICLE_SCHEMES:
        raise ValueError(f"unknown particle scheme '{scheme}'; use one of {PARTICLE_SCHEMES}")
    if scheme == "random" or n_particles == 1:
        rows = batch_size * n_particles
        base = sample_base_latent((rows, action_dim), device=device, dtype=dtype)
        noise = torch.randn(rows, n_steps, action_dim, device=device, dtype=dtype)
        return base, noise
    pairs, odd = divmod(n_particles, 2)
    base = sample_base_latent((batch_size, pairs, action_dim), device=device, dtype=dtype)
    noise = torch.randn(batch_size, pairs, n_steps, action_dim, device=device, dtype=dtype)
    bases, noises = [base, -base], [noise, -noise]
    if odd:
        bases.append(sample_base_latent((batch_size, 1, action_dim), device=device, dtype=dtype))
        noises.append(torch.randn(batch_size, 1, n_steps, action_dim, device=device, dtype=dtype))
    base = torch.cat(bases, dim=1).reshape(batch_size * n_particles, action_dim)
    noise = torch.cat(noises, dim=1).reshape(batch_size * n_particles, n_steps, action_dim)
    return base, noise


def reference_transition(latent: torch.Tensor, step_size: float) -> tuple[torch.Tensor, float]:
    """Mean and standard deviation of r(z' | z) = N(z - 2h tanh z, 2h I) (spec §3)."""
    return latent - 2.0 * step_size * torch.tanh(latent), math.sqrt(2.0 * step_size)


def per_step_control_energy(path: BridgePath) -> torch.Tensor:
    """``(B, K)``: KL(actor step k || reference step k) at the sampled z_k, summed over d.

    For N(m1, 2h s^2) against N(m0, 2h): 1/2 [s^2 + (m1 - m0)^2 / (2h) - 1 - log s^2], with
    m1 - m0 = h f_k + 2h tanh z_k. Like the authors, 1e-6 is added to sigma^2 (in both places,
    so each term is still an exact KL, for the variance sigma^2 + 1e-6).
    """
    h = 1.0 / path.n_steps
    sigma_sq = path.sigmas.square() + SIGMA_SQ_EPS
    shift = h * path.drifts + 2.0 * h * torch.tanh(path.latents[:, :-1])
    return 0.5 * (sigma_sq + shift.square() / (2.0 * h) - 1.0 - torch.log(sigma_sq)).sum(-1)


def control_energy(path: BridgePath) -> torch.Tensor:
    """``(B,)``, C(s, tau): the control energy of each sampled path (spec §3).

    Its expectation over paths is KL(actor path law || reference path law), which bounds
    KL(law of z_K || reference law of z_K) from above. The continuous-time reference keeps
    sech^2(z)/2 (uniform actions) stationary, so that bound is -H(pi) + log|A| with |A| = 2^d the
    volume of [-1, 1]^d; the K-step Euler reference only approximately does (tests/test_softgac.py
    measures the gap).
    """
    return per_step_control_energy(path).sum(-1)
