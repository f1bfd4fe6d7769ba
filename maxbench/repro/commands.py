"""``maxbench entropy`` and ``maxbench multigoal``: S2AC's checks and figures on the command line.

A thin shell (DESIGN.md): the work is in :mod:`maxbench.repro.entropy_report`,
:mod:`maxbench.repro.multigoal` and :mod:`maxbench.repro.multigoal_plots`. ``maxbench/cli.py``
calls :func:`register_commands` with its Typer app; this module never imports ``maxbench.cli``
(nothing does but ``maxbench/__main__.py``), so it builds its own console. torch and matplotlib
are imported inside the commands so that the CLI starts fast.
"""

from __future__ import annotations

import csv
import json
import os
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

from maxbench.errors import UserInputError, exit_2_on_user_error

__all__ = ["register_commands"]


class Sweep(str, Enum):
    """Which entropy check(s) to run."""

    gaussian = "gaussian"
    dimension = "dimension"
    mixture = "mixture"
    std = "std"
    all = "all"


def _console() -> Any:
    """A rich Console like the CLI's: the terminal's width, or 120 columns when piped."""
    from rich.console import Console

    return Console(width=None if sys.stdout.isatty() or "COLUMNS" in os.environ else 120)


def entropy(
    sweep: Annotated[
        Sweep, typer.Option("--sweep", help="the 2-D Gaussian of Fig. 4a, a sweep, or all")
    ] = Sweep.all,
    json_path: Annotated[
        Path | None, typer.Option("--json", help="also write the results as JSON here")
    ] = None,
    png: Annotated[
        Path | None, typer.Option("--png", help="draw estimate against truth into this PNG")
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="seed of the initial particles")] = 0,
    particles: Annotated[int, typer.Option("--particles", help="particles m (paper: 20)")] = 20,
    steps: Annotated[int, typer.Option("--steps", help="SVGD steps L (paper: 30)")] = 30,
    step_size: Annotated[float, typer.Option("--step-size", help="epsilon (paper: 0.5)")] = 0.5,
) -> None:
    """S2AC's entropy check (paper Fig. 4; spec §1.3): closed-form SVGD entropy vs the truth.

    Prints, per setting, the true entropy (Monte Carlo for mixtures), the closed-form estimate
    -mean log q_L and the relative error, and whether each sweep's estimate rises with the truth.
    """
    from rich.table import Table

    from maxbench.repro.entropy_report import SWEEPS, plot_entropy_report, run_entropy_report

    if particles < 2:
        raise UserInputError(f"--particles must be at least 2 (leave-one-out), got {particles}")
    if steps < 0:
        raise UserInputError(f"--steps must be 0 or more, got {steps}")
    if step_size <= 0:
        raise UserInputError(f"--step-size must be positive, got {step_size}")
    import torch

    torch.set_num_threads(1)
    sweeps = SWEEPS if sweep is Sweep.all else (sweep.value,)
    report = run_entropy_report(sweeps, particles, steps, step_size, seed)
    console = _console()
    table = Table(
        title=f"closed-form SVGD entropy (m = {particles}, L = {steps}, eps = {step_size}, "
        f"adaptive kernel, seed {seed})"
    )
    for column in ("sweep", "setting", "true entropy", "estimate", "relative error"):
        table.add_column(column, justify="left" if column in ("sweep", "setting") else "right")
    for row in report.rows:
        truth = f"{row.truth:.4f}" + (" (MC)" if row.truth_is_monte_carlo else "")
        table.add_row(row.sweep, row.setting, truth, f"{row.estimate:.4f}", f"{row.rel_error:+.1%}")
    console.print(table)
    for name, rises in report.monotone.items():
        verdict = "rises" if rises else "does NOT rise"
        console.print(f"{name} sweep: the estimate {verdict} with the true entropy")
    if report.hessian is not None:
        h = report.hessian
        console.print(
            f"dropped Hessian term (Fig. 4a target): {h['hessian_term']:.4f} per step, "
            f"{h['relative']:.2f} x the mean |leave-one-out trace|; entropy with it "
            f"{h['entropy_with_hessian_term']:.4f} vs {h['entropy_leave_one_out']:.4f} without "
            f"(truth {h['truth']:.4f})"
        )
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(report.as_dict(), indent=2))
        console.print(f"wrote {json_path}", markup=False)
    if png is not None:
        console.print(f"wrote {plot_entropy_report(report, png)}", markup=False)


def multigoal(
    results: Annotated[Path, typer.Argument(help="a results folder (or a suite's sub-folder)")],
    out: Annotated[
        Path | None, typer.Option("--out", help="where to write PNGs and goal counts")
    ] = None,
    episodes: Annotated[
        int, typer.Option("--episodes", help="test episodes per run and env (paper: 20)")
    ] = 20,
    per_seed: Annotated[
        bool, typer.Option("--per-seed", help="one agent per seed instead of pooling seeds")
    ] = False,
    deterministic: Annotated[
        bool, typer.Option("--deterministic", help="deterministic actions (default: stochastic)")
    ] = False,
    obstacle: Annotated[
        bool, typer.Option("--obstacle/--no-obstacle", help="also test with the obstacle")
    ] = True,
    seed: Annotated[int, typer.Option("--seed", help="seed of the test episodes")] = 0,
) -> None:
    """Test trajectories and reached goals of multi-goal agents (S2AC paper Fig. 7 and 12).

    Loads every finished MultiGoal*-v0 run's final model, runs stochastic test episodes on its
    training env and on the obstacle variant, draws trajectories and goal histograms per agent,
    writes goal counts (CSV and JSON) and prints the distinct goals reached. Damaged cells, and
    cells whose run.json names an algorithm that is not registered (maxbench imports code from
    results only through its registry), are named in a warning and skipped.
    """
    from rich.markup import escape
    from rich.table import Table

    from maxbench.repro.multigoal import evaluate_agents, find_multigoal_runs, goal_count_rows

    if episodes < 1:
        raise UserInputError(f"--episodes must be at least 1, got {episodes}")
    console = _console()

    def warn(text: str) -> None:
        console.print(f"warning: {text}", markup=False)

    runs = find_multigoal_runs(results, warn=warn)
    out = out or Path(results) / "multigoal"
    _check_out(out)
    import torch

    torch.set_num_threads(1)
    groups = evaluate_agents(
        runs,
        episodes=episodes,
        deterministic=deterministic,
        per_seed=per_seed,
        seed=seed,
        obstacle=obstacle,
        warn=warn,
    )
    rows = goal_count_rows(groups)
    try:
        pngs = _write_outputs(rows, groups, out)
    except OSError as err:
        raise UserInputError(
            f"cannot write into '{out}': {err.strerror or err}"
            + (f" ('{err.filename}')" if err.filename else "")
        ) from None
    mode = "deterministic" if deterministic else "stochastic"
    table = Table(title=f"multi-goal test episodes ({episodes} {mode} per run and env)")
    for column in (
        "agent",
        "env",
        "seeds",
        "episodes",
        "distinct goals",
        "hits per goal",
        "no goal",
        "mean return",
    ):
        table.add_column(column)
    for row, group in zip(rows, groups, strict=True):
        table.add_row(
            escape(row["agent"]),
            row["env"],
            row["seeds"],
            str(row["episodes"]),
            f"{row['distinct_goals']} / {len(group.goals)}",
            " ".join(str(c) for c in group.hits),
            str(row["no_goal"]),
            f"{row['mean_return']:.1f}",
        )
    console.print(table)
    for path in [out / "goal_counts.csv", out / "goal_counts.json", *pngs]:
        console.print(f"wrote {path}", markup=False)


def _check_out(out: Path) -> None:
    """``--out`` must be a folder that exists or can be made (checked before any work)."""
    existing = out
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        where = "is a file" if existing == out else f"cannot be made: '{existing}' is a file"
        raise UserInputError(f"--out '{out}' {where} (give a folder for the figures)")


def _write_outputs(rows: list[dict], groups: list, out: Path) -> list[Path]:
    """goal_counts.csv, goal_counts.json and the figures in ``out``; the figures' paths."""
    from maxbench.repro.multigoal_plots import plot_multigoal

    out.mkdir(parents=True, exist_ok=True)
    columns: list[str] = []
    for row in rows:
        columns.extend(key for key in row if key not in columns)
    with open(out / "goal_counts.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    (out / "goal_counts.json").write_text(json.dumps(rows, indent=2))
    return plot_multigoal(groups, out)


def register_commands(app: typer.Typer) -> None:
    """Add ``entropy`` and ``multigoal`` to the maxbench Typer app."""
    app.command("entropy")(exit_2_on_user_error(entropy))
    app.command("multigoal")(exit_2_on_user_error(multigoal))
