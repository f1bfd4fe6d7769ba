"""CLI commands ``maxbench report``, ``maxbench latency`` and ``maxbench reference``.

``maxbench/cli.py`` calls :func:`register_commands` with its Typer app. The commands are thin
shells over :mod:`maxbench.report.builder`, :mod:`maxbench.report.runtime` and
:mod:`maxbench.report.reference`; heavy libraries (torch, rliable, matplotlib, seaborn, pandas)
are imported inside the commands, so ``maxbench --help`` stays fast.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from maxbench.errors import UserInputError, exit_2_on_user_error

__all__ = ["register_commands"]


_user_errors = exit_2_on_user_error


def _console() -> Any:
    from rich.console import Console

    return Console(width=None if sys.stdout.isatty() or "COLUMNS" in os.environ else 120)


def _int_list(text: str, option: str) -> list[int]:
    try:
        values = [int(part) for part in text.replace(" ", "").split(",") if part]
    except ValueError:
        raise UserInputError(
            f"{option} takes comma-separated positive integers, e.g. 3,6,6,8 (got '{text}')"
        ) from None
    if not values or any(v < 1 for v in values):
        raise UserInputError(f"{option} takes comma-separated positive integers (got '{text}')")
    return values


def report(
    results: Annotated[Path, typer.Argument(help="Results folder written by 'maxbench run'.")],
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Report folder (default: RESULTS/report)."),
    ] = None,
    use_rliable: Annotated[
        bool,
        typer.Option(
            "--rliable",
            help="Aggregate normalised scores with rliable: interval estimates, probability of "
            "improvement, performance profiles, IQM sample-efficiency curves.",
        ),
    ] = False,
    last_k: Annotated[
        int, typer.Option("--last-k", "-k", help="Final score = mean of the last K evaluations.")
    ] = 1,
    reps: Annotated[int, typer.Option("--reps", help="Bootstrap repetitions.")] = 2000,
    seed: Annotated[int, typer.Option("--seed", help="Seed of every bootstrap.")] = 0,
    versus: Annotated[
        str | None,
        typer.Option("--versus", help="Probability of improvement of every method over this one."),
    ] = None,
    suite: Annotated[
        str | None, typer.Option("--suite", help="Report only this suite of the folder.")
    ] = None,
    references: Annotated[
        Path | None,
        typer.Option("--references", help="Reference-scores file (default: maxbench's own)."),
    ] = None,
    latency_dir: Annotated[
        Path | None,
        typer.Option(
            "--latency",
            help="Folder of 'maxbench latency --out' tables to include (default: RESULTS/latency "
            "when it exists).",
        ),
    ] = None,
) -> None:
    """Write report.md and a self-contained report.html: tables, curves, run-time, statistics."""
    from maxbench.report.builder import ReportOptions, build_report

    console = _console()
    options = ReportOptions(
        results=results,
        out=out if out is not None else results / "report",
        use_rliable=use_rliable,
        last_k=last_k,
        reps=reps,
        seed=seed,
        versus=versus,
        suite=suite,
        references=references,
        latency=latency_dir,
    )
    from rich.markup import escape

    built = build_report(options, log=lambda text: console.print(text, markup=False))
    console.print(
        f"[green]report[/]: {escape(str(built.markdown))} and {escape(str(built.html))} "
        f"({len(built.files)} files)"
    )


def latency(
    algos: Annotated[
        str | None,
        typer.Option(
            "--algos",
            help="Comma-separated algorithm names or module:Class "
            "(default: sac, td3 and every registered maxbench algorithm).",
        ),
    ] = None,
    dims: Annotated[
        str,
        typer.Option(
            "--dims",
            help="Action sizes, comma-separated (default: Hopper, Walker2d, HalfCheetah, Ant).",
        ),
    ] = "3,6,6,8",
    obs: Annotated[
        str | None,
        typer.Option(
            "--obs",
            help="Observation sizes, one per action size (default: the MuJoCo -v5 env's with "
            "that action size, else 17).",
        ),
    ] = None,
    calls: Annotated[int, typer.Option("--calls", help="Timed predict calls per cell.")] = 1000,
    warmup: Annotated[int, typer.Option("--warmup", help="Untimed calls first.")] = 100,
    threads: Annotated[int, typer.Option("--threads", "-t", help="Torch threads.")] = 1,
    device: Annotated[
        str,
        typer.Option(
            "--device",
            help="Where the models run: cpu, cuda or cuda:N (on CUDA the time includes the "
            "action's copy back to the host, as predict returns numpy).",
        ),
    ] = "cpu",
    compile_models: Annotated[
        bool,
        typer.Option(
            "--compile/--no-compile",
            help="Build every algorithm that has the compile option with compile=True (the "
            "warm-up calls compile; SB3's own algorithms stay eager).",
        ),
    ] = False,
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Write latency.csv/.md/.tex here (default: print only)."),
    ] = None,
) -> None:
    """Time predict(obs, deterministic=True) at batch 1 (median ms) and count parameters."""
    from maxbench.report.runtime import (
        default_latency_algorithms,
        latency_shapes,
        measure_latencies,
        write_latency_tables,
    )

    if calls < 1 or warmup < 0 or threads < 1:
        raise UserInputError("--calls and --threads must be at least 1, --warmup at least 0")
    names = (
        [name.strip() for name in algos.split(",") if name.strip()]
        if algos
        else default_latency_algorithms()
    )
    if not names:
        raise UserInputError("--algos names no algorithm")
    action_sizes = _int_list(dims, "--dims")
    obs_sizes = _int_list(obs, "--obs") if obs is not None else None
    shapes = latency_shapes(action_sizes, obs_sizes)
    console = _console()
    table = measure_latencies(
        names,
        shapes,
        calls=calls,
        warmup=warmup,
        threads=threads,
        log=lambda text: console.print(text, markup=False),
        device=device,
        compile=compile_models,
    )
    console.print(table.rich_table())
    if out is not None:
        for path in write_latency_tables(table, out):
            console.print(f"wrote {path}", markup=False)


def reference_random(
    env_id: Annotated[str, typer.Argument(help="Gymnasium env id, e.g. Pendulum-v1.")],
    episodes: Annotated[int, typer.Option("--episodes", "-n", help="Episodes to average.")] = 100,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the env and the actions.")] = 0,
    file: Annotated[
        Path | None,
        typer.Option("--file", help="Reference file to record into (default: maxbench's own)."),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Measure and print; record nothing.")
    ] = False,
) -> None:
    """Measure the uniform random policy's mean return and record it as the env's random score."""
    from maxbench.report.reference import (
        REFERENCE_FILE,
        check_reference_file,
        measure_random_score,
        record_random_score,
    )

    path = file if file is not None else REFERENCE_FILE
    if not dry_run:
        check_reference_file(path)  # a damaged or unwritable file fails before the measurement
    measured = measure_random_score(env_id, episodes=episodes, seed=seed)
    typer.echo(
        f"{env_id}: random policy mean return {measured.mean:.6f} ± {measured.std:.6f} (std) over "
        f"{measured.episodes} episodes (mean length {measured.mean_length:.1f}), seed {seed}"
    )
    if dry_run:
        return
    version = record_random_score(measured, path)
    typer.echo(f"recorded in {path} (version {version})")


def register_commands(app: typer.Typer) -> None:
    """Add ``report``, ``latency`` and the ``reference`` sub-app to maxbench's Typer app."""
    app.command("report")(_user_errors(report))
    app.command("latency")(_user_errors(latency))
    reference_app = typer.Typer(
        help="Reference scores for normalisation (maxbench/report/reference_scores.json).",
        no_args_is_help=True,
    )
    reference_app.command("random")(_user_errors(reference_random))
    app.add_typer(reference_app, name="reference")
