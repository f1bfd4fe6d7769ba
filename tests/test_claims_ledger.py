"""The claims ledger on synthetic results folders (issue 15, "Claims as data").

The acceptance test of issue 15: synthetic results for which each kind of decision rule must
return holds, fails and inconclusive. A small catalogue (written here, beside three tiny suites
that are never run) uses every measure kind of ``suites/claims/claims.yaml`` — improvement on
final returns, goal coverage (worst and best), alpha trends (left share and success), entropy
errors (relative and absolute), entropy rank, latency ratio — with rules ``above``, ``below`` and
``within``. Three results folders are written the way maxbench writes them (run.json, evals.csv,
test_episodes.json, entropy/entropy.json, latency/latency.json), each designed so that every
claim holds, fails or is inconclusive; the point estimates are checked against independent
computations. Also: not-run claims and the paper scale's CPU-hours, damaged files, and the
written ledger (the same bytes twice; a self-contained claims.html).
"""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
from itertools import cycle, islice
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from maxbench.repro.claims.catalogue import Catalogue, load_catalogue
from maxbench.repro.claims.ledger import Ledger, judge_catalogue, write_ledger
from maxbench.repro.claims.rules import Missing, Verdict
from maxbench.repro.claims.test_episodes import EPISODES_FILE, FORMAT, _dumps, _env_entry
from maxbench.repro.multigoal import Episode
from maxbench.results.atomic import write_text_atomic
from maxbench.results.layout import EvalRow, write_evals
from maxbench.suite.cells import Cell, expand_suite
from maxbench.suite.loading import load_suite

REAL_CATALOGUE = Path(__file__).resolve().parents[1] / "suites" / "claims" / "claims.yaml"
OUTCOMES = ("holds", "fails", "inconclusive")
ENV = "MultiGoalMaxEnt-v0"
OBSTACLE_ENV = "MultiGoalMaxEntObstacle-v0"
#: MultiGoalMaxEnt-v0's goals: G1 (5, 0) on the right, G2 (-4, 3) and G3 (-4, -3) on the left.
GOALS = [(5.0, 0.0), (-4.0, 3.0), (-4.0, -3.0)]
RIGHT, LEFT = 0, (1, 2)
EPISODES = 4
MG_SEEDS, BOX_SEEDS, ENTROPY_SEEDS, BLOCKS = 3, 5, 10, 10
BOX_ENVS = ("Pendulum-v1", "MountainCarContinuous-v0")

# -- the catalogue and its suites ------------------------------------------------------------------
_EVALUATION = {"every": 500, "episodes": 2}
MG_AGENTS = {
    "coverage-worst": {"cw-a": 0.2, "cw-b": 1},
    "coverage-best": {"cb-a": 0, "cb-b": 1},
    "trend-up": {"up-a0.2": 0.2, "up-a1": 1, "up-a5": 5},
    "trend-flat": {"flat-a0.2": 0.2, "flat-a1": 1, "flat-a5": 5},
}
SUITES: dict[str, dict[str, Any]] = {
    "mg.yaml": {
        "name": "claims-test-mg",
        "algorithms": {a: {"algo": "sac"} for agents in MG_AGENTS.values() for a in agents},
        "environments": [ENV],
        "seeds": MG_SEEDS,
        "budget": 1000,
        "evaluation": _EVALUATION,
    },
    "box.yaml": {
        "name": "claims-test-box",
        "algorithms": {"good": {"algo": "sac"}, "bad": {"algo": "sac"}},
        "environments": list(BOX_ENVS),
        "seeds": BOX_SEEDS,
        "budget": 1000,
        "evaluation": _EVALUATION,
    },
    "paper.yaml": {
        "name": "claims-test-paper",
        "algorithms": {"good": {"algo": "sac"}, "bad": {"algo": "sac"}},
        "environments": [
            {"id": "Pendulum-v1", "budget": 3000},
            {"id": "MountainCarContinuous-v0", "budget": 5000},
        ],
        "seeds": 2,
        "budget": 1000,
        "evaluation": _EVALUATION,
    },
}
EXPERIMENTS: dict[str, Any] = {
    "entropy": {"kind": "entropy", "what": "synthetic entropy check", "seeds": ENTROPY_SEEDS},
    "latency": {
        "kind": "latency",
        "what": "synthetic predict times",
        "algorithms": ["sac", "s2ac", "softgac", "amort"],
        "blocks": BLOCKS,
        "calls": 5,
    },
    "multigoal": {
        "kind": "suite",
        "what": "synthetic multi-goal agents",
        "workstation": "mg.yaml",
        "paper": None,
        "test_episodes": {"episodes": EPISODES, "softmax_agents": []},
        "grid": {
            "agent": "{row}-{column}",
            "rows": {"Up": "up", "Flat": "flat"},
            "columns": {"alpha 0.2": "a0.2", "alpha 1": "a1", "alpha 5": "a5"},
        },
    },
    "box": {
        "kind": "suite",
        "what": "synthetic final returns",
        "workstation": "box.yaml",
        "paper": "box.yaml",
    },
    "paper-only": {
        "kind": "suite",
        "what": "a suite run at the paper's scale only",
        "workstation": None,
        "paper": "paper.yaml",
    },
}


def _claim(
    claim_id: str,
    experiment: str,
    tests: list[tuple[dict[str, Any], dict[str, Any]]],
    min_runs: int,
    figures: list[str] | None = None,
) -> dict[str, Any]:
    return {
        "id": claim_id,
        "paper": "Synthetic",
        "where": "Fig. 0",
        "claim": f"The claim {claim_id}.",
        "experiment": experiment,
        "tests": [
            {"label": f"{claim_id} test {i + 1}", "measure": measure, "rule": rule}
            for i, (measure, rule) in enumerate(tests)
        ],
        "min_runs": min_runs,
        "figures": figures or [],
        "scale": "synthetic",
    }


def _latency(algo: str) -> dict[str, Any]:
    return {"kind": "latency_ratio", "algo": algo, "baseline": "sac"}


def _trend(quantity: str, agents: str, env: str) -> dict[str, Any]:
    return {"kind": "alpha_trend", "quantity": quantity, "agents": MG_AGENTS[agents], "env": env}


def _coverage(agents: str, statistic: str) -> dict[str, Any]:
    return {
        "kind": "goal_coverage",
        "agents": MG_AGENTS[agents],
        "env": ENV,
        "statistic": statistic,
    }


def _improvement(x: str, y: str, env: str) -> dict[str, Any]:
    return {"kind": "improvement", "x": x, "y": y, "env": env}


ABOVE = {"above": 0.5}
CLAIMS = [
    _claim(
        "entropy-relative",
        "entropy",
        [({"kind": "entropy_error", "sweep": "gaussian"}, {"within": [-0.05, 0.05]})],
        10,
        ["entropy"],
    ),
    _claim(
        "entropy-absolute",
        "entropy",
        [
            (
                {"kind": "entropy_error", "sweep": "std", "error": "absolute"},
                {"within": [-0.25, 0.25]},
            )
        ],
        10,
    ),
    _claim(
        "entropy-rank",
        "entropy",
        [({"kind": "entropy_rank", "sweep": "mixture"}, {"above": 0})],
        10,
        ["entropy"],
    ),
    _claim("latency-slow", "latency", [(_latency("s2ac"), {"above": 2})], 10, ["latency"]),
    _claim("latency-fast", "latency", [(_latency("softgac"), {"below": 1.5})], 10),
    _claim("latency-close", "latency", [(_latency("amort"), {"within": [0.5, 2]})], 10),
    _claim(
        "latency-all",
        "latency",
        [
            (_latency("s2ac"), {"above": 2}),
            (_latency("softgac"), {"below": 1.5}),
            (_latency("amort"), {"within": [0.5, 2]}),
        ],
        10,
        ["latency"],
    ),
    _claim(
        "coverage-worst",
        "multigoal",
        [(_coverage("coverage-worst", "worst"), {"above": 2.5})],
        3,
        ["trajectories"],
    ),
    _claim(
        "coverage-worst-within",
        "multigoal",
        [(_coverage("coverage-worst", "worst"), {"within": [2.5, 3.5]})],
        3,
    ),
    _claim("coverage-best", "multigoal", [(_coverage("coverage-best", "best"), {"below": 2.5})], 3),
    _claim(
        "trend-left",
        "multigoal",
        [(_trend("left_share", "trend-up", ENV), {"above": 0})],
        3,
        ["goals"],
    ),
    _claim(
        "trend-flat",
        "multigoal",
        [(_trend("left_share", "trend-flat", ENV), {"within": [-0.5, 0.5]})],
        3,
    ),
    _claim(
        "trend-success",
        "multigoal",
        [(_trend("success", "trend-up", OBSTACLE_ENV), {"above": 0})],
        3,
        ["obstacle-trajectories", "obstacle-goals"],
    ),
    _claim(
        "improvement-one",
        "box",
        [(_improvement("good", "bad", "Pendulum-v1"), ABOVE)],
        BOX_SEEDS,
        ["returns"],
    ),
    _claim("improvement-all", "box", [(_improvement("bad", "good", "*"), {"below": 0.5})], 5),
    _claim("paper-only", "paper-only", [(_improvement("good", "bad", "*"), ABOVE)], 2),
]
NOT_RUN_CLAIMS = {"paper-only"}
ENTROPY_CLAIMS = {"entropy-relative", "entropy-absolute", "entropy-rank"}
FIGURE_FILES = {
    "entropy-entropy.png",
    "latency-latency.png",
    "multigoal-trajectories.png",
    "multigoal-goals.png",
    "multigoal-obstacle-trajectories.png",
    "multigoal-obstacle-goals.png",
    "box-returns.png",
}


def write_catalogue(folder: Path) -> Path:
    """The synthetic catalogue and its suites in ``folder``; returns the catalogue's path."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, suite in SUITES.items():
        (folder / name).write_text(yaml.safe_dump(suite, sort_keys=False))
    path = folder / "claims.yaml"
    path.write_text(yaml.safe_dump({"experiments": EXPERIMENTS, "claims": CLAIMS}, sort_keys=False))
    return path


# -- synthetic results, the way maxbench writes them ---------------------------------------------
def suite_cells(catalogue: Catalogue, experiment: str, scale: str = "workstation") -> list[Cell]:
    suite = catalogue.experiments[experiment].suite(scale)
    assert suite is not None
    loaded = load_suite(suite, check=False)
    return expand_suite(loaded.suite, loaded.name)


def write_cell(root: Path, cell: Cell, final_return: float, steps_per_s: float) -> Path:
    """A finished cell: run.json (spec, timings, provenance) and evals.csv (final row last)."""
    folder = cell.folder(root)
    folder.mkdir(parents=True)
    run = {
        "status": "finished",
        "spec": cell.to_dict(),
        "timings": {
            "env_steps": cell.budget,
            "wall_time_s": 360.0,
            "env_steps_per_s": steps_per_s,
        },
        "provenance": {"cpu": "Synthetic CPU", "cpu_count": 2, "torch_threads": 1},
        "error": None,
    }
    write_text_atomic(folder / "run.json", json.dumps(run, indent=2))
    rows = [
        EvalRow(cell.eval_every, 1.0, (-999.0, -1001.0), (5, 5)),  # not the final evaluation
        EvalRow(cell.budget, 2.0, (final_return - 1.0, final_return + 1.0), (5, 5)),
    ]
    write_evals(folder, rows)
    return folder


def episode(goal: int) -> Episode:
    """One step from the start to goal ``goal`` (or, at -1, to no goal)."""
    end = GOALS[goal] if goal >= 0 else (0.5, 0.5)
    return Episode(np.array([[0.0, 0.0], end]), goal, float(goal), 1, 0)


def write_test_episodes(cell: Cell, folder: Path, train: list[int], obstacle: list[int]) -> None:
    """test_episodes.json as test_episodes.record_test_episodes writes it (its own writer)."""
    document: dict[str, Any] = {
        "format": FORMAT,
        "episodes_per_env": EPISODES,
        "seed": 0,
        "deterministic": False,
        "trained_on": ENV,
        "algo": cell.algo,
        "run_seed": cell.seed,
        "envs": {
            ENV: _env_entry(ENV, [episode(g) for g in train]),
            OBSTACLE_ENV: _env_entry(OBSTACLE_ENV, [episode(g) for g in obstacle]),
        },
    }
    write_text_atomic(folder / EPISODES_FILE, _dumps(document, folder))


# Goals reached per test episode: three distinct goals, or two.
THREE, TWO = [RIGHT, 1, 2, RIGHT], [RIGHT, 1, RIGHT, 1]


def left(count: int) -> list[int]:
    """``count`` of the EPISODES episodes end at a left goal, the others at the right one."""
    return list(islice(cycle(LEFT), count)) + [RIGHT] * (EPISODES - count)


def success(count: int) -> list[int]:
    """``count`` of the EPISODES episodes reach a goal."""
    return [RIGHT] * count + [-1] * (EPISODES - count)


#: Per outcome, per agent, per seed: the goals reached on the training env.
COVERAGE: dict[str, dict[str, list[list[int]]]] = {
    # worst agent's mean: 3 > 2.5 / 2 <= 2.5 / a seed of cw-b at 2: min mean 8/3, CI [2, 3]
    "holds": {"cw-a": [THREE] * 3, "cw-b": [THREE] * 3, "cb-a": [TWO] * 3, "cb-b": [TWO] * 3},
    "fails": {"cw-a": [TWO] * 3, "cw-b": [TWO] * 3, "cb-a": [THREE] * 3, "cb-b": [THREE] * 3},
    "inconclusive": {
        "cw-a": [THREE] * 3,
        "cw-b": [THREE, TWO, THREE],
        "cb-a": [TWO] * 3,
        "cb-b": [THREE, TWO, TWO],
    },
}
#: Per outcome, per alpha, per seed: episodes at a left goal (trend-up, trend-flat agents).
LEFT_UP = {
    "holds": {"a0.2": [0, 0, 1], "a1": [2, 2, 2], "a5": [3, 4, 4]},
    "fails": {"a0.2": [3, 4, 4], "a1": [2, 2, 2], "a5": [0, 0, 1]},
    "inconclusive": {"a0.2": [0, 2, 4], "a1": [0, 2, 4], "a5": [0, 2, 4]},
}
LEFT_FLAT = {
    "holds": {"a0.2": [2, 2, 2], "a1": [2, 2, 2], "a5": [2, 2, 2]},
    "fails": {"a0.2": [0, 0, 0], "a1": [2, 2, 2], "a5": [4, 4, 4]},
    "inconclusive": {"a0.2": [0, 2, 4], "a1": [0, 2, 4], "a5": [0, 2, 4]},
}
#: Per outcome, per alpha, per seed: episodes reaching a goal with the obstacle (trend-up).
SUCCESS_UP = {
    "holds": {"a0.2": [1, 1, 2], "a1": [3, 3, 3], "a5": [4, 4, 4]},
    "fails": {"a0.2": [4, 4, 4], "a1": [3, 3, 3], "a5": [1, 1, 2]},
    "inconclusive": {"a0.2": [1, 2, 4], "a1": [1, 2, 4], "a5": [1, 2, 4]},
}


def multigoal_goals(outcome: str, agent: str, seed: int) -> tuple[list[int], list[int]]:
    """The goals ``agent`` reaches at ``seed`` on the training env and with the obstacle."""
    if agent in COVERAGE[outcome]:
        return COVERAGE[outcome][agent][seed], THREE
    family, alpha = agent.split("-", 1)
    table = LEFT_UP if family == "up" else LEFT_FLAT
    reached = SUCCESS_UP[outcome][alpha][seed] if family == "up" else EPISODES
    return left(table[outcome][alpha][seed]), success(reached)


def final_return(outcome: str, algo: str, env_index: int, seed: int) -> float:
    """good beats bad on every env (holds), loses (fails) or draws run for run (inconclusive)."""
    better = 10.0 + seed + 3 * env_index
    worse = float(seed + env_index)
    if outcome == "inconclusive":
        return worse
    return better if (algo == "good") == (outcome == "holds") else worse


def box_rate(algo: str, env_index: int, seed: int) -> float:
    """Env steps per second recorded in a box cell's run.json."""
    return (100.0 if algo == "good" else 40.0) * (1 + env_index) + 2.0 * seed


SWEEPS = {
    "gaussian": {"2-D Gaussian (Fig. 4a)": 3.4112},
    "mixture": {"K = 1": 2.8345, "K = 2": 3.5275, "K = 4": 4.2073, "K = 6": 4.5060},
    "std": {"std = 0.5": 1.4516, "std = 1": 2.8379, "std = 2": 4.2242, "std = 5": 6.0568},
}


def relative_error(outcome: str, seed: int) -> float:
    """Per seed: within +-0.05 (holds), 0.2 off (fails), 0 or 0.1 (mean 0.05: inconclusive)."""
    sign = (-1) ** seed
    return {"holds": 0.01 * sign, "fails": 0.2 + 0.01 * sign, "inconclusive": 0.05 + 0.05 * sign}[
        outcome
    ]


def absolute_error(outcome: str, seed: int) -> float:
    """Per seed, in nats: +-0.05, about -1, or 0 / -0.5 (mean -0.25 on the rule's end)."""
    sign = (-1) ** seed
    return {"holds": 0.05 * sign, "fails": -1.0 + 0.05 * sign, "inconclusive": -0.25 + 0.25 * sign}[
        outcome
    ]


def mixture_estimate(outcome: str, seed: int, truth: float) -> float:
    """Increasing with the truth (rank +1), decreasing (-1), or each half of the seeds."""
    increasing = outcome == "holds" or (outcome == "inconclusive" and seed % 2 == 0)
    return truth + 0.1 if increasing else 10.0 - truth


def entropy_rows(outcome: str) -> list[dict[str, Any]]:
    rows = []
    for seed in range(ENTROPY_SEEDS):
        for sweep, settings in SWEEPS.items():
            for setting, truth in settings.items():
                if sweep == "gaussian":
                    estimate = truth * (1 + relative_error(outcome, seed))
                elif sweep == "std":
                    estimate = truth + absolute_error(outcome, seed)
                else:
                    estimate = mixture_estimate(outcome, seed, truth)
                rows.append(
                    {
                        "seed": seed,
                        "sweep": sweep,
                        "setting": setting,
                        "truth": truth,
                        "estimate": estimate,
                    }
                )
    return rows


def latency_ratio(outcome: str, algo: str, block: int) -> float:
    """Per block, algo's predict time over SAC's."""
    alternate = block % 2
    table = {
        "s2ac": {"holds": 3.0, "fails": 1.0, "inconclusive": 1.5 + alternate},
        "softgac": {"holds": 1.0, "fails": 2.0, "inconclusive": 1.0 + alternate},
        "amort": {"holds": 1.0, "fails": 3.0, "inconclusive": 1.5 + alternate},
    }
    return table[algo][outcome]


def sac_block(block: int) -> float:
    return 0.2 + 0.01 * block


def write_results(root: Path, catalogue: Catalogue, outcome: str) -> Path:
    """A results folder for which every workstation claim of the catalogue is ``outcome``."""
    for cell in suite_cells(catalogue, "multigoal"):
        folder = write_cell(root, cell, final_return=0.0, steps_per_s=10.0)
        write_test_episodes(cell, folder, *multigoal_goals(outcome, cell.algo, cell.seed))
    for cell in suite_cells(catalogue, "box"):
        env_index = BOX_ENVS.index(cell.env_id)
        value = final_return(outcome, cell.algo, env_index, cell.seed)
        write_cell(root, cell, value, box_rate(cell.algo, env_index, cell.seed))
    settings = {"sweeps": list(SWEEPS), "seeds": ENTROPY_SEEDS, "n_particles": 20, "n_steps": 30}
    entropy = {"settings": settings, "rows": entropy_rows(outcome)}
    write_text_atomic(root / "entropy" / "entropy.json", json.dumps(entropy, indent=1))
    blocks = {"sac": [sac_block(b) for b in range(BLOCKS)]}
    for algo in ("s2ac", "softgac", "amort"):
        blocks[algo] = [sac_block(b) * latency_ratio(outcome, algo, b) for b in range(BLOCKS)]
    latency = {"settings": {"blocks": BLOCKS}, "algorithms": blocks, "machine": "synthetic"}
    write_text_atomic(root / "latency" / "latency.json", json.dumps(latency, indent=1))
    throughput = {
        "settings": {"steps": 200, "warmup": 100, "threads": 1},
        "steps_per_s": PAPER_RATES,
    }
    write_text_atomic(root / "throughput" / "claims-test-paper.json", json.dumps(throughput))
    return root


PAPER_RATES = {
    "good/Pendulum-v1": 100.0,
    "bad/Pendulum-v1": 50.0,
    "good/MountainCarContinuous-v0": 200.0,
    "bad/MountainCarContinuous-v0": 25.0,
}


@pytest.fixture(scope="module")
def catalogue(tmp_path_factory: pytest.TempPathFactory) -> Catalogue:
    return load_catalogue(write_catalogue(tmp_path_factory.mktemp("catalogue")))


@pytest.fixture(scope="module")
def roots(tmp_path_factory: pytest.TempPathFactory, catalogue: Catalogue) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("results")
    return {o: write_results(base / o, catalogue, o) for o in OUTCOMES}


@pytest.fixture(scope="module")
def ledgers(catalogue: Catalogue, roots: dict[str, Path]) -> dict[str, Ledger]:
    return {o: judge_catalogue(catalogue, roots[o], "workstation") for o in OUTCOMES}


def by_id(ledger: Ledger) -> dict[str, Any]:
    return {result.claim.id: result for result in ledger.results}


def _variant(measure: dict[str, Any]) -> tuple[str, str | None]:
    """A measure's kind and the option that changes what it computes."""
    kind = measure["kind"]
    if kind == "entropy_error":
        return kind, measure.get("error", "relative")
    return kind, measure.get("statistic") or measure.get("quantity")


# -- the acceptance test -------------------------------------------------------------------------
def test_the_catalogue_uses_every_measure_and_rule_kind(catalogue: Catalogue) -> None:
    tests = [test for claim in catalogue.claims for test in claim.tests]
    variants = {_variant(t.measure) for t in tests}
    assert variants == {
        ("improvement", None),
        ("goal_coverage", "worst"),
        ("goal_coverage", "best"),
        ("alpha_trend", "left_share"),
        ("alpha_trend", "success"),
        ("entropy_error", "relative"),
        ("entropy_error", "absolute"),
        ("entropy_rank", None),
        ("latency_ratio", None),
    }
    assert {t.rule.kind for t in tests} == {"above", "below", "within"}
    real = yaml.safe_load(REAL_CATALOGUE.read_text())
    assert {_variant(t["measure"]) for c in real["claims"] for t in c["tests"]} <= variants


@pytest.mark.parametrize("outcome", OUTCOMES)
def test_each_rule_returns_holds_fails_and_inconclusive(
    outcome: str, ledgers: dict[str, Ledger]
) -> None:
    """Issue 15's acceptance test: every measure kind, under every rule kind, gives ``outcome``."""
    ledger = ledgers[outcome]
    assert ledger.warnings == []
    results = by_id(ledger)
    assert list(results) == [c["id"] for c in CLAIMS]
    expected = Verdict(outcome)
    for claim_id, result in results.items():
        if claim_id in NOT_RUN_CLAIMS:
            assert result.verdict is Verdict.not_run, claim_id
            continue
        for test in result.tests:
            assert not isinstance(test.estimate, Missing), (claim_id, test.estimate)
            assert test.estimate.n >= result.claim.min_runs, claim_id
            assert test.judgement.verdict is expected, (claim_id, test.judgement.reason)
        assert result.verdict is expected, claim_id


def alpha_groups(table: dict[str, list[int]]) -> dict[float, list[float]]:
    """Per entropy weight, each seed's share of the EPISODES episodes counted in ``table``."""
    return {float(a.removeprefix("a")): [n / EPISODES for n in runs] for a, runs in table.items()}


def _spearman(groups: dict[float, list[float]]) -> float:
    from scipy.stats import spearmanr

    keys = [k for k, values in groups.items() for _ in values]
    values = [v for runs in groups.values() for v in runs]
    return float(spearmanr(keys, values).statistic)


def test_point_estimates_are_independent_computations(ledgers: dict[str, Ledger]) -> None:
    """On the inconclusive folder (the least regular data), each statistic recomputed by hand."""
    results = by_id(ledgers["inconclusive"])

    def value(claim_id: str, index: int = 0) -> float:
        estimate = results[claim_id].tests[index].estimate
        assert not isinstance(estimate, Missing)
        return estimate.value

    errors = [relative_error("inconclusive", s) for s in range(ENTROPY_SEEDS)]
    assert value("entropy-relative") == pytest.approx(np.mean(errors), abs=1e-9)
    nats = [absolute_error("inconclusive", s) for s in range(ENTROPY_SEEDS)]
    assert value("entropy-absolute") == pytest.approx(np.mean(nats), abs=1e-9)
    assert value("entropy-rank") == pytest.approx(0.0, abs=1e-12)  # +1 and -1, five seeds each
    for index, algo in enumerate(("s2ac", "softgac", "amort")):
        ratios = [latency_ratio("inconclusive", algo, b) for b in range(BLOCKS)]
        assert value("latency-all", index) == pytest.approx(np.mean(ratios), abs=1e-9)
    # worst agent's mean distinct goals: cw-b reaches 3, 2, 3 goals
    assert value("coverage-worst") == pytest.approx(min(3.0, 8 / 3))
    assert value("coverage-best") == pytest.approx(max(2.0, 7 / 3))
    left_shares = alpha_groups(LEFT_UP["inconclusive"])
    assert value("trend-left") == pytest.approx(_spearman(left_shares), abs=1e-12)
    success_rates = alpha_groups(SUCCESS_UP["inconclusive"])
    assert value("trend-success") == pytest.approx(_spearman(success_rates), abs=1e-12)
    assert value("improvement-one") == 0.5  # the same returns run for run: every tie counts half
    assert value("improvement-all") == 0.5


def test_point_estimates_of_separated_data(ledgers: dict[str, Ledger]) -> None:
    """Where the data separate, the statistics are exact: P = 1 or 0, Spearman +-1."""
    holds, fails = by_id(ledgers["holds"]), by_id(ledgers["fails"])
    expected = {
        "improvement-one": (1.0, 0.0),
        "improvement-all": (0.0, 1.0),
        "coverage-worst": (3.0, 2.0),
        "coverage-best": (2.0, 3.0),
        "trend-flat": (0.0, 1.0),
        "entropy-rank": (1.0, -1.0),
        "latency-slow": (3.0, 1.0),
    }
    for claim_id, (when_holds, when_fails) in expected.items():
        assert holds[claim_id].tests[0].estimate.value == pytest.approx(when_holds), claim_id
        assert fails[claim_id].tests[0].estimate.value == pytest.approx(when_fails), claim_id
    for claim_id, table in (("trend-left", LEFT_UP), ("trend-success", SUCCESS_UP)):
        for outcome, found in (("holds", holds), ("fails", fails)):
            expected_rank = _spearman(alpha_groups(table[outcome]))
            assert found[claim_id].tests[0].estimate.value == pytest.approx(expected_rank)
            assert (expected_rank > 0) == (outcome == "holds")


def test_fewer_runs_than_the_minimum_is_inconclusive(
    catalogue: Catalogue, roots: dict[str, Path], ledgers: dict[str, Ledger]
) -> None:
    chosen = ("coverage-worst", "trend-flat", "latency-slow", "entropy-relative")
    found = by_id(ledgers["holds"])
    stricter = [
        dataclasses.replace(c, min_runs=found[c.id].tests[0].estimate.n + 1)
        for c in catalogue.claims
        if c.id in chosen
    ]
    ledger = judge_catalogue(catalogue, roots["holds"], "workstation", stricter)
    for result in ledger.results:
        assert result.verdict is Verdict.inconclusive, result.claim.id
        assert "fewer than the rule's minimum" in result.tests[0].judgement.reason


# -- not run, and what the paper's scale costs ---------------------------------------------------
def test_a_claim_not_run_at_this_scale_states_the_paper_scales_cpu_hours(
    catalogue: Catalogue, ledgers: dict[str, Ledger]
) -> None:
    result = by_id(ledgers["holds"])["paper-only"]
    assert result.verdict is Verdict.not_run
    assert all(isinstance(t.estimate, Missing) for t in result.tests)
    seconds = sum(
        cell.budget / PAPER_RATES[f"{cell.algo}/{cell.env_id}"]
        for cell in suite_cells(catalogue, "paper-only", "paper")
    )
    assert seconds == pytest.approx(2 * (3000 / 100 + 3000 / 50 + 5000 / 200 + 5000 / 25))
    assert result.cost.cpu_hours == pytest.approx(seconds / 3600)


def test_paper_cost_of_a_run_suite_comes_from_its_cells_throughput(
    catalogue: Catalogue, ledgers: dict[str, Ledger]
) -> None:
    """The box suite's cost: each paper-scale cell's budget at its pair's mean recorded rate."""
    results = by_id(ledgers["holds"])
    rates: dict[tuple[str, str], list[float]] = {}
    for algo in ("good", "bad"):
        for index, env in enumerate(BOX_ENVS):
            rates[algo, env] = [box_rate(algo, index, seed) for seed in range(BOX_SEEDS)]
    seconds = sum(
        cell.budget / float(np.mean(rates[cell.algo, cell.env_id]))
        for cell in suite_cells(catalogue, "box", "paper")
    )
    assert results["improvement-one"].cost.cpu_hours == pytest.approx(seconds / 3600)
    assert results["coverage-worst"].cost.cpu_hours is None  # no paper-scale suite
    assert results["latency-slow"].cost.cpu_hours is None  # run as the paper's own scale


@pytest.mark.parametrize(
    "throughput",
    [
        None,  # not measured yet
        '{"steps_per_s": {"good/Pendulum-v1": 0, "bad/Pendulum-v1": 50.0}}',
        '{"steps_per_s": {"good/Pendulum-v1": -100.0}}',
        '{"steps_per_s": {"good/Pendulum-v1": NaN}}',
        '{"steps_per_s": {"good/Pendulum-v1": "fast"}}',
        '{"steps_per_s": [100.0]}',
        '{"steps_per_s": ',
    ],
)
def test_paper_cost_is_unknown_without_a_sound_throughput_file(
    catalogue: Catalogue, roots: dict[str, Path], tmp_path: Path, throughput: str | None
) -> None:
    """No throughput file, or a damaged one (warned about): the CPU-hours are not known."""
    root = shutil.copytree(roots["holds"], tmp_path / "results")
    path = root / "throughput" / "claims-test-paper.json"
    if throughput is None:
        path.unlink()
    else:
        path.write_text(throughput)
    paper_only = [c for c in catalogue.claims if c.id == "paper-only"]
    ledger = judge_catalogue(catalogue, root, "workstation", paper_only)
    (result,) = ledger.results
    assert result.verdict is Verdict.not_run
    assert result.cost.cpu_hours is None
    assert "unknown until throughput is measured" in result.cost.basis
    expected = [] if throughput is None else [f"{path}: damaged; left out"]
    assert ledger.warnings == expected


# -- damaged files ---------------------------------------------------------------------------------
#: Claims judged again on damaged copies: one per measure that reads the damaged files, and others.
DAMAGE_CHECKED = ("coverage-worst", "trend-left", "improvement-one", "latency-slow")


def test_damaged_files_are_warned_about_and_the_other_claims_judged(
    catalogue: Catalogue, roots: dict[str, Path], ledgers: dict[str, Ledger], tmp_path: Path
) -> None:
    root = shutil.copytree(roots["holds"], tmp_path / "results")
    # a fourth seed of cw-b whose test episodes are damaged (cut short)
    (mg_cell,) = [
        dataclasses.replace(c, seed=7)
        for c in suite_cells(catalogue, "multigoal")
        if c.algo == "cw-b" and c.seed == 0
    ]
    folder = write_cell(root, mg_cell, 0.0, 10.0)
    write_test_episodes(mg_cell, folder, TWO, TWO)
    text = (folder / EPISODES_FILE).read_text()
    (folder / EPISODES_FILE).write_text(text[: len(text) // 2])
    # a sixth seed of "good" whose run.json is no JSON, and one whose seed is text
    box = [c for c in suite_cells(catalogue, "box") if c.algo == "good" and c.seed == 0]
    broken = write_cell(root, dataclasses.replace(box[0], seed=8), -1e6, 1.0)
    (broken / "run.json").write_text('{"status": "finished", "spec": ')
    odd = write_cell(root, dataclasses.replace(box[1], seed=9), -1e6, 1.0)
    run = json.loads((odd / "run.json").read_text())
    run["spec"]["seed"] = "nine"
    (odd / "run.json").write_text(json.dumps(run))

    claims = [c for c in catalogue.claims if c.id in DAMAGE_CHECKED]
    ledger = judge_catalogue(catalogue, root, "workstation", claims)
    warnings = "\n".join(ledger.warnings)
    assert f"{folder}: " in warnings and EPISODES_FILE in warnings
    assert f"{broken}: damaged" in warnings
    assert f"{odd}: damaged" in warnings and "'seed'" in warnings
    reference = by_id(ledgers["holds"])
    for result in ledger.results:
        assert result.verdict is Verdict.holds, result.claim.id
        assert result.tests == reference[result.claim.id].tests, result.claim.id


def test_a_damaged_entropy_file_leaves_its_claims_not_run(
    catalogue: Catalogue, roots: dict[str, Path], tmp_path: Path
) -> None:
    root = shutil.copytree(roots["fails"], tmp_path / "results")
    (root / "entropy" / "entropy.json").write_text('{"rows": [{"seed": 0}]}')
    claims = [c for c in catalogue.claims if c.id in ENTROPY_CLAIMS | set(DAMAGE_CHECKED)]
    ledger = judge_catalogue(catalogue, root, "workstation", claims)
    assert any("entropy.json: damaged" in w for w in ledger.warnings), ledger.warnings
    for claim_id, result in by_id(ledger).items():
        expected = Verdict.not_run if claim_id in ENTROPY_CLAIMS else Verdict.fails
        assert result.verdict is expected, claim_id


# -- the written ledger ----------------------------------------------------------------------------
def _files(out: Path) -> dict[str, bytes]:
    return {
        path.relative_to(out).as_posix(): path.read_bytes()
        for path in sorted(out.rglob("*"))
        if path.is_file()
    }


@pytest.fixture(scope="module")
def written(
    tmp_path_factory: pytest.TempPathFactory,
    catalogue: Catalogue,
    roots: dict[str, Path],
    ledgers: dict[str, Ledger],
) -> Path:
    out = tmp_path_factory.mktemp("ledger")
    md, html = write_ledger(ledgers["inconclusive"], catalogue, out)
    assert (md, html) == (out / "claims.md", out / "claims.html")
    return out


def test_the_ledger_is_the_same_bytes_when_written_again(
    written: Path, catalogue: Catalogue, ledgers: dict[str, Ledger]
) -> None:
    first = _files(written)
    assert set(first) == {"claims.md", "claims.html"} | {f"figures/{f}" for f in FIGURE_FILES}
    shutil.rmtree(written)  # drawn and written afresh, not kept
    write_ledger(ledgers["inconclusive"], catalogue, written)
    assert _files(written) == first


def test_claims_md_lists_every_claim_and_its_verdict(written: Path) -> None:
    text = (written / "claims.md").read_text()
    for claim in CLAIMS:
        verdict = "not run" if claim["id"] in NOT_RUN_CLAIMS else "inconclusive"
        assert re.search(rf"### {re.escape(claim['id'])}: {verdict}\n", text), claim["id"]
    assert f"0 holds, 0 fails, {len(CLAIMS) - 1} inconclusive, 1 not run" in text
    for name in FIGURE_FILES:
        assert f"(figures/{name})" in text
    assert "Synthetic CPU (2 cores)" in text


def test_claims_html_is_self_contained(written: Path) -> None:
    text = (written / "claims.html").read_text()
    assert "http" not in text.lower()
    assert "<script" not in text.lower()
    sources = re.findall(r'<img[^>]*\bsrc="([^"]*)"', text)
    assert len(sources) == len(re.findall(r"!\[", (written / "claims.md").read_text()))
    assert len(set(sources)) == len(FIGURE_FILES)
    assert all(src.startswith("data:image/png;base64,") for src in sources)
    assert "figures/" not in "".join(sources)
