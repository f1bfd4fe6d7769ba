"""Run-time tables: ``maxbench latency`` (predict latency, parameter counts) and throughput."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
from test_report import invoke, write_run

from maxbench.errors import UserInputError
from maxbench.provenance import cpu_model
from maxbench.report.runtime import (
    MUJOCO_SHAPES,
    check_latency_device,
    default_latency_algorithms,
    latency_model,
    latency_shapes,
    read_latency_tables,
    throughput_table,
)
from maxbench.results.atomic import write_json_atomic
from maxbench.results.loader import compile_mode, load_results


def linear(inputs: int, outputs: int) -> int:
    return inputs * outputs + outputs


def mlp(inputs: int, hidden: list[int]) -> int:
    sizes = [inputs, *hidden]
    return sum(linear(a, b) for a, b in zip(sizes, sizes[1:], strict=False))


def sac_counts(obs: int, act: int) -> tuple[int, int]:
    """SB3 SAC's MlpPolicy (256, 256): actor (mu and log_std heads), two Q networks."""
    actor = mlp(obs, [256, 256]) + 2 * linear(256, act)
    critic = 2 * (mlp(obs + act, [256, 256]) + linear(256, 1))
    return actor + critic, actor


def td3_counts(obs: int, act: int) -> tuple[int, int]:
    """SB3 TD3's MlpPolicy (400, 300): deterministic actor, two Q networks."""
    actor = mlp(obs, [400, 300]) + linear(300, act)
    critic = 2 * (mlp(obs + act, [400, 300]) + linear(300, 1))
    return actor + critic, actor


def test_shapes() -> None:
    assert latency_shapes([3, 6, 6, 8]) == list(MUJOCO_SHAPES)
    assert [(s.obs, s.act) for s in MUJOCO_SHAPES] == [(11, 3), (17, 6), (17, 6), (105, 8)]
    assert [(s.obs, s.act) for s in latency_shapes([8, 2])] == [(105, 8), (17, 2)]
    assert [(s.obs, s.act) for s in latency_shapes([2, 3], [4, 5])] == [(4, 2), (5, 3)]
    with pytest.raises(UserInputError, match="one observation size per action size"):
        latency_shapes([2, 3], [4])


def test_default_algorithms_start_with_sac_and_td3() -> None:
    names = default_latency_algorithms()
    assert names[:2] == ["sac", "td3"]
    assert len(names) == len(set(names))


def test_latency_command(tmp_path: Path) -> None:
    out = tmp_path / "latency"
    result = invoke(
        "latency",
        "--algos",
        "sac,td3",
        "--dims",
        "2,3",
        "--obs",
        "4,5",
        "--calls",
        "5",
        "--warmup",
        "1",
        "--out",
        out,
    )
    assert result.exit_code == 0, result.output
    header = result.output[: result.output.index("algo")]
    assert cpu_model() in header and "1 torch thread(s)" in header
    with open(out / "latency.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["algo"], r["obs"], r["act"]) for r in rows] == [
        ("sac", "4", "2"),
        ("sac", "5", "3"),
        ("td3", "4", "2"),
        ("td3", "5", "3"),
    ]
    for row in rows:
        counts = {"sac": sac_counts, "td3": td3_counts}[row["algo"]](
            int(row["obs"]), int(row["act"])
        )
        assert (int(row["policy_params"]), int(row["actor_params"])) == counts
        assert 0.0 < float(row["p25_ms"]) <= float(row["median_ms"]) <= float(row["p75_ms"])
        assert row["calls"] == "5"
    for suffix in ("md", "tex", "json"):
        assert (out / f"latency.{suffix}").exists()
    assert "| sac | obs 4 / act 2 | 4 | 2 |" in (out / "latency.md").read_text()
    table = read_latency_tables(out)
    assert table is not None and table.threads == 1 and len(table.results) == 4


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--algos", "sacc"], "unknown algorithm 'sacc'"),
        (["--dims", "3,x"], "--dims takes comma-separated positive integers"),
        (["--dims", "3,0"], "--dims takes comma-separated positive integers"),
        (["--dims", "3", "--obs", "1,2"], "one observation size per action size"),
        (["--calls", "0"], "--calls and --threads must be at least 1"),
    ],
)
def test_latency_bad_input(args: list[str], message: str) -> None:
    result = invoke("latency", *args)
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_throughput_table(tmp_path: Path) -> None:
    for seed in (0, 1):
        write_run(tmp_path, "a", "TaskA-v0", seed)
    runs = load_results(tmp_path).runs.assign(method=lambda f: f["algo"])
    table = throughput_table(runs)
    assert table.columns[:6] == ["algo", "env", "runs", "compile", "env steps", "steps/s"]
    # env_steps_per_s is 100 + seed in the synthetic run.json files, which predate compile_time_s
    # (an eager run's compilation is 0)
    assert table.rows == [
        [
            "a",
            "TaskA-v0",
            "2",
            "eager",
            "3,000",
            "100.5 ± 0.5",
            "29.9 ± 0.1",
            "0.0 ± 0.0",
            "30.9 ± 0.1",
            "Test CPU",
            "cpu",
            "1",
        ]
    ]
    assert table.data.loc[0, "env_steps_per_s_mean"] == pytest.approx(100.5)


def _compiled_run(folder: Path, compile_value: object, compile_s: float) -> None:
    """Make a synthetic run a compiled one: the option in its spec, compilation in its timings
    (the runner's steady throughput: env steps / (train time − compile time))."""
    path = folder / "run.json"
    run = json.loads(path.read_text())
    run["spec"]["hyperparams"] = {"compile": compile_value}
    timings = run["timings"]
    timings["compile_time_s"] = compile_s
    timings["env_steps_per_s"] = round(
        timings["env_steps"] / (timings["train_time_s"] - compile_s), 2
    )
    write_json_atomic(path, run)


def test_throughput_table_reports_compilation_apart(tmp_path: Path) -> None:
    for seed, compile_s in ((0, 10.0), (1, 12.0)):
        _compiled_run(write_run(tmp_path, "fast", "TaskA-v0", seed), True, compile_s)
    write_run(tmp_path, "slow", "TaskA-v0", 0)
    runs = load_results(tmp_path).runs.assign(method=lambda f: f["algo"])
    assert sorted(runs["compile"]) == ["eager", "inductor", "inductor"]
    table = throughput_table(runs)
    by_algo = {row[0]: dict(zip(table.columns, row, strict=True)) for row in table.rows}
    assert by_algo["fast"]["compile"] == "inductor"
    assert by_algo["fast"]["compile s"] == "11.0 ± 1.0"
    # 3000 steps in 3000/100 = 30 s of training of which 10 s compiling: 150 steps/s steady;
    # seed 1: 3000 / (3000/101 − 12)
    steady = [3000 / (30.0 - 10.0), 3000 / (3000 / 101 - 12.0)]
    mean = sum(steady) / 2
    assert table.data.set_index("method").loc["fast", "env_steps_per_s_mean"] == pytest.approx(
        mean, abs=0.01
    )
    assert table.data.set_index("method").loc["fast", "compile_time_s_mean"] == 11.0
    assert by_algo["slow"]["compile"] == "eager" and by_algo["slow"]["compile s"] == "0.0"
    assert "compile time" in table.notes[0]


@pytest.mark.parametrize(
    ("hyperparams", "expected"),
    [
        ({}, "eager"),
        ({"compile": False}, "eager"),
        ({"compile": True}, "inductor"),
        ({"compile": "aot_eager"}, "aot_eager"),
        (None, "eager"),
    ],
)
def test_compile_mode(hyperparams: object, expected: str) -> None:
    assert compile_mode(hyperparams) == expected


def test_latency_models_compile_where_they_can() -> None:
    shape = latency_shapes([2], [3])[0]
    assert latency_model("softgac", shape, compile=True).compile is True
    assert latency_model("softgac", shape).compile is False
    sac = latency_model("sac", shape, compile=True)  # SB3's own: no such option, stays eager
    assert not hasattr(sac, "compile")
    assert str(sac.device) == "cpu"


def test_latency_table_records_device_and_compile(tmp_path: Path) -> None:
    out = tmp_path / "latency"
    args = ["--algos", "sac,softgac", "--dims", "2", "--obs", "3", "--calls", "3"]
    result = invoke("latency", *args, "--warmup", "1", "--device", "cpu", "--out", out)
    assert result.exit_code == 0, result.output
    with open(out / "latency.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["algo"], r["device"], r["compile"]) for r in rows] == [
        ("sac", "cpu", "eager"),
        ("softgac", "cpu", "eager"),
    ]
    table = read_latency_tables(out)
    assert table is not None
    assert [(r.device, r.compile) for r in table.results] == [("cpu", "eager")] * 2
    assert "| sac | obs 3 / act 2 | 3 | 2 | cpu | eager |" in (out / "latency.md").read_text()


def test_latency_json_before_device_and_compile_reads(tmp_path: Path) -> None:
    """A latency.json written before the device and compile fields still loads (as CPU, eager)."""
    result = {
        "algo": "sac",
        "env": "Hopper-v5",
        "obs": 11,
        "act": 3,
        "median_ms": 0.2,
        "p25_ms": 0.1,
        "p75_ms": 0.3,
        "calls": 10,
        "policy_params": 100,
        "actor_params": 50,
    }
    meta = {
        "machine": "m",
        "threads": 1,
        "torch": "2",
        "warmup": 1,
        "calls": 10,
        "results": [result],
    }
    write_json_atomic(tmp_path / "latency.json", meta)
    table = read_latency_tables(tmp_path)
    assert table is not None
    assert (table.results[0].device, table.results[0].compile) == ("cpu", "eager")
    write_json_atomic(tmp_path / "latency.json", {**meta, "results": [{**result, "device": 1}]})
    with pytest.raises(UserInputError, match="'device' is 1, not a str"):
        read_latency_tables(tmp_path)


@pytest.mark.parametrize("device", ["auto", "gpu", "cuda:x", "cuda:99"])
def test_latency_device_refused(device: str) -> None:
    result = invoke("latency", "--algos", "sac", "--dims", "2", "--device", device)
    assert result.exit_code == 2, result.output
    assert "--device" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks a machine without a GPU")
def test_latency_cuda_without_gpu_is_refused() -> None:
    with pytest.raises(UserInputError, match="torch sees no CUDA GPU.*use --device cpu"):
        check_latency_device("cuda")
    assert check_latency_device(" CPU ") == "cpu"
