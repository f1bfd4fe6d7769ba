"""The ``device`` key of a suite (issue 14): per suite and per algorithm, checked, recorded."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from cli_checks import bad_input_message
from typer.testing import CliRunner

from maxbench.cli import app
from maxbench.results.layout import read_run_json
from maxbench.suite.cells import expand_suite
from maxbench.suite.loading import load_suite
from maxbench.suite.plan import spec_changes

TD3 = {"algo": "td3", "hyperparams": {"default": {"learning_starts": 50}}}


def _cells(path: Path):
    loaded = load_suite(path)
    return {cell.algo: cell for cell in expand_suite(loaded.suite, loaded.name)}


def test_the_suites_device_is_every_cells_unless_an_algorithm_names_its_own(suite_writer):
    path = suite_writer(device="cpu", algorithms={"sac": {}, "td3": {**TD3, "device": "auto"}})
    cells = _cells(path)
    assert cells["sac"].device == "cpu"
    assert cells["td3"].device == "auto"
    assert _cells(suite_writer())["sac"].device == "auto"


def test_results_written_before_the_device_key_are_not_changed(suite_writer):
    (cell,) = _cells(suite_writer()).values()
    stored = cell.to_dict()
    del stored["device"]  # a run.json of an older maxbench
    assert spec_changes(stored, cell) == ()
    assert spec_changes(stored, _cells(suite_writer(device="cpu"))["sac"]) == (
        'device unset -> "cpu"',
    )


@pytest.mark.parametrize("value", ["gpu", "cuda:x", 1, "CPU", "cuda:"])
def test_a_malformed_device_is_refused(suite_writer, value):
    result = CliRunner().invoke(app, ["validate", str(suite_writer(device=value))])
    assert result.exit_code == 2
    assert "device must be auto, cpu, cuda or cuda:N" in bad_input_message(result)


def test_device_among_the_hyperparameters_is_refused(suite_writer):
    path = suite_writer(algorithms={"sac": {"hyperparams": {"default": {"device": "cpu"}}}})
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code == 2
    assert "is set by the suite's 'device' key" in bad_input_message(result)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_a_gpu_the_machine_lacks_is_refused_before_anything_runs(suite_writer, tmp_path):
    out = tmp_path / "results"
    result = CliRunner().invoke(app, ["run", str(suite_writer(device="cuda")), "--out", str(out)])
    assert result.exit_code == 2
    assert "device cuda: torch sees no CUDA GPU on this machine" in bad_input_message(result)
    assert not out.exists() or not any(out.rglob("run.json"))


def test_a_run_on_the_named_device_records_it(suite_writer, tmp_path):
    out = tmp_path / "results"
    path = suite_writer(device="cpu", budget=100, checkpoint_every=50)
    result = CliRunner().invoke(app, ["run", str(path), "--out", str(out)])
    assert result.exit_code == 0, result.output
    (cell,) = _cells(path).values()
    run = read_run_json(cell.folder(out))
    assert run["status"] == "finished"
    assert run["spec"]["device"] == "cpu"
    assert run["provenance"]["device"] == "cpu"
