"""Build the report of a results folder: ``maxbench report RESULTS [--rliable]`` from Python.

The report (issue 5) holds, in ``--out``:

- ``report.md`` and a self-contained ``report.html``;
- ``figures/``: learning curves per env (``curves_<env>.png``); with ``--rliable`` also
  ``aggregate_intervals.png``, ``probability_of_improvement.png``, ``performance_profile.png``
  and ``sample_efficiency_iqm.png``;
- ``tables/``: ``final_scores``, ``throughput``, ``excluded_runs``, ``missing_runs``, with
  ``--rliable`` ``aggregates`` and ``probability_of_improvement``, and ``latency`` when the
  results folder has a ``latency/`` table from ``maxbench latency --out``: each as .md, .tex
  (booktabs) and .csv.

Everything is a function of the results folder and the options (no clock, fixed seeds), so two
reports of the same folder are byte-identical.
"""

from __future__ import annotations

import importlib.metadata
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from maxbench.errors import UserInputError, close_match_hint
from maxbench.report.document import Document
from maxbench.report.tables import ReportTable, format_number

if TYPE_CHECKING:
    import pandas as pd

    from maxbench.report.reference import ReferenceTable
    from maxbench.report.scores import ScoreMatrices, ScoreSet
    from maxbench.results.loader import Results

__all__ = ["BuiltReport", "ReportOptions", "build_report"]

_SOFTWARE = (
    ("python", "python"),
    ("torch", "torch"),
    ("stable-baselines3", "stable_baselines3"),
    ("sb3-contrib", "sb3_contrib"),
    ("gymnasium", "gymnasium"),
    ("mujoco", "mujoco"),
    ("box2d", "box2d"),
    ("numpy", "numpy"),
    ("maxbench", "maxbench"),
    ("maxbench git revision", "git_revision"),
)


@dataclass(frozen=True)
class ReportOptions:
    """What ``maxbench report`` was asked for (see its ``--help``)."""

    results: Path
    out: Path
    use_rliable: bool = False
    last_k: int = 1
    reps: int = 2000
    seed: int = 0
    versus: str | None = None
    suite: str | None = None
    references: Path | None = None
    latency: Path | None = None


@dataclass(frozen=True)
class BuiltReport:
    """Where the report went, and what it warned about."""

    markdown: Path
    html: Path
    files: list[Path]
    warnings: list[str] = field(default_factory=list)


def _file_stem(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text)


def _select_suite(results: Results, suite: str | None) -> Results:
    from maxbench.results.loader import Results

    if suite is None:
        return results
    suites = sorted(set(results.runs["suite"]))
    if suite not in suites:
        raise UserInputError(
            f"suite '{suite}' is not in '{results.root}'{close_match_hint(suite, suites)}; "
            f"found: {', '.join(suites)}"
        )
    return Results(
        root=results.root,
        runs=results.runs[results.runs["suite"] == suite].reset_index(drop=True),
        episodes=results.episodes[results.episodes["suite"] == suite].reset_index(drop=True),
    )


def _check_options(options: ReportOptions) -> None:
    if options.last_k < 1:
        raise UserInputError(f"--last-k must be at least 1 (got {options.last_k})")
    if options.reps < 1:
        raise UserInputError(f"--reps must be at least 1 (got {options.reps})")
    if options.seed < 0:
        raise UserInputError(f"--seed must be non-negative (got {options.seed})")
    if options.versus is not None and not options.use_rliable:
        raise UserInputError(
            "--versus needs --rliable (it picks the probability-of-improvement pairs)"
        )


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


# -- sections -------------------------------------------------------------------------------------
def _protocol(
    doc: Document,
    options: ReportOptions,
    runs: pd.DataFrame,
    scores: ScoreSet,
    references: ReferenceTable,
) -> None:
    doc.heading("Protocol")
    suites = ", ".join(sorted(set(runs["suite"])))
    doc.bullets(
        [
            f"Results: `{options.results}` (suites: {suites}); {len(runs)} run folders, "
            f"{int((runs['status'] == 'finished').sum())} finished.",
            f"Final score of a run: the mean evaluation return over its last K = {scores.last_k} "
            "evaluation(s); an evaluation's return is the mean over its test episodes.",
            "Normalised score: (score − random) / (reference − random), with the random and "
            f"reference scores of `{references.path.name}` (version {references.version}); "
            "tasks are aggregated only when normalised.",
            (
                f"Statistics: rliable {_version('rliable')}, stratified bootstrap with "
                f"{options.reps:,} repetitions, seed {options.seed} (numpy's global generator "
                "seeded before every rliable call), 95% percentile intervals; learning-curve "
                f"bands: seaborn {_version('seaborn')} bootstrap, {options.reps:,} repetitions, "
                f"seed {options.seed}."
                if options.use_rliable
                else f"Statistics: per-env tables only (run with --rliable for aggregates); "
                f"learning-curve bands: seaborn bootstrap, {options.reps:,} repetitions, "
                f"seed {options.seed}."
            ),
        ]
    )
    env_rows = []
    for env, group in runs.groupby("env", sort=True):
        reference = scores.references.get(env)
        seeds = sorted({int(s) for s in group["seed"]})
        env_rows.append(
            [
                env,
                ", ".join(sorted({str(v) for v in group["env_id"]})),
                ", ".join(format_number(int(b)) for b in sorted({int(b) for b in group["budget"]})),
                ", ".join(sorted({format_number(int(v)) for v in group["eval_every"]})),
                ", ".join(sorted({str(int(v)) for v in group["eval_episodes"]})),
                ", ".join(sorted({"yes" if v else "no" for v in group["eval_deterministic"]})),
                " ".join(str(s) for s in seeds),
                format_number(reference.random) if reference else "–",
                format_number(reference.reference) if reference else "–",
            ]
        )
    import pandas as pd

    columns = [
        "env",
        "env id",
        "budget (steps)",
        "eval every",
        "eval episodes",
        "deterministic",
        "seeds",
        "random",
        "reference",
    ]
    doc.table(
        ReportTable(
            name="protocol_envs",
            title="Environments and evaluation protocol",
            columns=columns,
            rows=env_rows,
            data=pd.DataFrame(env_rows, columns=columns),
            notes=[
                "random / reference: the normalisation's ends (– when the env is not "
                "normalised); sources below."
            ],
            align=["l", "l", "r", "r", "r", "l", "l", "r", "r"],
        )
    )
    method_rows = []
    runs = runs.copy()
    for method, group in runs.groupby("method", sort=True):
        hyper = sorted(set(group["hyperparams"]))
        method_rows.append(
            [
                method,
                ", ".join(sorted({str(v) for v in group["algo_target"]})),
                ", ".join(sorted({str(v) for v in group["policy"]})),
                "`" + hyper[0] + "`" if len(hyper) == 1 else f"{len(hyper)} settings (per env)",
            ]
        )
    columns = ["algo", "class", "policy", "hyperparameters"]
    doc.table(
        ReportTable(
            name="protocol_algorithms",
            title="Algorithms",
            columns=columns,
            rows=method_rows,
            data=pd.DataFrame(method_rows, columns=columns),
            align=["l", "l", "l", "l"],
        )
    )
    if scores.references:
        doc.paragraph("**Reference scores**")
        doc.bullets(
            [
                f"{env} ({ref.env_id}): random {format_number(ref.random)} — "
                f"{ref.random_source}; reference {format_number(ref.reference)} — "
                f"{ref.reference_source}" + (f" ({ref.note})" if ref.note else "")
                for env, ref in sorted(scores.references.items())
            ]
        )
    software = []
    for label, column in _SOFTWARE:
        values = sorted({str(v) for v in runs[column].dropna()})
        software.append(f"{label} {' / '.join(values) if values else 'unknown'}")
    hardware = []
    for (cpu, cores, device, threads), group in runs.dropna(subset=["cpu"]).groupby(
        ["cpu", "cpu_count", "device", "torch_threads"], sort=True, dropna=False
    ):
        hardware.append(
            f"{cpu}, {cores} cores, device {device}, {threads} torch thread(s): {len(group)} runs"
        )
    doc.paragraph("**Software** (from the runs' run.json): " + "; ".join(software) + ".")
    doc.paragraph("**Hardware** (from the runs' run.json):")
    doc.bullets(hardware or ["unknown (no run wrote its provenance)"])


def _incomplete(doc: Document, scores: ScoreSet, tables_dir: Path, files: list[Path]) -> None:
    from maxbench.report.tables import excluded_table, missing_table

    doc.heading("Incomplete results")
    excluded, missing = excluded_table(scores), missing_table(scores)
    files.extend(excluded.write(tables_dir) + missing.write(tables_dir))
    if scores.excluded.empty and scores.missing.empty:
        doc.paragraph("Every run of every suite's grid has finished.")
    if not scores.excluded.empty:
        doc.paragraph(
            f"{len(scores.excluded)} run(s) are not finished and are left out of every score, "
            "table and figure:"
        )
        doc.table(excluded, "Files: tables/excluded_runs.{md,tex,csv}.")
    if not scores.missing.empty:
        doc.paragraph(
            f"{len(scores.missing)} cell(s) of the suites' grids (algorithms × environments × "
            "seeds) have no run folder:"
        )
        doc.table(missing, "Files: tables/missing_runs.{md,tex,csv}.")
    if scores.warnings:
        doc.paragraph("**Warnings**")
        doc.bullets(scores.warnings)


def _per_env(
    doc: Document,
    options: ReportOptions,
    results: Results,
    runs: pd.DataFrame,
    scores: ScoreSet,
    colors: dict[str, Any],
    files: list[Path],
) -> None:
    from maxbench.report.plots import learning_curve_figure, save_figure
    from maxbench.report.tables import final_score_table

    doc.heading("Per-environment results")
    table = final_score_table(scores)
    files.extend(table.write(options.out / "tables"))
    doc.table(table, "Files: tables/final_scores.{md,tex,csv}.")
    evaluations = results.evaluations().merge(
        runs[["suite", "algo", "env", "seed", "method"]], on=["suite", "algo", "env", "seed"]
    )
    evaluations = evaluations[evaluations["status"] == "finished"]
    for env in sorted(set(scores.final["env"])):
        data = evaluations[evaluations["env"] == env].rename(columns={"mean_return": "value"})
        figure = learning_curve_figure(
            data, env, colors, n_boot=options.reps, seed=options.seed, normalised=False
        )
        relative = f"figures/curves_{_file_stem(env)}.png"
        files.append(save_figure(figure, options.out / relative))
        seeds = data.groupby("method")["seed"].nunique()
        counts = ", ".join(f"{m}: {n}" for m, n in seeds.items())
        doc.figure(
            options.out / relative,
            relative,
            f"{env}: mean evaluation return over seeds ({counts}) with a 95% bootstrap band",
        )


def _aggregates(
    doc: Document,
    options: ReportOptions,
    results: Results,
    scores: ScoreSet,
    matrices: ScoreMatrices,
    colors: dict[str, Any],
    files: list[Path],
    log: Callable[[str], None],
) -> None:
    from maxbench.report import rliable_stats as stats
    from maxbench.report.plots import (
        interval_figure,
        performance_profile_figure,
        probability_of_improvement_figure,
        sample_efficiency_figure,
        save_figure,
    )
    from maxbench.report.scores import curve_matrices
    from maxbench.report.tables import aggregate_table, improvement_table

    doc.heading("Aggregate results (rliable)")
    if matrices.left_out:
        doc.paragraph("Left out of the aggregates:")
        doc.bullets([f"{m}: {why}" for m, why in sorted(matrices.left_out.items())])
    if not matrices.matrices or matrices.runs == 0:
        doc.paragraph(
            "No aggregates: no algorithm has finished runs on every normalised environment "
            f"(normalised: {', '.join(scores.normalised_envs) or 'none'})."
        )
        return
    _truncation(doc, matrices)
    tables_dir, figures_dir = options.out / "tables", options.out / "figures"

    log(
        f"rliable: interval estimates ({options.reps:,} bootstrap repetitions, seed {options.seed})"
    )
    intervals = stats.interval_estimates(matrices.matrices, options.reps, options.seed)
    table = aggregate_table(intervals, matrices, options.reps, options.seed)
    files.extend(table.write(tables_dir))
    doc.table(table, "Files: tables/aggregates.{md,tex,csv}.")
    files.append(
        save_figure(
            interval_figure(intervals, stats.METRIC_NAMES, colors),
            figures_dir / "aggregate_intervals.png",
        )
    )
    doc.figure(
        figures_dir / "aggregate_intervals.png",
        "figures/aggregate_intervals.png",
        "Median, IQM, mean and optimality gap of normalised scores with 95% stratified "
        "bootstrap CIs (rliable's plot_interval_estimates)",
    )

    pairs = stats.improvement_pairs(sorted(matrices.matrices), options.versus)
    if pairs:
        log(f"rliable: probability of improvement ({len(pairs)} pair(s))")
        improvement = stats.probability_of_improvement(
            matrices.matrices, pairs, options.reps, options.seed
        )
        table = improvement_table(improvement, options.reps, options.seed)
        files.extend(table.write(tables_dir))
        doc.table(table, "Files: tables/probability_of_improvement.{md,tex,csv}.")
        files.append(
            save_figure(
                probability_of_improvement_figure(improvement),
                figures_dir / "probability_of_improvement.png",
            )
        )
        doc.figure(
            figures_dir / "probability_of_improvement.png",
            "figures/probability_of_improvement.png",
            "Probability of improvement P(X > Y) with 95% CIs"
            + (
                f" (every algorithm versus {options.versus})" if options.versus else " (every pair)"
            ),
        )
    else:
        doc.paragraph("Probability of improvement: needs two aggregated algorithms.")

    all_scores = np.concatenate([m.reshape(-1) for m in matrices.matrices.values()])
    low = min(0.0, float(np.floor(all_scores.min() * 10) / 10))
    high = max(1.0, float(np.ceil(all_scores.max() * 10) / 10))
    taus = np.linspace(low, high, 101)
    log("rliable: performance profiles")
    profiles = stats.performance_profiles(matrices.matrices, taus, options.reps, options.seed)
    files.append(
        save_figure(
            performance_profile_figure(profiles, taus, colors),
            figures_dir / "performance_profile.png",
        )
    )
    doc.figure(
        figures_dir / "performance_profile.png",
        "figures/performance_profile.png",
        "Performance profiles: fraction of runs with normalised score above τ, 95% CIs",
    )

    curves = curve_matrices(results, scores, matrices)
    log(f"rliable: IQM sample-efficiency curves ({len(curves.fractions)} points)")
    efficiency = stats.sample_efficiency(curves.curves, options.reps, options.seed)
    if curves.timesteps is not None:
        x, xlabel = curves.timesteps, "env steps"
        grid = "the evaluation nearest to each multiple of the suite's evaluation interval"
    else:
        x, xlabel = curves.fractions, "fraction of the training budget"
        grid = "the evaluation nearest to each fraction of the env's budget"
    files.append(
        save_figure(
            sample_efficiency_figure(efficiency, x, xlabel, colors),
            figures_dir / "sample_efficiency_iqm.png",
        )
    )
    doc.figure(
        figures_dir / "sample_efficiency_iqm.png",
        "figures/sample_efficiency_iqm.png",
        f"IQM of normalised evaluation returns over training with 95% CIs; each run's value at a "
        f"grid point is {grid}",
    )


def _truncation(doc: Document, matrices: ScoreMatrices) -> None:
    text = (
        f"Score matrices: {len(matrices.matrices)} algorithm(s) × {len(matrices.tasks)} task(s) "
        f"({', '.join(matrices.tasks)}) × {matrices.runs} run(s) per task (the common minimum "
        "of finished seeds; each cell keeps its lowest seeds)."
    )
    doc.paragraph(text)
    if matrices.truncated:
        doc.bullets(
            [
                f"{method} on {env}: {had} finished seeds truncated to {matrices.runs} "
                f"(seeds {' '.join(str(s) for s in matrices.seeds[(method, env)])})"
                for (method, env), had in sorted(matrices.truncated.items())
            ]
        )


def _runtime(doc: Document, options: ReportOptions, runs: pd.DataFrame, files: list[Path]) -> None:
    from maxbench.report.runtime import read_latency_tables, throughput_table

    doc.heading("Run time")
    table = throughput_table(runs)
    files.extend(table.write(options.out / "tables"))
    doc.table(table, "Files: tables/throughput.{md,tex,csv}.")
    folder = options.latency if options.latency is not None else options.results / "latency"
    latency = read_latency_tables(folder)
    if latency is None:
        if options.latency is not None:
            raise UserInputError(
                f"no latency table in '{folder}' (write one with 'maxbench latency --out {folder}')"
            )
        doc.paragraph(
            "Action-selection latency: not measured for this folder (run "
            f"`maxbench latency --out {options.results / 'latency'}` to add it)."
        )
        return
    table = latency.report_table()
    files.extend(table.write(options.out / "tables"))
    doc.table(table, "Files: tables/latency.{md,tex,csv}.")


# -- the report -----------------------------------------------------------------------------------
def build_report(options: ReportOptions, log: Callable[[str], None] = print) -> BuiltReport:
    """Load ``options.results``, compute everything, write the report into ``options.out``."""
    from maxbench.report.plots import method_colors
    from maxbench.report.reference import load_references
    from maxbench.report.scores import compute_scores, method_labels, score_matrices
    from maxbench.results.loader import load_results

    _check_options(options)
    results = _select_suite(load_results(options.results), options.suite)
    references = load_references(options.references)
    scores = compute_scores(results, references, last_k=options.last_k)
    runs = results.runs.copy()
    runs["method"] = method_labels(runs)
    if options.versus is not None and options.versus not in set(runs["method"]):
        known = sorted(set(runs["method"]))
        raise UserInputError(
            f"--versus '{options.versus}' is not an algorithm of the results"
            f"{close_match_hint(options.versus, known)}; found: {', '.join(known)}"
        )
    matrices = score_matrices(scores) if options.use_rliable else None
    if (
        matrices is not None
        and options.versus is not None
        and options.versus not in matrices.matrices
    ):
        raise UserInputError(
            f"--versus '{options.versus}' is not in the aggregates "
            f"({matrices.left_out.get(options.versus, 'no finished run')}); aggregated: "
            f"{', '.join(sorted(matrices.matrices)) or 'none'}"
        )
    log(
        f"bootstrap: {options.reps:,} repetitions, seed {options.seed}; final score: mean of the "
        f"last {options.last_k} evaluation(s)"
    )
    for warning in scores.warnings:
        log(f"warning: {warning}")
    for row in scores.excluded.itertuples(index=False):
        log(f"excluded: {row.method}/{row.env}/seed_{row.seed} ({row.status})")
    for row in scores.missing.itertuples(index=False):
        log(f"missing: {row.method}/{row.env}/seed_{row.seed} (no run folder)")

    out = options.out
    out.mkdir(parents=True, exist_ok=True)
    files: list[Path] = []
    colors = method_colors(sorted(set(runs["method"])))
    doc = Document(title=f"maxbench report: {', '.join(sorted(set(runs['suite'])))}")
    _protocol(doc, options, runs, scores, references)
    _incomplete(doc, scores, out / "tables", files)
    if scores.final.empty:
        doc.heading("Per-environment results")
        doc.paragraph("No finished run: nothing to score yet.")
    else:
        _per_env(doc, options, results, runs, scores, colors, files)
        if matrices is not None:
            _aggregates(doc, options, results, scores, matrices, colors, files, log)
    _runtime(doc, options, runs, files)
    markdown, html = doc.write(out)
    return BuiltReport(
        markdown=markdown, html=html, files=[*files, markdown, html], warnings=scores.warnings
    )
