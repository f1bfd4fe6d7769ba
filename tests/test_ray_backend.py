"""The Ray backend on a real local Ray instance (2 CPUs), against the local backend."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from maxbench.cli import app
from maxbench.results.layout import read_evals, read_run_json
from maxbench.suite.cell_runner import run_cell
from maxbench.suite.cells import expand_suite
from maxbench.suite.loading import load_suite

from conftest import MAXBENCH, REPO

pytest.importorskip("ray", reason="the Ray backend needs the 'ray' extra")
pytestmark = pytest.mark.slow

SMOKE = REPO / "suites" / "smoke.yaml"


def _returns(out: Path) -> dict[str, list[tuple[int, tuple[float, ...]]]]:
    loaded = load_suite(SMOKE)
    return {
        cell.key: [(row.timestep, row.returns) for row in read_evals(cell.folder(out))]
        for cell in expand_suite(loaded.suite, loaded.name)
    }


@pytest.mark.slow
def test_smoke_suite_on_ray_equals_the_local_backend(tmp_path: Path, subprocess_env) -> None:
    local, on_ray = tmp_path / "local", tmp_path / "ray"
    for out, extra in ((local, []), (on_ray, ["--backend", "ray"])):
        result = subprocess.run(
            [*MAXBENCH, "run", str(SMOKE), "--out", str(out), "--workers", "2", *extra],
            env=subprocess_env,
            capture_output=True,
            text=True,
            timeout=900,
        )
        assert result.returncode == 0, result.stdout + result.stderr
    expected, observed = _returns(local), _returns(on_ray)
    assert len(expected) == 12
    assert all(rows for rows in expected.values())
    assert observed == expected


def test_a_cell_interrupted_locally_resumes_on_ray(suite_writer, tmp_path: Path) -> None:
    path = suite_writer(budget=400, checkpoint_every=200)
    loaded = load_suite(path)
    (cell,) = expand_suite(loaded.suite, loaded.name)
    out = tmp_path / "results"

    def interrupt_at_300(timestep: int) -> None:
        if timestep >= 300:
            raise KeyboardInterrupt

    assert run_cell(cell, out, report=interrupt_at_300) == "interrupted"
    result = subprocess.run(
        [*MAXBENCH, "run", str(path), "--out", str(out), "--backend", "ray", "--workers", "1"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    run = read_run_json(cell.folder(out))
    assert run["status"] == "finished"
    assert [a["resumed_from"] for a in run["attempts"]] == [0, 200]
    assert [r.timestep for r in read_evals(cell.folder(out))] == [
        50,
        100,
        150,
        200,
        250,
        300,
        350,
        400,
    ]


def test_missing_ray_extra_is_one_clear_line(suite_writer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    result = CliRunner().invoke(app, ["run", str(suite_writer()), "--backend", "ray"])
    assert result.exit_code == 2
    assert "needs the 'ray' extra" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_address_without_ray_backend_is_bad_input(suite_writer) -> None:
    result = CliRunner().invoke(app, ["run", str(suite_writer()), "--address", "auto"])
    assert result.exit_code == 2
    assert "--backend ray" in result.stderr
