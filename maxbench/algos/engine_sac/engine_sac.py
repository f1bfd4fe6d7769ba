"""SAC on maxbench's engine: SB3's SAC mathematics, one fused and optionally compiled step.

The reference for every ratio stays SB3's own ``sac``; this class (registered ``sac-engine``)
computes exactly what :meth:`stable_baselines3.SAC.train` computes, in SB3's order (Haarnoja et
al. 2018, Alg. 1 with the automatic temperature of their §5): the temperature loss and step, the
soft target ``r + γ (1 − d) (min Q̄(s', a') − α log π(a'|s'))``, the critic step on
``½ Σ_k MSE(Q_k(s, a), target)``, the actor step on ``E[α log π(ã|s) − min_k Q_k(s, ã)]``, and the
Polyak target update every ``target_update_interval`` steps. What changes is the engineering
(issue 14): the replay buffer lives on the algorithm's device
(:class:`~maxbench.engine.replay.TensorReplayBuffer`), the optimisers use their multi-tensor
kernels, the target update is one ``_foreach_lerp_``, logged values stay on the device until
logging time, and with ``compile=True`` the whole gradient step is one ``torch.compile``'d
function (CUDA graphs on a GPU).
"""

from __future__ import annotations

import math
from typing import Any

import torch as th
import torch.nn.functional as F
from gymnasium import spaces
from stable_baselines3.common.buffers import ReplayBuffer
from stable_baselines3.common.noise import ActionNoise
from stable_baselines3.common.type_aliases import GymEnv, Schedule

from maxbench.algos.fused_sac import FusedSACTraining
from maxbench.algos.sb3_compat import SACVariant, reject_gsde
from maxbench.engine.compiled import constant_weights_call, tune_optimizer
from maxbench.engine.options import Compilable
from maxbench.engine.replay import TensorReplayBuffer

__all__ = ["EngineSAC"]

_LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)


class EngineSAC(Compilable, FusedSACTraining, SACVariant):
    """SB3's SAC (same arguments, same defaults) on the engine; ``compile`` fuses its step.

    Args:
        compile: compile the gradient step with ``torch.compile`` (keyword-only; off: the same
            step run eagerly; a string: that ``torch.compile`` backend, e.g. ``"aot_eager"``).
            A model saved compiled loads eager and the reverse: ``compile`` is an attribute,
            the compiled function is rebuilt on demand.
        (all others): :class:`stable_baselines3.SAC`'s. ``replay_buffer_class`` defaults to
            :class:`~maxbench.engine.replay.TensorReplayBuffer`.
    """

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
        reject_gsde("EngineSAC", use_sde)
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
        if self.replay_buffer_class is None and isinstance(self.observation_space, spaces.Box):
            self.replay_buffer_class = TensorReplayBuffer
        super()._setup_model()
        for optimizer in (self.actor.optimizer, self.critic.optimizer, self.ent_coef_optimizer):
            if optimizer is not None:  # the engine's SAC: multi-tensor kernels, compiled or not
                tune_optimizer(optimizer, self.device)

    def _squashed_sample(self, observations: th.Tensor, noise: th.Tensor) -> tuple[Any, Any]:
        """SB3's ``actor.action_log_prob`` with the standard-normal ``noise`` given.

        a = tanh(μ + σ ε), log π(a|s) = Σ_i log N(μ_i + σ_i ε_i; μ_i, σ_i) − Σ_i log(1 − a_i² + ε₀)
        (SB3's SquashedDiagGaussianDistribution, ε₀ = its epsilon).
        """
        mean, log_std, _ = self.actor.get_action_dist_params(observations)
        std = th.ones_like(mean) * log_std.exp()
        gaussian = mean + noise * std
        actions = th.tanh(gaussian)
        log_normal = -((gaussian - mean) ** 2) / (2 * std**2) - std.log() - _LOG_SQRT_2PI
        correction = th.log(1 - actions**2 + self.actor.action_dist.epsilon)
        return actions, (log_normal.sum(dim=1) - correction.sum(dim=1)).reshape(-1, 1)

    def _step_start(
        self,
        observations: th.Tensor,
        next_observations: th.Tensor,
        rewards: th.Tensor,
        dones: th.Tensor,
        discounts: th.Tensor,
    ) -> tuple[th.Tensor, th.Tensor, th.Tensor]:
        """The noise of ã (drawn first, in SB3's order), α and the soft target (§4.2):
        ``r + γ (1 − d) (min_k Q̄_k(s', a') − α log π(a'|s'))``."""
        shape = (observations.shape[0], self.actor.action_dist.action_dim)
        noise_pi = th.empty(shape, device=observations.device).normal_()
        noise_next = th.empty(shape, device=observations.device).normal_()
        ent_coef = self._entropy_coefficient()
        with th.no_grad():
            next_actions, next_log_prob = self._squashed_sample(next_observations, noise_next)
            next_q = th.cat(self.critic_target(next_observations, next_actions), dim=1)
            next_q, _ = th.min(next_q, dim=1, keepdim=True)
            target_q = rewards + (1 - dones) * discounts * (next_q - ent_coef * next_log_prob)
        return noise_pi, ent_coef, target_q

    def _gradient_step(
        self,
        observations: th.Tensor,
        actions: th.Tensor,
        next_observations: th.Tensor,
        rewards: th.Tensor,
        dones: th.Tensor,
        discounts: th.Tensor,
    ) -> th.Tensor:
        """One SAC gradient step; returns [α, α loss, critic loss, actor loss].

        The same quantities as SB3's ``SAC.train`` step, in an order that lets each gradient
        be computed on its own: the noise of the policy's two samples is drawn first, in SB3's
        order (ã at s, then a' at s'); the critic is stepped; then ã and log π(ã|s) — which
        depend on the actor only, unchanged by the critic step — give the actor loss with the
        stepped critic, as in SB3, its weights read as constants (the gradient SB3 computes
        for them here is discarded), and the temperature's gradient, d/dlog α of
        −log α (log π + H̄) = −mean(log π + H̄) (SB3's loss, differentiated by hand). Each
        gradient is :meth:`~maxbench.engine.options.Compilable.gradients_into`'s: ``backward``
        eagerly, a function transform compiled (no autograd segments in the compiled step).
        """
        noise_pi, ent_coef, target_q = self._step_start(
            observations, next_observations, rewards, dones, discounts
        )

        def critic_loss_of() -> th.Tensor:
            current_q = self.critic(observations, actions)
            return 0.5 * sum(F.mse_loss(q, target_q) for q in current_q)

        critic_loss = self.gradients_into("critic", critic_loss_of)
        self.step_optimizer(self.critic.optimizer)

        def actor_loss_of() -> tuple[th.Tensor, th.Tensor]:
            actions_pi, log_prob = self._squashed_sample(observations, noise_pi)
            # The actor's loss differentiates through the critics to the actions only: SB3
            # also computes the critics' weight gradients here and discards them; read with
            # their values outside autograd, the critics cost no such work.
            q_pi = th.cat(constant_weights_call(self.critic, observations, actions_pi), dim=1)
            min_q_pi, _ = th.min(q_pi, dim=1, keepdim=True)
            return (ent_coef * log_prob - min_q_pi).mean(), log_prob.detach()

        actor_loss, log_prob = self.gradients_into("actor", actor_loss_of, has_aux=True)
        ent_coef_loss = self._temperature_step(log_prob)
        self.step_optimizer(self.actor.optimizer)
        return th.stack(
            [ent_coef.reshape(()), ent_coef_loss, critic_loss.detach(), actor_loss.detach()]
        )

    def train(self, gradient_steps: int, batch_size: int = 64) -> None:
        """SB3's SAC ``train``, each step the fused :meth:`_gradient_step`; logs read once."""
        self._train_fused(gradient_steps, batch_size)
