"""Figures of multi-goal test episodes: the S2AC paper's Fig. 7 (trajectories over the arena) and
Fig. 12 / 16 (histograms of the goals reached), one figure per test environment.

Each agent gets a column: on top its test trajectories over the arena (level curves of the reward
``-min_g |p - g|^2``, goals as red discs, the obstacle as a black bar); below, how many episodes
ended at each goal (and how many reached none). Drawn with matplotlib's Agg canvas (no display).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np

from maxbench.repro.multigoal import AgentEpisodes

__all__ = ["draw_arena", "plot_multigoal"]

_BOUND = 7.0


def draw_arena(ax, goals: np.ndarray, obstacle: np.ndarray | None) -> None:
    """The arena of spec §1.7 without trajectories: level curves of ``-min_g |p - g|^2``, the
    goals as red discs (labelled G1, G2, ...), the obstacle as a black bar, the start (0, 0) as a
    cross, the square [-7, 7]^2 without ticks."""
    from matplotlib.patches import Circle

    goals = np.asarray(goals, dtype=np.float64)
    grid = np.linspace(-_BOUND, _BOUND, 121)
    xx, yy = np.meshgrid(grid, grid)
    points = np.stack([xx.ravel(), yy.ravel()], axis=1)
    sq = ((points[:, None, :] - goals[None, :, :]) ** 2).sum(-1).min(axis=1)
    ax.contour(xx, yy, -sq.reshape(xx.shape), levels=12, colors="0.75", linewidths=0.6)
    for index, (x, y) in enumerate(goals):
        ax.add_patch(Circle((x, y), 0.5, color="tab:red", alpha=0.85, zorder=3))
        ax.annotate(
            f"G{index + 1}",
            (x, y),
            textcoords="offset points",
            xytext=(6, 6),
            fontsize=8,
            color="tab:red",
        )
    if obstacle is not None:
        obstacle = np.asarray(obstacle, dtype=np.float64)
        ax.plot(obstacle[:, 0], obstacle[:, 1], color="black", lw=4, zorder=4)
    ax.plot([0], [0], marker="x", color="black", ms=6, zorder=5)
    ax.set_xlim(-_BOUND, _BOUND)
    ax.set_ylim(-_BOUND, _BOUND)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])


def _draw_arena(ax, group: AgentEpisodes) -> None:
    draw_arena(ax, group.goals, group.obstacle)
    for episode in group.episodes:
        path = episode.path
        colour = "tab:blue" if episode.goal >= 0 else "tab:orange"
        ax.plot(path[:, 0], path[:, 1], color=colour, lw=0.9, alpha=0.7, zorder=2)
        ax.plot(path[-1, 0], path[-1, 1], marker=".", color=colour, ms=4, zorder=2)


def _draw_histogram(ax, group: AgentEpisodes) -> None:
    labels = [f"G{i + 1}" for i in range(len(group.goals))] + ["none"]
    counts = [*group.hits, sum(e.goal < 0 for e in group.episodes)]
    colours = ["tab:red"] * len(group.goals) + ["tab:orange"]
    ax.bar(labels, counts, color=colours, alpha=0.85)
    ax.set_ylim(0, max(1, len(group.episodes)))
    ax.set_ylabel("episodes", fontsize=8)
    ax.tick_params(labelsize=8)
    ax.set_title(
        f"{group.distinct_goals} distinct goals, {100 * group.success_rate:.0f}% success",
        fontsize=8,
    )


def plot_multigoal(groups: Iterable[AgentEpisodes], out: Path) -> list[Path]:
    """One PNG per test env under ``out`` (``multigoal_<env>.png``); returns the paths."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    by_env: dict[str, list[AgentEpisodes]] = {}
    for group in groups:
        by_env.setdefault(group.env_id, []).append(group)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for env_id, agents in by_env.items():
        n = len(agents)
        fig = Figure(figsize=(max(3.2 * n, 6.4), 5.8), dpi=110)
        FigureCanvasAgg(fig)
        grid = fig.add_gridspec(2, n, height_ratios=(3.2, 1.4))
        for column, group in enumerate(agents):
            arena = fig.add_subplot(grid[0, column])
            _draw_arena(arena, group)
            seeds = ",".join(str(s) for s in sorted(set(group.seeds)))
            arena.set_title(  # the agent's name comes from results: never mathtext
                f"{group.agent}\nseeds {seeds}, {len(group.episodes)} episodes",
                fontsize=9,
                parse_math=False,
            )
            _draw_histogram(fig.add_subplot(grid[1, column]), group)
        trained = agents[0].trained_on
        suffix = (
            "" if trained == env_id else f"\n(trained on {trained}; the obstacle only at test time)"
        )
        fig.suptitle(f"{env_id}: test trajectories and goals reached{suffix}", fontsize=11)
        fig.tight_layout()
        path = out / f"multigoal_{env_id}.png"
        fig.savefig(path)
        written.append(path)
    return written
