"""Turn YAML hyperparameters into the Python objects SB3 constructors take, or say why not.

The conversions follow rl-baselines3-zoo's conventions where it has one:
``lin_3e-4`` is a linear schedule from 3e-4 to 0; ``activation_fn: elu`` (or ``torch.nn.ELU``)
inside ``policy_kwargs`` is the class; ``train_freq: [1, episode]`` becomes a tuple;
``action_noise: {type: normal, sigma: 0.1}`` becomes SB3's action-noise object for the env's
action size.

Every malformed value is a one-line :class:`UserInputError` naming the key, never a traceback.
With the algorithm class, a value of the wrong type for an argument annotated plainly ``int``,
``float`` or ``bool`` is refused too (``gamma: fast``, ``batch_size: "64"``, ``use_sde: 1``): SB3
would store it and fail only in the middle of training.
"""

from __future__ import annotations

import copy
import inspect
import math
from typing import Any

from maxbench.errors import UserInputError, close_match_hint
from maxbench.suite.model import show_value

ACTIVATIONS = {
    "relu": "ReLU",
    "tanh": "Tanh",
    "elu": "ELU",
    "leaky_relu": "LeakyReLU",
    "gelu": "GELU",
    "silu": "SiLU",
    "selu": "SELU",
}
NOISE_TYPES = ("normal", "ornstein-uhlenbeck")
NOISE_KEYS = ("type", "sigma")
TRAIN_FREQ_UNITS = ("step", "episode")
_CLASS_KWARGS = ("activation_fn", "optimizer_class", "features_extractor_class")
_SCHEDULABLE = ("learning_rate", "clip_range", "clip_range_vf")
# stable-baselines3's meaning of these arguments bounds them (inclusive; None: no bound). A value
# outside would be accepted by the constructor and fail or misbehave in the middle of training.
SB3_RANGES: dict[str, tuple[float | None, float | None]] = {
    "buffer_size": (1, None),
    "batch_size": (1, None),
    "n_steps": (1, None),
    "n_epochs": (1, None),
    "learning_starts": (0, None),
    "target_update_interval": (1, None),
    "policy_delay": (1, None),
    "gradient_steps": (-1, None),
    "sde_sample_freq": (-1, None),
    "gamma": (0, 1),
    "tau": (0, 1),
    "gae_lambda": (0, 1),
    "learning_rate": (0, None),
    "clip_range": (0, None),
    "ent_coef": (0, None),
    "vf_coef": (0, None),
    "max_grad_norm": (0, None),
}


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _resolve_class(key: str, value: Any) -> type:
    import torch

    if not isinstance(value, str):
        raise UserInputError(
            f"policy_kwargs.{key} must be a name such as 'relu' or 'torch.nn.ELU' "
            f"(got {show_value(value)})"
        )
    if value.lower() in ACTIVATIONS:
        return getattr(torch.nn, ACTIVATIONS[value.lower()])
    module_name, sep, attribute = value.replace(":", ".").rpartition(".")
    if not sep:
        raise UserInputError(
            f"unknown class {value!r}{close_match_hint(value.lower(), ACTIVATIONS)}; use one of "
            f"{', '.join(ACTIVATIONS)} or a dotted path such as torch.nn.ELU"
        )
    from maxbench.registry import import_target

    resolved = import_target(f"{module_name}:{attribute}", what=f"policy_kwargs.{key}")
    if not inspect.isclass(resolved):
        raise UserInputError(f"policy_kwargs.{key}: {value!r} is not a class")
    return resolved


def _schedule(key: str, value: str) -> Any:
    """``lin_<x>`` -> a linear schedule from x to 0; any other string must be a number."""
    from stable_baselines3.common.utils import LinearSchedule

    if not value.startswith("lin_"):
        raise UserInputError(
            f"{key}: {show_value(value)} is neither a number nor a schedule lin_<number> "
            "(e.g. lin_3e-4)"
        )
    try:
        start = float(value.removeprefix("lin_"))
    except ValueError:
        raise UserInputError(f"bad schedule {value!r}: write lin_<number>, e.g. lin_3e-4") from None
    if not math.isfinite(start) or start < 0:
        raise UserInputError(f"bad schedule {value!r}: the start must be a finite number >= 0")
    return LinearSchedule(start, 0.0, 1.0)


def _train_freq(value: Any) -> Any:
    """A whole number of steps, or ``[n, step|episode]`` (a tuple for SB3)."""
    if isinstance(value, list):
        if (
            len(value) == 2
            and _is_number(value[0])
            and float(value[0]).is_integer()
            and value[0] >= 1
            and value[1] in TRAIN_FREQ_UNITS
        ):
            return (int(value[0]), value[1])
    elif _is_number(value) and float(value).is_integer() and value >= 1:
        return int(value)
    raise UserInputError(
        f"train_freq must be a positive whole number or [n, step|episode] (got {show_value(value)})"
    )


def _sigma(sigma: Any, action_dim: int | None) -> list[float]:
    """The noise scale per action dimension: one number for all, or one per dimension."""
    values = sigma if isinstance(sigma, list) else [sigma]
    if not values or not all(_is_number(v) and math.isfinite(v) and v >= 0 for v in values):
        raise UserInputError(
            f"action_noise.sigma must be a number >= 0 or a list of them (got {show_value(sigma)})"
        )
    if isinstance(sigma, list) and action_dim is not None and len(sigma) != action_dim:
        raise UserInputError(
            f"action_noise.sigma has {len(sigma)} values but the action space has "
            f"{action_dim} dimensions"
        )
    if not isinstance(sigma, list):
        return [float(sigma)] * (action_dim or 1)
    return [float(v) for v in sigma]


def _action_noise(value: Any, action_dim: int | None) -> Any:
    """SB3's action-noise object; with ``action_dim`` None, only the shape of ``value``."""
    import numpy as np
    from stable_baselines3.common.noise import NormalActionNoise, OrnsteinUhlenbeckActionNoise

    usage = "action_noise must be {type: normal|ornstein-uhlenbeck, sigma: float}"
    if not isinstance(value, dict) or "sigma" not in value:
        raise UserInputError(f"{usage} (got {show_value(value)})")
    extra = sorted(str(key) for key in value if key not in NOISE_KEYS)
    if extra:
        raise UserInputError(f"{usage}: unknown key {extra[0]!r}; allowed: {', '.join(NOISE_KEYS)}")
    kind = value.get("type", "normal")
    if kind not in NOISE_TYPES:
        raise UserInputError(
            f"unknown action_noise type {show_value(kind)}"
            f"{close_match_hint(str(kind), NOISE_TYPES)}; use one of {', '.join(NOISE_TYPES)}"
        )
    sigma = np.array(_sigma(value["sigma"], action_dim))
    mean = np.zeros_like(sigma)
    if kind == "normal":
        return NormalActionNoise(mean=mean, sigma=sigma)
    return OrnsteinUhlenbeckActionNoise(mean=mean, sigma=sigma)


def integer_defaults(algorithm: type) -> set[str]:
    """Constructor arguments of ``algorithm`` (and its parents) whose default is an integer."""
    names: set[str] = set()
    for klass in algorithm.__mro__:
        if "__init__" in vars(klass):
            for parameter in inspect.signature(klass.__init__).parameters.values():
                default = parameter.default
                if isinstance(default, int) and not isinstance(default, bool):
                    names.add(parameter.name)
    return names


def plain_annotations(algorithm: type) -> dict[str, str]:
    """Constructor arguments annotated exactly ``int``, ``float`` or ``bool`` (the most derived
    class's annotation wins); arguments with any other annotation are not listed."""
    found: dict[str, str] = {}
    for klass in algorithm.__mro__:
        if "__init__" not in vars(klass) or klass is object:
            continue
        try:
            parameters = inspect.signature(klass.__init__).parameters.values()
        except (TypeError, ValueError):
            continue
        for parameter in parameters:
            if parameter.name in found or parameter.annotation is inspect.Parameter.empty:
                continue
            annotation = parameter.annotation
            text = (
                annotation if isinstance(annotation, str) else getattr(annotation, "__name__", "")
            )
            found[parameter.name] = text.strip()
    return {name: text for name, text in found.items() if text in ("int", "float", "bool")}


def _coerce_integers(converted: dict[str, Any], algorithm: type) -> None:
    """``buffer_size: 1e6`` is a float in YAML; integer arguments get an int (or an error)."""
    for name in integer_defaults(algorithm) & set(converted):
        value = converted[name]
        if isinstance(value, float):
            if not value.is_integer():
                raise UserInputError(f"{name!r} must be a whole number (got {show_value(value)})")
            converted[name] = int(value)


def _check_ranges(converted: dict[str, Any], algorithm: type) -> None:
    """Numbers are finite, and within SB3's bounds for the arguments SB3 defines."""
    from stable_baselines3.common.base_class import BaseAlgorithm

    is_sb3 = isinstance(algorithm, type) and issubclass(algorithm, BaseAlgorithm)
    for name, value in converted.items():
        if not _is_number(value):
            continue
        if isinstance(value, float) and not math.isfinite(value):
            raise UserInputError(f"{name!r} must be a finite number (got {value})")
        if is_sb3 and name in SB3_RANGES:
            low, high = SB3_RANGES[name]
            if (low is not None and value < low) or (high is not None and value > high):
                bounds = f"between {low} and {high}" if high is not None else f">= {low}"
                raise UserInputError(f"{name!r} must be {bounds} (got {value})")


def _check_plain_types(converted: dict[str, Any], algorithm: type) -> None:
    """Refuse values of the wrong type for arguments annotated ``int``, ``float`` or ``bool``."""
    expected = {
        "int": ("a whole number", lambda v: isinstance(v, int) and not isinstance(v, bool)),
        "float": ("a number", _is_number),
        "bool": ("true or false", lambda v: isinstance(v, bool)),
    }
    for name, annotation in plain_annotations(algorithm).items():
        if name in converted and name not in _SCHEDULABLE and name != "train_freq":
            what, accepts = expected[annotation]
            if not accepts(converted[name]):
                raise UserInputError(f"{name!r} must be {what} (got {show_value(converted[name])})")


def convert_hyperparameters(
    hyperparams: dict[str, Any], action_dim: int | None, algorithm: type | None = None
) -> dict[str, Any]:
    """Return constructor keyword arguments built from YAML values (the input is not modified).

    With ``algorithm``, whole-number floats become ints for its integer arguments and values of
    the wrong type for its plainly typed arguments are refused. ``action_dim`` None (the env is
    not known yet) checks the action noise's shape but not its length.
    """
    converted = copy.deepcopy(hyperparams)
    if algorithm is not None:
        _coerce_integers(converted, algorithm)
        _check_plain_types(converted, algorithm)
        _check_ranges(converted, algorithm)
    for key in _SCHEDULABLE:
        if isinstance(converted.get(key), str):
            converted[key] = _schedule(key, converted[key])
        elif isinstance(converted.get(key), bool):
            raise UserInputError(
                f"{key} must be a number or lin_<number> (got {show_value(converted[key])})"
            )
    if "train_freq" in converted:
        converted["train_freq"] = _train_freq(converted["train_freq"])
    if "action_noise" in converted and converted["action_noise"] is not None:
        converted["action_noise"] = _action_noise(converted["action_noise"], action_dim)
    policy_kwargs = converted.get("policy_kwargs")
    if policy_kwargs is not None and not isinstance(policy_kwargs, dict):
        raise UserInputError("policy_kwargs must be a mapping, e.g. {net_arch: [64, 64]}")
    for key in _CLASS_KWARGS:
        if policy_kwargs and key in policy_kwargs and policy_kwargs[key] is not None:
            policy_kwargs[key] = _resolve_class(key, policy_kwargs[key])
    return converted
