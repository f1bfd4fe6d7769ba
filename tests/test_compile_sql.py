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

from pathlib import Path

import compile_checks as checks
import pytest
import torch
from compile_checks import eager_random, one_thread  # noqa: F401 (fixtures)

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


@pytest.mark.slow
class TestCompiledSQLContract(SB3Contract):
    algorithm = SQL
    hyperparams = {**TINY, "compile": "aot_eager"}
    logger_keys = ("train/actor_loss", "train/critic_loss", "train/ent_coef", "train/soft_value")


@pytest.mark.slow
@pytest.mark.usefixtures("eager_random")
def test_compiled_step_matches_the_eager_step():
    """inductor: one step's logged values to 1e-5 and gradients to 1e-4 relative of eager's."""
    import torch._dynamo

    torch._dynamo.reset()  # no cache entries left by other tests' models
    eager = checks.warmed_up(checks.pendulum_model(SQL, TINY))
    results = checks.eager_and_compiled_steps(eager, True)
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] > 0  # it did compile
    trained = [*eager.actor.parameters(), *eager.critic.parameters()]
    checks.assert_close_steps(results, LOGGED, n_gradients=len(trained))


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
        model = checks.pendulum_model(SQL, TINY, compile=backend, **options)
        checks.feed(model, checks.pendulum_batches(4)[0])
        torch.manual_seed(9)
        model.train(2, 16)
        models[backend] = model
    eager, compiled = models[False], models["aot_eager"]
    checks.assert_logged_close(compiled.logger.name_to_value, eager.logger.name_to_value, LOGGED)
    checks.assert_parameters_close(compiled, eager)


@checks.compiled_and_eager
def test_compiled_and_eager_models_load_into_each_other(tmp_path: Path, trained, loaded):
    model, again = checks.save_load_and_train_on(SQL, TINY, tmp_path, trained, loaded)
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


def test_the_compiled_step_is_one_graph():
    """Compiled, the step's gradients are transforms (the Stein scores' inside the sampler's)
    and its optimiser steps are traced: dynamo makes one graph of it, with no break."""
    checks.assert_one_graph(SQL, TINY)
