"""The ledger's statistics with their 95% intervals, reproducible from a seed.

Means and probabilities of improvement come from rliable (its stratified bootstrap, through
:mod:`maxbench.report.rliable_stats`, which seeds numpy's global generator for the call).
Statistics that rliable does not offer — a rank correlation between an entropy weight and a
per-run quantity, the smallest per-group mean — use :func:`stratified_bootstrap`: runs are
resampled with replacement *within* each group (each entropy weight keeps its number of seeds,
as rliable's stratified bootstrap keeps each task's), the statistic is recomputed on each
resample, and the interval is the 2.5th–97.5th percentile, from ``numpy.random.default_rng(seed)``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np

from maxbench.repro.claims.rules import Estimate

__all__ = [
    "REPS",
    "SEED",
    "improvement_probability",
    "improvement_probability_matrix",
    "mean_interval",
    "min_group_mean",
    "spearman",
    "stratified_bootstrap",
]

#: Bootstrap repetitions and seed of every interval in the ledger.
REPS = 2000
SEED = 0


def mean_interval(values: Sequence[float], reps: int = REPS, seed: int = SEED) -> Estimate:
    """The mean of ``values`` (one per run) and rliable's bootstrap interval of it."""
    from maxbench.report.rliable_stats import seeded_global_numpy

    array = np.asarray(values, dtype=float)
    if array.size == 0:
        return Estimate(float("nan"), float("nan"), float("nan"), 0)
    from rliable import library as rly
    from rliable import metrics

    with seeded_global_numpy(seed):
        point, interval = rly.get_interval_estimates(
            {"x": array.reshape(-1, 1)}, metrics.aggregate_mean, reps=reps
        )
    low, high = np.asarray(interval["x"]).ravel()
    return Estimate(float(point["x"]), float(low), float(high), int(array.size))


def improvement_probability(
    x: Sequence[float], y: Sequence[float], reps: int = REPS, seed: int = SEED
) -> Estimate:
    """P(X > Y) of one run of X against one of Y (ties count half), with rliable's interval."""
    column = np.asarray(x, dtype=float).reshape(-1, 1)
    return improvement_probability_matrix(
        column, np.asarray(y, dtype=float).reshape(-1, 1), reps=reps, seed=seed
    )


def improvement_probability_matrix(
    x: np.ndarray, y: np.ndarray, reps: int = REPS, seed: int = SEED
) -> Estimate:
    """rliable's P(X > Y) averaged over tasks, of (runs x tasks) matrices, and its interval.

    ``n`` is the smaller number of runs of the two.
    """
    from maxbench.report.rliable_stats import probability_of_improvement

    if x.size == 0 or y.size == 0:
        return Estimate(float("nan"), float("nan"), float("nan"), 0)
    found = probability_of_improvement({"x": x, "y": y}, [("x", "y")], reps=reps, seed=seed)
    key = next(iter(found.points))
    low, high = np.asarray(found.intervals[key]).ravel()[:2]
    return Estimate(
        float(found.points[key][0]), float(low), float(high), int(min(x.shape[0], y.shape[0]))
    )


def stratified_bootstrap(
    groups: Mapping[float, Sequence[float]],
    statistic: Callable[[Mapping[float, np.ndarray]], float],
    reps: int = REPS,
    seed: int = SEED,
) -> Estimate:
    """``statistic`` of per-group runs and its percentile interval (see the module docstring).

    ``n`` is the number of runs of the smallest group. Resamples on which the statistic is not
    finite (e.g. a rank correlation of constant values) are dropped; when more than half are,
    the interval is not finite (the rule then says inconclusive).
    """
    data = {key: np.asarray(values, dtype=float) for key, values in groups.items()}
    sizes = [v.size for v in data.values()]
    if not data or min(sizes) == 0:
        return Estimate(float("nan"), float("nan"), float("nan"), 0)
    point = float(statistic(data))
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(reps):
        resample = {k: v[rng.integers(0, v.size, v.size)] for k, v in data.items()}
        draws.append(statistic(resample))
    finite = np.asarray(draws, dtype=float)
    finite = finite[np.isfinite(finite)]
    if finite.size < reps / 2:
        return Estimate(point, float("nan"), float("nan"), min(sizes))
    low, high = np.percentile(finite, [2.5, 97.5])
    return Estimate(point, float(low), float(high), min(sizes))


def spearman(groups: Mapping[float, np.ndarray]) -> float:
    """Spearman's rank correlation between the group key (e.g. alpha) and the runs' values."""
    from scipy.stats import spearmanr

    keys = np.concatenate([np.full(v.size, k, dtype=float) for k, v in groups.items()])
    values = np.concatenate(list(groups.values()))
    if np.unique(keys).size < 2:
        return float("nan")
    if np.unique(values).size < 2:
        return 0.0  # every run alike: no monotone association
    return float(spearmanr(keys, values).statistic)


def min_group_mean(groups: Mapping[float, np.ndarray]) -> float:
    """The smallest of the groups' means (e.g. the worst entropy weight's goal coverage)."""
    return float(min(v.mean() for v in groups.values()))
