"""Pieces of the engine that make one gradient step cheap (issue 14): compile, fused updates, logs.

* :func:`compile_step`: ``torch.compile`` of an algorithm's gradient step (a function over a
  batch that computes the losses, calls ``backward`` and the optimisers' ``step``): inductor on
  CPU; on CUDA ``mode="reduce-overhead"``, which replays the step as CUDA graphs (the optimisers
  must then be ``capturable``: :func:`tune_optimizer`). Off, the eager function itself.
  Compiling installs :mod:`maxbench.engine.inductor_cpu`'s repairs to torch 2.13's CPU backend.
* :func:`tune_optimizer`: switch an existing ``torch.optim`` optimiser to its multi-tensor
  (``foreach``) implementation, and ``capturable`` on CUDA, without changing its mathematics.
* :func:`constant_weights_call`: a network evaluated with its weights read as constants, for a
  loss differentiated to the network's input only (an actor's loss through its critics).
* :class:`ParameterSwap`: a module's parameter gradients computed as a function transform
  (``torch.func.grad_and_value``) and stored in ``.grad``: no autograd graph, no ``backward``
  call, so that a compiled gradient step has no autograd segments (one per ``backward``, each
  with its own guards and autograd wrappers).
* :func:`step_without_graph_breaks`: an optimiser's ``step`` traced into the graph around it
  (torch's decorator breaks the graph before and after it), and :func:`store_gradient`, a
  ``.grad`` written in place (assigning one breaks the graph before the step): with both, a
  step whose gradients are transforms compiles into one graph.
* :func:`polyak_`: the target update ``θ' ← (1 − τ) θ' + τ θ`` as one ``torch._foreach_lerp_``
  over all parameters (SB3's ``polyak_update`` loops over them one by one).
* :class:`DeviceMeans`: logged values summed on the device and read once, at logging time, so a
  gradient step never waits for the host (no ``.item()`` per step).
* :func:`compile_seconds`: how long this process has spent compiling, so that a run can report
  compilation apart from its steady-state throughput.

It knows no algorithm (DESIGN.md: algos → engine).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch.optim import optimizer as optimizer_module

from maxbench.engine import inductor_cpu

__all__ = [
    "DeviceMeans",
    "compile_seconds",
    "compile_step",
    "ensure_gradients",
    "constant_weights_call",
    "ParameterSwap",
    "polyak_",
    "step_without_graph_breaks",
    "store_gradient",
    "tune_optimizer",
]


def compile_step(
    function: Callable[..., Any],
    compile: bool | str,  # noqa: A002
    device: torch.device,
    cpp_wrapper: bool = False,
) -> Callable:
    """``function`` compiled for ``device``, or ``function`` itself when ``compile`` is False.

    ``True`` is inductor (CUDA graphs on CUDA); a string names another ``torch.compile``
    backend, e.g. ``"aot_eager"`` (traced and run through AOTAutograd, no code generation:
    what the tests use to check the API quickly, and a debugging aid).

    ``cpp_wrapper``: on CPU, inductor's code that calls the kernels in C++ instead of Python
    (its ``cpp_wrapper`` option): for a small graph of many operations, such as S2AC's acting
    pass on one state, the Python calls between kernels are much of its time (S2AC's compiled
    ``predict`` on HalfCheetah measured 699 -> 602 us per call, interleaved in one process; the
    same actions). No gain was measured for a training step of matrix products (the engine
    SAC's, within noise), where it only adds compile time.

    Shapes are static (``dynamic=False``): a function sees few batch shapes (the training
    batch, one state when acting, the number of envs), each compiled once, into code that
    knows its sizes (and, on CUDA, can be captured as a graph).
    """
    if compile is False:
        return function
    _allow_one_compilation_per_model()
    inductor_cpu.install()
    if isinstance(compile, str):
        return torch.compile(function, backend=compile, dynamic=False)
    if torch.device(device).type == "cuda":
        return torch.compile(function, mode="reduce-overhead", dynamic=False)
    options = {"cpp_wrapper": True} if cpp_wrapper else None
    return torch.compile(function, dynamic=False, options=options)


def compile_seconds() -> float:
    """Wall-clock seconds this process has spent in ``torch.compile`` so far.

    Dynamo's own cumulative clock (``torch._dynamo.utils.calculate_time_spent``): every frame
    compiled (tracing, AOTAutograd, inductor's code generation and C++ build) and every backward
    graph compiled lazily at its first ``backward``. The difference across a stretch of training
    is the compilation it paid for; 0.0 when nothing was compiled, and where a torch without that
    clock is installed.
    """
    try:
        from torch._dynamo.utils import calculate_time_spent

        spent = calculate_time_spent()
    except (ImportError, AttributeError):  # a private API: an older or newer torch
        return 0.0
    total = spent.get("total_wall_time")
    if total is None:  # the sum it stands for, should a torch name it differently
        total = spent.get("entire_frame_compile", 0.0) + spent.get("entire_backward_compile", 0.0)
    return float(total)


#: Compilations of one function (one per model and shape) before dynamo silently runs it eagerly.
RECOMPILE_LIMIT = 4096


def _allow_one_compilation_per_model() -> None:
    """Raise dynamo's recompile limits (8 and 256 by default) to :data:`RECOMPILE_LIMIT`.

    Each model's compiled step is a separate compilation of the same code (its guards name the
    model's own modules), and a deallocated model's entries still count towards the limit: a
    worker that runs its ninth cell, or a benchmark that builds its ninth model, would otherwise
    train eagerly without a word.
    """
    config = torch._dynamo.config
    config.recompile_limit = max(config.recompile_limit, RECOMPILE_LIMIT)
    config.accumulated_recompile_limit = max(config.accumulated_recompile_limit, RECOMPILE_LIMIT)


def constant_weights_call(module: torch.nn.Module, *args: Any) -> Any:
    """``module(*args)`` with its parameters read as constants (their values, outside autograd).

    For a loss that only the inputs' producers learn from (an actor's loss through the critics,
    SAC's §4.2 policy step): the value and the input gradients are the module's own. Eagerly,
    ``backward(inputs=...)`` would prune the weights' gradients, but a compiled segment's
    backward is built for every input that requires grad (AOTAutograd) and would compute them
    only to drop them: about a sixth of a SAC step's matrix products.
    """
    from torch.func import functional_call

    frozen = {name: value.detach() for name, value in module.named_parameters()}
    return functional_call(module, frozen, args)


class ParameterSwap(torch.nn.Module):
    """Gradients of a loss in a module's parameters as a function transform, not ``backward``.

    :meth:`gradients_into` evaluates ``loss()`` — any code that calls the module as usual —
    with the module's parameters replaced by ``torch.func``'s tracked copies
    (``torch.func.functional_call`` on this wrapper, whose ``forward`` runs the function it is
    given) and stores ``torch.func.grad_and_value``'s gradients in their ``.grad``. The same
    chain rule as ``zero_grad`` then ``loss.backward(inputs=parameters)``, computed without an
    autograd graph: compiled, it lies in the same graph as the losses around it, where a
    ``backward`` is a compiled segment of its own (own guard checks, autograd wrappers).

    Build it outside compiled code (a module built inside is a graph break): see
    :meth:`maxbench.engine.options.Compilable.gradients_into`. The module must read its
    parameters as attributes when called: a tensor it keeps a reference to (a list of its
    parameters made at construction) is not swapped, and its gradient silently comes out zero
    (each algorithm's equivalence test compares the gradients with ``backward``'s). Not for
    modules whose forward updates buffers from parameter-dependent values (BatchNorm in train
    mode after a learned layer): a transform refuses that mutation.
    """

    def __init__(self, module: torch.nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, function: Callable[[], Any]) -> Any:
        return function()

    def gradients_into(self, loss: Callable[[], Any], has_aux: bool = False) -> Any:
        """Store ``d loss() / dθ`` in the ``.grad`` of the module's parameters θ; return
        ``loss()``'s value (``(loss, aux)`` with ``has_aux``, the gradient that of ``loss``)."""
        from torch.func import functional_call, grad_and_value

        named = {
            name: parameter
            for name, parameter in self.module.named_parameters()
            if parameter.requires_grad  # as backward(inputs=...): frozen ones get none
        }

        def loss_of(parameters: dict[str, torch.Tensor]) -> Any:
            renamed = {f"module.{name}": value for name, value in parameters.items()}
            return functional_call(self, renamed, (loss,))

        gradients, value = grad_and_value(loss_of, has_aux=has_aux)(
            {name: parameter.detach() for name, parameter in named.items()}
        )
        for name, parameter in named.items():  # as backward's: no graph (of other modules)
            store_gradient(parameter, gradients[name])
        return value


def store_gradient(parameter: torch.Tensor, gradient: torch.Tensor) -> None:
    """``parameter.grad = gradient`` (detached), copied into the ``.grad`` tensor already there.

    The same value; but compiled, assigning a parameter's ``.grad`` is a pending mutation of the
    parameter, which dynamo resolves by a graph break before the optimiser's ``step``, where a
    copy into its gradient tensor is not (:func:`ensure_gradients` makes those tensors first).
    """
    existing = parameter.grad
    if existing is None or existing.shape != gradient.shape or existing.dtype != gradient.dtype:
        parameter.grad = gradient.detach()
    else:
        existing.copy_(gradient.detach())


def ensure_gradients(parameters: Iterable[torch.Tensor]) -> None:
    """Give every parameter that has none a zero ``.grad`` (for :func:`store_gradient`)."""
    for parameter in parameters:
        if parameter.requires_grad and parameter.grad is None:
            parameter.grad = torch.zeros_like(parameter)


def step_without_graph_breaks(optimizer: torch.optim.Optimizer) -> None:
    """``optimizer.step()``, traced by dynamo into the graph around it.

    torch's optimisers break the graph before and after ``step`` (``_use_grad_for_differentiable``:
    so that AOTAutograd sees a separate no-grad graph, pytorch/pytorch#104053, where a backward
    pass would break it anyway). A step whose gradients come from function transforms has no
    backward: this calls the undecorated ``step`` under ``no_grad`` (what the decorator sets, for
    a non-``differentiable`` optimiser), so it joins the step's graph. The optimiser's step
    hooks run through the decorated ``step``: with any registered, or a ``differentiable``
    optimiser, that one is called instead. No closure is taken (the gradients are in ``.grad``).
    """
    hooked = (
        optimizer._optimizer_step_pre_hooks
        or optimizer._optimizer_step_post_hooks
        or optimizer_module._global_optimizer_pre_hooks
        or optimizer_module._global_optimizer_post_hooks
    )
    if hooked or any(group.get("differentiable") for group in optimizer.param_groups):
        optimizer.step()
        return
    undecorated = inspect.unwrap(type(optimizer).step)
    with torch.no_grad():
        undecorated(optimizer)


def tune_optimizer(optimizer: torch.optim.Optimizer, device: torch.device) -> None:
    """Use the optimiser's multi-tensor kernels (and ``capturable`` on CUDA), same mathematics.

    A fused optimiser is switched to the multi-tensor kernel (``torch.compile`` traces that one).
    """
    cuda = torch.device(device).type == "cuda"
    for group in optimizer.param_groups:
        if group.get("fused"):  # the multi-tensor kernel instead: the same update
            group["fused"] = False
        if "foreach" in group:
            group["foreach"] = True
        if cuda and "capturable" in group:
            group["capturable"] = True
    if cuda:  # capturable Adam keeps its step counters on the device
        for state in optimizer.state.values():
            step = state.get("step")
            if isinstance(step, torch.Tensor):
                state["step"] = step.to(device=device, dtype=torch.float32)


@torch.no_grad()
def polyak_(params: Iterable[torch.Tensor], targets: Iterable[torch.Tensor], tau: float) -> None:
    """``target ← target + τ (param − target)`` for every pair, in one multi-tensor call."""
    sources, destinations = list(params), list(targets)
    if len(sources) != len(destinations):
        raise ValueError(
            f"{len(sources)} parameters but {len(destinations)} target parameters: "
            "the networks differ"
        )
    if sources:
        torch._foreach_lerp_(destinations, sources, tau)


def _accumulation_dtype(value: torch.Tensor) -> torch.dtype:
    """float64 where the device has it (every device but MPS), else ``value``'s own dtype."""
    return value.dtype if value.device.type == "mps" else torch.float64


class DeviceMeans:
    """Sums of logged scalars kept on the device; :meth:`read` returns their means (one sync)."""

    def __init__(self) -> None:
        self._sums: dict[str, torch.Tensor] = {}
        self._counts: dict[str, int] = {}

    def add(self, name: str, value: torch.Tensor) -> None:
        """Add a scalar tensor (detached) to ``name``'s sum (kept in float64, as SB3's logs
        average Python floats; on Apple's MPS, which has no float64, in float32)."""
        value = value.detach().reshape(())
        value = value.to(_accumulation_dtype(value))
        if name in self._sums:
            self._sums[name] = self._sums[name] + value
        else:
            self._sums[name] = value.clone()
        self._counts[name] = self._counts.get(name, 0) + 1

    def read(self) -> dict[str, float]:
        """Every name's mean over what was added since the last read; then start over."""
        if not self._sums:
            return {}
        names = list(self._sums)
        values = torch.stack([self._sums[n] for n in names]).double().cpu().tolist()
        means = {n: v / self._counts[n] for n, v in zip(names, values, strict=True)}
        self._sums.clear()
        self._counts.clear()
        return means
