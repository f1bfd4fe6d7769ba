"""maxbench's algorithms behave like SB3's SAC wherever an SB3 user relies on it (issue 16).

Every check runs for the five algorithms (S2AC twice: with q0 and with the amortised sampler)
and, where SB3's own behaviour is the reference, for SB3's SAC:

* ``Algo.load(path, env=env, **kwargs)`` with the constructor's keyword arguments (as SB3's
  ``test_save_load_env_cnn`` does), also with a fresh copy of them (SAC itself fails that: it
  adds ``use_sde`` to the caller's ``policy_kwargs``); models saved by earlier maxbench versions,
  whose ``policy_kwargs`` held the algorithms' own options, still load;
* SAC's constructor arguments: the positional order, the gSDE arguments, a SAC hyperparameter set;
* prediction: ``model.predict`` is ``model.policy.predict`` and repeatable; ``actor.predict`` is
  deterministic and, where the actor is the acting policy, equal to it (SB3's
  ``test_save_load_policy``, policy and actor saved and loaded alone);
* TensorBoard runs named ``<ClassName>_1``.
"""

from __future__ import annotations

import copy
import importlib.util
import inspect
from itertools import takewhile
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from stable_baselines3 import SAC
from stable_baselines3.common import utils as sb3_utils

from maxbench.algos import BSAC, S2AC, SACNF, SQL, SoftGAC
from maxbench.algos.engine_sac import EngineSAC
from maxbench.registry import check_hyperparameters

ENV_ID = "Pendulum-v1"
#: Tiny, fast settings shared by every algorithm: a few gradient steps within 48 env steps.
COMMON: dict[str, Any] = {
    "learning_starts": 16,
    "batch_size": 8,
    "train_freq": 4,
    "gradient_steps": 1,
}

#: name -> (class, its own options with a non-default policy_kwargs). The names are pytest ids.
ALGORITHMS: dict[str, tuple[type, dict[str, Any]]] = {
    "SAC": (SAC, {"ent_coef": "auto_0.5", "policy_kwargs": {"net_arch": [16], "n_critics": 3}}),
    "BSAC": (
        BSAC,
        {
            "forward_steps": 2,
            "forward_lr_factor": 0.2,
            "grid_size": 16,
            "policy_kwargs": {"net_arch": [16], "vdn_basis_size": 3},
        },
    ),
    "S2AC": (
        S2AC,
        {
            "n_particles": 4,
            "svgd_steps": 2,
            "sampler_temperature": "alpha",
            "ent_coef": "auto",
            "random_exploration_steps": 16,
            "policy_kwargs": {"net_arch": [16]},
        },
    ),
    "S2AC-amortized": (
        S2AC,
        {
            "amortized": True,
            "n_particles": 4,
            "random_exploration_steps": 16,
            "policy_kwargs": {"net_arch": {"pi": [16], "qf": [8]}},
        },
    ),
    "SoftGAC": (
        SoftGAC,
        {
            "critic_type": "twin",
            "n_particles": 2,
            "policy_delay": 1,
            "policy_kwargs": {
                "net_arch": [16],
                "n_bridge_steps": 2,
                "bridge_hidden_size": 16,
                "input_layer_norm": False,
            },
        },
    ),
    "SQL": (
        SQL,
        {
            "ent_coef": 0.3,
            "kernel_n_particles": 4,
            "value_n_particles": 4,
            "policy_kwargs": {"net_arch": [16], "n_eval_particles": 5},
        },
    ),
    "SACNF": (SACNF, {"policy_kwargs": {"net_arch": [16], "flow_hidden": [16], "n_flows": 1}}),
    "EngineSAC": (EngineSAC, {"ent_coef": "auto_0.5", "policy_kwargs": {"net_arch": [16]}}),
    "EngineSAC-compiled": (
        EngineSAC,
        {"compile": "aot_eager", "policy_kwargs": {"net_arch": [16], "n_critics": 3}},
    ),
}
MAXBENCH = [name for name in ALGORITHMS if name != "SAC"]
CLASSES = {
    "SAC": SAC,
    "BSAC": BSAC,
    "S2AC": S2AC,
    "SoftGAC": SoftGAC,
    "SQL": SQL,
    "SACNF": SACNF,
    "EngineSAC": EngineSAC,
}
#: Where ``policy.actor`` is the acting policy; elsewhere ``model.policy.predict`` is the
#: reference and the class docstring says that the actor is not the acting policy.
ACTOR_IS_POLICY = {"SAC", "BSAC", "SoftGAC", "SACNF", "EngineSAC", "EngineSAC-compiled"}


def _kwargs(name: str) -> dict[str, Any]:
    """A fresh copy of the constructor's keyword arguments for ``name``."""
    return copy.deepcopy({**COMMON, **ALGORITHMS[name][1]})


def _observations(n: int = 6) -> np.ndarray:
    return np.random.default_rng(7).uniform(-1.0, 1.0, size=(n, 3)).astype(np.float32)


def _trained(name: str, kwargs: dict[str, Any] | None = None, steps: int = 48) -> Any:
    cls = ALGORITHMS[name][0]
    model = cls("MlpPolicy", gym.make(ENV_ID), seed=0, **(kwargs or _kwargs(name)))
    return model.learn(steps)


# -- 1. load(path, env=env, **constructor kwargs) ---------------------------------------------
@pytest.mark.parametrize("name", list(ALGORITHMS))
def test_load_takes_the_constructor_kwargs(name: str, tmp_path: Path) -> None:
    cls = ALGORITHMS[name][0]
    kwargs = _kwargs(name)
    model = _trained(name, kwargs)
    obs = _observations()
    before, _ = model.predict(obs, deterministic=True)
    model.save(tmp_path / "model.zip")

    env = gym.make(ENV_ID)
    # The very objects given to the constructor, as SB3's own tests pass them.
    loaded = cls.load(tmp_path / "model.zip", env=env, device="cpu", **kwargs)
    np.testing.assert_array_equal(loaded.predict(obs, deterministic=True)[0], before)
    loaded.learn(8, reset_num_timesteps=False)


@pytest.mark.parametrize("name", MAXBENCH)
def test_policy_kwargs_stay_as_given_so_a_fresh_copy_loads_too(name: str, tmp_path: Path) -> None:
    cls = ALGORITHMS[name][0]
    kwargs = _kwargs(name)
    given = copy.deepcopy(kwargs["policy_kwargs"])
    model = _trained(name, kwargs)
    assert kwargs["policy_kwargs"] == given, "the caller's policy_kwargs were changed"
    assert model.policy_kwargs == given
    obs = _observations()
    before, _ = model.predict(obs, deterministic=True)
    model.save(tmp_path / "model.zip")

    loaded = cls.load(tmp_path / "model.zip", env=gym.make(ENV_ID), device="cpu", **_kwargs(name))
    assert loaded.policy_kwargs == given
    np.testing.assert_array_equal(loaded.predict(obs, deterministic=True)[0], before)


@pytest.mark.parametrize("name", MAXBENCH)
def test_policy_kwargs_none_loads_as_it_constructs(name: str, tmp_path: Path) -> None:
    """``policy_kwargs=None`` is ``{}`` at construction, and so at load."""
    cls = ALGORITHMS[name][0]
    kwargs = {**_kwargs(name), "policy_kwargs": None}
    model = cls("MlpPolicy", ENV_ID, seed=0, **kwargs)
    assert model.policy_kwargs == {}
    model.save(tmp_path / "model.zip")
    loaded = cls.load(tmp_path / "model.zip", env=gym.make(ENV_ID), **kwargs)
    assert loaded.policy_kwargs == {}


def test_a_different_policy_kwargs_is_still_refused_at_load(tmp_path: Path) -> None:
    """SB3's check still guards the saved architecture."""
    kwargs = _kwargs("BSAC")
    _trained("BSAC", kwargs, steps=8).save(tmp_path / "model.zip")
    kwargs["policy_kwargs"]["net_arch"] = [32]
    with pytest.raises(ValueError, match="policy kwargs"):
        BSAC.load(tmp_path / "model.zip", env=gym.make(ENV_ID), **kwargs)


#: What earlier maxbench versions added to ``policy_kwargs`` (and, for S2AC, did not save as
#: attributes): the load path for their saved models.
_LEGACY_POLICY_KWARGS = {
    "BSAC": lambda m: {"use_sde": False, "use_vdn": True},
    "SACNF": lambda m: {"use_sde": False},
    "SQL": lambda m: {"selection_temperature": m.ent_coef},
    "SoftGAC": lambda m: {"critic_type": m.critic_type},
    "S2AC": lambda m: {
        "init": m.init,
        "init_std": m.init_std,
        "amortized": m.use_amortized,
        "n_particles": m.n_particles,
        "svgd_steps": m.svgd_steps,
        "svgd_step_size": m.svgd_step_size,
        "kernel_sigma": m.kernel_sigma,
        "energy_on": m.energy_on,
        "temperature": float(m.policy.temperature),
        "action_selection": m.action_selection,
    },
}
_S2AC_NEW_ATTRIBUTES = (
    "init",
    "init_std",
    "use_amortized",
    "n_particles",
    "svgd_steps",
    "svgd_step_size",
    "kernel_sigma",
    "energy_on",
    "action_selection",
)


@pytest.mark.parametrize("name", list(_LEGACY_POLICY_KWARGS))
def test_models_saved_with_options_in_policy_kwargs_still_load(name: str, tmp_path: Path) -> None:
    """A model saved the old way (checked once against real files saved by the previous code)."""
    cls = ALGORITHMS[name][0]
    model = _trained(name)
    obs = _observations()
    before, _ = model.predict(obs, deterministic=True)
    given = dict(model.policy_kwargs)
    model.policy_kwargs = {**model.policy_kwargs, **_LEGACY_POLICY_KWARGS[name](model)}
    expected_attributes = {}
    if name == "S2AC":
        for attribute in _S2AC_NEW_ATTRIBUTES:
            expected_attributes[attribute] = model.__dict__.pop(attribute)
    model.save(tmp_path / "old.zip")

    loaded = cls.load(tmp_path / "old.zip", env=gym.make(ENV_ID), device="cpu")
    np.testing.assert_array_equal(loaded.predict(obs, deterministic=True)[0], before)
    for attribute, value in expected_attributes.items():
        assert getattr(loaded, attribute) == value, attribute
    if name == "S2AC":
        assert loaded.policy_kwargs == given
    loaded.learn(8, reset_num_timesteps=False)


# -- 2. SAC's constructor arguments ------------------------------------------------------------
def _positional(cls: type) -> list[str]:
    parameters = list(inspect.signature(cls.__init__).parameters.values())[1:]
    return [p.name for p in parameters if p.kind is p.POSITIONAL_OR_KEYWORD]


@pytest.mark.parametrize("cls", [BSAC, S2AC, SoftGAC, SQL, SACNF, EngineSAC])
def test_positional_parameters_are_sacs_prefix(cls: type) -> None:
    """Positional arguments mean what they mean for SAC, up to SAC's first parameter ``cls``
    lacks; everything after is keyword-only, so a longer SAC call fails instead of misbinding."""
    names = set(inspect.signature(cls.__init__).parameters)
    sac = _positional(SAC)
    shared_prefix = list(takewhile(lambda parameter: parameter in names, sac))
    assert _positional(cls) == shared_prefix
    assert shared_prefix[:10] == [
        "policy",
        "env",
        "learning_rate",
        "buffer_size",
        "learning_starts",
        "batch_size",
        "tau",
        "gamma",
        "train_freq",
        "gradient_steps",
    ]


@pytest.mark.parametrize("name", list(CLASSES))
def test_positional_construction_sets_sacs_arguments(name: str) -> None:
    cls = CLASSES[name]
    model = cls("MlpPolicy", ENV_ID, 1e-3, 5_000, 16, 8, 0.01, 0.95, 4, 2, _init_setup_model=False)
    assert model.learning_rate == 1e-3
    assert (model.buffer_size, model.learning_starts, model.batch_size) == (5_000, 16, 8)
    assert (model.tau, model.gamma, model.train_freq, model.gradient_steps) == (0.01, 0.95, 4, 2)


def _sac_hyperparameters(name: str) -> dict[str, Any]:
    """An rl-baselines3-zoo style SAC set for Pendulum-v1 (tiny networks and buffer)."""
    return {
        "learning_rate": 1e-3,
        "buffer_size": 10_000,
        "learning_starts": 16,
        "batch_size": 8,
        "tau": 0.02,
        "gamma": 0.98,
        "train_freq": 8,
        "gradient_steps": 2,
        # SQL's temperature is fixed: "auto" has no meaning there (a clear ValueError).
        "ent_coef": 0.1 if name == "SQL" else "auto",
        "target_update_interval": 2,
        "use_sde": False,
        "sde_sample_freq": -1,
        "use_sde_at_warmup": False,
        "policy_kwargs": {"net_arch": [16, 16]},
    }


@pytest.mark.parametrize("name", list(CLASSES))
def test_a_sac_hyperparameter_set_is_accepted_as_it_is(name: str) -> None:
    cls = CLASSES[name]
    hyperparameters = _sac_hyperparameters(name)
    check_hyperparameters(cls, hyperparameters)  # what maxbench's suite validation asks
    model = cls("MlpPolicy", ENV_ID, seed=0, **hyperparameters)
    for key in ("learning_rate", "buffer_size", "tau", "gamma", "target_update_interval"):
        assert getattr(model, key) == hyperparameters[key], key
    assert model.use_sde is False
    model.learn(24)
    assert model.num_timesteps == 24


@pytest.mark.parametrize("cls", [S2AC, SoftGAC, SQL, SACNF, EngineSAC])
def test_gsde_is_refused_clearly_where_the_actor_has_none(cls: type) -> None:
    with pytest.raises(ValueError, match=r"does not support gSDE \(use_sde=True\)"):
        cls("MlpPolicy", ENV_ID, use_sde=True)


def test_bsac_keeps_sacs_gsde() -> None:
    model = BSAC("MlpPolicy", ENV_ID, seed=0, use_sde=True, sde_sample_freq=4, **_kwargs("BSAC"))
    model.learn(24)
    assert model.use_sde and model.actor.use_sde


# -- 3. prediction --------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(ALGORITHMS))
def test_predict_is_the_policys_and_repeatable(name: str) -> None:
    model = _trained(name)
    obs = _observations()
    first, _ = model.predict(obs, deterministic=True)
    by_policy, _ = model.policy.predict(obs, deterministic=True)
    again, _ = model.predict(obs, deterministic=True)
    np.testing.assert_array_equal(first, by_policy)
    np.testing.assert_array_equal(first, again)


@pytest.mark.parametrize("name", list(ALGORITHMS))
def test_policy_and_actor_saved_alone_as_in_sb3s_test(name: str, tmp_path: Path) -> None:
    """SB3's ``test_save_load_policy`` for SAC, run against each algorithm."""
    model = _trained(name)
    obs = _observations(10)
    policy, actor = model.policy, model.policy.actor
    assert model.actor is actor
    actions, _ = policy.predict(obs, deterministic=True)
    actor_actions, _ = actor.predict(obs, deterministic=True)
    np.testing.assert_array_equal(actor.predict(obs, deterministic=True)[0], actor_actions)
    policy.save(tmp_path / "policy.pkl")
    actor.save(tmp_path / "actor.pkl")

    policy_again = type(policy).load(tmp_path / "policy.pkl")
    actor_again = type(actor).load(tmp_path / "actor.pkl")
    np.testing.assert_allclose(policy_again.predict(obs, deterministic=True)[0], actions)
    np.testing.assert_allclose(actor_again.predict(obs, deterministic=True)[0], actor_actions)
    if name in ACTOR_IS_POLICY:
        np.testing.assert_allclose(actor_actions, actions, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ["S2AC", "SQL"])
def test_the_actor_that_is_not_the_policy_is_documented(name: str) -> None:
    """The documented substitute: the class says that ``model.policy.predict`` is the reference
    and that the actor is not the acting policy."""
    text = " ".join((CLASSES[name].__doc__ or "").split())
    assert "``model.predict`` is ``model.policy.predict``, the reference" in text
    assert "**not** the acting policy" in text


def test_sqls_sampler_alone_is_deterministic_at_the_centre_of_its_noise() -> None:
    model = _trained("SQL")
    obs = model.policy.obs_to_tensor(_observations())[0]
    centre = model.actor.actions_from_noise(obs, obs.new_full((1, 1), 0.5))[:, 0]
    np.testing.assert_allclose(
        model.actor.predict(_observations(), deterministic=True)[0],
        model.policy.unscale_action(centre.detach().numpy()),
        rtol=1e-6,
    )


# -- 4. TensorBoard runs --------------------------------------------------------------------
@pytest.mark.parametrize("name", list(CLASSES))
def test_tensorboard_run_is_named_after_the_class(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cls = CLASSES[name]
    model = cls("MlpPolicy", ENV_ID, seed=0, tensorboard_log=str(tmp_path), **_kwargs(name))
    if importlib.util.find_spec("tensorboard") is not None:
        model.learn(8)
        assert [p.name for p in tmp_path.iterdir()] == [f"{name}_1"]
        return
    # Without tensorboard SB3 refuses a tensorboard_log: check the run name SB3 would give.
    seen: list[tuple[Any, str]] = []
    configure_logger = sb3_utils.configure_logger

    def spy(verbose: int, tensorboard_log: Any, tb_log_name: str, reset: bool) -> Any:
        seen.append((tensorboard_log, tb_log_name))
        return configure_logger(verbose, None, tb_log_name, reset)

    monkeypatch.setattr(sb3_utils, "configure_logger", spy)
    model.learn(8)
    assert seen == [(str(tmp_path), name)]
    run = f"{name}_{sb3_utils.get_latest_run_id(str(tmp_path), name) + 1}"
    assert run == f"{name}_1"
