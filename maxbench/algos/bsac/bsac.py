"""Bidirectional SAC (BSAC) as a stable-baselines3 algorithm: a documented reconstruction.

Paper: "Bidirectional Soft Actor-Critic: Leveraging Forward and Reverse KL Divergence for
Efficient Reinforcement Learning", arXiv 2506.01639. Specification: ``algorithms.md`` §2.

The whole gradient step (forward step, SAC's step, VDN-a regression) is one function of the
batch, :meth:`BSAC._gradient_step`, run as it is (``compile=False``) or ``torch.compile``'d
(``compile=True``, maxbench issue 14; :class:`~maxbench.engine.options.Compilable`).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np
import torch as th
from stable_baselines3.common.buffers import ReplayBuffer
from stable_baselines3.common.noise import ActionNoise
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.type_aliases import GymEnv, PyTorchObs, Schedule
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
from maxbench.engine.compiled import DeviceMeans, constant_weights_call, polyak_
from maxbench.engine.options import Compilable

__all__ = ["BSAC"]


class BSAC(Compilable, SACVariant):
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
    :param compile: compile the gradient step with ``torch.compile`` (keyword-only; off: the
        same step run eagerly, today's numbers; ``True``: inductor, CUDA graphs on a GPU; a
        string: that ``torch.compile`` backend, e.g. ``"aot_eager"``). On, the replay buffer
        defaults to the device-resident :class:`~maxbench.engine.replay.TensorReplayBuffer`
        (Box observations, ``n_steps=1``) and the optimisers to their multi-tensor kernels. A
        model saved compiled loads eager and the reverse (``BSAC.load(path, compile=...)``):
        ``compile`` is an attribute, the compiled function is rebuilt on demand.
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
        compile: bool | str = False,  # noqa: A002  (torch.compile's own word)
    ) -> None:
        self._set_compile(compile)
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
        """SAC's ``train`` (stable_baselines3/sac/sac.py) with BSAC's step, :meth:`_gradient_step`.

        With ``forward_steps=0`` (no VDN-a) the updates and the random stream are SAC's, bit for
        bit. Logged values stay on the device until the end (one read).
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

        self.prepare_gradients("critic", "actor", "vdn", "log_ent_coef")
        step = self.compiled("gradient_step", self._gradient_step, transforms_only=True)
        means = DeviceMeans()
        for gradient_step in range(gradient_steps):
            # Sample replay buffer
            replay_data = self.replay_buffer.sample(batch_size, env=self._vec_normalize_env)  # type: ignore[union-attr]
            # For n-step replay, discount factor is gamma**n_steps (when no early termination)
            discounts = replay_data.discounts
            if discounts is None:
                discounts = self.gamma_tensor()

            # We need to sample because `log_std` may have changed between two gradient steps
            if self.use_sde:
                self.actor.reset_noise()

            run_forward = (
                self.vdn is not None and (self._n_updates + gradient_step) % self.forward_freq == 0
            )
            logged = step(
                replay_data.observations,
                replay_data.actions,
                replay_data.next_observations,
                replay_data.rewards,
                replay_data.dones,
                discounts,
                run_forward,
            )
            self._accumulate(means, logged, run_forward)

            # Update target networks (after the VDN-a regression, which does not read them)
            if gradient_step % self.target_update_interval == 0:
                self._update_target_critic()

        self._n_updates += gradient_steps

        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        values = means.read()
        level = values.pop(_VDN_LEVEL_KEY, None)
        if level is not None:
            self.logger.record("train/vdn_loss", level + values["train/vdn_shape_loss"])
        for name, value in values.items():
            self.logger.record(name, value)

    def _accumulate(self, means: DeviceMeans, logged: th.Tensor, run_forward: bool) -> None:
        """Add one step's logged values (:meth:`_gradient_step`'s order) to ``means``."""
        means.add("train/ent_coef", logged[0])
        if self.ent_coef_optimizer is not None and self.log_ent_coef is not None:
            means.add("train/ent_coef_loss", logged[1])
        means.add("train/critic_loss", logged[2])
        means.add("train/actor_loss", logged[3])
        if run_forward:
            means.add("train/forward_kl", logged[4])
            means.add("train/forward_target_std", logged[5])
            means.add("train/forward_grad_norm", logged[6])
        if self.vdn is not None:
            means.add(_VDN_LEVEL_KEY, logged[7])
            means.add("train/vdn_shape_loss", logged[8])

    def _gradient_step(
        self,
        observations: PyTorchObs,
        actions: th.Tensor,
        next_observations: PyTorchObs,
        rewards: th.Tensor,
        dones: th.Tensor,
        discounts: th.Tensor,
        run_forward: bool,
    ) -> th.Tensor:
        """One BSAC gradient step (the class docstring's steps 1 to 3, less the Polyak update).

        Returns the logged values: [α, α loss, critic loss, actor loss, forward KL, projected
        std, forward gradient norm, VDN-a level loss, VDN-a shape loss] (0 where a part did not
        run). Run as it is or compiled (:meth:`~maxbench.engine.options.Compilable.compiled`):
        no host synchronisation.

        SAC's step computes SAC's numbers, bit for bit, with SAC's random draws in SAC's order
        (the noise of ã at s, then of a' at s'), but in an order that lets every gradient be
        computed on its own: the critic step first, then ã and log π(ã|s) — from the actor,
        which the critic step leaves unchanged — for the actor step and the temperature step
        (α's update reads nothing else). The forward, critic and actor gradients are
        :meth:`~maxbench.engine.options.Compilable.gradients_into`'s (``backward`` eagerly, a
        function transform compiled), and so is the VDN-a regression's (eagerly it reuses the
        forward step's trunk pass; compiled, its transform runs the trunk again). Compiled, the
        optimisers' steps are traced into the same graph
        (:meth:`~maxbench.engine.options.Compilable.step_optimizer`).
        """
        zero = th.zeros((), device=actions.device)
        forward_logs = (zero, zero, zero)
        vdn_heads = None
        if self.vdn is not None:
            # BSAC step 1: forward-KL steps towards the projected Boltzmann marginals. Eagerly
            # the VDN-a trunk runs once, its graph kept for the regression at the end of the
            # step; compiled, the regression's transform runs it again (see _vdn_step).
            if self.compile is False:
                vdn_heads = self.vdn.heads(observations)
            else:
                with th.no_grad():
                    vdn_heads = self.vdn.heads(observations)
            if run_forward:
                forward_logs = self._forward_step(observations, vdn_heads.coefficients.detach())

        # SAC's step. α as SAC reads it before its update (detached).
        ent_coef = self._entropy_coefficient()
        noise_pi = self._policy_noise(actions)
        noise_next = self._policy_noise(actions)
        with th.no_grad():
            # Select action according to policy
            next_actions, next_log_prob = self._policy_sample(next_observations, noise_next)
            # Compute the next Q values: min over all critics targets
            next_q_values = th.cat(self.critic_target(next_observations, next_actions), dim=1)
            next_q_values, _ = th.min(next_q_values, dim=1, keepdim=True)
            # add entropy term
            next_q_values = next_q_values - ent_coef * next_log_prob
            # td error + entropy term
            target_q_values = rewards + (1 - dones) * discounts * next_q_values

        # Get current Q-values estimates for each critic network
        # using action from the replay buffer
        def critic_loss_of() -> tuple[th.Tensor, th.Tensor]:
            current_q_values = self.critic(observations, actions)
            critic_loss = 0.5 * sum(
                F.mse_loss(current_q, target_q_values) for current_q in current_q_values
            )
            assert isinstance(critic_loss, th.Tensor)  # for type checker
            replay_min_q = th.min(th.cat(current_q_values, dim=1), dim=1, keepdim=True)[0]
            return critic_loss, replay_min_q.detach()

        critic_loss, replay_min_q = self.gradients_into("critic", critic_loss_of, has_aux=True)
        self.step_optimizer(self.critic.optimizer)

        def actor_loss_of() -> tuple[th.Tensor, tuple[th.Tensor, th.Tensor, th.Tensor]]:
            # Action by the current actor for the sampled state; the actor loss with the
            # stepped critic, min over all critic networks (read as constants: the actor
            # learns from it, the critic does not)
            actions_pi, log_prob = self._policy_sample(observations, noise_pi)
            q_values_pi = th.cat(
                constant_weights_call(self.critic, observations, actions_pi), dim=1
            )
            min_qf_pi, _ = th.min(q_values_pi, dim=1, keepdim=True)
            loss = (ent_coef * log_prob - min_qf_pi).mean()
            return loss, (actions_pi.detach(), log_prob.detach(), min_qf_pi.detach())

        # Optimize the actor (BSAC: the reverse step, unless the forward-only ablation); the
        # gradient goes into the actor only (the critic's is not needed). The entropy
        # coefficient's step reads log π(ã|s) only, so it may come between.
        if self.reverse_step:
            actor_loss, (actions_pi, log_prob, min_qf_pi) = self.gradients_into(
                "actor", actor_loss_of, has_aux=True
            )
            ent_coef_loss = self._temperature_step(log_prob, zero)
            self.step_optimizer(self.actor.optimizer)
        else:
            with th.no_grad():
                actor_loss, (actions_pi, log_prob, min_qf_pi) = actor_loss_of()
            ent_coef_loss = self._temperature_step(log_prob, zero)

        # BSAC step 3: regress VDN-a onto min(Q1, Q2) on replay and current-policy actions.
        vdn_logs = (zero, zero)
        if self.vdn is not None:
            vdn_logs = self._vdn_step(
                observations,
                th.stack([actions, actions_pi], dim=1),
                th.cat([replay_min_q, min_qf_pi], dim=1).detach(),
                vdn_heads if self.compile is False else None,
            )
        return th.stack(
            [
                ent_coef.reshape(()),
                ent_coef_loss.reshape(()),
                critic_loss.detach(),
                actor_loss.detach(),
                *forward_logs,
                *vdn_logs,
            ]
        )

    def _policy_noise(self, actions: th.Tensor) -> th.Tensor | None:
        """ε ~ N(0, I) ``(B, d)`` for one policy sample per row, drawn as SB3's
        ``Normal.rsample`` draws it; ``None`` under gSDE (its noise matrix is drawn by
        ``reset_noise``, a sample draws nothing)."""
        if self.use_sde:
            return None
        dtype = self.actor.mu.weight.dtype
        return th.empty(actions.shape, dtype=dtype, device=actions.device).normal_()

    def _policy_sample(
        self, observations: PyTorchObs, noise: th.Tensor | None
    ) -> tuple[th.Tensor, th.Tensor]:
        """ã ~ π(·|s) and log π(ã|s) ``(B, 1)``: SB3's ``actor.action_log_prob``.

        Without gSDE it is written out with the given ``noise``
        (:meth:`_squashed_gaussian_sample`): the same operations as SB3's tanh-Gaussian, without
        ``torch.distributions``, whose argument checks branch on tensor values (graph breaks in
        a compiled step).
        """
        if noise is None:
            actions_pi, log_prob = self.actor.action_log_prob(observations)
            return actions_pi, log_prob.reshape(-1, 1)
        mean_actions, log_std, _ = self.actor.get_action_dist_params(observations)
        return self._squashed_gaussian_sample(mean_actions, log_std, noise)

    def _squashed_gaussian_sample(
        self, mean_actions: th.Tensor, log_std: th.Tensor, noise: th.Tensor
    ) -> tuple[th.Tensor, th.Tensor]:
        """SB3's ``SquashedDiagGaussianDistribution.log_prob_from_params``, op for op.

        u = μ + σ ε, a = tanh(u), log π(a|s) = Σ_i log N(u_i; μ_i, σ_i) − Σ_i log(1 − a_i² + ε₀)
        (Haarnoja et al. 2018, App. C; ε₀ = SB3's epsilon), with ``Normal.log_prob``'s formula.
        """
        action_std = th.ones_like(mean_actions) * log_std.exp()
        gaussian_actions = mean_actions + noise * action_std
        actions_pi = th.tanh(gaussian_actions)
        log_normal = (
            -((gaussian_actions - mean_actions) ** 2) / (2 * action_std**2)
            - action_std.log()
            - _LOG_SQRT_2PI
        )
        log_prob = log_normal.sum(dim=1)
        log_prob = log_prob - th.sum(
            th.log(1 - actions_pi**2 + self.actor.action_dist.epsilon), dim=1
        )
        return actions_pi, log_prob.reshape(-1, 1)

    def _temperature_step(self, log_prob: th.Tensor, zero: th.Tensor) -> th.Tensor:
        """SAC's entropy-coefficient update; returns its loss (``zero`` for a constant α).

        The loss is SAC's, −mean(log α (log π + H̄)) (Haarnoja et al. 2018, §5); its gradient
        in log α is set by hand as autograd forms it, Σ_j (−1/B)(log π_j + H̄), bit for bit, so
        no backward pass is needed.
        """
        if self.ent_coef_optimizer is None or self.log_ent_coef is None:
            return zero
        assert isinstance(self.target_entropy, float)
        shifted = (log_prob + self.target_entropy).detach()
        ent_coef_loss = -(self.log_ent_coef.detach() * shifted).mean()
        per_sample = th.full_like(shifted, -1.0) / shifted.numel() * shifted
        self.set_gradient(self.log_ent_coef, per_sample.sum(dim=0).reshape(self.log_ent_coef.shape))
        self.step_optimizer(self.ent_coef_optimizer)
        return ent_coef_loss

    def _update_target_critic(self) -> None:
        """Polyak update of the target critics; the BatchNorm statistics copied (SAC's).

        Eager, SB3's ``polyak_update`` (SAC's numbers); compiled, the same average as one
        multi-tensor ``_foreach_lerp_`` (:func:`~maxbench.engine.compiled.polyak_`).
        """
        if self.compile is False:
            polyak_update(self.critic.parameters(), self.critic_target.parameters(), self.tau)
        else:
            polyak_(self.critic.parameters(), self.critic_target.parameters(), self.tau)
        # Copy running stats, see GH issue #996
        polyak_update(self.batch_norm_stats, self.batch_norm_stats_target, 1.0)

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
        self, observations: PyTorchObs, coefficients: th.Tensor | None = None
    ) -> tuple[th.Tensor, th.Tensor, th.Tensor]:
        """``forward_steps`` optimiser steps of the actor on KL(N(μ*, σ*²) ‖ N(μθ, σθ²)); returns
        the mean loss over the steps, the mean projected standard deviation and the mean norm of
        the gradient (a diagnostic: the forward KL is stiff where the actor is narrow), as
        scalar tensors (no host synchronisation)."""
        target_mean, target_var = self.projected_moments(observations, coefficients)
        losses, norms = [], []
        for _ in range(self.forward_steps):

            def forward_kl() -> th.Tensor:
                mean, var = self.actor_gaussian(observations)
                return forward_kl_loss(target_mean, target_var, mean, var)

            loss = self.gradients_into("actor", forward_kl)
            grads = [p.grad for p in self.actor.parameters() if p.grad is not None]
            norms.append(th.linalg.vector_norm(th.stack([g.norm() for g in grads])))
            self.step_optimizer(self.actor.forward_optimizer)
            losses.append(loss.detach())
        return th.stack(losses).mean(), target_var.sqrt().mean(), th.stack(norms).mean()

    def _vdn_step(
        self,
        observations: PyTorchObs,
        actions: th.Tensor,
        targets: th.Tensor,
        heads: VDNHeads | None = None,
    ) -> tuple[th.Tensor, th.Tensor]:
        """One optimiser step of the VDN-a regression; returns its level and shape terms
        (detached scalar tensors).

        Eagerly ``backward`` through ``heads`` (the trunk's pass of the forward step, when
        given); compiled, a function transform
        (:meth:`~maxbench.engine.options.Compilable.gradients_into`), which runs the trunk
        again (``heads`` None; the parameters are the same, nothing has stepped VDN-a since):
        one more trunk pass instead of an autograd segment and its graph breaks.
        """
        assert self.vdn is not None
        vdn = self.vdn
        if self.compile is not False:
            assert heads is None, "compiled, the transform computes its own trunk pass"

            def regression_loss() -> tuple[th.Tensor, tuple[th.Tensor, th.Tensor]]:
                level, shape = vdn.regression_terms(observations, actions, targets)
                return level + shape, (level.detach(), shape.detach())

            _, (level, shape) = self.gradients_into("vdn", regression_loss, has_aux=True)
            self.step_optimizer(vdn.optimizer)
            return level, shape
        level, shape = vdn.regression_terms(observations, actions, targets, heads)
        vdn.optimizer.zero_grad()
        (level + shape).backward()
        vdn.optimizer.step()
        return level.detach(), shape.detach()

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
#: log √(2π) as ``torch.distributions.Normal.log_prob`` computes it (the same double).
_LOG_SQRT_2PI = math.log(math.sqrt(2 * math.pi))
#: Where :meth:`BSAC.train` sums the VDN-a level loss (logged only inside ``train/vdn_loss``).
_VDN_LEVEL_KEY = "_vdn_level_loss"
