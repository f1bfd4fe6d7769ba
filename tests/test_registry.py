"""The algorithm registry and the YAML-to-Python hyperparameter conversions (no training)."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pytest
import torch
from stable_baselines3 import PPO, SAC
from stable_baselines3.common.noise import NormalActionNoise, OrnsteinUhlenbeckActionNoise

from maxbench.errors import UserInputError
from maxbench.registry import (
    ALGORITHMS,
    RESERVED_ARGUMENTS,
    check_hyperparameters,
    constructor_arguments,
    registered_names,
    resolve_algorithm,
)
from maxbench.suite.hyperparams import convert_hyperparameters

STOCK = ("sac", "td3", "ddpg", "ppo", "a2c", "tqc", "crossq")
SB3_API = ("learn", "predict", "save", "load")


def test_stock_names_are_registered() -> None:
    assert set(STOCK) <= set(registered_names())
    assert registered_names() == sorted(ALGORITHMS)


@pytest.mark.parametrize("name", registered_names())
def test_every_registered_name_resolves_to_an_sb3_class(name: str) -> None:
    cls, preset = resolve_algorithm(name)
    assert isinstance(cls, type)
    for attribute in SB3_API:
        assert callable(getattr(cls, attribute, None)), f"{name}: no {attribute}"
    assert isinstance(preset, dict)
    assert preset == ALGORITHMS[name].preset
    # The preset is a copy: changing it does not change the registry.
    preset["changed"] = True
    assert "changed" not in ALGORITHMS[name].preset
    # And every preset key is one the constructor takes.
    check_hyperparameters(cls, ALGORITHMS[name].preset)


@pytest.mark.parametrize("spelling", ["sac", "SAC", "Sac", "sAc"])
def test_names_are_case_insensitive(spelling: str) -> None:
    assert resolve_algorithm(spelling)[0] is SAC


def test_stock_classes() -> None:
    from sb3_contrib import TQC, CrossQ
    from stable_baselines3 import A2C, DDPG, TD3

    expected = {"sac": SAC, "td3": TD3, "ddpg": DDPG, "ppo": PPO, "a2c": A2C, "tqc": TQC}
    expected["crossq"] = CrossQ
    for name, cls in expected.items():
        assert resolve_algorithm(name)[0] is cls


def test_module_colon_class() -> None:
    cls, preset = resolve_algorithm("stable_baselines3:SAC")
    assert cls is SAC
    assert preset == {}
    assert resolve_algorithm("sb3_contrib:TQC")[0].__name__ == "TQC"


@pytest.mark.parametrize("target", ["json:dumps", "json:JSONDecoder", "math:pi"])
def test_module_colon_non_algorithm(target: str) -> None:
    with pytest.raises(UserInputError, match="stable-baselines3 API") as info:
        resolve_algorithm(target)
    assert target in str(info.value)


def test_module_colon_missing_module() -> None:
    with pytest.raises(UserInputError, match="cannot import module 'no_such_module_xyz'"):
        resolve_algorithm("no_such_module_xyz:Algo")


def test_module_colon_missing_attribute() -> None:
    with pytest.raises(UserInputError, match="has no attribute 'NoSuchAlgo'"):
        resolve_algorithm("stable_baselines3:NoSuchAlgo")


def test_unknown_name_has_a_close_match_and_the_known_names() -> None:
    with pytest.raises(UserInputError) as info:
        resolve_algorithm("sacc")
    message = str(info.value)
    assert "unknown algorithm 'sacc'" in message
    assert "did you mean 'sac'" in message
    for name in STOCK:
        assert name in message
    assert "\n" not in message


def test_unknown_name_far_from_everything_has_no_hint() -> None:
    with pytest.raises(UserInputError) as info:
        resolve_algorithm("zzzzzzzz")
    assert "did you mean" not in str(info.value)


def test_constructor_arguments_of_sac() -> None:
    names = constructor_arguments(SAC)
    assert names is not None
    assert {"learning_rate", "ent_coef", "buffer_size", "train_freq", "policy_kwargs"} <= names
    assert {"policy", "env", "seed"} <= names
    assert "self" not in names
    assert "n_epochs" not in names


def test_constructor_arguments_follow_kwargs_to_the_parent() -> None:
    class Base:
        def __init__(self, alpha: int = 0, *, beta: int = 1) -> None:
            pass

    class Child(Base):
        def __init__(self, gamma: int = 0, **kwargs: Any) -> None:
            super().__init__(**kwargs)

    class Open:
        def __init__(self, **kwargs: Any) -> None:
            pass

    assert constructor_arguments(Child) == {"alpha", "beta", "gamma"}
    assert constructor_arguments(Base) == {"alpha", "beta"}
    assert constructor_arguments(Open) is None
    # With no known argument list, anything but the reserved names goes.
    check_hyperparameters(Open, {"whatever": 1})
    with pytest.raises(UserInputError, match="'seed'"):
        check_hyperparameters(Open, {"seed": 1})


def test_check_hyperparameters_accepts_constructor_arguments() -> None:
    check_hyperparameters(SAC, {"learning_rate": 1e-3, "ent_coef": "auto", "batch_size": 64})
    check_hyperparameters(PPO, {"n_steps": 64, "clip_range": 0.2})
    check_hyperparameters(SAC, {})


def test_check_hyperparameters_rejects_unknown_names_with_a_close_match() -> None:
    with pytest.raises(UserInputError) as info:
        check_hyperparameters(SAC, {"learning_starts": 10, "learnin_rate": 1e-3})
    message = str(info.value)
    assert "SAC" in message
    assert "'learnin_rate'" in message
    assert "did you mean 'learning_rate'" in message
    assert "accepted:" in message
    assert "\n" not in message
    # The accepted list does not offer the reserved arguments.
    accepted = message.split("accepted:")[1]
    for reserved in RESERVED_ARGUMENTS:
        assert f" {reserved}," not in f" {accepted.strip()},"


def test_check_hyperparameters_rejects_arguments_of_another_algorithm() -> None:
    with pytest.raises(UserInputError, match="'n_epochs'"):
        check_hyperparameters(SAC, {"n_epochs": 10})


@pytest.mark.parametrize("name", RESERVED_ARGUMENTS)
def test_check_hyperparameters_rejects_reserved_names(name: str) -> None:
    with pytest.raises(UserInputError, match=f"'{name}' is set by maxbench"):
        check_hyperparameters(SAC, {name: 0})


# --- convert_hyperparameters -------------------------------------------------------------------


def test_linear_schedule() -> None:
    converted = convert_hyperparameters({"learning_rate": "lin_3e-4"}, action_dim=1)
    schedule = converted["learning_rate"]
    assert callable(schedule)
    assert schedule(1.0) == pytest.approx(3e-4)
    assert schedule(0.5) == pytest.approx(1.5e-4)
    assert schedule(0.0) == pytest.approx(0.0)


@pytest.mark.parametrize("key", ["clip_range", "clip_range_vf"])
def test_other_schedules(key: str) -> None:
    schedule = convert_hyperparameters({key: "lin_0.2"}, action_dim=1)[key]
    assert schedule(1.0) == pytest.approx(0.2)
    assert schedule(0.0) == pytest.approx(0.0)


def test_bad_schedule() -> None:
    with pytest.raises(UserInputError, match="lin_fast"):
        convert_hyperparameters({"learning_rate": "lin_fast"}, action_dim=1)


def test_numbers_and_other_strings_pass_through() -> None:
    hyperparams = {"learning_rate": 3e-4, "ent_coef": "auto_0.1", "gamma": 0.99, "n_steps": 64}
    assert convert_hyperparameters(hyperparams, action_dim=1) == hyperparams


@pytest.mark.parametrize(
    ("value", "expected"), [([1, "episode"], (1, "episode")), ([4, "step"], (4, "step")), (8, 8)]
)
def test_train_freq(value: Any, expected: Any) -> None:
    converted = convert_hyperparameters({"train_freq": value}, action_dim=1)["train_freq"]
    assert converted == expected
    assert type(converted) is type(expected)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("elu", torch.nn.ELU),
        ("ELU", torch.nn.ELU),
        ("relu", torch.nn.ReLU),
        ("tanh", torch.nn.Tanh),
        ("leaky_relu", torch.nn.LeakyReLU),
        ("torch.nn.Tanh", torch.nn.Tanh),
        ("torch.nn:SiLU", torch.nn.SiLU),
    ],
)
def test_activation_fn(value: str, expected: type) -> None:
    converted = convert_hyperparameters(
        {"policy_kwargs": {"activation_fn": value, "net_arch": [64, 64]}}, action_dim=1
    )
    assert converted["policy_kwargs"]["activation_fn"] is expected
    assert converted["policy_kwargs"]["net_arch"] == [64, 64]


def test_optimizer_class() -> None:
    converted = convert_hyperparameters(
        {"policy_kwargs": {"optimizer_class": "torch.optim.RMSprop"}}, action_dim=1
    )
    assert converted["policy_kwargs"]["optimizer_class"] is torch.optim.RMSprop


def test_unknown_activation_has_a_close_match() -> None:
    with pytest.raises(UserInputError, match="did you mean 'elu'") as info:
        convert_hyperparameters({"policy_kwargs": {"activation_fn": "elux"}}, action_dim=1)
    assert "'elux'" in str(info.value)


def test_activation_with_a_missing_attribute() -> None:
    with pytest.raises(UserInputError, match="Elux"):
        convert_hyperparameters({"policy_kwargs": {"activation_fn": "torch.nn.Elux"}}, action_dim=1)


def test_policy_kwargs_must_be_a_mapping() -> None:
    with pytest.raises(UserInputError, match="policy_kwargs"):
        convert_hyperparameters({"policy_kwargs": [64, 64]}, action_dim=1)


@pytest.mark.parametrize("action_dim", [1, 3, 6])
def test_normal_action_noise(action_dim: int) -> None:
    converted = convert_hyperparameters(
        {"action_noise": {"type": "normal", "sigma": 0.2}}, action_dim=action_dim
    )
    noise = converted["action_noise"]
    assert isinstance(noise, NormalActionNoise)
    assert noise().shape == (action_dim,)
    np.testing.assert_allclose(noise._mu, np.zeros(action_dim))
    np.testing.assert_allclose(noise._sigma, np.full(action_dim, 0.2))


def test_action_noise_type_defaults_to_normal() -> None:
    noise = convert_hyperparameters({"action_noise": {"sigma": 0.1}}, action_dim=2)["action_noise"]
    assert isinstance(noise, NormalActionNoise)


def test_ornstein_uhlenbeck_action_noise() -> None:
    converted = convert_hyperparameters(
        {"action_noise": {"type": "ornstein-uhlenbeck", "sigma": 0.3}}, action_dim=2
    )
    noise = converted["action_noise"]
    assert isinstance(noise, OrnsteinUhlenbeckActionNoise)
    assert noise().shape == (2,)


def test_no_action_noise() -> None:
    assert convert_hyperparameters({"action_noise": None}, action_dim=2) == {"action_noise": None}


@pytest.mark.parametrize(
    "value",
    [{"type": "pink", "sigma": 0.1}, {"type": "normal"}, {"sigma": 0.1, "theta": 0.2}, 0.1],
    ids=["unknown-type", "no-sigma", "extra-key", "not-a-mapping"],
)
def test_bad_action_noise(value: Any) -> None:
    with pytest.raises(UserInputError, match="action_noise"):
        convert_hyperparameters({"action_noise": value}, action_dim=2)


def test_input_is_not_modified() -> None:
    hyperparams = {
        "learning_rate": "lin_3e-4",
        "train_freq": [1, "episode"],
        "action_noise": {"type": "normal", "sigma": 0.2},
        "policy_kwargs": {"activation_fn": "elu", "net_arch": {"pi": [64], "qf": [64]}},
        "batch_size": 64,
    }
    before = copy.deepcopy(hyperparams)
    converted = convert_hyperparameters(hyperparams, action_dim=3)
    assert hyperparams == before
    assert converted["policy_kwargs"] is not hyperparams["policy_kwargs"]
    assert converted["policy_kwargs"]["net_arch"] is not hyperparams["policy_kwargs"]["net_arch"]
    assert converted["batch_size"] == 64


def test_converted_hyperparameters_build_a_model() -> None:
    """The conversions give what SB3's constructor takes (construction only, no training)."""
    hyperparams = {
        "learning_rate": "lin_3e-4",
        "train_freq": [1, "episode"],
        "action_noise": {"type": "normal", "sigma": 0.2},
        "policy_kwargs": {"activation_fn": "elu", "net_arch": [8]},
        "buffer_size": 100,
        "learning_starts": 10,
    }
    model = SAC("MlpPolicy", "Pendulum-v1", **convert_hyperparameters(hyperparams, action_dim=1))
    assert model.train_freq.frequency == 1
    assert model.train_freq.unit.value == "episode"
    assert model.lr_schedule(1.0) == pytest.approx(3e-4)
    assert model.policy.actor.latent_pi[1].__class__ is torch.nn.ELU
