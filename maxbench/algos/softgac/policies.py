"""SoftGAC's policy: the bridge actor and SB3 critics (spec §3), shaped like SB3's ``SACPolicy``.

The actor is :class:`BridgeActor`, an SB3 ``BasePolicy`` around
:class:`~maxbench.algos.softgac.bridge.BridgeNetwork`. The critic is one of

* ``critic_type="twin"`` (default): SB3's ``ContinuousCritic`` (twin MLP Q-networks) with a Polyak
  target copy, as in SB3's SAC;
* ``critic_type="crossq"``: sb3-contrib's ``CrossQCritic`` (BatchRenorm layers, no target
  network), reused as it ships.

The authors' critic (CrossQ with twin C51 distributional heads) is not reproduced: see the
deviations in :class:`~maxbench.algos.softgac.softgac.SoftGAC`.
"""

from __future__ import annotations

from typing import Any

import torch
from gymnasium import spaces
from sb3_contrib.crossq.policies import CrossQCritic
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

from maxbench.algos.softgac.bridge import BridgeNetwork, BridgePath, sample_bridge_noise

__all__ = ["CRITIC_TYPES", "BridgeActor", "MlpPolicy", "SoftGACPolicy"]

#: The critic choices: SB3 twin critics with Polyak targets, or sb3-contrib's CrossQ critic.
CRITIC_TYPES = ("twin", "crossq")


class BridgeActor(BasePolicy):
    """The SoftGAC actor: features -> K-step bridge in pre-tanh space -> a = tanh(z_K) (spec §3).

    Args:
        observation_space: the observation space.
        action_space: the (Box) action space; actions are produced in [-1, 1]^d and rescaled by
            SB3's ``BasePolicy.predict`` (``squash_output=True``).
        features_extractor: the features extractor (a ``FlattenExtractor`` for ``MlpPolicy``).
        features_dim: its output size.
        n_bridge_steps: K.
        bridge_hidden_size: H, the hidden width of every step's network.
        normalize_images: SB3's image normalisation flag.
        input_layer_norm: each step's LayerNorm over [s, z_k] (the authors'; see
            :class:`~maxbench.algos.softgac.bridge.BridgeStep` for when to turn it off).
        state_encoder_arch: hidden sizes of an MLP (``activation_fn`` after every layer) that
            maps the features to the ``s`` every bridge step sees; empty (the default) feeds
            the features directly, as the authors do. A maxbench option: each bridge step has
            one hidden layer over [s, z_k], which learns a state-dependent drift over a
            2-D state (the multi-goal envs) only very slowly (README, "Multi-goal checks").
        activation_fn: the state encoder's activation.
    """

    action_space: spaces.Box

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Box,
        features_extractor: nn.Module,
        features_dim: int,
        n_bridge_steps: int = 6,
        bridge_hidden_size: int = 256,
        normalize_images: bool = True,
        input_layer_norm: bool = True,
        state_encoder_arch: list[int] | tuple[int, ...] = (),
        activation_fn: type[nn.Module] = nn.ReLU,
    ) -> None:
        super().__init__(
            observation_space,
            action_space,
            features_extractor=features_extractor,
            normalize_images=normalize_images,
            squash_output=True,
        )
        self.features_dim = features_dim
        self.n_bridge_steps = n_bridge_steps
        self.bridge_hidden_size = bridge_hidden_size
        self.input_layer_norm = input_layer_norm
        self.state_encoder_arch = list(state_encoder_arch)
        self.activation_fn = activation_fn
        self.state_encoder: nn.Module | None = None
        bridge_state_dim = features_dim
        if self.state_encoder_arch:
            self.state_encoder = nn.Sequential(
                *create_mlp(features_dim, -1, self.state_encoder_arch, activation_fn)
            )
            bridge_state_dim = self.state_encoder_arch[-1]
        self.bridge = BridgeNetwork(
            bridge_state_dim,
            get_action_dim(action_space),
            n_bridge_steps,
            bridge_hidden_size,
            input_layer_norm,
        )

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(
            features_dim=self.features_dim,
            n_bridge_steps=self.n_bridge_steps,
            bridge_hidden_size=self.bridge_hidden_size,
            input_layer_norm=self.input_layer_norm,
            state_encoder_arch=self.state_encoder_arch,
            activation_fn=self.activation_fn,
            features_extractor=self.features_extractor,
        )
        return data

    def bridge_state(self, obs: PyTorchObs) -> torch.Tensor:
        """``(B, ·)``, the s every bridge step sees: the features, through the state encoder."""
        features = self.extract_features(obs, self.features_extractor)
        if self.state_encoder is None:
            return features
        return self.state_encoder(features)

    def sample_path(
        self, obs: PyTorchObs, n_particles: int = 1, scheme: str = "random"
    ) -> BridgePath:
        """Sample ``n_particles`` paths per observation; rows grouped by observation.

        The features are computed once per observation and repeated, so a path's row ``b m + j``
        belongs to observation ``b``.
        """
        features = self.bridge_state(obs)
        if n_particles > 1:
            features = features.repeat_interleave(n_particles, dim=0)
        base, noise = sample_bridge_noise(
            features.shape[0] // n_particles,
            self.n_bridge_steps,
            self.bridge.action_dim,
            n_particles=n_particles,
            scheme=scheme,
            device=features.device,
            dtype=features.dtype,
        )
        return self.bridge.path(features, base, noise)

    def path_from_noise(
        self, obs: PyTorchObs, base_latent: torch.Tensor, step_noise: torch.Tensor
    ) -> BridgePath:
        """The path from given noises (z_0 ``(B, d)``, eps ``(B, K, d)``)."""
        features = self.bridge_state(obs)
        return self.bridge.path(features, base_latent, step_noise)

    def forward(self, obs: PyTorchObs, deterministic: bool = False) -> torch.Tensor:
        """``(B, d)`` actions in [-1, 1]^d; deterministic means every noise is zero (spec §3)."""
        features = self.bridge_state(obs)
        return torch.tanh(self.bridge.final_latent(features, deterministic=deterministic))

    def _predict(self, observation: PyTorchObs, deterministic: bool = False) -> torch.Tensor:
        return self(observation, deterministic)


class SoftGACPolicy(BasePolicy):
    """Actor (bridge) and critic(s) for :class:`~maxbench.algos.softgac.softgac.SoftGAC`.

    Args:
        observation_space: the observation space.
        action_space: the action space.
        lr_schedule: learning-rate schedule (its value at progress 1 initialises the optimizers).
        net_arch: the critic's hidden layers, a list or ``{"qf": [...]}``; default ``[256, 256]``
            for ``"twin"`` and sb3-contrib's CrossQ default ``[1024, 1024]`` for ``"crossq"``.
            ``{"pi": [...], "qf": [...]}`` adds the actor's state encoder, an MLP in front of the
            bridge (:class:`BridgeActor`; default none, the authors' actor). A list is the
            critic's alone (unlike SB3's SAC, where it is both): the actor is the bridge, whose
            sizes are ``n_bridge_steps`` and ``bridge_hidden_size``.
        activation_fn: the critic's (and the state encoder's) activation (ReLU, as in SB3's
            SAC and the authors' critic).
        n_bridge_steps: K, bridge steps (spec §3 default 6).
        bridge_hidden_size: H, each step's hidden width (256 for MuJoCo/Box2D).
        input_layer_norm: each bridge step's LayerNorm over [s, z_k] (default on, the authors');
            turn it off for low-dimensional observations (Pendulum, the multi-goal envs), where
            it discards half of the input (:class:`~maxbench.algos.softgac.bridge.BridgeStep`).
        critic_type: ``"twin"`` or ``"crossq"`` (see the module docstring).
        batch_norm_momentum, batch_norm_eps, renorm_warmup_steps: BatchRenorm settings of the
            CrossQ critic (sb3-contrib's defaults); unused by ``"twin"``.
        features_extractor_class, features_extractor_kwargs, normalize_images: as in SB3.
        optimizer_class, optimizer_kwargs: as in SB3; the default (Adam, no kwargs) becomes
            ``{"fused": True}`` (same update, one kernel), plus betas (0.5, 0.999) for
            ``"crossq"`` as in sb3-contrib's CrossQ and the authors' critic.
        n_critics: number of Q-networks (2).
        share_features_extractor: share the actor's features extractor with the critic.
    """

    actor: BridgeActor
    critic: ContinuousCritic | CrossQCritic
    critic_target: ContinuousCritic | None

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Box,
        lr_schedule: Schedule,
        net_arch: list[int] | dict[str, list[int]] | None = None,
        activation_fn: type[nn.Module] = nn.ReLU,
        n_bridge_steps: int = 6,
        bridge_hidden_size: int = 256,
        input_layer_norm: bool = True,
        critic_type: str = "twin",
        batch_norm_momentum: float = 0.01,
        batch_norm_eps: float = 0.001,
        renorm_warmup_steps: int = 100_000,
        features_extractor_class: type[BaseFeaturesExtractor] = FlattenExtractor,
        features_extractor_kwargs: dict[str, Any] | None = None,
        normalize_images: bool = True,
        optimizer_class: type[torch.optim.Optimizer] = torch.optim.Adam,
        optimizer_kwargs: dict[str, Any] | None = None,
        n_critics: int = 2,
        share_features_extractor: bool = False,
    ) -> None:
        if critic_type not in CRITIC_TYPES:
            raise ValueError(f"unknown critic_type '{critic_type}'; use one of {CRITIC_TYPES}")
        if optimizer_kwargs is None and optimizer_class in (torch.optim.Adam, torch.optim.AdamW):
            # The fused Adam kernel: the bridge has 10 parameter tensors per step, and the default
            # per-tensor CPU loop costs several times more per update.
            optimizer_kwargs = {"fused": True}
            if critic_type == "crossq":
                optimizer_kwargs["betas"] = (0.5, 0.999)
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
        default_critic_arch = [1024, 1024] if critic_type == "crossq" else [256, 256]
        if net_arch is None:
            net_arch = default_critic_arch
        if isinstance(net_arch, dict):
            net_arch = {"pi": [], "qf": default_critic_arch, **net_arch}
            state_encoder_arch, critic_arch = get_actor_critic_arch(net_arch)
        else:  # a list is the critic's alone: the actor is the bridge
            state_encoder_arch, critic_arch = [], list(net_arch)

        self.net_arch = net_arch
        self.activation_fn = activation_fn
        self.critic_type = critic_type
        self.n_bridge_steps = n_bridge_steps
        self.bridge_hidden_size = bridge_hidden_size
        self.batch_norm_params = {
            "batch_norm_momentum": batch_norm_momentum,
            "batch_norm_eps": batch_norm_eps,
            "renorm_warmup_steps": renorm_warmup_steps,
        }
        self.share_features_extractor = share_features_extractor
        self.actor_kwargs: dict[str, Any] = {
            "observation_space": self.observation_space,
            "action_space": self.action_space,
            "n_bridge_steps": n_bridge_steps,
            "bridge_hidden_size": bridge_hidden_size,
            "input_layer_norm": input_layer_norm,
            "state_encoder_arch": state_encoder_arch,
            "activation_fn": activation_fn,
            "normalize_images": normalize_images,
        }
        self.critic_kwargs: dict[str, Any] = {
            "observation_space": self.observation_space,
            "action_space": self.action_space,
            "net_arch": critic_arch,
            "activation_fn": activation_fn,
            "normalize_images": normalize_images,
            "n_critics": n_critics,
            "share_features_extractor": share_features_extractor,
        }
        if critic_type == "crossq":
            self.critic_kwargs.update(batch_norm=True, **self.batch_norm_params)
        self._build(lr_schedule)

    @property
    def uses_target_critic(self) -> bool:
        """Whether the critic has a Polyak target copy (twin) or not (CrossQ)."""
        return self.critic_target is not None

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
        self.critic_target = None
        if self.critic_type == "twin":
            self.critic_target = self.make_critic(features_extractor=None)
            self.critic_target.load_state_dict(self.critic.state_dict())
            self.critic_target.set_training_mode(False)
        self.critic.optimizer = self.optimizer_class(
            critic_parameters,
            lr=lr_schedule(1),  # type: ignore[call-arg]
            **self.optimizer_kwargs,
        )

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(
            net_arch=self.net_arch,
            activation_fn=self.activation_fn,
            n_bridge_steps=self.n_bridge_steps,
            bridge_hidden_size=self.bridge_hidden_size,
            input_layer_norm=self.actor_kwargs["input_layer_norm"],
            critic_type=self.critic_type,
            n_critics=self.critic_kwargs["n_critics"],
            lr_schedule=self._dummy_schedule,
            optimizer_class=self.optimizer_class,
            optimizer_kwargs=self.optimizer_kwargs,
            features_extractor_class=self.features_extractor_class,
            features_extractor_kwargs=self.features_extractor_kwargs,
            share_features_extractor=self.share_features_extractor,
            **self.batch_norm_params,
        )
        return data

    def make_actor(self, features_extractor: BaseFeaturesExtractor | None = None) -> BridgeActor:
        """A new bridge actor (with its own features extractor unless one is given)."""
        actor_kwargs = self._update_features_extractor(self.actor_kwargs, features_extractor)
        return BridgeActor(**actor_kwargs).to(self.device)

    def make_critic(
        self, features_extractor: BaseFeaturesExtractor | None = None
    ) -> ContinuousCritic | CrossQCritic:
        """A new critic of the configured type."""
        critic_kwargs = self._update_features_extractor(self.critic_kwargs, features_extractor)
        critic_class = CrossQCritic if self.critic_type == "crossq" else ContinuousCritic
        return critic_class(**critic_kwargs).to(self.device)

    def forward(self, obs: PyTorchObs, deterministic: bool = False) -> torch.Tensor:
        return self._predict(obs, deterministic=deterministic)

    def _predict(self, observation: PyTorchObs, deterministic: bool = False) -> torch.Tensor:
        return self.actor(observation, deterministic)

    def set_training_mode(self, mode: bool) -> None:
        """Train/eval mode of actor and critic (BatchRenorm layers of the CrossQ critic).

        SB3 calls this on every ``predict``; when the policy, actor and critic are already in
        ``mode`` the walk over every module is skipped (it costs about as much as the K bridge
        steps of a single-observation prediction).
        """
        if self.training == mode and self.actor.training == mode and self.critic.training == mode:
            return
        self.actor.set_training_mode(mode)
        self.critic.set_training_mode(mode)
        self.training = mode


MlpPolicy = SoftGACPolicy
