"""S2AC, Stein Soft Actor-Critic (Messaoud et al., ICLR 2024, arXiv 2405.00987), for SB3.

The training step follows spec §1.4 line by line (see :meth:`S2AC.train`); the sampler is
:mod:`maxbench.algos.s2ac.sampler`, the policy :mod:`maxbench.algos.s2ac.policies`.
"""

from __future__ import annotations

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
from maxbench.algos.s2ac.policies import (
    AmortizedSampler,
    InitialGaussian,
    MlpPolicy,
    S2ACPolicy,
)
from maxbench.algos.sb3_compat import PolicyKwargsAsGiven, reject_gsde
from maxbench.algos.svgd import stein_direction
from maxbench.engine.compiled import DeviceMeans, polyak_
from maxbench.engine.options import Compilable

__all__ = ["S2AC"]

#: What one gradient step logs, in :meth:`S2AC._gradient_step`'s order (``train/<name>``).
LOGGED = ("ent_coef", "actor_loss", "critic_loss", "entropy", "ent_coef_loss", "amortized_loss")


#: Options of the sampler that S2AC passes to its policy (set them on S2AC, not in policy_kwargs;
#: ``temperature`` follows ``sampler_temperature``).
SAMPLER_OPTIONS = (
    "init",
    "init_std",
    "amortized",
    "n_particles",
    "svgd_steps",
    "svgd_step_size",
    "kernel_sigma",
    "energy_on",
    "temperature",
    "action_selection",
)


class S2AC(Compilable, ClassNamedLogs, PolicyKwargsAsGiven, OffPolicyAlgorithm):
    """Stein Soft Actor-Critic: an energy-based policy sampled by SVGD on ``min_k Q_k``.

    The actor is ``m`` particles per state, drawn from an initial Gaussian q0 and moved by ``L``
    steps of SVGD towards ``exp(min_k Q_k(s, .) / T)``; the closed-form log-density of the
    S2AC paper (Theorem 3.3) gives ``log pi`` for the soft Bellman target and the actor loss, and
    the actor gradient flows through all ``L`` SVGD steps into q0's parameters. Variants
    (spec §1.1): S2AC(phi) ``init="fixed"``, S2AC(phi, theta) (default), S2AC(phi, theta, psi)
    ``amortized=True``.

    Defaults are the authors' (spec §1.5): critic 2×256 ELU and q0 network 3×256 ELU, gamma 0.99,
    replay 1e6, batch 100, Adam lr 1e-3 for every network, polyak 0.995 (``tau=0.005``), 10 000
    uniform-random steps (``random_exploration_steps``), updates from step 1000
    (``learning_starts``), 50 gradient steps every 50 env steps, m = 10, L = 3 (use 10 on the
    multi-goal env), epsilon = 0.1, alpha fixed at 0.2.

    Deviations from the authors' code and decisions of the spec (README deviations table):

    * Energy input ``energy_on="post_tanh"`` (default): ``min Q(s, tanh u)``, consistent with the
      critic, which is trained on squashed actions; the authors evaluate Q at the pre-tanh
      particle (``energy_on="pre_tanh"``). ``energy_on="post_tanh_jacobian"`` adds the tanh
      log-Jacobian to the u-space target (the exact image of ``exp(min Q / T) da``), which keeps
      the particles out of tanh saturation where ``min Q(s, tanh u)`` is flat (a maxbench option).
    * Initial particles from the truncated normal by the inverse CDF (the authors over-sample
      2000 candidates per state and keep the first m inside mu +- 3 sigma); the same
      distribution, reparameterised, no rejection loop. S2AC(phi)'s fixed q0 is truncated too
      (the authors draw from a fixed bank of untruncated N(0, 0.5^2) samples).
    * ``ent_coef="auto"``: SAC-style tuning of alpha on the closed-form entropy, target entropy
      ``-d`` (an extension; the authors fix alpha).
    * Deterministic prediction uses fixed initial draws and the particle with the highest
      ``min Q`` evaluated at the final particles (the authors pick among the final particles by
      the Q values of the particles before the last SVGD step, and draw fresh initial particles).
    * The amortised sampler is trained (its training branch never runs in the authors' release),
      with the mean over samples of the surrogate ``-<a_psi, Delta>`` (the authors sum).
    * Critic loss ``0.5 * sum_k MSE`` (SB3's SAC; the authors sum without the 0.5: the same
      update under Adam up to its epsilon).
    * The gradient ``grad_a min_k Q_k`` is computed analytically for plain-MLP critics (the same
      numbers as autograd, tested), and only through the arg-min critic per particle.
    * The alpha update (``ent_coef="auto"``) uses the actor step's ``log pi`` and comes after the
      critic and actor updates (SB3's SAC updates alpha first).

    As an SB3 algorithm (README, "Using the algorithms with SB3 code"):

    * The constructor takes SAC's arguments in SAC's order (``S2AC("MlpPolicy", env, 1e-3)``
      sets the learning rate), then S2AC's own options, keyword-only. ``use_sde=True`` is a
      ``ValueError`` (no gSDE); ``sde_sample_freq`` and ``use_sde_at_warmup`` are accepted.
    * ``policy_kwargs`` stays as given: the sampler options are S2AC's own saved attributes, so
      ``S2AC.load(path, env=env, **kwargs)`` takes the constructor's keyword arguments.
    * Acting: ``model.predict`` is ``model.policy.predict``, the reference. ``model.actor``
      (``model.policy.actor``) is q0, the initial distribution of the particles, **not** the
      acting policy: its ``predict(obs, deterministic=True)`` is tanh of q0's mean, a fixed
      function of the state, but not S2AC's action (SVGD moves the particles and the critic
      picks one).

    Args:
        policy: ``"MlpPolicy"`` or an :class:`S2ACPolicy` subclass.
        env: the environment (Box actions).
        learning_rate: Adam learning rate of every network (float or schedule).
        buffer_size: replay capacity.
        learning_starts: env steps before the first update (the authors' ``update_after``).
        batch_size: minibatch size (states; each carries m particles).
        tau: polyak coefficient (1 - the authors' polyak).
        gamma: discount.
        train_freq: update every ``train_freq`` env steps.
        gradient_steps: gradient steps per update.
        action_noise: optional action noise (none in S2AC).
        replay_buffer_class: SB3 replay buffer class.
        replay_buffer_kwargs: its keyword arguments.
        optimize_memory_usage: SB3's memory-efficient buffer.
        n_steps: n-step returns (SB3's NStepReplayBuffer).
        ent_coef: alpha, a float, or ``"auto"`` / ``"auto_<init>"`` to learn it.
        target_update_interval: gradient steps between polyak updates.
        target_entropy: target of the alpha tuning (``"auto"``: ``-d``).
        use_sde: must be False (SAC's argument; S2AC has no gSDE).
        sde_sample_freq, use_sde_at_warmup: SAC's arguments, without effect here.
        stats_window_size: SB3's rollout statistics window.
        tensorboard_log: tensorboard folder (runs are named ``S2AC_<n>``).
        policy_kwargs: network options of :class:`S2ACPolicy` (``net_arch``, ``activation_fn``,
            ``n_critics``, features extractor, optimizer, ``analytic_energy``).
        verbose: verbosity.
        seed: random seed.
        device: torch device.
        _init_setup_model: build the networks now.
        init: ``"learned"`` q0 (S2AC(phi, theta)) or ``"fixed"`` N(0, init_std^2) (S2AC(phi)).
        init_std: sigma_0 of the fixed q0 (a standard deviation; authors 0.5).
        amortized: train the amortised sampler and act with it (S2AC(phi, theta, psi)).
        n_particles: m, particles per state.
        svgd_steps: L.
        svgd_step_size: epsilon.
        kernel_sigma: fixed RBF kernel std, or None for the adaptive bandwidth (default).
        energy_on: ``"post_tanh"`` (default), ``"pre_tanh"`` (authors) or
            ``"post_tanh_jacobian"`` (target in u-space with the tanh log-Jacobian).
        sampler_temperature: T of the sampler's target ``exp(Q / T)``: a float (authors: 1) or
            ``"alpha"`` (the paper's theorem; follows alpha when it is tuned).
        action_selection: deterministic prediction: ``"max"`` (highest min-Q particle) or
            ``"softmax"`` (drawn proportionally to ``exp(min Q / T)``).
        random_exploration_steps: env steps acted uniformly at random (the authors'
            ``exploration_steps``; SB3 acts randomly until ``max(this, learning_starts)``).
        compile: ``torch.compile`` the gradient step and the SVGD acting pass (issue 14): True
            (inductor; CUDA graphs on a GPU), a backend name (e.g. ``"aot_eager"``), or False
            (eager, the default). With it on, the replay buffer lives on the device
            (:class:`~maxbench.engine.replay.TensorReplayBuffer`) and the optimisers use their
            multi-tensor kernels; the mathematics is the same (tested to 1e-5). A model saved
            compiled loads eager and the reverse (``S2AC.load(path, compile=...)``).
    """

    policy_aliases: ClassVar[dict[str, type[BasePolicy]]] = {"MlpPolicy": MlpPolicy}
    policy: S2ACPolicy
    actor: InitialGaussian
    critic: ContinuousCritic
    critic_target: ContinuousCritic
    amortized: AmortizedSampler | None

    def __init__(
        self,
        policy: str | type[S2ACPolicy],
        env: GymEnv | str,
        learning_rate: float | Schedule = 1e-3,
        buffer_size: int = 1_000_000,
        learning_starts: int = 1000,
        batch_size: int = 100,
        tau: float = 0.005,
        gamma: float = 0.99,
        train_freq: int | tuple[int, str] = 50,
        gradient_steps: int = 50,
        action_noise: ActionNoise | None = None,
        replay_buffer_class: type[ReplayBuffer] | None = None,
        replay_buffer_kwargs: dict[str, Any] | None = None,
        optimize_memory_usage: bool = False,
        n_steps: int = 1,
        ent_coef: str | float = 0.2,
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
        init: str = "learned",
        init_std: float = 0.5,
        amortized: bool = False,
        n_particles: int = 10,
        svgd_steps: int = 3,
        svgd_step_size: float = 0.1,
        kernel_sigma: float | None = None,
        energy_on: str = "post_tanh",
        sampler_temperature: str | float = 1.0,
        action_selection: str = "max",
        random_exploration_steps: int = 10_000,
        compile: bool | str = False,  # noqa: A002  (torch.compile's own word)
    ) -> None:
        reject_gsde("S2AC", use_sde)
        self._set_compile(compile)
        clashes = sorted(set(policy_kwargs or {}) & set(SAMPLER_OPTIONS))
        if clashes:
            raise ValueError(
                f"pass {', '.join(clashes)} to S2AC directly, not inside policy_kwargs"
            )
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
        if sampler_temperature != "alpha" and not _positive_number(sampler_temperature):
            raise ValueError(
                f"sampler_temperature must be 'alpha' or a positive number: {sampler_temperature!r}"
            )
        self.target_entropy = target_entropy
        self.log_ent_coef: th.Tensor | None = None
        self.ent_coef = ent_coef
        self.target_update_interval = target_update_interval
        self.ent_coef_optimizer: th.optim.Adam | None = None
        self.sampler_temperature = sampler_temperature
        self.random_exploration_steps = int(random_exploration_steps)
        # The sampler's options: saved attributes (SB3's load may override them), handed to the
        # policy by _policy_build_kwargs; policy_kwargs stays as given. ``amortized`` itself is
        # the amortised sampler network (an alias of policy.amortized), as ``actor`` is q0.
        self.init = init
        self.init_std = init_std
        self.use_amortized = bool(amortized)
        self.n_particles = n_particles
        self.svgd_steps = svgd_steps
        self.svgd_step_size = svgd_step_size
        self.kernel_sigma = kernel_sigma
        self.energy_on = energy_on
        self.action_selection = action_selection
        self.amortized = None
        if _init_setup_model:
            self._setup_model()

    # -- setup ----------------------------------------------------------------------------------
    def _initial_ent_coef(self) -> float:
        """alpha at the start: the float, or the initial value of ``"auto[_x]"`` (1.0 default)."""
        if isinstance(self.ent_coef, str):
            if not self.ent_coef.startswith("auto"):
                raise ValueError(
                    f"ent_coef must be a float or 'auto[_<init>]', got {self.ent_coef!r}"
                )
            value = float(self.ent_coef.split("_")[1]) if "_" in self.ent_coef else 1.0
        else:
            value = float(self.ent_coef)
        if value <= 0:
            raise ValueError(f"the entropy coefficient must be positive, got {value}")
        return value

    def _policy_build_kwargs(self) -> dict[str, Any]:
        """``policy_kwargs`` and the sampler options (:data:`SAMPLER_OPTIONS`) for the policy."""
        temperature = (
            self._initial_ent_coef()
            if self.sampler_temperature == "alpha"
            else float(self.sampler_temperature)
        )
        return {
            **super()._policy_build_kwargs(),
            "init": self.init,
            "init_std": self.init_std,
            "amortized": self.use_amortized,
            "n_particles": self.n_particles,
            "svgd_steps": self.svgd_steps,
            "svgd_step_size": self.svgd_step_size,
            "kernel_sigma": self.kernel_sigma,
            "energy_on": self.energy_on,
            "temperature": temperature,
            "action_selection": self.action_selection,
        }

    def _adopt_legacy_sampler_options(self) -> None:
        """Models saved by earlier maxbench versions kept the sampler options in ``policy_kwargs``
        (and not as attributes): take them from there, and leave ``policy_kwargs`` as given.

        ``temperature`` is dropped: it follows ``sampler_temperature``, which those models saved,
        and the policy's ``temperature`` buffer comes back with the parameters.
        """
        legacy = {key: value for key, value in self.policy_kwargs.items() if key in SAMPLER_OPTIONS}
        if not legacy:
            return
        self.policy_kwargs = {
            key: value for key, value in self.policy_kwargs.items() if key not in legacy
        }
        legacy.pop("temperature", None)
        if "amortized" in legacy:
            self.use_amortized = bool(legacy.pop("amortized"))
        for key, value in legacy.items():
            setattr(self, key, value)

    def _setup_model(self) -> None:
        reject_gsde("S2AC", self.use_sde)
        self._adopt_legacy_sampler_options()
        super()._setup_model()
        self._create_aliases()
        self.batch_norm_stats = get_parameters_by_name(self.critic, ["running_"])
        self.batch_norm_stats_target = get_parameters_by_name(self.critic_target, ["running_"])
        if self.target_entropy == "auto":
            self.target_entropy = float(-np.prod(self.env.action_space.shape).astype(np.float32))  # type: ignore[union-attr]
        else:
            self.target_entropy = float(self.target_entropy)
        init_value = self._initial_ent_coef()
        if isinstance(self.ent_coef, str):
            self.log_ent_coef = th.log(th.ones(1, device=self.device) * init_value).requires_grad_(
                True
            )
            self.ent_coef_optimizer = th.optim.Adam([self.log_ent_coef], lr=self.lr_schedule(1))
        else:
            self.ent_coef_tensor = th.tensor(init_value, device=self.device)

    def _create_aliases(self) -> None:
        self.actor = self.policy.actor
        self.critic = self.policy.critic
        self.critic_target = self.policy.critic_target
        self.amortized = self.policy.amortized

    # -- acting ---------------------------------------------------------------------------------
    def _sample_action(
        self,
        learning_starts: int,
        action_noise: ActionNoise | None = None,
        n_envs: int = 1,
    ) -> tuple[np.ndarray, np.ndarray]:
        """SB3's action sampling, uniform until ``max(learning_starts, random_exploration_steps)``.

        (The authors act at random for 10 000 steps but update from step 1000.)
        """
        return super()._sample_action(
            max(learning_starts, self.random_exploration_steps), action_noise, n_envs
        )

    def predict(
        self,
        observation: np.ndarray | dict[str, np.ndarray],
        state: tuple[np.ndarray, ...] | None = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = False,
    ) -> tuple[np.ndarray, tuple[np.ndarray, ...] | None]:
        """SB3's ``predict`` (the policy's); with ``compile`` on, through the compiled SVGD
        acting pass (``policy.act``), which the collection of experience uses too."""
        self.policy.compiled_act = (
            None
            if self.compile is False
            else self.compiled("act", self.policy.act, cpp_wrapper=True)
        )
        return super().predict(observation, state, episode_start, deterministic)

    # -- training -------------------------------------------------------------------------------
    def _current_ent_coef(self) -> th.Tensor:
        if self.log_ent_coef is not None:
            return th.exp(self.log_ent_coef.detach())
        return self.ent_coef_tensor

    def _sync_temperature(self, ent_coef: th.Tensor) -> None:
        """Keep the sampler temperature equal to alpha when ``sampler_temperature="alpha"``."""
        if self.sampler_temperature == "alpha":
            self.policy.temperature.copy_(ent_coef.reshape(()))

    def _actor_step(
        self, obs: th.Tensor, ent_coef: th.Tensor
    ) -> tuple[th.Tensor, th.Tensor, th.Tensor, th.Tensor | None]:
        """Actor loss ``E_s[alpha mean_j log pi(a_j|s) - mean_j min_k Q_k(s, a_j)]`` (spec §1.4).

        The gradient flows through all L SVGD steps (scores included) into q0's parameters, and
        only there: the backward pass is asked for q0's parameters alone
        (``backward(inputs=...)``), so the critics, the energy, receive no gradient. S2AC(phi)
        has no actor parameters: the loss is only recorded.

        Returns:
            The loss (detached), per-state ``mean_j log pi`` ``(B,)``, the final actions
            ``(B, m, d)`` (detached) and, for the amortised sampler, ``grad_a min_k Q_k`` at them
            (from the same forward pass; None otherwise).
        """
        trainable = self.actor.optimizer is not None
        with th.set_grad_enabled(trainable):
            particles, log_pi, energy = self.policy.sample(obs)
            assert log_pi is not None
            actions = th.tanh(particles)
            grad_q = None
            if self.amortized is not None:
                min_q, grad_q = energy.min_q_and_detached_grad(actions)
            else:
                min_q = energy.min_q(actions)
            log_pi_state = log_pi.mean(dim=1)
            actor_loss = (ent_coef * log_pi_state - min_q.mean(dim=1)).mean()
        if trainable:
            self.actor.optimizer.zero_grad()
            actor_loss.backward(inputs=list(self.actor.parameters()))
            self.actor.optimizer.step()
        return actor_loss.detach(), log_pi_state.detach(), actions.detach(), grad_q

    def _amortized_step(self, obs: th.Tensor, particles: th.Tensor, grad_q: th.Tensor) -> th.Tensor:
        """Move ``a_psi = tanh(f_psi(s, xi))`` along the Stein direction (spec §1.6).

        ``Delta(x) = 1/m sum_j [k(a_j, x) grad_{a_j} min Q(s, a_j) / T + grad_{a_j} k(a_j, x)]``
        with the final SVGD particles ``a_j`` and ``grad_q`` the gradient of ``min_k Q_k`` at
        them (the critics of the actor step); the surrogate loss ``-mean <a_psi, Delta>`` makes
        the optimizer ascend along ``Delta`` (SQL's amortised SVGD, Haarnoja et al. 2017).
        Returns the loss (detached).
        """
        assert self.amortized is not None and self.amortized.optimizer is not None
        scores = grad_q / self.policy.temperature
        B, m, d = particles.shape
        noise = th.rand((B, m, d), device=particles.device)
        a_psi = th.tanh(self.amortized(obs, noise))
        with th.no_grad():
            delta = stein_direction(particles, scores, a_psi, sigma=self.policy.kernel_sigma)
        loss = -(a_psi * delta).sum(dim=-1).mean()
        self.amortized.optimizer.zero_grad()
        loss.backward()
        self.amortized.optimizer.step()
        return loss.detach()

    def _gradient_step(
        self,
        observations: th.Tensor,
        actions: th.Tensor,
        next_observations: th.Tensor,
        rewards: th.Tensor,
        dones: th.Tensor,
        discounts: th.Tensor | float,
    ) -> th.Tensor:
        """One gradient step of spec §1.4 (critic, actor, amortised sampler, alpha).

        Returns the logged values ``[alpha, actor loss, critic loss, entropy, alpha loss,
        amortised loss]`` as one tensor (zeros for the parts a variant does not have), so that
        nothing waits for the host. Eager or compiled as a whole (``compile``).
        """
        ent_coef = self._current_ent_coef()
        self._sync_temperature(ent_coef)

        # Critic: y = r + gamma (1 - d) [mean_j min_k Qbar_k(s', a'_j) - alpha log pi(a'|s')]
        # with a'_j sampled at s' by SVGD on the online critic, no graph (spec §1.4).
        with th.no_grad():
            next_particles, next_log_pi, _ = self.policy.sample(next_observations)
            assert next_log_pi is not None
            next_energy = self.policy.target_energy(next_observations)
            next_q = next_energy.min_q(th.tanh(next_particles)).mean(dim=1, keepdim=True)
            next_v = next_q - ent_coef * next_log_pi.mean(dim=1, keepdim=True)
            target_q = rewards + (1 - dones) * discounts * next_v
        current_q = self.critic(observations, actions)
        critic_loss = 0.5 * sum(F.mse_loss(q, target_q) for q in current_q)
        assert isinstance(critic_loss, th.Tensor)
        self.critic.optimizer.zero_grad()
        critic_loss.backward()
        self.critic.optimizer.step()

        # Actor, through all SVGD steps, with the updated critic as the energy.
        actor_loss, log_pi, final_actions, grad_q = self._actor_step(observations, ent_coef)
        zero = th.zeros((), device=observations.device)
        amortized_loss = zero
        if grad_q is not None:
            amortized_loss = self._amortized_step(observations, final_actions, grad_q)

        # alpha (extension): SAC's loss on the closed-form log pi, target entropy -d.
        ent_coef_loss = zero
        if self.ent_coef_optimizer is not None and self.log_ent_coef is not None:
            assert isinstance(self.target_entropy, float)
            loss = -(self.log_ent_coef * (log_pi + self.target_entropy)).mean()
            self.ent_coef_optimizer.zero_grad()
            loss.backward()
            self.ent_coef_optimizer.step()
            ent_coef_loss = loss.detach()
        return th.stack(
            [
                ent_coef.reshape(()),
                actor_loss,
                critic_loss.detach(),
                -log_pi.mean(),
                ent_coef_loss,
                amortized_loss,
            ]
        )

    def train(self, gradient_steps: int, batch_size: int = 100) -> None:
        """Gradient steps of spec §1.4 (:meth:`_gradient_step`), then the target update."""
        self.policy.set_training_mode(True)
        optimizers = [self.critic.optimizer]
        if self.actor.optimizer is not None:
            optimizers.append(self.actor.optimizer)
        if self.amortized is not None:
            optimizers.append(self.amortized.optimizer)
        if self.ent_coef_optimizer is not None:
            optimizers.append(self.ent_coef_optimizer)
        self._update_learning_rate(optimizers)

        step = self.compiled("gradient_step", self._gradient_step)
        means = DeviceMeans()
        for gradient_step in range(gradient_steps):
            data = self.replay_buffer.sample(batch_size, env=self._vec_normalize_env)  # type: ignore[union-attr]
            discounts = data.discounts if data.discounts is not None else self.gamma
            logged = step(
                data.observations,
                data.actions,
                data.next_observations,
                data.rewards,
                data.dones,
                discounts,
            )
            for index, key in enumerate(LOGGED):
                means.add(key, logged[index])
            if gradient_step % self.target_update_interval == 0:
                self._update_targets()

        self._sync_temperature(self._current_ent_coef())
        self._n_updates += gradient_steps
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        values = means.read()
        for key in LOGGED[:4]:
            self.logger.record(f"train/{key}", values[key])
        if self.ent_coef_optimizer is not None:
            self.logger.record("train/ent_coef_loss", values["ent_coef_loss"])
        if self.amortized is not None:
            self.logger.record("train/amortized_loss", values["amortized_loss"])

    def _update_targets(self) -> None:
        """Polyak target update: SB3's loop eagerly (bit-for-bit today's), one fused
        ``_foreach_lerp_`` compiled (the same update up to rounding)."""
        if self.compile is False:
            polyak_update(self.critic.parameters(), self.critic_target.parameters(), self.tau)
        else:
            polyak_(self.critic.parameters(), self.critic_target.parameters(), self.tau)
        polyak_update(self.batch_norm_stats, self.batch_norm_stats_target, 1.0)

    # -- saving ---------------------------------------------------------------------------------
    def _excluded_save_params(self) -> list[str]:
        return [*super()._excluded_save_params(), "actor", "critic", "critic_target", "amortized"]

    def _get_torch_save_params(self) -> tuple[list[str], list[str]]:
        state_dicts = ["policy", "critic.optimizer"]
        if self.policy.actor.optimizer is not None:
            state_dicts.append("actor.optimizer")
        if self.policy.amortized is not None:
            state_dicts.append("amortized.optimizer")
        if self.ent_coef_optimizer is not None:
            state_dicts.append("ent_coef_optimizer")
            return state_dicts, ["log_ent_coef"]
        return state_dicts, ["ent_coef_tensor"]


def _positive_number(value: Any) -> bool:
    try:
        return float(value) > 0
    except (TypeError, ValueError):
        return False
