"""What maxbench's algorithms share to behave like SB3's own where an SB3 user relies on it.

* :class:`PolicyKwargsAsGiven`: ``policy_kwargs`` stays exactly what the caller passed, so that
  ``Algo.load(path, env=env, **kwargs)`` with the constructor's own ``kwargs`` works (SB3's
  ``load`` refuses a model whose saved ``policy_kwargs`` differ from the given ones). Options an
  algorithm derives for its policy (BSAC's ``use_vdn``, S2AC's sampler options, ...) are the
  algorithm's own saved attributes, merged in only while the policy is built.
* :class:`SACVariant`: the base of maxbench's SAC subclasses (BSAC, SAC-NF): SAC's constructor,
  argument for argument and in SAC's order, with the two properties above and a TensorBoard run
  named after the class.
* :func:`reject_gsde`: the one error for ``use_sde=True`` where the actor has no gSDE.
"""

from __future__ import annotations

import io
import pathlib
from typing import Any

import torch as th
from stable_baselines3 import SAC
from stable_baselines3.common.buffers import ReplayBuffer
from stable_baselines3.common.noise import ActionNoise
from stable_baselines3.common.type_aliases import GymEnv, Schedule

from maxbench.algos.class_named_logs import ClassNamedLogs

__all__ = ["PolicyKwargsAsGiven", "SACVariant", "reject_gsde"]


def reject_gsde(algorithm: str, use_sde: bool) -> None:
    """Raise ``ValueError`` for ``use_sde=True``: ``algorithm``'s actor has no gSDE.

    SAC's ``use_sde``, ``sde_sample_freq`` and ``use_sde_at_warmup`` are accepted (so that SAC's
    hyperparameter sets can be reused as they are); only gSDE itself is refused.
    """
    if use_sde:
        raise ValueError(
            f"{algorithm} does not support gSDE (use_sde=True): gSDE needs SAC's Gaussian actor; "
            "use use_sde=False (the default)"
        )


class PolicyKwargsAsGiven:
    """Mixin (before the SB3 base class): ``self.policy_kwargs`` is what the caller passed.

    SB3 saves ``policy_kwargs`` with the model and ``load(path, policy_kwargs=...)`` compares
    the given dict with the saved one; an algorithm that added its own keys to it could not be
    loaded with the keyword arguments it was built with. Subclasses override
    :meth:`_policy_build_kwargs` to add the options they derive; the policy is built with them,
    and ``self.policy_kwargs`` is put back as given right after.
    """

    policy_kwargs: dict[str, Any]

    @classmethod
    def load(  # type: ignore[override]
        cls,
        path: str | pathlib.Path | io.BufferedIOBase,
        env: GymEnv | None = None,
        device: th.device | str = "auto",
        custom_objects: dict[str, Any] | None = None,
        print_system_info: bool = False,
        force_reset: bool = True,
        **kwargs: Any,
    ) -> Any:
        """SB3's ``load``; ``policy_kwargs=None`` means ``{}``, as in the constructor."""
        if "policy_kwargs" in kwargs and kwargs["policy_kwargs"] is None:
            kwargs["policy_kwargs"] = {}
        return super().load(  # type: ignore[misc]
            path, env, device, custom_objects, print_system_info, force_reset, **kwargs
        )

    def _policy_build_kwargs(self) -> dict[str, Any]:
        """The policy's keyword arguments: ``policy_kwargs`` and the derived options."""
        return dict(self.policy_kwargs)

    def _setup_model(self) -> None:
        given = self.policy_kwargs
        self.policy_kwargs = self._policy_build_kwargs()
        try:
            super()._setup_model()  # type: ignore[misc]
        finally:
            self.policy_kwargs = given


class SACVariant(ClassNamedLogs, PolicyKwargsAsGiven, SAC):
    """SB3's SAC with ``policy_kwargs`` kept as given and a class-named TensorBoard run.

    The constructor is SAC's, argument for argument, defaults included. SAC itself adds
    ``use_sde`` to the caller's ``policy_kwargs`` (in place); here the policy receives it from
    :meth:`_policy_build_kwargs` and the caller's dict is left alone. Subclasses add their own
    options as keyword-only arguments after SAC's.
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
    ) -> None:
        given = {} if policy_kwargs is None else dict(policy_kwargs)
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
            dict(given),  # SAC adds use_sde to the dict it is given: a copy takes it
            verbose,
            seed,
            device,
            _init_setup_model=False,
        )
        self.policy_kwargs = given
        if _init_setup_model:
            self._setup_model()

    def _policy_build_kwargs(self) -> dict[str, Any]:
        return {**super()._policy_build_kwargs(), "use_sde": self.use_sde}
