"""``maxbench claims report``: every claim judged by its rule, written as claims.md and claims.html.

:func:`judge_catalogue` measures each test of each claim on a results folder and applies its
rule (:mod:`maxbench.repro.claims.rules`); :func:`write_ledger` writes the verdict table, one
section per claim with its tests, evidence figures and the compute the paper's scale needs, as
``claims.md`` and a self-contained ``claims.html`` (figures embedded; the report's
:class:`~maxbench.report.document.Document`). Everything is computed from the folder's files
with seeded statistics and nothing time-dependent is written, so the same folder gives the same
bytes: the committed ledger is checked by regenerating it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from maxbench.repro.claims.catalogue import Catalogue, Claim, ClaimTest, Experiment
from maxbench.repro.claims.measures import MeasureContext, measure
from maxbench.repro.claims.rules import Estimate, Judgement, Missing, Verdict, combine, judge

__all__ = [
    "ClaimResult",
    "Ledger",
    "PaperCost",
    "TestResult",
    "judge_catalogue",
    "paper_cost",
    "write_ledger",
]


@dataclass(frozen=True)
class TestResult:
    """One test of a claim: its measurement and the rule's judgement."""

    test: ClaimTest
    estimate: Estimate | Missing
    judgement: Judgement


@dataclass(frozen=True)
class PaperCost:
    """CPU-hours the paper's scale needs (None: not known yet) and how they were counted."""

    cpu_hours: float | None
    basis: str

    def text(self) -> str:
        if self.cpu_hours is None:
            return self.basis
        return f"{_hours(self.cpu_hours)} CPU-hours"


@dataclass(frozen=True)
class ClaimResult:
    """A claim, its tests' results and its verdict."""

    claim: Claim
    tests: tuple[TestResult, ...]
    verdict: Verdict
    cost: PaperCost


@dataclass
class Ledger:
    """The judged claims of one scale, and what was found wrong in the results."""

    scale: str
    root: Path
    results: list[ClaimResult]
    warnings: list[str] = field(default_factory=list)


def judge_catalogue(
    catalogue: Catalogue, root: Path, scale: str, claims: Iterable[Claim] | None = None
) -> Ledger:
    """Measure and judge ``claims`` (all of the catalogue's by default) on ``root``."""
    from maxbench.repro.claims.experiments import suite_folder

    context = MeasureContext(root)
    results = []
    folders: dict[str, Path | None] = {}
    for claim in claims if claims is not None else catalogue.claims:
        experiment = claim.experiment
        if experiment.name not in folders:
            suite = experiment.suite(scale) if experiment.kind == "suite" else None
            folders[experiment.name] = None if suite is None else suite_folder(root, suite)
        tests = []
        for test in claim.tests:
            if experiment.kind == "suite" and folders[experiment.name] is None:
                estimate: Estimate | Missing = Missing(f"not run at {scale} scale")
            else:
                estimate = measure(context, folders[experiment.name], test.measure)
            tests.append(TestResult(test, estimate, judge(test.rule, estimate, claim.min_runs)))
        verdict = combine([t.judgement.verdict for t in tests])
        cost = paper_cost(experiment, root, context)
        results.append(ClaimResult(claim, tuple(tests), verdict, cost))
    return Ledger(scale=scale, root=root, results=results, warnings=sorted(set(context.warnings)))


def paper_cost(experiment: Experiment, root: Path, context: MeasureContext) -> PaperCost:
    """CPU-hours of the paper-scale suite: each cell's budget at the throughput measured here.

    A cell's env steps per second come from the finished cells of the same algorithm and env in
    ``root`` (their run.json, one thread each), else from ``throughput/<suite>.json``.
    """
    if experiment.kind != "suite":
        return PaperCost(None, "as run here (the paper's own scale)")
    paper = experiment.suite("paper")
    if paper is None:
        return PaperCost(None, "no paper-scale suite")
    from maxbench.repro.claims.experiments import THROUGHPUT_FOLDER, suite_folder
    from maxbench.results.atomic import read_json
    from maxbench.suite.cells import expand_suite
    from maxbench.suite.loading import load_suite

    rates: dict[str, list[float]] = {}
    here = experiment.suite("workstation")
    if here is not None:
        for cell in context.suite_cells(suite_folder(root, here)):
            if cell.steps_per_s is not None and _positive(cell.steps_per_s):
                rates.setdefault(f"{cell.algo}/{cell.env_id}", []).append(cell.steps_per_s)
    loaded = load_suite(paper, check=False)
    measured = root / THROUGHPUT_FOLDER / f"{loaded.name}.json"
    if measured.is_file():
        try:
            found = {str(k): float(v) for k, v in read_json(measured)["steps_per_s"].items()}
            if not all(_positive(value) for value in found.values()):
                raise ValueError("a rate is not a positive number")  # would divide by it
            for key, value in found.items():
                rates.setdefault(key, [value])
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            context.warnings.append(f"{measured}: damaged; left out")
    seconds, unknown = 0.0, set()
    for cell in expand_suite(loaded.suite, loaded.name):
        key = f"{cell.algo}/{cell.env_id}"
        if not rates.get(key):
            unknown.add(key)
            continue
        seconds += cell.budget / (sum(rates[key]) / len(rates[key]))
    if unknown:
        return PaperCost(None, f"unknown until throughput is measured ({len(unknown)} pairs)")
    return PaperCost(seconds / 3600, f"{loaded.name}: budgets at this machine's throughput")


def _positive(rate: float) -> bool:
    """Whether ``rate`` (env steps per second) can divide a budget: finite and above 0."""
    return math.isfinite(rate) and rate > 0


# -- the document ---------------------------------------------------------------------------------
_VERDICT_MARK = {
    Verdict.holds: "**holds**",
    Verdict.fails: "**fails**",
    Verdict.inconclusive: "inconclusive",
    Verdict.not_run: "not run",
}


def write_ledger(ledger: Ledger, catalogue: Catalogue, out: Path) -> tuple[Path, Path]:
    """Write ``claims.md``, ``claims.html`` and ``figures/`` into ``out``."""
    from maxbench.report.document import Document
    from maxbench.report.markdown import escape_text
    from maxbench.results.atomic import make_dirs_durably

    make_dirs_durably(out / "figures")
    figures = _draw_figures(ledger, catalogue, out / "figures")
    _remove_stale_figures(out / "figures", catalogue, set(figures.values()))
    doc = Document(title=f"Claims ledger ({ledger.scale} scale)")
    doc.paragraph(_preamble(ledger))
    counts = {v: sum(r.verdict is v for r in ledger.results) for v in Verdict}
    doc.paragraph(
        ", ".join(f"{counts[v]} {v.value}" for v in Verdict) + f" of {len(ledger.results)} claims."
    )
    rows = [
        "| claim | paper, where | verdict | evidence (95% CI) vs rule | scale here "
        "| paper scale needs |",
        "|---|---|---|---|---|---|",
    ]
    for result in ledger.results:
        claim = result.claim
        evidence = "; ".join(escape_text(_evidence(t)) for t in result.tests)
        rows.append(
            f"| `{claim.id}`: {escape_text(claim.claim)} "
            f"| {escape_text(claim.paper)}, {escape_text(claim.where)} "
            f"| {_VERDICT_MARK[result.verdict]} | {evidence} | {escape_text(claim.scale)} "
            f"| {escape_text(result.cost.text())} |"
        )
    doc.heading("Verdicts")
    doc.paragraph("\n".join(rows))
    for result in ledger.results:
        _claim_section(doc, result, figures, out)
    if ledger.warnings:
        doc.heading("What could not be read")
        doc.bullets([escape_text(w) for w in ledger.warnings])
    return doc.write(out, stem="claims")


def _cost_detail(cost: PaperCost) -> str:
    if cost.cpu_hours is None:
        return cost.basis
    return f"{cost.text()} ({cost.basis})"


def _evidence(test: TestResult) -> str:
    estimate = test.estimate
    if isinstance(estimate, Missing):
        return f"{test.test.label}: {estimate.reason}"
    return f"{test.test.label}: {estimate.text()} (n = {estimate.n}) vs {test.test.rule.text()}"


def _claim_section(doc: Any, result: ClaimResult, figures: dict[str, Path], out: Path) -> None:
    from maxbench.report.markdown import escape_text

    claim = result.claim
    doc.heading(f"{claim.id}: {_VERDICT_MARK[result.verdict]}", level=3)
    doc.paragraph(
        f"*{escape_text(claim.paper)}, {escape_text(claim.where)}.* {escape_text(claim.claim)}"
    )
    doc.bullets(
        [
            f"Experiment: `{claim.experiment.name}`: {escape_text(claim.experiment.what)}.",
            f"Scale here: {escape_text(claim.scale)}.",
            f"Paper scale needs: {escape_text(_cost_detail(result.cost))}; GPU-hours: not "
            "measured (no GPU was lent to this machine's sessions).",
            f"Minimum runs: {claim.min_runs}.",
        ]
    )
    lines = [
        "| test | statistic [95% CI] | runs | rule | verdict | why |",
        "|---|---|---|---|---|---|",
    ]
    for test in result.tests:
        estimate = test.estimate
        stat = "—" if isinstance(estimate, Missing) else escape_text(estimate.text(4))
        runs = "—" if isinstance(estimate, Missing) else str(estimate.n)
        lines.append(
            f"| {escape_text(test.test.label)} | {stat} | {runs} "
            f"| {escape_text(test.test.rule.text())} "
            f"| {_VERDICT_MARK[test.judgement.verdict]} | {escape_text(test.judgement.reason)} |"
        )
    doc.paragraph("\n".join(lines))
    for name in claim.figures:
        path = figures.get(f"{claim.experiment.name}:{name}")
        if path is not None:
            doc.figure(path, path.relative_to(out).as_posix(), _CAPTIONS[name])


_CAPTIONS = {
    "entropy": "closed-form SVGD entropy against the truth, per sweep (mean over seeds)",
    "latency": "predict time at batch 1, HalfCheetah's shapes (median per block)",
    "returns": "final evaluation return per run (10 deterministic episodes), mean marked",
    "trajectories": "test trajectories (20 episodes per seed, seeds pooled)",
    "goals": "share of test episodes ending at each goal",
    "obstacle-trajectories": "test trajectories with the obstacle placed at test time",
    "obstacle-goals": "share of test episodes ending at each goal, with the obstacle",
}


def _preamble(ledger: Ledger) -> str:
    """How this ledger was made: commands, hardware and compute (from the folder's files)."""
    from maxbench.report.markdown import escape_text

    cells = _all_cells(ledger.root)
    cpus = sorted(
        {
            f"{c['cpu']} ({c['cpu_count']} cores)" if c.get("cpu_count") else str(c["cpu"])
            for c in cells
            if c.get("cpu")
        }
    )
    hours = sum(c["wall_time_s"] for c in cells) / 3600
    hardware = ", ".join(cpus) if cpus else "no cell has finished yet"
    return (
        "Every claim of the S2AC, Bidirectional SAC and SoftGAC papers that maxbench can check, "
        "judged by the rule written in `suites/claims/claims.yaml` before the runs. Made with "
        "`maxbench claims run` and `maxbench claims report` (regenerating it from these files "
        "gives the same bytes). "
        f"Hardware of the runs: {escape_text(hardware)}; one torch thread per run. "
        f"Training compute so far: {_hours(hours)} CPU-hours over {len(cells)} finished runs "
        "(the sum of their wall-clock times). Intervals are 95%, 2000 bootstrap resamples, seed 0."
    )


def _all_cells(root: Path) -> list[dict[str, Any]]:
    """Wall time and hardware of every finished cell under ``root`` (sorted, deterministic)."""
    from maxbench.results.layout import FINISHED, read_cell

    found = []
    for folder in sorted(root.glob("*/*/*/seed_*")):
        cell = read_cell(folder)
        if cell.damage is not None or cell.status != FINISHED:
            continue
        run = cell.run or {}
        provenance = run.get("provenance") or {}
        timings = run.get("timings") or {}
        found.append(
            {
                "cpu": provenance.get("cpu"),
                "cpu_count": provenance.get("cpu_count"),
                "wall_time_s": float(timings.get("wall_time_s") or 0.0),
            }
        )
    return found


def _hours(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:.1f}"


def _remove_stale_figures(folder: Path, catalogue: Catalogue, drawn: set[Path]) -> None:
    """Remove the ledger's own figures that this report did not draw (their data went away)."""
    from maxbench.repro.claims.catalogue import FIGURES

    ours = {f"{e}-{f}.png" for e in catalogue.experiments for f in FIGURES}
    for path in folder.glob("*.png"):
        if path.name in ours and path not in drawn:
            path.unlink()


def _draw_figures(ledger: Ledger, catalogue: Catalogue, folder: Path) -> dict[str, Path]:
    """Every figure the claims ask for, once per experiment: ``{"experiment:name": path}``."""
    from maxbench.repro.claims import evidence

    wanted: dict[str, tuple[Experiment, str]] = {}
    for result in ledger.results:
        for name in result.claim.figures:
            wanted.setdefault(
                f"{result.claim.experiment.name}:{name}", (result.claim.experiment, name)
            )
    drawn = {}
    for key, (experiment, name) in sorted(wanted.items()):
        path = evidence.draw(experiment, name, ledger.root, ledger.scale, folder)
        if path is not None:
            drawn[key] = path
    return drawn
