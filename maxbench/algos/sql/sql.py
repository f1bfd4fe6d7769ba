"""Soft Q-Learning (SQL; Haarnoja, Tang, Abbeel & Levine 2017) as a stable-baselines3 algorithm.

One training step (spec §4), for a replay batch ``(s, a, r, s', done)``:

1. **Soft value by importance sampling** (Haarnoja et al. 2017, Eq. 10 with a uniform proposal):
   ``V(s') = alpha log( (2^d / m) sum_j exp(min_k Qbar_k(s', a_j) / alpha) )``,
   ``a_j ~ U([-1, 1]^d)``, computed stably as
   ``alpha logsumexp_j(min Qbar / alpha) + alpha (d log 2 - log m)``
   (:func:`importance_sampled_soft_value`).
2. **Critics**: ``y = r + gamma (1 - done) V(s')`` (no entropy term: it is inside ``V``), loss
   ``1/2 sum_k MSE(Q_k(s, a), y)`` for the twin critics.
3. **Sampler** ``a = tanh(f_psi(s, xi))``, ``xi ~ U(0, 1)^d``, trained by amortised SVGD
   (Wang & Liu 2016; Haarnoja et al. 2017 §3.2, Eq. 13-14): draw ``m`` actions per state from the
   sampler itself, compute the Stein direction
   ``Delta(a_i) = 1/m sum_j [k(a_j, a_i) grad_{a_j} min_k Q_k(s, a_j) / alpha
   + grad_{a_j} k(a_j, a_i)]`` with the shared :func:`maxbench.algos.svgd.stein_direction`, and
   ascend along it: ``psi <- psi + lr * dA/dpsi^T Delta`` through the surrogate loss
   ``-(Delta.detach() * a).sum(-1).mean()`` (:func:`amortized_svgd_loss`).
4. Polyak-average the target critics.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial
from typing import Any, ClassVar

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.buffers import ReplayBuffer
from stable_baselines3.common.noise import ActionNoise
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm
from stable_baselines3.common.policies import BasePolicy, ContinuousCritic
from stable_baselines3.common.type_aliases import GymEnv, Schedule
from stable_baselines3.common.utils import get_parameters_by_name, polyak_update
from torch.nn import functional as F

from maxbench.algos.class_named_logs import ClassNamedLogs
from maxbench.algos.sb3_compat import PolicyKwargsAsGiven, reject_gsde
from maxbench.algos.sql.policies import (
    SamplerActor,
    SQLCnnPolicy,
    SQLMultiInputPolicy,
    SQLPolicy,
    min_q_over_particles,
)
from maxbench.algos.svgd import score_from_log_prob, stein_direction

__all__ = ["SQL", "amortized_svgd_loss", "importance_sampled_soft_value", "uniform_box_actions"]


def uniform_box_actions(
    n_states: int,
    n_samples: int,
    action_dim: int,
    device: th.device | str = "cpu",
    generator: th.Generator | None = None,
) -> th.Tensor:
    """``(n_states, n_samples, action_dim)`` actions drawn uniformly from ``[-1, 1]^d``."""
    u = th.rand((n_states, n_samples, action_dim), device=device, generator=generator)
    return 2.0 * u - 1.0


def importance_sampled_soft_value(
    q_fn: Callable[[th.Tensor], th.Tensor],
    n_states: int,
    action_dim: int,
    n_samples: int,
    alpha: float,
    device: th.device | str = "cpu",
    generator: th.Generator | None = None,
) -> th.Tensor:
    """Soft value ``alpha log int_{[-1,1]^d} exp(Q(s, a) / alpha) da`` by importance sampling.

    With the uniform proposal ``q(a) = 2^-d`` on the action box (spec §4; Haarnoja et al. 2017,
    Eq. 10)::

        V(s) = alpha log( 1/m sum_j exp(Q(s, a_j)/alpha) / q(a_j) )
             = alpha logsumexp_j(Q(s, a_j)/alpha) + alpha (d log 2 - log m).

    Args:
        q_fn: maps ``(n_states, m, d)`` actions to ``(n_states, m)`` Q-values (for SQL's target:
            ``min_k Qbar_k(s', .)``).
        n_states: number of states ``B``.
        action_dim: ``d``.
        n_samples: ``m``, the number of uniform action samples per state.
        alpha: the temperature.
        device: where the samples live.
        generator: optional RNG for the samples.

    Returns:
        ``(B,)`` soft values. The estimator is consistent (it converges as ``m`` grows) and, by
        Jensen's inequality, biased low for finite ``m``.
    """
    actions = uniform_box_actions(n_states, n_samples, action_dim, device, generator)
    q_values = q_fn(actions)
    log_box = action_dim * math.log(2.0) - math.log(n_samples)
    return alpha * (th.logsumexp(q_values / alpha, dim=1) + log_box)


def amortized_svgd_loss(
    actions: th.Tensor,
    log_target_fn: Callable[[th.Tensor], th.Tensor],
    kernel_sigma: float | None = None,
) -> th.Tensor:
    """Surrogate loss whose gradient moves the sampler's actions along the Stein direction.

    The particles are the sampler's own actions (Haarnoja et al. 2017, §3.2); the kernel, the
    scores ``grad_a log p(a_j)`` and the direction ``Delta`` are computed on detached copies, so
    ``d loss / d a_i = -Delta(a_i) / (B m)``: a gradient step on ``psi`` is the chain-rule ascent
    ``psi += lr * (da/dpsi)^T Delta`` of Eq. 14 (averaged over states and particles).

    Args:
        actions: ``(B, m, d)`` sampler outputs, differentiable w.r.t. the sampler's parameters.
        log_target_fn: ``(B, m, d) -> (B, m)`` unnormalised log target ``min_k Q_k(s, a) / alpha``.
        kernel_sigma: RBF kernel standard deviation, or None for the shared adaptive bandwidth of
            :func:`maxbench.algos.svgd.adaptive_bandwidth`.

    Returns:
        Scalar loss ``-(Delta.detach() * actions).sum(-1).mean()``.
    """
    particles = actions.detach()
    scores = score_from_log_prob(log_target_fn, particles)
    delta = stein_direction(particles, scores, particles, sigma=kernel_sigma).detach()
    return -(delta * actions).sum(dim=-1).mean()


class SQL(ClassNamedLogs, PolicyKwargsAsGiven, OffPolicyAlgorithm):
    """Soft Q-Learning (Haarnoja et al. 2017) with twin critics and an amortised SVGD sampler.

    The S2AC paper's SQL baseline as spec §4 describes the authors' version: twin critics with
    min-clipping, the soft value of the next state by importance sampling with a uniform proposal
    on the action box, no entropy term in the target, and a sampler network ``tanh(f(s, xi))``,
    ``xi ~ U(0, 1)^d``, trained along the Stein direction with the same kernel code as S2AC
    (:mod:`maxbench.algos.svgd`). See the module docstring for the step.

    As an SB3 algorithm (README, "Using the algorithms with SB3 code"):

    * The constructor takes SAC's arguments in SAC's order up to ``target_update_interval``
      (``SQL("MlpPolicy", env, 1e-3)`` sets the learning rate); the rest, SAC's and SQL's own,
      are keyword-only (SAC's ``target_entropy`` has no meaning here: alpha is fixed).
      ``use_sde=True`` is a ``ValueError`` (no gSDE); ``sde_sample_freq`` and
      ``use_sde_at_warmup`` are accepted.
    * ``policy_kwargs`` stays as given (the selection temperature defaults to ``ent_coef`` when
      the policy is built), so ``SQL.load(path, env=env, **kwargs)`` takes the constructor's
      keyword arguments.
    * Acting: ``model.predict`` is ``model.policy.predict``, the reference. ``model.actor``
      (``model.policy.actor``) is the sampler network alone, **not** the acting policy: its
      ``predict(obs, deterministic=True)`` is the sampler at the centre of its noise box
      (``xi = 0.5``), a fixed function of the state, but not SQL's deterministic action (the
      critic picks among ``n_eval_particles`` fixed-noise particles, see :class:`SQLPolicy`).

    Args:
        ent_coef: the temperature ``alpha`` (fixed; SQL has no explicit entropy to tune it on).
        value_n_particles: uniform action samples per next state for the soft value.
        kernel_n_particles: sampler particles per state for the Stein direction (``m``).
        kernel_sigma: RBF kernel standard deviation, or None for the adaptive, detached bandwidth
            shared with S2AC (mean squared distance / 2 / (2 log(m + 1))).
        target_update_interval: gradient steps between Polyak updates of the target critics.
        random_exploration_steps: act uniformly at random until this many env steps (or until
            ``learning_starts``, whichever is later) while training from ``learning_starts``:
            the S2AC authors' schedule (spec §1.5: 10 000 random steps, updates from step 1000).
            0 (the default) is SB3's behaviour, random only before ``learning_starts``.
        use_sde: must be False (SAC's argument; the sampler has no gSDE).
        sde_sample_freq, use_sde_at_warmup: SAC's arguments, without effect here.
        tensorboard_log: TensorBoard folder (runs are named ``SQL_<n>``).
        (the rest): as SB3's SAC. ``policy_kwargs`` go to :class:`SQLPolicy` (``net_arch``,
            ``n_eval_particles``, ``action_selection``, ``selection_temperature``, ...).

    Deviations (also in the README's deviations table):

    * Stein particles: Haarnoja et al.'s code splits each state's sampler draws into a "fixed"
      half (kernel centres and scores) and an "updated" half (where the direction is applied);
      maxbench uses one set of ``m`` draws for both, the formula of spec §4.
    * Score temperature: spec §4 writes ``grad Q`` (Haarnoja et al. run alpha = 1 and scale the
      rewards); maxbench divides by ``alpha`` so the sampler targets ``exp(Q / alpha)``, the
      density whose log-normaliser the soft value estimates. Both agree at ``alpha = 1``.
    * Squash correction: Haarnoja et al.'s code adds ``sum_d log(1 - a_d^2)`` to the log target of
      the Stein direction; maxbench uses spec §4's target ``exp(Q / alpha)`` on the box as is.
    * Amortised SVGD with few particles under-represents the tails of the target (measured in
      ``tests/test_sql.py``: std about 0.2 for a truncated normal of std 0.243); the median and
      interquartile range match.
    * Noise ``xi ~ U(0, 1)^d`` as in spec §4 (Haarnoja et al. use a standard normal).
    * Target critics are Polyak-averaged (``tau``) as in SB3 and the S2AC code, not copied every
      1000 steps as in Haarnoja et al.
    * Deterministic prediction chooses among particles drawn from fixed noise (see
      :class:`SQLPolicy`); the original SQL has no deterministic mode.
    """

    policy_aliases: ClassVar[dict[str, type[BasePolicy]]] = {
        "MlpPolicy": SQLPolicy,
        "CnnPolicy": SQLCnnPolicy,
        "MultiInputPolicy": SQLMultiInputPolicy,
    }
    policy: SQLPolicy
    actor: SamplerActor
    critic: ContinuousCritic
    critic_target: ContinuousCritic

    def __init__(
        self,
        policy: str | type[SQLPolicy],
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
        ent_coef: float = 0.2,
        target_update_interval: int = 1,
        *,
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
        value_n_particles: int = 16,
        kernel_n_particles: int = 16,
        kernel_sigma: float | None = None,
        random_exploration_steps: int = 0,
    ) -> None:
        reject_gsde("SQL", use_sde)
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
            action_noise=action_noise,
            replay_buffer_class=replay_buffer_class,
            replay_buffer_kwargs=replay_buffer_kwargs,
            optimize_memory_usage=optimize_memory_usage,
            n_steps=n_steps,
            policy_kwargs=dict(policy_kwargs or {}),
            stats_window_size=stats_window_size,
            tensorboard_log=tensorboard_log,
            verbose=verbose,
            device=device,
            seed=seed,
            use_sde=False,
            sde_sample_freq=sde_sample_freq,
            use_sde_at_warmup=use_sde_at_warmup,
            sde_support=False,
            supported_action_spaces=(spaces.Box,),
            support_multi_env=True,
        )
        if isinstance(ent_coef, str) or not ent_coef > 0:
            raise ValueError(
                f"SQL's ent_coef is a fixed positive temperature, got {ent_coef!r} (SQL has no "
                "explicit entropy estimate to tune it on)"
            )
        if value_n_particles < 1 or kernel_n_particles < 2:
            raise ValueError("SQL needs value_n_particles >= 1 and kernel_n_particles >= 2")
        self.ent_coef = float(ent_coef)
        self.value_n_particles = value_n_particles
        self.kernel_n_particles = kernel_n_particles
        self.kernel_sigma = kernel_sigma
        self.target_update_interval = target_update_interval
        self.random_exploration_steps = random_exploration_steps
        if _init_setup_model:
            self._setup_model()

    def _policy_build_kwargs(self) -> dict[str, Any]:
        # The softmax selection's temperature is ent_coef unless policy_kwargs set it.
        return {"selection_temperature": self.ent_coef, **super()._policy_build_kwargs()}

    def _setup_model(self) -> None:
        reject_gsde("SQL", self.use_sde)
        super()._setup_model()
        self._create_aliases()
        self.batch_norm_stats = get_parameters_by_name(self.critic, ["running_"])
        self.batch_norm_stats_target = get_parameters_by_name(self.critic_target, ["running_"])

    def _create_aliases(self) -> None:
        self.actor = self.policy.actor
        self.critic = self.policy.critic
        self.critic_target = self.policy.critic_target

    def _sample_action(
        self,
        learning_starts: int,
        action_noise: ActionNoise | None = None,
        n_envs: int = 1,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Uniform actions until ``max(learning_starts, random_exploration_steps)``, then SB3's."""
        return super()._sample_action(
            max(learning_starts, self.random_exploration_steps), action_noise, n_envs
        )

    @property
    def action_dim(self) -> int:
        """Dimension ``d`` of the action box."""
        return int(np.prod(self.action_space.shape))

    def soft_value(self, observations: Any) -> th.Tensor:
        """``(B,)`` importance-sampled soft value of ``observations`` under the target critics."""
        first = (
            next(iter(observations.values())) if isinstance(observations, dict) else observations
        )
        return importance_sampled_soft_value(
            partial(min_q_over_particles, self.critic_target, observations),
            n_states=first.shape[0],
            action_dim=self.action_dim,
            n_samples=self.value_n_particles,
            alpha=self.ent_coef,
            device=self.device,
        )

    def train(self, gradient_steps: int, batch_size: int = 64) -> None:
        self.policy.set_training_mode(True)
        self._update_learning_rate([self.actor.optimizer, self.critic.optimizer])
        actor_losses, critic_losses, soft_values = [], [], []

        for gradient_step in range(gradient_steps):
            replay_data = self.replay_buffer.sample(batch_size, env=self._vec_normalize_env)  # type: ignore[union-attr]
            discounts = replay_data.discounts if replay_data.discounts is not None else self.gamma

            # Critic target: r + gamma (1 - done) V(s'), V by importance sampling (spec §4).
            with th.no_grad():
                next_values = self.soft_value(replay_data.next_observations).reshape(-1, 1)
                target_q_values = (
                    replay_data.rewards + (1 - replay_data.dones) * discounts * next_values
                )
            soft_values.append(next_values.mean().item())
            current_q_values = self.critic(replay_data.observations, replay_data.actions)
            critic_loss = 0.5 * sum(F.mse_loss(q, target_q_values) for q in current_q_values)
            assert isinstance(critic_loss, th.Tensor)
            critic_losses.append(critic_loss.item())
            self.critic.optimizer.zero_grad()
            critic_loss.backward()
            self.critic.optimizer.step()

            # Sampler: amortised SVGD toward exp(min Q / alpha) (Haarnoja et al. 2017, §3.2).
            actions = self.actor.sample(replay_data.observations, self.kernel_n_particles)

            def log_target(a: th.Tensor, obs: Any = replay_data.observations) -> th.Tensor:
                return min_q_over_particles(self.critic, obs, a) / self.ent_coef

            actor_loss = amortized_svgd_loss(actions, log_target, self.kernel_sigma)
            actor_losses.append(actor_loss.item())
            self.actor.optimizer.zero_grad()
            actor_loss.backward()
            self.actor.optimizer.step()

            if gradient_step % self.target_update_interval == 0:
                polyak_update(self.critic.parameters(), self.critic_target.parameters(), self.tau)
                polyak_update(self.batch_norm_stats, self.batch_norm_stats_target, 1.0)

        self._n_updates += gradient_steps
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        self.logger.record("train/ent_coef", self.ent_coef)
        self.logger.record("train/actor_loss", np.mean(actor_losses))
        self.logger.record("train/critic_loss", np.mean(critic_losses))
        self.logger.record("train/soft_value", np.mean(soft_values))

    def _excluded_save_params(self) -> list[str]:
        return [*super()._excluded_save_params(), "actor", "critic", "critic_target"]

    def _get_torch_save_params(self) -> tuple[list[str], list[str]]:
        return ["policy", "actor.optimizer", "critic.optimizer"], []
