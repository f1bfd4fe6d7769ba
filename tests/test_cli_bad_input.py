"""Bad input through the CLI: exit status 2, one line of error text, no traceback, nothing written.

Every case runs both ``maxbench validate SUITE`` and ``maxbench run SUITE --out <tmp>/results``;
the second must leave the results folder uncreated. Nothing here trains anything.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from cli_checks import bad_input_message
from rich.console import Console
from typer.testing import CliRunner, Result

from maxbench import cli
from maxbench.cli import app

SMOKE = Path(__file__).resolve().parents[1] / "suites" / "smoke.yaml"

# A wide console, so that the tests below check the message and not rich's line wrapping (the
# wrapping at the default 80 columns is a bug of its own: see test_long_error_is_one_line).
WIDE = {"COLUMNS": "4000"}

MINIMAL: dict[str, Any] = {
    "algorithms": {"sac": {"hyperparams": {"default": {"learning_starts": 10}}}},
    "environments": ["Pendulum-v1"],
    "seeds": 1,
    "budget": 100,
}
DROP = object()  # an override value that removes the key


@pytest.fixture(autouse=True)
def _console_width_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let cli's consoles take their width from COLUMNS at print time (not from import time)."""
    for name in ("console", "error_console"):
        console = getattr(cli, name, None)
        if isinstance(console, Console):
            monkeypatch.setattr(console, "_width", None)


def suite_text(**overrides: Any) -> str:
    """YAML of the minimal valid suite with top-level keys replaced (``DROP`` removes one)."""
    data = copy.deepcopy(MINIMAL)
    for key, value in overrides.items():
        if value is DROP:
            data.pop(key, None)
        else:
            data[key] = value
    return yaml.safe_dump(data, sort_keys=False)


def write(tmp_path: Path, text: str, name: str = "suite.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def line_number(text: str, needle: str) -> int:
    """1-based number of the first line of ``text`` that contains ``needle``."""
    for number, line in enumerate(text.splitlines(), start=1):
        if needle in line:
            return number
    raise AssertionError(f"{needle!r} not in the suite text")


def invoke(*args: str | Path, env: dict[str, str] | None = None) -> Result:
    return CliRunner(env=env or WIDE).invoke(app, [str(arg) for arg in args])


def check_both_commands(tmp_path: Path, suite: Path) -> list[str]:
    """Run ``validate`` and ``run --out``; both fail as bad input and nothing is written."""
    out = tmp_path / "results"
    messages = [bad_input_message(invoke("validate", suite))]
    messages.append(bad_input_message(invoke("run", suite, "--out", out)))
    assert not out.exists()
    assert messages[0] == messages[1]
    return messages


# Each case: an id, the suite text, the substrings its message must hold, and the text whose
# line the message must point at (None: no line number required).
CASES: list[tuple[str, str, list[str], str | None]] = [
    (
        "unknown-top-level-key",
        suite_text(evalution={"every": 50}),
        [
            "unknown key 'evalution'",
            "did you mean 'evaluation'",
            "allowed: ",
            "algorithms",
            "budget",
            "environments",
            "seeds",
        ],
        "evalution:",
    ),
    (
        "unknown-evaluation-key",
        suite_text(evaluation={"every": 50, "episods": 3}),
        ["unknown key 'episods'", "evaluation", "did you mean 'episodes'", "every"],
        "episods:",
    ),
    (
        "unknown-environment-key",
        suite_text(environments=[{"id": "Pendulum-v1", "max_episod_steps": 10}]),
        ["unknown key 'max_episod_steps'", "environments", "did you mean 'max_episode_steps'"],
        "max_episod_steps:",
    ),
    (
        "unknown-algorithm-key",
        suite_text(algorithms={"sac": {"polcy": "MlpPolicy"}}),
        ["unknown key 'polcy'", "algorithms.sac", "did you mean 'policy'"],
        "polcy:",
    ),
    (
        "unknown-algorithm",
        suite_text(algorithms={"sacc": {}}),
        ["unknown algorithm 'sacc'", "did you mean 'sac'"],
        "sacc:",
    ),
    (
        "unknown-environment-version",
        suite_text(environments=["Pendulum-v9"]),
        ["unknown environment id 'Pendulum-v9'"],
        "Pendulum-v9",
    ),
    (
        "unknown-environment-name",
        suite_text(environments=["Pendulumm-v1"]),
        ["unknown environment id 'Pendulumm-v1'", "did you mean 'Pendulum-v1'"],
        "Pendulumm-v1",
    ),
    (
        "unknown-hyperparameter",
        suite_text(algorithms={"sac": {"hyperparams": {"default": {"learnin_rate": 0.001}}}}),
        ["algorithms.sac.hyperparams.default", "'learnin_rate'", "did you mean 'learning_rate'"],
        None,
    ),
    (
        "reserved-hyperparameter",
        suite_text(algorithms={"sac": {"hyperparams": {"default": {"seed": 3}}}}),
        ["algorithms.sac.hyperparams.default", "'seed'", "seeds"],
        None,
    ),
    (
        "unknown-activation",
        suite_text(
            algorithms={
                "sac": {"hyperparams": {"default": {"policy_kwargs": {"activation_fn": "elux"}}}}
            }
        ),
        ["'elux'", "did you mean 'elu'"],
        None,
    ),
    (
        "hyperparams-for-an-environment-not-in-the-suite",
        suite_text(algorithms={"sac": {"hyperparams": {"HalfCheetah-v5": {"batch_size": 64}}}}),
        ["algorithms.sac.hyperparams", "'HalfCheetah-v5'", "Pendulum-v1"],
        None,
    ),
    ("budget-zero", suite_text(budget=0), ["budget", "positive"], "budget:"),
    ("budget-negative", suite_text(budget=-5), ["budget", "positive", "-5"], "budget:"),
    (
        "environment-budget-zero",
        suite_text(environments=[{"id": "Pendulum-v1", "budget": 0}]),
        ["environments.0.budget", "positive"],
        "budget: 0",
    ),
    ("seeds-zero", suite_text(seeds=0), ["seeds"], "seeds:"),
    ("seeds-empty-list", suite_text(seeds=[]), ["seeds", "non-empty"], "seeds:"),
    ("seeds-missing", suite_text(seeds=DROP), ["missing", "'seeds'"], None),
    ("budget-missing", suite_text(budget=DROP), ["missing", "'budget'"], None),
    (
        "wrapper-module-missing",
        suite_text(environments=[{"id": "Pendulum-v1", "wrappers": ["no_such_module_xyz:Wrap"]}]),
        ["cannot import", "no_such_module_xyz"],
        None,
    ),
    (
        "bad-schedule",
        suite_text(algorithms={"sac": {"hyperparams": {"default": {"learning_rate": "lin_x"}}}}),
        ["lin_x"],
        None,
    ),
    ("empty-file", "", ["mapping"], None),
    ("not-a-mapping", "- sac\n- Pendulum-v1\n", ["mapping"], None),
]


@pytest.mark.parametrize(
    ("text", "expected", "line_of"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_bad_suite(tmp_path: Path, text: str, expected: list[str], line_of: str | None) -> None:
    suite = write(tmp_path, text)
    for message in check_both_commands(tmp_path, suite):
        assert str(suite) in message
        for part in expected:
            assert part in message, f"{part!r} not in {message!r}"
        if line_of is not None:
            assert f"{suite}:{line_number(text, line_of)}:" in message


def test_missing_suite_file(tmp_path: Path) -> None:
    suite = tmp_path / "no_such_suite.yaml"
    for message in check_both_commands(tmp_path, suite):
        assert "not found" in message
        assert str(suite) in message


def test_suite_path_is_a_folder(tmp_path: Path) -> None:
    folder = tmp_path / "a_folder"
    folder.mkdir()
    for message in check_both_commands(tmp_path, folder):
        assert str(folder) in message


YAML_ERRORS = [
    # a key indented one space less than its siblings: line 3
    ("bad-indentation", "algorithms:\n  sac: {}\n environments: [Pendulum-v1]\nseeds: 1\n", {3}),
    # a mapping value where none may be: line 4
    (
        "mapping-in-a-scalar",
        "algorithms:\n  sac: {}\nenvironments: [Pendulum-v1]\nbudget: 100: 5\nseeds: 1\n",
        {4},
    ),
    # a bracket opened on line 3 and never closed, noticed on line 4: either line is fair
    (
        "unclosed-bracket",
        "algorithms:\n  sac: {}\nenvironments: [Pendulum-v1\nseeds: 1\nbudget: 100\n",
        {3, 4},
    ),
]


@pytest.mark.parametrize(
    ("text", "lines"), [case[1:] for case in YAML_ERRORS], ids=[case[0] for case in YAML_ERRORS]
)
def test_invalid_yaml(tmp_path: Path, text: str, lines: set[int]) -> None:
    suite = write(tmp_path, text)
    for message in check_both_commands(tmp_path, suite):
        assert "invalid YAML" in message
        match = re.search(re.escape(str(suite)) + r":(\d+):", message)
        assert match, message
        assert int(match.group(1)) in lines, message


def test_invalid_yaml_at_end_of_file_points_into_the_file(tmp_path: Path) -> None:
    text = suite_text() + "extra: [1, 2\n"
    suite = write(tmp_path, text)
    message = bad_input_message(invoke("validate", suite))
    match = re.search(re.escape(str(suite)) + r":(\d+):", message)
    assert match, message
    assert 1 <= int(match.group(1)) <= len(text.splitlines()), message


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (["--only", "td3/*"], ["--only", "td3/*", "matches no cell"]),
        (["--workers", "0"], ["--workers", "0"]),
        (["--threads", "0"], ["--threads", "0"]),
    ],
    ids=["only-matches-nothing", "workers-zero", "threads-zero"],
)
def test_bad_run_options(tmp_path: Path, options: list[str], expected: list[str]) -> None:
    suite = write(tmp_path, suite_text())
    out = tmp_path / "results"
    message = bad_input_message(invoke("run", suite, "--out", out, *options))
    for part in expected:
        assert part in message, f"{part!r} not in {message!r}"
    assert not out.exists()


def test_validate_smoke_suite() -> None:
    result = invoke("validate", SMOKE)
    assert result.exit_code == 0, result.output
    assert "valid" in result.output
    assert re.search(r"\b12 cells\b", result.output), result.output
    assert result.stderr.strip() == ""


def test_minimal_suite_is_valid(tmp_path: Path) -> None:
    """The base of every bad case above is itself valid, so each case tests one thing."""
    result = invoke("validate", write(tmp_path, suite_text()))
    assert result.exit_code == 0, result.output
    assert re.search(r"\b1 cells\b", result.output), result.output


def test_dry_run_lists_cells_and_writes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "results"
    result = invoke("run", SMOKE, "--dry-run", "--out", out)
    assert result.exit_code == 0, result.output
    rows = {}
    for line in result.output.splitlines():
        match = re.search(r"\b((?:sac|td3|ppo)/(?:MultiGoal-v0|Pendulum-v1)/seed_[01])\b", line)
        if match:
            rows[match.group(1)] = line
    assert len(rows) == 12, result.output
    for key, line in rows.items():
        assert re.search(r"\bstart\b", line), f"{key}: {line}"
        assert "3,000" in line
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []


# --- regressions: bugs found in package code, now fixed ---------------------------------------


def test_long_error_is_one_line(tmp_path: Path) -> None:
    suite = write(tmp_path, suite_text(algorithms={"sacc": {}}))
    message = bad_input_message(invoke("validate", suite, env={"COLUMNS": "80"}))
    assert "did you mean 'sac'" in message


def test_brackets_in_a_path_are_shown_verbatim(tmp_path: Path) -> None:
    suite = tmp_path / "runs[v2]" / "suite.yaml"
    message = bad_input_message(invoke("validate", suite))
    assert str(suite) in message


def test_closing_tag_in_a_path_is_not_a_crash(tmp_path: Path) -> None:
    suite = tmp_path / "a[" / "b]" / "suite.yaml"
    message = bad_input_message(invoke("validate", suite))
    assert "not found" in message


def test_seeds_zero_message_has_no_internal_tag(tmp_path: Path) -> None:
    message = bad_input_message(invoke("validate", write(tmp_path, suite_text(seeds=0))))
    assert "constrained-int" not in message


@pytest.mark.parametrize("key", ["int", "seeds[0]"])
def test_unknown_top_level_key_that_looks_like_a_union_tag(tmp_path: Path, key: str) -> None:
    text = suite_text() + yaml.safe_dump({key: 1})
    message = bad_input_message(invoke("validate", write(tmp_path, text)))
    assert f"unknown key '{key}'" in message


def test_unknown_evaluation_key_named_int(tmp_path: Path) -> None:
    text = suite_text(evaluation={"int": 1})
    message = bad_input_message(invoke("validate", write(tmp_path, text)))
    assert "unknown key 'int'" in message
