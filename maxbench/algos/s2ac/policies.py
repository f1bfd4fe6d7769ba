"""S2AC's policy: the initial distribution q0, the twin critic that defines the energy, the SVGD
sampler that joins them, and the optional amortised sampler (arXiv 2405.00987; spec §1.1-1.6).

Like SB3's ``SACPolicy``, :class:`S2ACPolicy` owns the actor and the critics: S2AC's actor *is*
SVGD on the critic's landscape, so acting needs the critic. Everything :meth:`S2ACPolicy.predict`
uses is in the policy's ``state_dict`` (networks and the sampler temperature), so a saved and
re-loaded model predicts bit-identically.

Acting (spec §1.2, step 3):

* ``deterministic=False`` (training rollouts, stochastic evaluation): fresh initial particles from
  q0, L SVGD steps, one particle per state chosen uniformly at random (the authors' training
  action selection).
* ``deterministic=True``: the initial particles are ``mu + sigma * z`` with a *fixed* set of ``m``
  standard truncated-normal draws ``z`` (drawn once from a generator seeded with 0, the same for
  every state and every model), so the action is a deterministic function of the state that
  does not depend on the rest of the batch or on torch's RNG; then the particle with the highest
  ``min_k Q_k`` (``action_selection="max"``) or one drawn with probability proportional to
  ``exp(min_k Q_k / T)`` (``"softmax"``, which draws from torch's RNG and so is reproducible only
  under a fixed torch seed).
* with ``amortized=True``: ``a = tanh(f_psi(s, xi))``, ``xi ~ U(0, 1)^d`` (``xi = 0.5`` for
  deterministic prediction, the centre of the noise box), spec §1.6.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import torch
from gymnasium import spaces
from stable_baselines3.common.policies import BasePolicy, ContinuousCritic
from stable_baselines3.common.preprocessing import get_action_dim
from stable_baselines3.common.torch_layers import (
    BaseFeaturesExtractor,
    FlattenExtractor,
    create_mlp,
    get_actor_critic_arch,
)
from stable_baselines3.common.type_aliases import PyTorchObs, Schedule
from torch import nn

from maxbench.algos.s2ac.energy import AnalyticCritic, CriticEnergy
from maxbench.algos.s2ac.sampler import ENERGY_INPUTS, squashed_log_prob, stein_sample
from maxbench.algos.squashed_mlp_actor import SquashedMlpActor
from maxbench.algos.svgd import truncated_normal_particles

__all__ = ["AmortizedSampler", "InitialGaussian", "MlpPolicy", "S2ACPolicy"]

#: Initial distributions (spec §1.1): ``"learned"`` N(mu_theta(s), sigma_theta(s)^2), S2AC(phi,
#: theta); ``"fixed"`` N(0, sigma_0^2 I), S2AC(phi).
INITS = ("learned", "fixed")
ACTION_SELECTIONS = ("max", "softmax")
#: sigma_theta is clamped to this range (authors' ``actor_svgd.py``).
STD_MIN, STD_MAX = 0.1, 1.0
#: log-std clamp of the authors' ``MLPSquashedGaussian`` before the exp.
LOG_STD_MIN, LOG_STD_MAX = -20.0, 2.0
#: Seed of the fixed initial draws used for deterministic prediction.
DETERMINISTIC_NOISE_SEED = 0


def _first_tensor(obs: PyTorchObs) -> torch.Tensor:
    return next(iter(obs.values())) if isinstance(obs, dict) else obs


class InitialGaussian(SquashedMlpActor):
    """The initial distribution q0 of the SVGD particles (spec §1.1-1.2).

    ``learned=True`` (S2AC(phi, theta)): an MLP (default 3×256 ELU, as the authors) gives
    ``mu_theta(s)`` and ``log sigma_theta(s)``; ``log sigma`` is clamped to [-20, 2] and
    ``sigma = clamp(exp(log sigma), 0.1, 1.0)``, as in the authors' code. ``learned=False``
    (S2AC(phi)): ``mu = 0``, ``sigma = init_std`` for every state, no parameters.

    It is the policy's ``actor`` (SB3's name, what S2AC trains with the actor loss) but not the
    acting policy: ``predict`` here gives q0's own action (:meth:`_predict`), S2AC's is
    :meth:`S2ACPolicy.predict`.

    Args:
        observation_space: the observation space.
        action_space: the (Box) action space.
        net_arch: hidden layer sizes of the MLP.
        features_extractor: features extractor (None for the fixed distribution).
        features_dim: its output size.
        activation_fn: activation of the MLP.
        learned: learned or fixed distribution.
        init_std: sigma_0 of the fixed distribution (a standard deviation).
        normalize_images: as in SB3.
    """

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Box,
        net_arch: list[int],
        features_extractor: BaseFeaturesExtractor | None,
        features_dim: int,
        activation_fn: type[nn.Module] = nn.ELU,
        learned: bool = True,
        init_std: float = 0.5,
        normalize_images: bool = True,
    ) -> None:
        super().__init__(
            observation_space,
            action_space,
            net_arch,
            features_extractor,
            features_dim,
            activation_fn,
            normalize_images,
        )
        self.learned, self.init_std = learned, float(init_std)
        if learned:
            self.latent = nn.Sequential(*create_mlp(features_dim, -1, net_arch, activation_fn))
            last = net_arch[-1] if net_arch else features_dim
            self.mu = nn.Linear(last, self.action_dim)
            self.log_std = nn.Linear(last, self.action_dim)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(learned=self.learned, init_std=self.init_std)
        return data

    def forward(self, obs: PyTorchObs) -> tuple[torch.Tensor, torch.Tensor]:  # type: ignore[override]
        """``(mu, sigma)``, each ``(B, d)``."""
        if not self.learned:
            first = _first_tensor(obs)
            mu = torch.zeros((first.shape[0], self.action_dim), device=first.device)
            return mu, torch.full_like(mu, self.init_std)
        latent = self.latent(self.extract_features(obs, self.features_extractor))
        log_std = self.log_std(latent).clamp(LOG_STD_MIN, LOG_STD_MAX)
        return self.mu(latent), log_std.exp().clamp(STD_MIN, STD_MAX)

    def _predict(self, observation: PyTorchObs, deterministic: bool = False) -> torch.Tensor:
        """q0 alone (SB3's ``actor.predict``), **not** S2AC's action: ``tanh(mu)``, or
        ``tanh(u0)`` of one truncated-normal draw ``u0`` when not deterministic.

        S2AC acts through :meth:`S2ACPolicy.predict` (``model.predict``): SVGD moves the
        particles from q0 and the critic picks one.
        """
        mu, std = self(observation)
        if deterministic:
            return torch.tanh(mu)
        return torch.tanh(truncated_normal_particles(mu, std, 1)[0][:, 0])


class AmortizedSampler(SquashedMlpActor):
    """S2AC(phi, theta, psi)'s amortised sampler ``a = tanh(f_psi(s, xi))``, ``xi ~ U(0,1)^d``.

    Trained to follow the Stein direction towards the SVGD particles (spec §1.6); used for acting
    when ``amortized=True``. The MLP takes the concatenated features and noise.
    """

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Box,
        net_arch: list[int],
        features_extractor: BaseFeaturesExtractor,
        features_dim: int,
        activation_fn: type[nn.Module] = nn.ELU,
        normalize_images: bool = True,
    ) -> None:
        super().__init__(
            observation_space,
            action_space,
            net_arch,
            features_extractor,
            features_dim,
            activation_fn,
            normalize_images,
        )
        self.net = nn.Sequential(
            *create_mlp(features_dim + self.action_dim, self.action_dim, net_arch, activation_fn)
        )

    def forward(self, obs: PyTorchObs, noise: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        """Pre-tanh samples ``f_psi(s, xi)`` for noise ``(B, n, d)``: shape ``(B, n, d)``."""
        features = self.extract_features(obs, self.features_extractor)  # (B, F)
        B, n, _ = noise.shape
        rows = torch.cat([features.unsqueeze(1).expand(B, n, features.shape[-1]), noise], dim=-1)
        return self.net(rows)

    def _predict(self, observation: PyTorchObs, deterministic: bool = False) -> torch.Tensor:
        shape = (_first_tensor(observation).shape[0], 1, self.action_dim)
        if deterministic:
            noise = torch.full(shape, 0.5, device=self.device)
        else:
            noise = torch.rand(shape, device=self.device)
        return torch.tanh(self(observation, noise)).squeeze(1)


class S2ACPolicy(BasePolicy):
    """Policy (q0, twin critic, SVGD sampler, optional amortised sampler) for :class:`S2AC`.

    Networks default to the authors' (spec §1.5): actor (q0 and amortised net) 3×256 ELU, critic
    2×256 ELU, twin critics; ``net_arch`` may be a list (both) or ``dict(pi=..., qf=...)``.

    Args:
        observation_space: the observation space.
        action_space: the (Box) action space.
        lr_schedule: learning-rate schedule (for the optimizers).
        net_arch: network sizes.
        activation_fn: activation of every network.
        features_extractor_class: SB3 features extractor class.
        features_extractor_kwargs: its keyword arguments.
        normalize_images: as in SB3.
        optimizer_class: optimizer of every network.
        optimizer_kwargs: its keyword arguments (besides the learning rate).
        n_critics: number of critics (min over them).
        init: ``"learned"`` (S2AC(phi, theta)) or ``"fixed"`` (S2AC(phi)).
        init_std: sigma_0 of the fixed initial distribution.
        amortized: also build the amortised sampler and act with it (S2AC(phi, theta, psi)).
        n_particles: m.
        svgd_steps: L.
        svgd_step_size: epsilon.
        kernel_sigma: fixed RBF kernel std, or None for the adaptive bandwidth.
        energy_on: one of :data:`~maxbench.algos.s2ac.sampler.ENERGY_INPUTS` (spec §1.2).
        temperature: the sampler temperature T (the algorithm keeps it equal to alpha when asked).
        action_selection: ``"max"`` or ``"softmax"`` for deterministic prediction.
        analytic_energy: evaluate the critics' gradient analytically when they are plain MLPs
            (False forces autograd: the reference path, slower).
    """

    actor: InitialGaussian
    critic: ContinuousCritic
    critic_target: ContinuousCritic
    amortized: AmortizedSampler | None

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Box,
        lr_schedule: Schedule,
        net_arch: list[int] | dict[str, list[int]] | None = None,
        activation_fn: type[nn.Module] = nn.ELU,
        features_extractor_class: type[BaseFeaturesExtractor] = FlattenExtractor,
        features_extractor_kwargs: dict[str, Any] | None = None,
        normalize_images: bool = True,
        optimizer_class: type[torch.optim.Optimizer] = torch.optim.Adam,
        optimizer_kwargs: dict[str, Any] | None = None,
        n_critics: int = 2,
        init: str = "learned",
        init_std: float = 0.5,
        amortized: bool = False,
        n_particles: int = 10,
        svgd_steps: int = 3,
        svgd_step_size: float = 0.1,
        kernel_sigma: float | None = None,
        energy_on: str = "post_tanh",
        temperature: float = 1.0,
        action_selection: str = "max",
        analytic_energy: bool = True,
    ) -> None:
        super().__init__(
            observation_space,
            action_space,
            features_extractor_class,
            features_extractor_kwargs,
            optimizer_class=optimizer_class,
            optimizer_kwargs=optimizer_kwargs,
            squash_output=True,
            normalize_images=normalize_images,
        )
        _check_choice("init", init, INITS)
        _check_choice("energy_on", energy_on, ENERGY_INPUTS)
        _check_choice("action_selection", action_selection, ACTION_SELECTIONS)
        if n_particles < 2:
            raise ValueError(
                f"n_particles must be >= 2 (the log-density is leave-one-out): {n_particles}"
            )
        if svgd_steps < 0 or svgd_step_size <= 0:
            raise ValueError("svgd_steps must be >= 0 and svgd_step_size > 0")
        if kernel_sigma is not None and kernel_sigma <= 0:
            raise ValueError(
                f"kernel_sigma must be positive or None (adaptive), got {kernel_sigma}"
            )
        if net_arch is None:
            net_arch = {"pi": [256, 256, 256], "qf": [256, 256]}
        actor_arch, critic_arch = get_actor_critic_arch(net_arch)
        self.net_arch, self.activation_fn = net_arch, activation_fn
        self.n_critics = n_critics
        self.init, self.init_std, self.use_amortized = init, float(init_std), amortized
        self.n_particles, self.svgd_steps = int(n_particles), int(svgd_steps)
        self.svgd_step_size = float(svgd_step_size)
        self.kernel_sigma = None if kernel_sigma is None else float(kernel_sigma)
        self.energy_on, self.action_selection = energy_on, action_selection
        self.analytic_energy = analytic_energy
        self.action_dim = get_action_dim(action_space)
        self.actor_kwargs = {
            "observation_space": observation_space,
            "action_space": action_space,
            "net_arch": actor_arch,
            "activation_fn": activation_fn,
            "normalize_images": normalize_images,
        }
        self.critic_kwargs = {
            **self.actor_kwargs,
            "net_arch": critic_arch,
            "n_critics": n_critics,
            "share_features_extractor": False,
        }
        self.register_buffer("temperature", torch.tensor(float(temperature)))
        generator = torch.Generator().manual_seed(DETERMINISTIC_NOISE_SEED)
        zero, one = torch.zeros((1, self.action_dim)), torch.ones((1, self.action_dim))
        z, _ = truncated_normal_particles(zero, one, self.n_particles, generator=generator)
        self.register_buffer("deterministic_noise", z[0], persistent=False)
        self._build(lr_schedule)

    def _build(self, lr_schedule: Schedule) -> None:
        learned = self.init == "learned"
        features_extractor = self.make_features_extractor() if learned else None
        self.actor = InitialGaussian(
            **self.actor_kwargs,
            features_extractor=features_extractor,
            features_dim=features_extractor.features_dim if features_extractor else 0,
            learned=learned,
            init_std=self.init_std,
        ).to(self.device)
        self.actor.optimizer = (
            self.optimizer_class(
                self.actor.parameters(), lr=lr_schedule(1), **self.optimizer_kwargs
            )
            if learned
            else None
        )
        self.critic = self._make_critic()
        self.critic_target = self._make_critic()
        self.critic_target.load_state_dict(self.critic.state_dict())
        self.critic.optimizer = self.optimizer_class(
            self.critic.parameters(), lr=lr_schedule(1), **self.optimizer_kwargs
        )
        self.critic_target.set_training_mode(False)
        self.amortized = None
        if self.use_amortized:
            kwargs = self._update_features_extractor(self.actor_kwargs, None)
            self.amortized = AmortizedSampler(**kwargs).to(self.device)
            self.amortized.optimizer = self.optimizer_class(
                self.amortized.parameters(), lr=lr_schedule(1), **self.optimizer_kwargs
            )
        #: :meth:`act` compiled by the algorithm when its ``compile`` option is on (else None).
        self.compiled_act: Callable[[PyTorchObs, bool], torch.Tensor] | None = None
        self._analytic_critic = AnalyticCritic.of(self.critic) if self.analytic_energy else None
        self._analytic_target = (
            AnalyticCritic.of(self.critic_target) if self.analytic_energy else None
        )

    def _make_critic(self) -> ContinuousCritic:
        kwargs = self._update_features_extractor(self.critic_kwargs, None)
        return ContinuousCritic(**kwargs).to(self.device)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(
            net_arch=self.net_arch,
            activation_fn=self.activation_fn,
            n_critics=self.n_critics,
            lr_schedule=self._dummy_schedule,
            optimizer_class=self.optimizer_class,
            optimizer_kwargs=self.optimizer_kwargs,
            features_extractor_class=self.features_extractor_class,
            features_extractor_kwargs=self.features_extractor_kwargs,
            init=self.init,
            init_std=self.init_std,
            amortized=self.use_amortized,
            n_particles=self.n_particles,
            svgd_steps=self.svgd_steps,
            svgd_step_size=self.svgd_step_size,
            kernel_sigma=self.kernel_sigma,
            energy_on=self.energy_on,
            temperature=float(self.temperature),
            action_selection=self.action_selection,
            analytic_energy=self.analytic_energy,
        )
        return data

    # -- the sampler ----------------------------------------------------------------------------
    def energy(self, obs: PyTorchObs) -> CriticEnergy:
        """The online critics' energy for these states (the sampler's target, spec §1.2)."""
        return CriticEnergy(self.critic, obs, self._analytic_critic)

    def target_energy(self, obs: PyTorchObs) -> CriticEnergy:
        """The target critics for these states (critic targets, spec §1.4)."""
        return CriticEnergy(self.critic_target, obs, self._analytic_target)

    def initial_particles(
        self, obs: PyTorchObs, deterministic: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Initial particles ``(B, m, d)`` and their ``log q0`` ``(B, m)`` (spec §1.2, step 1).

        Random: per-dimension truncated normal by the inverse CDF (``log q0`` untruncated).
        Deterministic: ``mu + sigma * z`` with the fixed draws ``z`` (``log q0`` is None).
        """
        mu, std = self.actor(obs)
        if deterministic:
            u0 = mu.unsqueeze(1) + std.unsqueeze(1) * self.deterministic_noise
            return u0, None
        return truncated_normal_particles(mu, std, self.n_particles)

    def sample(
        self,
        obs: PyTorchObs,
        with_log_prob: bool = True,
        deterministic: bool = False,
        energy: CriticEnergy | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None, CriticEnergy]:
        """Run the whole sampler for a batch of states (spec §1.2-1.3).

        Differentiable w.r.t. the actor's parameters when grad mode is on.

        Args:
            obs: observations (B states).
            with_log_prob: also return ``log pi(a_j | s)`` of every particle.
            deterministic: use the fixed initial draws (no log-density then).
            energy: the energy to sample from (default: the online critics at ``obs``).

        Returns:
            Pre-tanh particles ``u_L`` ``(B, m, d)`` (the actions are ``tanh(u_L)``),
            ``log pi(tanh u_L | s)`` ``(B, m)`` or None, and the energy used.
        """
        if energy is None:
            energy = self.energy(obs)
        u0, log_q0 = self.initial_particles(obs, deterministic)
        result = stein_sample(
            energy,
            u0,
            log_q0 if with_log_prob else None,
            n_steps=self.svgd_steps,
            step_size=self.svgd_step_size,
            kernel_sigma=self.kernel_sigma,
            energy_on=self.energy_on,
            temperature=self.temperature,
        )
        log_pi = None
        if with_log_prob and result.log_q is not None:
            log_pi = squashed_log_prob(result.particles, result.log_q)
        return result.particles, log_pi, energy

    def select(
        self, actions: torch.Tensor, energy: CriticEnergy, deterministic: bool
    ) -> torch.Tensor:
        """One action per state from its particles ``(B, m, d)`` (spec §1.2, step 3)."""
        B, m, d = actions.shape
        if not deterministic:
            index = torch.randint(m, (B,), device=actions.device)
        else:
            q = energy.min_q(actions)
            if self.action_selection == "max":
                index = q.argmax(dim=1)
            else:
                probs = torch.softmax(q / self.temperature, dim=1)
                index = torch.multinomial(probs, 1).squeeze(1)
        return actions.gather(1, index.view(B, 1, 1).expand(B, 1, d)).squeeze(1)

    # -- SB3 ------------------------------------------------------------------------------------
    def forward(self, obs: PyTorchObs, deterministic: bool = False) -> torch.Tensor:
        return self._predict(obs, deterministic=deterministic)

    def _predict(self, observation: PyTorchObs, deterministic: bool = False) -> torch.Tensor:
        if self.amortized is not None:
            return self.amortized._predict(observation, deterministic)
        # SB3 calls this under no_grad; inference mode also skips autograd's bookkeeping
        # (version counters, views), which is a sizeable share of the cost at batch 1. The
        # autograd energy path (a critic the analytic path cannot differentiate) needs autograd.
        # (``inference_mode(False)`` would switch grad mode on: use no context instead.)
        if self.compiled_act is not None:
            return self.compiled_act(observation, deterministic)
        fast = self._analytic_critic is not None and not torch.is_grad_enabled()
        with torch.inference_mode() if fast else contextlib.nullcontext():
            action = self.act(observation, deterministic)
        return action.clone() if action.is_inference() else action

    def act(self, observation: PyTorchObs, deterministic: bool = False) -> torch.Tensor:
        """S2AC's action for each state: SVGD from q0, then one particle (spec §1.2, step 3)."""
        particles, _, energy = self.sample(
            observation, with_log_prob=False, deterministic=deterministic
        )
        return self.select(torch.tanh(particles), energy, deterministic)

    def set_training_mode(self, mode: bool) -> None:
        """Train / eval mode of the actor, critic and amortised sampler (SB3's SACPolicy).

        Skipped when they are all in that mode already: SB3 calls this on every ``predict``, and
        walking the ~30 modules costs more than a SAC forward pass.
        """
        modules = [self.actor, self.critic] + ([self.amortized] if self.amortized else [])
        if self.training == mode and all(module.training == mode for module in modules):
            return
        self.actor.set_training_mode(mode)
        self.critic.set_training_mode(mode)
        if self.amortized is not None:
            self.amortized.set_training_mode(mode)
        self.training = mode


def _check_choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(allowed)}; got {value!r}")


MlpPolicy = S2ACPolicy
