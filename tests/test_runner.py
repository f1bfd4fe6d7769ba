"""The runner: determinism, resume from a checkpoint, crash isolation, idempotence.

These train real (tiny) cells in-process or through the CLI, a few seconds each.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from maxbench.cli import app
from maxbench.results.layout import read_evals, read_run_json
from maxbench.suite.cell_runner import boundaries, run_cell
from maxbench.suite.cells import expand_suite
from maxbench.suite.loading import load_suite


def _cells(path: Path):
    loaded = load_suite(path)
    return expand_suite(loaded.suite, loaded.name)


def test_boundaries_cover_every_evaluation_and_checkpoint(suite_writer) -> None:
    (cell,) = _cells(suite_writer(budget=230, checkpoint_every=100))
    points = list(boundaries(cell))
    assert [p for p, do_eval, _ in points if do_eval] == [50, 100, 150, 200, 230]
    assert [p for p, _, do_ckpt in points if do_ckpt] == [100, 200]


def test_same_seed_gives_identical_evaluations(suite_writer, tmp_path: Path) -> None:
    (cell,) = _cells(suite_writer())
    assert run_cell(cell, tmp_path / "a") == "finished"
    assert run_cell(cell, tmp_path / "b") == "finished"
    first, second = read_evals(cell.folder(tmp_path / "a")), read_evals(cell.folder(tmp_path / "b"))
    assert [r.timestep for r in first] == [50, 100, 150, 200]
    assert [r.returns for r in first] == [r.returns for r in second]
    assert [r.lengths for r in first] == [r.lengths for r in second]


def test_another_seed_gives_other_evaluations(suite_writer, tmp_path: Path) -> None:
    cells = _cells(suite_writer(seeds=[0, 1]))
    for cell in cells:
        assert run_cell(cell, tmp_path) == "finished"
    first, second = (read_evals(cell.folder(tmp_path)) for cell in cells)
    assert [r.returns for r in first] != [r.returns for r in second]


@pytest.mark.usefixtures("boundary_reports_only")
def test_interrupted_cell_resumes_from_its_checkpoint(suite_writer, tmp_path: Path) -> None:
    (cell,) = _cells(suite_writer(budget=400, checkpoint_every=200))

    def interrupt_at_300(timestep: int) -> None:
        if timestep >= 300:
            raise KeyboardInterrupt

    assert run_cell(cell, tmp_path, report=interrupt_at_300) == "interrupted"
    folder = cell.folder(tmp_path)
    before = read_evals(folder)
    assert [r.timestep for r in before] == [50, 100, 150, 200, 250, 300]
    assert read_run_json(folder)["status"] == "interrupted"

    assert run_cell(cell, tmp_path) == "finished"
    after = read_evals(folder)
    run = read_run_json(folder)
    # Rows up to the checkpoint (200) are kept as they were; 250 and 300 are evaluated again.
    assert [r.timestep for r in after] == [50, 100, 150, 200, 250, 300, 350, 400]
    assert after[:4] == before[:4]
    assert [a["resumed_from"] for a in run["attempts"]] == [0, 200]
    assert run["timings"]["env_steps"] == 400
    assert (folder / "model.zip").exists()
    assert not (folder / "checkpoints").exists()


@pytest.mark.usefixtures("boundary_reports_only")
def test_damaged_checkpoint_falls_back_to_an_older_one(suite_writer, tmp_path: Path) -> None:
    (cell,) = _cells(suite_writer(budget=400, checkpoint_every=100))

    def interrupt_at_350(timestep: int) -> None:
        if timestep >= 350:
            raise KeyboardInterrupt

    assert run_cell(cell, tmp_path, report=interrupt_at_350) == "interrupted"
    folder = cell.folder(tmp_path)
    newest = sorted((folder / "checkpoints").glob("step_*"))[-1]
    assert newest.name.endswith("300")
    model = newest / "model.zip"
    model.write_bytes(model.read_bytes()[: model.stat().st_size // 2])  # truncate it

    assert run_cell(cell, tmp_path) == "finished"
    run = read_run_json(folder)
    assert run["attempts"][-1]["resumed_from"] == 200
    assert "damaged" in (folder / "train.log").read_text()
    assert [r.timestep for r in read_evals(folder)] == [50, 100, 150, 200, 250, 300, 350, 400]


def test_crash_in_one_cell_is_recorded_and_the_others_finish(
    suite_writer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).parent))
    algorithms = {
        "crash": {
            "algo": "crashing_algo:CrashingSAC",
            "hyperparams": {"default": {"learning_starts": 20}},
        },
        "sac": {
            "hyperparams": {"default": {"learning_starts": 20, "policy_kwargs": {"net_arch": [8]}}}
        },
    }
    path = suite_writer(algorithms=algorithms, budget=100)
    out = tmp_path / "results"
    result = CliRunner().invoke(app, ["run", str(path), "--out", str(out), "--workers", "2"])
    assert result.exit_code == 1, result.output
    crash = read_run_json(out / "tiny/crash/MultiGoal-v0/seed_0")
    assert crash["status"] == "failed"
    assert "deliberate crash inside train()" in crash["error"]
    assert "Traceback" in (out / "tiny/crash/MultiGoal-v0/seed_0/train.log").read_text()
    assert read_run_json(out / "tiny/sac/MultiGoal-v0/seed_0")["status"] == "finished"

    # A failed cell is skipped unless --retry-failed.
    again = CliRunner().invoke(app, ["run", str(path), "--out", str(out), "--dry-run"])
    assert "skip (failed" in again.output
    retry = CliRunner().invoke(
        app, ["run", str(path), "--out", str(out), "--retry-failed", "--dry-run"]
    )
    assert "retry (failed)" in retry.output


def test_rerunning_a_finished_suite_changes_nothing(suite_writer, tmp_path: Path) -> None:
    path = suite_writer(budget=100)
    out = tmp_path / "results"
    first = CliRunner().invoke(app, ["run", str(path), "--out", str(out), "--workers", "1"])
    assert first.exit_code == 0, first.output
    run_json = out / "tiny/sac/MultiGoal-v0/seed_0/run.json"
    before = run_json.read_bytes()
    second = CliRunner().invoke(app, ["run", str(path), "--out", str(out)])
    assert second.exit_code == 0, second.output
    assert run_json.read_bytes() == before
    assert "final evaluation returns" in second.output
    run = json.loads(before)
    assert run["provenance"]["torch_threads"] == 1
    assert run["timings"]["env_steps_per_s"] > 0
    for key in ("python", "packages", "git_revision", "host", "cpu", "device"):
        assert key in run["provenance"]


def test_compilation_is_timed_apart_from_training(tmp_path: Path) -> None:
    """A compiled cell's run.json reports its compilation (compile_time_s, part of train_time_s)
    and a steady-state throughput without it; an eager cell compiles nothing (issue 14)."""
    from conftest import tiny_cell

    hyperparams = {
        "learning_starts": 50,
        "batch_size": 32,
        "buffer_size": 5000,
        "policy_kwargs": {"net_arch": [16, 16]},
    }
    compiled = tiny_cell(
        algo="sac-engine",
        algo_target="maxbench.algos.engine_sac:EngineSAC",
        hyperparams={**hyperparams, "compile": "aot_eager"},
    )
    eager = tiny_cell(
        algo="sac-engine-eager",
        algo_target="maxbench.algos.engine_sac:EngineSAC",
        hyperparams=hyperparams,
    )
    for cell in (compiled, eager):
        assert run_cell(cell, tmp_path) == "finished"
    timings = read_run_json(compiled.folder(tmp_path))["timings"]
    assert 0.0 < timings["compile_time_s"] < timings["train_time_s"]
    steady = timings["env_steps"] / (timings["train_time_s"] - timings["compile_time_s"])
    assert timings["env_steps_per_s"] == pytest.approx(steady, rel=1e-3)
    eager_timings = read_run_json(eager.folder(tmp_path))["timings"]
    assert eager_timings["compile_time_s"] == 0.0
    assert eager_timings["env_steps_per_s"] == pytest.approx(
        eager_timings["env_steps"] / eager_timings["train_time_s"], rel=1e-3
    )
