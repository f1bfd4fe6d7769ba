"""maxbench.engine.inductor_cpu: the repairs to torch's inductor CPU backend (issue 14).

The boolean-mask lines are checked against eager torch (forward values and gradients, with loop
tails) and against inductor's own unpatched lines; the loop-split guard on stand-in nodes.
"""

from __future__ import annotations

import pytest
import torch
from torch._inductor.utils import run_and_get_code

from maxbench.engine import inductor_cpu
from maxbench.engine.compiled import compile_step

MASK_STORE = "at::vec::convert<int8_t>("
MASK_LOAD = "at::vec::Vectorized<int8_t>::loadu("


def _relu_then_linear(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """A ReLU network differentiated to its input only (weights constant): the backward needs
    nothing but the ReLU's mask, so the compiled forward saves it as a bool buffer."""
    return (torch.relu(x) @ weight).square().sum()


def _compiled_input_grad(x: torch.Tensor, weight: torch.Tensor) -> tuple[torch.Tensor, list]:
    torch._dynamo.reset()
    compiled = torch.compile(_relu_then_linear, dynamic=False)

    def run() -> torch.Tensor:
        leaf = x.clone().requires_grad_(True)
        compiled(leaf, weight).backward()
        return leaf.grad

    grad, code = run_and_get_code(run)
    return grad, code


@pytest.mark.parametrize("shape", [(64, 32), (37, 5)])  # whole vectors, and a loop tail
def test_saved_relu_masks_round_trip_as_eager(shape: tuple[int, int]) -> None:
    """The mask stored by the forward kernel and loaded by the backward one gives eager's
    input gradient (to rounding of the fused product), with the patched lines in the code."""
    inductor_cpu.install()
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(shape, generator=generator)
    x[0, : min(3, shape[1])] = 0.0  # relu'(0) = 0: the boundary goes into the mask as well
    weight = torch.randn(shape[1], 7, generator=generator)
    eager = x.clone().requires_grad_(True)
    _relu_then_linear(eager, weight).backward()
    grad, code = _compiled_input_grad(x, weight)
    torch.testing.assert_close(grad, eager.grad, rtol=1e-5, atol=1e-6)
    assert (grad[x <= 0] == 0).all() and (grad[x > 0] != 0).any()
    source = "\n".join(code)
    assert MASK_STORE in source and MASK_LOAD in source


def test_mask_kernels_store_the_same_bytes_as_torch() -> None:
    """A compiled comparison returned as a bool tensor (the patched store) equals eager's, byte
    for byte, and a bool tensor fed in (the patched load) selects the same elements."""
    inductor_cpu.install()
    torch._dynamo.reset()
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(53, 19, generator=generator)
    y = torch.randn(53, 19, generator=generator)

    def compare(a: torch.Tensor) -> torch.Tensor:
        return torch.relu(a) <= 0

    def select(mask: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        return torch.where(mask, torch.zeros_like(a), a) * 2

    stored, code = run_and_get_code(torch.compile(compare, dynamic=False), x)
    assert MASK_STORE in "\n".join(code)
    assert stored.dtype == torch.bool
    assert torch.equal(stored.view(torch.uint8), compare(x).view(torch.uint8))
    selected, code = run_and_get_code(torch.compile(select, dynamic=False), stored, y)
    assert MASK_LOAD in "\n".join(code)
    assert torch.equal(selected, select(stored, y))


def test_unpatched_lines_are_left_to_inductor() -> None:
    """Anything but a one-vector bool mask goes to inductor's own line generation."""
    calls: list[tuple] = []

    def original_store(self, value, var, index, dtype, accu_store=False):  # noqa: ANN001, ANN202
        calls.append(("store", dtype, accu_store))
        return "inductor's"

    def original_load(self, var, index, dtype, load_mask=None):  # noqa: ANN001, ANN202
        calls.append(("load", dtype))
        return "inductor's"

    class Kernel:
        def __init__(self, vectors: int) -> None:
            self.vectors = vectors

        def _get_num_vectors(self, dtype: torch.dtype) -> int:
            return self.vectors

    store = inductor_cpu.fast_bool_mask_store_line(original_store)
    load = inductor_cpu.fast_bool_mask_load_line(original_load)
    assert store(Kernel(1), "v", "buf", 0, torch.float32) == "inductor's"
    assert store(Kernel(1), "v", "buf", 0, torch.bool, accu_store=True) == "inductor's"
    assert store(Kernel(2), "v", "buf", 0, torch.bool) == "inductor's"
    assert load(Kernel(1), "buf", 0, torch.int8) == "inductor's"
    assert load(Kernel(2), "buf", 0, torch.bool) == "inductor's"
    assert calls == [
        ("store", torch.float32, False),
        ("store", torch.bool, True),
        ("store", torch.bool, False),
        ("load", torch.int8),
        ("load", torch.bool),
    ]


def test_install_keys_the_cache_once_and_keeps_a_users_pass() -> None:
    """The patched code is keyed in inductor's caches by this module's hash; a post-grad pass a
    user set is never displaced; installing twice wraps nothing twice."""
    from torch._inductor.codegen.cpp import CppVecKernel

    config = torch._inductor.config
    saved = config.post_grad_custom_post_pass
    try:
        config.post_grad_custom_post_pass = None
        inductor_cpu.install()
        key = config.post_grad_custom_post_pass
        assert isinstance(key, inductor_cpu.PatchedCodegenKey)
        assert key.uuid().startswith("maxbench.engine.inductor_cpu ") and len(key.uuid()) > 40
        store, load = CppVecKernel._get_store_line, CppVecKernel._get_vec_load_line
        inductor_cpu.install()
        assert CppVecKernel._get_store_line is store
        assert CppVecKernel._get_vec_load_line is load

        def users_pass(graph: torch.fx.Graph) -> None:
            return None

        config.post_grad_custom_post_pass = users_pass
        inductor_cpu.install()
        assert config.post_grad_custom_post_pass is users_pass
    finally:
        config.post_grad_custom_post_pass = saved


class LoopNode:
    """A stand-in for an inductor scheduler node: a loop state that can be saved and restored."""

    def __init__(self, state: str) -> None:
        self.state = state

    def snapshot_loop_state(self) -> str:
        return self.state

    def restore_loop_state(self, state: str) -> None:
        self.state = state


def test_loop_split_guard_keeps_the_nodes_when_the_split_asserts() -> None:
    """inductor's try_loop_split (torch 2.13) asserts on fused nodes that split differently; the
    guard gives the nodes back with their loop state as it was, and leaves a success alone."""
    from maxbench.engine.inductor_cpu import loop_split_guard

    def failing(_self: object, nodes: list[LoopNode]) -> list[LoopNode]:
        nodes[0].state = "half-split"  # a change before the assertion is undone
        raise AssertionError(({"y0": 2}, {"y0": 1}))

    nodes = [LoopNode("a"), LoopNode("b")]
    assert loop_split_guard(failing)(None, nodes) is nodes
    assert [node.state for node in nodes] == ["a", "b"]

    def splitting(_self: object, nodes: list[LoopNode]) -> list[LoopNode]:
        for node in nodes:
            node.state += "-split"
        return nodes

    assert [n.state for n in loop_split_guard(splitting)(None, nodes)] == ["a-split", "b-split"]

    def broken(_self: object, nodes: list[LoopNode]) -> list[LoopNode]:
        raise ValueError("not the known assertion")

    with pytest.raises(ValueError, match="not the known assertion"):
        loop_split_guard(broken)(None, nodes)


def test_compiling_installs_the_loop_split_guard_once() -> None:
    from torch._inductor.codegen.cpp import CppScheduling

    compile_step(lambda x: x + 1, True, torch.device("cpu"))
    installed = CppScheduling.try_loop_split
    assert getattr(installed, "_maxbench_guard", False)
    compile_step(lambda x: x + 2, True, torch.device("cpu"))
    assert CppScheduling.try_loop_split is installed
