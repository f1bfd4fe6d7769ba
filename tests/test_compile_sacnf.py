"""SAC-NF's ``compile`` option (issue 14): SB3's ``SAC.train`` off, a fused step on.

* Off (the default), ``train`` is SB3's own ``SAC.train``: the fused step is never called.
* The fused step run eagerly (backend off, :meth:`SACNF._train_fused`) gives SB3's ``SAC.train``
  step for step: from the same parameters, batches and seeds, three steps' losses to 1e-5
  relative and the parameters to float rounding (it draws the flow's base noise in SB3's order),
  with and without the learned temperature, spline and affine flows.
* ``compile=True`` (inductor) against ``compile=False`` (SB3's ``train``), from the same
  parameters, optimiser state, batch and noise (inductor's random numbers made eager's with
  ``fallback_random``): one step's logged values to 1e-5 relative and every gradient to 1e-4
  relative of SB3's (issue 14's tolerances).
* Under ``torch.compile`` the splines' knots are built with a flip-free cumulative-sum backward
  (an inductor CPU bug, see :class:`~maxbench.algos.sacnf.flows.CompilableRQSTransform`): the
  same knots as zuko's transform, bit for bit, and its gradients to float rounding.
* The SB3 contract (tests/sb3_contract.py) compiled with the ``aot_eager`` backend; a model
  trained compiled loads eager and the reverse; a bad ``compile`` value is refused.
"""

from __future__ import annotations

import copy
from pathlib import Path

import compile_checks as checks
import pytest
import torch
import zuko
from compile_checks import eager_random, one_thread  # noqa: F401 (fixtures)

from maxbench.algos.sacnf import SACNF
from maxbench.algos.sacnf.flows import CompilableRQSTransform
from maxbench.engine.replay import TensorReplayBuffer

from sb3_contract import SB3Contract

TINY = {
    "learning_starts": 16,
    "batch_size": 16,
    "buffer_size": 500,
    "policy_kwargs": {"net_arch": [16, 16], "flow_hidden": [16]},
}

LOGGED = ("train/critic_loss", "train/actor_loss", "train/ent_coef", "train/ent_coef_loss")


@pytest.mark.slow
class TestCompiledSACNFContract(SB3Contract):
    algorithm = SACNF
    hyperparams = {**TINY, "compile": "aot_eager"}
    logger_keys = ("train/actor_loss", "train/critic_loss", "train/ent_coef", "train/ent_coef_loss")


def test_compile_off_trains_with_sb3s_sac_train(monkeypatch):
    def no_fused_step(*args, **kwargs):
        raise AssertionError("compile=False must train with SB3's SAC.train")

    monkeypatch.setattr(SACNF, "_gradient_step", no_fused_step)
    model = SACNF("MlpPolicy", "Pendulum-v1", seed=0, **TINY)
    assert not isinstance(model.replay_buffer, TensorReplayBuffer)
    model.learn(20)
    assert model._n_updates > 0
    with pytest.raises(AssertionError, match="SB3's SAC.train"):
        SACNF("MlpPolicy", "Pendulum-v1", seed=0, compile="aot_eager", **TINY).learn(20)


@pytest.mark.parametrize("ent_coef", ["auto", 0.3])
@pytest.mark.parametrize("flow_type", ["spline", "affine"])
def test_fused_steps_run_eagerly_are_sb3s_sac_steps(ent_coef, flow_type):
    kwargs = {**TINY, "policy_kwargs": {**TINY["policy_kwargs"], "flow_type": flow_type}}
    reference = checks.pendulum_model(SACNF, kwargs, ent_coef=ent_coef)
    fused = checks.silent(copy.deepcopy(reference))
    for step, batch in enumerate(checks.pendulum_batches(1, 3)):
        checks.feed(reference, batch)
        checks.feed(fused, batch)
        torch.manual_seed(100 + step)
        reference.train(1, 16)  # compile=False: SB3's SAC.train
        torch.manual_seed(100 + step)
        fused._train_fused(1, 16)  # the fused step, its compile off: run eagerly
        keys = LOGGED[: 4 if ent_coef == "auto" else 3]
        checks.assert_logged_close(fused.logger.name_to_value, reference.logger.name_to_value, keys)
    assert ("train/ent_coef_loss" in fused.logger.name_to_value) == (ent_coef == "auto")
    checks.assert_parameters_close(fused, reference)
    moved = SACNF("MlpPolicy", "Pendulum-v1", seed=0, ent_coef=ent_coef, **kwargs)
    assert any(
        not torch.equal(a, b)
        for a, b in zip(moved.policy.parameters(), fused.policy.parameters(), strict=True)
    )


@pytest.mark.slow
@pytest.mark.usefixtures("eager_random")
def test_compiled_step_matches_sb3s_step():
    """inductor against SB3's ``SAC.train``: one step's logged values to 1e-5 and gradients to
    1e-4 relative."""
    import torch._dynamo

    torch._dynamo.reset()  # no cache entries left by other tests' models
    eager = checks.warmed_up(checks.pendulum_model(SACNF, TINY))
    results = checks.eager_and_compiled_steps(
        eager,
        True,
        gradients_of=_gradients_as_stepped,
        before_training=_record_sb3s_critic_gradients,
    )
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] > 0  # it did compile
    n_trained = len([*eager.actor.parameters(), *eager.critic.parameters()]) + 1  # + log α
    checks.assert_close_steps(results, LOGGED, n_gradients=n_trained)


def _record_sb3s_critic_gradients(name: str, model: SACNF) -> None:
    """On SB3's (eager) step only: keep the critic's gradients as its optimiser steps with them.

    SB3's actor ``backward`` then adds the actor loss's gradient in the critic's weights to
    their ``.grad``, which no step uses; the compiled step, whose actor gradient is a transform
    in the actor's parameters, does not compute it.
    """
    if name != "eager":
        return
    critic = model.critic

    def record(*_: object) -> None:
        model._critic_gradients_at_step = checks.gradients(critic.parameters())

    critic.optimizer.register_step_pre_hook(record)


def _gradients_as_stepped(model: SACNF) -> list[torch.Tensor]:
    """The gradients each optimiser stepped with: the actor's, the critic's (recorded at its
    step on SB3's path, see :func:`_record_sb3s_critic_gradients`) and log α's."""
    critic = getattr(model, "_critic_gradients_at_step", None)
    if critic is None:
        critic = checks.gradients(model.critic.parameters())
    return [
        *checks.gradients(model.actor.parameters()),
        *critic,
        *checks.gradients([model.log_ent_coef]),
    ]


def test_the_compiled_spline_construction_is_zukos(monkeypatch):
    generator = torch.Generator().manual_seed(6)
    params = [torch.randn(6, 2, n, generator=generator, dtype=torch.float64) for n in (8, 8, 7)]
    x = 2 * torch.randn(6, 2, generator=generator, dtype=torch.float64)
    weights = torch.randn(6, 2, generator=generator, dtype=torch.float64)

    def spline(cls: type) -> tuple[zuko.transforms.MonotonicRQSTransform, list[torch.Tensor]]:
        leaves = [p.clone().requires_grad_(True) for p in params]
        transform = cls(*leaves, bound=5.0)
        y, ladj = transform.call_and_ladj(x)
        ((y * weights).sum() + ladj.sum()).backward()
        return transform, [leaf.grad for leaf in leaves]

    zukos, zuko_grads = spline(zuko.transforms.MonotonicRQSTransform)
    monkeypatch.setattr(torch.compiler, "is_compiling", lambda: True)
    ours, our_grads = spline(CompilableRQSTransform)
    for name in ("horizontal", "vertical", "derivatives"):
        assert torch.equal(getattr(ours, name), getattr(zukos, name)), name
    for grad, expected in zip(our_grads, zuko_grads, strict=True):
        assert expected.abs().max() > 1e-3
        torch.testing.assert_close(grad, expected, rtol=1e-10, atol=1e-12)


@checks.compiled_and_eager
def test_compiled_and_eager_models_load_into_each_other(tmp_path: Path, trained, loaded):
    model, again = checks.save_load_and_train_on(SACNF, TINY, tmp_path, trained, loaded)
    assert again._n_updates > model._n_updates


def test_compile_puts_the_replay_buffer_on_the_device_and_is_checked():
    model = SACNF("MlpPolicy", "Pendulum-v1", compile="aot_eager", **TINY)
    assert isinstance(model.replay_buffer, TensorReplayBuffer)
    for bad in (1, "", None):
        with pytest.raises(ValueError, match="compile must be"):
            SACNF("MlpPolicy", "Pendulum-v1", compile=bad, **TINY)


def test_the_compiled_step_is_one_graph():
    """Compiled, the step's gradients are transforms and its optimiser steps are traced:
    dynamo makes one graph of it, with no break."""
    checks.assert_one_graph(SACNF, TINY)
