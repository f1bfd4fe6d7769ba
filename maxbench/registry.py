"""Algorithm registry: a name in a suite file -> an SB3-compatible algorithm class.

Names are maxbench's own algorithms, stable-baselines3's and sb3-contrib's stock ones (in the
spirit of rl-baselines3-zoo's ``ALGOS``), and any ``"module:Class"`` that follows SB3's API.
Classes are imported lazily, so listing names costs nothing.
"""

from __future__ import annotations

import importlib
import inspect
import re
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
    # The S2AC authors' multi-goal command (their README: --actor svgd_nonparam --svgd_steps 10
    # --a_c 0.2 --a_a 0.2 --train_action_selection random --test_action_selection softmax) with
    # STAC/main.py's defaults for everything else; the class defaults already are those defaults
    # (3x256 ELU sampler, 2x256 ELU critics, batch 100, lr 1e-3, Polyak 0.995, updates from 1000,
    # 50 every 50, m 10, eps 0.1, p0 std 0.5, 10 000 random steps). Test-time softmax selection
    # is predict(deterministic=True); training acts with a random particle, as theirs.
    "s2ac-authors-multigoal": AlgorithmEntry(
        "maxbench.algos.s2ac:S2AC",
        preset={
            "init": "fixed",
            "init_std": 0.5,
            "svgd_steps": 10,
            "energy_on": "pre_tanh",
            "sampler_temperature": 1.0,
            "ent_coef": 0.2,
            "action_selection": "softmax",
            "random_exploration_steps": 10_000,
        },
        summary="S2AC(phi) with the S2AC authors' multi-goal command (README: deviations)",
    ),
    "bsac": AlgorithmEntry(
        "maxbench.algos.bsac:BSAC", summary="Bidirectional SAC (a documented reconstruction)"
    ),
    "softgac": AlgorithmEntry(
        "maxbench.algos.softgac:SoftGAC", summary="SoftGAC: stochastic-bridge generative actor"
    ),
    "sql": AlgorithmEntry(
        "maxbench.algos.sql:SQL",
        summary="Soft Q-Learning (Haarnoja 2017): uniform-action soft value, SB3's defaults",
    ),
    # The S2AC authors' SQL (STAC/main.py defaults, --actor svgd_sql; SQL's class docstring).
    "sql-s2ac": AlgorithmEntry(
        "maxbench.algos.sql:SQL",
        preset={
            "value_estimator": "particles",
            "sampler_temperature": 1.0,
            "stein_draws": "independent",
            "value_n_particles": 10,
            "kernel_n_particles": 10,
            "ent_coef": 0.2,
            "learning_rate": 1e-3,
            "batch_size": 100,
            "tau": 0.005,
            "target_update_interval": 1,
            "gamma": 0.99,
            "buffer_size": 1_000_000,
            "learning_starts": 1000,
            "random_exploration_steps": 10_000,
            "train_freq": 50,
            "gradient_steps": 50,
            "policy_kwargs": {
                "net_arch": {"pi": [256, 256, 256], "qf": [256, 256]},
                "n_eval_particles": 10,
                "action_selection": "softmax",
                "selection_temperature": 1.0,
            },
        },
        summary="SQL with the S2AC authors' settings and soft value (differences: README)",
    ),
    "sac-engine": AlgorithmEntry(
        "maxbench.algos.engine_sac:EngineSAC",
        summary="SB3's SAC mathematics on maxbench's engine (device replay, compile option)",
    ),
    "sac-nf": AlgorithmEntry(
        "maxbench.algos.sacnf:SACNF", summary="SAC with a normalizing-flow policy"
    ),
}

# Constructor arguments that the runner sets itself; a suite may not set them.
RESERVED_ARGUMENTS = ("policy", "env", "seed", "_init_setup_model")
# Constructor arguments that name a place to write: a cell writes only inside its own folder.
PATH_ARGUMENTS = ("tensorboard_log",)

_SB3_API = ("learn", "predict", "save", "load")
_DOTTED_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*\Z")


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def import_target(target: str, what: str = "target") -> Any:
    """Import ``"module:attribute"`` (the attribute may be dotted: ``module:Outer.Inner``).

    Anything wrong is a one-line :class:`UserInputError`: a target without exactly one ':', an
    empty, relative or malformed module or attribute, a module that is missing or that raises
    anything at all while importing, a missing attribute. ``what`` names the target's role
    ("wrapper", "algorithm", ...) in the messages.
    """
    if not isinstance(target, str) or target.count(":") != 1:
        raise UserInputError(
            f"{what} {target!r} must be written 'module:Class', "
            "e.g. 'gymnasium.wrappers:ClipAction'"
        )
    module_name, _, attribute = target.partition(":")
    if not module_name:
        raise UserInputError(f"{what} {target!r}: the module before ':' is empty")
    if module_name.startswith("."):
        raise UserInputError(
            f"{what} {target!r}: relative module {module_name!r}; write the absolute module path"
        )
    if not _DOTTED_NAME.match(module_name):
        raise UserInputError(
            f"{what} {target!r}: {module_name!r} before ':' is not a module name "
            "(write 'package.module:Class')"
        )
    if not _DOTTED_NAME.match(attribute):
        raise UserInputError(
            f"{what} {target!r}: {attribute!r} after ':' is not a class name "
            "(write 'package.module:Class')"
        )
    value: Any = import_module(module_name, target)
    for part in attribute.split("."):
        try:
            value = getattr(value, part)
        except Exception:  # AttributeError, or whatever a module's __getattr__ raises
            raise UserInputError(
                f"module '{module_name}' has no attribute '{attribute}' (for '{target}')"
            ) from None
    return value


def import_module(module_name: str, target: str) -> Any:
    """Import ``module_name`` (needed by ``target``); any failure is a one-line UserInputError."""
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        raise UserInputError(
            f"cannot import module '{module_name}' (for '{target}'): {_one_line(err)}"
        ) from None
    except (Exception, SystemExit) as err:  # a module may raise anything while it imports
        raise UserInputError(
            f"cannot import module '{module_name}' (for '{target}'): importing it raised "
            f"{type(err).__name__}: {_one_line(err)}"
        ) from None


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
        cls = import_target(name, what="algorithm")
        missing = [attr for attr in _SB3_API if not hasattr(cls, attr)]
        if not inspect.isclass(cls) or missing:
            raise UserInputError(
                f"{name!r} does not follow the stable-baselines3 API "
                f"(missing: {', '.join(missing) or 'not a class'})"
            )
        return cls, {}
    raise UserInputError(
        f"unknown algorithm {name!r}{close_match_hint(key, ALGORITHMS)}; "
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
    """Raise :class:`UserInputError` for a hyperparameter ``cls``'s constructor does not take,
    one that maxbench sets itself, or one that would write outside the cell's folder."""
    accepted = constructor_arguments(cls)
    for name in hyperparams:
        if name == "device":
            raise UserInputError(
                "hyperparameter 'device' is set by the suite's 'device' key (or the algorithm's): "
                "device: cuda, beside 'seeds' or 'algo'"
            )
        if name in RESERVED_ARGUMENTS:
            raise UserInputError(
                f"hyperparameter {name!r} is set by maxbench (policy, env and seed come from the "
                "suite's 'policy', 'environments' and 'seeds' keys)"
            )
        if name in PATH_ARGUMENTS and hyperparams[name] is not None:
            raise UserInputError(
                f"hyperparameter {name!r} would write outside the results folder; maxbench keeps "
                "each cell's logs in its own folder (<cell>/sb3/, <cell>/train.log)"
            )
        if accepted is not None and name not in accepted:
            allowed = sorted(accepted - set(RESERVED_ARGUMENTS) - set(PATH_ARGUMENTS))
            raise UserInputError(
                f"{cls.__name__} does not accept hyperparameter {name!r}"
                f"{close_match_hint(name, allowed)}; accepted: {', '.join(allowed)}"
            )


def registered_names() -> list[str]:
    """All registered algorithm names, sorted."""
    return sorted(ALGORITHMS)
