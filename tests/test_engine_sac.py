"""SAC on maxbench's engine (issue 14): SB3's SAC step for step, eager and compiled.

* Eager, from the same parameters and batch, three gradient steps give SB3's SAC's losses and
  parameters (the engine draws the policy's noise in SB3's order, computes log π with SB3's
  formula and differentiates the temperature loss by hand: float rounding apart, the same).
* ``compile=True`` (inductor), from the same parameters, optimiser state, batch and noise
  (inductor's random numbers made eager's with ``fallback_random``): one step's losses to 1e-5
  relative and gradients to 1e-4 relative of the eager step's (issue 14's tolerances).
* The SB3 contract (tests/sb3_contract.py) eager and compiled (the ``aot_eager`` backend: the
  same tracing and AOTAutograd as inductor without its code generation, to keep it fast).
* A model trained compiled and loaded eager predicts identically, and the reverse.
"""

from __future__ import annotations

import zipfile
from functools import partial
from pathlib import Path

import compile_checks as checks
import pytest
import torch
from compile_checks import eager_random, one_thread  # noqa: F401 (fixtures)
from stable_baselines3 import SAC

from maxbench.algos.engine_sac import EngineSAC
from maxbench.engine.replay import TensorReplayBuffer

from sb3_contract import SB3Contract

TINY = {
    "learning_starts": 10,
    "batch_size": 16,
    "buffer_size": 500,
    "policy_kwargs": {"net_arch": [16, 16]},
}


class TestEngineSACContract(SB3Contract):
    algorithm = EngineSAC
    hyperparams = dict(TINY)
    logger_keys = ("train/actor_loss", "train/critic_loss", "train/ent_coef", "train/ent_coef_loss")


@pytest.mark.slow
class TestCompiledEngineSACContract(SB3Contract):
    algorithm = EngineSAC
    hyperparams = {**TINY, "compile": "aot_eager"}
    logger_keys = ("train/actor_loss", "train/critic_loss", "train/ent_coef")


@pytest.mark.parametrize("ent_coef", ["auto", 0.3])
def test_eager_steps_are_sb3_sacs(ent_coef):
    reference = checks.pendulum_model(SAC, TINY, ent_coef=ent_coef)
    engine = checks.pendulum_model(EngineSAC, TINY, ent_coef=ent_coef)
    for ours, theirs in zip(engine.policy.parameters(), reference.policy.parameters(), strict=True):
        assert torch.equal(ours, theirs)  # the device buffer draws nothing from torch's RNG
    for step, batch in enumerate(checks.pendulum_batches(1, 3)):
        checks.feed(reference, batch)
        checks.feed(engine, batch)
        for model in (reference, engine):
            torch.manual_seed(100 + step)
            model.train(1, 16)
        keys = ("train/critic_loss", "train/actor_loss", "train/ent_coef")
        checks.assert_logged_close(
            engine.logger.name_to_value, reference.logger.name_to_value, keys
        )
    checks.assert_parameters_close(engine, reference)


@pytest.mark.slow
@pytest.mark.usefixtures("eager_random")
def test_compiled_step_matches_the_eager_step():
    """inductor: one step's losses to 1e-5 and gradients to 1e-4 relative of eager's."""
    eager = checks.warmed_up(checks.pendulum_model(EngineSAC, TINY))
    # the policy's gradients only (log α's is set by hand in the step and not compared)
    gradients_of = partial(checks.policy_gradients, temperature=False)
    results = checks.eager_and_compiled_steps(eager, True, gradients_of=gradients_of)
    keys = ("train/critic_loss", "train/actor_loss", "train/ent_coef", "train/ent_coef_loss")
    checks.assert_close_steps(results, keys)


@checks.compiled_and_eager
def test_compiled_and_eager_models_load_into_each_other(tmp_path: Path, trained, loaded):
    checks.save_load_and_train_on(EngineSAC, TINY, tmp_path, trained, loaded)


def test_a_compiled_model_saves_no_compiled_function_or_parameter_swap(tmp_path: Path):
    model = EngineSAC("MlpPolicy", "Pendulum-v1", seed=0, compile="aot_eager", **TINY)
    model.learn(TINY["learning_starts"] + 4)
    assert {"_compiled_functions", "_parameter_swaps"} <= set(vars(model))
    model.save(tmp_path / "model.zip")
    with zipfile.ZipFile(tmp_path / "model.zip") as archive:
        data = archive.read("data").decode()
    assert "_compiled_functions" not in data and "_parameter_swaps" not in data
    loaded = EngineSAC.load(tmp_path / "model.zip", env=model.get_env())
    loaded.learn(TINY["learning_starts"] + 4)  # a loaded model makes its own
    assert loaded._parameter_swaps["actor"].module is loaded.actor


def test_the_replay_buffer_lives_on_the_device_and_options_are_checked():
    model = EngineSAC("MlpPolicy", "Pendulum-v1", seed=0, **TINY)
    assert isinstance(model.replay_buffer, TensorReplayBuffer)
    with pytest.raises(ValueError, match="compile must be"):
        EngineSAC("MlpPolicy", "Pendulum-v1", compile=1, **TINY)
    with pytest.raises(ValueError, match="gSDE"):
        EngineSAC("MlpPolicy", "Pendulum-v1", use_sde=True, **TINY)


def test_the_compiled_step_is_one_graph():
    """Compiled, the step's gradients are transforms and its optimiser steps are traced:
    dynamo makes one graph of it, with no break."""
    checks.assert_one_graph(EngineSAC, TINY)
