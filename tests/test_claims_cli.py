"""``maxbench claims list | run | report`` end to end through the CLI (issue 15).

``list`` on the real catalogue; ``report`` on a small synthetic results folder and on an empty
one with the real catalogue; bad input (a missing results folder, malformed catalogues, an
``--out`` that is a file, an ``--only`` that matches nothing) exits 2 with one line of error and
no traceback; ``run --only s2ac-fig4a`` runs the entropy experiment, at 2 seeds, into a temporary
results folder (never ``results/claims``).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from cli_checks import bad_input_message
from rich.console import Console
from typer.testing import CliRunner, Result

from maxbench import cli
from maxbench.cli import app

REPO = Path(__file__).resolve().parents[1]
REAL_CATALOGUE = REPO / "suites" / "claims" / "claims.yaml"
# A wide console: the checks read ids and messages, not rich's line wrapping.
WIDE = {"COLUMNS": "4000"}


@pytest.fixture(autouse=True)
def _console_width_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let cli's consoles take their width from COLUMNS at print time (not from import time)."""
    for name in ("console", "error_console"):
        console = getattr(cli, name, None)
        if isinstance(console, Console):
            monkeypatch.setattr(console, "_width", None)


def invoke(*args: str | Path) -> Result:
    return CliRunner(env=WIDE).invoke(app, ["claims", *(str(arg) for arg in args)])


def real_claims() -> list[dict[str, Any]]:
    return yaml.safe_load(REAL_CATALOGUE.read_text())["claims"]


# -- a small synthetic catalogue and results folder ------------------------------------------------
SEEDS = 10
PAPER_SUITE = {
    "name": "cli-paper",
    "algorithms": {"good": {"algo": "sac"}, "bad": {"algo": "sac"}},
    "environments": [{"id": "Pendulum-v1", "budget": 3600}],
    "seeds": 2,
    "budget": 1000,
    "evaluation": {"every": 500, "episodes": 2},
}


def catalogue_data() -> dict[str, Any]:
    """An entropy claim that holds, a latency claim that fails, a suite claim not run here."""

    def claim(claim_id: str, experiment: str, measure: dict, rule: dict, **more: Any) -> dict:
        return {
            "id": claim_id,
            "paper": "Synthetic",
            "where": "Fig. 1",
            "claim": f"Claim {claim_id}.",
            "experiment": experiment,
            "tests": [{"label": "the test", "measure": measure, "rule": rule}],
            "min_runs": more.pop("min_runs", SEEDS),
            "scale": "synthetic",
            **more,
        }

    return {
        "experiments": {
            "entropy": {"kind": "entropy", "what": "entropy check", "seeds": SEEDS},
            "latency": {"kind": "latency", "what": "predict times", "algorithms": ["sac", "s2ac"]},
            "paper-only": {
                "kind": "suite",
                "what": "a paper-scale suite",
                "workstation": None,
                "paper": "paper.yaml",
            },
        },
        "claims": [
            claim(
                "entropy-ok",
                "entropy",
                {"kind": "entropy_error", "sweep": "gaussian"},
                {"within": [-0.05, 0.05]},
                figures=["entropy"],
            ),
            claim(
                "latency-slow",
                "latency",
                {"kind": "latency_ratio", "algo": "s2ac", "baseline": "sac"},
                {"above": 2},
                figures=["latency"],
            ),
            claim(
                "paper-only",
                "paper-only",
                {"kind": "improvement", "x": "good", "y": "bad", "env": "*"},
                {"above": 0.5},
                min_runs=2,
            ),
        ],
    }


def write_catalogue(folder: Path, data: dict[str, Any] | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "paper.yaml").write_text(yaml.safe_dump(PAPER_SUITE, sort_keys=False))
    path = folder / "claims.yaml"
    path.write_text(yaml.safe_dump(data or catalogue_data(), sort_keys=False))
    return path


RATES = {"good/Pendulum-v1": 2.0, "bad/Pendulum-v1": 4.0}


def write_results(root: Path) -> Path:
    """entropy.json (errors of +-1%), latency.json (S2AC as fast as SAC), a throughput file."""
    rows = [
        {
            "seed": seed,
            "sweep": "gaussian",
            "setting": "2-D Gaussian (Fig. 4a)",
            "truth": 3.0,
            "estimate": 3.0 * (1 + 0.01 * (-1) ** seed),
        }
        for seed in range(SEEDS)
    ]
    for name, document in (
        ("entropy/entropy.json", {"settings": {}, "rows": rows}),
        ("latency/latency.json", {"algorithms": {"sac": [0.2] * SEEDS, "s2ac": [0.2] * SEEDS}}),
        ("throughput/cli-paper.json", {"settings": {}, "steps_per_s": RATES}),
    ):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(json.dumps(document))
    return root


# -- list ----------------------------------------------------------------------------------------
def test_list_shows_every_claim_of_the_real_catalogue() -> None:
    result = invoke("list", "--catalogue", REAL_CATALOGUE)
    assert result.exit_code == 0, result.output
    ids = [claim["id"] for claim in real_claims()]
    assert len(ids) == len(set(ids)) >= 10
    for claim_id in ids:
        assert claim_id in result.stdout, claim_id
    assert f"{len(ids)} claims" in result.stdout


def test_list_only_selects_by_glob() -> None:
    result = invoke("list", "--catalogue", REAL_CATALOGUE, "--only", "bsac-*")
    assert result.exit_code == 0, result.output
    ids = [claim["id"] for claim in real_claims()]
    chosen = [i for i in ids if i.startswith("bsac-")]
    assert chosen and f"{len(chosen)} claims" in result.stdout
    for claim_id in ids:
        assert (claim_id in result.stdout) == (claim_id in chosen), claim_id


# -- report --------------------------------------------------------------------------------------
def test_report_writes_the_ledger(tmp_path: Path) -> None:
    catalogue = write_catalogue(tmp_path / "catalogue")
    results = write_results(tmp_path / "results")
    out = tmp_path / "ledger"
    args = ("report", "--catalogue", catalogue, "--results", results, "--out", out)
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    assert (out / "claims.md").is_file() and (out / "claims.html").is_file()
    assert sorted(p.name for p in (out / "figures").iterdir()) == [
        "entropy-entropy.png",
        "latency-latency.png",
    ]
    text = (out / "claims.md").read_text()
    assert "### entropy-ok: **holds**" in text
    assert "### latency-slow: **fails**" in text
    assert "### paper-only: not run" in text
    assert "1 holds, 1 fails, 0 inconclusive, 1 not run of 3 claims." in text
    # 2 seeds x 3600 env steps, good at 2 and bad at 4 steps/s: 5400 s
    assert "1.5 CPU-hours" in text
    assert f"wrote {out / 'claims.md'}" in result.stdout
    assert not any(p.name.startswith("claims.") for p in results.iterdir())
    again = invoke(*args)
    assert again.exit_code == 0, again.output
    assert (out / "claims.md").read_text() == text


def test_report_of_the_real_catalogue_on_an_empty_folder(tmp_path: Path) -> None:
    results = tmp_path / "results"
    results.mkdir()
    result = invoke("report", "--catalogue", REAL_CATALOGUE, "--results", results)
    assert result.exit_code == 0, result.output
    text = (results / "claims.md").read_text()
    claims = real_claims()
    assert f"0 holds, 0 fails, 0 inconclusive, {len(claims)} not run" in text
    for claim in claims:
        assert f"### {claim['id']}: not run" in text


# -- bad input -------------------------------------------------------------------------------------
def _edited(edit: Any) -> dict[str, Any]:
    data = catalogue_data()
    edit(data)
    return data


BAD_CATALOGUES: list[tuple[str, dict[str, Any], str]] = [
    ("unknown-top-key", _edited(lambda d: d.update(claimz=[])), "unknown key(s) claimz"),
    (
        "unknown-claim-key",
        _edited(lambda d: d["claims"][0].update(rules={})),
        "unknown key(s) rules",
    ),
    (
        "unknown-experiment-key",
        _edited(lambda d: d["experiments"]["entropy"].update(sedes=3)),
        "unknown key(s) sedes",
    ),
    (
        "duplicate-id",
        _edited(lambda d: d["claims"].append(dict(d["claims"][0]))),
        "claim id 'entropy-ok' appears twice",
    ),
    (
        "rule-not-a-number",
        _edited(lambda d: d["claims"][0]["tests"][0].update(rule={"above": "x"})),
        "above takes a finite number",
    ),
    (
        "unknown-rule",
        _edited(lambda d: d["claims"][0]["tests"][0].update(rule={"over": 1})),
        "unknown rule 'over'",
    ),
    (
        "unknown-measure-kind",
        _edited(lambda d: d["claims"][0]["tests"][0]["measure"].update(kind="entropy_size")),
        "measure kind 'entropy_size' is not one of",
    ),
    (
        "measure-kind-not-text",
        _edited(lambda d: d["claims"][0]["tests"][0]["measure"].update(kind=["entropy_error"])),
        "is not one of",
    ),
    (
        "shared-entropy-weight",
        _edited(
            lambda d: d["claims"][0]["tests"][0].update(
                measure={
                    "kind": "goal_coverage",
                    "agents": {"sac-a1": 1, "sql-a1": 1.0},
                    "env": "MultiGoal-v0",
                }
            )
        ),
        "two algorithms share an entropy weight",
    ),
    (
        "seeds-not-a-number",
        _edited(lambda d: d["experiments"]["entropy"].update(seeds="many")),
        "seeds must be a whole number of at least 1",
    ),
    (
        "no-blocks",
        _edited(lambda d: d["experiments"]["latency"].update(blocks=0)),
        "blocks must be a whole number of at least 1",
    ),
    (
        "experiment-not-text",
        _edited(lambda d: d["claims"][0].update(experiment=["entropy"])),
        "is not one of entropy, latency, paper-only",
    ),
    (
        "latency-algorithms-not-a-list",
        _edited(lambda d: d["experiments"]["latency"].update(algorithms="sac")),
        "algorithms must be a list",
    ),
]


@pytest.mark.parametrize(
    ("data", "needle"), [c[1:] for c in BAD_CATALOGUES], ids=[c[0] for c in BAD_CATALOGUES]
)
@pytest.mark.parametrize("command", ["list", "report", "run"])
def test_a_malformed_catalogue_is_one_line_exit_2(
    tmp_path: Path, data: dict[str, Any], needle: str, command: str
) -> None:
    catalogue = write_catalogue(tmp_path / "catalogue", data)
    results = write_results(tmp_path / "results")
    before = sorted(p.relative_to(results) for p in results.rglob("*"))
    args: list[str | Path] = [command, "--catalogue", catalogue]
    if command != "list":
        args += ["--results", results]
    message = bad_input_message(invoke(*args))
    assert needle in message
    assert str(catalogue) in message
    assert sorted(p.relative_to(results) for p in results.rglob("*")) == before


def test_a_missing_catalogue_is_one_line_exit_2(tmp_path: Path) -> None:
    message = bad_input_message(invoke("list", "--catalogue", tmp_path / "nope.yaml"))
    assert "nope.yaml' not found" in message


def test_a_missing_results_folder_is_one_line_exit_2(tmp_path: Path) -> None:
    catalogue = write_catalogue(tmp_path / "catalogue")
    missing = tmp_path / "no-results"
    message = bad_input_message(
        invoke("report", "--catalogue", catalogue, "--results", missing, "--out", tmp_path / "o")
    )
    assert f"results folder '{missing}' not found" in message
    assert not (tmp_path / "o").exists()


def test_an_out_that_is_a_file_is_one_line_exit_2(tmp_path: Path) -> None:
    catalogue = write_catalogue(tmp_path / "catalogue")
    results = write_results(tmp_path / "results")
    out = tmp_path / "ledger.md"
    out.write_text("mine\n")
    message = bad_input_message(
        invoke("report", "--catalogue", catalogue, "--results", results, "--out", out)
    )
    assert f"--out '{out}' is a file" in message
    assert out.read_text() == "mine\n"


@pytest.mark.parametrize("command", ["list", "report", "run"])
def test_only_matching_nothing_is_one_line_exit_2(tmp_path: Path, command: str) -> None:
    catalogue = write_catalogue(tmp_path / "catalogue")
    results = tmp_path / "results"
    results.mkdir()
    args: list[str | Path] = [command, "--catalogue", catalogue, "--only", "nothing-*"]
    if command != "list":
        args += ["--results", results]
    message = bad_input_message(invoke(*args))
    assert "--only 'nothing-*' matches no claim" in message
    assert "entropy-ok, latency-slow, paper-only" in message
    assert list(results.iterdir()) == []


# -- run -------------------------------------------------------------------------------------------
@pytest.fixture
def one_seed_catalogue(tmp_path: Path) -> Path:
    """A copy of the real catalogue (and its suites): the entropy experiment at 1 seed, and
    s2ac-fig4a judged from 1 run (a short run on a busy machine)."""
    folder = shutil.copytree(REAL_CATALOGUE.parent, tmp_path / "claims")
    path = folder / "claims.yaml"
    data = yaml.safe_load(path.read_text())
    data["experiments"]["entropy"]["seeds"] = 1
    (fig4a,) = [claim for claim in data["claims"] if claim["id"] == "s2ac-fig4a"]
    fig4a["min_runs"] = 1
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_run_only_the_entropy_claim_writes_entropy_json(
    tmp_path: Path, one_seed_catalogue: Path
) -> None:
    results = tmp_path / "results"
    args = ("--catalogue", one_seed_catalogue, "--results", results, "--only", "s2ac-fig4a")
    result = invoke("run", *args)
    assert result.exit_code == 0, result.output
    path = results / "entropy" / "entropy.json"
    document = json.loads(path.read_text())
    assert document["settings"] == {
        "sweeps": ["gaussian", "mixture", "std"],
        "seeds": 1,
        "n_particles": 20,
        "n_steps": 30,
    }
    rows = document["rows"]
    assert {row["seed"] for row in rows} == {0}
    assert {row["sweep"] for row in rows} == {"gaussian", "mixture", "std"}
    assert sorted(p.name for p in results.iterdir()) == ["entropy"]  # nothing else ran

    # run again: the file is there with the same settings, and is kept
    stamp = path.stat().st_mtime_ns
    again = invoke("run", *args)
    assert again.exit_code == 0, again.output
    assert "already there" in again.stdout
    assert path.stat().st_mtime_ns == stamp

    # the report judges the recorded run: the relative error of the one seed, against +-5%
    report = invoke("report", *args)
    assert report.exit_code == 0, report.output
    (gaussian,) = [row for row in rows if row["sweep"] == "gaussian"]
    error = (gaussian["estimate"] - gaussian["truth"]) / abs(gaussian["truth"])
    verdict = "**holds**" if -0.05 <= error <= 0.05 else "**fails**"
    text = (results / "claims.md").read_text()
    assert f"### s2ac-fig4a: {verdict}" in text
    shown = f"{error:.4g}"  # the claim's table: statistic [95% CI] (Markdown-escaped) | runs
    assert f"| {shown} \\[{shown}, {shown}\\] | 1 |" in text


@pytest.mark.parametrize(
    ("edit", "needle"),
    [
        (lambda e: e["grid"].update(agent="{row}"), "agent must be a text holding"),
        (lambda e: e["grid"].update(agent="{row}-{column}-{alpha}"), "may hold only"),
        (lambda e: e["grid"].pop("rows"), "missing key(s) rows"),
        (lambda e: e["grid"].update(columns={}), "columns maps each label"),
        (lambda e: e["test_episodes"].update(episodes="x"), "episodes must be a whole number"),
        (lambda e: e["test_episodes"].update(softmax_agents="s2ac-*"), "softmax_agents must be"),
        (lambda e: e["test_episodes"].update(obstacle=False), "unknown key(s) obstacle"),
    ],
)
def test_a_malformed_grid_or_test_episodes_is_refused(tmp_path: Path, edit, needle) -> None:
    data = yaml.safe_load(REAL_CATALOGUE.read_text())
    edit(data["experiments"]["multigoal"])
    catalogue = tmp_path / "claims.yaml"
    catalogue.write_text(yaml.safe_dump(data))
    result = invoke("list", "--catalogue", catalogue)
    assert needle in bad_input_message(result)
