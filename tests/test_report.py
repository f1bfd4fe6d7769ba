"""``maxbench report`` end to end on a synthetic results folder (no training).

The folder (:func:`write_synthetic_results`) has two algorithms on three tasks, three seeds, with
a failed run, a running run and a missing cell, evaluation timesteps that differ between the
algorithms (as PPO's do), and one task without reference scores. Two reports of it are built
once per module; the tests check the files, the listing of incomplete cells, the truncation, the
numbers against rliable called directly, and that the two reports are byte-identical.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from maxbench.cli import app
from maxbench.report.runtime import LatencyResult, LatencyTable, write_latency_tables
from maxbench.results.atomic import write_json_atomic
from maxbench.results.layout import FAILED, FINISHED, RUNNING, EvalRow, write_evals

WIDE = {"COLUMNS": "4000"}
SUITE = "synth"
REFERENCES = {
    "TaskA-v0": (-100.0, 100.0),  # (random, reference)
    "TaskB-v0": (0.0, 50.0),
}


def run_spec(algo: str, env: str, seed: int, budget: int = 3000, every: int = 1000) -> dict:
    """A run.json ``spec`` like :meth:`maxbench.suite.cells.Cell.to_dict` writes."""
    return {
        "suite": SUITE,
        "algo": algo,
        "algo_target": f"tests:{algo.upper()}",
        "policy": "MlpPolicy",
        "hyperparams": {"learning_rate": 0.001},
        "env_id": env,
        "env_name": env,
        "env_kwargs": {},
        "max_episode_steps": None,
        "wrappers": [],
        "seed": seed,
        "budget": budget,
        "eval_every": every,
        "eval_episodes": 3,
        "eval_deterministic": True,
        "n_envs": 1,
        "checkpoint_every": every,
        "extra": {},
    }


def episode_returns(algo: str, env: str, seed: int, index: int) -> tuple[float, ...]:
    """Deterministic, distinct returns for the index-th evaluation of a run."""
    base = {"a": 10.0, "b": 0.0}.get(algo, 20.0)
    base += {"TaskA-v0": 0.0, "TaskB-v0": 5.0, "TaskC-v0": -3.0}[env]
    centre = base + 7.0 * seed + 12.5 * (index + 1)
    return (centre - 1.0, centre, centre + 1.5)


def write_run(
    root: Path,
    algo: str,
    env: str,
    seed: int,
    status: str = FINISHED,
    evaluations: int = 3,
    step: int = 1000,
    suite: str = SUITE,
) -> Path:
    """Write one run folder: evals.csv via the layout helpers, run.json atomically."""
    folder = root / suite / algo / env / f"seed_{seed}"
    rows = [
        EvalRow(
            timestep=step * (i + 1),
            wall_time_s=1.5 * (i + 1),
            returns=episode_returns(algo, env, seed, i),
            lengths=(200, 200, 200),
        )
        for i in range(evaluations)
    ]
    write_evals(folder, rows)
    run: dict[str, Any] = {
        "spec": {**run_spec(algo, env, seed), "suite": suite},
        "status": status,
        "provenance": {
            "python": "3.11.7",
            "packages": {"torch": "2.13.0", "stable-baselines3": "2.9.2", "gymnasium": "1.4.0"},
            "git_revision": "abc123",
            "cpu": "Test CPU",
            "cpu_count": 2,
            "device": "cpu",
            "torch_threads": 1,
        },
    }
    if status == FINISHED:
        steps = step * evaluations
        run["timings"] = {
            "env_steps": steps,
            "train_time_s": steps / (100.0 + seed),
            "eval_time_s": 0.5,
            "wall_time_s": steps / (100.0 + seed) + 1.0,
            "env_steps_per_s": round(100.0 + seed, 2),
        }
    if status == FAILED:
        run["error"] = "RuntimeError: boom"
    write_json_atomic(folder / "run.json", run)
    return folder


def write_synthetic_results(root: Path) -> Path:
    """The synthetic folder described in the module docstring; returns ``root``."""
    for algo, step in (("a", 1000), ("b", 1024)):
        for env in ("TaskA-v0", "TaskB-v0", "TaskC-v0"):
            for seed in (0, 1, 2):
                if (algo, env, seed) == ("a", "TaskB-v0", 2):
                    write_run(root, algo, env, seed, status=FAILED, evaluations=1, step=step)
                elif (algo, env, seed) == ("b", "TaskB-v0", 2):
                    write_run(root, algo, env, seed, status=RUNNING, evaluations=2, step=step)
                elif (algo, env, seed) == ("b", "TaskC-v0", 2):
                    continue  # a missing cell: no folder at all
                else:
                    write_run(root, algo, env, seed, step=step)
    return root


def write_references(path: Path) -> Path:
    """A reference file for TaskA and TaskB (TaskC has none)."""
    data = {
        "version": 7,
        "envs": {
            env: {
                "random": {"score": random, "source": "test random"},
                "reference": {"score": reference, "source": "test reference"},
            }
            for env, (random, reference) in REFERENCES.items()
        },
    }
    path.write_text(json.dumps(data))
    return path


LATENCY = LatencyTable(
    results=[
        LatencyResult("a", "Hopper-v5", 11, 3, 0.25, 0.2, 0.3, 10, 1000, 400),
        LatencyResult("b", "Hopper-v5", 11, 3, 0.75, 0.7, 0.8, 10, 2000, None),
    ],
    machine="Test CPU (2 cores)",
    threads=1,
    torch_version="2.13.0",
    warmup=2,
    calls=10,
)


def invoke(*args: str | Path) -> Any:
    return CliRunner(env=WIDE).invoke(app, [str(a) for a in args])


REPS = 300  # small for speed; the default (2 000) is checked separately


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two reports of the same synthetic folder (with --rliable)."""
    tmp = tmp_path_factory.mktemp("report")
    results = write_synthetic_results(tmp / "results")
    write_latency_tables(LATENCY, results / "latency")  # as 'maxbench latency --out' does
    references = write_references(tmp / "refs.json")
    outs = {}
    for name in ("first", "second"):
        out = tmp / name
        result = invoke(
            "report",
            results,
            "--rliable",
            "--reps",
            REPS,
            "--seed",
            3,
            "--out",
            out,
            "--references",
            references,
        )
        assert result.exit_code == 0, result.output
        outs[name] = out
    outs["results"] = results
    outs["references"] = references
    return outs


EXPECTED_FILES = {
    "report.md",
    "report.html",
    "figures/curves_TaskA-v0.png",
    "figures/curves_TaskB-v0.png",
    "figures/curves_TaskC-v0.png",
    "figures/aggregate_intervals.png",
    "figures/probability_of_improvement.png",
    "figures/performance_profile.png",
    "figures/sample_efficiency_iqm.png",
    *(
        f"tables/{name}.{suffix}"
        for name in (
            "final_scores",
            "aggregates",
            "probability_of_improvement",
            "throughput",
            "excluded_runs",
            "missing_runs",
            "latency",
        )
        for suffix in ("md", "tex", "csv")
    ),
}


def files_of(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()
    }


def test_every_file_is_written(reports: dict[str, Path]) -> None:
    assert set(files_of(reports["first"])) == EXPECTED_FILES


def test_two_reports_are_byte_identical(reports: dict[str, Path]) -> None:
    first, second = files_of(reports["first"]), files_of(reports["second"])
    assert first.keys() == second.keys()
    different = [name for name in first if first[name] != second[name]]
    assert different == []


def test_pngs_have_data(reports: dict[str, Path]) -> None:
    import matplotlib.image

    for png in (reports["first"] / "figures").glob("*.png"):
        pixels = matplotlib.image.imread(png)[..., :3]
        colours = np.unique(pixels.reshape(-1, 3).round(2), axis=0)
        assert len(colours) > 20, f"{png.name} looks empty ({len(colours)} colours)"


def test_html_is_self_contained(reports: dict[str, Path]) -> None:
    html = (reports["first"] / "report.html").read_text()
    assert 'src="figures/' not in html
    assert html.count("data:image/png;base64,") == 7
    assert "<table>" in html


def test_incomplete_cells_are_listed(reports: dict[str, Path]) -> None:
    markdown = (reports["first"] / "report.md").read_text()
    excluded = (reports["first"] / "tables" / "excluded_runs.md").read_text()
    assert "| a | TaskB-v0 | 2 | failed | 1 | 1,000 | RuntimeError: boom |" in excluded
    assert "| b | TaskB-v0 | 2 | running | 2 | 2,048 |" in excluded
    missing = (reports["first"] / "tables" / "missing_runs.md").read_text()
    assert missing.strip().splitlines()[2:] == ["| b | TaskC-v0 | 2 |"]
    for text in (excluded, missing):
        for line in text.strip().splitlines()[2:]:
            assert line in markdown
    assert "TaskC-v0 is not normalised" in markdown


def test_final_score_table_has_a_row_per_algo_and_env(reports: dict[str, Path]) -> None:
    lines = (reports["first"] / "tables" / "final_scores.md").read_text().strip().splitlines()
    keys = [tuple(cell.strip() for cell in line.split("|")[1:3]) for line in lines[2:]]
    assert keys == [(a, e) for a in ("a", "b") for e in ("TaskA-v0", "TaskB-v0", "TaskC-v0")]
    tex = (reports["first"] / "tables" / "final_scores.tex").read_text()
    assert "\\toprule" in tex and "\\midrule" in tex and "\\bottomrule" in tex
    assert "$\\pm$" in tex
    for path in (reports["first"] / "tables").glob("*.tex"):
        assert path.read_text().isascii(), f"{path.name} needs a Unicode-aware LaTeX"


def final_score(algo: str, env: str, seed: int, evaluations: int = 3, k: int = 1) -> float:
    """A run's final score computed from the generator of its returns (mean of last k evals)."""
    means = [np.mean(episode_returns(algo, env, seed, i)) for i in range(evaluations)]
    return float(np.mean(means[-k:]))


def test_final_scores_match_the_definition(reports: dict[str, Path]) -> None:
    import pandas as pd

    table = pd.read_csv(reports["first"] / "tables" / "final_scores.csv")
    row = table[(table["method"] == "a") & (table["env"] == "TaskB-v0")].iloc[0]
    scores = [final_score("a", "TaskB-v0", s) for s in (0, 1)]  # seed 2 failed
    assert row["seeds"] == 2
    assert row["mean"] == pytest.approx(np.mean(scores))
    assert row["std"] == pytest.approx(np.std(scores))
    random, reference = REFERENCES["TaskB-v0"]
    assert row["normalised_mean"] == pytest.approx(
        np.mean([(s - random) / (reference - random) for s in scores])
    )


def score_matrix(algo: str, seeds: tuple[int, ...] = (0, 1)) -> np.ndarray:
    """The normalised (runs × tasks) matrix the report must hand to rliable."""
    columns = []
    for env, (random, reference) in REFERENCES.items():
        columns.append([(final_score(algo, env, s) - random) / (reference - random) for s in seeds])
    return np.array(columns).T


def test_aggregates_equal_rliable_called_directly(reports: dict[str, Path]) -> None:
    import pandas as pd
    from rliable import library as rly
    from rliable import metrics

    def direct(scores: np.ndarray) -> np.ndarray:
        return np.array(
            [
                metrics.aggregate_median(scores),
                metrics.aggregate_iqm(scores),
                metrics.aggregate_mean(scores),
                metrics.aggregate_optimality_gap(scores),
            ]
        )

    table = pd.read_csv(reports["first"] / "tables" / "aggregates.csv").set_index("method")
    for algo in ("a", "b"):
        np.random.seed(3)
        point, interval = rly.get_interval_estimates({algo: score_matrix(algo)}, direct, reps=REPS)
        for index, name in enumerate(("median", "iqm", "mean", "optimality_gap")):
            assert table.loc[algo, name] == pytest.approx(point[algo][index], abs=1e-9)
            assert table.loc[algo, f"{name}_low"] == pytest.approx(
                interval[algo][0, index], abs=1e-9
            )
            assert table.loc[algo, f"{name}_high"] == pytest.approx(
                interval[algo][1, index], abs=1e-9
            )


def test_truncation_to_the_common_minimum_is_stated(reports: dict[str, Path]) -> None:
    markdown = (reports["first"] / "report.md").read_text()
    assert "× 2 run(s) per task" in markdown
    assert "a on TaskA-v0: 3 finished seeds truncated to 2 (seeds 0 1)" in markdown
    assert "b on TaskA-v0: 3 finished seeds truncated to 2 (seeds 0 1)" in markdown


def test_protocol_is_stated(reports: dict[str, Path]) -> None:
    markdown = (reports["first"] / "report.md").read_text()
    for text in (
        f"stratified bootstrap with {REPS} repetitions, seed 3",
        "last K = 1 evaluation(s)",
        "| TaskA-v0 | TaskA-v0 | 3,000 | 1,000 | 3 | yes | 0 1 2 |",
        "Test CPU, 2 cores, device cpu, 1 torch thread(s)",
        "torch 2.13.0",
        "refs.json` (version 7)",
    ):
        assert text in markdown, text


def test_default_bootstrap_is_at_least_2000_and_printed(tmp_path: Path) -> None:
    results = tmp_path / "results"
    write_run(results, "a", "TaskA-v0", 0)
    result = invoke(
        "report",
        results,
        "--out",
        tmp_path / "out",
        "--references",
        write_references(tmp_path / "r.json"),
    )
    assert result.exit_code == 0, result.output
    assert "bootstrap: 2,000 repetitions, seed 0" in result.output
    assert "2,000 repetitions, seed 0" in (tmp_path / "out" / "report.md").read_text()


@pytest.mark.parametrize("make", ["missing", "empty", "file"])
def test_bad_results_folder_is_one_line_and_exit_2(tmp_path: Path, make: str) -> None:
    target = tmp_path / "results"
    if make == "empty":
        (target / "smoke" / "sac").mkdir(parents=True)
    elif make == "file":
        target.write_text("not a folder")
    result = invoke("report", target, "--rliable")
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.output
    assert result.stdout.strip() == ""
    assert "Traceback" not in result.output
    assert not (target / "report").exists()


def test_unknown_versus_is_bad_input(tmp_path: Path) -> None:
    results = write_synthetic_results(tmp_path / "results")
    result = invoke("report", results, "--rliable", "--versus", "aa", "--out", tmp_path / "out")
    assert result.exit_code == 2
    assert "error: --versus 'aa' is not an algorithm" in result.stderr
    assert "did you mean 'a'" in result.stderr


def test_latency_table_of_the_results_folder_is_included(reports: dict[str, Path]) -> None:
    markdown = (reports["first"] / "report.md").read_text()
    assert "predict latency at batch 1 on Test CPU (2 cores), 1 torch thread(s)" in markdown
    assert "| b | Hopper-v5 | 11 | 3 | cpu | eager | 0.750 | 0.700–0.800 | 2,000 | – |" in markdown
