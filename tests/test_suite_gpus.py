"""Spreading cells over GPUs (maxbench.suite.gpus): fewest cells first, capped, honoured."""

from __future__ import annotations

import pytest

from maxbench.suite.gpus import GpuSlots, visible_gpu_ids


def test_cells_go_to_the_gpu_with_the_fewest_and_come_back():
    slots = GpuSlots(["0", "1", "2"])
    assert [slots.take() for _ in range(5)] == [0, 1, 2, 0, 1]
    slots.give_back(2)
    assert slots.load == [2, 2, 0]
    assert slots.take() == 2


def test_the_cap_holds_cells_back_until_one_ends():
    slots = GpuSlots(["4", "7"], cells_per_gpu=2)
    assert [slots.take() for _ in range(4)] == [0, 1, 0, 1]
    assert slots.take() is None
    slots.give_back(1)
    assert slots.take() == 1
    with pytest.raises(ValueError, match="at least 1"):
        GpuSlots(["0"], cells_per_gpu=0)


def test_only_cells_without_a_chosen_gpu_are_spread():
    slots = GpuSlots(["0", "1"])
    assert slots.wants_gpu("auto") and slots.wants_gpu("cuda")
    assert not slots.wants_gpu("cuda:1") and not slots.wants_gpu("cpu")
    no_gpu = GpuSlots([])
    assert not no_gpu.wants_gpu("cuda") and no_gpu.take() is None
    with pytest.raises(ValueError, match="no cell"):
        slots.give_back(0)


def test_visible_gpus_follow_cuda_visible_devices(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3, 5")
    assert visible_gpu_ids() == ["3", "5"]
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    assert visible_gpu_ids() == ["0", "1"]
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert visible_gpu_ids() == []


def test_the_local_backend_shows_each_cell_its_gpu(suite_writer, tmp_path, monkeypatch):
    """Two (pretend) GPUs, one cell on each at a time: every cell's process sees one of them."""
    import json

    from gpu_probe_algo import PROBE_FOLDER_VARIABLE

    import maxbench.suite.local as local
    from maxbench.suite.runner import run_suite

    probes = tmp_path / "probes"
    probes.mkdir()
    monkeypatch.setenv(PROBE_FOLDER_VARIABLE, str(probes))
    monkeypatch.setattr(local, "visible_gpu_ids", lambda: ["3", "5"])
    taken: list[int | None] = []
    original_take = GpuSlots.take

    def recording_take(self):
        index = original_take(self)
        taken.append(index)
        return index

    monkeypatch.setattr(GpuSlots, "take", recording_take)
    algorithms = {"probe": {"algo": "gpu_probe_algo:GpuProbeSAC"}}
    path = suite_writer(algorithms=algorithms, seeds=3, budget=20, checkpoint_every=20)
    path.write_text(path.read_text().replace("every: 50", "every: 20"))
    outcome = run_suite(path, out=tmp_path / "results", workers=3, cells_per_gpu=1)
    assert outcome.exit_code == 0
    seen = [json.loads(p.read_text())["visible"] for p in sorted(probes.glob("*.json"))]
    assert len(seen) == 3 and set(seen) == {"3", "5"}  # one GPU each, both GPUs used
    assert taken[:3] == [0, 1, None]  # the third cell waited for a GPU to be free


def test_ray_cells_on_cuda_ask_for_their_share_of_a_gpu():
    from maxbench.suite.ray_backend import gpu_share

    assert gpu_share("cpu", 4) == 0.0 and gpu_share("auto", None) == 0.0
    assert gpu_share("cuda", None) == 1.0
    assert gpu_share("cuda:1", 4) == 0.25
