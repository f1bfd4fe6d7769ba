"""SB3's ``SAC.train`` loop around a fused gradient step: the part its engine variants share.

The engine's SAC (``sac-engine``) and SAC-NF's compiled path both run SB3's SAC update (Haarnoja
et al. 2018, Alg. 1 with the automatic temperature of their §5) as one function per gradient
step, :meth:`FusedSACTraining._gradient_step`, which returns ``[α, α loss, critic loss, actor
loss]``. This mixin holds what they would otherwise each write: the loop that samples the
buffer, calls the (compiled) step, keeps the logged values on the device and makes the target
update, and the temperature's step. Mixed in after
:class:`~maxbench.engine.options.Compilable` and before an SB3 ``SAC``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch as th
from stable_baselines3.common.utils import polyak_update

from maxbench.engine.compiled import DeviceMeans, polyak_

__all__ = ["FusedSACTraining"]

#: The logged values of :meth:`FusedSACTraining._gradient_step`, in its order (SB3's keys).
_LOGGED = ("train/ent_coef", "train/ent_coef_loss", "train/critic_loss", "train/actor_loss")


class FusedSACTraining:
    """SB3's ``SAC.train`` with each step one fused (optionally compiled) function."""

    #: One SAC gradient step over a batch (observations, actions, next observations, rewards,
    #: dones, discounts), the subclass's; returns [α, α loss, critic loss, actor loss].
    _gradient_step: Callable[..., th.Tensor]

    def _entropy_coefficient(self) -> th.Tensor:
        """The current α (detached): exp(log α) when learned, else the constant."""
        if self.log_ent_coef is not None:
            return th.exp(self.log_ent_coef.detach())
        return self.ent_coef_tensor

    def _temperature_step(self, log_prob: th.Tensor) -> th.Tensor:
        """SB3's temperature step on −log α (log π + H̄), its gradient −mean(log π + H̄) set by
        hand (Haarnoja et al. 2018b, §5; no backward pass); returns the loss (0 with a fixed
        α). ``log_prob``: log π(ã|s) of the step's batch, shape (B, 1)."""
        ent_coef_loss = th.zeros((), device=log_prob.device)
        if self.ent_coef_optimizer is not None and self.log_ent_coef is not None:
            shifted = (log_prob + self.target_entropy).detach()
            ent_coef_loss = -(self.log_ent_coef.detach() * shifted).mean()
            self.set_gradient(self.log_ent_coef, -shifted.mean().reshape(self.log_ent_coef.shape))
            self.step_optimizer(self.ent_coef_optimizer)
        return ent_coef_loss

    def _train_fused(self, gradient_steps: int, batch_size: int) -> None:
        """SB3's ``SAC.train`` loop, each step :meth:`_gradient_step` compiled per ``compile``
        (off: run eagerly); the Polyak update one ``_foreach_lerp_``; the logged means (SB3's
        keys) read once at the end."""
        self.policy.set_training_mode(True)
        optimizers = [self.actor.optimizer, self.critic.optimizer]
        if self.ent_coef_optimizer is not None:
            optimizers.append(self.ent_coef_optimizer)
        self._update_learning_rate(optimizers)
        self.prepare_gradients("critic", "actor", "log_ent_coef")
        step = self.compiled("gradient_step", self._gradient_step, transforms_only=True)
        logged = [  # (index in the step's output, key); no temperature loss with a fixed α
            (index, name)
            for index, name in enumerate(_LOGGED)
            if name != "train/ent_coef_loss" or self.ent_coef_optimizer is not None
        ]
        means = DeviceMeans()
        critic_params = list(self.critic.parameters())
        target_params = list(self.critic_target.parameters())
        for gradient_step in range(gradient_steps):
            data = self.replay_buffer.sample(batch_size, env=self._vec_normalize_env)
            discounts = data.discounts if data.discounts is not None else self.gamma_tensor()
            values = step(
                data.observations,
                data.actions,
                data.next_observations,
                data.rewards,
                data.dones,
                discounts,
            )
            for index, name in logged:
                means.add(name, values[index])
            if gradient_step % self.target_update_interval == 0:
                polyak_(critic_params, target_params, self.tau)
                polyak_update(self.batch_norm_stats, self.batch_norm_stats_target, 1.0)
        self._n_updates += gradient_steps
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        for name, value in means.read().items():
            self.logger.record(name, value)
