"""Fault injection for ``maxbench run`` and ``run --dry-run``: damaged results, changed suites.

Issue 16. Damaged results: each kind of damage goes into one cell of a two-cell suite whose
cells have finished; both commands name the damaged cell with its reason, process the other
cell, never print a traceback and leave the damaged files untouched byte for byte (``run`` exits
1: a cell did not finish; the dry run exits 0). Changed suites: after an edit of the budget or of
a hyperparameter, ``run`` refuses (exit 2, one line, nothing touched) unless ``--rerun-changed``
(old results set aside, cells started again) or ``--keep-changed`` (old results kept).

The finished cells are trained once per module (two tiny SAC cells, a few seconds) and copied
into each test's folder.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from typer.testing import CliRunner, Result

from maxbench import cli
from maxbench.cli import app
from maxbench.results.layout import read_cell
from maxbench.suite.cell_runner import run_cell
from maxbench.suite.cells import expand_suite
from maxbench.suite.loading import load_suite
from maxbench.suite.local import record_outcome
from maxbench.suite.plan import PlannedCell, spec_changes

from conftest import write_suite

SEEDS = 2
CELL_0 = "sac/MultiGoal-v0/seed_0"
CELL_1 = "sac/MultiGoal-v0/seed_1"
WIDE = {"COLUMNS": "4000"}  # one line per message: the tests check words, not rich's wrapping


@pytest.fixture(autouse=True)
def _console_width_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let cli's console take its width from COLUMNS at print time (not from import time)."""
    if isinstance(getattr(cli, "console", None), Console):
        monkeypatch.setattr(cli.console, "_width", None)


@pytest.fixture(scope="module")
def finished_results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A results folder in which both cells of the tiny two-seed suite have finished."""
    root = tmp_path_factory.mktemp("finished")
    loaded = load_suite(write_suite(root, seeds=SEEDS))
    out = root / "results"
    for cell in expand_suite(loaded.suite, loaded.name):
        assert run_cell(cell, out) == "finished"
    return out


@pytest.fixture
def results(finished_results: Path, tmp_path: Path) -> Path:
    """This test's own copy of the finished results."""
    out = tmp_path / "results"
    shutil.copytree(finished_results, out)
    return out


def cell_folder(out: Path, key: str) -> Path:
    return out / "tiny" / key


def digest(root: Path) -> dict[str, str]:
    """SHA-256 of every file below ``root`` (lock files excluded: their pid is not data)."""
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file() and path.name != ".lock"
    }


def invoke(*args: str | Path) -> Result:
    return CliRunner(env=WIDE).invoke(app, [str(arg) for arg in args])


def no_traceback(result: Result) -> str:
    output = result.output
    assert "Traceback" not in output, output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    return output


def one_error_line(result: Result) -> str:
    """The bad-input contract: exit 2, one line on stderr starting with 'error:'."""
    output = no_traceback(result)
    assert result.exit_code == 2, output
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1, output
    assert lines[0].startswith("error:"), lines[0]
    return lines[0]


def set_status(folder: Path, status: str) -> None:
    """Make a finished cell look interrupted (its checkpoints are written by the caller)."""
    run = json.loads((folder / "run.json").read_text())
    run["status"] = status
    (folder / "run.json").write_text(json.dumps(run))


# -- the damage ----------------------------------------------------------------------------------
def _truncate_run_json(folder: Path) -> None:
    path = folder / "run.json"
    path.write_bytes(path.read_bytes()[:120])


def _write(name: str, text: str | bytes, status: str | None = None) -> Callable[[Path], None]:
    def damage(folder: Path) -> None:
        if status is not None:
            set_status(folder, status)
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(text)

    return damage


def _edit_run_json(**fields: Any) -> Callable[[Path], None]:
    def damage(folder: Path) -> None:
        run = json.loads((folder / "run.json").read_text())
        run.update(fields)
        (folder / "run.json").write_text(json.dumps(run))

    return damage


def _edit_spec(**fields: Any) -> Callable[[Path], None]:
    """A spec field of the wrong type: damaged (not "changed"), as report and multigoal say."""

    def damage(folder: Path) -> None:
        run = json.loads((folder / "run.json").read_text())
        run["spec"].update(fields)
        (folder / "run.json").write_text(json.dumps(run))

    return damage


def _short_evals_row(folder: Path) -> None:
    path = folder / "evals.csv"
    lines = path.read_text().splitlines()
    lines[2] = lines[2].split(",")[0]  # the second evaluation keeps only its timestep
    path.write_text("\n".join(lines) + "\n")


def _non_numeric_evals(folder: Path) -> None:
    path = folder / "evals.csv"
    lines = path.read_text().splitlines()
    fields = lines[1].split(",")
    fields[0] = "fifty"
    lines[1] = ",".join(fields)
    path.write_text("\n".join(lines) + "\n")


LATEST = "checkpoints/latest.json"
DAMAGE: list[tuple[str, Callable[[Path], None], str]] = [
    ("run-json-truncated", _truncate_run_json, "run.json is not valid JSON"),
    ("run-json-list", _write("run.json", "[1, 2]"), "run.json is not a JSON object"),
    ("run-json-number", _write("run.json", "42\n"), "run.json is not a JSON object"),
    ("run-json-empty", _write("run.json", ""), "run.json is not valid JSON"),
    ("run-json-not-utf8", _write("run.json", b'{"status": "\xff\xfe"}'), "run.json"),
    ("run-json-unknown-status", _edit_run_json(status="exploded"), "unknown status 'exploded'"),
    ("run-json-spec-a-list", _edit_run_json(spec=[1]), "'spec' is not an object"),
    ("run-json-seed-text", _edit_spec(seed="x"), "spec 'seed' is str"),
    ("run-json-budget-infinite", _edit_spec(budget=float("inf")), "spec 'budget' is float"),
    ("latest-json-list", _write(LATEST, "[]", status="interrupted"), "not a JSON object"),
    ("latest-json-invalid", _write(LATEST, "{", status="interrupted"), "not valid JSON"),
    (
        "latest-json-history-not-list",
        _write(LATEST, '{"history": 3}', status="interrupted"),
        "'history' is not a list",
    ),
    (
        "latest-json-entry-without-timestep",
        _write(LATEST, '{"history": [{"folder": "step_1"}]}', status="running"),
        "has no valid timestep",
    ),
    ("evals-short-row", _short_evals_row, "evals.csv line 3"),
    ("evals-non-numeric", _non_numeric_evals, "evals.csv line 2"),
    ("evals-missing-column", _write("evals.csv", "timestep\n50\n"), "evals.csv lacks"),
    ("cell-folder-is-a-file", None, "is a file, not a folder"),  # type: ignore[list-item]
]


def damage_cell(out: Path, damage: Callable[[Path], None] | None) -> Path:
    folder = cell_folder(out, CELL_1)
    if damage is None:  # the cell's folder replaced by a file
        shutil.rmtree(folder)
        folder.write_text("not a folder\n")
    else:
        damage(folder)
    return folder


@pytest.mark.parametrize(("damage", "reason"), [d[1:] for d in DAMAGE], ids=[d[0] for d in DAMAGE])
def test_dry_run_names_the_damaged_cell_and_goes_on(
    damage: Callable[[Path], None], reason: str, results: Path, suite_writer
) -> None:
    damage_cell(results, damage)
    before = digest(results)
    result = invoke("run", suite_writer(seeds=SEEDS), "--out", results, "--dry-run")
    output = no_traceback(result)
    assert result.exit_code == 0, output
    damaged_line = next(line for line in output.splitlines() if CELL_1 in line)
    assert "damaged: " in damaged_line and reason in damaged_line, damaged_line
    other = next(line for line in output.splitlines() if CELL_0 in line)
    assert "skip (finished)" in other
    assert "--reset-damaged" in output
    assert digest(results) == before


@pytest.mark.parametrize(("damage", "reason"), [d[1:] for d in DAMAGE], ids=[d[0] for d in DAMAGE])
def test_run_steps_over_the_damaged_cell(
    damage: Callable[[Path], None], reason: str, results: Path, suite_writer
) -> None:
    damage_cell(results, damage)
    before = digest(results)
    result = invoke("run", suite_writer(seeds=SEEDS), "--out", results)
    output = no_traceback(result)
    assert result.exit_code == 1, output
    lines = [line for line in output.splitlines() if line.startswith(f"damaged {CELL_1}: ")]
    assert len(lines) == 1 and reason in lines[0], output
    assert "--reset-damaged" in output
    # The other cell was processed: skipped as finished, shown finished in the summary.
    assert "2 cells, 0 to run" in output
    summary = [line for line in output.splitlines() if "MultiGoal-v0" in line and "│" in line]
    assert any("finished" in line for line in summary), output
    assert any("damaged" in line for line in summary), output
    assert digest(results) == before  # the damaged files untouched, byte for byte


@pytest.mark.slow
def test_run_trains_the_other_cell_when_one_is_damaged(results: Path, suite_writer) -> None:
    """The healthy cell is run (not just skipped) while the damaged one is stepped over."""
    shutil.rmtree(cell_folder(results, CELL_0))
    damaged = damage_cell(results, _truncate_run_json)
    damaged_bytes = (damaged / "run.json").read_bytes()
    result = invoke("run", suite_writer(seeds=SEEDS), "--out", results, "--workers", "1")
    output = no_traceback(result)
    assert result.exit_code == 1, output
    assert f"damaged {CELL_1}: run.json is not valid JSON" in output
    assert read_cell(cell_folder(results, CELL_0)).status == "finished"
    assert (damaged / "run.json").read_bytes() == damaged_bytes


@pytest.mark.slow
def test_reset_damaged_sets_the_folder_aside_and_starts_again(results: Path, suite_writer) -> None:
    damaged = damage_cell(results, _write("run.json", "[1, 2]"))
    old_files = digest(damaged)
    other = digest(cell_folder(results, CELL_0))
    suite = suite_writer(seeds=SEEDS)

    dry = invoke("run", suite, "--out", results, "--dry-run", "--reset-damaged")
    line = next(line for line in dry.output.splitlines() if CELL_1 in line)
    assert dry.exit_code == 0 and "restart (damaged: " in line and "not a JSON object" in line
    assert digest(damaged) == old_files  # a dry run moves nothing

    result = invoke("run", suite, "--out", results, "--reset-damaged")
    output = no_traceback(result)
    assert result.exit_code == 0, output
    (aside,) = damaged.parent.glob("seed_1.damaged-*")
    assert f"set aside {CELL_1}" in output and aside.name in output
    assert digest(aside) == old_files  # moved, nothing deleted or changed
    assert read_cell(damaged).status == "finished"
    assert digest(cell_folder(results, CELL_0)) == other


def test_damaged_reason_with_markup_is_printed_as_text(results: Path, suite_writer) -> None:
    damage_cell(results, _edit_run_json(status="[bold red]x[/]"))
    for extra in ((), ("--dry-run",)):
        result = invoke("run", suite_writer(seeds=SEEDS), "--out", results, *extra)
        output = no_traceback(result)
        assert "unknown status '[bold red]x[/]'" in output, output


def test_odd_values_in_a_finished_run_json_do_not_crash_the_summary(
    results: Path, suite_writer
) -> None:
    folder = cell_folder(results, CELL_1)
    _edit_run_json(
        final={"mean_return": "high", "timestep": [1]},
        timings={"env_steps_per_s": None, "wall_time_s": "[/]"},
        error="[/]",
    )(folder)
    result = invoke("run", suite_writer(seeds=SEEDS), "--out", results)
    output = no_traceback(result)
    # A timing that is text is not what maxbench writes: the cell is damaged (the same verdict
    # as report's and multigoal's: one reader, read_cell), named with the field, and stepped over.
    assert result.exit_code == 1, output
    assert "damaged" in output and "wall_time_s" in output, output


# -- changed suites ------------------------------------------------------------------------------
CHANGES = [
    ({"budget": 250}, "budget 200 -> 250"),
    (
        {
            "algorithms": {
                "sac": {
                    "hyperparams": {
                        "default": {
                            "learning_starts": 50,
                            "batch_size": 16,
                            "buffer_size": 5000,
                            "policy_kwargs": {"net_arch": [16, 16]},
                        }
                    }
                }
            }
        },
        "hyperparams.batch_size 32 -> 16",
    ),
    ({"evaluation": {"every": 100, "episodes": 2, "deterministic": False}}, "eval_every 50 -> 100"),
]


@pytest.mark.parametrize(("edit", "difference"), CHANGES, ids=["budget", "hyperparam", "eval"])
def test_changed_suite_is_refused_and_nothing_is_touched(
    edit: dict[str, Any], difference: str, results: Path, suite_writer
) -> None:
    before = digest(results)
    suite = suite_writer(seeds=SEEDS, **edit)
    message = one_error_line(invoke("run", suite, "--out", results))
    assert "2 cells of suite 'tiny' were run with different settings" in message
    assert difference in message and CELL_0 in message
    assert "--rerun-changed" in message and "--keep-changed" in message
    assert digest(results) == before

    dry = invoke("run", suite, "--out", results, "--dry-run")
    output = no_traceback(dry)
    assert dry.exit_code == 0, output
    line = next(line for line in output.splitlines() if CELL_1 in line and "│" in line)
    assert f"changed ({difference}" in line, line
    assert digest(results) == before


def test_changed_cells_are_counted_once_each(results: Path, suite_writer) -> None:
    """Only the cell that changed is reported (an --only selection; the other seed unchanged)."""
    run = json.loads((cell_folder(results, CELL_1) / "run.json").read_text())
    run["spec"]["hyperparams"]["gamma"] = 0.5  # as if seed_1 had been run with another gamma
    (cell_folder(results, CELL_1) / "run.json").write_text(json.dumps(run))
    message = one_error_line(invoke("run", suite_writer(seeds=SEEDS), "--out", results))
    assert "1 cell of suite 'tiny' was run with different settings" in message
    assert "hyperparams.gamma 0.5 -> unset" in message
    assert CELL_1 in message and CELL_0 not in message


def test_keep_changed_keeps_the_old_results(results: Path, suite_writer) -> None:
    before = digest(results)
    result = invoke(
        "run", suite_writer(seeds=SEEDS, budget=250), "--out", results, "--keep-changed"
    )
    output = no_traceback(result)
    assert result.exit_code == 0, output  # both cells finished (under the old settings)
    assert "keep their old results" in output
    assert digest(results) == before


def test_keep_changed_never_resumes_an_unfinished_cell_under_new_settings(
    results: Path, suite_writer
) -> None:
    set_status(cell_folder(results, CELL_1), "interrupted")
    before = digest(results)
    suite = suite_writer(seeds=SEEDS, budget=250)
    dry = invoke("run", suite, "--out", results, "--dry-run", "--keep-changed")
    line = next(line for line in dry.output.splitlines() if CELL_1 in line and "│" in line)
    assert "keep (changed: budget 200 -> 250; not resumed)" in line, line
    result = invoke("run", suite, "--out", results, "--keep-changed")
    output = no_traceback(result)
    assert result.exit_code == 1, output  # the interrupted cell did not finish
    assert "0 to run" in output and CELL_1 in output
    assert digest(results) == before


def test_a_folder_that_cannot_be_set_aside_is_not_run(
    results: Path, suite_writer, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(folder: Path, label: str) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr("maxbench.suite.runner.set_aside", refuse)
    before = digest(results)
    suite = suite_writer(seeds=SEEDS, budget=250)
    result = invoke("run", suite, "--out", results, "--rerun-changed")
    output = no_traceback(result)
    assert result.exit_code == 1, output  # asked to rerun, and could not: not a success
    assert f"not run {CELL_0}: cannot set its folder aside (Permission denied)" in output
    assert "0 to run" in output
    assert digest(results) == before


def test_rerun_and_keep_changed_exclude_each_other(results: Path, suite_writer) -> None:
    result = invoke(
        "run", suite_writer(seeds=SEEDS), "--out", results, "--rerun-changed", "--keep-changed"
    )
    assert "exclude each other" in one_error_line(result)


@pytest.mark.slow
def test_rerun_changed_sets_old_results_aside_and_reruns(results: Path, suite_writer) -> None:
    folder = cell_folder(results, CELL_1)
    old_files = digest(folder)
    other = digest(cell_folder(results, CELL_0))
    suite = suite_writer(seeds=SEEDS, budget=250)
    result = invoke("run", suite, "--out", results, "--rerun-changed", "--only", "*/seed_1")
    output = no_traceback(result)
    assert result.exit_code == 0, output
    (aside,) = folder.parent.glob("seed_1.changed-*")
    assert digest(aside) == old_files
    assert f"set aside {CELL_1}" in output
    new = read_cell(folder)
    assert new.status == "finished" and new.spec["budget"] == 250
    assert [row.timestep for row in new.evals][-1] == 250
    assert digest(cell_folder(results, CELL_0)) == other  # not in the selection: untouched


def test_a_cell_without_a_spec_is_not_changed(results: Path, suite_writer) -> None:
    folder = cell_folder(results, CELL_1)
    (folder / "run.json").write_text(json.dumps({"status": "failed", "error": "no env"}))
    result = invoke("run", suite_writer(seeds=SEEDS), "--out", results, "--dry-run")
    line = next(line for line in result.output.splitlines() if CELL_1 in line)
    assert "skip (failed" in line and "changed" not in line


def test_spec_changes_normalises_and_ignores_nothing(suite_writer) -> None:
    loaded = load_suite(suite_writer())
    (cell,) = expand_suite(loaded.suite, loaded.name)
    stored = json.loads(json.dumps(cell.to_dict()))
    assert spec_changes(stored, cell) == ()
    assert spec_changes(None, cell) == ()
    assert spec_changes({**stored, "budget": 200.0}, cell) == ()  # the same number
    older = {k: v for k, v in stored.items() if k != "extra"}  # a field added since, at default
    assert spec_changes(older, cell) == ()
    assert spec_changes({**stored, "eval_deterministic": 0}, cell) == (
        "eval_deterministic 0 -> false",
    )
    assert spec_changes({**stored, "checkpoint_every": 50}, cell) == ("checkpoint_every 50 -> 100",)
    assert spec_changes({**stored, "env_kwargs": {"a": 1}}, cell) == ("env_kwargs.a 1 -> unset",)


# -- options that name odd things -----------------------------------------------------------------
def test_out_naming_a_file_is_bad_input(tmp_path: Path, suite_writer) -> None:
    target = tmp_path / "a-file"
    target.write_text("x")
    suite = suite_writer(seeds=SEEDS)
    for extra in ((), ("--dry-run",)):
        message = one_error_line(invoke("run", suite, "--out", target, *extra))
        assert "is not a folder" in message
        message = one_error_line(invoke("run", suite, "--out", target / "below", *extra))
        assert "is a file" in message
    assert target.read_text() == "x"


def test_suite_folder_that_is_a_file_is_bad_input(tmp_path: Path, suite_writer) -> None:
    out = tmp_path / "results"
    out.mkdir()
    (out / "tiny").write_text("x")
    message = one_error_line(invoke("run", suite_writer(seeds=SEEDS), "--out", out))
    assert "is not a folder" in message


@pytest.mark.parametrize("glob", ["[", "[/]x", "x\ny", "[!a-", "\\", "sac/[]"])
def test_odd_only_globs_are_one_line(glob: str, results: Path, suite_writer) -> None:
    message = one_error_line(
        invoke("run", suite_writer(seeds=SEEDS), "--out", results, "--only", glob)
    )
    assert "matches no cell" in message


# -- a worker that dies without an outcome -------------------------------------------------------
def _planned(out: Path, suite_writer) -> PlannedCell:
    loaded = load_suite(suite_writer(seeds=SEEDS))
    cell = expand_suite(loaded.suite, loaded.name)[1]
    return PlannedCell(cell, "resume", "running", 0)


def test_outcome_of_a_dead_worker_leaves_a_damaged_run_json_alone(
    results: Path, suite_writer
) -> None:
    planned = _planned(results, suite_writer)
    folder = damage_cell(results, _truncate_run_json)
    before = (folder / "run.json").read_bytes()
    status, run = record_outcome(planned, results, exitcode=-9)
    assert status == "damaged" and "run.json is not valid JSON" in run["error"]
    assert (folder / "run.json").read_bytes() == before


def test_outcome_prefers_the_error_the_cell_recorded(results: Path, suite_writer) -> None:
    planned = _planned(results, suite_writer)
    folder = cell_folder(results, CELL_1)
    _edit_run_json(status="running", error="OSError: [Errno 28] No space left on device")(folder)
    status, run = record_outcome(planned, results, exitcode=0)
    assert status == "failed"
    assert run["error"] == "OSError: [Errno 28] No space left on device"
    assert read_cell(folder).run["status"] == "failed"


def test_outcome_names_the_system_error_when_it_cannot_be_recorded(
    results: Path, suite_writer, monkeypatch: pytest.MonkeyPatch
) -> None:
    planned = _planned(results, suite_writer)
    folder = cell_folder(results, CELL_1)
    set_status(folder, "running")
    before = (folder / "run.json").read_bytes()

    def full_disk(*args: Any, **kwargs: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("maxbench.suite.local.write_json_atomic", full_disk)
    status, run = record_outcome(planned, results, exitcode=1)
    assert status == "failed"
    assert "cannot record it: [Errno 28] No space left on device" in run["error"]
    assert (folder / "run.json").read_bytes() == before
