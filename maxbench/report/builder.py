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
import math
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from maxbench.errors import UserInputError, close_match_hint
from maxbench.report.document import Document
from maxbench.report.markdown import Code, code_span, escape_text
from maxbench.report.tables import ReportTable, format_number
from maxbench.results.layout import DAMAGED, FINISHED

if TYPE_CHECKING:
    import pandas as pd

    from maxbench.report.reference import ReferenceTable
    from maxbench.report.runtime import LatencyTable
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


#: Missing cells listed one per line on the console; the rest are counted (all are in the table).
_MISSING_SHOWN = 20


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


def _check_out(out: Path) -> None:
    """``--out`` must be a folder that exists or can be made, and that can be written.

    Checked before any computation, so that bad input writes nothing (README's promise): a
    file in its place, a file where one of its parents should be, a read-only folder, or a file
    or folder in the way of one of the report's own files.
    """
    out = Path(out)
    try:
        _check_out_path(out)
    except (OSError, ValueError) as err:  # a name too long, a NUL byte, a loop of links
        text = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
        raise UserInputError(f"--out '{out}' cannot be used: {text}") from None


def _check_out_path(out: Path) -> None:
    existing = out
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if existing.exists() and not existing.is_dir():
        where = "is a file" if existing == out else f"cannot be made: '{existing}' is a file"
        raise UserInputError(f"--out '{out}' {where} (give a folder for the report)")
    if existing.is_dir() and not os.access(existing, os.W_OK | os.X_OK):
        raise UserInputError(f"--out '{out}' cannot be written: '{existing}' is read-only")
    for name, kind in (("tables", "folder"), ("figures", "folder"), ("report.md", "file")):
        path = out / name
        if path.exists() and path.is_dir() != (kind == "folder"):
            raise UserInputError(f"--out '{out}': '{path}' is in the way of the report's {kind}")
    if (out / "report.html").is_dir():
        raise UserInputError(f"--out '{out}': '{out / 'report.html'}' is in the way of the report")


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
    suites = escape_text(", ".join(sorted({str(v) for v in runs["suite"]})))
    doc.bullets(
        [
            f"Results: {code_span(options.results)} (suites: {suites}); {len(runs)} run "
            f"folders, {int((runs['status'] == 'finished').sum())} finished.",
            f"Final score of a run: the mean evaluation return over its last K = {scores.last_k} "
            "evaluation(s); an evaluation's return is the mean over its test episodes.",
            "Normalised score: (score − random) / (reference − random), with the random and "
            f"reference scores of {code_span(references.path.name)} (version "
            f"{references.version}); tasks are aggregated only when normalised.",
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
            *_non_finite_statement(scores),
        ]
    )
    env_rows = []
    for env, group in runs.groupby("env", sort=True):
        reference = scores.references.get(env)
        seeds = sorted({int(s) for s in group["seed"]})
        env_rows.append(
            [
                env,
                _listed(str(v) for v in group["env_id"].dropna()),
                _listed(_integers(group["budget"]), numbers=True),
                _listed(_integers(group["eval_every"]), numbers=True),
                _listed(str(v) for v in _integers(group["eval_episodes"])),
                _listed("yes" if v else "no" for v in group["eval_deterministic"].dropna()),
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
        hyper = sorted({str(v) for v in group["hyperparams"].dropna()})
        method_rows.append(
            [
                method,
                _listed(str(v) for v in group["algo_target"].dropna()),
                _listed(str(v) for v in group["policy"].dropna()),
                Code(hyper[0])
                if len(hyper) == 1
                else f"{len(hyper)} settings (per env)"
                if hyper
                else "–",
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
                escape_text(
                    f"{env} ({ref.env_id}): random {format_number(ref.random)} — "
                    f"{ref.random_source or 'source not given'}; reference "
                    f"{format_number(ref.reference)} — "
                    f"{ref.reference_source or 'source not given'}"
                    + (f" ({ref.note})" if ref.note else ""),
                    line_start=True,
                )
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
            escape_text(
                f"{cpu}, {_shown(cores)} cores, device {_shown(device)}, {_shown(threads)} torch "
                f"thread(s): {len(group)} runs",
                line_start=True,
            )
        )
    doc.paragraph(
        "**Software** (from the runs' run.json): " + escape_text("; ".join(software)) + "."
    )
    doc.paragraph("**Hardware** (from the runs' run.json):")
    doc.bullets(hardware or ["unknown (no run wrote its provenance)"])


def _shown(value: Any) -> str:
    """A value of the runs table for display: '?' when it is missing."""
    missing = value is None or (isinstance(value, float) and math.isnan(value))
    return "?" if missing else str(int(value)) if isinstance(value, float) else str(value)


def _integers(values: pd.Series) -> list[int]:
    """The distinct known integers of a column (NaN, None and non-finite values skipped)."""
    numbers = pd_to_numeric(values)
    return sorted({int(v) for v in numbers if math.isfinite(v)})


def pd_to_numeric(values: pd.Series) -> list[float]:
    """A column's values as floats, missing ones left out."""
    import pandas as pd

    return [float(v) for v in pd.to_numeric(values, errors="coerce").dropna()]


def _listed(values: Any, numbers: bool = False) -> str:
    """Distinct values joined with commas, sorted; '–' when there is none."""
    found = sorted(set(values))
    shown = [format_number(v) if numbers else str(v) for v in found]
    return ", ".join(shown) if shown else "–"


def _non_finite_statement(scores: ScoreSet) -> list[str]:
    """The protocol's line on evaluation episodes left out for a NaN or infinite return."""
    if not scores.non_finite_count:
        return []
    return [
        f"Non-finite returns: {scores.non_finite_count} evaluation episode(s) of finished runs "
        "returned NaN or ±inf; they are left out of every score, table and figure (an "
        "evaluation's return is the mean of its other episodes), and listed under Warnings."
    ]


def _incomplete(doc: Document, scores: ScoreSet, tables_dir: Path, files: list[Path]) -> None:
    from maxbench.report.tables import excluded_table, missing_table

    doc.heading("Incomplete results")
    excluded, missing = excluded_table(scores), missing_table(scores)
    files.extend(excluded.write(tables_dir) + missing.write(tables_dir))
    if scores.excluded.empty and scores.missing.empty:
        doc.paragraph("Every run of every suite's grid has finished.")
    if not scores.excluded.empty:
        damaged = int((scores.excluded["status"] == DAMAGED).sum())
        doc.paragraph(
            f"{len(scores.excluded)} run(s) are not finished"
            + (f" ({damaged} of them damaged: files that cannot be read)" if damaged else "")
            + " and are left out of every score, table and figure:"
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
        doc.bullets([escape_text(warning, line_start=True) for warning in scores.warnings])


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
    evaluations = results.evaluations(finite_only=True).merge(
        runs[["suite", "algo", "env", "seed", "method"]], on=["suite", "algo", "env", "seed"]
    )
    evaluations = evaluations[evaluations["status"] == FINISHED]
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
        doc.bullets(
            [
                escape_text(f"{m}: {why}", line_start=True)
                for m, why in sorted(matrices.left_out.items())
            ]
        )
    if not matrices.matrices or matrices.runs == 0:
        doc.paragraph(
            "No aggregates: no algorithm has finished runs on every normalised environment "
            f"(normalised: {escape_text(', '.join(scores.normalised_envs) or 'none')})."
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
    doc.paragraph(escape_text(text, line_start=True))
    if matrices.truncated:
        doc.bullets(
            [
                escape_text(
                    f"{method} on {env}: {had} finished seeds truncated to {matrices.runs} "
                    f"(seeds {' '.join(str(s) for s in matrices.seeds[(method, env)])})",
                    line_start=True,
                )
                for (method, env), had in sorted(matrices.truncated.items())
            ]
        )


def _latency(options: ReportOptions, warnings: list[str]) -> LatencyTable | None:
    """The latency table to include: ``--latency``'s (bad input when unreadable), or the
    results folder's own ``latency/`` (a damaged one is left out with a warning)."""
    from maxbench.report.runtime import read_latency_tables

    if options.latency is not None:
        latency = read_latency_tables(options.latency)
        if latency is None:
            raise UserInputError(
                f"no latency table in '{options.latency}' (write one with 'maxbench latency "
                f"--out {options.latency}')"
            )
        return latency
    try:
        return read_latency_tables(options.results / "latency")
    except UserInputError as err:
        warnings.append(f"the results folder's latency table is left out: {err}")
        return None


def _runtime(
    doc: Document,
    options: ReportOptions,
    runs: pd.DataFrame,
    latency: LatencyTable | None,
    files: list[Path],
) -> None:
    from maxbench.report.runtime import throughput_table

    doc.heading("Run time")
    table = throughput_table(runs)
    files.extend(table.write(options.out / "tables"))
    doc.table(table, "Files: tables/throughput.{md,tex,csv}.")
    if latency is None:
        command = f"maxbench latency --out {options.results / 'latency'}"
        doc.paragraph(
            "Action-selection latency: not measured for this folder (run "
            f"{code_span(command)} to add it)."
        )
        return
    table = latency.report_table()
    files.extend(table.write(options.out / "tables"))
    doc.table(table, "Files: tables/latency.{md,tex,csv}.")


# -- the report -----------------------------------------------------------------------------------
def build_report(options: ReportOptions, log: Callable[[str], None] = print) -> BuiltReport:
    """Load ``options.results``, compute everything, write the report into ``options.out``.

    Damaged, pending and unfinished cells are listed and left out (never an exception); bad
    options, an unusable ``--out``, ``--references`` or ``--latency`` are a UserInputError
    raised before anything is written.
    """
    from maxbench.report.reference import load_references
    from maxbench.report.scores import compute_scores, method_labels, score_matrices
    from maxbench.results.loader import load_results

    _check_options(options)
    results = _select_suite(load_results(options.results), options.suite)
    references = load_references(options.references)
    _check_out(options.out)
    scores = compute_scores(results, references, last_k=options.last_k)
    latency = _latency(options, scores.warnings)
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
    for row in scores.missing.head(_MISSING_SHOWN).itertuples(index=False):
        log(f"missing: {row.method}/{row.env}/seed_{row.seed} (no run folder)")
    if len(scores.missing) > _MISSING_SHOWN:
        log(
            f"missing: {len(scores.missing) - _MISSING_SHOWN} more cell(s) with no run folder "
            "(all of them in tables/missing_runs.md)"
        )

    out = options.out
    try:
        return _write_report(options, results, runs, scores, matrices, references, latency, log)
    except OSError as err:
        raise UserInputError(
            f"cannot write the report into '{out}': {err.strerror or err}"
            + (f" ('{err.filename}')" if err.filename else "")
        ) from None


def _write_report(
    options: ReportOptions,
    results: Results,
    runs: pd.DataFrame,
    scores: ScoreSet,
    matrices: ScoreMatrices | None,
    references: ReferenceTable,
    latency: LatencyTable | None,
    log: Callable[[str], None],
) -> BuiltReport:
    """Compute the figures and tables and write every file of the report into ``options.out``."""
    from maxbench.report.plots import method_colors

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
    _runtime(doc, options, runs, latency, files)
    markdown, html = doc.write(out)
    return BuiltReport(
        markdown=markdown, html=html, files=[*files, markdown, html], warnings=scores.warnings
    )
