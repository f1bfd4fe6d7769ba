"""Two repairs to torch 2.13's inductor C++ (CPU) backend, installed when something is compiled.

Neither changes what a compiled function computes; each is tested against the unpatched code.

* :func:`loop_split_guard`: inductor's optional CPU loop split asserts on a fused group whose
  nodes split differently, which aborted the compilation of S2AC's step at its defaults (10
  particles); guarded, the pass gives up on that group, as it does on other incompatible ones.
* **Boolean masks** (:func:`fast_bool_mask_store_line`, :func:`fast_bool_mask_load_line`): a
  kernel that saves a comparison for the backward pass (the ReLU masks of a network
  differentiated to its input only: the actor losses through frozen critics) stores it as
  ``bool`` through ``VecMask<float,1>::store(bool*)``, which converts via the generic
  (64-lane, element by element) ``Vectorized<bool>``: measured 0.65 ms for a 256×256 mask,
  against 0.04 ms for the same ReLU and comparison run eagerly: 3.3 ms of a compiled SAC step
  of 15 ms on this project's CPU. Loading one back (``VecMask::from(bool*, n)``) is a scalar
  loop. The patched lines go through the ISA-specific ``float`` ↔ ``int8`` conversions instead
  (a bool is one byte holding 0 or 1): the same bytes, about 70 times faster.

The patched code generation would otherwise hide behind inductor's on-disk cache (kernels made
before the patch keep being reused, and the reverse): :class:`PatchedCodegenKey` is a custom
post-grad pass that changes nothing but puts this file's hash into every cache key.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

__all__ = [
    "PatchedCodegenKey",
    "fast_bool_mask_load_line",
    "fast_bool_mask_store_line",
    "install",
    "loop_split_guard",
]


def install() -> None:
    """Install every repair once per process (a torch without the C++ backend: nothing)."""
    try:
        from torch._inductor.codegen.cpp import CppScheduling, CppVecKernel
    except ImportError:
        return
    if not getattr(CppScheduling.try_loop_split, "_maxbench_guard", False):
        CppScheduling.try_loop_split = loop_split_guard(CppScheduling.try_loop_split)
    if not getattr(CppVecKernel._get_store_line, "_maxbench_patch", False):
        CppVecKernel._get_store_line = fast_bool_mask_store_line(CppVecKernel._get_store_line)
    if not getattr(CppVecKernel._get_vec_load_line, "_maxbench_patch", False):
        CppVecKernel._get_vec_load_line = fast_bool_mask_load_line(CppVecKernel._get_vec_load_line)
    config = torch._inductor.config
    if config.post_grad_custom_post_pass is None:  # never displaces a user's own pass
        config.post_grad_custom_post_pass = PatchedCodegenKey()


# -- the loop split ----------------------------------------------------------------------------
def loop_split_guard(original: Callable[[Any, list[Any]], list[Any]]) -> Callable:
    """``original`` (inductor's ``CppScheduling.try_loop_split``), returning the nodes with their
    loop state as it was when it raises an AssertionError.

    torch 2.13's pass (an optimisation that splits a loop to avoid a division in an index)
    asserts that every node of a fused group splits into the same loop ranges, and a group whose
    nodes split differently aborts the whole compilation (``InductorError: AssertionError:
    ({y0: 2, y1: 20, y2: 10, y3: 16}, {y0: 2, y1: 1, ...})``: S2AC's step with 10 particles). The
    assertion is raised before the pass changes anything, and the pass itself gives up on other
    incompatible groups by keeping the group as it was: so does this guard (restoring the nodes'
    loop state, should a later step have run).
    """

    def try_loop_split(self: Any, nodes: list[Any]) -> list[Any]:
        snapshots = [(node, node.snapshot_loop_state()) for node in nodes]
        try:
            return original(self, nodes)
        except AssertionError:
            for node, state in reversed(snapshots):
                node.restore_loop_state(state)
            return nodes

    try_loop_split._maxbench_guard = True  # type: ignore[attr-defined]
    return try_loop_split


# -- boolean masks -----------------------------------------------------------------------------
def _one_float_vector(kernel: Any) -> bool:
    """Whether ``kernel``'s masks are ``VecMask<float,1>`` (one float vector per iteration):
    the only case the patched lines handle; wider tilings keep inductor's own code."""
    return kernel._get_num_vectors(torch.float) == 1


def fast_bool_mask_store_line(original: Callable[..., Any]) -> Callable[..., Any]:
    """``original`` (``CppVecKernel._get_store_line``), except for a contiguous store of a mask
    into a ``bool`` buffer: ``convert<int8_t>(mask.to<float,1>())`` (0.0 / 1.0, then 0 / 1)
    stored as bytes, instead of ``mask.store(bool*)``."""

    def _get_store_line(
        self: Any,
        value: Any,
        var: str,
        index: Any,
        dtype: torch.dtype,
        accu_store: bool = False,
    ) -> Any:
        if dtype != torch.bool or accu_store or not _one_float_vector(self):
            return original(self, value, var, index, dtype, accu_store)
        stride = self._try_get_const_stride(index, self.itervars[self.tiling_idx])
        if stride != 1:
            return original(self, value, var, index, dtype, accu_store)
        from torch._inductor.codegen.common import IndentedBuffer
        from torch._inductor.codegen.cpp_utils import cexpr_index

        code = IndentedBuffer()
        code.writeline(
            f"at::vec::convert<int8_t>({value}.template to<float,1>()).store("
            f"reinterpret_cast<int8_t*>({var} + {cexpr_index(index)}), "
            f"{cexpr_index(self.num_elems)});"
        )
        return code

    _get_store_line._maxbench_patch = True  # type: ignore[attr-defined]
    return _get_store_line


def fast_bool_mask_load_line(original: Callable[..., Any]) -> Callable[..., Any]:
    """``original`` (``CppVecKernel._get_vec_load_line``), except for a load of a ``bool``
    buffer as a mask: the bytes as ``int8``, converted to ``float`` and compared with 0,
    instead of ``VecMask::from(bool*, n)``'s scalar loop (inductor's own line ignores a load
    mask for ``bool`` too)."""

    def _get_vec_load_line(
        self: Any, var: str, index: Any, dtype: torch.dtype, load_mask: Any = None
    ) -> str:
        if dtype != torch.bool or not _one_float_vector(self):
            return original(self, var, index, dtype, load_mask)
        from torch._inductor.codegen.cpp_utils import cexpr_index

        address = f"{var} + {cexpr_index(index)}" if index != 0 else var
        as_float = (
            f"at::vec::convert<float>(at::vec::Vectorized<int8_t>::loadu("
            f"reinterpret_cast<const int8_t*>({address}), {cexpr_index(self.num_elems)}))"
        )
        return f"{self._get_mask_type()}({as_float} != at::vec::Vectorized<float>(0.0f))"

    _get_vec_load_line._maxbench_patch = True  # type: ignore[attr-defined]
    return _get_vec_load_line


def _patch_hash() -> str:
    """This file's hash: what the cache keys of code generated with these repairs include."""
    from torch._inductor.custom_graph_pass import get_hash_for_files

    return get_hash_for_files((str(Path(__file__)),)).hex()


try:
    from torch._inductor.custom_graph_pass import CustomGraphPass as _CustomGraphPass
except ImportError:  # pragma: no cover - a torch without inductor
    _CustomGraphPass = object  # type: ignore[assignment,misc]


class PatchedCodegenKey(_CustomGraphPass):  # type: ignore[misc,valid-type]
    """A post-grad pass that leaves the graph as it is; its :meth:`uuid` (this file's hash)
    keeps inductor's caches from mixing code generated with and without the repairs."""

    def __call__(self, graph: torch.fx.graph.Graph) -> None:
        return None

    def uuid(self) -> str:
        return f"maxbench.engine.inductor_cpu {_patch_hash()}"
