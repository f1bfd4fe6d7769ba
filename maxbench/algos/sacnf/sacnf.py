"""SAC-NF: Soft Actor-Critic with a normalizing-flow policy (Mazoure et al. 2020).

Only the actor differs from stable-baselines3's SAC: a state-conditioned diagonal Gaussian base
``z ~ N(mu(s), diag sigma(s)^2)`` is pushed through ``K`` invertible layers ``u = T(z | s)`` and
squashed, ``a = tanh(u)``. The log-density stays exact (spec §4, "SAC-NF")::

    log pi(a | s) = log N(z; mu, sigma) - log |det dT/dz| - sum_d log(1 - tanh(u_d)^2).

Critics, the auto-tuned temperature, the losses and the training loop are SB3's ``SAC`` unchanged.
With ``compile`` on (issue 14) the same step is one fused function, :meth:`SACNF._gradient_step`,
compiled with ``torch.compile``.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch as th
import torch.nn.functional as F
from gymnasium import spaces
from stable_baselines3.common.buffers import ReplayBuffer
from stable_baselines3.common.noise import ActionNoise
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.preprocessing import get_action_dim
from stable_baselines3.common.torch_layers import (
    BaseFeaturesExtractor,
    CombinedExtractor,
    NatureCNN,
)
from stable_baselines3.common.type_aliases import GymEnv, PyTorchObs, Schedule
from stable_baselines3.sac.policies import LOG_STD_MAX, LOG_STD_MIN, Actor, SACPolicy
from torch import nn

from maxbench.algos.fused_sac import FusedSACTraining
from maxbench.algos.sacnf.flows import ConditionalFlow
from maxbench.algos.sb3_compat import SACVariant, reject_gsde
from maxbench.algos.svgd import tanh_log_det_jacobian
from maxbench.engine.options import Compilable

__all__ = ["SACNF", "FlowActor", "SACNFCnnPolicy", "SACNFMultiInputPolicy", "SACNFPolicy"]

_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)
#: ``atanh`` of a given action is taken after clamping it to ``±(1 - this)``.
_ATANH_CLAMP = 1e-6


class FlowActor(Actor):
    """SAC actor whose pre-squash distribution is a normalizing flow over a Gaussian base.

    The trunk, ``mu`` and ``log_std`` heads are SB3's :class:`~stable_baselines3.sac.policies.Actor`
    (``log_std`` clamped to ``[-20, 2]`` as there); a :class:`ConditionalFlow` conditioned on the
    trunk's latent features follows.

    Deterministic action: the base mean ``mu(s)`` pushed through the flow and the squash,
    ``tanh(T(mu(s) | s))``. For a non-Gaussian flow this is not the mode of the policy, but it is
    a fixed function of the state (SB3's SAC likewise returns ``tanh(mu)``).

    Args:
        n_flows: number of flow layers ``K``.
        flow_type: ``"spline"`` or ``"affine"`` (see :mod:`maxbench.algos.sacnf.flows`).
        flow_bins: spline bins per dimension.
        flow_hidden: hidden widths of each layer's conditioner.
        (the rest): as SB3's SAC ``Actor``; gSDE is not supported.
    """

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Box,
        net_arch: list[int],
        features_extractor: nn.Module,
        features_dim: int,
        activation_fn: type[nn.Module] = nn.ReLU,
        use_sde: bool = False,
        log_std_init: float = -3,
        full_std: bool = True,
        use_expln: bool = False,
        clip_mean: float = 2.0,
        normalize_images: bool = True,
        n_flows: int = 2,
        flow_type: str = "spline",
        flow_bins: int = 8,
        flow_hidden: list[int] | tuple[int, ...] = (64, 64),
    ) -> None:
        if use_sde:
            raise ValueError("SAC-NF does not support gSDE (use_sde=True)")
        super().__init__(
            observation_space,
            action_space,
            net_arch,
            features_extractor,
            features_dim,
            activation_fn=activation_fn,
            use_sde=False,
            log_std_init=log_std_init,
            full_std=full_std,
            use_expln=use_expln,
            clip_mean=clip_mean,
            normalize_images=normalize_images,
        )
        self.n_flows = n_flows
        self.flow_type = flow_type
        self.flow_bins = flow_bins
        self.flow_hidden = list(flow_hidden)
        latent_dim = net_arch[-1] if len(net_arch) > 0 else features_dim
        self.flow = ConditionalFlow(
            features=get_action_dim(self.action_space),
            context=latent_dim,
            n_layers=n_flows,
            flow_type=flow_type,
            bins=flow_bins,
            hidden_features=self.flow_hidden,
        )

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(
            n_flows=self.n_flows,
            flow_type=self.flow_type,
            flow_bins=self.flow_bins,
            flow_hidden=self.flow_hidden,
        )
        return data

    def base_params(self, obs: PyTorchObs) -> tuple[th.Tensor, th.Tensor, th.Tensor]:
        """Mean and log-std of the Gaussian base and the latent features that condition the flow.

        Returns:
            ``mu`` ``(B, d)``, ``log_std`` ``(B, d)`` (clamped as in SB3's SAC) and the latent
            ``(B, latent_dim)``.
        """
        features = self.extract_features(obs, self.features_extractor)
        latent = self.latent_pi(features)
        log_std = th.clamp(self.log_std(latent), LOG_STD_MIN, LOG_STD_MAX)
        return self.mu(latent), log_std, latent

    def squashed_log_prob(
        self, z: th.Tensor, mean: th.Tensor, log_std: th.Tensor, latent: th.Tensor
    ) -> tuple[th.Tensor, th.Tensor]:
        """Push base samples through the flow and tanh; exact log-density of the result.

        Args:
            z: ``(B, d)`` base samples; ``mean``, ``log_std``: ``(B, d)``; ``latent``: context.

        Returns:
            Actions ``a = tanh(T(z))`` ``(B, d)`` and ``log pi(a | s)`` ``(B,)``.
        """
        eps = (z - mean) / log_std.exp()
        log_base = (-0.5 * eps.pow(2) - log_std - _HALF_LOG_2PI).sum(-1)
        u, log_det_flow = self.flow(z, latent)
        return th.tanh(u), log_base - log_det_flow - tanh_log_det_jacobian(u)

    def forward(self, obs: PyTorchObs, deterministic: bool = False) -> th.Tensor:
        mean, log_std, latent = self.base_params(obs)
        z = mean if deterministic else mean + log_std.exp() * th.randn_like(mean)
        u, _ = self.flow(z, latent)
        return th.tanh(u)

    def action_log_prob(self, obs: PyTorchObs) -> tuple[th.Tensor, th.Tensor]:
        """Reparameterised sample and its exact log-probability (what SB3's SAC ``train`` calls)."""
        mean, log_std, latent = self.base_params(obs)
        z = mean + log_std.exp() * th.randn_like(mean)
        return self.squashed_log_prob(z, mean, log_std, latent)

    def action_log_prob_from_noise(
        self, obs: PyTorchObs, noise: th.Tensor
    ) -> tuple[th.Tensor, th.Tensor]:
        """:meth:`action_log_prob` with its standard-normal base noise ``noise`` ``(B, d)`` given:
        ``z = mu(s) + sigma(s) noise``, then the flow and the squash (Mazoure et al. 2020, §3)."""
        mean, log_std, latent = self.base_params(obs)
        return self.squashed_log_prob(mean + log_std.exp() * noise, mean, log_std, latent)

    def log_prob(self, obs: PyTorchObs, actions: th.Tensor) -> th.Tensor:
        """Exact ``log pi(a | s)`` of given squashed actions in ``(-1, 1)^d`` (inverts the flow).

        Actions are clamped to ``±(1 - 1e-6)`` before ``atanh``. Not used in training; for tests
        and for probing a trained policy's density (e.g. ``-log pi`` at multi-goal probe states).
        """
        mean, log_std, latent = self.base_params(obs)
        bound = 1.0 - _ATANH_CLAMP
        u = th.atanh(actions.clamp(-bound, bound))
        z, log_det_flow = self.flow.inverse(u, latent)
        eps = (z - mean) / log_std.exp()
        log_base = (-0.5 * eps.pow(2) - log_std - _HALF_LOG_2PI).sum(-1)
        return log_base - log_det_flow - tanh_log_det_jacobian(u)


class SACNFPolicy(SACPolicy):
    """SB3's SAC policy with a :class:`FlowActor` (critics unchanged).

    Extra keyword arguments (``policy_kwargs``): ``n_flows`` (2), ``flow_type`` (``"spline"``),
    ``flow_bins`` (8), ``flow_hidden`` (``[64, 64]``); see :class:`FlowActor`.
    """

    actor: FlowActor

    def __init__(
        self,
        *args: Any,
        n_flows: int = 2,
        flow_type: str = "spline",
        flow_bins: int = 8,
        flow_hidden: list[int] | tuple[int, ...] = (64, 64),
        **kwargs: Any,
    ) -> None:
        self.flow_kwargs = {
            "n_flows": n_flows,
            "flow_type": flow_type,
            "flow_bins": flow_bins,
            "flow_hidden": list(flow_hidden),
        }
        super().__init__(*args, **kwargs)

    def make_actor(self, features_extractor: BaseFeaturesExtractor | None = None) -> FlowActor:
        actor_kwargs = self._update_features_extractor(self.actor_kwargs, features_extractor)
        return FlowActor(**actor_kwargs, **self.flow_kwargs).to(self.device)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(self.flow_kwargs)
        return data


class SACNFCnnPolicy(SACNFPolicy):
    """:class:`SACNFPolicy` with SB3's Nature CNN features extractor (image observations)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("features_extractor_class", NatureCNN)
        super().__init__(*args, **kwargs)


class SACNFMultiInputPolicy(SACNFPolicy):
    """:class:`SACNFPolicy` for dict observations (SB3's ``CombinedExtractor``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("features_extractor_class", CombinedExtractor)
        super().__init__(*args, **kwargs)


class SACNF(Compilable, FusedSACTraining, SACVariant):
    """SAC with a normalizing-flow actor (SAC-NF; Mazoure et al. 2020; spec §4).

    Everything but the actor is stable-baselines3's :class:`~stable_baselines3.SAC`: twin critics
    with min-clipping and Polyak targets, the actor loss ``E[alpha log pi(a|s) - min Q(s, a)]``
    and the temperature loss with ``target_entropy = -d`` (``ent_coef="auto"``, the default). The
    flow is configured through ``policy_kwargs`` (see :class:`SACNFPolicy`); gSDE is not supported
    (``use_sde=True`` is a ``ValueError``; SAC's other gSDE arguments are accepted).

    As an SB3 algorithm: the constructor is SAC's (same arguments, order and defaults),
    ``policy_kwargs`` stays as given (``SACNF.load(path, env=env, **kwargs)`` takes the
    constructor's keyword arguments), the TensorBoard run is named ``SACNF_<n>``, and
    ``model.actor`` is the flow actor: its ``predict(obs, deterministic=True)`` equals
    ``model.predict(obs, deterministic=True)``.

    Deviations from the authors' SAC-NF (also in the README's deviations table):

    * Flow layers: Mazoure et al. stack radial flows (Rezende & Mohamed 2015) whose parameters do
      not depend on the state on top of the state-conditioned Gaussian; maxbench uses zuko's
      masked autoregressive transforms (rational-quadratic splines by default, affine as an
      option) *conditioned on the actor's latent state features*, sampled in the single-pass
      (inverse-autoregressive) direction. A maintained library with exact log-determinants
      replaces hand-written layers, and a conditioned spline is non-Gaussian even for a
      one-dimensional action, where a radial flow reduces to a monotone warp shared by all states.
    * Squash: the exact ``log(1 - tanh^2)`` in its stable form instead of SB3's ``+1e-6`` guard.

    Args:
        compile: compile the gradient step with ``torch.compile`` (keyword-only, issue 14). Off
            (the default): SB3's own ``SAC.train``, unchanged. On: each step is
            :meth:`_gradient_step`, SB3's step fused into one function and compiled (a string:
            that ``torch.compile`` backend, e.g. ``"aot_eager"``), with the device-resident
            :class:`~maxbench.engine.replay.TensorReplayBuffer` as the default replay buffer
            (Box observations), multi-tensor optimisers and logged values read once per
            ``train``. A model saved compiled loads eager and the reverse
            (``SACNF.load(path, compile=...)``): ``compile`` is an attribute, the compiled
            function is rebuilt on demand.
        (all others): :class:`stable_baselines3.SAC`'s.
    """

    policy_aliases: ClassVar[dict[str, type[BasePolicy]]] = {
        "MlpPolicy": SACNFPolicy,
        "CnnPolicy": SACNFCnnPolicy,
        "MultiInputPolicy": SACNFMultiInputPolicy,
    }
    policy: SACNFPolicy
    actor: FlowActor

    def __init__(
        self,
        policy: str | type[Any],
        env: GymEnv | str,
        learning_rate: float | Schedule = 3e-4,
        buffer_size: int = 1_000_000,
        learning_starts: int = 100,
        batch_size: int = 256,
        tau: float = 0.005,
        gamma: float = 0.99,
        train_freq: int | tuple[int, str] = 1,
        gradient_steps: int = 1,
        action_noise: ActionNoise | None = None,
        replay_buffer_class: type[ReplayBuffer] | None = None,
        replay_buffer_kwargs: dict[str, Any] | None = None,
        optimize_memory_usage: bool = False,
        n_steps: int = 1,
        ent_coef: str | float = "auto",
        target_update_interval: int = 1,
        target_entropy: str | float = "auto",
        use_sde: bool = False,
        sde_sample_freq: int = -1,
        use_sde_at_warmup: bool = False,
        stats_window_size: int = 100,
        tensorboard_log: str | None = None,
        policy_kwargs: dict[str, Any] | None = None,
        verbose: int = 0,
        seed: int | None = None,
        device: th.device | str = "auto",
        _init_setup_model: bool = True,
        *,
        compile: bool | str = False,  # noqa: A002  (torch.compile's own word)
    ) -> None:
        self._set_compile(compile)
        super().__init__(
            policy,
            env,
            learning_rate,
            buffer_size,
            learning_starts,
            batch_size,
            tau,
            gamma,
            train_freq,
            gradient_steps,
            action_noise,
            replay_buffer_class,
            replay_buffer_kwargs,
            optimize_memory_usage,
            n_steps,
            ent_coef,
            target_update_interval,
            target_entropy,
            use_sde,
            sde_sample_freq,
            use_sde_at_warmup,
            stats_window_size,
            tensorboard_log,
            policy_kwargs,
            verbose,
            seed,
            device,
            _init_setup_model,
        )

    def _setup_model(self) -> None:
        reject_gsde("SAC-NF", self.use_sde)
        super()._setup_model()

    def train(self, gradient_steps: int, batch_size: int = 64) -> None:
        """SB3's ``SAC.train`` (``compile`` off), or its fused steps (:meth:`_train_fused`)."""
        if self.compile is False:
            super().train(gradient_steps, batch_size)
        else:
            self._train_fused(gradient_steps, batch_size)

    def _gradient_step(
        self,
        observations: PyTorchObs,
        actions: th.Tensor,
        next_observations: PyTorchObs,
        rewards: th.Tensor,
        dones: th.Tensor,
        discounts: th.Tensor,
    ) -> th.Tensor:
        """One step of SB3's ``SAC.train`` with the flow actor; returns [alpha, alpha loss,
        critic loss, actor loss] (the alpha loss 0 with a fixed ``ent_coef``).

        SAC's mathematics (Haarnoja et al. 2018, Alg. 1 and §5; the flow's exact log-density,
        Mazoure et al. 2020, §3), in an order where each gradient is computed on its own: the
        base noise of the two policy samples is drawn first, in SB3's order (at s, then at s'),
        so that a seed gives SB3's numbers; the critic is stepped on
        ``1/2 sum_k MSE(Q_k(s, a), r + gamma (1 - d) (min Qbar(s', a') - alpha log pi(a'|s')))``;
        then the sample at s — the actor is unchanged by the critic step — gives the actor loss
        ``mean(alpha log pi(a~|s) - min_k Q_k(s, a~))`` with the stepped critic, as in SB3, and
        the temperature's gradient ``d/dlog alpha [-log alpha (log pi + H)] = -mean(log pi + H)``
        (SB3's loss, differentiated by hand; alpha was read at the start, so the temperature's
        step may come before the actor's). Only the compiled path runs it (eagerly SAC-NF trains
        with SB3's own ``SAC.train``): its gradients are
        :meth:`~maxbench.engine.options.Compilable.gradients_into`'s transforms and its
        optimiser steps are traced, one graph.
        """
        noise_pi = th.randn(actions.shape, device=actions.device)
        noise_next = th.randn(actions.shape, device=actions.device)
        ent_coef = self._entropy_coefficient()
        with th.no_grad():
            next_actions, next_log_prob = self.actor.action_log_prob_from_noise(
                next_observations, noise_next
            )
            next_q = th.cat(self.critic_target(next_observations, next_actions), dim=1)
            next_q, _ = th.min(next_q, dim=1, keepdim=True)
            next_q = next_q - ent_coef * next_log_prob.reshape(-1, 1)
            target_q = rewards + (1 - dones) * discounts * next_q

        def critic_loss_of() -> th.Tensor:
            current_q = self.critic(observations, actions)
            return 0.5 * sum(F.mse_loss(q, target_q) for q in current_q)  # type: ignore[return-value]

        critic_loss = self.gradients_into("critic", critic_loss_of)
        self.step_optimizer(self.critic.optimizer)

        def actor_loss_of() -> tuple[th.Tensor, th.Tensor]:
            actions_pi, log_prob = self.actor.action_log_prob_from_noise(observations, noise_pi)
            log_prob = log_prob.reshape(-1, 1)
            # The gradient is the actor's only: the critics' weights are not differentiated
            q_pi = th.cat(self.critic(observations, actions_pi), dim=1)
            min_q_pi, _ = th.min(q_pi, dim=1, keepdim=True)
            return (ent_coef * log_prob - min_q_pi).mean(), log_prob.detach()

        actor_loss, log_prob = self.gradients_into("actor", actor_loss_of, has_aux=True)
        ent_coef_loss = self._temperature_step(log_prob)
        self.step_optimizer(self.actor.optimizer)
        return th.stack(
            [ent_coef.reshape(()), ent_coef_loss, critic_loss.detach(), actor_loss.detach()]
        )
