"""Soft Q-Learning (SQL; Haarnoja, Tang, Abbeel & Levine 2017) as a stable-baselines3 algorithm.

One training step (spec §4), for a replay batch ``(s, a, r, s', done)``:

1. **Soft value of the next state**, ``V(s') = alpha log( (2^d / m) sum_j exp(min_k Qbar_k(s',
   a_j) / alpha) )``, computed stably as
   ``alpha logsumexp_j(min Qbar / alpha) + alpha (d log 2 - log m)``, on ``m`` actions that
   depend on ``value_estimator``:

   * ``"uniform"`` (default): ``a_j ~ U([-1, 1]^d)``, importance sampling with a uniform proposal
     (Haarnoja et al. 2017, Eq. 10): consistent, biased low for finite ``m``
     (:func:`importance_sampled_soft_value`);
   * ``"particles"``: ``a_j`` are the sampler's own ``m`` actions at ``s'``, with the uniform
     proposal's constant kept, as the S2AC authors' SQL does (``STAC/core.py`` lines 74-86):
     biased high (optimistic) once the sampler concentrates (:func:`sampler_soft_value`).

2. **Critics**: ``y = r + gamma (1 - done) V(s')`` (no entropy term: it is inside ``V``), loss
   ``1/2 sum_k MSE(Q_k(s, a), y)`` for the twin critics.
3. **Sampler** ``a = tanh(f_psi(s, xi))``, ``xi ~ U(0, 1)^d``, trained by amortised SVGD
   (Wang & Liu 2016; Haarnoja et al. 2017 §3.2, Eq. 13-14): draw ``m`` actions per state from the
   sampler itself, compute the Stein direction
   ``Delta(a_i) = 1/m sum_j [k(a_j, a_i) grad_{a_j} min_k Q_k(s, a_j) / T
   + grad_{a_j} k(a_j, a_i)]`` with the shared :func:`maxbench.algos.svgd.stein_direction`
   (``T = ent_coef`` unless ``sampler_temperature`` is set; the S2AC authors' ``T`` is 1), and
   ascend along it: ``psi <- psi + lr * dA/dpsi^T Delta`` through the surrogate loss
   ``-(Delta.detach() * a).sum(-1).mean()`` (:func:`amortized_svgd_loss`). With
   ``stein_draws="independent"`` the scores and kernel centres ``a_j`` come from a second,
   independent set of ``m`` draws (the S2AC authors' ``compute_loss_pi``).
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
from maxbench.algos.svgd import adaptive_bandwidth, stein_direction
from maxbench.engine.compiled import DeviceMeans, polyak_
from maxbench.engine.options import Compilable

__all__ = [
    "SQL",
    "STEIN_DRAWS",
    "VALUE_ESTIMATORS",
    "amortized_svgd_loss",
    "importance_sampled_soft_value",
    "sampler_soft_value",
    "stein_scores",
    "uniform_box_actions",
]

#: How SQL estimates the soft value of the next state (see :class:`SQL`, ``value_estimator``).
VALUE_ESTIMATORS = ("uniform", "particles")

#: Where the Stein direction's kernel centres and scores come from (``stein_draws``).
STEIN_DRAWS = ("shared", "independent")


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


def sampler_soft_value(
    q_fn: Callable[[th.Tensor], th.Tensor],
    particles: th.Tensor,
    alpha: float,
) -> th.Tensor:
    """Soft value on the sampler's own actions, as the S2AC authors' SQL computes it.

    Their ``compute_loss_q`` (``STAC/core.py`` lines 74-86) draws ``m`` actions per next state
    from the current sampler and, with ``q = min(Q1_targ, Q2_targ)`` over them, writes::

        V_soft_ = alpha_c * torch.logsumexp(q_pi_targ / alpha_c, dim=-1)
        V_soft_ += alpha_c * (act_dim * np.log(2) - np.log(num_particles))

    reproduced here term by term. The constant is the uniform proposal's (density ``2^-d`` on
    ``[-1, 1]^d``), but the actions are not uniform: once the sampler concentrates where ``Q`` is
    high the estimate exceeds the true ``alpha log int exp(Q / alpha) da`` (optimistic), where
    :func:`importance_sampled_soft_value` is unbiased in the limit.

    Args:
        q_fn: maps ``(B, m, d)`` actions to ``(B, m)`` Q-values (SQL's target:
            ``min_k Qbar_k(s', .)``).
        particles: ``(B, m, d)`` actions, the sampler's draws at the next states.
        alpha: the temperature (the authors' ``alpha_c``, ``--a_c``).

    Returns:
        ``(B,)`` soft values.
    """
    n_particles, action_dim = particles.shape[-2:]
    q_values = q_fn(particles)
    value = alpha * th.logsumexp(q_values / alpha, dim=-1)
    return value + alpha * (action_dim * math.log(2.0) - math.log(n_particles))


def stein_scores(
    log_target_fn: Callable[[th.Tensor], th.Tensor], particles: th.Tensor
) -> th.Tensor:
    """Detached scores ``grad_a log p(a_j)`` of the particles (the ``s_j`` of Eq. 13).

    The gradient of ``sum_j log p(a_j)`` with respect to the particles alone, taken by
    ``torch.func.grad`` under ``no_grad`` (the function transform ignores the outer ``no_grad``;
    its result does not record the graph to ``log_target_fn``'s parameters): the same numbers as
    ``torch.autograd.grad`` on a detached copy (:func:`maxbench.algos.svgd.score_from_log_prob`),
    but traced by ``torch.compile`` into one graph, where the copy's ``requires_grad_`` and
    ``autograd.grad`` each break it (issue 14).

    Args:
        log_target_fn: ``(B, m, d) -> (B, m)``, each particle's value depending on it alone.
        particles: ``(B, m, d)`` points.

    Returns:
        ``(B, m, d)`` scores, detached.
    """
    with th.no_grad():
        return th.func.grad(lambda a: log_target_fn(a).sum())(particles.detach())


def amortized_svgd_loss(
    actions: th.Tensor,
    log_target_fn: Callable[[th.Tensor], th.Tensor],
    kernel_sigma: float | None = None,
    fixed_particles: th.Tensor | None = None,
) -> th.Tensor:
    """Surrogate loss whose gradient moves the sampler's actions along the Stein direction.

    The particles are the sampler's own actions (Haarnoja et al. 2017, §3.2); the kernel, the
    scores ``grad_a log p(a_j)`` and the direction ``Delta`` are computed on detached copies, so
    ``d loss / d a_i = -Delta(a_i) / (B m)``: a gradient step on ``psi`` is the chain-rule ascent
    ``psi += lr * (da/dpsi)^T Delta`` of Eq. 14 (averaged over states and particles).

    Args:
        actions: ``(B, m, d)`` sampler outputs, differentiable w.r.t. the sampler's parameters.
        log_target_fn: ``(B, m, d) -> (B, m)`` unnormalised log target ``min_k Q_k(s, a) / T``.
        kernel_sigma: RBF kernel standard deviation, or None for the shared adaptive bandwidth of
            :func:`maxbench.algos.svgd.adaptive_bandwidth`.
        fixed_particles: ``(B, n, d)`` other draws that carry the scores and the kernel centres
            ``a_j``, the direction being applied at ``actions`` (the S2AC authors' SQL,
            ``STAC/core.py`` lines 107-132: ``Kernel(input_1=a, input_2=a_updated)`` over two
            independent draws). The adaptive bandwidth is then taken over the ``n x m`` cross
            distances, as their kernel does. None (default): ``actions`` themselves.

    Returns:
        Scalar loss ``-(Delta.detach() * actions).sum(-1).mean()``.
    """
    query = actions.detach()
    particles = query if fixed_particles is None else fixed_particles.detach()
    scores = stein_scores(log_target_fn, particles)
    sigma: float | th.Tensor | None = kernel_sigma
    if sigma is None and fixed_particles is not None:
        cross = (particles.unsqueeze(-2) - query.unsqueeze(-3)).pow(2).sum(-1)
        sigma = adaptive_bandwidth(cross).sqrt()
    delta = stein_direction(particles, scores, query, sigma=sigma).detach()
    return -(delta * actions).sum(dim=-1).mean()


def _check_choice(name: str, value: object, allowed: tuple[str, ...]) -> None:
    """``ValueError`` naming the option and its allowed values unless ``value`` is one of them."""
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(f"SQL's {name} must be one of {', '.join(allowed)}; got {value!r}")


class SQL(Compilable, ClassNamedLogs, PolicyKwargsAsGiven, OffPolicyAlgorithm):
    """Soft Q-Learning (Haarnoja et al. 2017) with twin critics and an amortised SVGD sampler.

    Twin critics with min-clipping, the soft value of the next state (no entropy term in the
    target), and a sampler network ``tanh(f(s, xi))``, ``xi ~ U(0, 1)^d``, trained along the
    Stein direction with the same kernel code as S2AC (:mod:`maxbench.algos.svgd`). See the module
    docstring for the step. The defaults estimate the soft value by importance sampling with
    uniform actions and use SB3's SAC defaults; the registry's ``sql-s2ac`` preset is the S2AC
    authors' SQL (below).

    The S2AC authors' SQL (``SafaMessaoud/S2AC-Energy-Based-RL-with-Stein-Soft-Actor-Critic``,
    ``--actor svgd_sql``), and the options that reproduce it:

    * soft value on the sampler's own ``m`` particles at ``s'`` with the uniform proposal's
      constant, ``alpha_c logsumexp(min Qbar / alpha_c) + alpha_c (d log 2 - log m)``
      (``STAC/core.py`` lines 74-87): ``value_estimator="particles"``;
    * alpha only in ``V``: the Stein score is ``grad_a min Q`` without alpha (``STAC/core.py``
      lines 112-130), i.e. the sampler targets ``exp(Q)``: ``sampler_temperature=1.0``;
    * scores and kernel centres on one draw of ``m`` particles, the direction applied to a second,
      independent draw, bandwidth from their cross distances (``STAC/core.py`` lines 107-132,
      ``STAC/actors/kernels.py`` lines 26-68, ``kernel_sigma_adaptive=4``, ``main.py`` line 64):
      ``stein_draws="independent"``;
    * m = 10 particles (``--svgd_particles``, ``STAC/main.py`` line 59) for both ``V`` and the
      Stein direction: ``value_n_particles=10``, ``kernel_n_particles=10``;
    * Polyak 0.995 after every update (``main.py`` line 51, ``core.py`` lines 168-172):
      ``tau=0.005``, ``target_update_interval=1``; lr 1e-3 for critics and sampler (``main.py``
      lines 52-53); batch 100 (line 54); gamma 0.99 (line 38); alpha 0.2 (``--a_c``, line 39);
      replay 1e6 (line 41);
    * 10 000 uniform-random steps, updates from step 1000, 50 updates every 50 steps
      (``main.py`` lines 44-47, ``core.py`` lines 252-258, 297-303):
      ``random_exploration_steps=10_000``, ``learning_starts=1000``, ``train_freq=50``,
      ``gradient_steps=50``;
    * sampler 3 x 256 and critics 2 x 256, ReLU for ``svgd_sql`` (``main.py`` lines 31-33,
      100-102; ``STAC/networks.py`` lines 9-23): ``net_arch={"pi": [256] * 3, "qf": [256] * 2}``;
    * evaluation picks among the ``m`` particles by ``max`` or ``softmax`` at temperature 1
      (``actor_sql.py`` lines 43-59, ``core.py`` line 308): ``n_eval_particles=10``,
      ``action_selection="softmax"``, ``selection_temperature=1.0``; training acts with one
      random particle (``--train_action_selection random``), SB3's stochastic ``predict`` here.

    What differs from theirs even in the preset: the critic loss is ``1/2 sum_k MSE`` (theirs
    ``sum_k MSE``) and the surrogate is averaged over states and particles (theirs summed), both
    constant factors that Adam absorbs; the kernel's ``1e-8`` in ``1 / (1e-8 + 2 sigma^2)`` is
    not added; their sampler acts in env units (``tanh * act_limit``), maxbench's critics see
    actions scaled to ``[-1, 1]^d`` (identical when the action bound is 1, as on the multi-goal
    envs); deterministic evaluation draws the particles and the softmax choice from fixed stored
    noise, theirs from fresh noise.

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
        value_estimator: ``"uniform"`` (default): the soft value by importance sampling with
            ``value_n_particles`` uniform actions on the box
            (:func:`importance_sampled_soft_value`);
            ``"particles"``: on ``value_n_particles`` draws of the sampler itself with the same
            constant, the S2AC authors' estimate (:func:`sampler_soft_value`).
        value_n_particles: actions per next state for the soft value (``m`` of ``V``).
        kernel_n_particles: sampler particles per state for the Stein direction (``m``).
        kernel_sigma: RBF kernel standard deviation, or None for the adaptive, detached bandwidth
            shared with S2AC (mean squared distance / 2 / (2 log(m + 1))).
        sampler_temperature: ``T`` of the sampler's target ``exp(min Q / T)`` (the Stein scores
            are divided by it); None (default) uses ``ent_coef``, so that the sampler targets the
            density whose log-normaliser ``V`` estimates. The S2AC authors use 1 (alpha only in V).
        stein_draws: ``"shared"`` (default): one draw of ``kernel_n_particles`` actions carries the
            scores and receives the direction; ``"independent"``: scores and kernel centres on one
            draw, the direction applied to a second, independent draw (the S2AC authors').
        compile: compile the gradient step (:meth:`_gradient_step`) with ``torch.compile``
            (keyword-only, issue 14; off: the same step run eagerly, today's numbers; a string:
            that ``torch.compile`` backend, e.g. ``"aot_eager"``). On, the replay buffer
            defaults to the device-resident :class:`~maxbench.engine.replay.TensorReplayBuffer`
            (Box observations) and the optimisers use their multi-tensor kernels. A model saved
            compiled loads eager and the reverse (``SQL.load(path, compile=...)``): ``compile``
            is an attribute, the compiled function is rebuilt on demand.
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

    Defaults against Haarnoja et al.'s softlearning code (also in the README's deviations
    table):

    * Stein particles: Haarnoja et al.'s code splits each state's sampler draws into a "fixed"
      half (kernel centres and scores) and an "updated" half (where the direction is applied);
      maxbench uses one set of ``m`` draws for both by default, the formula of spec §4
      (``stein_draws="independent"`` is the S2AC authors' two independent draws).
    * Score temperature: Haarnoja et al. run alpha = 1 and scale the rewards; maxbench divides
      by ``alpha`` by default so the sampler targets ``exp(Q / alpha)``, the density whose
      log-normaliser the soft value estimates (``sampler_temperature=1.0``: the S2AC authors'
      ``grad Q``). All agree at ``alpha = 1``.
    * Squash correction: Haarnoja et al.'s code adds ``sum_d log(1 - a_d^2)`` to the log target of
      the Stein direction; maxbench uses spec §4's target ``exp(Q / T)`` on the box as is (as the
      S2AC authors do).
    * Amortised SVGD with few particles under-represents the tails of the target (measured in
      ``tests/test_sql.py``: std about 0.2 for a truncated normal of std 0.243); the median and
      interquartile range match.
    * Noise ``xi ~ U(0, 1)^d`` as in spec §4 and the S2AC authors' ``actor_sql.py`` line 35
      (Haarnoja et al. use a standard normal).
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
    # Class-level defaults: a model saved before these options existed loads with them.
    value_estimator: str = "uniform"
    sampler_temperature: float | None = None
    stein_draws: str = "shared"

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
        value_estimator: str = "uniform",
        sampler_temperature: float | None = None,
        stein_draws: str = "shared",
        compile: bool | str = False,  # noqa: A002  (torch.compile's own word)
    ) -> None:
        reject_gsde("SQL", use_sde)
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
        _check_choice("value_estimator", value_estimator, VALUE_ESTIMATORS)
        _check_choice("stein_draws", stein_draws, STEIN_DRAWS)
        if sampler_temperature is not None and (
            isinstance(sampler_temperature, (str, bool)) or not sampler_temperature > 0
        ):
            raise ValueError(
                "SQL's sampler_temperature must be a positive number or None (None: ent_coef), "
                f"got {sampler_temperature!r}"
            )
        self.value_estimator = value_estimator
        self.sampler_temperature = (
            None if sampler_temperature is None else float(sampler_temperature)
        )
        self.stein_draws = stein_draws
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
        """Dimension ``d`` of the action box (``np.prod`` would break a compiled graph)."""
        return math.prod(self.action_space.shape)

    @property
    def stein_temperature(self) -> float:
        """``T`` of the sampler's target ``exp(min Q / T)``: ``sampler_temperature`` or alpha."""
        if self.sampler_temperature is None:
            return self.ent_coef
        return self.sampler_temperature

    def soft_value(self, observations: Any) -> th.Tensor:
        """``(B,)`` soft value of ``observations`` under the target critics.

        By ``value_estimator``: uniform actions on the box (importance sampling) or the
        sampler's own draws at ``observations`` (the S2AC authors'); ``value_n_particles`` each.
        """
        q_fn = partial(min_q_over_particles, self.critic_target, observations)
        if self.value_estimator == "particles":
            particles = self.actor.sample(observations, self.value_n_particles)
            return sampler_soft_value(q_fn, particles, alpha=self.ent_coef)
        first = (
            next(iter(observations.values())) if isinstance(observations, dict) else observations
        )
        return importance_sampled_soft_value(
            q_fn,
            n_states=first.shape[0],
            action_dim=self.action_dim,
            n_samples=self.value_n_particles,
            alpha=self.ent_coef,
            device=self.device,
        )

    def _gradient_step(
        self,
        observations: Any,
        actions: th.Tensor,
        next_observations: Any,
        rewards: th.Tensor,
        dones: th.Tensor,
        discounts: th.Tensor,
    ) -> th.Tensor:
        """One SQL gradient step (module docstring, steps 1-3); returns [critic loss, sampler
        loss, mean V(s')], detached.

        The function :meth:`train` calls eagerly (``compile=False``) or ``torch.compile``'d. It
        draws its noise itself, in the order the loop always drew it (the ``V(s')`` actions,
        then the sampler's Stein draws), and takes each gradient on its own: the critic's of the
        critic loss, then, after the critic step, the sampler's of the surrogate loss, whose
        Stein scores come from the stepped critic (:func:`stein_scores`). Each is
        :meth:`~maxbench.engine.options.Compilable.gradients_into`'s: ``backward`` into that
        module eagerly, a function transform compiled, where the optimisers' steps are traced
        too (one graph).
        """
        # Critic target: r + gamma (1 - done) V(s') (spec §4; V by value_estimator).
        with th.no_grad():
            next_values = self.soft_value(next_observations).reshape(-1, 1)
            target_q_values = rewards + (1 - dones) * discounts * next_values

        def critic_loss_of() -> th.Tensor:
            current_q_values = self.critic(observations, actions)
            loss = 0.5 * sum(F.mse_loss(q, target_q_values) for q in current_q_values)
            assert isinstance(loss, th.Tensor)
            return loss

        critic_loss = self.gradients_into("critic", critic_loss_of)
        self.step_optimizer(self.critic.optimizer)
        # Sampler: amortised SVGD toward exp(min Q / T) (Haarnoja et al. 2017, §3.2).
        actor_loss = self.gradients_into("actor", lambda: self._sampler_loss(observations))
        self.step_optimizer(self.actor.optimizer)
        return th.stack([critic_loss.detach(), actor_loss.detach(), next_values.mean()])

    def train(self, gradient_steps: int, batch_size: int = 64) -> None:
        """``gradient_steps`` calls of :meth:`_gradient_step` (compiled per ``compile``), a
        Polyak update every ``target_update_interval``; logged means read once at the end."""
        self.policy.set_training_mode(True)
        self._update_learning_rate([self.actor.optimizer, self.critic.optimizer])
        self.prepare_gradients("critic", "actor")
        step = self.compiled("gradient_step", self._gradient_step, transforms_only=True)
        means = DeviceMeans()
        critic_params = list(self.critic.parameters())
        target_params = list(self.critic_target.parameters())
        for gradient_step in range(gradient_steps):
            replay_data = self.replay_buffer.sample(batch_size, env=self._vec_normalize_env)  # type: ignore[union-attr]
            discounts = replay_data.discounts
            if discounts is None:
                discounts = self.gamma_tensor()
            logged = step(
                replay_data.observations,
                replay_data.actions,
                replay_data.next_observations,
                replay_data.rewards,
                replay_data.dones,
                discounts,
            )  # DeviceMeans sums in float64, as SB3's np.mean of Python floats
            means.add("train/actor_loss", logged[1])
            means.add("train/critic_loss", logged[0])
            means.add("train/soft_value", logged[2])
            if gradient_step % self.target_update_interval == 0:
                self._update_targets(critic_params, target_params)
        self._n_updates += gradient_steps
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        self.logger.record("train/ent_coef", self.ent_coef)
        for name, value in means.read().items():
            self.logger.record(name, value)

    def _update_targets(
        self, critic_params: list[th.Tensor], target_params: list[th.Tensor]
    ) -> None:
        """Polyak-average the target critics (step 4): SB3's loop eagerly, one
        ``_foreach_lerp_`` compiled (the same update, rounded differently)."""
        if self.compile is False:
            polyak_update(critic_params, target_params, self.tau)
        else:
            polyak_(critic_params, target_params, self.tau)
        polyak_update(self.batch_norm_stats, self.batch_norm_stats_target, 1.0)

    def _sampler_loss(self, observations: Any) -> th.Tensor:
        """Amortised SVGD surrogate loss on ``kernel_n_particles`` draws per state."""
        temperature = self.stein_temperature

        def log_target(a: th.Tensor) -> th.Tensor:
            return min_q_over_particles(self.critic, observations, a) / temperature

        fixed = None
        if self.stein_draws == "independent":
            with th.no_grad():
                fixed = self.actor.sample(observations, self.kernel_n_particles)
        actions = self.actor.sample(observations, self.kernel_n_particles)
        return amortized_svgd_loss(actions, log_target, self.kernel_sigma, fixed)

    def _excluded_save_params(self) -> list[str]:
        return [*super()._excluded_save_params(), "actor", "critic", "critic_target"]

    def _get_torch_save_params(self) -> tuple[list[str], list[str]]:
        return ["policy", "actor.optimizer", "critic.optimizer"], []
