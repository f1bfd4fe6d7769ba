"""BSAC's ``compile`` option (maxbench issue 14): one gradient-step function, eager or compiled.

* Eager (the default), ``train`` is the step it was before issue 14, bit for bit: the same
  parameters, optimiser states and logged values as the loop written out here from BSAC's pieces
  (VDN-a heads, projected moments, forward KL, VDN-a regression terms) and SAC's own code (SB3's
  ``actor.action_log_prob``, the temperature loss by autograd, SB3's Polyak update), from the same
  batches and seeds. (tests/test_bsac.py checks ``forward_steps=0`` against SB3's SAC itself.)
* ``compile=True`` (inductor), from the same parameters, optimiser state, batch and noise
  (inductor's random numbers made eager's with ``fallback_random``): one step's logged values to
  1e-5 relative and every gradient to 1e-4 relative of the eager step's (issue 14's tolerances).
  The ``aot_eager`` backend (the same tracing, no code generation) is held to the same
  tolerances, over steps with and without the forward step, and on SAC's step alone.
* The SB3 contract (tests/sb3_contract.py) with ``compile="aot_eager"``.
* A model trained compiled and loaded eager predicts identically and trains on, and the reverse;
  the replay buffer follows the loaded model's own ``compile``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import compile_checks as checks
import numpy as np
import pytest
import torch
from compile_checks import eager_random, one_thread  # noqa: F401 (fixtures)
from stable_baselines3.common.buffers import NStepReplayBuffer, ReplayBuffer
from stable_baselines3.common.type_aliases import ReplayBufferSamples
from stable_baselines3.common.utils import polyak_update
from torch.nn import functional as F

from maxbench.algos.bsac import BSAC, forward_kl_loss
from maxbench.engine.replay import TensorReplayBuffer

from sb3_contract import SB3Contract

TINY = {
    "learning_starts": 16,
    "batch_size": 16,
    "grid_size": 16,
    "policy_kwargs": {"net_arch": [16, 16]},
}
LOGGED = (
    "train/ent_coef",
    "train/ent_coef_loss",
    "train/critic_loss",
    "train/actor_loss",
    "train/forward_kl",
    "train/forward_target_std",
    "train/forward_grad_norm",
    "train/vdn_loss",
    "train/vdn_shape_loss",
)


def _model(**overrides: Any) -> BSAC:
    return checks.pendulum_model(BSAC, TINY, **overrides)


def _trained_tensors(model: BSAC) -> list[torch.Tensor]:
    """The tensors BSAC trains: actor, critic, VDN-a (if any) and log α (if learned)."""
    tensors = [*model.actor.parameters(), *model.critic.parameters()]
    if model.vdn is not None:
        tensors.extend(model.vdn.parameters())
    if model.log_ent_coef is not None:
        tensors.append(model.log_ent_coef)
    return tensors


def _gradients(model: BSAC) -> list[torch.Tensor]:
    return checks.gradients(_trained_tensors(model))


def _state(model: BSAC) -> list[torch.Tensor]:
    """Every parameter, buffer and optimiser moment of the model (VDN-a's too), in a fixed order."""
    if model.vdn is None:
        return checks.model_state(model)
    return checks.model_state(model, model.vdn.optimizer, model.actor.forward_optimizer)


def _forward_step(model: BSAC, observations: torch.Tensor, coefficients: torch.Tensor) -> dict:
    """BSAC's forward step as it was before issue 14 (floats read after every step)."""
    target_mean, target_var = model.projected_moments(observations, coefficients)
    losses, norms = [], []
    for _ in range(model.forward_steps):
        mean, var = model.actor_gaussian(observations)
        loss = forward_kl_loss(target_mean, target_var, mean, var)
        model.actor.forward_optimizer.zero_grad()
        loss.backward()
        grads = [p.grad for p in model.actor.parameters() if p.grad is not None]
        norms.append(torch.linalg.vector_norm(torch.stack([g.norm() for g in grads])).item())
        model.actor.forward_optimizer.step()
        losses.append(loss.item())
    return {
        "train/forward_kl": np.mean(losses),
        "train/forward_target_std": target_var.sqrt().mean().item(),
        "train/forward_grad_norm": np.mean(norms),
    }


def _sac_step(model: BSAC, data: ReplayBufferSamples, logged: dict[str, list]) -> tuple:
    """SAC's step as SB3's ``SAC.train`` writes it; returns what the VDN-a regression needs."""
    actions_pi, log_prob = model.actor.action_log_prob(data.observations)
    log_prob = log_prob.reshape(-1, 1)
    if model.ent_coef_optimizer is not None and model.log_ent_coef is not None:
        ent_coef = torch.exp(model.log_ent_coef.detach())
        shifted = (log_prob + model.target_entropy).detach()
        ent_coef_loss = -(model.log_ent_coef * shifted).mean()
        logged["train/ent_coef_loss"].append(ent_coef_loss.item())
        model.ent_coef_optimizer.zero_grad()
        ent_coef_loss.backward()
        model.ent_coef_optimizer.step()
    else:
        ent_coef = model.ent_coef_tensor
    logged["train/ent_coef"].append(ent_coef.item())
    with torch.no_grad():
        next_actions, next_log_prob = model.actor.action_log_prob(data.next_observations)
        next_q = torch.cat(model.critic_target(data.next_observations, next_actions), dim=1)
        next_q = torch.min(next_q, dim=1, keepdim=True)[0] - ent_coef * next_log_prob[:, None]
        target_q = data.rewards + (1 - data.dones) * model.gamma * next_q
    current_q = model.critic(data.observations, data.actions)
    critic_loss = 0.5 * sum(F.mse_loss(q, target_q) for q in current_q)
    logged["train/critic_loss"].append(critic_loss.item())
    model.critic.optimizer.zero_grad()
    critic_loss.backward()
    model.critic.optimizer.step()
    min_qf_pi = torch.cat(model.critic(data.observations, actions_pi), dim=1).min(1, True)[0]
    actor_loss = (ent_coef * log_prob - min_qf_pi).mean()
    logged["train/actor_loss"].append(actor_loss.item())
    if model.reverse_step:
        model.actor.optimizer.zero_grad()
        actor_loss.backward()
        model.actor.optimizer.step()
    return current_q, actions_pi, min_qf_pi


def _reference_steps(model: BSAC, batches: list[ReplayBufferSamples]) -> dict[str, list]:
    """The gradient steps of BSAC's ``train`` before issue 14, written out from its pieces."""
    model.policy.set_training_mode(True)
    logged: dict[str, list] = {key: [] for key in LOGGED}
    for step, data in enumerate(batches):
        if model.use_sde:
            model.actor.reset_noise()
        heads = model.vdn.heads(data.observations)
        if (model._n_updates + step) % model.forward_freq == 0:
            forward = _forward_step(model, data.observations, heads.coefficients.detach())
            for key, value in forward.items():
                logged[key].append(value)
        current_q, actions_pi, min_qf_pi = _sac_step(model, data, logged)
        if step % model.target_update_interval == 0:
            polyak_update(model.critic.parameters(), model.critic_target.parameters(), model.tau)
        replay_min_q = torch.cat(current_q, dim=1).min(1, True)[0]
        level, shape = model.vdn.regression_terms(
            data.observations,
            torch.stack([data.actions, actions_pi.detach()], dim=1),
            torch.cat([replay_min_q, min_qf_pi], dim=1).detach(),
            heads,
        )
        model.vdn.optimizer.zero_grad()
        (level + shape).backward()
        model.vdn.optimizer.step()
        logged["train/vdn_loss"].append(level.item())  # the mean of both is summed below
        logged["train/vdn_shape_loss"].append(shape.item())
    model._n_updates += len(batches)
    logged["train/vdn_loss"] = [
        np.mean(logged["train/vdn_loss"]) + np.mean(logged["train/vdn_shape_loss"])
    ]
    return logged


@pytest.mark.parametrize(
    "options",
    [
        {"forward_steps": 2, "forward_freq": 2, "target_update_interval": 2},
        {"ent_coef": 0.3, "reverse_step": False},
        {"use_sde": True},
    ],
)
def test_the_eager_step_is_the_step_before_issue_14(options: dict[str, Any]) -> None:
    # Two models from one seed (a deep copy fails under gSDE: its noise matrix is no leaf).
    model, reference = (checks.silent(_model(**options).learn(40)) for _ in range(2))
    checks.assert_train_is_reference(model, reference, _reference_steps, _state, more_than=30)


@pytest.mark.slow
@pytest.mark.usefixtures("eager_random")
def test_compiled_step_matches_the_eager_step() -> None:
    """inductor: one step's logged values to 1e-5 and gradients to 1e-4 relative of eager's."""
    eager = checks.warmed_up(_model())
    results = checks.eager_and_compiled_steps(eager, True, gradients_of=_gradients)
    # every trained tensor has a gradient
    checks.assert_close_steps(results, LOGGED, n_gradients=len(_trained_tensors(eager)))


@pytest.mark.parametrize(
    ("options", "keys"),
    [
        ({"forward_freq": 2}, LOGGED),  # one step without the forward step, one with it
        ({"forward_steps": 0, "ent_coef": 0.3}, LOGGED[:1] + LOGGED[2:4]),  # SAC's step alone
    ],
)
def test_aot_eager_steps_match_the_eager_steps(
    options: dict[str, Any], keys: tuple[str, ...]
) -> None:
    eager = checks.warmed_up(_model(**options))
    results = checks.eager_and_compiled_steps(eager, "aot_eager", steps=2, gradients_of=_gradients)
    checks.assert_close_steps(results, keys)


@pytest.mark.slow
class TestCompiledBSACContract(SB3Contract):
    algorithm = BSAC
    hyperparams = {**TINY, "compile": "aot_eager"}
    logger_keys = LOGGED


@checks.compiled_and_eager
def test_compiled_and_eager_models_load_into_each_other(
    tmp_path: Path, trained: bool | str, loaded: bool | str
) -> None:
    model, again = checks.save_load_and_train_on(
        BSAC, TINY, tmp_path, trained, loaded, eager_buffer=ReplayBuffer
    )
    if loaded:  # the saved optimiser states carry the eager kernels: compiled, multi-tensor
        optimizers = [again.actor.optimizer, again.critic.optimizer, again.vdn.optimizer]
        assert all(optimizer.param_groups[0]["foreach"] is True for optimizer in optimizers)
    assert again._n_updates > model._n_updates


def test_compile_option_is_checked_and_sets_the_buffer_and_optimisers() -> None:
    for bad in (1, "", None):
        with pytest.raises(ValueError, match="compile must be"):
            _model(compile=bad)
    eager = _model()
    assert eager.compile is False and type(eager.replay_buffer) is ReplayBuffer
    assert eager.vdn.optimizer.param_groups[0]["foreach"] is None
    compiled = _model(compile="aot_eager")
    assert isinstance(compiled.replay_buffer, TensorReplayBuffer)
    compiled.learn(40)  # the optimisers are tuned as training starts
    tuned = [compiled.actor.optimizer, compiled.critic.optimizer, compiled.ent_coef_optimizer]
    tuned += [compiled.vdn.optimizer, compiled.actor.forward_optimizer]
    assert all(optimizer.param_groups[0]["foreach"] is True for optimizer in tuned)
    # The device buffer has no n-step returns: with n_steps > 1, SB3's n-step buffer stays.
    assert isinstance(_model(compile="aot_eager", n_steps=3).replay_buffer, NStepReplayBuffer)


def test_the_compiled_step_is_one_graph():
    """Compiled, the step's gradients are transforms and its optimiser steps are traced:
    dynamo makes one graph of it, with no break."""
    checks.assert_one_graph(BSAC, TINY)
