"""rliable statistics: equal to rliable's own functions called directly with the same seed.

Also the scores they are computed from: final scores over the last K evaluations,
normalisation, truncation to the common minimum of seeds, and the sample-efficiency grid.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from test_report import REFERENCES, episode_returns, final_score, write_references, write_run

from maxbench.report import rliable_stats as stats
from maxbench.report.reference import load_references
from maxbench.report.scores import compute_scores, curve_matrices, score_matrices
from maxbench.results.layout import FAILED
from maxbench.results.loader import load_results

REPS = 500
SEED = 11


@pytest.fixture
def matrices() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        "x": rng.normal(0.6, 0.3, size=(5, 4)),
        "y": rng.normal(0.4, 0.2, size=(5, 4)),
        "z": rng.normal(0.5, 0.4, size=(3, 4)),
    }


def direct_metrics(scores: np.ndarray) -> np.ndarray:
    from rliable import metrics

    return np.array(
        [
            metrics.aggregate_median(scores),
            metrics.aggregate_iqm(scores),
            metrics.aggregate_mean(scores),
            metrics.aggregate_optimality_gap(scores),
        ]
    )


def test_interval_estimates_equal_rliable(matrices: dict[str, np.ndarray]) -> None:
    from rliable import library as rly

    ours = stats.interval_estimates(matrices, reps=REPS, seed=SEED)
    for method, matrix in matrices.items():
        np.random.seed(SEED)
        point, interval = rly.get_interval_estimates({method: matrix}, direct_metrics, reps=REPS)
        np.testing.assert_array_equal(ours.points[method], point[method])
        np.testing.assert_array_equal(ours.intervals[method], interval[method])
        # the point estimates are the plain statistics of the matrix
        assert ours.points[method][2] == pytest.approx(matrix.mean())
        assert ours.points[method][0] == pytest.approx(np.median(matrix.mean(axis=0)))


def test_seed_decides_the_intervals(matrices: dict[str, np.ndarray]) -> None:
    first = stats.interval_estimates(matrices, reps=REPS, seed=SEED)
    again = stats.interval_estimates(matrices, reps=REPS, seed=SEED)
    other = stats.interval_estimates(matrices, reps=REPS, seed=SEED + 1)
    np.testing.assert_array_equal(first.intervals["x"], again.intervals["x"])
    assert not np.array_equal(first.intervals["x"], other.intervals["x"])


def test_a_method_does_not_depend_on_the_others(matrices: dict[str, np.ndarray]) -> None:
    alone = stats.interval_estimates({"y": matrices["y"]}, reps=REPS, seed=SEED)
    together = stats.interval_estimates(matrices, reps=REPS, seed=SEED)
    np.testing.assert_array_equal(alone.intervals["y"], together.intervals["y"])


def test_global_generator_is_restored(matrices: dict[str, np.ndarray]) -> None:
    np.random.seed(1234)
    expected = np.random.random_sample(3)
    np.random.seed(1234)
    stats.interval_estimates(matrices, reps=50, seed=SEED)
    np.testing.assert_array_equal(np.random.random_sample(3), expected)


def test_probability_of_improvement_equals_rliable(matrices: dict[str, np.ndarray]) -> None:
    from rliable import library as rly
    from rliable import metrics

    pairs = stats.improvement_pairs(sorted(matrices))
    assert pairs == [("x", "y"), ("x", "z"), ("y", "z")]
    assert stats.improvement_pairs(sorted(matrices), versus="y") == [("x", "y"), ("z", "y")]
    ours = stats.probability_of_improvement(matrices, pairs, reps=100, seed=SEED)
    for x, y in pairs:
        np.random.seed(SEED)
        point, interval = rly.get_interval_estimates(
            {"p": [matrices[x], matrices[y]]}, metrics.probability_of_improvement, reps=100
        )
        assert ours.points[f"{x},{y}"][0] == pytest.approx(point["p"])
        np.testing.assert_allclose(ours.intervals[f"{x},{y}"], interval["p"])


def test_performance_profiles_and_iqm_curves_equal_rliable(
    matrices: dict[str, np.ndarray],
) -> None:
    from rliable import library as rly
    from rliable import metrics

    taus = np.linspace(0.0, 1.0, 11)
    profiles = stats.performance_profiles(matrices, taus, reps=200, seed=SEED)
    np.random.seed(SEED)
    profile, cis = rly.create_performance_profile({"x": matrices["x"]}, taus, reps=200)
    np.testing.assert_array_equal(profiles.points["x"], profile["x"])
    np.testing.assert_array_equal(profiles.intervals["x"], cis["x"])
    assert profiles.points["x"][0] == pytest.approx(np.mean(matrices["x"] > 0.0))

    curve = np.stack([matrices["x"], matrices["x"] + 0.1], axis=-1)  # runs × tasks × 2 points
    ours = stats.sample_efficiency({"x": curve}, reps=200, seed=SEED)
    np.random.seed(SEED)
    point, interval = rly.get_interval_estimates(
        {"x": curve},
        lambda s: np.array([metrics.aggregate_iqm(s[..., i]) for i in range(s.shape[-1])]),
        reps=200,
    )
    np.testing.assert_array_equal(ours.points["x"], point["x"])
    np.testing.assert_array_equal(ours.intervals["x"], interval["x"])


# -- scores -----------------------------------------------------------------------------------
@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "results"
    for seed in (0, 1, 2):
        write_run(root, "a", "TaskA-v0", seed)
        write_run(root, "b", "TaskA-v0", seed, step=1024)
    for seed in (0, 1):
        write_run(root, "a", "TaskB-v0", seed)
        write_run(root, "b", "TaskB-v0", seed, step=1024)
    write_run(root, "b", "TaskB-v0", 2, status=FAILED)
    write_run(root, "c", "TaskA-v0", 0)  # c never ran TaskB: left out of the aggregates
    return root


def test_last_k_and_normalisation(folder: Path, tmp_path: Path) -> None:
    references = load_references(write_references(tmp_path / "refs.json"))
    scores = compute_scores(load_results(folder), references, last_k=2)
    row = scores.final[(scores.final["method"] == "a") & (scores.final["env"] == "TaskB-v0")]
    row = row[row["seed"] == 1].iloc[0]
    assert row["score"] == pytest.approx(final_score("a", "TaskB-v0", 1, k=2))
    random, reference = REFERENCES["TaskB-v0"]
    assert row["normalised"] == pytest.approx((row["score"] - random) / (reference - random))
    assert row["evaluations"] == 2
    assert list(scores.excluded["status"]) == ["failed"]
    missing = set(
        zip(scores.missing["method"], scores.missing["env"], scores.missing["seed"], strict=True)
    )
    assert missing == {
        ("a", "TaskB-v0", 2),
        ("c", "TaskA-v0", 1),
        ("c", "TaskA-v0", 2),
        ("c", "TaskB-v0", 0),
        ("c", "TaskB-v0", 1),
        ("c", "TaskB-v0", 2),
    }


def test_truncation_and_left_out_methods(folder: Path, tmp_path: Path) -> None:
    references = load_references(write_references(tmp_path / "refs.json"))
    scores = compute_scores(load_results(folder), references)
    matrices = score_matrices(scores)
    assert matrices.tasks == ["TaskA-v0", "TaskB-v0"]
    assert matrices.runs == 2
    assert set(matrices.matrices) == {"a", "b"}
    assert "TaskB-v0" in matrices.left_out["c"]
    assert matrices.truncated == {("a", "TaskA-v0"): 3, ("b", "TaskA-v0"): 3}
    assert matrices.seeds[("b", "TaskB-v0")] == [0, 1]
    random, reference = REFERENCES["TaskA-v0"]
    expected = [(final_score("a", "TaskA-v0", s) - random) / (reference - random) for s in (0, 1)]
    np.testing.assert_allclose(matrices.matrices["a"][:, 0], expected)


def test_sample_efficiency_grid_takes_the_nearest_evaluation(folder: Path, tmp_path: Path) -> None:
    references = load_references(write_references(tmp_path / "refs.json"))
    results = load_results(folder)
    scores = compute_scores(results, references)
    matrices = score_matrices(scores)
    curves = curve_matrices(results, scores, matrices)
    np.testing.assert_allclose(curves.timesteps, [1000, 2000, 3000])
    random, reference = REFERENCES["TaskB-v0"]
    # b evaluates at 1024, 2048, 3072: grid point 2000 takes its 2048 evaluation (index 1)
    expected = (np.mean(episode_returns("b", "TaskB-v0", 1, 1)) - random) / (reference - random)
    assert curves.curves["b"][1, 1, 1] == pytest.approx(expected)


def test_env_without_reference_is_raw_and_warned(folder: Path, tmp_path: Path) -> None:
    path = tmp_path / "refs.json"
    path.write_text(
        json.dumps(
            {
                "version": 1,
                "envs": {"TaskA-v0": {"random": {"score": -100.0}, "reference": {"score": 100.0}}},
            }
        )
    )
    scores = compute_scores(load_results(folder), load_references(path))
    assert scores.normalised_envs == ["TaskA-v0"]
    assert "TaskB-v0" in scores.raw_envs
    assert any("TaskB-v0 is not normalised" in w for w in scores.warnings)
    assert scores.final[scores.final["env"] == "TaskB-v0"]["normalised"].isna().all()
    assert score_matrices(scores).tasks == ["TaskA-v0"]
