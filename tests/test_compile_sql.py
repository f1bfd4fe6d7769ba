"""SQL's ``compile`` option (issue 14): one fused gradient step, eager or ``torch.compile``'d.

* ``compile=True`` (inductor), from the same parameters, optimiser state, batch and noise
  (inductor's random numbers made eager's with ``fallback_random``): one step's logged values to
  1e-5 relative and every gradient to 1e-4 relative of the eager step's (issue 14's tolerances).
* ``aot_eager`` (the same traced graphs, run eagerly) gives the eager steps' values, for the
  default options and for the S2AC authors' (sampler particles for V, independent Stein draws).
* The eager step's Stein scores (``torch.func.grad``) are ``torch.autograd.grad``'s, exactly.
* The SB3 contract (tests/sb3_contract.py) compiled with the ``aot_eager`` backend (the same
  tracing and AOTAutograd as inductor without its code generation, to keep it fast).
* A model trained compiled and loaded eager predicts identically, and the reverse; a bad
  ``compile`` value is refused.
"""

from __future__ import annotations

import copy
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from stable_baselines3.common.logger import configure
from stable_baselines3.common.type_aliases import ReplayBufferSamples

from maxbench.algos.sql import SQL, min_q_over_particles
from maxbench.algos.sql.sql import stein_scores
from maxbench.engine.replay import TensorReplayBuffer

from sb3_contract import SB3Contract

TINY = {
    "learning_starts": 16,
    "batch_size": 16,
    "buffer_size": 500,
    "value_n_particles": 8,
    "kernel_n_particles": 8,
    "policy_kwargs": {"net_arch": [16, 16], "n_eval_particles": 6},
}

#: The S2AC authors' options (the ``sql-s2ac`` preset's estimator, draws and temperature).
AUTHORS = {"value_estimator": "particles", "stein_draws": "independent", "sampler_temperature": 1.0}

LOGGED = ("train/critic_loss", "train/actor_loss", "train/soft_value")


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


class TestCompiledSQLContract(SB3Contract):
    algorithm = SQL
    hyperparams = {**TINY, "compile": "aot_eager"}
    logger_keys = ("train/actor_loss", "train/critic_loss", "train/ent_coef", "train/soft_value")


def _batch(generator: torch.Generator, n: int = 16) -> ReplayBufferSamples:
    return ReplayBufferSamples(
        observations=torch.randn(n, 3, generator=generator),
        actions=torch.rand(n, 1, generator=generator) * 2 - 1,
        next_observations=torch.randn(n, 3, generator=generator),
        dones=(torch.rand(n, 1, generator=generator) < 0.2).float(),
        rewards=torch.randn(n, 1, generator=generator),
    )


def _feed(model: SQL, batch: ReplayBufferSamples) -> None:
    model.replay_buffer.sample = lambda *args, **kwargs: batch  # type: ignore[method-assign]


def _silent(model: SQL) -> SQL:
    model.set_logger(configure(None, [""]))
    return model


def _gradients(model: SQL) -> list[torch.Tensor]:
    return [p.grad.clone() for p in model.policy.parameters() if p.grad is not None]


@pytest.mark.slow
def test_compiled_step_matches_the_eager_step():
    """inductor: one step's logged values to 1e-5 and gradients to 1e-4 relative of eager's."""
    import torch._dynamo
    import torch._inductor.config as inductor_config

    torch._dynamo.reset()  # no cache entries left by other tests' models
    with inductor_config.patch(fallback_random=True):
        results = _eager_and_inductor_steps()
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] > 0  # it did compile
    for key in LOGGED:
        assert results["compiled"][0][key] == pytest.approx(results["eager"][0][key], rel=1e-5)
    eager_grads, compiled_grads = results["eager"][1], results["compiled"][1]
    assert len(eager_grads) == len(compiled_grads) == len(results["eager"][2])
    for ours, theirs in zip(compiled_grads, eager_grads, strict=True):
        scale = theirs.abs().max().clamp_min(1e-8)
        assert ((ours - theirs).abs().max() / scale).item() < 1e-4


def _eager_and_inductor_steps() -> dict[str, tuple]:
    """One step of a model and of its inductor-compiled copy, from the same state and noise."""
    eager = _silent(SQL("MlpPolicy", "Pendulum-v1", seed=0, **TINY))
    _feed(eager, _batch(torch.Generator().manual_seed(0)))
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
        trained = [*model.actor.parameters(), *model.critic.parameters()]
        results[name] = (dict(model.logger.name_to_value), _gradients(model), trained)
    return results


def test_stein_scores_are_autograd_scores():
    """``torch.func.grad`` under ``no_grad`` gives ``autograd.grad``'s numbers, bit for bit,
    and records no graph to the critic's parameters."""
    model = SQL("MlpPolicy", "Pendulum-v1", seed=0, **TINY)
    generator = torch.Generator().manual_seed(2)
    observations = torch.randn(4, 3, generator=generator)
    particles = torch.rand(4, 8, 1, generator=generator) * 2 - 1

    def log_target(a: torch.Tensor) -> torch.Tensor:
        return min_q_over_particles(model.critic, observations, a) / 0.2

    scores = stein_scores(log_target, particles)
    leaf = particles.clone().requires_grad_(True)
    (expected,) = torch.autograd.grad(log_target(leaf).sum(), leaf)
    assert not scores.requires_grad
    assert torch.equal(scores, expected)
    assert scores.abs().max() > 0


@pytest.mark.parametrize("options", [{}, AUTHORS], ids=["default", "authors"])
def test_the_aot_eager_steps_are_the_eager_steps(options):
    """Two steps from the same state: ``aot_eager`` runs the eager mathematics (same values)."""
    models = {}
    for backend in (False, "aot_eager"):
        model = _silent(SQL("MlpPolicy", "Pendulum-v1", seed=0, compile=backend, **TINY, **options))
        _feed(model, _batch(torch.Generator().manual_seed(4)))
        torch.manual_seed(9)
        model.train(2, 16)
        models[backend] = model
    eager, compiled = models[False], models["aot_eager"]
    for key in LOGGED:
        ours, theirs = compiled.logger.name_to_value[key], eager.logger.name_to_value[key]
        assert ours == pytest.approx(theirs, rel=1e-5), key
    for ours, theirs in zip(compiled.policy.parameters(), eager.policy.parameters(), strict=True):
        torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(("trained", "loaded"), [("aot_eager", False), (False, "aot_eager")])
def test_compiled_and_eager_models_load_into_each_other(tmp_path: Path, trained, loaded):
    model = SQL("MlpPolicy", "Pendulum-v1", seed=0, compile=trained, **TINY)
    model.learn(40)
    model.save(tmp_path / "model.zip")
    again = SQL.load(tmp_path / "model.zip", env=gym.make("Pendulum-v1"), compile=loaded)
    assert again.compile == loaded
    observations = np.random.default_rng(0).standard_normal((5, 3)).astype(np.float32)
    np.testing.assert_array_equal(
        model.predict(observations, deterministic=True)[0],
        again.predict(observations, deterministic=True)[0],
    )
    again.learn(20, reset_num_timesteps=False)  # and trains on
    assert again._n_updates > model._n_updates


def test_compile_puts_the_replay_buffer_on_the_device_and_is_checked():
    assert isinstance(
        SQL("MlpPolicy", "Pendulum-v1", compile="aot_eager", **TINY).replay_buffer,
        TensorReplayBuffer,
    )
    assert not isinstance(SQL("MlpPolicy", "Pendulum-v1", **TINY).replay_buffer, TensorReplayBuffer)
    for bad in (1, "", None):
        with pytest.raises(ValueError, match="compile must be"):
            SQL("MlpPolicy", "Pendulum-v1", compile=bad, **TINY)
