"""SoftGAC's ``compile`` option (maxbench issue 14): one gradient-step function, eager or compiled.

* Eager (the default), ``train`` is the step it was before issue 14, bit for bit: the same
  parameters, optimiser states and logged values as the loop written out here from the losses
  (``_critic_loss``, ``_actor_loss``, ``temperature_loss`` by autograd) and SB3's Polyak update,
  from the same batches and seeds.
* ``compile=True`` (inductor), from the same parameters, optimiser state, batch and noise
  (inductor's random numbers made eager's with ``fallback_random``): one step's logged values to
  1e-5 relative and every gradient to 1e-4 relative of the eager step's (issue 14's tolerances).
  The ``aot_eager`` backend (the same tracing, no code generation) is held to the same
  tolerances on both critic types and on steps with and without the actor update.
* The SB3 contract (tests/sb3_contract.py) with ``compile="aot_eager"``.
* A model trained compiled and loaded eager predicts identically and trains on, and the reverse;
  the replay buffer follows the loaded model's own ``compile``.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import compile_checks as checks
import pytest
from compile_checks import eager_random, one_thread  # noqa: F401 (fixtures)
from stable_baselines3.common.buffers import NStepReplayBuffer, ReplayBuffer
from stable_baselines3.common.type_aliases import ReplayBufferSamples
from stable_baselines3.common.utils import polyak_update

from maxbench.algos.softgac import SoftGAC
from maxbench.engine.replay import TensorReplayBuffer

from sb3_contract import SB3Contract

TINY_POLICY = {"net_arch": [16, 16], "n_bridge_steps": 3, "bridge_hidden_size": 16}
TINY = {
    "learning_starts": 16,
    "batch_size": 16,
    "gradient_steps": 1,
    "policy_delay": 1,
    "policy_kwargs": TINY_POLICY,
}
LOGGED = (
    "train/ent_coef",
    "train/critic_loss",
    "train/actor_loss",
    "train/control_energy",
    "train/ent_coef_loss",
)


def _model(**overrides: Any) -> SoftGAC:
    return checks.pendulum_model(SoftGAC, TINY, **overrides)


def _reference_steps(model: SoftGAC, batches: list[ReplayBufferSamples]) -> dict[str, list]:
    """The gradient steps of SoftGAC's ``train`` before issue 14, written out from its losses."""
    model.policy.set_training_mode(True)
    logged: dict[str, list] = {key: [] for key in LOGGED}
    for data in batches:
        model._n_updates += 1
        alpha = model.current_alpha()
        logged["train/ent_coef"].append(alpha.item())
        critic_loss = model._critic_loss(data, alpha)
        logged["train/critic_loss"].append(critic_loss.item())
        model.critic.optimizer.zero_grad()
        critic_loss.backward()
        model.critic.optimizer.step()
        if model._n_updates % model.policy_delay == 0:
            actor_loss, mean_energy = model._actor_loss(data.observations, alpha)
            logged["train/actor_loss"].append(actor_loss.item())
            logged["train/control_energy"].append(mean_energy.item())
            model.actor.optimizer.zero_grad()
            actor_loss.backward(inputs=list(model.actor.parameters()))
            model.actor.optimizer.step()
            alpha_loss = model.temperature_loss(mean_energy)
            if alpha_loss is not None and model.ent_coef_optimizer is not None:
                logged["train/ent_coef_loss"].append(alpha_loss.item())
                model.ent_coef_optimizer.zero_grad()
                alpha_loss.backward()
                model.ent_coef_optimizer.step()
        if model.critic_target is not None and model._n_updates % model.target_update_interval == 0:
            polyak_update(model.critic.parameters(), model.critic_target.parameters(), model.tau)
            polyak_update(model.batch_norm_stats, model.batch_norm_stats_target, 1.0)
    return logged


@pytest.mark.parametrize(
    "options",
    [
        {"policy_delay": 2},
        {"ent_coef": 0.3, "n_particles": 3, "particle_scheme": "antithetic"},
        {"critic_type": "crossq", "target_reduction": "mean", "log_volume_bonus": True},
    ],
)
def test_the_eager_step_is_the_step_before_issue_14(options: dict[str, Any]) -> None:
    model = _model(**options)
    model.learn(40)
    reference = checks.silent(copy.deepcopy(model))
    checks.assert_train_is_reference(
        model, reference, _reference_steps, checks.model_state, more_than=20
    )


@pytest.mark.slow
@pytest.mark.usefixtures("eager_random")
def test_compiled_step_matches_the_eager_step() -> None:
    """inductor: one step's logged values to 1e-5 and gradients to 1e-4 relative of eager's."""
    eager = checks.warmed_up(_model())
    trained = [*eager.actor.parameters(), *eager.critic.parameters(), eager.log_ent_coef]
    results = checks.eager_and_compiled_steps(eager, True)
    # every trained tensor has a gradient
    checks.assert_close_steps(results, LOGGED, n_gradients=len(trained))


@pytest.mark.parametrize("critic_type", ["twin", "crossq"])
def test_aot_eager_steps_match_the_eager_steps(critic_type: str) -> None:
    """Two steps with ``policy_delay=2``: one without and one with the actor update."""
    eager = checks.warmed_up(_model(critic_type=critic_type, policy_delay=2))
    checks.assert_close_steps(checks.eager_and_compiled_steps(eager, "aot_eager", steps=2), LOGGED)


@pytest.mark.slow
class TestCompiledSoftGACContract(SB3Contract):
    algorithm = SoftGAC
    hyperparams = {**TINY, "compile": "aot_eager"}
    learn_steps = 32
    logger_keys = LOGGED


@checks.compiled_and_eager
def test_compiled_and_eager_models_load_into_each_other(
    tmp_path: Path, trained: bool | str, loaded: bool | str
) -> None:
    model, again = checks.save_load_and_train_on(
        SoftGAC, TINY, tmp_path, trained, loaded, eager_buffer=ReplayBuffer
    )
    assert again._n_updates > model._n_updates
    if loaded:  # the saved optimiser states carry the eager kernels: compiled, multi-tensor
        for optimizer in (again.actor.optimizer, again.critic.optimizer):
            assert optimizer.param_groups[0]["foreach"] is True
            assert optimizer.param_groups[0]["fused"] is False


def test_compile_option_is_checked_and_sets_the_buffer_and_optimisers() -> None:
    for bad in (1, "", None):
        with pytest.raises(ValueError, match="compile must be"):
            _model(compile=bad)
    eager = _model()
    assert eager.compile is False and type(eager.replay_buffer) is ReplayBuffer
    assert eager.actor.optimizer.param_groups[0]["foreach"] is None
    assert eager.actor.optimizer.param_groups[0]["fused"] is True  # the policy's default
    compiled = _model(compile="aot_eager")
    assert isinstance(compiled.replay_buffer, TensorReplayBuffer)
    compiled.learn(40)  # the optimisers are tuned as training starts
    tuned = [compiled.actor.optimizer, compiled.critic.optimizer, compiled.ent_coef_optimizer]
    for optimizer in tuned:  # multi-tensor: torch.compile does not trace a fused optimiser
        assert optimizer.param_groups[0]["foreach"] is True
        assert not optimizer.param_groups[0]["fused"]
    # The device buffer has no n-step returns: with n_steps > 1, SB3's n-step buffer stays.
    n_step = _model(compile="aot_eager", n_steps=3)
    assert isinstance(n_step.replay_buffer, NStepReplayBuffer)


def test_the_compiled_step_is_one_graph():
    """Compiled, the step's gradients are transforms and its optimiser steps are traced:
    dynamo makes one graph of it, with no break."""
    checks.assert_one_graph(SoftGAC, TINY)
