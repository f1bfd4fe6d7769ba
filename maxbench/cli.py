"""The ``maxbench`` command line: a thin Typer shell over the Python API (no logic of its own)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from maxbench import __version__
from maxbench.errors import exit_2_on_user_error

app = typer.Typer(
    name="maxbench",
    help="Benchmark and reproduce maximum-entropy RL: declarative suites, resumable runs, reports.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
# Piped output (CI logs, files) gets 120 columns instead of rich's default 80, unless COLUMNS says.
console = Console(width=None if sys.stdout.isatty() or "COLUMNS" in os.environ else 120)


user_errors = exit_2_on_user_error  # the name the command modules and tests use


def _version(value: bool) -> None:
    if value:
        console.print(f"maxbench {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    """maxbench: MaxEnt RL algorithms as stable-baselines3 algorithms, run as declarative suites."""


@app.command()
@user_errors
def validate(
    suite: Annotated[Path, typer.Argument(help="The suite YAML file.")],
) -> None:
    """Check a suite file (keys, algorithms, hyperparameters, env ids) without running it."""
    from maxbench.suite.cells import expand_suite
    from maxbench.suite.loading import load_suite

    loaded = load_suite(suite)
    cells = expand_suite(loaded.suite, loaded.name)
    s = loaded.suite
    console.print(
        f"[green]valid[/]: suite '{escape(loaded.name)}': {len(s.algorithms)} algorithms × "
        f"{len(s.environments)} environments × {len(s.seed_list)} seeds = {len(cells)} cells, "
        f"{sum(c.budget for c in cells):,} env steps in all"
    )


@app.command()
@user_errors
def run(
    suite: Annotated[Path, typer.Argument(help="The suite YAML file.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Results folder.")] = Path("results"),
    workers: Annotated[
        int | None, typer.Option("--workers", "-w", help="Parallel cells [default: one per core].")
    ] = None,
    threads: Annotated[int, typer.Option("--threads", "-t", help="Torch threads per worker.")] = 1,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="Show what would run, resume or be skipped; run nothing."),
    ] = False,
    retry_failed: Annotated[
        bool, typer.Option("--retry-failed", help="Run failed cells again (from their checkpoint).")
    ] = False,
    reset_damaged: Annotated[
        bool,
        typer.Option(
            "--reset-damaged",
            help="Move each damaged cell's folder aside (renamed seed_<n>.damaged-<UTC time>, "
            "nothing deleted) and start the cell again. Without it, damaged cells are listed "
            "and stepped over.",
        ),
    ] = False,
    rerun_changed: Annotated[
        bool,
        typer.Option(
            "--rerun-changed",
            help="Cells run with other settings than the suite's now (a budget, a "
            "hyperparameter, anything that determines the results; a bigger budget too): move "
            "their folders aside (seed_<n>.changed-<UTC time>) and start them again.",
        ),
    ] = False,
    keep_changed: Annotated[
        bool,
        typer.Option(
            "--keep-changed",
            help="Cells run with other settings: keep their old results; finished ones stay "
            "skipped, unfinished ones are not resumed under the new settings.",
        ),
    ] = False,
    only: Annotated[
        str | None,
        typer.Option(
            "--only", help="Glob on cell keys algo/env/seed_n, e.g. 'sac/*' or '*/seed_0'."
        ),
    ] = None,
    backend: Annotated[
        str,
        typer.Option(
            "--backend", help="'local' (process pool) or 'ray' (Ray tasks; the 'ray' extra)."
        ),
    ] = "local",
    address: Annotated[
        str | None,
        typer.Option(
            "--address", help="Ray cluster address (e.g. 'auto' or 'HOST:6379'); none: local Ray."
        ),
    ] = None,
    cells_per_gpu: Annotated[
        int | None,
        typer.Option(
            "--cells-per-gpu",
            help="At most this many cells share one GPU at a time (local: cells on auto or "
            "cuda are spread over the visible GPUs, fewest first; Ray: each cuda cell asks for "
            "1/N of a GPU) [default: no cap locally, a whole GPU on Ray].",
        ),
    ] = None,
) -> None:
    """Run a suite: every (algorithm, environment, seed) cell, resuming unfinished ones.

    A damaged cell (a file of its folder cannot be read) is named with its reason and stepped
    over; --reset-damaged moves its folder aside and starts it again. When the suite was edited
    since a cell ran (its run.json holds other settings, a bigger budget included), run refuses
    until --rerun-changed or --keep-changed says what to do with such cells.

    Exit status: 0 when every cell has finished, 1 when some cell failed, is damaged or did not
    finish, 2 for bad input (changed cells without a choice included), 130 when interrupted.
    """
    from maxbench.suite.runner import plan_suite, run_suite

    choices = {
        "retry_failed": retry_failed,
        "reset_damaged": reset_damaged,
        "rerun_changed": rerun_changed,
        "keep_changed": keep_changed,
    }
    if dry_run:
        name, planned = plan_suite(suite, out, only=only, **choices)
        _print_plan(name, planned)
        return
    outcome = run_suite(
        suite,
        out=out,
        workers=workers,
        threads=threads,
        only=only,
        console=console,
        backend=backend,
        address=address,
        cells_per_gpu=cells_per_gpu,
        **choices,
    )
    raise typer.Exit(outcome.exit_code)


def _print_plan(name: str, planned: list[Any]) -> None:
    """The dry run's table, and what a real run would refuse or step over."""
    from maxbench.suite.plan import changed_refusal

    table = Table(title=escape(f"{name}: {len(planned)} cells (dry run, nothing is written)"))
    for column in ("cell", "budget", "action", "from step"):
        table.add_column(column)
    for item in planned:
        table.add_row(
            escape(item.cell.key),
            f"{item.cell.budget:,}",
            escape(item.action),
            str(item.done_steps),
        )
    console.print(table)
    damaged = sum(1 for item in planned if item.damaged and not item.runnable)
    if damaged:
        console.print(
            f"{damaged} damaged cell(s) would be stepped over: --reset-damaged moves a damaged "
            "cell's folder aside and starts it again.",
            soft_wrap=True,
            highlight=False,
        )
    refusal = changed_refusal(name, planned)
    if refusal is not None:
        console.print(f"run would refuse: {escape(refusal)}", soft_wrap=True, highlight=False)


@app.command("algos")
def list_algorithms() -> None:
    """List the registered algorithm names."""
    from maxbench.registry import ALGORITHMS

    table = Table(title="algorithms (or any module:Class with the SB3 API)")
    table.add_column("name")
    table.add_column("class")
    table.add_column("preset")
    table.add_column("what")
    for name, entry in sorted(ALGORITHMS.items()):
        table.add_row(
            escape(name),
            escape(entry.target),
            escape(str(entry.preset or "")),
            escape(entry.summary),
        )
    console.print(table)


@app.command("envs")
def list_environments() -> None:
    """List maxbench's own environments (any gymnasium id works in a suite)."""
    import gymnasium as gym

    import maxbench.envs  # noqa: F401

    table = Table(title="maxbench environments")
    table.add_column("id")
    table.add_column("max steps")
    table.add_column("kwargs")
    for env_id, spec in sorted(gym.envs.registry.items()):
        if str(spec.entry_point).startswith("maxbench."):
            table.add_row(escape(env_id), str(spec.max_episode_steps), escape(str(spec.kwargs)))
    console.print(table)


# Commands that live beside the code they drive (each module has ``register_commands(app)``);
# a module that is not there yet is skipped. They import heavy libraries inside the commands.
_COMMAND_MODULES = (
    "maxbench.repro.commands",
    "maxbench.repro.claims.commands",
    "maxbench.report.commands",
)


def _register_command_modules() -> None:
    import importlib

    for module_name in _COMMAND_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as err:
            if err.name is not None and module_name.startswith(err.name):
                continue
            raise
        module.register_commands(app)


_register_command_modules()
