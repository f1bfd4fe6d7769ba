"""Figures of the report, written as PNGs that repeat byte for byte.

Learning curves use seaborn (mean over seeds with a seeded 95% bootstrap band, issue 5 point 4);
the aggregate figures use rliable's own plotting functions (``plot_interval_estimates``,
``plot_probability_of_improvement``, ``plot_performance_profiles``,
``plot_sample_efficiency_curve``; point 3). Every PNG is saved without the "Software" metadata
entry and with a fixed size and resolution, so two reports of the same folder are identical.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

    from maxbench.report.rliable_stats import Intervals

__all__ = [
    "DPI",
    "interval_figure",
    "learning_curve_figure",
    "method_colors",
    "performance_profile_figure",
    "probability_of_improvement_figure",
    "sample_efficiency_figure",
    "save_figure",
]

#: Resolution of every PNG.
DPI = 110


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    # Names in titles and legends come from results: '$' in one is text, never mathtext.
    plt.rcParams.update(
        {"svg.hashsalt": "maxbench", "figure.max_open_warning": 0, "text.parse_math": False}
    )
    return plt


def method_colors(methods: list[str]) -> dict[str, Any]:
    """One colourblind-safe colour per method, the same in every figure."""
    import seaborn as sns

    palette = sns.color_palette("colorblind", n_colors=max(len(methods), 1))
    return dict(zip(sorted(methods), palette, strict=False))


def save_figure(figure: Any, path: Path) -> Path:
    """Save a PNG with no time- or version-dependent metadata; close the figure."""
    plt = _pyplot()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=DPI, bbox_inches="tight", metadata={"Software": None})
    plt.close(figure)
    return path


def learning_curve_figure(
    evaluations: pd.DataFrame,
    env: str,
    colors: dict[str, Any],
    n_boot: int,
    seed: int,
    normalised: bool,
) -> Any:
    """Mean evaluation return over seeds per method, with a 95% bootstrap band (seaborn).

    ``evaluations`` has one row per (method, seed, timestep) with ``value``.
    """
    import seaborn as sns

    plt = _pyplot()
    figure, ax = plt.subplots(figsize=(6.4, 4.0))
    methods = sorted(set(evaluations["method"]))
    sns.lineplot(
        data=evaluations,
        x="timestep",
        y="value",
        hue="method",
        hue_order=methods,
        palette={m: colors[m] for m in methods},
        estimator="mean",
        errorbar=("ci", 95),
        n_boot=n_boot,
        seed=seed,
        marker="o",
        ax=ax,
    )
    ax.set_title(env)
    ax.set_xlabel("env steps")
    ax.set_ylabel("normalised return" if normalised else "evaluation return")
    ax.grid(True, alpha=0.3)
    ax.legend(title=None, fontsize="small")
    return figure


def interval_figure(
    intervals: Intervals, metric_names: tuple[str, ...], colors: dict[str, Any]
) -> Any:
    """rliable's interval-estimate plot of the aggregate metrics."""
    from rliable import plot_utils

    _pyplot()
    methods = list(intervals.points)
    figure, _ = plot_utils.plot_interval_estimates(
        intervals.points,
        intervals.intervals,
        metric_names=list(metric_names),
        algorithms=methods,
        colors={m: colors[m] for m in methods},
        xlabel="Normalised score",
        row_height=0.5,
        subfigure_width=3.4,
        xlabel_y_coordinate=-0.35 if len(methods) <= 3 else -0.1,
    )
    return figure


def probability_of_improvement_figure(intervals: Intervals) -> Any:
    """rliable's probability-of-improvement plot, one bar per pair."""
    from rliable import plot_utils

    plt = _pyplot()
    pairs = list(intervals.points)
    figure, ax = plt.subplots(figsize=(4.5, max(1.6, 0.5 * len(pairs) + 0.8)))
    plot_utils.plot_probability_of_improvement(
        {k: float(np.asarray(v).reshape(-1)[0]) for k, v in intervals.points.items()},
        {k: np.asarray(v).reshape(2, -1)[:, 0] for k, v in intervals.intervals.items()},
        pair_separator=intervals.pair_separator,
        ax=ax,
        xticks=[0.0, 0.25, 0.5, 0.75, 1.0],
    )
    ax.set_xlim(0.0, 1.0)
    return figure


def performance_profile_figure(
    profiles: Intervals, taus: np.ndarray, colors: dict[str, Any]
) -> Any:
    """rliable's performance profile: fraction of runs with normalised score above tau."""
    from rliable import plot_utils

    plt = _pyplot()
    figure, ax = plt.subplots(figsize=(6.4, 4.0))
    plot_utils.plot_performance_profiles(
        profiles.points,
        taus,
        performance_profile_cis=profiles.intervals,
        colors={m: colors[m] for m in profiles.points},
        xlabel="Normalised score (τ)",
        ax=ax,
        labelsize="large",
        ticklabelsize="medium",
    )
    ax.legend(loc="upper right", fontsize="small")
    return figure


def sample_efficiency_figure(
    curve: Intervals, x: np.ndarray, xlabel: str, colors: dict[str, Any]
) -> Any:
    """rliable's sample-efficiency curve: IQM of normalised returns over training, with CIs."""
    from rliable import plot_utils

    plt = _pyplot()
    figure, ax = plt.subplots(figsize=(6.4, 4.0))
    plot_utils.plot_sample_efficiency_curve(
        x,
        curve.points,
        curve.intervals,
        algorithms=list(curve.points),
        colors={m: colors[m] for m in curve.points},
        xlabel=xlabel,
        ylabel="IQM normalised score",
        ax=ax,
        labelsize="large",
        ticklabelsize="medium",
    )
    ax.legend(loc="best", fontsize="small")
    return figure
