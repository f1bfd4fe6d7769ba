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

import copy
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from stable_baselines3 import SAC
from stable_baselines3.common.logger import configure
from stable_baselines3.common.type_aliases import ReplayBufferSamples

from maxbench.algos.engine_sac import EngineSAC
from maxbench.engine.replay import TensorReplayBuffer

from sb3_contract import SB3Contract

TINY = {
    "learning_starts": 10,
    "batch_size": 16,
    "buffer_size": 500,
    "policy_kwargs": {"net_arch": [16, 16]},
}


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


class TestEngineSACContract(SB3Contract):
    algorithm = EngineSAC
    hyperparams = dict(TINY)
    logger_keys = ("train/actor_loss", "train/critic_loss", "train/ent_coef", "train/ent_coef_loss")


class TestCompiledEngineSACContract(SB3Contract):
    algorithm = EngineSAC
    hyperparams = {**TINY, "compile": "aot_eager"}
    logger_keys = ("train/actor_loss", "train/critic_loss", "train/ent_coef")


def _batch(generator: torch.Generator, n: int = 16) -> ReplayBufferSamples:
    return ReplayBufferSamples(
        observations=torch.randn(n, 3, generator=generator),
        actions=torch.rand(n, 1, generator=generator) * 2 - 1,
        next_observations=torch.randn(n, 3, generator=generator),
        dones=(torch.rand(n, 1, generator=generator) < 0.2).float(),
        rewards=torch.randn(n, 1, generator=generator),
    )


def _feed(model, batch: ReplayBufferSamples) -> None:
    model.replay_buffer.sample = lambda *args, **kwargs: batch


def _silent(model):
    model.set_logger(configure(None, [""]))
    return model


@pytest.mark.parametrize("ent_coef", ["auto", 0.3])
def test_eager_steps_are_sb3_sacs(ent_coef):
    kwargs = {**TINY, "ent_coef": ent_coef, "seed": 0}
    reference = _silent(SAC("MlpPolicy", "Pendulum-v1", **kwargs))
    engine = _silent(EngineSAC("MlpPolicy", "Pendulum-v1", **kwargs))
    for ours, theirs in zip(engine.policy.parameters(), reference.policy.parameters(), strict=True):
        assert torch.equal(ours, theirs)  # the device buffer draws nothing from torch's RNG
    generator = torch.Generator().manual_seed(1)
    for step in range(3):
        batch = _batch(generator)
        _feed(reference, batch)
        _feed(engine, batch)
        for model in (reference, engine):
            torch.manual_seed(100 + step)
            model.train(1, 16)
        for key in ("train/critic_loss", "train/actor_loss", "train/ent_coef"):
            ours, theirs = engine.logger.name_to_value[key], reference.logger.name_to_value[key]
            assert ours == pytest.approx(theirs, rel=1e-5), key
    for ours, theirs in zip(engine.policy.parameters(), reference.policy.parameters(), strict=True):
        torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-6)


def _gradients(model) -> list[torch.Tensor]:
    return [p.grad.clone() for p in model.policy.parameters() if p.grad is not None]


@pytest.mark.slow
def test_compiled_step_matches_the_eager_step():
    """inductor: one step's losses to 1e-5 and gradients to 1e-4 relative of eager's."""
    import torch._inductor.config as inductor_config

    with inductor_config.patch(fallback_random=True):
        _compare_one_step()


def _compare_one_step() -> None:
    eager = _silent(EngineSAC("MlpPolicy", "Pendulum-v1", seed=0, **TINY))
    warm = _batch(torch.Generator().manual_seed(0))
    _feed(eager, warm)
    torch.manual_seed(5)
    eager.train(2, 16)  # optimiser state that is not the initial one
    compiled = _silent(copy.deepcopy(eager))
    compiled.compile = True  # the copy compiles its own step
    batch = _batch(torch.Generator().manual_seed(3))
    results = {}
    for name, model in (("eager", eager), ("compiled", compiled)):
        _feed(model, batch)
        torch.manual_seed(7)
        model.train(1, 16)
        results[name] = (dict(model.logger.name_to_value), _gradients(model))
    for key in ("train/critic_loss", "train/actor_loss", "train/ent_coef", "train/ent_coef_loss"):
        assert results["compiled"][0][key] == pytest.approx(results["eager"][0][key], rel=1e-5)
    eager_grads, compiled_grads = results["eager"][1], results["compiled"][1]
    assert len(eager_grads) == len(compiled_grads) > 0
    for ours, theirs in zip(compiled_grads, eager_grads, strict=True):
        scale = theirs.abs().max().clamp_min(1e-8)
        assert ((ours - theirs).abs().max() / scale).item() < 1e-4


@pytest.mark.parametrize(("trained", "loaded"), [("aot_eager", False), (False, "aot_eager")])
def test_compiled_and_eager_models_load_into_each_other(tmp_path: Path, trained, loaded):
    model = EngineSAC("MlpPolicy", "Pendulum-v1", seed=0, compile=trained, **TINY)
    model.learn(40)
    model.save(tmp_path / "model.zip")
    again = EngineSAC.load(tmp_path / "model.zip", env=gym.make("Pendulum-v1"), compile=loaded)
    assert again.compile == loaded
    observations = np.random.default_rng(0).standard_normal((5, 3)).astype(np.float32)
    np.testing.assert_array_equal(
        model.predict(observations, deterministic=True)[0],
        again.predict(observations, deterministic=True)[0],
    )
    again.learn(20, reset_num_timesteps=False)  # and trains on


def test_the_replay_buffer_lives_on_the_device_and_options_are_checked():
    model = EngineSAC("MlpPolicy", "Pendulum-v1", seed=0, **TINY)
    assert isinstance(model.replay_buffer, TensorReplayBuffer)
    with pytest.raises(ValueError, match="compile must be"):
        EngineSAC("MlpPolicy", "Pendulum-v1", compile=1, **TINY)
    with pytest.raises(ValueError, match="gSDE"):
        EngineSAC("MlpPolicy", "Pendulum-v1", use_sde=True, **TINY)
