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

import gymnasium as gym
import numpy as np
import pytest
import torch
from stable_baselines3.common.buffers import NStepReplayBuffer, ReplayBuffer
from stable_baselines3.common.logger import configure
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


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _silent(model: SoftGAC) -> SoftGAC:
    model.set_logger(configure(None, [""]))
    return model


def _model(**overrides: Any) -> SoftGAC:
    return _silent(SoftGAC("MlpPolicy", "Pendulum-v1", seed=0, **{**TINY, **overrides}))


def _batch(generator: torch.Generator, n: int = 16) -> ReplayBufferSamples:
    return ReplayBufferSamples(
        observations=torch.randn(n, 3, generator=generator),
        actions=torch.rand(n, 1, generator=generator) * 2 - 1,
        next_observations=torch.randn(n, 3, generator=generator),
        dones=(torch.rand(n, 1, generator=generator) < 0.2).float(),
        rewards=torch.randn(n, 1, generator=generator),
    )


def _feed(model: SoftGAC, batches: list[ReplayBufferSamples]) -> None:
    """Make the replay buffer return ``batches`` in turn."""
    queue = list(batches)
    model.replay_buffer.sample = lambda *args, **kwargs: queue.pop(0)  # type: ignore[union-attr]


def _gradients(model: SoftGAC) -> list[torch.Tensor]:
    grads = [p.grad.clone() for p in model.policy.parameters() if p.grad is not None]
    if model.log_ent_coef is not None and model.log_ent_coef.grad is not None:
        grads.append(model.log_ent_coef.grad.clone())
    return grads


def _state(model: SoftGAC) -> list[torch.Tensor]:
    """Every parameter, buffer and optimiser moment of the model, in a fixed order."""
    tensors = list(model.policy.state_dict().values())
    optimizers = [model.actor.optimizer, model.critic.optimizer, model.ent_coef_optimizer]
    for optimizer in optimizers:
        if optimizer is not None:
            for slots in optimizer.state.values():
                tensors.extend(torch.as_tensor(slots[key]) for key in sorted(slots))
    if model.log_ent_coef is not None:
        tensors.append(model.log_ent_coef.detach())
    return tensors


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
    reference = _silent(copy.deepcopy(model))
    generator = torch.Generator().manual_seed(1)
    batches = [_batch(generator) for _ in range(4)]
    _feed(model, batches)
    torch.manual_seed(9)
    model.train(4, 16)
    torch.manual_seed(9)
    expected = _reference_steps(reference, batches)
    assert model._n_updates == reference._n_updates
    ours, theirs = _state(model), _state(reference)
    assert len(ours) == len(theirs) > 20
    for mine, their in zip(ours, theirs, strict=True):
        assert torch.equal(mine, their)
    for key, values in expected.items():
        if values:
            assert model.logger.name_to_value[key] == pytest.approx(np.mean(values), rel=1e-6)
        else:
            assert key not in model.logger.name_to_value


def _one_step_each(eager: SoftGAC, backend: bool | str, steps: int = 1) -> dict[str, tuple]:
    """``steps`` steps of ``eager`` and of a copy compiled with ``backend``, same batches and
    seed; their logged values and the gradients of the last step."""
    compiled = _silent(copy.deepcopy(eager))
    compiled.compile = backend  # the copy compiles its own step
    generator = torch.Generator().manual_seed(3)
    batches = [_batch(generator) for _ in range(steps)]
    results = {}
    for name, model in (("eager", eager), ("compiled", compiled)):
        _feed(model, batches)
        torch.manual_seed(7)
        model.train(steps, 16)
        results[name] = (dict(model.logger.name_to_value), _gradients(model))
    return results


def _assert_close_steps(results: dict[str, tuple], keys: tuple[str, ...]) -> None:
    for key in keys:
        expected = results["eager"][0][key]
        assert results["compiled"][0][key] == pytest.approx(expected, rel=1e-5), key
    eager_grads, compiled_grads = results["eager"][1], results["compiled"][1]
    assert len(eager_grads) == len(compiled_grads) > 0
    for ours, theirs in zip(compiled_grads, eager_grads, strict=True):
        scale = theirs.abs().max().clamp_min(1e-8)
        assert ((ours - theirs).abs().max() / scale).item() < 1e-4


def _warm_model(**options: Any) -> SoftGAC:
    """A model with two eager steps behind it (optimiser state that is not the initial one)."""
    model = _model(**options)
    _feed(model, [_batch(torch.Generator().manual_seed(0))] * 2)
    torch.manual_seed(5)
    model.train(2, 16)
    return model


@pytest.mark.slow
def test_compiled_step_matches_the_eager_step() -> None:
    """inductor: one step's logged values to 1e-5 and gradients to 1e-4 relative of eager's.

    ``fallback_random`` through ``config.patch``: pytest's ``monkeypatch`` would delete the
    option on undo (it restores the module's ``__dict__``), breaking later compilations.
    """
    import torch._inductor.config as inductor_config

    eager = _warm_model()
    trained = [*eager.actor.parameters(), *eager.critic.parameters(), eager.log_ent_coef]
    with inductor_config.patch(fallback_random=True):
        results = _one_step_each(eager, True)
    assert len(results["eager"][1]) == len(trained)  # every trained tensor has a gradient
    _assert_close_steps(results, LOGGED)


@pytest.mark.parametrize("critic_type", ["twin", "crossq"])
def test_aot_eager_steps_match_the_eager_steps(critic_type: str) -> None:
    """Two steps with ``policy_delay=2``: one without and one with the actor update."""
    results = _one_step_each(_warm_model(critic_type=critic_type, policy_delay=2), "aot_eager", 2)
    _assert_close_steps(results, LOGGED)


class TestCompiledSoftGACContract(SB3Contract):
    algorithm = SoftGAC
    hyperparams = {**TINY, "compile": "aot_eager"}
    learn_steps = 32
    logger_keys = LOGGED


@pytest.mark.parametrize(("trained", "loaded"), [("aot_eager", False), (False, "aot_eager")])
def test_compiled_and_eager_models_load_into_each_other(
    tmp_path: Path, trained: bool | str, loaded: bool | str
) -> None:
    model = SoftGAC("MlpPolicy", "Pendulum-v1", seed=0, compile=trained, **TINY)
    model.learn(40)
    model.save(tmp_path / "model.zip")
    again = SoftGAC.load(tmp_path / "model.zip", env=gym.make("Pendulum-v1"), compile=loaded)
    assert again.compile == loaded
    buffer = TensorReplayBuffer if loaded else ReplayBuffer
    assert type(again.replay_buffer) is buffer
    observations = np.random.default_rng(0).standard_normal((5, 3)).astype(np.float32)
    np.testing.assert_array_equal(
        model.predict(observations, deterministic=True)[0],
        again.predict(observations, deterministic=True)[0],
    )
    again.learn(20, reset_num_timesteps=False)  # and trains on
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
