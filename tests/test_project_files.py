"""The project's own files agree with each other: README, Dockerfile, .ci/run, suites, lint."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from maxbench.suite.cells import expand_suite
from maxbench.suite.loading import load_suite

REPO = Path(__file__).resolve().parent.parent


def _quickstart_commands() -> list[str]:
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```bash\n(.+?)\n```", section)


def _readme_report_command() -> str:
    readme = (REPO / "README.md").read_text()
    (command,) = re.findall(r"^(\.venv/bin/maxbench report results --rliable)$", readme, flags=re.M)
    return command


def test_quickstart_has_exactly_two_commands() -> None:
    commands = _quickstart_commands()
    assert len(commands) == 2
    assert all("\n" not in command for command in commands)
    assert commands[0].endswith("maxbench run suites/smoke.yaml")
    assert "pytest" in commands[1]


def test_ci_runs_the_readme_test_command() -> None:
    ci = (REPO / ".ci" / "run").read_text().splitlines()
    assert _quickstart_commands()[1] in ci


def test_ci_also_runs_the_slow_tests() -> None:
    """The README's test command leaves out the tests marked slow; CI runs them after it."""
    ci = (REPO / ".ci" / "run").read_text().splitlines()
    slow = ".venv/bin/python -m pytest -m slow"
    assert slow in ci and ci.index(slow) > ci.index(_quickstart_commands()[1])
    assert f"\n{slow}\n" in (REPO / "README.md").read_text()
    assert "-m 'not slow'" in (REPO / "pyproject.toml").read_text()


def test_dockerfile_steps_are_the_readme_steps() -> None:
    install, run_smoke = _quickstart_commands()[0].rsplit(" && ", 1)
    dockerfile = (REPO / "Dockerfile").read_text()
    runs = re.findall(r"^RUN (.+)$", dockerfile, flags=re.M)
    assert runs == [install]
    (cmd,) = re.findall(r"^CMD (\[.+\])$", dockerfile, flags=re.M)
    report = _readme_report_command()
    assert json.loads(cmd) == [
        "sh",
        "-c",
        f"{run_smoke} --out /results && {report.replace(' results ', ' /results ')}",
    ]
    assert re.search(r"^FROM python:3\.11-slim", dockerfile, flags=re.M)
    assert "docker build" in (REPO / "README.md").read_text()


@pytest.mark.parametrize("suite", sorted((REPO / "suites").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_suites_validate(suite: Path) -> None:
    loaded = load_suite(suite)
    assert expand_suite(loaded.suite, loaded.name)


def test_constraints_pin_torch_and_pandas() -> None:
    pins = dict(
        line.split("==", 1)
        for line in (REPO / "constraints.txt").read_text().splitlines()
        if "==" in line and not line.startswith("#")
    )
    assert pins["torch"] == "2.13.0"
    assert int(pins["pandas"].split(".")[0]) < 3


RUFF = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")


@pytest.mark.skipif(RUFF is None, reason="ruff is not installed (the dev extra installs it)")
def test_code_is_ruff_clean() -> None:
    ruff = str(RUFF)
    result = subprocess.run(
        [ruff, "check", "maxbench", "tests", "benchmarks"], cwd=REPO, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
