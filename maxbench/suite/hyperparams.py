"""Turn YAML hyperparameters into the Python objects SB3 constructors take.

The conversions follow rl-baselines3-zoo's conventions where it has one:
``lin_3e-4`` is a linear schedule from 3e-4 to 0; ``activation_fn: elu`` (or ``torch.nn.ELU``)
inside ``policy_kwargs`` is the class; ``train_freq: [1, episode]`` becomes a tuple;
``action_noise: {type: normal, sigma: 0.1}`` becomes SB3's action-noise object for the env's
action size.
"""

from __future__ import annotations

import copy
import inspect
from typing import Any

from maxbench.errors import UserInputError, close_match_hint

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
_CLASS_KWARGS = ("activation_fn", "optimizer_class", "features_extractor_class")
_SCHEDULABLE = ("learning_rate", "clip_range", "clip_range_vf")


def _resolve_class(value: str) -> type:
    import torch

    if value.lower() in ACTIVATIONS:
        return getattr(torch.nn, ACTIVATIONS[value.lower()])
    module_name, sep, attribute = value.replace(":", ".").rpartition(".")
    if not sep:
        raise UserInputError(
            f"unknown class '{value}'{close_match_hint(value.lower(), ACTIVATIONS)}; use one of "
            f"{', '.join(ACTIVATIONS)} or a dotted path such as torch.nn.ELU"
        )
    from maxbench.registry import import_target

    return import_target(f"{module_name}:{attribute}")


def _schedule(value: str) -> Any:
    from stable_baselines3.common.utils import LinearSchedule

    try:
        start = float(value.removeprefix("lin_"))
    except ValueError:
        raise UserInputError(f"bad schedule '{value}': write lin_<number>, e.g. lin_3e-4") from None
    return LinearSchedule(start, 0.0, 1.0)


def _action_noise(value: Any, action_dim: int) -> Any:
    import numpy as np
    from stable_baselines3.common.noise import NormalActionNoise, OrnsteinUhlenbeckActionNoise

    if not isinstance(value, dict) or set(value) - {"type", "sigma"} or "sigma" not in value:
        raise UserInputError("action_noise must be {type: normal|ornstein-uhlenbeck, sigma: float}")
    kind = value.get("type", "normal")
    mean, sigma = np.zeros(action_dim), float(value["sigma"]) * np.ones(action_dim)
    if kind == "normal":
        return NormalActionNoise(mean=mean, sigma=sigma)
    if kind == "ornstein-uhlenbeck":
        return OrnsteinUhlenbeckActionNoise(mean=mean, sigma=sigma)
    raise UserInputError(f"unknown action_noise type '{kind}'; use one of {', '.join(NOISE_TYPES)}")


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


def _coerce_integers(converted: dict[str, Any], algorithm: type) -> None:
    """``buffer_size: 1e6`` is a float in YAML; integer arguments get an int (or an error)."""
    for name in integer_defaults(algorithm) & set(converted):
        value = converted[name]
        if isinstance(value, float):
            if not value.is_integer():
                raise UserInputError(f"'{name}' must be a whole number (got {value})")
            converted[name] = int(value)


def convert_hyperparameters(
    hyperparams: dict[str, Any], action_dim: int, algorithm: type | None = None
) -> dict[str, Any]:
    """Return constructor keyword arguments built from YAML values (the input is not modified).

    With ``algorithm``, whole-number floats become ints for its integer arguments.
    """
    converted = copy.deepcopy(hyperparams)
    if algorithm is not None:
        _coerce_integers(converted, algorithm)
    for key in _SCHEDULABLE:
        if isinstance(converted.get(key), str) and converted[key].startswith("lin_"):
            converted[key] = _schedule(converted[key])
    if isinstance(converted.get("train_freq"), list):
        converted["train_freq"] = tuple(converted["train_freq"])
    if "action_noise" in converted and converted["action_noise"] is not None:
        converted["action_noise"] = _action_noise(converted["action_noise"], action_dim)
    policy_kwargs = converted.get("policy_kwargs")
    if policy_kwargs is not None and not isinstance(policy_kwargs, dict):
        raise UserInputError("policy_kwargs must be a mapping, e.g. {net_arch: [64, 64]}")
    for key in _CLASS_KWARGS:
        if policy_kwargs and isinstance(policy_kwargs.get(key), str):
            policy_kwargs[key] = _resolve_class(policy_kwargs[key])
    return converted
