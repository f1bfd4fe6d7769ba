"""Measurements of the claims ledger: from the files of a results folder to an :class:`Estimate`.

Each measurement kind reads only what ``maxbench claims run`` leaves in the results folder and
the ledger commits (issue 15, point 5): the cells' ``run.json`` and ``evals.csv``, each
multi-goal cell's ``test_episodes.json``, ``entropy/entropy.json`` and ``latency/latency.json``.
No model is loaded, so a committed ledger is recomputed from text files alone.

Kinds (the ``measure`` of a claim's test in ``suites/claims/claims.yaml``):

* ``entropy_error`` {sweep, error}: relative error (estimate − truth) / |truth| (or with
  ``error: absolute``, estimate − truth in nats) of the closed-form SVGD entropy (S2AC §3.3),
  averaged over the sweep's settings, one value per seed; mean and rliable interval;
* ``entropy_rank`` {sweep}: Spearman's correlation between truth and estimate over a sweep's
  settings, one per seed, mean and rliable interval;
* ``goal_coverage`` {agents, env, statistic}: distinct goals reached over an agent's test
  episodes on ``env`` (S2AC Fig. 7), one value per seed; ``worst``/``best``: the smallest /
  largest of the agents' means, seeded stratified bootstrap;
* ``alpha_trend`` {quantity, agents, env}: Spearman's correlation between the agents' entropy
  weights and, per seed, ``left_share`` (share of goal-reaching episodes that end at a left goal,
  x < 0: S2AC Fig. 12) or ``success`` (share of episodes reaching a goal: Fig. 16);
* ``improvement`` {x, y, env}: rliable's probability that a run of ``x`` has a higher final
  return (the last evaluation's mean) than a run of ``y``, on ``env`` or averaged over every env
  of the suite (``"*"``);
* ``latency_ratio`` {algo, baseline}: per timing block, ``algo``'s median predict time over the
  baseline's in the same block; mean and rliable interval over blocks.
"""

from __future__ import annotations

import fnmatch
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from maxbench.repro.claims import statistics as st
from maxbench.repro.claims.rules import Estimate, Missing

__all__ = [
    "ENTROPY_FILE",
    "LATENCY_FILE",
    "MEASURES",
    "CellRecord",
    "MeasureContext",
    "check_measure",
    "measure",
]

ENTROPY_FILE = Path("entropy") / "entropy.json"
LATENCY_FILE = Path("latency") / "latency.json"
_SEED_FOLDER = re.compile(r"seed_\d+\Z")


@dataclass(frozen=True)
class CellRecord:
    """A finished cell of a suite's results: its algorithm key, env, seed, files."""

    algo: str
    env_id: str
    seed: int
    folder: Path
    final_return: float
    steps_per_s: float | None


@dataclass
class MeasureContext:
    """Where a scale's results are, and what was found wrong while reading them."""

    root: Path
    warnings: list[str] = field(default_factory=list)
    _cells: dict[Path, list[CellRecord]] = field(default_factory=dict)

    def suite_cells(self, suite_folder: Path) -> list[CellRecord]:
        """The finished cells under ``suite_folder`` (read once; damaged ones warned about)."""
        if suite_folder not in self._cells:
            self._cells[suite_folder] = _read_suite(suite_folder, self.warnings)
        return self._cells[suite_folder]


def _read_suite(suite_folder: Path, warnings: list[str]) -> list[CellRecord]:
    from maxbench.results.layout import FINISHED, read_cell

    records = []
    if not suite_folder.is_dir():
        return records
    for folder in sorted(suite_folder.glob("*/*/seed_*")):
        if not _SEED_FOLDER.match(folder.name) or not folder.is_dir():
            continue
        cell = read_cell(folder)
        if cell.damage is not None:
            warnings.append(f"{folder}: damaged ({cell.damage}); left out")
            continue
        spec = cell.spec
        if cell.status != FINISHED or spec is None or not cell.evals:
            continue
        timings = (cell.run or {}).get("timings") or {}
        records.append(
            CellRecord(
                algo=str(spec["algo"]),
                env_id=str(spec["env_id"]),
                seed=int(spec["seed"]),
                folder=folder,
                final_return=cell.evals[-1].mean_return,
                steps_per_s=timings.get("env_steps_per_s"),
            )
        )
    records.sort(key=lambda r: (r.algo, r.env_id, r.seed))  # seed_2 before seed_10
    return records


# -- the measures --------------------------------------------------------------------------------
Measure = Callable[[MeasureContext, Path | None, dict[str, Any]], Estimate | Missing]


def _entropy_rows(context: MeasureContext, sweep: str) -> dict[int, list[dict]] | Missing:
    from maxbench.results.atomic import read_json

    path = context.root / ENTROPY_FILE
    if not path.is_file():
        return Missing(f"{ENTROPY_FILE} not found: the entropy experiment has not run")
    try:
        data = read_json(path)
        by_seed: dict[int, list[dict]] = {}
        for row in data["rows"]:
            if row["sweep"] == sweep:
                truth, estimate = float(row["truth"]), float(row["estimate"])
                by_seed.setdefault(int(row["seed"]), []).append(
                    {"truth": truth, "estimate": estimate}
                )
    except (OSError, ValueError, KeyError, TypeError) as err:
        context.warnings.append(f"{path}: damaged ({type(err).__name__}: {err}); left out")
        return Missing(f"{ENTROPY_FILE} is damaged")
    if not by_seed:
        return Missing(f"{ENTROPY_FILE} has no {sweep!r} rows")
    return by_seed


def entropy_error(context: MeasureContext, _suite: Path | None, spec: dict) -> Estimate | Missing:
    """Mean relative (or ``error: absolute``: in nats) error of the estimate over seeds."""
    rows = _entropy_rows(context, spec["sweep"])
    if isinstance(rows, Missing):
        return rows
    relative = spec.get("error", "relative") == "relative"
    errors = [
        float(
            np.mean(
                [
                    (r["estimate"] - r["truth"]) / (abs(r["truth"]) if relative else 1.0)
                    for r in seed_rows
                ]
            )
        )
        for _, seed_rows in sorted(rows.items())
    ]
    return st.mean_interval(errors)


def entropy_rank(context: MeasureContext, _suite: Path | None, spec: dict) -> Estimate | Missing:
    """Mean over seeds of Spearman(truth, estimate) across a sweep's settings."""
    from scipy.stats import spearmanr

    rows = _entropy_rows(context, spec["sweep"])
    if isinstance(rows, Missing):
        return rows
    values = []
    for _, seed_rows in sorted(rows.items()):
        if len(seed_rows) < 3:
            return Missing(f"the {spec['sweep']!r} sweep has fewer than 3 settings")
        truth = [r["truth"] for r in seed_rows]
        estimate = [r["estimate"] for r in seed_rows]
        values.append(float(spearmanr(truth, estimate).statistic))
    return st.mean_interval(values)


def _episode_groups(
    context: MeasureContext, suite: Path | None, spec: dict, quantity: Callable[[Any], float]
) -> dict[float, list[float]] | Missing | Estimate:
    """Per agent key (e.g. alpha), ``quantity`` of each seed's test episodes on ``env``.

    An agent without any tested run makes the measure :class:`Missing` (not run yet); an agent
    whose runs were tested but give no finite value (no episode reached a goal, for a share
    among goal-reaching episodes) makes it a non-finite :class:`Estimate` (inconclusive).
    """
    from maxbench.repro.claims.test_episodes import EPISODES_FILE, read_test_episodes

    if suite is None:
        return Missing("not run at this scale")
    cells = context.suite_cells(suite)
    groups: dict[float, list[float]] = {}
    untested, undefined = [], []
    for agent, key in spec["agents"].items():
        values, tested = [], 0
        for cell in cells:
            if cell.algo != agent:
                continue
            if not (cell.folder / EPISODES_FILE).exists():
                continue  # finished, its test episodes not recorded yet: not tested
            try:
                episodes = read_test_episodes(cell.folder)
            except ValueError as err:
                context.warnings.append(f"{cell.folder}: {err}; left out")
                continue
            group = episodes.envs.get(spec["env"])
            if group is None:
                context.warnings.append(f"{cell.folder}: no test episodes on {spec['env']}")
                continue
            tested += 1
            value = quantity(group)
            if math.isfinite(value):
                values.append(value)
        groups[float(key)] = values
        if not tested:
            untested.append(agent)
        elif not values:
            undefined.append(agent)
    if untested:
        return Missing(f"no tested runs of {', '.join(untested)} yet")
    if undefined:
        nan = float("nan")
        n = min(len(v) for v in groups.values())
        return Estimate(nan, nan, nan, n, f"undefined for {', '.join(undefined)}")
    return groups


def goal_coverage(context: MeasureContext, suite: Path | None, spec: dict) -> Estimate | Missing:
    """Distinct goals reached per seed; the worst (or best) agent's mean, bootstrapped."""
    groups = _episode_groups(context, suite, spec, lambda g: float(g.distinct_goals))
    if isinstance(groups, (Missing, Estimate)):
        return groups
    if spec.get("statistic", "worst") == "worst":
        return st.stratified_bootstrap(groups, st.min_group_mean)
    return st.stratified_bootstrap(groups, lambda data: -st.min_group_mean(_negated(data)))


def _negated(groups: dict[float, np.ndarray]) -> dict[float, np.ndarray]:
    return {key: -values for key, values in groups.items()}


def _left_share(group: Any) -> float:
    """Share of goal-reaching episodes whose goal lies left of the start (x < 0): G2, G3."""
    reached = [e for e in group.episodes if e.goal >= 0]
    if not reached:
        return float("nan")
    return sum(group.goals[e.goal][0] < 0 for e in reached) / len(reached)


def alpha_trend(context: MeasureContext, suite: Path | None, spec: dict) -> Estimate | Missing:
    """Spearman(alpha, per-seed quantity), seeded stratified bootstrap over seeds per alpha."""
    quantity = _left_share if spec["quantity"] == "left_share" else (lambda g: g.success_rate)
    groups = _episode_groups(context, suite, spec, quantity)
    if isinstance(groups, (Missing, Estimate)):
        return groups
    return st.stratified_bootstrap(groups, st.spearman)


def improvement(context: MeasureContext, suite: Path | None, spec: dict) -> Estimate | Missing:
    """P(x > y) on final returns (rliable), over one env or every env of the suite."""
    if suite is None:
        return Missing("not run at this scale")
    cells = context.suite_cells(suite)
    envs = sorted({c.env_id for c in cells if fnmatch.fnmatchcase(c.env_id, spec["env"])})
    x_runs, y_runs = [], []
    for env in envs:
        x = [c.final_return for c in cells if c.algo == spec["x"] and c.env_id == env]
        y = [c.final_return for c in cells if c.algo == spec["y"] and c.env_id == env]
        if x and y:
            x_runs.append(x)
            y_runs.append(y)
    if not x_runs:
        return Missing(f"no finished runs of both {spec['x']} and {spec['y']} yet")
    if len(x_runs) == 1:
        return st.improvement_probability(x_runs[0], y_runs[0])
    n = min(min(len(r) for r in x_runs), min(len(r) for r in y_runs))
    x_matrix = np.array([r[:n] for r in x_runs]).T
    y_matrix = np.array([r[:n] for r in y_runs]).T
    return st.improvement_probability_matrix(x_matrix, y_matrix)


def latency_ratio(context: MeasureContext, _suite: Path | None, spec: dict) -> Estimate | Missing:
    """Mean over timing blocks of algo's median predict time / the baseline's."""
    from maxbench.results.atomic import read_json

    path = context.root / LATENCY_FILE
    if not path.is_file():
        return Missing(f"{LATENCY_FILE} not found: the latency experiment has not run")
    try:
        blocks = read_json(path)["algorithms"]
        algo = [float(v) for v in blocks[spec["algo"]]]
        base = [float(v) for v in blocks[spec["baseline"]]]
    except (OSError, ValueError, KeyError, TypeError) as err:
        context.warnings.append(f"{path}: damaged or incomplete ({type(err).__name__}: {err})")
        return Missing(f"{LATENCY_FILE} lacks {spec['algo']} or {spec['baseline']}")
    if len(algo) != len(base) or not algo or min(base) <= 0:
        return Missing(f"{LATENCY_FILE}: blocks of {spec['algo']} and the baseline differ")
    return st.mean_interval([a / b for a, b in zip(algo, base, strict=True)])


MEASURES: dict[str, tuple[Measure, set[str]]] = {
    "entropy_error": (entropy_error, {"sweep", "error"}),
    "entropy_rank": (entropy_rank, {"sweep"}),
    "goal_coverage": (goal_coverage, {"agents", "env", "statistic"}),
    "alpha_trend": (alpha_trend, {"quantity", "agents", "env"}),
    "improvement": (improvement, {"x", "y", "env"}),
    "latency_ratio": (latency_ratio, {"algo", "baseline"}),
}


def check_measure(spec: dict[str, Any]) -> None:
    """Raise ValueError when ``spec`` is not a known measure with exactly its keys."""
    kind = spec.get("kind")
    if not isinstance(kind, str) or kind not in MEASURES:  # a list would not hash
        raise ValueError(f"measure kind {kind!r} is not one of {', '.join(MEASURES)}")
    expected = MEASURES[kind][1]
    given = set(spec) - {"kind"}
    optional = {"statistic", "error"}
    missing = sorted(expected - given - optional)
    unknown = sorted(given - expected)
    if missing or unknown:
        raise ValueError(
            f"measure {kind}: "
            + "; ".join(
                part
                for part in (
                    f"missing {', '.join(missing)}" if missing else "",
                    f"unknown {', '.join(unknown)}" if unknown else "",
                )
                if part
            )
        )
    if "agents" in spec:
        agents = spec["agents"]
        if not isinstance(agents, dict) or not agents:
            raise ValueError("agents must map each algorithm key to its entropy weight")
        for value in agents.values():
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"agents: {value!r} is not a number")
        if len({float(value) for value in agents.values()}) != len(agents):
            raise ValueError("agents: two algorithms share an entropy weight (one group each)")
    if spec.get("error", "relative") not in ("relative", "absolute"):
        raise ValueError("error must be relative or absolute")
    if spec.get("statistic", "worst") not in ("worst", "best"):
        raise ValueError("statistic must be worst or best")
    if spec.get("quantity", "left_share") not in ("left_share", "success"):
        raise ValueError("quantity must be left_share or success")


def measure(
    context: MeasureContext, suite_folder: Path | None, spec: dict[str, Any]
) -> Estimate | Missing:
    """Run the measure ``spec`` on the results of ``context`` (``suite_folder`` for suites)."""
    function, _ = MEASURES[spec["kind"]]
    return function(context, suite_folder, spec)
