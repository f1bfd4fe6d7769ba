"""Bidirectional SAC (BSAC) as a stable-baselines3 algorithm: a documented reconstruction.

Paper: "Bidirectional Soft Actor-Critic: Leveraging Forward and Reverse KL Divergence for
Efficient Reinforcement Learning", arXiv 2506.01639. Specification: ``algorithms.md`` §2.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch as th
from stable_baselines3.common.buffers import ReplayBuffer
from stable_baselines3.common.noise import ActionNoise
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.type_aliases import GymEnv, Schedule
from stable_baselines3.common.utils import polyak_update, update_learning_rate
from stable_baselines3.sac.policies import LOG_STD_MIN
from torch.nn import functional as F

from maxbench.algos.bsac.policies import BSACCnnPolicy, BSACMultiInputPolicy, BSACPolicy
from maxbench.algos.bsac.projection import (
    DEFAULT_EDGE,
    DEFAULT_GRID_SIZE,
    QuadratureGrid,
    boltzmann_marginal_moments,
    forward_kl_loss,
    quadrature_grid,
)
from maxbench.algos.bsac.vdn import ValueDecompositionNetwork, VDNHeads
from maxbench.algos.sb3_compat import SACVariant

__all__ = ["BSAC"]


class BSAC(SACVariant):
    """Bidirectional Soft Actor-Critic (arXiv 2506.01639) — a reconstruction, not the authors' code.

    **No public code of this method exists**, and the paper's formulas did not survive extraction;
    maxbench implements spec ``algorithms.md`` §2, which restates the method from the abstract
    and the forward-KL result. Everything the abstract leaves open is a maxbench choice, listed
    below.

    The method. The soft-optimal policy is the Boltzmann distribution q(a|s) ∝ exp(Q(s, a)/α).
    SAC fits its Gaussian actor by the *reverse* KL, KL(πθ ‖ q), with stochastic gradients.
    The *forward* KL, KL(q ‖ N(μ, diag σ²)), has a closed-form minimiser: per dimension the mean
    and variance of the marginal q_i — in the pre-tanh latent u = atanh(a) for a tanh-Gaussian
    actor, since KL is invariant under the bijection. BSAC uses it as a first step and SAC's
    reverse-KL gradient as a refinement. Per gradient step:

    1. (every ``forward_freq`` gradient steps) the **forward step**: the VDN-a network's
       marginals Q_i(s, a_i) are evaluated on a G-point grid for every state and dimension of the
       batch, the projected moments (μ*, σ*²) are their quadrature moments of atanh(a)
       (:mod:`maxbench.algos.bsac.projection`), and the actor takes ``forward_steps`` gradient
       steps on KL(N(μ*, σ*²) ‖ N(μθ, σθ²)) with the targets detached;
    2. SAC's step, unchanged: auto-α (target entropy −d), twin critics with min-clipping, the
       reverse-KL actor step E[α log πθ(ã|s) − min Q(s, ã)] (skipped with
       ``reverse_step=False``), Polyak averaging;
    3. the **VDN-a regression**: one gradient step of Q_dec(s, a) onto min(Q1, Q2)(s, a) on the
       batch's replay actions and on the current policy's actions ã.

    With ``forward_steps=0`` no VDN-a network is built and ``train`` runs exactly SAC's code:
    the same seed and batches give bit-identical parameters (tested).

    Choices the abstract leaves open (maxbench decisions; README's deviations table):

    * VDN-a architecture: Q_dec(s, a) = V(s) + Σ_i exp(ρ_i) Σ_k W_ik(s) T_k(a_i), Chebyshev
      polynomials T_1..T_K (K = 4) with state-dependent coefficients from one linear layer on a
      state trunk (default: the critic's hidden sizes) and a learned per-dimension log-scale ρ_i
      (:mod:`maxbench.algos.bsac.vdn`). A G-point grid for all states and dimensions costs one
      (B·d×K)·(K×G) product.
    * VDN-a loss: the MSE against min(Q1, Q2), with its gradient routed — the per-state level
      term trains V(s), the per-state centred (shape) term trains the per-dimension heads and the
      trunk (:mod:`maxbench.algos.bsac.vdn`, "Training"; measured there: 10× smaller error of the
      fitted action profiles on a Pendulum critic than the plain MSE).
    * VDN-a targets: min(Q1, Q2) of the online critics, detached; on replay actions they are the
      values the critic update computed (before that update's optimiser step), on policy actions
      the values the actor loss computed (after it) — reused, so the regression costs no extra
      critic pass. One Adam step per gradient step, same learning rate.
    * Quadrature: Gauss–Legendre nodes in [−(1 − 1e−3), 1 − 1e−3] (G = 64), with the end slivers
      (1 − 1e−3, 1) integrated in closed form under a constant q; see the projection module for
      the measured accuracy.
    * Order within a gradient step: forward step first, on the freshly sampled batch, with the
      VDN-a fitted at the end of the previous step; then SAC's step (so the reverse step and α
      see the actor after the forward step); then the VDN-a regression. The VDN-a trunk runs
      once per gradient step: the same pass gives the forward step's (detached) coefficients and
      the regression's prediction (the VDN-a parameters do not change in between).
    * Cost: one VDN-a trunk pass with its backward, one actor pass with its backward per
      forward step, two extra Adam steps and the O(B·d·G) quadrature; measured at 1.4× SAC's
      CPU time per env step on HalfCheetah-v5 (``benchmarks/bsac_speed.py``).
    * The forward step has its own Adam optimiser over the actor's parameters, so that Adam's
      moment estimates of the reverse step see only SAC's gradients (sharing SAC's optimiser
      blew the actor's std up to SB3's cap within 200 steps of a saved Pendulum run).
    * The forward step's learning rate is ``forward_lr_factor`` (default 0.1) times SAC's. The
      forward KL is stiff where the actor is narrow (its gradient grows like Δμ²/σθ²): on
      Pendulum-v1 its gradient norm was 50–300 against 8–40 for SAC's step, and a few states
      with large Δμ/σθ dominated it. At SAC's learning rate, Adam steps on such a spike widened
      the actor's std from 0.6 to 2.5 in one step of a saved run; α then grew without bound and
      the run collapsed (return −1 200 after −550; one seed of two). Clipping the gradient norm
      to 1 made it worse (the actor's std collapsed to 0.001–0.01 within 5 000 steps, on both
      seeds); a 10× smaller learning rate kept the same saved run stable.
    * α of the Boltzmann target is the current entropy coefficient.
    * The projected variance is floored at exp(2 · LOG_STD_MIN) (SB3's bound on the actor's
      log-std) so that its logarithm stays finite when q_i sits on one node.
    * gSDE: the forward step matches the Gaussian that SB3's gSDE distribution defines for the
      current noise matrix (diagonal, state-dependent variance).

    As an SB3 algorithm: the constructor is SAC's, argument for argument and in SAC's order
    (``BSAC("MlpPolicy", env, 1e-3)`` sets the learning rate), defaults included, and BSAC's
    options follow as keyword-only arguments. ``policy_kwargs`` stays as given (``use_vdn`` is
    derived from ``forward_steps``), so ``BSAC.load(path, env=env, **kwargs)`` takes the
    constructor's own keyword arguments. ``model.actor`` is SAC's actor: its
    ``predict(obs, deterministic=True)`` equals ``model.predict(obs, deterministic=True)``.

    :param policy: the policy model (``MlpPolicy``, ``CnnPolicy``, ``MultiInputPolicy``)
    :param env: the environment to learn from (if registered in Gym, can be str)
    :param learning_rate ... _init_setup_model: as :class:`stable_baselines3.SAC`'s
        (``policy_kwargs`` also takes ``vdn_net_arch`` and ``vdn_basis_size``, see
        :class:`BSACPolicy`; ``use_vdn`` is BSAC's to set)
    :param forward_steps: forward-KL gradient steps per actor update; 0 gives exactly SAC
    :param reverse_step: take SAC's reverse-KL actor step; ``False`` is the "forward only"
        ablation (needs ``forward_steps >= 1``)
    :param forward_freq: run the forward step every this many gradient steps
    :param grid_size: quadrature grid size G
    :param grid_edge: distance of the outermost grid node from ±1
    :param forward_lr_factor: the forward step's learning rate, as a multiple of the learning rate
        (schedule) of SAC's networks
    """

    policy_aliases: ClassVar[dict[str, type[BasePolicy]]] = {
        "MlpPolicy": BSACPolicy,
        "CnnPolicy": BSACCnnPolicy,
        "MultiInputPolicy": BSACMultiInputPolicy,
    }
    policy: BSACPolicy
    vdn: ValueDecompositionNetwork | None
    grid: QuadratureGrid

    def __init__(
        self,
        policy: str | type[BSACPolicy],
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
        forward_steps: int = 1,
        reverse_step: bool = True,
        forward_freq: int = 1,
        grid_size: int = DEFAULT_GRID_SIZE,
        grid_edge: float = DEFAULT_EDGE,
        forward_lr_factor: float = 0.1,
    ) -> None:
        if forward_steps < 0:
            raise ValueError(f"forward_steps must be >= 0, got {forward_steps}")
        if not reverse_step and forward_steps == 0:
            raise ValueError(
                "reverse_step=False needs forward_steps >= 1: nothing would train the actor"
            )
        if forward_freq < 1:
            raise ValueError(f"forward_freq must be >= 1, got {forward_freq}")
        if grid_size < 2:
            raise ValueError(f"grid_size must be >= 2, got {grid_size}")
        if not 0.0 < grid_edge < 1.0:
            raise ValueError(f"grid_edge must lie in (0, 1), got {grid_edge}")
        if not forward_lr_factor > 0:
            raise ValueError(f"forward_lr_factor must be > 0, got {forward_lr_factor}")
        if "use_vdn" in (policy_kwargs or {}):
            raise ValueError(
                "use_vdn is not a policy_kwargs option of BSAC: it follows forward_steps "
                "(a VDN-a network exists iff forward_steps > 0)"
            )
        # Read by _setup_model, which SAC's constructor calls.
        self.forward_steps = int(forward_steps)
        self.reverse_step = bool(reverse_step)
        self.forward_freq = int(forward_freq)
        self.grid_size = int(grid_size)
        self.grid_edge = float(grid_edge)
        self.forward_lr_factor = float(forward_lr_factor)
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

    def _policy_build_kwargs(self) -> dict[str, Any]:
        # The VDN-a network exists only when the forward step runs (forward_steps=0 is SAC).
        return {**super()._policy_build_kwargs(), "use_vdn": self.forward_steps > 0}

    def _setup_model(self) -> None:
        super()._setup_model()
        self.grid = quadrature_grid(self.grid_size, self.grid_edge, device=self.device)

    def _create_aliases(self) -> None:
        super()._create_aliases()
        self.vdn = self.policy.vdn

    def train(self, gradient_steps: int, batch_size: int = 64) -> None:
        """SAC's ``train`` (stable_baselines3/sac/sac.py) plus BSAC's additions, marked ``BSAC``.

        Every line outside the ``BSAC`` blocks is SAC's, in SAC's order, so that with
        ``forward_steps=0`` (no VDN-a) the updates and the random stream are SAC's.
        """
        # Switch to train mode (this affects batch norm / dropout)
        self.policy.set_training_mode(True)
        # Update optimizers learning rate
        optimizers = [self.actor.optimizer, self.critic.optimizer]
        if self.ent_coef_optimizer is not None:
            optimizers += [self.ent_coef_optimizer]
        if self.vdn is not None:  # BSAC: the VDN-a's optimiser
            optimizers += [self.vdn.optimizer]

        # Update learning rate according to lr schedule
        self._update_learning_rate(optimizers)
        if self.vdn is not None:  # BSAC: the forward step's optimiser, at a fraction of it
            update_learning_rate(
                self.actor.forward_optimizer,
                self.lr_schedule(self._current_progress_remaining) * self.forward_lr_factor,
            )

        ent_coef_losses, ent_coefs = [], []
        actor_losses, critic_losses = [], []
        forward_losses, target_stds, forward_grad_norms = [], [], []
        vdn_level_losses, vdn_shape_losses = [], []

        for gradient_step in range(gradient_steps):
            # Sample replay buffer
            replay_data = self.replay_buffer.sample(batch_size, env=self._vec_normalize_env)  # type: ignore[union-attr]
            # For n-step replay, discount factor is gamma**n_steps (when no early termination)
            discounts = replay_data.discounts if replay_data.discounts is not None else self.gamma

            # We need to sample because `log_std` may have changed between two gradient steps
            if self.use_sde:
                self.actor.reset_noise()

            # BSAC step 1: forward-KL steps towards the projected Boltzmann marginals. The VDN-a
            # trunk runs once: its graph is kept for the regression at the end of the step.
            vdn_heads = None
            if self.vdn is not None:
                vdn_heads = self.vdn.heads(replay_data.observations)
                if (self._n_updates + gradient_step) % self.forward_freq == 0:
                    forward_loss, target_std, grad_norm = self._forward_step(
                        replay_data.observations, vdn_heads.coefficients.detach()
                    )
                    forward_losses.append(forward_loss)
                    target_stds.append(target_std)
                    forward_grad_norms.append(grad_norm)

            # Action by the current actor for the sampled state
            actions_pi, log_prob = self.actor.action_log_prob(replay_data.observations)
            log_prob = log_prob.reshape(-1, 1)

            ent_coef_loss = None
            if self.ent_coef_optimizer is not None and self.log_ent_coef is not None:
                # Important: detach the variable from the graph
                # so we don't change it with other losses
                # see https://github.com/rail-berkeley/softlearning/issues/60
                ent_coef = th.exp(self.log_ent_coef.detach())
                assert isinstance(self.target_entropy, float)
                ent_coef_loss = -(
                    self.log_ent_coef * (log_prob + self.target_entropy).detach()
                ).mean()
                ent_coef_losses.append(ent_coef_loss.item())
            else:
                ent_coef = self.ent_coef_tensor

            ent_coefs.append(ent_coef.item())

            # Optimize entropy coefficient, also called
            # entropy temperature or alpha in the paper
            if ent_coef_loss is not None and self.ent_coef_optimizer is not None:
                self.ent_coef_optimizer.zero_grad()
                ent_coef_loss.backward()
                self.ent_coef_optimizer.step()

            with th.no_grad():
                # Select action according to policy
                next_actions, next_log_prob = self.actor.action_log_prob(
                    replay_data.next_observations
                )
                # Compute the next Q values: min over all critics targets
                next_q_values = th.cat(
                    self.critic_target(replay_data.next_observations, next_actions), dim=1
                )
                next_q_values, _ = th.min(next_q_values, dim=1, keepdim=True)
                # add entropy term
                next_q_values = next_q_values - ent_coef * next_log_prob.reshape(-1, 1)
                # td error + entropy term
                target_q_values = (
                    replay_data.rewards + (1 - replay_data.dones) * discounts * next_q_values
                )

            # Get current Q-values estimates for each critic network
            # using action from the replay buffer
            current_q_values = self.critic(replay_data.observations, replay_data.actions)

            # Compute critic loss
            critic_loss = 0.5 * sum(
                F.mse_loss(current_q, target_q_values) for current_q in current_q_values
            )
            assert isinstance(critic_loss, th.Tensor)  # for type checker
            critic_losses.append(critic_loss.item())  # type: ignore[union-attr]

            # Optimize the critic
            self.critic.optimizer.zero_grad()
            critic_loss.backward()
            self.critic.optimizer.step()

            # Compute actor loss
            # Alternative: actor_loss = th.mean(log_prob - qf1_pi)
            # Min over all critic networks
            q_values_pi = th.cat(self.critic(replay_data.observations, actions_pi), dim=1)
            min_qf_pi, _ = th.min(q_values_pi, dim=1, keepdim=True)
            actor_loss = (ent_coef * log_prob - min_qf_pi).mean()
            actor_losses.append(actor_loss.item())

            # Optimize the actor (BSAC: the reverse step, unless the forward-only ablation)
            if self.reverse_step:
                self.actor.optimizer.zero_grad()
                actor_loss.backward()
                self.actor.optimizer.step()

            # Update target networks
            if gradient_step % self.target_update_interval == 0:
                polyak_update(self.critic.parameters(), self.critic_target.parameters(), self.tau)
                # Copy running stats, see GH issue #996
                polyak_update(self.batch_norm_stats, self.batch_norm_stats_target, 1.0)

            # BSAC step 3: regress VDN-a onto min(Q1, Q2) on replay and current-policy actions.
            if self.vdn is not None:
                replay_min_q = th.min(th.cat(current_q_values, dim=1), dim=1, keepdim=True)[0]
                level_loss, shape_loss = self._vdn_step(
                    replay_data.observations,
                    th.stack([replay_data.actions, actions_pi.detach()], dim=1),
                    th.cat([replay_min_q, min_qf_pi], dim=1).detach(),
                    vdn_heads,
                )
                vdn_level_losses.append(level_loss)
                vdn_shape_losses.append(shape_loss)

        self._n_updates += gradient_steps

        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        self.logger.record("train/ent_coef", np.mean(ent_coefs))
        self.logger.record("train/actor_loss", np.mean(actor_losses))
        self.logger.record("train/critic_loss", np.mean(critic_losses))
        if len(ent_coef_losses) > 0:
            self.logger.record("train/ent_coef_loss", np.mean(ent_coef_losses))
        if forward_losses:
            self.logger.record("train/forward_kl", np.mean(forward_losses))
            self.logger.record("train/forward_target_std", np.mean(target_stds))
            self.logger.record("train/forward_grad_norm", np.mean(forward_grad_norms))
        if vdn_shape_losses:
            self.logger.record(
                "train/vdn_loss", np.mean(vdn_level_losses) + np.mean(vdn_shape_losses)
            )
            self.logger.record("train/vdn_shape_loss", np.mean(vdn_shape_losses))

    def _entropy_coefficient(self) -> th.Tensor:
        """The current α (detached)."""
        if self.log_ent_coef is not None:
            return th.exp(self.log_ent_coef.detach())
        return self.ent_coef_tensor

    def projected_moments(
        self, observations: th.Tensor, coefficients: th.Tensor | None = None
    ) -> tuple[th.Tensor, th.Tensor]:
        """(μ*, σ*²) of shape ``(B, d)``: moments of atanh(a_i) under q_i ∝ exp(Q_i(s, a_i)/α)
        with the VDN-a marginals Q_i and the current α (spec §2), without gradients.

        ``coefficients``, if given, are VDN-a's ``heads(observations).coefficients``.
        """
        assert self.vdn is not None, "projected_moments needs forward_steps > 0"
        with th.no_grad():
            if coefficients is None:
                coefficients = self.vdn.heads(observations).coefficients
            marginal_q = self.vdn.grid_values(coefficients, self.grid.actions)
            mean, var = boltzmann_marginal_moments(
                marginal_q / self._entropy_coefficient(), self.grid
            )
        return mean, var.clamp_min(_MIN_TARGET_VAR)

    def actor_gaussian(self, observations: th.Tensor) -> tuple[th.Tensor, th.Tensor]:
        """Mean and variance ``(B, d)`` of the actor's pre-tanh Gaussian (with gSDE: the Gaussian
        of the current noise matrix), differentiable in the actor's parameters."""
        mean_actions, log_std, kwargs = self.actor.get_action_dist_params(observations)
        if not self.use_sde:
            return mean_actions, th.exp(2.0 * log_std)
        gaussian = self.actor.action_dist.proba_distribution(
            mean_actions, log_std, **kwargs
        ).distribution
        return gaussian.mean, gaussian.variance

    def _forward_step(
        self, observations: th.Tensor, coefficients: th.Tensor | None = None
    ) -> tuple[float, float, float]:
        """``forward_steps`` optimiser steps of the actor on KL(N(μ*, σ*²) ‖ N(μθ, σθ²)); returns
        the mean loss over the steps, the mean projected standard deviation and the mean norm of
        the gradient (a diagnostic: the forward KL is stiff where the actor is narrow)."""
        target_mean, target_var = self.projected_moments(observations, coefficients)
        losses, norms = [], []
        for _ in range(self.forward_steps):
            mean, var = self.actor_gaussian(observations)
            loss = forward_kl_loss(target_mean, target_var, mean, var)
            self.actor.forward_optimizer.zero_grad()
            loss.backward()
            grads = [p.grad for p in self.actor.parameters() if p.grad is not None]
            norms.append(th.linalg.vector_norm(th.stack([g.norm() for g in grads])).item())
            self.actor.forward_optimizer.step()
            losses.append(loss.item())
        return float(np.mean(losses)), target_var.sqrt().mean().item(), float(np.mean(norms))

    def _vdn_step(
        self,
        observations: th.Tensor,
        actions: th.Tensor,
        targets: th.Tensor,
        heads: VDNHeads | None = None,
    ) -> tuple[float, float]:
        """One optimiser step of the VDN-a regression; returns its level and shape terms."""
        assert self.vdn is not None
        level, shape = self.vdn.regression_terms(observations, actions, targets, heads)
        self.vdn.optimizer.zero_grad()
        (level + shape).backward()
        self.vdn.optimizer.step()
        return level.item(), shape.item()

    def _excluded_save_params(self) -> list[str]:
        # The grid is rebuilt from grid_size and grid_edge; vdn is saved inside the policy.
        return [*super()._excluded_save_params(), "vdn", "grid"]

    def _get_torch_save_params(self) -> tuple[list[str], list[str]]:
        state_dicts, variables = super()._get_torch_save_params()
        if self.vdn is not None:
            state_dicts = [*state_dicts, "actor.forward_optimizer", "vdn.optimizer"]
        return state_dicts, variables


#: Floor of the projected variance: SB3's lower bound on the actor's std, exp(LOG_STD_MIN)².
_MIN_TARGET_VAR = float(np.exp(2.0 * LOG_STD_MIN))
