"""The engine's compile pieces (issue 14): compile_step, Compilable, polyak_, DeviceMeans, Adam."""

from __future__ import annotations

import copy

import pytest
import torch
from stable_baselines3.common.utils import polyak_update
from torch import nn
from torch._dynamo.utils import counters

from maxbench.engine.compiled import (
    DeviceMeans,
    ParameterSwap,
    compile_step,
    polyak_,
    step_without_graph_breaks,
    store_gradient,
    tune_optimizer,
)
from maxbench.engine.options import Compilable, check_compile_option


class Stepper(Compilable):
    """A minimal model: a network and its optimiser (its own, as a model's are), and a
    gradient step on ``sum(w · x)`` with SGD at learning rate 1, which lowers every weight by 1.
    """

    def __init__(self, compile: bool | str) -> None:  # noqa: A002
        self.device = torch.device("cpu")
        self.network = nn.Linear(3, 1, bias=False)
        nn.init.ones_(self.network.weight)
        self.optimizer = torch.optim.SGD(self.network.parameters(), lr=1.0)
        self._set_compile(compile)

    @property
    def weight(self) -> torch.Tensor:
        return self.network.weight.detach().reshape(-1)

    def _step(self, inputs: torch.Tensor) -> torch.Tensor:
        loss = self.network(inputs).sum()
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        return loss.detach()

    def step(self) -> torch.Tensor:
        return self.compiled("step", self._step)(torch.ones(1, 3))


def test_compile_off_is_the_function_itself():
    def function(x):
        return x + 1

    assert compile_step(function, False, torch.device("cpu")) is function


def test_a_process_compiles_every_model_not_only_the_first_eight():
    """dynamo stops compiling a code object after 8 versions unless told otherwise."""
    for index in range(12):
        before = counters["stats"]["unique_graphs"]
        model = Stepper("eager")
        assert model.step().item() == 3.0
        assert torch.equal(model.weight, torch.zeros(3))
        assert counters["stats"]["unique_graphs"] > before, f"model {index} ran eagerly"


def test_a_deep_copy_compiles_its_own_step_and_leaves_the_original_alone():
    original = Stepper("eager")
    original.step()
    duplicate = copy.deepcopy(original)
    duplicate.step()
    duplicate.step()
    assert torch.equal(original.weight, torch.zeros(3))
    assert torch.equal(duplicate.weight, torch.full((3,), -2.0))
    duplicate.compile = False  # switching the option rebuilds the function
    duplicate.step()
    assert torch.equal(duplicate.weight, torch.full((3,), -3.0))


@pytest.mark.parametrize("value", [True, False, "aot_eager"])
def test_valid_compile_options_pass(value):
    assert check_compile_option(value) == value


@pytest.mark.parametrize("value", [1, None, "", 0.5])
def test_invalid_compile_options_are_refused(value):
    with pytest.raises(ValueError, match="compile must be"):
        check_compile_option(value)


def test_polyak_is_sb3s_target_update():
    torch.manual_seed(0)
    online, target = nn.Linear(4, 3), nn.Linear(4, 3)
    reference = copy.deepcopy(target)
    polyak_(online.parameters(), target.parameters(), 0.005)
    polyak_update(online.parameters(), reference.parameters(), 0.005)
    for ours, theirs in zip(target.parameters(), reference.parameters(), strict=True):
        torch.testing.assert_close(ours, theirs, rtol=1e-6, atol=1e-7)
    with pytest.raises(ValueError, match="networks differ"):
        polyak_(online.parameters(), [target.weight], 0.005)


def test_device_means_average_since_the_last_read():
    means = DeviceMeans()
    for value in (1.0, 2.0, 6.0):
        means.add("loss", torch.tensor(value))
    means.add("alpha", torch.tensor([0.2]))
    assert means.read() == pytest.approx({"loss": 3.0, "alpha": 0.2}, rel=1e-7)
    assert means.read() == {}
    means.add("loss", torch.tensor(5.0, requires_grad=True))
    assert means.read() == {"loss": 5.0}


def test_tuned_adam_takes_the_same_steps():
    torch.manual_seed(0)
    network = nn.Sequential(nn.Linear(5, 8), nn.ELU(), nn.Linear(8, 1))
    twin = copy.deepcopy(network)
    plain = torch.optim.Adam(network.parameters(), lr=1e-2, foreach=False)
    tuned = torch.optim.Adam(twin.parameters(), lr=1e-2, foreach=False)
    tune_optimizer(tuned, torch.device("cpu"))
    assert tuned.param_groups[0]["foreach"] is True
    inputs = torch.randn(16, 5)
    for _ in range(3):
        for net, optimizer in ((network, plain), (twin, tuned)):
            optimizer.zero_grad()
            net(inputs).pow(2).mean().backward()
            optimizer.step()
    for ours, theirs in zip(twin.parameters(), network.parameters(), strict=True):
        torch.testing.assert_close(ours, theirs, rtol=1e-6, atol=1e-7)


def test_compile_seconds_counts_compilation_only() -> None:
    """The process's compilation clock grows when a new function is compiled (its forward and
    its lazily compiled backward), and not when compiled code merely runs."""
    from maxbench.engine.compiled import compile_seconds

    stepper = Stepper("aot_eager")
    before = compile_seconds()
    stepper.step()
    compiled = compile_seconds()
    assert compiled > before
    for _ in range(3):
        stepper.step()
    assert compile_seconds() == compiled


class TwoHeads(nn.Module):
    """A trunk with a second method besides ``forward`` (as an SB3 actor's
    ``get_action_dist_params``)."""

    def __init__(self) -> None:
        super().__init__()
        self.trunk = nn.Sequential(nn.Linear(3, 8), nn.Tanh())
        self.mean, self.scale = nn.Linear(8, 2), nn.Linear(8, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mean(self.trunk(x))

    def heads(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        latent = self.trunk(x)
        return self.mean(latent), self.scale(latent).exp()


def _loss(net: TwoHeads, x: torch.Tensor, target: torch.Tensor, other: nn.Module) -> torch.Tensor:
    """A loss through another method of ``net`` and through a second module ``other``."""
    mean, scale = net.heads(x)
    return ((mean + other(mean) - target) ** 2 / scale).mean() + scale.log().mean()


def _backward_reference(net, x, target, other):
    """Copies of ``net`` and ``other`` whose gradients ``backward`` computed (into net only)."""
    net, other = copy.deepcopy(net), copy.deepcopy(other)
    loss = _loss(net, x, target, other)
    loss.backward(inputs=list(net.parameters()))
    return net, loss.detach()


@pytest.mark.parametrize("grad_mode", [True, False])
def test_a_parameter_swap_gives_backwards_gradients(grad_mode):
    """The transform's gradients (through a method other than forward, with an aux output,
    past a second module it leaves alone) equal ``backward``'s, grad mode on and off."""
    torch.manual_seed(0)
    net, other = TwoHeads(), nn.Linear(2, 2)
    x, target = torch.randn(5, 3), torch.randn(5, 2)
    reference, reference_loss = _backward_reference(net, x, target, other)
    before = [value.clone() for value in net.parameters()]
    with torch.set_grad_enabled(grad_mode):
        value, aux = ParameterSwap(net).gradients_into(
            lambda: (_loss(net, x, target, other), net.heads(x)[1].detach()), has_aux=True
        )
    torch.testing.assert_close(value, reference_loss, rtol=1e-6, atol=0)
    assert torch.equal(aux, reference.heads(x)[1].detach())
    for ours, theirs, old in zip(net.parameters(), reference.parameters(), before, strict=True):
        assert torch.equal(ours, old)  # the module's own parameters are back in place
        assert ours.grad is not None and not ours.grad.requires_grad
        torch.testing.assert_close(ours.grad, theirs.grad, rtol=1e-6, atol=1e-7)
    assert all(parameter.grad is None for parameter in other.parameters())


class SwapStepper(Compilable):
    """:meth:`Compilable.gradients_into` on :func:`_loss`, then SGD at learning rate 0.1."""

    def __init__(self, compile: bool | str) -> None:  # noqa: A002
        torch.manual_seed(3)
        self.device = torch.device("cpu")
        self.network, self.other = TwoHeads(), nn.Linear(2, 2)
        self.optimizer = torch.optim.SGD(self.network.parameters(), lr=0.1)
        self._set_compile(compile)

    def _step(self, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        loss = self.gradients_into("network", lambda: _loss(self.network, x, target, self.other))
        self.step_optimizer(self.optimizer)
        return loss.detach()

    def step(self, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        self.prepare_gradients("network")
        return self.compiled("step", self._step)(x, target)


def test_compiled_gradients_are_eager_backwards_in_one_graph():
    """Two steps eager (``backward``) and compiled (the transform): the same losses and
    parameters; the compiled step, optimiser step included, is one graph."""
    torch.manual_seed(2)
    x, target = torch.randn(6, 3), torch.randn(6, 2)
    eager, compiled = SwapStepper(False), SwapStepper("aot_eager")
    counters.clear()
    for _ in range(2):
        torch.testing.assert_close(
            compiled.step(x, target), eager.step(x, target), rtol=1e-6, atol=0
        )
    for ours, theirs in zip(compiled.network.parameters(), eager.network.parameters(), strict=True):
        torch.testing.assert_close(ours, theirs, rtol=1e-6, atol=1e-7)
    assert counters["stats"]["unique_graphs"] == 1
    assert not counters["graph_break"], list(counters["graph_break"])
    assert all(parameter.grad is None for parameter in compiled.other.parameters())
    assert all(parameter.grad is None for parameter in eager.other.parameters())


def test_the_eager_gradients_are_backwards_into_the_module_only():
    torch.manual_seed(4)
    x, target = torch.randn(6, 3), torch.randn(6, 2)
    model = SwapStepper(False)
    reference, reference_loss = _backward_reference(model.network, x, target, model.other)
    for parameter in model.network.parameters():
        parameter.grad = torch.full_like(parameter, 7.0)  # a stale gradient is replaced
    loss = model.gradients_into("network", lambda: _loss(model.network, x, target, model.other))
    assert torch.equal(loss, reference_loss)
    for ours, theirs in zip(model.network.parameters(), reference.parameters(), strict=True):
        assert torch.equal(ours.grad, theirs.grad)


def test_swaps_are_cached_and_rebuilt_for_a_new_module():
    model = SwapStepper("aot_eager")
    model.prepare_gradients("network")
    first = model._parameter_swaps["network"]
    model.prepare_gradients("network")
    assert model._parameter_swaps["network"] is first
    model.network = TwoHeads()
    model.prepare_gradients("network")
    assert model._parameter_swaps["network"].module is model.network


def test_the_cpp_wrapper_is_asked_of_inductor_on_cpu_only_when_wanted(monkeypatch):
    asked = []
    monkeypatch.setattr(torch, "compile", lambda function, **options: asked.append(options))
    cpu = torch.device("cpu")
    compile_step(lambda: None, True, cpu, cpp_wrapper=True)
    compile_step(lambda: None, True, cpu)
    compile_step(lambda: None, "aot_eager", cpu, cpp_wrapper=True)  # not inductor: no option
    assert asked[0]["options"] == {"cpp_wrapper": True}
    assert asked[1]["options"] is None
    assert "options" not in asked[2] and asked[2]["backend"] == "aot_eager"


def test_gamma_is_one_device_tensor_until_it_changes():
    model = Stepper(False)
    model.gamma = 0.99
    first = model.gamma_tensor()
    assert first.dtype == torch.float32 and first.device == model.device
    assert first.item() == pytest.approx(0.99)
    assert model.gamma_tensor() is first  # not a new tensor (a copy) per step
    model.gamma = 0.9
    assert model.gamma_tensor().item() == pytest.approx(0.9)


def test_a_frozen_parameter_gets_no_gradient_from_either_path():
    torch.manual_seed(5)
    x, target = torch.randn(6, 3), torch.randn(6, 2)
    for model in (SwapStepper(False), SwapStepper("aot_eager")):
        model.network.mean.bias.requires_grad_(False)
        model.step(x, target)
        assert model.network.mean.bias.grad is None
        assert model.network.mean.weight.grad is not None


def test_unprepared_compiled_gradients_are_still_backwards():
    """Without :meth:`prepare_gradients` the swap is built where it is first needed (a graph
    break in compiled code, the same gradients)."""
    torch.manual_seed(6)
    x, target = torch.randn(6, 3), torch.randn(6, 2)
    eager, compiled = SwapStepper(False), SwapStepper("aot_eager")
    compiled.compiled("step", compiled._step)(x, target)  # no prepare_gradients
    eager.step(x, target)
    for ours, theirs in zip(compiled.network.parameters(), eager.network.parameters(), strict=True):
        torch.testing.assert_close(ours.grad, theirs.grad, rtol=1e-6, atol=1e-7)


def test_an_optimiser_step_without_graph_breaks_is_its_step():
    """Adam (multi-tensor) stepped through the undecorated ``step`` inside a compiled function:
    the parameters and moments of ``optimizer.step()`` run eagerly, over three steps, with no
    graph break; its step hooks still run (it then takes the decorated ``step``)."""
    torch.manual_seed(5)
    eager_net = nn.Linear(4, 3)
    compiled_net = copy.deepcopy(eager_net)
    eager_opt = torch.optim.Adam(eager_net.parameters(), lr=0.01, foreach=True)
    compiled_opt = torch.optim.Adam(compiled_net.parameters(), lr=0.01, foreach=True)
    gradients = [[torch.randn_like(p) for p in eager_net.parameters()] for _ in range(3)]

    def compiled_step(grads: list[torch.Tensor]) -> None:
        for parameter, gradient in zip(compiled_net.parameters(), grads, strict=True):
            store_gradient(parameter, gradient * 1.0)
        step_without_graph_breaks(compiled_opt)

    stepped = torch.compile(compiled_step, backend="aot_eager", dynamic=False)
    for parameter in compiled_net.parameters():
        parameter.grad = torch.zeros_like(parameter)
    counters.clear()
    for grads in gradients:
        for parameter, gradient in zip(eager_net.parameters(), grads, strict=True):
            parameter.grad = gradient.clone()
        eager_opt.step()
        stepped(grads)
    assert not counters["graph_break"], list(counters["graph_break"])
    for ours, theirs in zip(compiled_net.parameters(), eager_net.parameters(), strict=True):
        torch.testing.assert_close(ours, theirs, rtol=1e-6, atol=1e-7)
        torch.testing.assert_close(
            compiled_opt.state[ours]["exp_avg_sq"], eager_opt.state[theirs]["exp_avg_sq"]
        )
    calls: list[int] = []
    handle = compiled_opt.register_step_post_hook(lambda *_: calls.append(1))
    try:
        step_without_graph_breaks(compiled_opt)
    finally:
        handle.remove()
    assert calls == [1]


def test_a_stored_gradient_is_the_value_written_in_place():
    parameter = nn.Parameter(torch.zeros(3))
    store_gradient(parameter, torch.tensor([1.0, 2.0, 3.0], requires_grad=True))
    first = parameter.grad
    assert first is not None and not first.requires_grad
    store_gradient(parameter, torch.tensor([4.0, 5.0, 6.0]))
    assert parameter.grad is first  # the same tensor, written into
    torch.testing.assert_close(parameter.grad, torch.tensor([4.0, 5.0, 6.0]))
