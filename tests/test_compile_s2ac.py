"""S2AC with ``compile`` (issue 14): the compiled step and acting pass are the eager ones.

* ``compile=True`` (inductor), from the same parameters, optimiser state, batch and noise
  (inductor's random numbers made eager's with ``fallback_random``): one gradient step's logged
  losses to 1e-5 relative and every gradient to 1e-4 relative of the eager step's, for
  S2AC(φ,θ) with α and T = α tuned, S2AC(φ) and S2AC(φ,θ,ψ); deterministic ``predict`` to 1e-5.
* The SB3 contract (tests/sb3_contract.py) compiled, with the ``aot_eager`` backend (the same
  tracing and AOTAutograd as inductor without its code generation, to keep it fast).
* A model trained compiled and loaded eager predicts identically, and the reverse.
* The eager path is today's: tests/test_s2ac*.py run it unchanged.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from stable_baselines3.common.logger import configure
from stable_baselines3.common.type_aliases import ReplayBufferSamples

from maxbench.algos.s2ac import S2AC
from maxbench.engine.replay import TensorReplayBuffer

from sb3_contract import SB3Contract

TINY: dict[str, Any] = {
    "learning_starts": 16,
    "random_exploration_steps": 0,
    "batch_size": 16,
    "train_freq": 1,
    "gradient_steps": 1,
    "n_particles": 4,
    "svgd_steps": 2,
    "buffer_size": 500,
    "policy_kwargs": {"net_arch": [16, 16]},
}
KEYS = ("train/actor_loss", "train/critic_loss", "train/ent_coef", "train/entropy")
VARIANTS = {
    "phi-theta-auto": {"ent_coef": "auto", "sampler_temperature": "alpha"},
    "phi": {"init": "fixed"},
    "phi-theta-psi": {"amortized": True},
}


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def eager_random():
    """Inductor draws its random numbers as eager PyTorch does (``fallback_random``)."""
    import torch._inductor.config as inductor_config

    with inductor_config.patch(fallback_random=True):
        yield


class TestCompiledS2ACContract(SB3Contract):
    algorithm = S2AC
    hyperparams = {**TINY, "ent_coef": "auto", "compile": "aot_eager"}
    logger_keys = (*KEYS, "train/ent_coef_loss")


class TestCompiledAmortizedS2ACContract(SB3Contract):
    algorithm = S2AC
    hyperparams = {**TINY, "amortized": True, "compile": "aot_eager"}
    logger_keys = (*KEYS, "train/amortized_loss")


def _batch(generator: torch.Generator, n: int = 16) -> ReplayBufferSamples:
    return ReplayBufferSamples(
        observations=torch.randn(n, 3, generator=generator),
        actions=torch.rand(n, 1, generator=generator) * 2 - 1,
        next_observations=torch.randn(n, 3, generator=generator),
        dones=(torch.rand(n, 1, generator=generator) < 0.2).float(),
        rewards=torch.randn(n, 1, generator=generator),
    )


def _feed(model: S2AC, batch: ReplayBufferSamples) -> None:
    model.replay_buffer.sample = lambda *args, **kwargs: batch  # type: ignore[union-attr,method-assign]


def _silent(model: S2AC) -> S2AC:
    model.set_logger(configure(None, [""]))
    return model


def _gradients(model: S2AC) -> list[torch.Tensor]:
    grads = [p.grad.clone() for p in model.policy.parameters() if p.grad is not None]
    if model.log_ent_coef is not None and model.log_ent_coef.grad is not None:
        grads.append(model.log_ent_coef.grad.clone())
    return grads


def _assert_relative(ours: torch.Tensor, theirs: torch.Tensor, tolerance: float) -> None:
    scale = theirs.abs().max().clamp_min(1e-8)
    assert ((ours - theirs).abs().max() / scale).item() < tolerance


@pytest.mark.slow
@pytest.mark.parametrize(
    ("variant", "backend"),
    [("phi-theta-auto", True), ("phi-theta-psi", True), ("phi", "aot_eager")],
)
def test_compiled_step_matches_the_eager_step(eager_random, variant, backend):
    """One step's losses to 1e-5 and gradients to 1e-4 relative of eager's (inductor for the
    variants with an actor to train; S2AC(φ), whose step is a part of theirs, traced only)."""
    eager = _silent(S2AC("MlpPolicy", "Pendulum-v1", seed=0, **TINY, **VARIANTS[variant]))
    _feed(eager, _batch(torch.Generator().manual_seed(0)))
    torch.manual_seed(5)
    eager.train(2, 16)  # optimiser state that is not the initial one
    compiled = _silent(copy.deepcopy(eager))
    compiled.compile = backend  # the copy compiles its own step
    batch = _batch(torch.Generator().manual_seed(3))
    results = {}
    for name, model in (("eager", eager), ("compiled", compiled)):
        _feed(model, batch)
        torch.manual_seed(7)
        model.train(1, 16)
        results[name] = (dict(model.logger.name_to_value), _gradients(model))
    logged, expected = results["compiled"][0], results["eager"][0]
    keys = [key for key in expected if key.startswith("train/") and key != "train/n_updates"]
    assert set(KEYS) <= set(keys)
    for key in keys:
        assert logged[key] == pytest.approx(expected[key], rel=1e-5, abs=1e-7), key
    eager_grads, compiled_grads = results["eager"][1], results["compiled"][1]
    assert len(eager_grads) == len(compiled_grads) > 0
    for ours, theirs in zip(compiled_grads, eager_grads, strict=True):
        _assert_relative(ours, theirs, 1e-4)
    for ours, theirs in zip(compiled.policy.parameters(), eager.policy.parameters(), strict=True):
        torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-6)


@pytest.mark.slow
def test_compiled_acting_matches_eager_acting(eager_random):
    """inductor: deterministic ``predict`` (SVGD from the fixed draws, arg-max) to 1e-5."""
    eager = S2AC("MlpPolicy", "Pendulum-v1", seed=0, **TINY)
    compiled = copy.deepcopy(eager)
    compiled.compile = True
    observations = np.random.default_rng(0).standard_normal((7, 3)).astype(np.float32)
    for batch in (observations[:1], observations):
        ours = compiled.predict(batch, deterministic=True)[0]
        theirs = eager.predict(batch, deterministic=True)[0]
        np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6)
    assert compiled.policy.compiled_act is not None and eager.policy.compiled_act is None


@pytest.mark.parametrize(("trained", "loaded"), [("aot_eager", False), (False, "aot_eager")])
def test_compiled_and_eager_models_load_into_each_other(tmp_path: Path, trained, loaded):
    model = S2AC("MlpPolicy", "Pendulum-v1", seed=0, compile=trained, **TINY)
    model.learn(40)
    model.save(tmp_path / "model.zip")
    again = S2AC.load(tmp_path / "model.zip", env=gym.make("Pendulum-v1"), compile=loaded)
    assert again.compile == loaded
    observations = np.random.default_rng(0).standard_normal((5, 3)).astype(np.float32)
    np.testing.assert_array_equal(
        model.predict(observations, deterministic=True)[0],
        again.predict(observations, deterministic=True)[0],
    )
    again.learn(20, reset_num_timesteps=False)  # and trains on


def test_compile_puts_the_replay_buffer_on_the_device_and_is_checked():
    eager = S2AC("MlpPolicy", "Pendulum-v1", seed=0, **TINY)
    compiled = S2AC("MlpPolicy", "Pendulum-v1", seed=0, compile="aot_eager", **TINY)
    assert not isinstance(eager.replay_buffer, TensorReplayBuffer)
    assert isinstance(compiled.replay_buffer, TensorReplayBuffer)
    compiled.learn(20)  # the optimisers are tuned as training starts
    assert compiled.critic.optimizer.param_groups[0]["foreach"] is True
    assert eager.critic.optimizer.param_groups[0]["foreach"] is None
    with pytest.raises(ValueError, match="compile must be"):
        S2AC("MlpPolicy", "Pendulum-v1", compile=1, **TINY)
