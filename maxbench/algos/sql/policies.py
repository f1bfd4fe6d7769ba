"""Policies of Soft Q-Learning: the amortised sampler network and the twin soft Q critics.

SQL's policy (Haarnoja et al. 2017, §3.2 "Approximate sampling and Stein variational gradient
descent"; spec §4) is a sampler ``a = tanh(f_psi(s, xi))`` that maps a state and a noise vector
``xi ~ U(0, 1)^d`` to an action in the box ``[-1, 1]^d``; it is trained (in :mod:`.sql`) so that
its samples follow ``exp(Q(s, a) / alpha)``. The critics are SB3's ``ContinuousCritic`` (twin Q
networks on squashed actions), with a Polyak-averaged target copy, as in SB3's SAC policy.
"""

from __future__ import annotations

from typing import Any

import torch as th
from gymnasium import spaces
from stable_baselines3.common.policies import BasePolicy, ContinuousCritic
from stable_baselines3.common.preprocessing import get_action_dim
from stable_baselines3.common.torch_layers import (
    BaseFeaturesExtractor,
    CombinedExtractor,
    FlattenExtractor,
    NatureCNN,
    create_mlp,
    get_actor_critic_arch,
)
from stable_baselines3.common.type_aliases import PyTorchObs, Schedule
from torch import nn

from maxbench.algos.squashed_mlp_actor import SquashedMlpActor

__all__ = [
    "ACTION_SELECTIONS",
    "SQLCnnPolicy",
    "SQLMultiInputPolicy",
    "SQLPolicy",
    "SamplerActor",
    "min_q_over_particles",
    "repeat_observations",
]

#: How :meth:`SQLPolicy._predict` picks one action among particles when ``deterministic=True``.
ACTION_SELECTIONS = ("max", "softmax", "random")

#: Seed of the fixed noise that deterministic prediction uses (see :class:`SQLPolicy`).
DETERMINISTIC_NOISE_SEED = 0


def repeat_observations(obs: PyTorchObs, n: int) -> PyTorchObs:
    """Repeat each observation ``n`` times along the batch axis (``[o0, o0, ..., o1, ...]``).

    Works for tensors and for dict observations (each entry repeated).
    """
    if isinstance(obs, dict):
        return {key: value.repeat_interleave(n, dim=0) for key, value in obs.items()}
    return obs.repeat_interleave(n, dim=0)


def min_q_over_particles(
    critic: ContinuousCritic, obs: PyTorchObs, actions: th.Tensor
) -> th.Tensor:
    """``min_k Q_k(s_b, a_bj)`` for ``m`` actions per state.

    Args:
        critic: SB3 ``ContinuousCritic`` (twin or more Q networks).
        obs: batch of ``B`` observations.
        actions: ``(B, m, d)`` scaled actions in ``[-1, 1]^d``.

    Returns:
        ``(B, m)`` minimum over the critic's Q networks.
    """
    B, m, d = actions.shape
    q_values = th.cat(critic(repeat_observations(obs, m), actions.reshape(B * m, d)), dim=1)
    return q_values.min(dim=1).values.reshape(B, m)


class SamplerActor(SquashedMlpActor):
    """Amortised SVGD sampler ``a = tanh(f_psi(s, xi))``, ``xi ~ U(0, 1)^d`` (spec §4).

    The noise enters as an input next to the state features (as in Haarnoja et al. 2017, whose
    sampler concatenates observation and noise); ``f_psi`` is an MLP with ``net_arch`` hidden
    layers and a linear output of size ``d``.

    It is the policy's ``actor`` (SB3's name, what SQL trains with amortised SVGD) but not the
    acting policy for deterministic prediction: see :meth:`forward` and :class:`SQLPolicy`.

    Args:
        observation_space, action_space, features_extractor, features_dim, normalize_images:
            as SB3's actors.
        net_arch: hidden layer widths of ``f_psi``.
        activation_fn: hidden activation.
    """

    action_space: spaces.Box

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Box,
        net_arch: list[int],
        features_extractor: nn.Module,
        features_dim: int,
        activation_fn: type[nn.Module] = nn.ReLU,
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
        self.f_psi = nn.Sequential(
            *create_mlp(features_dim + self.action_dim, self.action_dim, net_arch, activation_fn)
        )

    def actions_from_noise(self, obs: PyTorchObs, noise: th.Tensor) -> th.Tensor:
        """``tanh(f_psi(s_b, xi_bj))`` for ``m`` noise vectors per state.

        Args:
            obs: batch of ``B`` observations.
            noise: ``(B, m, d)`` noise in ``[0, 1]^d`` (or ``(m, d)``, shared by every state).

        Returns:
            ``(B, m, d)`` actions in ``[-1, 1]^d``, differentiable w.r.t. ``psi``.
        """
        features = self.extract_features(obs, self.features_extractor)
        B = features.shape[0]
        if noise.dim() == 2:
            noise = noise.unsqueeze(0).expand(B, -1, -1)
        m = noise.shape[1]
        inputs = th.cat([features.unsqueeze(1).expand(-1, m, -1), noise], dim=-1)
        return th.tanh(self.f_psi(inputs))

    def sample(self, obs: PyTorchObs, n: int) -> th.Tensor:
        """``(B, n, d)`` actions from fresh noise ``xi ~ U(0, 1)^d`` (torch's global RNG)."""
        first = next(iter(obs.values())) if isinstance(obs, dict) else obs
        noise = th.rand((first.shape[0], n, self.action_dim), device=first.device)
        return self.actions_from_noise(obs, noise)

    def forward(self, obs: PyTorchObs, deterministic: bool = False) -> th.Tensor:
        """One sample per state: fresh noise, or the centre ``xi = 0.5`` of the noise box when
        ``deterministic`` (the first of :class:`SQLPolicy`'s fixed particles).

        This is the sampler alone (SB3's ``actor.predict``), not SQL's deterministic action,
        which :meth:`SQLPolicy._predict` chooses among several particles with the critic.
        """
        if not deterministic:
            return self.sample(obs, 1)[:, 0]
        first = next(iter(obs.values())) if isinstance(obs, dict) else obs
        centre = th.full((1, self.action_dim), 0.5, device=first.device)
        return self.actions_from_noise(obs, centre)[:, 0]

    def _predict(self, observation: PyTorchObs, deterministic: bool = False) -> th.Tensor:
        return self(observation, deterministic)


class SQLPolicy(BasePolicy):
    """SQL's policy: a :class:`SamplerActor`, twin critics and their target copy.

    Acting (``predict``):

    * ``deterministic=False`` (and while training): one sampler draw with fresh noise per state,
      i.e. a uniformly random particle, as in Haarnoja et al. (2017) and spec §1.2 step 3.
    * ``deterministic=True``: ``n_eval_particles`` particles from *fixed* noise, then one of them
      is chosen by ``action_selection`` (spec §1.2 step 3 / §4): ``"max"`` the particle with the
      highest ``min_k Q_k``; ``"softmax"`` a draw proportional to
      ``exp(min_k Q_k / selection_temperature)``; ``"random"`` a uniform draw. The noise vectors
      and the draws' randomness (Gumbel variables, so that ``softmax`` is ``argmax(Q/T + g)`` and
      ``random`` is ``argmax(g)``) are drawn once from a fixed seed and stored as buffers, so
      deterministic prediction is a fixed function of the state: repeatable, the same for a state
      alone or in a batch, and identical after ``save`` / ``load``. The first fixed noise vector
      is the centre ``xi = 0.5`` of the noise box.

    Args:
        n_eval_particles: particles per state for deterministic prediction.
        action_selection: ``"max"`` (default), ``"softmax"`` or ``"random"``.
        selection_temperature: temperature of ``"softmax"``; the SQL algorithm sets it to its
            ``ent_coef`` unless given.
        (the rest): as SB3's ``SACPolicy`` (``net_arch`` may be a list or
            ``{"pi": [...], "qf": [...]}``).
    """

    actor: SamplerActor
    critic: ContinuousCritic
    critic_target: ContinuousCritic

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Box,
        lr_schedule: Schedule,
        net_arch: list[int] | dict[str, list[int]] | None = None,
        activation_fn: type[nn.Module] = nn.ReLU,
        features_extractor_class: type[BaseFeaturesExtractor] = FlattenExtractor,
        features_extractor_kwargs: dict[str, Any] | None = None,
        normalize_images: bool = True,
        optimizer_class: type[th.optim.Optimizer] = th.optim.Adam,
        optimizer_kwargs: dict[str, Any] | None = None,
        n_critics: int = 2,
        share_features_extractor: bool = False,
        n_eval_particles: int = 16,
        action_selection: str = "max",
        selection_temperature: float = 1.0,
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
        if action_selection not in ACTION_SELECTIONS:
            raise ValueError(
                f"action_selection must be one of {ACTION_SELECTIONS}, got {action_selection!r}"
            )
        if n_eval_particles < 1:
            raise ValueError(f"n_eval_particles must be at least 1, got {n_eval_particles}")
        if selection_temperature <= 0:
            raise ValueError(f"selection_temperature must be positive, got {selection_temperature}")
        if net_arch is None:
            net_arch = [256, 256]
        actor_arch, critic_arch = get_actor_critic_arch(net_arch)
        self.net_arch = net_arch
        self.activation_fn = activation_fn
        self.n_critics = n_critics
        self.share_features_extractor = share_features_extractor
        self.n_eval_particles = n_eval_particles
        self.action_selection = action_selection
        self.selection_temperature = float(selection_temperature)
        self.net_args = {
            "observation_space": self.observation_space,
            "action_space": self.action_space,
            "activation_fn": activation_fn,
            "normalize_images": normalize_images,
        }
        self.actor_kwargs = {**self.net_args, "net_arch": actor_arch}
        self.critic_kwargs = {
            **self.net_args,
            "net_arch": critic_arch,
            "n_critics": n_critics,
            "share_features_extractor": share_features_extractor,
        }
        generator = th.Generator().manual_seed(DETERMINISTIC_NOISE_SEED)
        action_dim = get_action_dim(self.action_space)
        noise = th.rand((n_eval_particles, action_dim), generator=generator)
        noise[0] = 0.5
        uniform = th.rand((n_eval_particles,), generator=generator).clamp(1e-12, 1.0 - 1e-7)
        self.register_buffer("eval_noise", noise)
        self.register_buffer("eval_gumbel", -th.log(-th.log(uniform)))
        self._build(lr_schedule)

    def _build(self, lr_schedule: Schedule) -> None:
        self.actor = self.make_actor()
        self.actor.optimizer = self.optimizer_class(
            self.actor.parameters(),
            lr=lr_schedule(1),  # type: ignore[call-arg]
            **self.optimizer_kwargs,
        )
        if self.share_features_extractor:
            self.critic = self.make_critic(features_extractor=self.actor.features_extractor)
            critic_parameters = [
                param
                for name, param in self.critic.named_parameters()
                if "features_extractor" not in name
            ]
        else:
            self.critic = self.make_critic(features_extractor=None)
            critic_parameters = list(self.critic.parameters())
        self.critic_target = self.make_critic(features_extractor=None)
        self.critic_target.load_state_dict(self.critic.state_dict())
        self.critic.optimizer = self.optimizer_class(
            critic_parameters,
            lr=lr_schedule(1),  # type: ignore[call-arg]
            **self.optimizer_kwargs,
        )
        self.critic_target.set_training_mode(False)

    def make_actor(self, features_extractor: BaseFeaturesExtractor | None = None) -> SamplerActor:
        actor_kwargs = self._update_features_extractor(self.actor_kwargs, features_extractor)
        return SamplerActor(**actor_kwargs).to(self.device)

    def make_critic(
        self, features_extractor: BaseFeaturesExtractor | None = None
    ) -> ContinuousCritic:
        critic_kwargs = self._update_features_extractor(self.critic_kwargs, features_extractor)
        return ContinuousCritic(**critic_kwargs).to(self.device)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(
            net_arch=self.net_arch,
            activation_fn=self.activation_fn,
            n_critics=self.n_critics,
            share_features_extractor=self.share_features_extractor,
            n_eval_particles=self.n_eval_particles,
            action_selection=self.action_selection,
            selection_temperature=self.selection_temperature,
            lr_schedule=self._dummy_schedule,
            optimizer_class=self.optimizer_class,
            optimizer_kwargs=self.optimizer_kwargs,
            features_extractor_class=self.features_extractor_class,
            features_extractor_kwargs=self.features_extractor_kwargs,
        )
        return data

    def select_particle(self, particles: th.Tensor, min_q: th.Tensor) -> th.Tensor:
        """One particle per state by ``action_selection`` with the fixed Gumbel variables.

        Args:
            particles: ``(B, m, d)`` actions (``m = n_eval_particles``).
            min_q: ``(B, m)`` their ``min_k Q_k`` (ignored by ``"random"``).

        Returns:
            ``(B, d)`` chosen actions.
        """
        if self.action_selection == "max":
            scores = min_q
        elif self.action_selection == "softmax":
            scores = min_q / self.selection_temperature + self.eval_gumbel
        else:
            scores = self.eval_gumbel.expand_as(min_q)
        index = scores.argmax(dim=1)
        return particles[th.arange(particles.shape[0], device=particles.device), index]

    def forward(self, obs: PyTorchObs, deterministic: bool = False) -> th.Tensor:
        return self._predict(obs, deterministic=deterministic)

    def _predict(self, observation: PyTorchObs, deterministic: bool = False) -> th.Tensor:
        if not deterministic:
            return self.actor(observation)
        particles = self.actor.actions_from_noise(observation, self.eval_noise)
        if self.action_selection == "random":
            min_q = particles.new_zeros(particles.shape[:2])
        else:
            min_q = min_q_over_particles(self.critic, observation, particles)
        return self.select_particle(particles, min_q)

    def set_training_mode(self, mode: bool) -> None:
        self.actor.set_training_mode(mode)
        self.critic.set_training_mode(mode)
        self.training = mode


MlpPolicy = SQLPolicy


class SQLCnnPolicy(SQLPolicy):
    """:class:`SQLPolicy` with SB3's Nature CNN features extractor (image observations)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("features_extractor_class", NatureCNN)
        super().__init__(*args, **kwargs)


class SQLMultiInputPolicy(SQLPolicy):
    """:class:`SQLPolicy` for dict observations (SB3's ``CombinedExtractor``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("features_extractor_class", CombinedExtractor)
        super().__init__(*args, **kwargs)
