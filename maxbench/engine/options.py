"""The ``compile`` option every maxbench algorithm takes, and the compiled functions it makes.

:class:`Compilable` is a mixin for SB3 algorithms (issue 14). An algorithm writes its gradient
step (and, where acting is costly, its acting pass) as a plain function of tensors, and calls it
through :meth:`Compilable.compiled`, which returns the function itself when ``compile`` is off
(today's eager path, unchanged) or its ``torch.compile``'d form (:func:`compile_step`) when on.

* ``compile`` is an ordinary saved attribute: a model saved compiled loads eager and the
  reverse (``Algo.load(path, compile=...)``); the compiled functions themselves are never saved
  (:meth:`_excluded_save_params`) and are rebuilt on demand, for the model they belong to (a
  deep copy builds its own, never calls its original's).
* With ``compile`` on, :meth:`_setup_model` makes the device-resident
  :class:`~maxbench.engine.replay.TensorReplayBuffer` the default replay buffer and
  :meth:`tune_optimizers` (called by ``train``) switches the optimisers to their multi-tensor
  (and, on CUDA, capturable) kernels. Off, both leave SB3's defaults alone, so eager runs stay
  bit-for-bit what they were.
* :meth:`Compilable.gradients_into` is a step's ``zero_grad`` + ``backward``: eagerly exactly
  that, compiled a function transform (:class:`~maxbench.engine.compiled.ParameterSwap`), so that
  the compiled step has no autograd segments.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from gymnasium import spaces
from stable_baselines3.common.save_util import recursive_getattr

from maxbench.engine.compiled import (
    ParameterSwap,
    compile_step,
    ensure_gradients,
    step_without_graph_breaks,
    store_gradient,
    tune_optimizer,
)
from maxbench.engine.replay import TensorReplayBuffer

__all__ = ["Compilable", "check_compile_option"]


def check_compile_option(value: object) -> bool | str:
    """``value`` if it is a valid ``compile`` option (True, False or a backend name)."""
    if isinstance(value, bool) or (isinstance(value, str) and value):
        return value
    raise ValueError(
        f"compile must be true, false or a torch.compile backend name (e.g. 'aot_eager'): {value!r}"
    )


class Compilable:
    """Mixin: the ``compile`` option of an SB3 algorithm and its compiled functions."""

    compile: bool | str = False
    device: torch.device
    gamma: float
    observation_space: spaces.Space
    replay_buffer_class: Any

    def _set_compile(self, value: object) -> None:
        self.compile = check_compile_option(value)

    def compiled(
        self,
        name: str,
        function: Callable[..., Any],
        transforms_only: bool = False,
        cpp_wrapper: bool = False,
    ) -> Callable[..., Any]:
        """``function`` compiled per this model's ``compile`` option (cached under ``name``).

        The cache is rebuilt when ``compile`` changes and belongs to this very object (keyed by
        its identity), so a deep copy or a loaded model compiles its own.

        ``transforms_only``: compiled, every gradient ``function`` takes is a transform of
        :meth:`gradients_into` (no ``backward``). It then runs under ``torch.no_grad`` (a
        transform computes its gradients whatever the grad mode outside it), so AOTAutograd
        traces an inference graph whatever inputs require grad (the engine SAC's step measured
        about 4% faster so, within the noise of a 2-core machine; the same compile time).

        ``cpp_wrapper``: inductor on CPU calls the kernels from C++
        (:func:`~maxbench.engine.compiled.compile_step`), for a small graph of many operations.
        """
        cache = self.__dict__.setdefault("_compiled_functions", {})
        entry = cache.get(name)
        if entry is None or entry[0] != id(self) or entry[1] != self.compile:
            no_grad = transforms_only and self.compile is not False
            traced = torch.no_grad()(function) if no_grad else function
            compiled = compile_step(traced, self.compile, self.device, cpp_wrapper)
            entry = (id(self), self.compile, compiled)
            cache[name] = entry
        return entry[2]

    def prepare_gradients(self, *names: str) -> None:
        """Make the :class:`~maxbench.engine.compiled.ParameterSwap` of each named module
        attribute (``"critic"``, ``"actor"``) that :meth:`gradients_into` will use: call it
        before the compiled step (in ``train``), as building a module inside compiled code is a
        graph break. Cached; rebuilt when the attribute is another module. Compiled, it also
        gives the module's parameters (or a named tensor attribute's, e.g. ``"log_ent_coef"``,
        whose gradient :meth:`set_gradient` sets) a ``.grad`` tensor to write into
        (:func:`~maxbench.engine.compiled.store_gradient`). Nothing to do for a None attribute.
        """
        swaps = self.__dict__.setdefault("_parameter_swaps", {})
        for name in names:
            value = recursive_getattr(self, name)
            if isinstance(value, torch.Tensor):
                if self.compile is not False:
                    ensure_gradients([value])
                continue
            if value is None:
                continue
            swap = swaps.get(name)
            if swap is None or swap.module is not value:
                swaps[name] = ParameterSwap(value)
            if self.compile is not False:
                ensure_gradients(value.parameters())

    def set_gradient(self, parameter: torch.Tensor, gradient: torch.Tensor) -> None:
        """``parameter.grad = gradient`` (a gradient formed by hand, e.g. the temperature's),
        written in place into the gradient tensor already there
        (:func:`~maxbench.engine.compiled.store_gradient`): the same value, and compiled, no
        graph break before the optimiser's step."""
        store_gradient(parameter, gradient)

    def step_optimizer(self, optimizer: torch.optim.Optimizer) -> None:
        """``optimizer.step()``; compiled, traced into the step's graph instead of breaking it
        (:func:`~maxbench.engine.compiled.step_without_graph_breaks`): for an optimiser whose
        gradients come from :meth:`gradients_into`'s transform or :meth:`set_gradient`."""
        if self.compile is False:
            optimizer.step()
        else:
            step_without_graph_breaks(optimizer)

    def gradients_into(
        self,
        name: str,
        loss: Callable[[], Any],
        has_aux: bool = False,
        transform: bool = True,
    ) -> Any:
        """``d loss() / dθ`` into the ``.grad`` of the parameters θ of the module ``name``.

        Eager (``compile`` off): ``zero_grad`` and ``loss().backward(inputs=θ)``, the gradient of
        nothing else. Compiled: the same gradient as a ``torch.func`` transform
        (:meth:`~maxbench.engine.compiled.ParameterSwap.gradients_into`; build it first with
        :meth:`prepare_gradients`), unless ``transform`` is False (a module the transform cannot
        take). Returns ``loss()``'s value, ``(loss, aux)`` with ``has_aux`` (the gradient is
        that of ``loss``; ``aux`` is returned as computed).
        """
        module = recursive_getattr(self, name)
        if self.compile is not False and transform:
            swap = self.__dict__.get("_parameter_swaps", {}).get(name)
            if swap is None or swap.module is not module:  # not prepared: right, but a break
                self.prepare_gradients(name)
                swap = self.__dict__["_parameter_swaps"][name]
            return swap.gradients_into(loss, has_aux)
        value = loss()
        objective = value[0] if has_aux else value
        parameters = [parameter for parameter in module.parameters() if parameter.requires_grad]
        for parameter in parameters:
            parameter.grad = None
        objective.backward(inputs=parameters)
        return value

    def gamma_tensor(self) -> torch.Tensor:
        """The discount γ as a float32 tensor on the model's device, made once (a Python float
        would be a constant baked into the compiled step, and a new tensor per step a copy)."""
        key = (self.gamma, torch.device(self.device))
        cached = self.__dict__.get("_gamma_cache")
        if cached is None or cached[0] != key:
            value = torch.tensor(self.gamma, device=self.device, dtype=torch.float32)
            cached = self.__dict__["_gamma_cache"] = (key, value)
        return cached[1]

    def _setup_model(self) -> None:
        """SB3's set-up; with ``compile`` on, the device replay buffer by default.

        Only where SB3's would be the plain ``ReplayBuffer``: Box observations, one-step
        returns (SB3's ``NStepReplayBuffer`` keeps n-step ones) and no class chosen. The
        attribute is put back to None, so the choice is saved as "the default" and a model
        loaded with another ``compile`` makes its own.
        """
        chosen = self.replay_buffer_class
        if (
            chosen is None
            and self.compile is not False
            and getattr(self, "n_steps", 1) == 1
            and isinstance(self.observation_space, spaces.Box)
        ):
            self.replay_buffer_class = TensorReplayBuffer
        try:
            super()._setup_model()  # type: ignore[misc]
        finally:
            if chosen is None:
                self.replay_buffer_class = None

    def engine_optimizers(self) -> list[torch.optim.Optimizer]:
        """Every optimiser of the model: those SB3 saves (``_get_torch_save_params``)."""
        names, _ = self._get_torch_save_params()  # type: ignore[attr-defined]
        found = (recursive_getattr(self, name) for name in names)
        return [value for value in found if isinstance(value, torch.optim.Optimizer)]

    def tune_optimizers(self) -> None:
        """With ``compile`` on, every optimiser on its multi-tensor kernel (capturable on CUDA).

        A fused optimiser (``optimizer_kwargs={"fused": True}``) too: ``torch.compile`` does
        not trace the fused kernel, and (torch 2.13) a multi-tensor optimiser traced after one
        fails. Call it at the start of ``train``: it is cheap, and covers a model whose
        ``compile`` was set as an attribute and a loaded one (SB3's load restores the saved
        optimiser settings). Off, the optimisers keep the kernels they were built with.
        """
        if self.compile is False:
            return
        for optimizer in self.engine_optimizers():
            tune_optimizer(optimizer, self.device)

    def _update_learning_rate(self, optimizers: Any) -> None:
        """SB3's learning-rate update, which every ``train`` starts with; then
        :meth:`tune_optimizers`."""
        super()._update_learning_rate(optimizers)  # type: ignore[misc]
        self.tune_optimizers()

    def _excluded_save_params(self) -> list[str]:
        return [  # type: ignore[misc]
            *super()._excluded_save_params(),
            "_compiled_functions",
            "_parameter_swaps",
            "_gamma_cache",
        ]
