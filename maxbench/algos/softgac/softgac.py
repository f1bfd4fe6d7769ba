"""SoftGAC: soft generative actor-critic with a stochastic bridge actor (spec §3).

The algorithm is SAC with two substitutions (arXiv 2605.08733; authors' code
``skypitcher/soft_gac_jax``, ``algorithms/soft_gac.py``):

* the actor is a K-step stochastic bridge in pre-tanh space (:mod:`.bridge`), whose marginal
  action density is never needed;
* alpha * C(s, tau), the control energy of the sampled path, replaces alpha * log pi(a|s) in the
  actor loss and in the critic target, and the temperature is tuned to a control-energy budget.

The whole gradient step (critic, actor and temperature updates) is one function of the batch,
:meth:`SoftGAC._gradient_step`, run as it is (``compile=False``) or ``torch.compile``'d
(``compile=True``, maxbench issue 14; :class:`~maxbench.engine.options.Compilable`).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.buffers import ReplayBuffer
from stable_baselines3.common.noise import ActionNoise
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.type_aliases import GymEnv, PyTorchObs, Schedule
from stable_baselines3.common.utils import get_parameters_by_name, polyak_update
from torch.nn import functional as F

from maxbench.algos.class_named_logs import ClassNamedLogs
from maxbench.algos.sb3_compat import PolicyKwargsAsGiven, reject_gsde
from maxbench.algos.softgac.bridge import PARTICLE_SCHEMES, control_energy
from maxbench.algos.softgac.policies import CRITIC_TYPES, BridgeActor, MlpPolicy, SoftGACPolicy
from maxbench.engine.compiled import DeviceMeans, constant_weights_call, polyak_
from maxbench.engine.options import Compilable

__all__ = ["SoftGAC"]


#: Per-dimension, per-step control-energy budget of ``target_control_energy="auto"`` (spec §3,
#: authors' ``target_control_energy: {type: auto, per_dim: 0.2}``): C_target = 0.2 K d.
DEFAULT_ENERGY_PER_STEP_AND_DIM = 0.2
#: Initial temperature of ``ent_coef="auto"`` (authors' ``alpha.init``).
DEFAULT_INITIAL_ALPHA = 0.1
#: How the critic target combines the twin critics at (s', a'): ``"min"`` (SAC's clipped double Q,
#: maxbench's default) or ``"mean"`` (the SoftGAC authors', ``common/crossq_c51.py``).
TARGET_REDUCTIONS = ("min", "mean")


def _repeat_rows(obs: PyTorchObs, times: int) -> PyTorchObs:
    """Repeat every observation ``times`` times in place (``repeat_interleave`` on dim 0)."""
    if times == 1:
        return obs
    if isinstance(obs, dict):
        return {key: value.repeat_interleave(times, dim=0) for key, value in obs.items()}
    return obs.repeat_interleave(times, dim=0)


class SoftGAC(Compilable, ClassNamedLogs, PolicyKwargsAsGiven, OffPolicyAlgorithm):
    """Soft Generative Actor-Critic (SoftGAC) as a stable-baselines3 algorithm (spec §3).

    One gradient step (``train``), after the authors' ``_train``:

    1. critic: y = r + gamma (1 - d) [min_k Qbar_k(s', a') - alpha C(s', tau')] with a' = tanh(z'_K)
       from one bridge path at s' (no gradient), and the SB3 twin-critic MSE loss
       (``target_reduction="mean"``: mean_k instead of min_k, the authors' target);
    2. every ``policy_delay``-th step, actor: E[alpha C(s, tau) - min_k Q_k(s, tanh z_K)] over
       ``n_particles`` reparameterised paths per state (``"antithetic"``: pairs (z_0, eps) with
       (-z_0, -eps)); then temperature: loss alpha (C_target - stopgrad(mean C)), gradient step on
       log alpha, so alpha rises while the mean control energy exceeds its target;
    3. Polyak update of the target critics (twin critic only).

    ``predict(obs, deterministic=True)`` runs the bridge with every noise set to zero (z_0 = 0,
    eps_k = 0), which is the authors' deterministic action, not the mean action.

    As an SB3 algorithm (README, "Using the algorithms with SB3 code"): the constructor takes
    SAC's arguments in SAC's order up to ``target_update_interval`` (``SoftGAC("MlpPolicy", env,
    1e-3)`` sets the learning rate); the rest, SAC's and SoftGAC's own, are keyword-only (SAC's
    ``target_entropy`` has no counterpart: the temperature follows ``target_control_energy``).
    ``use_sde=True`` is a ``ValueError`` (no gSDE). ``policy_kwargs`` stays as given
    (``critic_type`` is SoftGAC's saved attribute), so ``SoftGAC.load(path, env=env, **kwargs)``
    takes the constructor's keyword arguments. ``model.actor`` is the bridge and acts as the
    policy does: its ``predict(obs, deterministic=True)`` equals ``model.predict``'s.

    Args:
        policy: ``"MlpPolicy"`` or a :class:`SoftGACPolicy` subclass; the bridge's K and H are
            ``policy_kwargs`` ``n_bridge_steps`` (6) and ``bridge_hidden_size`` (256);
            ``input_layer_norm=False`` drops each step's input LayerNorm, which discards half of
            a 4-number input such as Pendulum's (:class:`SoftGACPolicy`).
            ``net_arch={"pi": [...], "qf": [...]}`` adds a state encoder (an MLP) in front of
            the bridge; a list ``net_arch`` is the critic's alone.
        env: the environment (continuous actions).
        learning_rate: actor and critic learning rate (3e-4, the authors').
        buffer_size, learning_starts, batch_size, tau, gamma, train_freq: as in SB3's SAC;
            defaults are the authors' schedule (learning starts 5000, batch 256).
        gradient_steps: gradient steps per rollout; with ``train_freq=1`` this is the
            update-to-data ratio (UTD; the authors' 2).
        action_noise, replay_buffer_class, replay_buffer_kwargs, optimize_memory_usage, n_steps:
            as in SB3's SAC.
        ent_coef: the temperature alpha: ``"auto"`` (learned, starting at 0.1), ``"auto_<x>"``
            (learned, starting at x), or a number (constant alpha; ``0.0`` is the alpha = 0
            ablation, no regulariser).
        ent_coef_lr: Adam learning rate of log alpha (1e-3, the authors'; not scheduled).
        target_control_energy: C_target for ``ent_coef="auto"``: ``"auto"`` (0.2 K d),
            ``"auto_<x>"`` (x K d) or a number.
        policy_delay: one actor and temperature update every ``policy_delay`` critic updates (2).
        n_particles: bridge paths per state in the actor loss (1).
        particle_scheme: ``"random"`` (independent paths) or ``"antithetic"``.
        critic_type: ``"twin"`` (SB3 twin critics, Polyak targets) or ``"crossq"`` (sb3-contrib's
            CrossQ critic: BatchRenorm, no target network, joint forward pass of (s, a) and
            (s', a')); passed on to the policy.
        target_update_interval: Polyak-update the target critics every this many gradient steps.
        log_volume_bonus: add alpha log|A| (|A| = 2^d, the volume of the tanh box) to the
            critic target's soft term, which becomes -alpha (C - log|A|), a lower bound of SAC's
            entropy bonus alpha H(pi), instead of the authors' -alpha C, a bound of
            -alpha KL(pi || uniform) (False, the authors'). The two differ by a constant per
            step, so they agree where episodes never terminate; where they do (the multi-goal
            envs end at a goal, Hopper when it falls) SAC's convention pays the agent for every
            step it stays, the authors' charges it. A maxbench option (README, deviations).
        target_reduction: how the critic target combines the twin critics at (s', a'):
            ``"min"`` (default; SAC's clipped double Q, as SB3's SAC, so SoftGAC and SAC are
            compared on the same critic) or ``"mean"`` (the authors': both critics learn the
            mean of the two, ``target_q = 0.5 * (target_q1 + target_q2)`` in
            ``common/crossq_c51.py``, ``update_crossq_c51_critic``, of
            ``skypitcher/soft_gac_jax``; arXiv 2605.08733). Both ``critic_type`` values honour
            it (with ``"crossq"`` the twin values at (s', a') come from the critic itself, as in
            the authors' CrossQ critic). The actor loss keeps min_k Q_k either way, as the
            authors' does (``twin_q_expectation`` in ``_update_actor_direct``).
        compile: compile the gradient step with ``torch.compile`` (keyword-only; off: the same
            step run eagerly, today's numbers; ``True``: inductor, CUDA graphs on a GPU; a
            string: that ``torch.compile`` backend, e.g. ``"aot_eager"``). On, the replay
            buffer defaults to the device-resident
            :class:`~maxbench.engine.replay.TensorReplayBuffer` (Box observations, ``n_steps=1``)
            and the optimisers to their multi-tensor kernels. A model saved compiled loads eager
            and the reverse (``SoftGAC.load(path, compile=...)``): ``compile`` is an attribute,
            the compiled function is rebuilt on demand.
        use_sde: must be False (SAC's argument; the bridge has no gSDE).
        sde_sample_freq, use_sde_at_warmup: SAC's arguments, without effect here.
        stats_window_size, tensorboard_log, policy_kwargs, verbose, seed, device,
            _init_setup_model: as in SB3 (TensorBoard runs are named ``SoftGAC_<n>``).

    Deviations from the authors' code (also in README's deviations table):

    * Critic: SB3-style twin MLP critics (2x256, ReLU) with Polyak targets (tau 0.005) by default,
      or sb3-contrib's CrossQ critic with ``critic_type="crossq"``; the authors use a CrossQ
      critic (2x2048, BatchRenorm) with twin C51 distributional heads (101 atoms, v in [-200,
      200], an entropy bonus on the atom distribution). A C51 head needs a value range per task;
      the point here is the actor, compared with SAC on the same critic.
    * Target actor: the authors keep a target actor with ``actor_tau = 1.0``, i.e. a copy of the
      actor refreshed after every actor update, which is the current actor when the critic uses
      it; maxbench samples s' paths from the current actor directly.
    * Replay: SB3's uniform replay buffer; the authors mix 20% of each batch from the 4096 most
      recent transitions (``mix_recent``), and slice one big batch into the UTD steps.
    * Hidden size: H = 256 by default (spec §3 for MuJoCo/Box2D); the authors' config file uses 512.
    * Base law: only the authors' default, the logistic z_0 = atanh(U) (their config also
      offers a standard normal z_0).
    * Options the authors do not have, both off by default: a state encoder in front of the
      bridge (``policy_kwargs: {net_arch: {pi: [...]}}``, :class:`BridgeActor`) and
      ``log_volume_bonus``; suites/softgac-multigoal.yaml turns both on (README, "Multi-goal
      checks", says why).
    * Twin target: the authors train both critics on the mean of the two critics' C51
      distributions at (s', a') (``common/crossq_c51.py``: the mixture of the two projected
      targets, whose expectation is the mean of the two expectations); maxbench takes SAC's min
      by default, ``target_reduction="mean"`` gives the authors' mean (of the two values).
    * Optimizers: Adam (lr 3e-4) for actor and critic as in SB3, the fused kernel by default; the
      authors' critic Adam has beta1 = 0.5 (CrossQ's), which maxbench uses with
      ``critic_type="crossq"`` (for actor and critic, as sb3-contrib's CrossQ does).

    Not a deviation, but unlike SB3's SAC: the order inside a gradient step is the authors'
    (critic, then actor, then alpha, all with the alpha read at the start of the step); SAC
    updates alpha first.
    """

    policy_aliases: ClassVar[dict[str, type[BasePolicy]]] = {"MlpPolicy": MlpPolicy}
    policy: SoftGACPolicy
    actor: BridgeActor

    def __init__(
        self,
        policy: str | type[SoftGACPolicy],
        env: GymEnv | str,
        learning_rate: float | Schedule = 3e-4,
        buffer_size: int = 1_000_000,
        learning_starts: int = 5000,
        batch_size: int = 256,
        tau: float = 0.005,
        gamma: float = 0.99,
        train_freq: int | tuple[int, str] = 1,
        gradient_steps: int = 2,
        action_noise: ActionNoise | None = None,
        replay_buffer_class: type[ReplayBuffer] | None = None,
        replay_buffer_kwargs: dict[str, Any] | None = None,
        optimize_memory_usage: bool = False,
        n_steps: int = 1,
        ent_coef: str | float = "auto",
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
        device: torch.device | str = "auto",
        _init_setup_model: bool = True,
        ent_coef_lr: float = 1e-3,
        target_control_energy: str | float = "auto",
        policy_delay: int = 2,
        n_particles: int = 1,
        particle_scheme: str = "random",
        critic_type: str = "twin",
        log_volume_bonus: bool = False,
        target_reduction: str = "min",
        compile: bool | str = False,  # noqa: A002  (torch.compile's own word)
    ) -> None:
        reject_gsde("SoftGAC", use_sde)
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
        if critic_type not in CRITIC_TYPES:
            raise ValueError(f"unknown critic_type '{critic_type}'; use one of {CRITIC_TYPES}")
        if particle_scheme not in PARTICLE_SCHEMES:
            raise ValueError(
                f"unknown particle_scheme '{particle_scheme}'; use one of {PARTICLE_SCHEMES}"
            )
        _check_target_reduction(target_reduction)
        if n_particles < 1 or policy_delay < 1:
            raise ValueError("n_particles and policy_delay must be >= 1")
        given = self.policy_kwargs.get("critic_type", critic_type)
        if given != critic_type:
            raise ValueError(
                f"critic_type '{critic_type}' and policy_kwargs critic_type '{given}' disagree"
            )
        # Handed to the policy by _policy_build_kwargs; policy_kwargs stays as given.
        self.critic_type = critic_type
        self.ent_coef = ent_coef
        self.ent_coef_lr = ent_coef_lr
        self.target_control_energy = target_control_energy
        self.policy_delay = policy_delay
        self.n_particles = n_particles
        self.particle_scheme = particle_scheme
        self.target_update_interval = target_update_interval
        self.log_volume_bonus = log_volume_bonus
        self.target_reduction = target_reduction
        self.log_ent_coef: torch.Tensor | None = None
        self.ent_coef_optimizer: torch.optim.Adam | None = None
        if _init_setup_model:
            self._setup_model()

    # -- set-up ---------------------------------------------------------------------------------
    def _policy_build_kwargs(self) -> dict[str, Any]:
        return {**super()._policy_build_kwargs(), "critic_type": self.critic_type}

    def _setup_model(self) -> None:
        reject_gsde("SoftGAC", self.use_sde)
        # Again here: SoftGAC.load(path, target_reduction=...) sets the attribute directly.
        _check_target_reduction(self.target_reduction)
        super()._setup_model()
        self._create_aliases()
        self.control_energy_target = self._resolve_energy_target()
        #: log|A| of the tanh box [-1, 1]^d, added to the soft target with log_volume_bonus.
        self.log_action_volume = int(np.prod(self.action_space.shape)) * math.log(2.0)
        if self.critic_target is not None:
            self.batch_norm_stats = get_parameters_by_name(self.critic, ["running_"])
            self.batch_norm_stats_target = get_parameters_by_name(self.critic_target, ["running_"])
        if isinstance(self.ent_coef, str):
            if not self.ent_coef.startswith("auto"):
                raise ValueError(
                    f"ent_coef must be 'auto', 'auto_<x>' or a number (got {self.ent_coef})"
                )
            initial = DEFAULT_INITIAL_ALPHA
            if "_" in self.ent_coef:
                initial = float(self.ent_coef.split("_", 1)[1])
            if initial <= 0.0:
                raise ValueError("the initial value of a learned ent_coef must be > 0")
            self.log_ent_coef = torch.log(
                torch.full((1,), initial, device=self.device)
            ).requires_grad_(True)
            self.ent_coef_optimizer = torch.optim.Adam([self.log_ent_coef], lr=self.ent_coef_lr)
        else:
            if float(self.ent_coef) < 0.0:
                raise ValueError(f"a constant ent_coef must be >= 0 (got {self.ent_coef})")
            self.ent_coef_tensor = torch.tensor(float(self.ent_coef), device=self.device)

    def _resolve_energy_target(self) -> float:
        """C_target: ``"auto"`` = 0.2 K d, ``"auto_<x>"`` = x K d, or the number given."""
        steps_times_dims = self.actor.n_bridge_steps * int(np.prod(self.action_space.shape))
        value = self.target_control_energy
        if isinstance(value, str):
            if not value.startswith("auto"):
                raise ValueError(
                    f"target_control_energy must be 'auto', 'auto_<x>' or a number ({value})"
                )
            per_step_and_dim = DEFAULT_ENERGY_PER_STEP_AND_DIM
            if "_" in value:
                per_step_and_dim = float(value.split("_", 1)[1])
            return per_step_and_dim * steps_times_dims
        return float(value)

    def _create_aliases(self) -> None:
        self.actor = self.policy.actor
        self.critic = self.policy.critic
        self.critic_target = self.policy.critic_target

    # -- one gradient step's pieces --------------------------------------------------------------
    def current_alpha(self) -> torch.Tensor:
        """The temperature alpha, detached (a scalar tensor)."""
        if self.log_ent_coef is not None:
            return torch.exp(self.log_ent_coef.detach()).squeeze()
        return self.ent_coef_tensor

    def _combine_twin_targets(self, next_q: torch.Tensor) -> torch.Tensor:
        """The twin critics' values at (s', a'), shape (n, 2), combined per row into (n, 1).

        ``"min"``: SAC's clipped double Q; ``"mean"``: the authors' (see ``target_reduction``).
        """
        if self.target_reduction == "mean":
            return next_q.mean(dim=1, keepdim=True)
        return torch.min(next_q, dim=1, keepdim=True).values

    def _critic_loss(self, replay_data: Any, alpha: torch.Tensor) -> torch.Tensor:
        """Twin-critic MSE to r + gamma (1 - d)(min Qbar(s', a') - alpha C(s', tau')) (spec §3).

        With ``log_volume_bonus`` the soft term is -alpha (C(s', tau') - log|A|); with
        ``target_reduction="mean"`` the twin values are averaged instead of minimised.
        """
        discounts = replay_data.discounts if replay_data.discounts is not None else self.gamma
        return self._critic_loss_of(
            replay_data.observations,
            replay_data.actions,
            replay_data.next_observations,
            replay_data.rewards,
            replay_data.dones,
            discounts,
            alpha,
        )

    def _critic_loss_of(
        self,
        observations: PyTorchObs,
        actions: torch.Tensor,
        next_observations: PyTorchObs,
        rewards: torch.Tensor,
        dones: torch.Tensor,
        discounts: torch.Tensor | float,
        alpha: torch.Tensor,
    ) -> torch.Tensor:
        """:meth:`_critic_loss` on the batch's tensors (``discounts``: gamma or gamma^n)."""
        with torch.no_grad():
            next_path = self.actor.sample_path(next_observations)
            next_actions = torch.tanh(next_path.final_latent)
            next_energy = control_energy(next_path).reshape(-1, 1)
            if self.log_volume_bonus:
                next_energy = next_energy - self.log_action_volume
        if self.critic_target is not None:
            with torch.no_grad():
                next_q = torch.cat(self.critic_target(next_observations, next_actions), dim=1)
            current_q = self.critic(observations, actions)
        else:
            # CrossQ (sb3-contrib's crossq.py): one forward pass over (s, a) and (s', a') in
            # train mode, so that BatchRenorm sees the mixture of both; no target network.
            batch = actions.shape[0]
            all_obs = _concat_obs(observations, next_observations)
            all_actions = torch.cat([actions, next_actions], dim=0)
            self.critic.set_bn_training_mode(True)
            all_q = torch.cat(self.critic(all_obs, all_actions), dim=1)
            self.critic.set_bn_training_mode(False)
            current_all, next_q = torch.split(all_q, batch, dim=0)
            current_q = tuple(current_all.T[..., None])
            next_q = next_q.detach()
        with torch.no_grad():
            next_soft_q = self._combine_twin_targets(next_q) - alpha * next_energy
            target_q = rewards + (1 - dones) * discounts * next_soft_q
        return 0.5 * sum(F.mse_loss(q, target_q) for q in current_q)

    def _actor_loss(
        self, observations: PyTorchObs, alpha: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """E[alpha C(s, tau) - min_k Q_k(s, a)] over the paths, and the mean C (spec §3)."""
        path = self.actor.sample_path(observations, self.n_particles, self.particle_scheme)
        actions = torch.tanh(path.final_latent)
        energy = control_energy(path)
        if self.critic_type == "crossq":
            self.critic.set_bn_training_mode(False)
        # The critics read as constants: the actor learns from this loss, the critics do not.
        repeated = _repeat_rows(observations, self.n_particles)
        q_values = torch.cat(constant_weights_call(self.critic, repeated, actions), 1)
        min_q = torch.min(q_values, dim=1).values
        return (alpha * energy - min_q).mean(), energy.mean()

    def temperature_loss(self, mean_energy: torch.Tensor) -> torch.Tensor | None:
        """alpha (C_target - stopgrad(mean C)) with alpha = exp(log alpha) (spec §3).

        Its gradient in log alpha is alpha (C_target - mean C): a descent step raises alpha when
        the mean control energy exceeds the target and lowers it otherwise. ``None`` when alpha
        is constant.
        """
        if self.log_ent_coef is None:
            return None
        alpha = torch.exp(self.log_ent_coef)
        return (alpha * (self.control_energy_target - mean_energy.detach())).mean()

    def _temperature_step(self, mean_energy: torch.Tensor) -> torch.Tensor:
        """One optimiser step of log alpha on :meth:`temperature_loss`; returns the loss value.

        The gradient is set by hand, d/dlog alpha [alpha (C_target - mean C)] =
        alpha (C_target - mean C) (spec §3), the very product autograd forms (bit for bit), so
        no backward pass is needed. Zero, with no step, when alpha is constant.
        """
        if self.log_ent_coef is None or self.ent_coef_optimizer is None:
            return torch.zeros((), device=mean_energy.device)
        alpha = torch.exp(self.log_ent_coef.detach())
        gap = self.control_energy_target - mean_energy.detach()
        self.set_gradient(self.log_ent_coef, alpha * gap)  # replaces the last: no zero_grad
        self.step_optimizer(self.ent_coef_optimizer)
        return (alpha * gap).mean()

    def _gradient_step(
        self,
        observations: PyTorchObs,
        actions: torch.Tensor,
        next_observations: PyTorchObs,
        rewards: torch.Tensor,
        dones: torch.Tensor,
        discounts: torch.Tensor,
        update_actor: bool,
    ) -> torch.Tensor:
        """One SoftGAC gradient step (the class docstring's steps 1 and 2) on one batch.

        The authors' order, every part with the alpha read at the start: the critic step, then
        (``update_actor``) the actor step on E[alpha C - min_k Q_k] (gradients into the actor
        only) and the temperature step. The random draws are those of the eager step before
        issue 14: the s' paths' noise, then the actor paths'. Returns the logged values,
        [alpha, critic loss] or, with ``update_actor``, [alpha, critic loss, actor loss,
        mean C, temperature loss] (the last 0 for a constant alpha). Run as it is or compiled
        (:meth:`~maxbench.engine.options.Compilable.compiled`): no host synchronisation.
        """
        alpha = self.current_alpha()
        critic_loss = self.gradients_into(
            "critic",
            lambda: self._critic_loss_of(
                observations, actions, next_observations, rewards, dones, discounts, alpha
            ),
            # CrossQ's BatchRenorm updates its statistics from learned layers' outputs,
            # which a function transform refuses: that critic keeps ``backward``
            transform=self.critic_type != "crossq",
        )
        if self.critic_type == "crossq":
            self.critic.optimizer.step()  # after a backward: torch's own graph breaks
        else:
            self.step_optimizer(self.critic.optimizer)
        if not update_actor:
            return torch.stack([alpha.reshape(()), critic_loss.detach()])
        # Gradients into the actor only: the critic's weight gradients are not needed.
        actor_loss, mean_energy = self.gradients_into(
            "actor", lambda: self._actor_loss(observations, alpha), has_aux=True
        )
        self.step_optimizer(self.actor.optimizer)
        alpha_loss = self._temperature_step(mean_energy)
        return torch.stack(
            [
                alpha.reshape(()),
                critic_loss.detach(),
                actor_loss.detach(),
                mean_energy.detach(),
                alpha_loss.reshape(()),
            ]
        )

    # -- the training loop ----------------------------------------------------------------------
    def train(self, gradient_steps: int, batch_size: int = 64) -> None:
        """``gradient_steps`` SoftGAC updates (see the class docstring); logs read once."""
        self.policy.set_training_mode(True)
        self._update_learning_rate([self.actor.optimizer, self.critic.optimizer])
        self.prepare_gradients("critic", "actor", "log_ent_coef")
        # CrossQ's critic takes its gradient by ``backward`` (see _gradient_step)
        transforms_only = self.critic_type != "crossq"
        step = self.compiled("gradient_step", self._gradient_step, transforms_only)
        means = DeviceMeans()
        for _ in range(gradient_steps):
            self._n_updates += 1
            replay_data = self.replay_buffer.sample(batch_size, env=self._vec_normalize_env)  # type: ignore[union-attr]
            discounts = replay_data.discounts
            update_actor = self._n_updates % self.policy_delay == 0
            logged = step(
                replay_data.observations,
                replay_data.actions,
                replay_data.next_observations,
                replay_data.rewards,
                replay_data.dones,
                self.gamma_tensor() if discounts is None else discounts,
                update_actor,
            )
            means.add("train/ent_coef", logged[0])
            means.add("train/critic_loss", logged[1])
            if update_actor:
                means.add("train/actor_loss", logged[2])
                means.add("train/control_energy", logged[3])
                if self.ent_coef_optimizer is not None:
                    means.add("train/ent_coef_loss", logged[4])
            if self.critic_target is not None and (
                self._n_updates % self.target_update_interval == 0
            ):
                self._update_target_critic()

        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        self.logger.record("train/target_control_energy", self.control_energy_target)
        for name, value in means.read().items():
            self.logger.record(name, value)

    def _update_target_critic(self) -> None:
        """Polyak update of the target critics (step 3); the BatchNorm statistics copied.

        Eager, SB3's ``polyak_update`` (today's numbers); compiled, the same average as one
        multi-tensor ``_foreach_lerp_`` (:func:`~maxbench.engine.compiled.polyak_`).
        """
        assert self.critic_target is not None
        if self.compile is False:
            polyak_update(self.critic.parameters(), self.critic_target.parameters(), self.tau)
        else:
            polyak_(self.critic.parameters(), self.critic_target.parameters(), self.tau)
        polyak_update(self.batch_norm_stats, self.batch_norm_stats_target, 1.0)

    # -- saving ---------------------------------------------------------------------------------
    def _excluded_save_params(self) -> list[str]:
        return [
            *super()._excluded_save_params(),
            "actor",
            "critic",
            "critic_target",
        ]

    def _get_torch_save_params(self) -> tuple[list[str], list[str]]:
        state_dicts = ["policy", "actor.optimizer", "critic.optimizer"]
        if self.ent_coef_optimizer is not None:
            state_dicts.append("ent_coef_optimizer")
            return state_dicts, ["log_ent_coef"]
        return state_dicts, ["ent_coef_tensor"]


def _check_target_reduction(value: str) -> None:
    """Raise ``ValueError`` unless ``value`` is one of :data:`TARGET_REDUCTIONS`."""
    if value not in TARGET_REDUCTIONS:
        raise ValueError(f"unknown target_reduction {value!r}; use one of {TARGET_REDUCTIONS}")


def _concat_obs(first: PyTorchObs, second: PyTorchObs) -> PyTorchObs:
    """Stack two observation batches along dim 0 (tensors or dicts of tensors)."""
    if isinstance(first, dict):
        return {key: torch.cat([first[key], second[key]], dim=0) for key in first}
    return torch.cat([first, second], dim=0)
