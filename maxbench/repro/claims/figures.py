"""The claims ledger's figures, drawn from recorded results and repeated byte for byte.

Every figure is built on a bare :class:`matplotlib.figure.Figure` with the Agg canvas (no pyplot,
no global backend), under matplotlib's default style whatever the caller's ``rcParams`` are, at a
fixed size and :data:`DPI`, and saved without the "Software" metadata entry (:func:`save_png`),
written atomically: the same data gives the same PNG bytes.

Sections:

- shared: the fixed style and :func:`save_png`;
- multi-goal (S2AC §5.1): :func:`plot_trajectory_grid` (Fig. 7) and
  :func:`plot_goal_histograms` (Fig. 12 / 16), from :mod:`maxbench.repro.claims.test_episodes`.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from maxbench.repro.multigoal import AgentEpisodes
from maxbench.results.atomic import atomic_open

__all__ = [
    "DPI",
    "Rows",
    "fixed_style",
    "goal_histogram_figure",
    "goal_shares",
    "new_figure",
    "plot_goal_histograms",
    "plot_trajectory_grid",
    "save_png",
    "trajectory_grid_figure",
]

# -- shared ---------------------------------------------------------------------------------------
#: Resolution of every PNG of the ledger.
DPI = 100
#: Changes to matplotlib's default style: names come from results, so '$' is text, not mathtext;
#: the reward's level curves (all negative) are solid lines, not dashed.
_STYLE = {
    "text.parse_math": False,
    "svg.hashsalt": "maxbench",
    "figure.dpi": DPI,
    "contour.negative_linestyle": "solid",
}


@contextlib.contextmanager
def fixed_style() -> Iterator[None]:
    """matplotlib's default style plus :data:`_STYLE`, whatever the caller's rcParams are.

    A figure built and saved inside looks the same in every process (a user's matplotlibrc, a
    seaborn theme set by the report, change nothing); the caller's rcParams come back after.
    """
    import matplotlib

    with matplotlib.rc_context():
        matplotlib.rcdefaults()
        matplotlib.rcParams.update(_STYLE)
        yield


def new_figure(width: float, height: float) -> Any:
    """A bare Agg figure of ``width`` x ``height`` inches at :data:`DPI` (constrained layout)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def save_png(figure: Any, path: Path) -> Path:
    """Write ``figure`` as a PNG atomically: fixed DPI, no "Software" entry, no timestamp.

    The figure is a bare :class:`~matplotlib.figure.Figure` (pyplot never holds it), so nothing
    is left open once the caller drops it.
    """
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    path = Path(path)
    with atomic_open(path, "wb") as handle:
        handle.write(buffer.getvalue())
    return path


# -- multi-goal (S2AC §5.1, Fig. 7, 12 and 16) ----------------------------------------------------
#: One row per algorithm: ``(row label, [(column label, episodes or None: not run), ...])``; the
#: columns are entropy weights (``"α = 0.2"``).
Rows = list[tuple[str, list[tuple[str, AgentEpisodes | None]]]]

_PANEL = 2.4  # inches per arena panel of Fig. 7
_NOT_RUN = "not run"


def plot_trajectory_grid(rows: Rows, path: Path, title: str) -> Path:
    """S2AC Fig. 7: test trajectories, one row per algorithm, one column per entropy weight.

    Each panel is the arena (:func:`~maxbench.repro.multigoal_plots.draw_arena`: goals, obstacle,
    reward level curves) with every episode's path as a thin blue line; a column missing from a
    row, or given as None, is an empty panel saying "not run". Returns ``path``.
    """
    with fixed_style():
        return save_png(trajectory_grid_figure(rows, title), path)


def plot_goal_histograms(rows: Rows, path: Path, title: str) -> Path:
    """S2AC Fig. 12 / 16: per algorithm, the share of episodes ending at each goal, per weight.

    One panel per algorithm (row); in it, for each goal G1..Gk and for "none" (no goal reached),
    one bar per column (entropy weight): the share of that column's episodes ending there. A
    column not run keeps its legend entry, marked "(not run)", and has no bars. Returns ``path``.
    """
    with fixed_style():
        return save_png(goal_histogram_figure(rows, title), path)


def trajectory_grid_figure(rows: Rows, title: str) -> Any:
    """The figure of :func:`plot_trajectory_grid` (build it inside :func:`fixed_style`)."""
    from maxbench.repro.multigoal_plots import draw_arena

    columns = _columns(rows)
    figure = new_figure(0.6 + _PANEL * len(columns), 0.5 + _PANEL * len(rows))
    axes = figure.subplots(len(rows), len(columns), squeeze=False)
    for r, (row_label, cells) in enumerate(rows):
        found = dict(cells)
        for c, column in enumerate(columns):
            ax, group = axes[r][c], found.get(column)
            if group is None:
                _not_run(ax)
            else:
                draw_arena(ax, group.goals, group.obstacle)
                _draw_paths(ax, group)
            if r == 0:
                ax.set_title(column, fontsize=10)
            if c == 0:
                ax.set_ylabel(row_label, fontsize=10)
    figure.suptitle(title, fontsize=11)
    return figure


def goal_histogram_figure(rows: Rows, title: str) -> Any:
    """The figure of :func:`plot_goal_histograms` (build it inside :func:`fixed_style`)."""
    columns = _columns(rows)
    n_goals = max((len(g.goals) for _, cells in rows for _, g in cells if g is not None), default=0)
    labels = [f"G{i + 1}" for i in range(n_goals)] + ["none"]
    width = max(3.6, 0.9 + 0.22 * len(labels) * max(len(columns), 1) + 0.5)
    figure = new_figure(width * len(rows), 3.6)
    axes = figure.subplots(1, len(rows), squeeze=False)[0]
    colours = _column_colours(len(columns))
    step = 0.8 / len(columns)
    x = np.arange(len(labels), dtype=np.float64)
    for ax, (row_label, cells) in zip(axes, rows, strict=True):
        found = dict(cells)
        for c, column in enumerate(columns):
            group = found.get(column)
            heights = np.zeros(len(labels)) if group is None else goal_shares(group, n_goals)
            ax.bar(
                x - 0.4 + step * (c + 0.5),
                heights,
                width=step,
                color=colours[c],
                label=column if group is not None else f"{column} ({_NOT_RUN})",
            )
        if all(found.get(column) is None for column in columns):
            ax.text(0.5, 0.6, _NOT_RUN, transform=ax.transAxes, ha="center", color="0.4")
        ax.set_xticks(x, labels)
        ax.set_ylim(0.0, 1.0)
        ax.set_ylabel("share of episodes", fontsize=9)
        ax.set_title(row_label, fontsize=10)
        ax.legend(
            fontsize=7,
            loc="upper center",
            bbox_to_anchor=(0.5, -0.1),
            ncol=min(len(columns), 3),
            frameon=False,
        )
        ax.tick_params(labelsize=8)
    figure.suptitle(title, fontsize=11)
    return figure


def goal_shares(group: AgentEpisodes, n_goals: int) -> np.ndarray:
    """Shares of ``group``'s episodes ending at goals 0 .. n_goals - 1, then at no goal."""
    counts = np.zeros(n_goals + 1)
    for episode in group.episodes:
        counts[episode.goal if episode.goal >= 0 else n_goals] += 1
    return counts / max(1, len(group.episodes))


def _columns(rows: Rows) -> list[str]:
    """The column labels in order of first appearance; a row may name each at most once."""
    if not rows:
        raise ValueError("a figure needs at least one row")
    columns: list[str] = []
    for row_label, cells in rows:
        labels = [label for label, _ in cells]
        if len(set(labels)) != len(labels):
            raise ValueError(f"row {row_label!r} names a column twice: {labels}")
        columns += [label for label in labels if label not in columns]
    if not columns:
        raise ValueError("a figure needs at least one column")
    return columns


def _column_colours(n: int) -> list[Any]:
    """One colour per column, ordered (the columns are increasing entropy weights)."""
    import matplotlib

    cmap = matplotlib.colormaps["viridis"]
    return [cmap(v) for v in np.linspace(0.15, 0.85, n)] if n > 1 else [cmap(0.35)]


def _draw_paths(ax: Any, group: AgentEpisodes) -> None:
    """Every episode's path as a thin blue line (Fig. 7), and a one-line count in the corner."""
    for episode in group.episodes:
        ax.plot(episode.path[:, 0], episode.path[:, 1], color="tab:blue", lw=0.6, zorder=2)
    ax.text(
        0.02,
        0.02,
        f"{group.distinct_goals}/{len(group.goals)} goals, {len(group.episodes)} episodes",
        transform=ax.transAxes,
        fontsize=6.5,
        color="0.3",
    )


def _not_run(ax: Any) -> None:
    """An empty panel of the arena's size saying "not run"."""
    ax.text(0.5, 0.5, _NOT_RUN, transform=ax.transAxes, ha="center", va="center", color="0.4")
    ax.set_xlim(-7.0, 7.0)
    ax.set_ylim(-7.0, 7.0)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])


# -- runs, entropy and latency (the ledger's other evidence) --------------------------------------
def plot_final_returns(returns: dict[str, list[float]], path: Path, title: str) -> Path:
    """Each run's final evaluation return as a dot per algorithm (order kept), the mean as a bar.

    An algorithm without finished runs is listed with "not run" in place of its dots.
    """
    with fixed_style():
        figure = new_figure(max(4.0, 1.1 * len(returns) + 1.5), 3.4)
        ax = figure.add_subplot()
        for index, values in enumerate(returns.values()):
            if not values:
                ax.text(index, 0.5, _NOT_RUN, transform=ax.get_xaxis_transform(), ha="center")
                continue
            offsets = np.linspace(-0.15, 0.15, len(values)) if len(values) > 1 else [0.0]
            ax.scatter(index + np.asarray(offsets), values, s=18, color="tab:blue", zorder=3)
            ax.hlines(float(np.mean(values)), index - 0.3, index + 0.3, color="black", lw=1.5)
        ax.set_xticks(range(len(returns)), list(returns), rotation=20, ha="right")
        ax.set_xlim(-0.6, len(returns) - 0.4)
        ax.set_ylabel("final return")
        ax.set_title(title, fontsize=10)
        ax.grid(axis="y", alpha=0.3)
        return save_png(figure, path)


def plot_entropy_sweeps(
    sweeps: dict[str, list[tuple[float, float, float]]], path: Path, title: str
) -> Path:
    """Per sweep, the mean closed-form estimate (with its seeds' range) against the truth.

    ``sweeps`` maps a sweep's name to ``(truth, mean estimate, estimate's spread)`` per setting;
    the diagonal is where estimate = truth.
    """
    with fixed_style():
        figure = new_figure(3.2 * len(sweeps), 3.2)
        for index, (name, points) in enumerate(sweeps.items()):
            ax = figure.add_subplot(1, len(sweeps), index + 1)
            truth = np.array([p[0] for p in points])
            mean = np.array([p[1] for p in points])
            spread = np.array([p[2] for p in points])
            ax.errorbar(truth, mean, yerr=spread, fmt="o-", ms=4, capsize=2, color="tab:blue")
            low = float(min(truth.min(), (mean - spread).min()))
            high = float(max(truth.max(), (mean + spread).max()))
            ax.plot([low, high], [low, high], color="0.6", lw=1, ls="--")
            ax.set_xlabel("true entropy")
            ax.set_ylabel("estimate")
            ax.set_title(name, fontsize=10)
        figure.suptitle(title, fontsize=10)
        return save_png(figure, path)


def plot_latency_blocks(blocks: dict[str, list[float]], path: Path, title: str) -> Path:
    """Median predict time per timing block (dots) and the blocks' median (bar) per algorithm."""
    with fixed_style():
        figure = new_figure(max(4.0, 1.0 * len(blocks) + 1.5), 3.2)
        ax = figure.add_subplot()
        names = list(blocks)
        ax.bar(
            range(len(names)),
            [float(np.median(blocks[n])) for n in names],
            color="0.85",
            edgecolor="0.4",
        )
        for index, name in enumerate(names):
            values = blocks[name]
            ax.scatter(np.full(len(values), index), values, s=8, color="tab:blue", zorder=3)
        ax.set_xticks(range(len(names)), names, rotation=20, ha="right")
        ax.set_yscale("log")
        ax.set_ylabel("predict, ms (log scale)")
        ax.set_title(title, fontsize=10)
        return save_png(figure, path)
