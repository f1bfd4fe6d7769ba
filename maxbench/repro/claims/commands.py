"""``maxbench claims list | run | report``: the claims ledger on the command line.

A thin shell (DESIGN.md): the catalogue is :mod:`maxbench.repro.claims.catalogue`, the runs
:mod:`maxbench.repro.claims.experiments`, the verdicts and the document
:mod:`maxbench.repro.claims.ledger`. ``maxbench/cli.py`` calls :func:`register_commands`; this
module never imports ``maxbench.cli``.
"""

from __future__ import annotations

import os
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

from maxbench.errors import UserInputError, exit_2_on_user_error

__all__ = ["register_commands"]

claims_app = typer.Typer(
    help="The claims ledger: every checkable claim of the S2AC, BSAC and SoftGAC papers, "
    "re-run and judged by a rule fixed in advance (suites/claims/claims.yaml).",
    no_args_is_help=True,
)


class Scale(str, Enum):
    """Which suites the experiments run: the workstation's budgets or the papers'."""

    workstation = "workstation"
    paper = "paper"


#: Default results folder per scale.
DEFAULT_RESULTS = {
    Scale.workstation: Path("results/claims"),
    Scale.paper: Path("results/claims-paper"),
}

CatalogueOption = Annotated[
    Path,
    typer.Option(
        "--catalogue", "-c", help="The claims catalogue (run from the repository's root)."
    ),
]
ScaleOption = Annotated[
    Scale,
    typer.Option(
        "--scale", help="workstation: the budgets sized for 2 cores; paper: the papers' budgets."
    ),
]
ResultsOption = Annotated[
    Path | None,
    typer.Option(
        "--results",
        "-r",
        help="Results folder [default: results/claims, or results/claims-paper at paper scale].",
    ),
]
OnlyOption = Annotated[
    str | None,
    typer.Option("--only", help="Glob on claim ids, e.g. 's2ac-fig*' or 'bsac-*'."),
]


def _console() -> Any:
    from rich.console import Console

    return Console(width=None if sys.stdout.isatty() or "COLUMNS" in os.environ else 120)


def _load(catalogue: Path) -> Any:
    from maxbench.repro.claims.catalogue import load_catalogue

    return load_catalogue(catalogue)


@claims_app.command("list")
@exit_2_on_user_error
def list_claims(
    catalogue: CatalogueOption = Path("suites/claims/claims.yaml"),
    only: OnlyOption = None,
) -> None:
    """List the claims: paper and location, the claim, its experiment and decision rule(s)."""
    from rich.markup import escape
    from rich.table import Table

    loaded = _load(catalogue)
    table = Table(title=f"{len(loaded.select(only))} claims ({escape(str(catalogue))})")
    for column in ("id", "paper, where", "claim", "experiment", "rule(s)", "min runs"):
        table.add_column(column)
    for claim in loaded.select(only):
        scales = [s for s in ("workstation", "paper") if claim.experiment.runs_at(s)]
        table.add_row(
            escape(claim.id),
            escape(f"{claim.paper}, {claim.where}"),
            escape(claim.claim),
            escape(f"{claim.experiment.name} ({', '.join(scales) or 'no scale'})"),
            escape("; ".join(f"{t.label}: {t.rule.text()}" for t in claim.tests)),
            str(claim.min_runs),
        )
    _console().print(table)


@claims_app.command("run")
@exit_2_on_user_error
def run_claims(
    catalogue: CatalogueOption = Path("suites/claims/claims.yaml"),
    scale: ScaleOption = Scale.workstation,
    results: ResultsOption = None,
    only: OnlyOption = None,
    workers: Annotated[
        int | None, typer.Option("--workers", "-w", help="Parallel cells [default: one per core].")
    ] = None,
    backend: Annotated[
        str, typer.Option("--backend", help="'local' (process pool) or 'ray' (the 'ray' extra).")
    ] = "local",
    address: Annotated[
        str | None, typer.Option("--address", help="Ray cluster address; none: local Ray.")
    ] = None,
    retry_failed: Annotated[
        bool, typer.Option("--retry-failed", help="Run failed cells again (from a checkpoint).")
    ] = False,
    reset_damaged: Annotated[
        bool,
        typer.Option("--reset-damaged", help="Move damaged cells' folders aside and restart them."),
    ] = False,
) -> None:
    """Run the experiments of the claims (or of --only's), resuming whatever is unfinished.

    Suites run through the normal runner (as `maxbench run`); multi-goal cells then get their
    test episodes recorded (test_episodes.json); the entropy and latency experiments write
    entropy/entropy.json and latency/latency.json. A suite that does not run at this scale gets
    its paper-scale throughput timed briefly, for the ledger's compute estimate. Timings want a
    quiet machine. Exit status: 0 when everything finished, 1 when some cell did not, 2 for bad
    input, 130 when interrupted.
    """
    from maxbench.repro.claims.experiments import experiments_of, run_experiment

    loaded = _load(catalogue)
    root = results or DEFAULT_RESULTS[scale]
    console = _console()
    failed = []
    for experiment in experiments_of(loaded.select(only)):
        console.print(f"[bold]experiment {experiment.name}[/]: {experiment.what}", highlight=False)
        outcome = run_experiment(
            experiment,
            scale.value,
            root,
            say=lambda text: console.print(text, markup=False, highlight=False),
            workers=workers,
            console=console,
            backend=backend,
            address=address,
            retry_failed=retry_failed,
            reset_damaged=reset_damaged,
        )
        console.print(f"{experiment.name}: {outcome.summary}", markup=False, highlight=False)
        if not outcome.ok:
            failed.append(experiment.name)
    if failed:
        console.print(f"not finished: {', '.join(failed)}", markup=False)
        raise typer.Exit(1)


@claims_app.command("report")
@exit_2_on_user_error
def report_claims(
    catalogue: CatalogueOption = Path("suites/claims/claims.yaml"),
    scale: ScaleOption = Scale.workstation,
    results: ResultsOption = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Where claims.md, claims.html go [default: --results]."),
    ] = None,
    only: OnlyOption = None,
) -> None:
    """Judge every claim on the results and write claims.md and a self-contained claims.html.

    Verdicts: holds, fails, inconclusive (at this scale, or with fewer runs than the rule's
    minimum) and not run (with the CPU-hours the paper's scale needs). The same results give
    the same bytes.
    """
    from rich.markup import escape
    from rich.table import Table

    from maxbench.repro.claims.ledger import judge_catalogue, write_ledger

    loaded = _load(catalogue)
    root = results or DEFAULT_RESULTS[scale]
    if not root.is_dir():
        raise UserInputError(
            f"results folder '{root}' not found: run `maxbench claims run` first, or give --results"
        )
    target = out or root
    if target.exists() and not target.is_dir():
        raise UserInputError(f"--out '{target}' is a file (give a folder)")
    ledger = judge_catalogue(loaded, root, scale.value, loaded.select(only))
    try:
        written = write_ledger(ledger, loaded, target)
    except OSError as err:
        raise UserInputError(f"cannot write into '{target}': {err.strerror or err}") from None
    console = _console()
    table = Table(title=f"claims ledger ({scale.value} scale, {escape(str(root))})")
    for column in ("claim", "verdict", "evidence"):
        table.add_column(column)
    for result in ledger.results:
        table.add_row(
            escape(result.claim.id),
            result.verdict.value,
            escape("; ".join(t.judgement.reason for t in result.tests)),
        )
    console.print(table)
    for warning in ledger.warnings:
        console.print(f"warning: {warning}", markup=False, highlight=False)
    for path in written:
        console.print(f"wrote {path}", markup=False, highlight=False)


def register_commands(app: typer.Typer) -> None:
    """Add the ``claims`` command group to the maxbench Typer app."""
    app.add_typer(claims_app, name="claims")
