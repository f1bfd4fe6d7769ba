"""From loaded results to scores: final scores, normalisation, incomplete cells, score matrices.

Issue 5, points 2 and 7:

- a run's **final score** is the mean evaluation return over its last K evaluations (K = 1 by
  default; every evaluation's return is the mean over its test episodes);
- an env's scores are **normalised** by its reference scores, ``(score - random) / (reference -
  random)``, when the reference file has both and the run used the registered env unchanged (no
  env kwargs, wrappers or episode-length override); other envs keep raw scores and a warning;
- only **finished** runs have scores; running, interrupted, failed and pending runs are listed as
  excluded, and (algo, env, seed) cells of a suite's grid without a run folder are listed as
  missing;
- rliable's score matrices need as many runs on every task: every (algo, env) is **truncated to
  the common minimum** number of finished seeds (its lowest seed numbers), which the report
  states;
- evaluation episodes with a **non-finite return** (NaN, ±inf) are left out of every score and
  curve, counted and named in a warning (issue 16): one diverged episode must not blank its
  algorithm × env row without a word; **damaged** cells (unreadable files, see the loader) are
  excluded like unfinished ones, with their reason.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from maxbench.report.reference import ReferenceScore, ReferenceTable
from maxbench.results.layout import DAMAGED, FINISHED

if TYPE_CHECKING:
    import pandas as pd

    from maxbench.results.loader import Results

__all__ = [
    "CurveSet",
    "ScoreMatrices",
    "ScoreSet",
    "compute_scores",
    "curve_matrices",
    "score_matrices",
]


@dataclass(frozen=True)
class ScoreSet:
    """Final scores of the finished runs and everything that was left out, with reasons.

    Attributes:
        final: One row per finished run: suite, algo, method (the label in tables and plots),
            env, env_id, seed, score (raw), normalised (NaN when the env is not normalised),
            evaluations (how many were averaged), last_timestep.
        excluded: Runs with a folder but not finished: method, env, seed, status, error, folder.
        missing: Cells of a suite's grid (its algos × envs × seeds) with no run folder at all.
        references: env -> its reference scores, for the envs that are normalised.
        raw_envs: env -> why it is not normalised.
        last_k: K, the number of last evaluations averaged into a final score.
        warnings: Lines for the report and the console (plain text).
        non_finite: The finished runs' evaluation episodes with a NaN or infinite return, left
            out of every score: method, env, seed, timestep, return.
    """

    final: pd.DataFrame
    excluded: pd.DataFrame
    missing: pd.DataFrame
    references: dict[str, ReferenceScore]
    raw_envs: dict[str, str]
    last_k: int
    warnings: list[str] = field(default_factory=list)
    non_finite: pd.DataFrame | None = None

    @property
    def non_finite_count(self) -> int:
        """How many evaluation episodes were left out for a non-finite return."""
        return 0 if self.non_finite is None else len(self.non_finite)

    @property
    def normalised_envs(self) -> list[str]:
        """Envs whose scores are normalised, sorted."""
        return sorted(self.references)


def method_labels(runs: pd.DataFrame) -> pd.Series:
    """The name of each run's method: its algo key, prefixed by its suite when there are several.

    Two suites may use the same algo key with different hyperparameters, so they are kept apart.
    """
    if runs["suite"].nunique() > 1:
        return runs["suite"].astype(str) + "/" + runs["algo"].astype(str)
    return runs["algo"].astype(str)


def _reference_for(
    env: str, rows: pd.DataFrame, references: ReferenceTable
) -> tuple[ReferenceScore | None, str]:
    """The env's reference scores and, when there are none to use, why.

    Only runs whose run.json has a spec count: a pending, damaged or early-failed run says
    nothing about the env it would have used.
    """
    rows = rows[rows["env_id"].notna()]
    env_ids = sorted({str(v) for v in rows["env_id"]})
    if not env_ids:
        return None, f"no run of '{env}' records its env id (no run.json with a spec)"
    if len(env_ids) != 1:
        return None, f"runs of '{env}' use different env ids ({', '.join(env_ids)})"
    changed = rows[
        (rows["env_kwargs"].fillna("{}") != "{}")
        | (rows["wrappers"].fillna("[]") != "[]")
        | rows["max_episode_steps"].notna()
    ]
    if len(changed):
        return None, (
            f"'{env}' changes the registered env (kwargs, wrappers or episode length), so "
            "reference scores of the registered env do not apply"
        )
    reference = references.get(env_ids[0])
    if reference is None:
        return None, f"no reference scores for {env_ids[0]} in {references.path.name}"
    if reference.random is None:
        return None, (
            f"no random score for {env_ids[0]} (measure it with 'maxbench reference random "
            f"{env_ids[0]} --episodes 100')"
        )
    if reference.reference is None:
        return None, f"no reference score for {env_ids[0]} ({reference.note or 'none known'})"
    if not reference.normalisable:
        return None, f"random and reference scores of {env_ids[0]} coincide"
    return reference, ""


def compute_scores(results: Results, references: ReferenceTable, last_k: int = 1) -> ScoreSet:
    """Final scores of every finished run, normalised where possible; list what is left out."""
    import pandas as pd

    if last_k < 1:
        raise ValueError(f"last_k must be at least 1 (got {last_k})")
    runs = results.runs.copy()
    runs["method"] = method_labels(runs)
    evaluations = results.evaluations(finite_only=True)
    evaluations = evaluations.merge(
        runs[["suite", "algo", "env", "seed", "method"]], on=["suite", "algo", "env", "seed"]
    )
    finished = runs[runs["status"] == FINISHED]
    warnings: list[str] = [
        f"{run.method}/{run.env}/seed_{run.seed} is damaged and left out: {run.error}"
        for run in runs[runs["status"] == DAMAGED].itertuples(index=False)
    ]
    non_finite = _non_finite(results, runs)
    if len(non_finite):
        warnings.append(_non_finite_warning(non_finite))
    warnings.extend(_budget_warnings(finished))

    rows = []
    for run in finished.itertuples(index=False):
        mine = evaluations[
            (evaluations["suite"] == run.suite)
            & (evaluations["algo"] == run.algo)
            & (evaluations["env"] == run.env)
            & (evaluations["seed"] == run.seed)
        ].sort_values("timestep")
        name = f"{run.method}/{run.env}/seed_{run.seed}"
        if mine.empty:
            warnings.append(f"{name} is finished but has no evaluation with a finite return")
            continue
        used = mine.tail(last_k)
        if len(used) < last_k:
            warnings.append(
                f"{name} has {len(used)} evaluations (< K = {last_k}); its score averages all "
                "of them"
            )
        score = float(np.mean(used["mean_return"].to_numpy(dtype=np.float64)))
        if not math.isfinite(score):
            warnings.append(f"{name}: its final score overflows ({score}); it is left out")
            continue
        rows.append(
            {
                "suite": run.suite,
                "algo": run.algo,
                "method": run.method,
                "env": run.env,
                "env_id": run.env_id,
                "seed": int(run.seed),
                "score": score,
                "evaluations": len(used),
                "last_timestep": int(used["timestep"].iloc[-1]),
            }
        )
    final = pd.DataFrame(
        rows,
        columns=[
            "suite",
            "algo",
            "method",
            "env",
            "env_id",
            "seed",
            "score",
            "evaluations",
            "last_timestep",
        ],
    )

    used_references: dict[str, ReferenceScore] = {}
    raw_envs: dict[str, str] = {}
    for env in sorted(set(runs["env"])):
        reference, reason = _reference_for(env, runs[runs["env"] == env], references)
        if reference is None:
            raw_envs[env] = reason
            warnings.append(f"{env} is not normalised: {reason}; it has raw per-env tables only")
        else:
            used_references[env] = reference
    final["normalised"] = [
        float(used_references[e].normalise(s)) if e in used_references else float("nan")
        for e, s in zip(final["env"], final["score"], strict=True)
    ]
    final = final.sort_values(["method", "env", "seed"], kind="stable").reset_index(drop=True)

    excluded = runs[runs["status"] != FINISHED][
        ["method", "env", "seed", "status", "evaluations", "last_timestep", "error", "folder"]
    ].reset_index(drop=True)

    missing_rows = []
    for suite, suite_runs in runs.groupby("suite", sort=True):
        present = set(zip(suite_runs["algo"], suite_runs["env"], suite_runs["seed"], strict=True))
        for algo, env, seed in itertools.product(
            sorted(set(suite_runs["algo"])),
            sorted(set(suite_runs["env"])),
            sorted(set(suite_runs["seed"])),
        ):
            if (algo, env, seed) not in present:
                method = f"{suite}/{algo}" if runs["suite"].nunique() > 1 else algo
                missing_rows.append({"method": method, "env": env, "seed": int(seed)})
    missing = pd.DataFrame(missing_rows, columns=["method", "env", "seed"])
    return ScoreSet(
        final=final,
        excluded=excluded,
        missing=missing,
        references=used_references,
        raw_envs=raw_envs,
        last_k=last_k,
        warnings=warnings,
        non_finite=non_finite,
    )


def _non_finite(results: Results, runs: pd.DataFrame) -> pd.DataFrame:
    """The finished runs' episodes with a NaN or infinite return: method, env, seed, step."""
    episodes = results.non_finite_episodes()
    episodes = episodes[episodes["status"] == FINISHED].merge(
        runs[["suite", "algo", "env", "seed", "method"]], on=["suite", "algo", "env", "seed"]
    )
    columns = ["method", "env", "seed", "timestep", "return"]
    return episodes.sort_values(["method", "env", "seed", "timestep"], kind="stable")[
        columns
    ].reset_index(drop=True)


def _non_finite_warning(non_finite: pd.DataFrame, shown: int = 10) -> str:
    """One line: how many episodes were left out, and at which evaluations (the first few)."""
    places = [
        f"{method}/{env}/seed_{seed} at {timestep}" + (f" ({len(group)})" if len(group) > 1 else "")
        for (method, env, seed, timestep), group in non_finite.groupby(
            ["method", "env", "seed", "timestep"], sort=True
        )
    ]
    more = f" and {len(places) - shown} more evaluation(s)" if len(places) > shown else ""
    return (
        f"{len(non_finite)} evaluation episode(s) with a non-finite return (NaN or infinite) "
        f"were excluded from every score and curve (an evaluation's return is the mean of its "
        f"other episodes): {', '.join(places[:shown])}{more}"
    )


def _budget_warnings(finished: pd.DataFrame) -> list[str]:
    """Envs whose finished runs were trained for different budgets (a suite edited mid-way)."""
    warnings = []
    for env, group in finished.groupby("env", sort=True):
        budgets = sorted({int(b) for b in group["budget"].dropna()})
        if len(budgets) > 1:
            warnings.append(
                f"the finished runs of {env} have different budgets "
                f"({', '.join(f'{b:,}' for b in budgets)} steps): their scores are compared "
                "as they are"
            )
    return warnings


@dataclass(frozen=True)
class ScoreMatrices:
    """rliable's input: per method, a (runs × tasks) matrix of normalised final scores.

    Attributes:
        matrices: method -> array of shape (runs, tasks); the same runs for every method.
        tasks: The env of each column.
        runs: The common number of runs (seeds) per task after truncation.
        seeds: (method, env) -> the seeds used, lowest first.
        truncated: (method, env) -> how many finished seeds it had before truncation, for the
            cells that had more than ``runs``.
        left_out: method -> why it is not in the aggregates.
    """

    matrices: dict[str, np.ndarray]
    tasks: list[str]
    runs: int
    seeds: dict[tuple[str, str], list[int]]
    truncated: dict[tuple[str, str], int]
    left_out: dict[str, str]


def score_matrices(scores: ScoreSet) -> ScoreMatrices:
    """Normalised final scores as rliable's (runs × tasks) matrices, truncated to a common n.

    Tasks are the normalised envs. A method without a finished run on one of them is left out of
    the aggregates (and said so). Every (method, task) keeps its ``n`` lowest finished seeds,
    where ``n`` is the smallest count of finished seeds over the aggregated (method, task) cells.
    """
    tasks = scores.normalised_envs
    final = scores.final[scores.final["env"].isin(tasks)]
    methods = sorted(set(scores.final["method"]))
    left_out: dict[str, str] = {}
    counts: dict[tuple[str, str], list[int]] = {}
    for method in methods:
        lacking = [
            env for env in tasks if final[(final["method"] == method) & (final["env"] == env)].empty
        ]
        if not tasks:
            left_out[method] = "no normalised env"
        elif lacking:
            left_out[method] = f"no finished run on {', '.join(lacking)}"
        else:
            for env in tasks:
                mine = final[(final["method"] == method) & (final["env"] == env)]
                counts[(method, env)] = sorted(int(s) for s in mine["seed"])
    kept = [m for m in methods if m not in left_out]
    runs = min((len(s) for s in counts.values()), default=0)
    matrices: dict[str, np.ndarray] = {}
    seeds: dict[tuple[str, str], list[int]] = {}
    truncated: dict[tuple[str, str], int] = {}
    for method in kept:
        columns = []
        for env in tasks:
            chosen = counts[(method, env)][:runs]
            seeds[(method, env)] = chosen
            if len(counts[(method, env)]) > runs:
                truncated[(method, env)] = len(counts[(method, env)])
            mine = final[(final["method"] == method) & (final["env"] == env)].set_index("seed")
            columns.append(mine.loc[chosen, "normalised"].to_numpy(dtype=np.float64))
        matrices[method] = np.stack(columns, axis=1)
    return ScoreMatrices(
        matrices=matrices,
        tasks=tasks,
        runs=runs,
        seeds=seeds,
        truncated=truncated,
        left_out=left_out,
    )


def _grid_of(rows: pd.DataFrame, steps: pd.Series) -> tuple[int, int]:
    """An env's budget and number of grid points, from its finished runs' specs.

    Runs without a recorded budget or evaluation interval (a run.json without a spec) fall back
    on their evaluations: the last evaluated step and the number of evaluations; and there are
    never more points than distinct evaluated steps.
    """
    budgets = rows["budget"].dropna()
    budget = int(budgets.max()) if len(budgets) else int(steps.max()) if len(steps) else 1
    budget = max(budget, 1)
    evaluated = max(1, int(steps.nunique()))  # never more points than evaluations
    everies = rows["eval_every"].dropna()
    if len(everies) and int(everies.min()) > 0:
        return budget, max(1, min(budget // int(everies.min()), evaluated))
    return budget, evaluated


@dataclass(frozen=True)
class CurveSet:
    """Normalised evaluation returns on a common grid: per method (runs × tasks × points).

    Attributes:
        curves: method -> array of shape (runs, tasks, points).
        fractions: The grid as fractions of each task's budget, shape (points,).
        timesteps: The grid in env steps when every task has the same budget, else None.
    """

    curves: dict[str, np.ndarray]
    fractions: np.ndarray
    timesteps: np.ndarray | None


def curve_matrices(results: Results, scores: ScoreSet, matrices: ScoreMatrices) -> CurveSet:
    """The runs of the score matrices, their normalised returns over training, on one grid.

    Algorithms evaluate at different timesteps (PPO at multiples of its rollout, 1024 instead of
    1000), and tasks may have different budgets; so the grid is fractions ``i / G`` of each
    task's budget (``G`` = the fewest evaluations per budget among the tasks, from the suite's
    ``eval_every``), and a run's value at a grid point is the evaluation nearest to
    ``fraction × budget`` (the earlier one on a tie).
    """
    runs_table = results.runs.copy()
    runs_table["method"] = method_labels(runs_table)
    evaluations = results.evaluations(finite_only=True).merge(
        runs_table[["suite", "algo", "env", "seed", "method"]],
        on=["suite", "algo", "env", "seed"],
    )
    budgets: dict[str, int] = {}
    points = None
    for env in matrices.tasks:
        rows = runs_table[(runs_table["env"] == env) & (runs_table["status"] == FINISHED)]
        steps = evaluations[evaluations["env"] == env]["timestep"]
        budget, count = _grid_of(rows, steps)
        budgets[env] = budget
        points = count if points is None else min(points, count)
    points = points or 1
    fractions = np.arange(1, points + 1, dtype=np.float64) / points
    curves: dict[str, np.ndarray] = {}
    for method, matrix in matrices.matrices.items():
        array = np.empty((matrix.shape[0], len(matrices.tasks), points))
        for column, env in enumerate(matrices.tasks):
            reference = scores.references[env]
            for row, seed in enumerate(matrices.seeds[(method, env)]):
                mine = evaluations[
                    (evaluations["method"] == method)
                    & (evaluations["env"] == env)
                    & (evaluations["seed"] == seed)
                ].sort_values("timestep")
                steps = mine["timestep"].to_numpy(dtype=np.float64)
                values = mine["mean_return"].to_numpy(dtype=np.float64)
                for index, fraction in enumerate(fractions):
                    nearest = int(np.argmin(np.abs(steps - fraction * budgets[env])))
                    array[row, column, index] = reference.normalise(values[nearest])
        curves[method] = array
    same_budget = len(set(budgets.values())) == 1
    timesteps = fractions * next(iter(budgets.values())) if same_budget and budgets else None
    return CurveSet(curves=curves, fractions=fractions, timesteps=timesteps)
