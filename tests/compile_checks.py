"""The pieces every ``compile`` test shares (maxbench issue 14), written once.

* Pendulum batches from a seeded generator, handed to a model in place of its replay buffer's
  draws (:func:`pendulum_batches`, :func:`feed`), and a logger that prints nothing
  (:func:`silent`).
* Fixtures: one CPU thread (``one_thread``, autouse once imported), and inductor drawing its
  random numbers as eager PyTorch does (``eager_random``).
* The equivalence check of issue 14: a model with two eager steps behind it
  (:func:`warmed_up`) and a copy compiled with some backend take the same steps from the same
  batches and noise (:func:`eager_and_compiled_steps`); the logged values agree to 1e-5 relative
  and every gradient to 1e-4 relative (:func:`assert_close_steps`).
* An eager step checked against a step written out in the test, parameters, optimiser moments
  and log α bit for bit (:func:`assert_train_is_reference`, :func:`model_state`).
* A model trained compiled loads eager and the reverse (:func:`save_load_and_train_on`).
* A compiled step traced whole, with no graph break (:func:`assert_one_graph`).

Import a fixture into a test module by name to use it there.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from stable_baselines3.common.logger import configure
from stable_baselines3.common.type_aliases import ReplayBufferSamples

from maxbench.engine.replay import TensorReplayBuffer

#: The cases of the load test: trained compiled and loaded eager, and the reverse.
compiled_and_eager = pytest.mark.parametrize(
    ("trained", "loaded"), [("aot_eager", False), (False, "aot_eager")]
)


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """One CPU thread for torch during the test (the reductions' order does not change)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def eager_random() -> Iterator[None]:
    """Inductor draws its random numbers as eager PyTorch does (``fallback_random``).

    Through ``config.patch``: pytest's ``monkeypatch`` would delete the option on undo (it
    restores the module's ``__dict__``), breaking later compilations.
    """
    import torch._inductor.config as inductor_config

    with inductor_config.patch(fallback_random=True):
        yield


def pendulum_batch(generator: torch.Generator, n: int = 16) -> ReplayBufferSamples:
    """``n`` Pendulum transitions (3-d observations, actions in [-1, 1], 20 % episode ends)."""
    return ReplayBufferSamples(
        observations=torch.randn(n, 3, generator=generator),
        actions=torch.rand(n, 1, generator=generator) * 2 - 1,
        next_observations=torch.randn(n, 3, generator=generator),
        dones=(torch.rand(n, 1, generator=generator) < 0.2).float(),
        rewards=torch.randn(n, 1, generator=generator),
    )


def pendulum_batches(seed: int, count: int = 1) -> list[ReplayBufferSamples]:
    """``count`` batches of :func:`pendulum_batch`, in turn from one generator seeded ``seed``."""
    generator = torch.Generator().manual_seed(seed)
    return [pendulum_batch(generator) for _ in range(count)]


def feed(model: Any, batches: ReplayBufferSamples | list[ReplayBufferSamples]) -> None:
    """Make the replay buffer return ``batches`` in turn (a list) or one batch on every draw."""
    if isinstance(batches, list):
        queue = list(batches)
        model.replay_buffer.sample = lambda *args, **kwargs: queue.pop(0)
    else:
        model.replay_buffer.sample = lambda *args, **kwargs: batches


def silent(model: Any) -> Any:
    """``model`` with a logger that writes nothing (its values stay in ``name_to_value``)."""
    model.set_logger(configure(None, [""]))
    return model


def assert_one_graph(algorithm: Any, hyperparams: dict[str, Any], **overrides: Any) -> None:
    """Compiled (``aot_eager``), ``algorithm``'s training steps are one graph with no break:
    every gradient a function transform, every optimiser step traced into it (issue 14)."""
    from torch._dynamo.utils import counters

    counters.clear()
    model = warmed_up(pendulum_model(algorithm, hyperparams, compile="aot_eager", **overrides))
    model.train(2, 16)
    assert not counters["graph_break"], list(counters["graph_break"])
    assert counters["stats"]["unique_graphs"] == 1


def pendulum_model(algorithm: Any, hyperparams: dict[str, Any], **overrides: Any) -> Any:
    """A silent ``algorithm`` on Pendulum-v1, seed 0, with ``hyperparams`` and ``overrides``."""
    return silent(algorithm("MlpPolicy", "Pendulum-v1", seed=0, **{**hyperparams, **overrides}))


def gradients(tensors: Iterable[torch.Tensor]) -> list[torch.Tensor]:
    """Copies of the gradients of those ``tensors`` that have one, in order."""
    return [tensor.grad.clone() for tensor in tensors if tensor.grad is not None]


def policy_gradients(model: Any, temperature: bool = True) -> list[torch.Tensor]:
    """The gradients of the policy's parameters, then (``temperature``) of log α if learned."""
    tensors = list(model.policy.parameters())
    log_ent_coef = getattr(model, "log_ent_coef", None)
    if temperature and log_ent_coef is not None:
        tensors.append(log_ent_coef)
    return gradients(tensors)


def model_state(model: Any, *more_optimizers: torch.optim.Optimizer | None) -> list[torch.Tensor]:
    """Every parameter and buffer of the policy, every moment of the actor's, critic's,
    temperature's (if any) and ``more_optimizers``, and log α (if learned), in a fixed order."""
    tensors = list(model.policy.state_dict().values())
    optimizers = [model.actor.optimizer, model.critic.optimizer, model.ent_coef_optimizer]
    for optimizer in [*optimizers, *more_optimizers]:
        if optimizer is not None:
            for slots in optimizer.state.values():
                tensors.extend(torch.as_tensor(slots[key]) for key in sorted(slots))
    if model.log_ent_coef is not None:
        tensors.append(model.log_ent_coef.detach())
    return tensors


def warmed_up(model: Any) -> Any:
    """``model`` after two eager steps (optimiser state that is not the initial one)."""
    feed(model, pendulum_batches(0)[0])
    torch.manual_seed(5)
    model.train(2, 16)
    return model


@dataclass
class StepResult:
    """One model after its steps: the model, its logged values and its last step's gradients."""

    model: Any
    logged: dict[str, Any]
    gradients: list[torch.Tensor]


def eager_and_compiled_steps(
    eager: Any,
    backend: bool | str,
    steps: int = 1,
    gradients_of: Callable[[Any], list[torch.Tensor]] = policy_gradients,
    before_training: Callable[[str, Any], None] | None = None,
) -> dict[str, StepResult]:
    """``steps`` steps of ``eager`` and of a copy compiled with ``backend``, from the same
    batches and seed; keyed ``"eager"`` and ``"compiled"``. ``before_training(name, model)``,
    if given, is called on each just before it trains."""
    compiled = silent(copy.deepcopy(eager))
    compiled.compile = backend  # the copy compiles its own step
    batches = pendulum_batches(3, steps)
    results = {}
    for name, model in (("eager", eager), ("compiled", compiled)):
        if before_training is not None:
            before_training(name, model)
        feed(model, batches)
        torch.manual_seed(7)
        model.train(steps, 16)
        results[name] = StepResult(model, dict(model.logger.name_to_value), gradients_of(model))
    return results


def assert_relative(ours: torch.Tensor, theirs: torch.Tensor, tolerance: float) -> None:
    """The largest difference is under ``tolerance`` times the largest magnitude of ``theirs``."""
    scale = theirs.abs().max().clamp_min(1e-8)
    assert ((ours - theirs).abs().max() / scale).item() < tolerance


def assert_logged_close(
    ours: Mapping[str, Any],
    theirs: Mapping[str, Any],
    keys: Iterable[str],
    rel: float = 1e-5,
    abs_tol: float | None = None,
) -> None:
    """Each logged value of ``keys`` in ``ours`` is ``theirs`` to ``rel`` (and ``abs_tol``)."""
    for key in keys:
        assert ours[key] == pytest.approx(theirs[key], rel=rel, abs=abs_tol), key


def assert_close_steps(
    results: dict[str, StepResult],
    keys: Iterable[str],
    n_gradients: int | None = None,
    abs_tol: float | None = None,
) -> None:
    """Issue 14's tolerances: the compiled step's logged ``keys`` to 1e-5 relative (and
    ``abs_tol``) of the eager step's, and every gradient (``n_gradients`` of them, if given) to
    1e-4 relative."""
    eager, compiled = results["eager"], results["compiled"]
    assert_logged_close(compiled.logged, eager.logged, keys, abs_tol=abs_tol)
    assert len(eager.gradients) == len(compiled.gradients) > 0
    if n_gradients is not None:
        assert len(eager.gradients) == n_gradients
    for ours, theirs in zip(compiled.gradients, eager.gradients, strict=True):
        assert_relative(ours, theirs, 1e-4)


def assert_parameters_close(ours: Any, theirs: Any, rtol: float = 1e-5, atol: float = 1e-6) -> None:
    """The policies of the two models have the same parameters to ``rtol`` and ``atol``."""
    pairs = zip(ours.policy.parameters(), theirs.policy.parameters(), strict=True)
    for mine, their in pairs:
        torch.testing.assert_close(mine, their, rtol=rtol, atol=atol)


def assert_train_is_reference(
    model: Any,
    reference: Any,
    reference_steps: Callable[[Any, list[ReplayBufferSamples]], dict[str, list]],
    state: Callable[[Any], list[torch.Tensor]],
    more_than: int,
) -> None:
    """Four steps of ``model.train`` are ``reference_steps`` on ``reference`` (a twin), from the
    same batches and seed: the same update count, the same ``state`` bit for bit (over
    ``more_than`` tensors) and each logged value the mean of the reference's to 1e-6."""
    batches = pendulum_batches(1, 4)
    feed(model, batches)
    torch.manual_seed(9)
    model.train(4, 16)
    torch.manual_seed(9)
    expected = reference_steps(reference, batches)
    assert model._n_updates == reference._n_updates
    ours, theirs = state(model), state(reference)
    assert len(ours) == len(theirs) > more_than
    for mine, their in zip(ours, theirs, strict=True):
        assert torch.equal(mine, their)
    for key, values in expected.items():
        if values:
            assert model.logger.name_to_value[key] == pytest.approx(np.mean(values), rel=1e-6)
        else:
            assert key not in model.logger.name_to_value


def save_load_and_train_on(
    algorithm: Any,
    hyperparams: dict[str, Any],
    folder: Path,
    trained: bool | str,
    loaded: bool | str,
    eager_buffer: type | None = None,
) -> tuple[Any, Any]:
    """A Pendulum model trained with ``compile=trained``, saved and loaded with
    ``compile=loaded``: the loaded one keeps that option, predicts as the saved one does and
    trains on. With ``eager_buffer``, its replay buffer follows its own ``compile``: the device
    buffer when compiled, exactly ``eager_buffer`` when eager. Returns both."""
    model = algorithm("MlpPolicy", "Pendulum-v1", seed=0, compile=trained, **hyperparams)
    model.learn(40)
    model.save(folder / "model.zip")
    again = algorithm.load(folder / "model.zip", env=gym.make("Pendulum-v1"), compile=loaded)
    assert again.compile == loaded
    if eager_buffer is not None:
        assert type(again.replay_buffer) is (TensorReplayBuffer if loaded else eager_buffer)
    observations = np.random.default_rng(0).standard_normal((5, 3)).astype(np.float32)
    np.testing.assert_array_equal(
        model.predict(observations, deterministic=True)[0],
        again.predict(observations, deterministic=True)[0],
    )
    again.learn(20, reset_num_timesteps=False)  # and trains on
    return model, again
