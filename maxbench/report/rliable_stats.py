"""Aggregate statistics with rliable's own functions, reproducibly (issue 5, point 3).

Nothing here re-implements a statistic: point estimates and stratified-bootstrap confidence
intervals come from ``rliable.library`` and ``rliable.metrics`` (Agarwal et al., 2021, "Deep RL
at the edge of the statistical precipice").

Reproducibility: rliable's bootstraps draw their indices from numpy's *global* generator
(``np.random.choice`` in ``StratifiedBootstrap.update_indices``), whatever ``random_state`` says.
So every rliable call here runs inside :func:`seeded_global_numpy`, which seeds the global
generator with the report's seed and restores its previous state afterwards. Each method (and
each pair of methods) gets its own call with the same seed, so a method's intervals do not depend
on which other methods are in the report, and a direct call

    np.random.seed(seed)
    rly.get_interval_estimates({method: matrix}, aggregate_metrics, reps=reps)

gives the same numbers.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "DEFAULT_REPS",
    "DEFAULT_SEED",
    "METRIC_NAMES",
    "Intervals",
    "aggregate_metrics",
    "improvement_pairs",
    "interval_estimates",
    "iqm_curve",
    "performance_profiles",
    "probability_of_improvement",
    "sample_efficiency",
    "seeded_global_numpy",
]

#: Bootstrap repetitions by default (DESIGN.md: at least 2 000).
DEFAULT_REPS = 2000
#: The bootstrap's seed by default.
DEFAULT_SEED = 0
#: The aggregate metrics, in the order of :func:`aggregate_metrics`.
METRIC_NAMES: tuple[str, ...] = ("Median", "IQM", "Mean", "Optimality Gap")


@contextlib.contextmanager
def seeded_global_numpy(seed: int) -> Iterator[None]:
    """Seed numpy's global generator for the block; restore its previous state afterwards."""
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(state)


def aggregate_metrics(scores: np.ndarray) -> np.ndarray:
    """rliable's median, IQM, mean and optimality gap (threshold 1) of a (runs × tasks) matrix."""
    from rliable import metrics

    return np.array(
        [
            metrics.aggregate_median(scores),
            metrics.aggregate_iqm(scores),
            metrics.aggregate_mean(scores),
            metrics.aggregate_optimality_gap(scores),
        ]
    )


@dataclass(frozen=True)
class Intervals:
    """Point estimates and 95% stratified-bootstrap intervals per key.

    ``points[key]`` has shape (k,), ``intervals[key]`` shape (2, k): lower and upper bounds.
    For a probability of improvement, ``pairs[key]`` is the pair (X, Y) and the key is
    ``X<pair_separator>Y`` (rliable's plotting splits it there): ``","`` unless a name holds
    one, since a name comes from a results folder and may hold any character.
    """

    points: dict[str, np.ndarray]
    intervals: dict[str, np.ndarray]
    pairs: dict[str, tuple[str, str]] = field(default_factory=dict)
    pair_separator: str = ","


def interval_estimates(matrices: dict[str, np.ndarray], reps: int, seed: int) -> Intervals:
    """Median, IQM, mean, optimality gap and their 95% CIs for each method (rliable)."""
    from rliable import library as rly

    points: dict[str, np.ndarray] = {}
    intervals: dict[str, np.ndarray] = {}
    for method, matrix in matrices.items():
        with seeded_global_numpy(seed):
            point, interval = rly.get_interval_estimates(
                {method: matrix}, aggregate_metrics, reps=reps
            )
        points[method], intervals[method] = point[method], interval[method]
    return Intervals(points=points, intervals=intervals)


def improvement_pairs(methods: list[str], versus: str | None = None) -> list[tuple[str, str]]:
    """The (X, Y) pairs for P(X > Y): every unordered pair, or every X against ``versus``."""
    if versus is not None:
        return [(method, versus) for method in methods if method != versus]
    return list(itertools.combinations(methods, 2))


def probability_of_improvement(
    matrices: dict[str, np.ndarray], pairs: list[tuple[str, str]], reps: int, seed: int
) -> Intervals:
    """P(X > Y) averaged over tasks with stratified independent bootstrap CIs (rliable).

    Keys are ``"X,Y"`` (rliable's ``plot_probability_of_improvement`` convention), with
    another separator when a method's name holds a comma (:attr:`Intervals.pair_separator`).
    """
    from rliable import library as rly
    from rliable import metrics

    names = {name for pair in pairs for name in pair}
    separator = next(s for s in _SEPARATORS if not any(s in name for name in names))
    points: dict[str, np.ndarray] = {}
    intervals: dict[str, np.ndarray] = {}
    keyed: dict[str, tuple[str, str]] = {}
    for x, y in pairs:
        key = f"{x}{separator}{y}"
        keyed[key] = (x, y)
        with seeded_global_numpy(seed):
            point, interval = rly.get_interval_estimates(
                {key: [matrices[x], matrices[y]]}, metrics.probability_of_improvement, reps=reps
            )
        points[key], intervals[key] = np.atleast_1d(point[key]), np.asarray(interval[key])
    return Intervals(points=points, intervals=intervals, pairs=keyed, pair_separator=separator)


# Pair-key separators, the first one that no method name holds; the last is a character that a
# name cannot hold (a NUL cannot be in a folder name).
_SEPARATORS = (",", ";", "|", "\x1f", "\x00")


def performance_profiles(
    matrices: dict[str, np.ndarray], taus: np.ndarray, reps: int, seed: int
) -> Intervals:
    """Score distributions (fraction of runs above tau) with bootstrap CIs (rliable)."""
    from rliable import library as rly

    points: dict[str, np.ndarray] = {}
    intervals: dict[str, np.ndarray] = {}
    for method, matrix in matrices.items():
        with seeded_global_numpy(seed):
            profile, cis = rly.create_performance_profile({method: matrix}, taus, reps=reps)
        points[method], intervals[method] = profile[method], cis[method]
    return Intervals(points=points, intervals=intervals)


def iqm_curve(scores: np.ndarray) -> np.ndarray:
    """rliable's IQM at every grid point of a (runs × tasks × points) array."""
    from rliable import metrics

    return np.array([metrics.aggregate_iqm(scores[..., i]) for i in range(scores.shape[-1])])


def sample_efficiency(curves: dict[str, np.ndarray], reps: int, seed: int) -> Intervals:
    """IQM over training with bootstrap CIs, per method (rliable, as in its Atari 100k example)."""
    from rliable import library as rly

    points: dict[str, np.ndarray] = {}
    intervals: dict[str, np.ndarray] = {}
    for method, array in curves.items():
        with seeded_global_numpy(seed):
            point, interval = rly.get_interval_estimates({method: array}, iqm_curve, reps=reps)
        points[method], intervals[method] = point[method], interval[method]
    return Intervals(points=points, intervals=intervals)
