"""Run-time tables: ``maxbench latency`` (predict latency, parameter counts) and throughput."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from test_report import invoke, write_run

from maxbench.errors import UserInputError
from maxbench.provenance import cpu_model
from maxbench.report.runtime import (
    MUJOCO_SHAPES,
    default_latency_algorithms,
    latency_shapes,
    read_latency_tables,
    throughput_table,
)
from maxbench.results.loader import load_results


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
    assert table.columns[:5] == ["algo", "env", "runs", "env steps", "steps/s"]
    # env_steps_per_s is 100 + seed in the synthetic run.json files
    assert table.rows == [
        [
            "a",
            "TaskA-v0",
            "2",
            "3,000",
            "100.5 ± 0.5",
            "29.9 ± 0.1",
            "30.9 ± 0.1",
            "Test CPU",
            "cpu",
            "1",
        ]
    ]
    assert table.data.loc[0, "env_steps_per_s_mean"] == pytest.approx(100.5)
