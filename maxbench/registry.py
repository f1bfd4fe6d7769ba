"""Algorithm registry: a name in a suite file -> an SB3-compatible algorithm class.

Names are maxbench's own algorithms, stable-baselines3's and sb3-contrib's stock ones (in the
spirit of rl-baselines3-zoo's ``ALGOS``), and any ``"module:Class"`` that follows SB3's API.
Classes are imported lazily, so listing names costs nothing.
"""

from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass, field
from typing import Any

from maxbench.errors import UserInputError, close_match_hint


@dataclass(frozen=True)
class AlgorithmEntry:
    """Where an algorithm lives and the keyword arguments its preset fixes."""

    target: str
    preset: dict[str, Any] = field(default_factory=dict)
    summary: str = ""


ALGORITHMS: dict[str, AlgorithmEntry] = {
    "sac": AlgorithmEntry("stable_baselines3:SAC", summary="Soft Actor-Critic (stable-baselines3)"),
    "td3": AlgorithmEntry("stable_baselines3:TD3", summary="Twin Delayed DDPG (stable-baselines3)"),
    "ddpg": AlgorithmEntry("stable_baselines3:DDPG", summary="DDPG (stable-baselines3)"),
    "ppo": AlgorithmEntry("stable_baselines3:PPO", summary="PPO (stable-baselines3)"),
    "a2c": AlgorithmEntry("stable_baselines3:A2C", summary="A2C (stable-baselines3)"),
    "tqc": AlgorithmEntry("sb3_contrib:TQC", summary="Truncated Quantile Critics (sb3-contrib)"),
    "crossq": AlgorithmEntry("sb3_contrib:CrossQ", summary="CrossQ (sb3-contrib)"),
    # maxbench's own (spec/algorithms.md): the novel actors and the papers' baselines.
    "s2ac": AlgorithmEntry(
        "maxbench.algos.s2ac:S2AC", summary="Stein Soft Actor-Critic, S2AC(phi,theta)"
    ),
    "s2ac-fixed": AlgorithmEntry(
        "maxbench.algos.s2ac:S2AC",
        preset={"init": "fixed"},
        summary="S2AC(phi): fixed initial distribution",
    ),
    "s2ac-amortized": AlgorithmEntry(
        "maxbench.algos.s2ac:S2AC",
        preset={"amortized": True},
        summary="S2AC(phi,theta,psi): amortised sampler at test time",
    ),
    "bsac": AlgorithmEntry(
        "maxbench.algos.bsac:BSAC", summary="Bidirectional SAC (a documented reconstruction)"
    ),
    "softgac": AlgorithmEntry(
        "maxbench.algos.softgac:SoftGAC", summary="SoftGAC: stochastic-bridge generative actor"
    ),
    "sql": AlgorithmEntry("maxbench.algos.sql:SQL", summary="Soft Q-Learning (Haarnoja 2017)"),
    "sac-nf": AlgorithmEntry(
        "maxbench.algos.sacnf:SACNF", summary="SAC with a normalizing-flow policy"
    ),
}

# Constructor arguments that the runner sets itself; a suite may not set them.
RESERVED_ARGUMENTS = ("policy", "env", "seed", "_init_setup_model")

_SB3_API = ("learn", "predict", "save", "load")


def import_target(target: str) -> Any:
    """Import ``"module:attribute"``; a missing module or attribute is a UserInputError."""
    module_name, _, attribute = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise UserInputError(
            f"cannot import module '{module_name}' (for '{target}'): {err}"
        ) from None
    try:
        return getattr(module, attribute)
    except AttributeError:
        raise UserInputError(f"module '{module_name}' has no attribute '{attribute}'") from None


def resolve_algorithm(name: str) -> tuple[type, dict[str, Any]]:
    """Return the algorithm class for ``name`` and the preset keyword arguments it implies.

    ``name`` is a registered name (case-insensitive) or ``"module:Class"``.
    Raises :class:`UserInputError` with a close match for unknown names.
    """
    key = name.lower()
    if key in ALGORITHMS:
        entry = ALGORITHMS[key]
        return import_target(entry.target), dict(entry.preset)
    if ":" in name:
        cls = import_target(name)
        missing = [attr for attr in _SB3_API if not hasattr(cls, attr)]
        if not inspect.isclass(cls) or missing:
            raise UserInputError(
                f"'{name}' does not follow the stable-baselines3 API "
                f"(missing: {', '.join(missing) or 'not a class'})"
            )
        return cls, {}
    raise UserInputError(
        f"unknown algorithm '{name}'{close_match_hint(key, ALGORITHMS)}; "
        f"known: {', '.join(sorted(ALGORITHMS))}, or 'module:Class' with the SB3 API"
    )


def constructor_arguments(cls: type) -> set[str] | None:
    """Names the algorithm's constructor accepts, or None if it takes arbitrary ``**kwargs``.

    Walks the MRO while a constructor forwards ``**kwargs`` to its parent.
    """
    names: set[str] = set()
    for klass in cls.__mro__:
        if "__init__" not in vars(klass):
            continue
        parameters = inspect.signature(klass.__init__).parameters.values()
        names.update(
            p.name
            for p in parameters
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name != "self"
        )
        if not any(p.kind is p.VAR_KEYWORD for p in parameters):
            return names
        if klass is object:
            break
    return None


def check_hyperparameters(cls: type, hyperparams: dict[str, Any]) -> None:
    """Raise :class:`UserInputError` for a hyperparameter ``cls``'s constructor does not take."""
    accepted = constructor_arguments(cls)
    for name in hyperparams:
        if name in RESERVED_ARGUMENTS:
            raise UserInputError(
                f"hyperparameter '{name}' is set by maxbench (policy, env and seed come from the "
                "suite's 'policy', 'environments' and 'seeds' keys)"
            )
        if accepted is not None and name not in accepted:
            allowed = sorted(accepted - set(RESERVED_ARGUMENTS))
            raise UserInputError(
                f"{cls.__name__} does not accept hyperparameter '{name}'"
                f"{close_match_hint(name, allowed)}; accepted: {', '.join(allowed)}"
            )


def registered_names() -> list[str]:
    """All registered algorithm names, sorted."""
    return sorted(ALGORITHMS)
