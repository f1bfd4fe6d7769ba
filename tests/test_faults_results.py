"""Fault injection (issue 16): damaged results folders and ordinary states never crash a command.

A results folder is built by hand (the files ``maxbench run`` writes, as in test_report.py): healthy
finished cells, one cell per kind of damage (a truncated run.json, one that is not an object, an
unknown status, short and non-numeric evals.csv rows, spec fields of the wrong type, ...), and the
ordinary states a results folder is found in (a cell that failed while its model was built, so
its run.json has no spec; a cell a running suite has just started: a lock and a train.log, no
run.json; cells of different budgets; evaluation episodes that returned NaN or inf; a run.json
whose error text holds Markdown and HTML that point to a remote server). ``maxbench report`` (with
and without ``--rliable``), ``maxbench multigoal`` and ``maxbench reference random`` must name
the damaged cells, go on with the others, and never print a traceback; bad input (a damaged
reference file, an unusable ``--out``) is one line and exit status 2, with nothing written.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import sys
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from test_report import episode_returns, invoke, write_references, write_run

from maxbench.results.layout import FAILED, EvalRow, write_evals
from maxbench.results.loader import load_results

REPS = 50
ENVS = ("TaskA-v0", "TaskB-v0")
EVIL = "https://evil.example"
HOSTILE_ERROR = (
    f"ValueError: ![pixel]({EVIL}/p.png) <img src='{EVIL}/q.png'> [click]({EVIL}/r) "
    f"<{EVIL}/auto> <script>alert(1)</script>\n# a heading\n| a | table |\n- a list"
)
HOSTILE_ALGO = "<img src=x onerror=alert(1)>"  # a folder name may hold this


# -- building the folder --------------------------------------------------------------------------
def _edit_run_json(folder: Path, edit: Callable[[dict[str, Any]], Any]) -> None:
    path = folder / "run.json"
    run = json.loads(path.read_text())
    result = edit(run)
    path.write_text(json.dumps(run if result is None else result))


def _set_spec(key: str, value: Any) -> Callable[[Path], None]:
    return lambda folder: _edit_run_json(folder, lambda run: run["spec"].__setitem__(key, value))


def _write(name: str, content: bytes | str) -> Callable[[Path], None]:
    def damage(folder: Path) -> None:
        path = folder / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)

    return damage


def _truncate_run_json(folder: Path) -> None:
    text = (folder / "run.json").read_text()
    (folder / "run.json").write_text(text[: len(text) // 2])


def _append_evals(line: str) -> Callable[[Path], None]:
    def damage(folder: Path) -> None:
        with open(folder / "evals.csv", "a") as handle:
            handle.write(line)

    return damage


#: kind of damage -> (how to damage a finished cell, what the reason says)
DAMAGES: dict[str, tuple[Callable[[Path], None], str]] = {
    "truncated run.json": (_truncate_run_json, "run.json is not valid JSON"),
    "run.json not an object": (_write("run.json", "[1, 2, 3]"), "not a JSON object"),
    "run.json not UTF-8": (_write("run.json", b'{"status": "\xff\xfe"}'), "not UTF-8"),
    "empty run.json": (_write("run.json", ""), "not valid JSON"),
    "unknown status": (
        lambda f: _edit_run_json(f, lambda run: run.update(status="exploded")),
        "unknown status",
    ),
    "status not a text": (
        lambda f: _edit_run_json(f, lambda run: run.update(status=["finished"])),
        "unknown status",
    ),
    "spec not an object": (
        lambda f: _edit_run_json(f, lambda run: run.update(spec="sac")),
        "'spec' is not an object",
    ),
    "short evals row": (_append_evals("4000,1.5\n"), "evals.csv line 5"),
    "non-numeric evals row": (_append_evals("4000,1.5,x,y,abc def,200 200\n"), "evals.csv line 5"),
    "evals returns and lengths differ": (_append_evals("4000,1.5,1,0,1.0 2.0,200\n"), "lengths"),
    "evals without a column": (_write("evals.csv", "timestep,returns\n1000,1.0\n"), "lacks"),
    "evals step out of range": (
        _append_evals(f"{2**70},1.5,1,0,1.0,200\n"),
        "timestep 1180591620717411303424 is out of range",
    ),
    "seed a string": (_set_spec("seed", "one"), "spec 'seed' is str \"one\""),
    "seed negative": (_set_spec("seed", -3), "spec 'seed'"),
    "budget null": (_set_spec("budget", None), "spec 'budget' is null"),
    "budget zero": (_set_spec("budget", 0), "spec 'budget'"),
    "budget text": (_set_spec("budget", "3000"), "spec 'budget'"),
    "eval_every a float": (_set_spec("eval_every", 1000.5), "spec 'eval_every'"),
    "eval_deterministic a number": (_set_spec("eval_deterministic", 1), "'eval_deterministic'"),
    "hyperparams not an object": (_set_spec("hyperparams", [1, 2]), "spec 'hyperparams'"),
    "env_kwargs not an object": (_set_spec("env_kwargs", "x"), "spec 'env_kwargs'"),
    "algo with a line break": (_set_spec("algo", "a\nb"), "spec 'algo'"),
    "env_name with a slash": (_set_spec("env_name", "../x"), "spec 'env_name'"),
    "timings a text": (
        lambda f: _edit_run_json(f, lambda run: run["timings"].update(env_steps_per_s="fast")),
        "timings 'env_steps_per_s'",
    ),
    "timings not an object": (
        lambda f: _edit_run_json(f, lambda run: run.update(timings=[1])),
        "'timings' is not an object",
    ),
    "provenance packages a list": (
        lambda f: _edit_run_json(f, lambda run: run["provenance"].update(packages=[1])),
        "'packages'",
    ),
    "error not a text": (
        lambda f: _edit_run_json(f, lambda run: run.update(error={"x": 1})),
        "'error'",
    ),
    "deeply nested run.json": (_write("run.json", "[" * 100_000 + "]" * 100_000), "run.json"),
}
FIRST_DAMAGED_SEED = 100
DAMAGED_SEEDS = {kind: FIRST_DAMAGED_SEED + index for index, kind in enumerate(DAMAGES)}


def write_damaged_cell(root: Path, kind: str, seed: int) -> Path:
    """A finished cell of algorithm 'a' on TaskA-v0, then damaged as ``kind`` says."""
    folder = write_run(root, "a", "TaskA-v0", seed)
    DAMAGES[kind][0](folder)
    return folder


def write_nan_run(root: Path) -> Path:
    """b/TaskB-v0/seed_1, finished, with a NaN return at step 2000 and an inf one at 3000."""
    folder = write_run(root, "b", "TaskB-v0", 1)
    rows = []
    for index in range(3):
        returns = list(episode_returns("b", "TaskB-v0", 1, index))
        if index == 1:
            returns[0] = math.nan
        if index == 2:
            returns[2] = math.inf
        rows.append(EvalRow(1000 * (index + 1), 1.5 * (index + 1), tuple(returns), (200,) * 3))
    write_evals(folder, rows)
    return folder


def write_fault_results(root: Path) -> Path:
    """Healthy cells, one cell per damage kind, and the ordinary states (module docstring)."""
    for algo in ("a", "b"):
        for env in ENVS:
            for seed in (0, 1):
                write_run(root, algo, env, seed)
    write_nan_run(root)
    for kind, seed in DAMAGED_SEEDS.items():
        write_damaged_cell(root, kind, seed)
    # a copy of a healthy cell under another seed: its run.json names the same cell
    shutil.copytree(
        root / "synth" / "a" / "TaskA-v0" / "seed_0", root / "synth" / "a" / "TaskA-v0" / "seed_90"
    )
    # failed while its model was built: no spec, an error, a traceback
    failed = root / "synth" / "a" / "TaskB-v0" / "seed_20"
    failed.mkdir(parents=True)
    (failed / "run.json").write_text(
        json.dumps({"status": "failed", "error": "ValueError: bad kwargs", "traceback": "..."})
    )
    # a cell a running suite has just started: a lock and a log, no run.json
    started = root / "synth" / "b" / "TaskA-v0" / "seed_21"
    started.mkdir(parents=True)
    (started / ".lock").write_text("")
    (started / "train.log").write_text("starting\n")
    # another budget (the suite was edited): finished with budget 5 000
    other = write_run(root, "b", "TaskA-v0", 2)
    _edit_run_json(other, lambda run: run["spec"].update(budget=5000))
    # a failed run whose error holds Markdown, HTML and line breaks pointing elsewhere
    hostile = write_run(root, "a", "TaskA-v0", 30, status=FAILED, evaluations=1)
    _edit_run_json(hostile, lambda run: run.update(error=HOSTILE_ERROR))
    # an algorithm whose name (its folder) is an HTML tag, with a hostile hyperparameter
    odd = write_run(root, HOSTILE_ALGO, "TaskA-v0", 0, status=FAILED, evaluations=1)
    _edit_run_json(
        odd,
        lambda run: run["spec"].update(hyperparams={"note": f"`![x]({EVIL}/h.png)` | <b>"}),
    )
    return root


# -- the reports, built once ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def faults(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("faults")
    results = write_fault_results(tmp / "results")
    references = write_references(tmp / "refs.json")
    outcome: dict[str, Any] = {"results": results}
    for name, extra in (("plain", ()), ("again", ()), ("rliable", ("--rliable",))):
        out = tmp / name
        result = invoke(
            "report", results, "--out", out, "--references", references, "--reps", REPS, *extra
        )
        outcome[name] = (out, result)
    return outcome


@pytest.mark.parametrize("name", ["plain", "rliable"])
def test_report_with_damaged_cells_exits_0_without_a_traceback(
    faults: dict[str, Any], name: str
) -> None:
    out, result = faults[name]
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    assert (out / "report.md").exists() and (out / "report.html").exists()


@pytest.mark.parametrize("kind", list(DAMAGES))
def test_each_damaged_cell_is_named_with_its_reason(faults: dict[str, Any], kind: str) -> None:
    out, result = faults["plain"]
    seed, reason = DAMAGED_SEEDS[kind], DAMAGES[kind][1]
    console = [line for line in result.output.splitlines() if f"a/TaskA-v0/seed_{seed} " in line]
    assert any(line.startswith("warning:") and reason in line for line in console), console
    assert any(line.startswith("excluded:") and "(damaged)" in line for line in console), console
    excluded = (out / "tables" / "excluded_runs.md").read_text()
    row = next(
        line for line in excluded.splitlines() if line.startswith(f"| a | TaskA-v0 | {seed} ")
    )
    assert "| damaged |" in row
    assert "damaged and left out" in (out / "report.md").read_text()


def test_healthy_cells_are_reported(faults: dict[str, Any]) -> None:
    import pandas as pd

    for name in ("plain", "rliable"):
        out, _ = faults[name]
        table = pd.read_csv(out / "tables" / "final_scores.csv")
        cells = set(zip(table["method"], table["env"], strict=True))
        assert cells == {(a, e) for a in ("a", "b") for e in ENVS}
        assert table[["mean", "normalised_mean"]].notna().all().all()
        row = table[(table["method"] == "a") & (table["env"] == "TaskA-v0")].iloc[0]
        assert row["seeds"] == 2  # seeds 0 and 1; every damaged copy and seed 30 are left out
    aggregates = pd.read_csv(faults["rliable"][0] / "tables" / "aggregates.csv")
    assert set(aggregates["method"]) == {"a", "b"}
    assert np.isfinite(aggregates.drop(columns="method").to_numpy()).all()


def test_ordinary_states_are_listed(faults: dict[str, Any]) -> None:
    out, result = faults["plain"]
    excluded = (out / "tables" / "excluded_runs.md").read_text()
    assert "| a | TaskB-v0 | 20 | failed | 0 | – | ValueError: bad kwargs |" in excluded
    assert "| b | TaskA-v0 | 21 | pending | 0 | – |  |" in excluded
    copy = next(line for line in excluded.splitlines() if "| a | TaskA-v0 | 90 |" in line)
    assert "| damaged |" in copy and "holds too" in copy
    assert "excluded: b/TaskA-v0/seed_21 (pending)" in result.output
    assert "the finished runs of TaskA-v0 have different budgets (3,000, 5,000" in result.output
    markdown = (out / "report.md").read_text()
    assert "| TaskA-v0 | TaskA-v0 | 3,000, 5,000 |" in markdown
    # the spec-less and pending cells do not stop TaskA and TaskB from being normalised
    assert "is not normalised" not in result.output


def test_non_finite_returns_are_excluded_counted_and_warned(faults: dict[str, Any]) -> None:
    import pandas as pd

    out, result = faults["plain"]
    warning = next(line for line in result.output.splitlines() if "non-finite" in line)
    assert warning.startswith("warning: 2 evaluation episode(s) with a non-finite return")
    assert "b/TaskB-v0/seed_1 at 2000" in warning and "b/TaskB-v0/seed_1 at 3000" in warning
    markdown = (out / "report.md").read_text()
    assert "Non-finite returns: 2 evaluation episode(s)" in markdown
    assert "2 evaluation episode(s) with a non-finite return" in markdown
    table = pd.read_csv(out / "tables" / "final_scores.csv")
    row = table[(table["method"] == "b") & (table["env"] == "TaskB-v0")].iloc[0]
    # seed 1's last evaluation without its inf episode; seed 0 as written
    seed1 = float(np.mean(episode_returns("b", "TaskB-v0", 1, 2)[:2]))
    seed0 = float(np.mean(episode_returns("b", "TaskB-v0", 0, 2)))
    assert row["seeds"] == 2
    assert row["mean"] == pytest.approx(np.mean([seed0, seed1]))


def test_two_reports_of_a_damaged_folder_are_byte_identical(faults: dict[str, Any]) -> None:
    first, second = faults["plain"][0], faults["again"][0]
    files = sorted(p.relative_to(first) for p in first.rglob("*") if p.is_file())
    assert Path("report.md") in files and Path("tables/excluded_runs.md") in files
    assert files == sorted(p.relative_to(second) for p in second.rglob("*") if p.is_file())
    assert [f for f in files if (first / f).read_bytes() != (second / f).read_bytes()] == []


# -- self-contained HTML, inert Markdown ----------------------------------------------------------
class _Collector(HTMLParser):
    """Every tag and every attribute of an HTML page."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.attributes: list[tuple[str, str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attributes += [(tag, name, value or "") for name, value in attrs]


def _parsed(html: str) -> _Collector:
    collector = _Collector()
    collector.feed(html)
    return collector


def test_html_fetches_nothing_and_runs_nothing(faults: dict[str, Any]) -> None:
    for name in ("plain", "rliable"):
        out, _ = faults[name]
        page = _parsed((out / "report.html").read_text())
        assert "script" not in page.tags and "iframe" not in page.tags
        for tag, attribute, value in page.attributes:
            assert not attribute.startswith("on"), (tag, attribute)
            if attribute in ("src", "href", "srcset", "action", "formaction", "poster", "data"):
                assert tag == "img" and attribute == "src", (tag, attribute, value[:80])
                assert value.startswith("data:image/png;base64,"), value[:80]
        assert page.tags.count("img") == len(list((out / "figures").glob("*.png")))
        # the hostile text is there, as text
        html = (out / "report.html").read_text()
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
        assert f"![pixel]({EVIL}/p.png)" in html


def test_markdown_renders_no_remote_content(faults: dict[str, Any]) -> None:
    """report.md and the tables, rendered as GitHub would (raw HTML allowed), stay inert."""
    from markdown_it import MarkdownIt

    renderer = MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"])
    out, _ = faults["plain"]
    for path in [out / "report.md", *(out / "tables").glob("*.md")]:
        page = _parsed(renderer.render(path.read_text()))
        assert "script" not in page.tags and "h1" not in page.tags[1:], path.name
        for tag, attribute, value in page.attributes:
            assert not attribute.startswith("on"), (path.name, tag, attribute)
            if attribute in ("src", "href"):
                assert tag == "img" and value.startswith("figures/"), (path.name, tag, value)
    excluded = (out / "tables" / "excluded_runs.md").read_text()
    hostile = next(line for line in excluded.splitlines() if "| 30 |" in line)
    assert hostile.count("|") - hostile.count("\\|") == 8  # the error stays in its cell
    assert "# a heading" in hostile


# -- the loader on its own ------------------------------------------------------------------------
@pytest.mark.parametrize("kind", list(DAMAGES))
def test_loader_turns_each_damage_into_a_damaged_row(tmp_path: Path, kind: str) -> None:
    write_run(tmp_path, "a", "TaskA-v0", 0)
    write_damaged_cell(tmp_path, kind, 1)
    loaded = load_results(tmp_path)
    damaged = loaded.runs[loaded.runs["seed"] == 1].iloc[0]
    assert damaged["status"] == "damaged"
    assert DAMAGES[kind][1] in damaged["error"]
    assert (damaged["suite"], damaged["algo"], damaged["env"]) == ("synth", "a", "TaskA-v0")
    assert set(loaded.episodes["seed"]) == {0}
    assert loaded.runs[loaded.runs["seed"] == 0].iloc[0]["status"] == "finished"


ODD_VALUES = [None, True, -1, 0, 1.5, "x", "", [], {}, 2**70, "\n", float("nan"), "[x](y)"]


@pytest.mark.slow
def test_no_spec_value_crashes_the_report(tmp_path: Path) -> None:
    """Every spec field set to each odd value, a cell each: the loader and the report go on."""
    results = tmp_path / "results"
    write_run(results, "a", "TaskA-v0", 0)
    fields = json.loads((results / "synth" / "a" / "TaskA-v0" / "seed_0" / "run.json").read_text())
    cells = [(key, value) for key in sorted(fields["spec"]) for value in ODD_VALUES]
    for index, (key, value) in enumerate(cells):
        folder = write_run(results, "b", "TaskA-v0", index + 1)
        _edit_run_json(folder, lambda run, k=key, v=value: run["spec"].__setitem__(k, v))
    loaded = load_results(results)
    assert len(loaded.runs) == len(cells) + 1
    assert "damaged" in set(loaded.runs["status"]) and "finished" in set(loaded.runs["status"])
    references = write_references(tmp_path / "refs.json")
    for extra in ((), ("--rliable",)):
        result = invoke(
            "report",
            results,
            "--out",
            tmp_path / "out",
            "--references",
            references,
            "--reps",
            20,
            *extra,
        )
        assert result.exit_code == 0, result.output
        assert "Traceback" not in result.output


# -- report --out ---------------------------------------------------------------------------------
def _one_error_line(result: Any) -> str:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


@pytest.mark.parametrize("case", ["file", "under a file", "tables is a file", "read-only"])
def test_unusable_out_is_bad_input_and_writes_nothing(tmp_path: Path, case: str) -> None:
    results = tmp_path / "results"
    write_run(results, "a", "TaskA-v0", 0)
    blocker = tmp_path / "blocker"
    if case == "file":
        blocker.write_text("mine")
        out = blocker
    elif case == "under a file":
        blocker.write_text("mine")
        out = blocker / "report"
    elif case == "tables is a file":
        out = tmp_path / "out"
        out.mkdir()
        (out / "tables").write_text("mine")
    else:
        if os.geteuid() == 0:
            pytest.skip("root may write into a read-only folder")
        out = tmp_path / "out"
        out.mkdir()
        out.chmod(0o555)
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    line = _one_error_line(invoke("report", results, "--out", out))
    assert "--out" in line and str(out) in line
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before
    if blocker.exists():
        assert blocker.read_text() == "mine"


# -- reference files ------------------------------------------------------------------------------
BAD_REFERENCES: dict[str, tuple[bytes, list[str]]] = {
    "text score": (
        b'{"version": 1, "envs": {"TaskA-v0": {"random": {"score": "low", "source": "s"}}}}',
        ["TaskA-v0", "random.score", '"low"'],
    ),
    "nan score": (
        b'{"version": 1, "envs": {"TaskA-v0": {"reference": {"score": NaN, "source": "s"}}}}',
        ["TaskA-v0", "reference.score", "finite number"],
    ),
    "missing score": (
        b'{"version": 1, "envs": {"TaskA-v0": {"random": {"source": "s"}}}}',
        ["TaskA-v0", "random has no 'score'"],
    ),
    "source a number": (
        b'{"version": 1, "envs": {"TaskA-v0": {"random": {"score": 1.0, "source": 2}}}}',
        ["TaskA-v0", "random.source"],
    ),
    "entry not an object": (b'{"version": 1, "envs": {"TaskA-v0": 5}}', ["TaskA-v0", "object"]),
    "end not an object": (
        b'{"version": 1, "envs": {"TaskA-v0": {"random": [1]}}}',
        ["TaskA-v0", "random is [1]"],
    ),
    "note not a text": (
        b'{"version": 1, "envs": {"TaskA-v0": {"note": 3}}}',
        ["TaskA-v0", "note"],
    ),
    "version a text": (b'{"version": "7", "envs": {}}', ["'version'"]),
    "not an object": (b"[1, 2]", ["no 'envs' mapping"]),
    "invalid JSON": (b'{"version": 1, "envs": {', ["not valid JSON"]),
    "not UTF-8": (b'{"version": 1, "envs": {"\xff": {}}}', ["not UTF-8"]),
}


@pytest.mark.parametrize("kind", list(BAD_REFERENCES))
def test_damaged_reference_file_in_report_is_one_line(tmp_path: Path, kind: str) -> None:
    results = tmp_path / "results"
    write_run(results, "a", "TaskA-v0", 0)
    references = tmp_path / "refs.json"
    content, expected = BAD_REFERENCES[kind]
    references.write_bytes(content)
    line = _one_error_line(invoke("report", results, "--references", references))
    assert f"reference file '{references}'" in line
    for text in expected:
        assert text in line, line
    assert not (results / "report").exists()


@pytest.mark.parametrize("kind", list(BAD_REFERENCES))
def test_damaged_reference_file_in_reference_random_is_one_line(tmp_path: Path, kind: str) -> None:
    references = tmp_path / "refs.json"
    content, expected = BAD_REFERENCES[kind]
    references.write_bytes(content)
    line = _one_error_line(
        invoke("reference", "random", "Pendulum-v1", "--episodes", "1", "--file", references)
    )
    assert f"reference file '{references}'" in line
    for text in expected:
        assert text in line, line
    assert references.read_bytes() == content
    assert sorted(p.name for p in tmp_path.iterdir()) == ["refs.json"]


def test_reference_file_that_is_a_folder_is_one_line(tmp_path: Path) -> None:
    results = tmp_path / "results"
    write_run(results, "a", "TaskA-v0", 0)
    line = _one_error_line(invoke("report", results, "--references", tmp_path))
    assert "is a folder" in line


# -- the latency table of a results folder --------------------------------------------------------
def test_damaged_latency_table_of_the_folder_is_left_out_with_a_warning(tmp_path: Path) -> None:
    results = tmp_path / "results"
    write_run(results, "a", "TaskA-v0", 0)
    (results / "latency").mkdir()
    (results / "latency" / "latency.json").write_text(
        json.dumps(
            {
                "machine": "m",
                "threads": 1,
                "torch": "t",
                "warmup": 1,
                "calls": 1,
                "results": [{"algo": "a", "median_ms": "fast"}],
            }
        )
    )
    result = invoke("report", results, "--out", tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert "warning: the results folder's latency table is left out" in result.output
    line = _one_error_line(
        invoke("report", results, "--out", tmp_path / "out2", "--latency", results / "latency")
    )
    assert "cannot read latency table" in line
    assert not (tmp_path / "out2").exists()


# -- maxbench multigoal ---------------------------------------------------------------------------
def _multigoal_cell(root: Path, algo: str, seed: int, target: str | None, model: Any) -> Path:
    folder = root / "suite" / algo / "MultiGoal-v0" / f"seed_{seed}"
    folder.mkdir(parents=True)
    if model is not None:
        model.save(folder / "model.zip")
    spec: dict[str, Any] = {"algo": algo, "env_id": "MultiGoal-v0", "seed": seed}
    if target is not None:
        spec["algo_target"] = target
    (folder / "run.json").write_text(json.dumps({"status": "finished", "spec": spec}))
    return folder


@pytest.fixture(scope="module")
def sac_model() -> Any:
    from stable_baselines3 import SAC

    import maxbench.envs  # noqa: F401

    return SAC(
        "MlpPolicy", "MultiGoal-v0", seed=0, policy_kwargs={"net_arch": [8]}, buffer_size=100
    )


EVIL_MODULE = "maxbench_evil_results_module"


@pytest.fixture
def evil_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An importable module that leaves a marker file when it is imported."""
    marker = tmp_path / "imported.marker"
    code = tmp_path / "code"
    code.mkdir()
    (code / f"{EVIL_MODULE}.py").write_text(
        f"from pathlib import Path\nPath({str(marker)!r}).write_text('imported')\n"
        "class Thing:\n    pass\n"
    )
    monkeypatch.syspath_prepend(str(code))
    monkeypatch.delitem(sys.modules, EVIL_MODULE, raising=False)
    return marker


def test_multigoal_skips_damaged_and_unregistered_cells(
    tmp_path: Path, sac_model: Any, evil_module: Path
) -> None:
    results = tmp_path / "results"
    _multigoal_cell(results, "sac", 0, "stable_baselines3:SAC", sac_model)
    _multigoal_cell(results, "sac", 1, None, sac_model)  # resolved by its registered algo key
    truncated = _multigoal_cell(results, "sac", 2, "stable_baselines3:SAC", sac_model)
    _truncate_run_json(truncated)
    _multigoal_cell(results, "sac", 3, f"{EVIL_MODULE}:Thing", sac_model)
    _multigoal_cell(results, "custom", 0, "os:system", sac_model)
    _multigoal_cell(results, "sac", 4, "stable_baselines3:SAC", None).joinpath(
        "model.zip"
    ).write_bytes(b"not a zip file")
    bad_seed = _multigoal_cell(results, "sac", 5, "stable_baselines3:SAC", sac_model)
    _set_spec("seed", "five")(bad_seed)
    out = tmp_path / "figures"
    result = invoke("multigoal", results, "--out", out, "--episodes", 1, "--no-obstacle")
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    output = " ".join(result.output.split())
    assert "suite/sac/MultiGoal-v0/seed_2 is damaged and skipped: run.json is not valid JSON" in (
        output
    )
    assert "suite/sac/MultiGoal-v0/seed_5 is damaged and skipped" in output
    assert (
        f"names algorithm '{EVIL_MODULE}:Thing', which is not a registered algorithm: maxbench "
        "imports code from results only through its registry" in output
    )
    assert "names algorithm 'os:system', which is not a registered algorithm" in output
    assert "seed_4: its model.zip cannot be used" in output
    assert not evil_module.exists() and EVIL_MODULE not in sys.modules
    rows = json.loads((out / "goal_counts.json").read_text())
    assert [(r["agent"], r["seeds"], r["episodes"]) for r in rows] == [("sac", "0 1", 2)]


def test_multigoal_with_only_damaged_cells_is_one_line(tmp_path: Path, evil_module: Path) -> None:
    results = tmp_path / "results"
    _truncate_run_json(_multigoal_cell(results, "sac", 0, "stable_baselines3:SAC", None))
    _multigoal_cell(results, "sac", 1, f"{EVIL_MODULE}:Thing", None).joinpath(
        "model.zip"
    ).write_bytes(b"PK")
    result = invoke("multigoal", results, "--episodes", 1)
    line = _one_error_line(result)
    assert "no finished multi-goal run" in line and "2 cell(s) skipped" in line
    assert "seed_0 is damaged and skipped" in result.stdout
    assert not evil_module.exists()
    assert not (results / "multigoal").exists()


def test_multigoal_out_that_is_a_file_is_one_line(tmp_path: Path, sac_model: Any) -> None:
    results = tmp_path / "results"
    _multigoal_cell(results, "sac", 0, "stable_baselines3:SAC", sac_model)
    blocker = tmp_path / "blocker"
    blocker.write_text("mine")
    line = _one_error_line(invoke("multigoal", results, "--out", blocker, "--episodes", 1))
    assert "--out" in line and blocker.read_text() == "mine"


def test_names_that_matplotlib_or_rliable_could_misread(tmp_path: Path) -> None:
    """A ',' splits rliable's pair keys and '$...$' is mathtext: names are plain text."""
    import pandas as pd

    results = tmp_path / "results"
    names = ("x,y", "$^$", "a")
    for algo in names:
        for env in ENVS:
            for seed in (0, 1):
                write_run(results, algo, env, seed)
    out = tmp_path / "out"
    references = write_references(tmp_path / "refs.json")
    result = invoke(
        "report", results, "--rliable", "--reps", REPS, "--out", out, "--references", references
    )
    assert result.exit_code == 0, result.output
    table = pd.read_csv(out / "tables" / "probability_of_improvement.csv")
    pairs = set(zip(table["x"], table["y"], strict=True))
    assert pairs == {("$^$", "a"), ("$^$", "x,y"), ("a", "x,y")}
    assert (out / "figures" / "probability_of_improvement.png").exists()
