"""The claims ledger's decision rules and statistics (issue 15, "Claims as data").

Rules are checked verdict by verdict, at their boundaries, against the definitions of
:mod:`maxbench.repro.claims.rules`; the statistics against independent computations: rliable
called directly, a hand count of P(X > Y), scipy's Spearman, a hand minimum of group means.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from maxbench.repro.claims import statistics as st
from maxbench.repro.claims.rules import Estimate, Missing, Rule, Verdict, combine, judge

HOLDS, FAILS, INCONCLUSIVE, NOT_RUN = (
    Verdict.holds,
    Verdict.fails,
    Verdict.inconclusive,
    Verdict.not_run,
)


def estimate(low: float, high: float, n: int = 10) -> Estimate:
    """An estimate whose point is the interval's midpoint."""
    return Estimate((low + high) / 2, low, high, n)


# -- Rule.parse ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"above": 0}, Rule("above", 0.0, 0.0)),
        ({"above": 0.5}, Rule("above", 0.5, 0.5)),
        ({"below": -2}, Rule("below", -2.0, -2.0)),
        ({"within": [-0.05, 0.05]}, Rule("within", -0.05, 0.05)),
        ({"within": [1, 1]}, Rule("within", 1.0, 1.0)),
    ],
)
def test_parse_reads_each_kind(data: object, expected: Rule) -> None:
    rule = Rule.parse(data)
    assert rule == expected
    assert isinstance(rule.low, float) and isinstance(rule.high, float)


@pytest.mark.parametrize(
    "data",
    [
        None,
        "above 0",
        [("above", 0)],
        {},
        {"above": 0, "below": 1},  # two rules in one
        {"over": 0},  # unknown kind
        {"above": "x"},
        {"above": None},
        {"above": True},  # a bool is no threshold
        {"below": float("nan")},
        {"below": float("inf")},
        {"above": [0]},
        {"within": 0.5},
        {"within": [0]},
        {"within": [0, 1, 2]},
        {"within": (0, 1)},  # YAML gives lists; a tuple is not the catalogue's syntax
        {"within": [1, 0]},  # low above high
        {"within": ["a", 1]},
        {"within": [0, float("nan")]},
    ],
)
def test_parse_rejects_malformed_rules(data: object) -> None:
    with pytest.raises(ValueError):
        Rule.parse(data)


# -- judge ---------------------------------------------------------------------------------------
ABOVE = Rule("above", 0.5, 0.5)
BELOW = Rule("below", 0.5, 0.5)
WITHIN = Rule("within", -1.0, 1.0)


@pytest.mark.parametrize(
    ("rule", "low", "high", "verdict"),
    [
        # above 0.5: holds when low > 0.5, fails when high <= 0.5, else inconclusive
        (ABOVE, 0.6, 0.9, HOLDS),
        (ABOVE, 0.1, 0.4, FAILS),
        (ABOVE, 0.4, 0.6, INCONCLUSIVE),
        (ABOVE, 0.1, 0.5, FAILS),  # high == t: at or below t
        (ABOVE, 0.5, 0.9, INCONCLUSIVE),  # low == t: not strictly above
        (ABOVE, 0.5, 0.5, FAILS),
        # below 0.5: holds when high < 0.5, fails when low >= 0.5
        (BELOW, 0.1, 0.4, HOLDS),
        (BELOW, 0.6, 0.9, FAILS),
        (BELOW, 0.4, 0.6, INCONCLUSIVE),
        (BELOW, 0.5, 0.9, FAILS),  # low == t fails
        (BELOW, 0.1, 0.5, INCONCLUSIVE),  # high == t: not strictly below
        # within [-1, 1]: holds inside (ends included), fails entirely outside
        (WITHIN, -0.5, 0.5, HOLDS),
        (WITHIN, -1.0, 1.0, HOLDS),  # touching both ends, inside
        (WITHIN, -1.0, 0.0, HOLDS),
        (WITHIN, 0.0, 1.0, HOLDS),
        (WITHIN, 1.5, 2.0, FAILS),
        (WITHIN, -3.0, -1.5, FAILS),
        (WITHIN, 0.5, 1.5, INCONCLUSIVE),
        (WITHIN, -1.5, -0.5, INCONCLUSIVE),
        (WITHIN, -2.0, 2.0, INCONCLUSIVE),  # covers the whole range and more
        (WITHIN, 1.0, 2.0, INCONCLUSIVE),  # touches the end from outside: overlaps
    ],
)
def test_judge_by_rule_kind(rule: Rule, low: float, high: float, verdict: Verdict) -> None:
    judgement = judge(rule, estimate(low, high), min_runs=5)
    assert judgement.verdict is verdict
    assert judgement.reason  # always says why


def test_judge_decides_on_the_interval_not_the_point() -> None:
    """A point above the threshold with an interval straddling it is inconclusive."""
    assert judge(ABOVE, Estimate(0.9, 0.4, 0.95, 10), 5).verdict is INCONCLUSIVE
    assert judge(BELOW, Estimate(0.1, 0.05, 0.6, 10), 5).verdict is INCONCLUSIVE


@pytest.mark.parametrize(("low", "high"), [(0.6, 0.9), (0.1, 0.4), (0.4, 0.6)])
@pytest.mark.parametrize("rule", [ABOVE, BELOW, WITHIN])
def test_fewer_runs_than_the_minimum_is_inconclusive(rule: Rule, low: float, high: float) -> None:
    few = judge(rule, estimate(low, high, n=4), min_runs=5)
    assert few.verdict is INCONCLUSIVE
    assert "fewer than" in few.reason
    enough = judge(rule, estimate(low, high, n=5), min_runs=5)
    assert "fewer than" not in enough.reason


@pytest.mark.parametrize("rule", [ABOVE, BELOW, WITHIN])
def test_missing_is_not_run(rule: Rule) -> None:
    judgement = judge(rule, Missing("the suite has not run"), min_runs=1)
    assert judgement == judge(rule, Missing("the suite has not run"), 100)
    assert judgement.verdict is NOT_RUN
    assert judgement.reason == "the suite has not run"


@pytest.mark.parametrize(
    "values",
    [
        (math.nan, 0.6, 0.9),
        (0.7, math.nan, 0.9),
        (0.7, 0.6, math.nan),
        (0.7, 0.6, math.inf),
        (0.7, -math.inf, 0.9),
    ],
)
@pytest.mark.parametrize("rule", [ABOVE, BELOW, WITHIN])
def test_a_statistic_that_is_not_finite_is_inconclusive(
    rule: Rule, values: tuple[float, float, float]
) -> None:
    assert judge(rule, Estimate(*values, n=10), 5).verdict is INCONCLUSIVE


# -- combine ---------------------------------------------------------------------------------------
def _expected_combination(verdicts: tuple[Verdict, ...]) -> Verdict:
    """fails beats not run beats inconclusive beats holds; nothing is not run."""
    for verdict in (FAILS, NOT_RUN, INCONCLUSIVE, HOLDS):
        if verdict in verdicts:
            return verdict
    return NOT_RUN


def test_combine_empty_is_not_run() -> None:
    assert combine([]) is NOT_RUN


@pytest.mark.parametrize("size", [1, 2, 3, 4])
def test_combine_every_order(size: int) -> None:
    for verdicts in itertools.product(list(Verdict), repeat=size):
        assert combine(list(verdicts)) is _expected_combination(verdicts), verdicts


@pytest.mark.parametrize(
    ("verdicts", "expected"),
    [
        ([HOLDS, HOLDS], HOLDS),
        ([HOLDS, INCONCLUSIVE], INCONCLUSIVE),
        ([INCONCLUSIVE, NOT_RUN, HOLDS], NOT_RUN),
        ([NOT_RUN, FAILS], FAILS),
        ([FAILS, HOLDS, INCONCLUSIVE, NOT_RUN], FAILS),
    ],
)
def test_combine_examples(verdicts: list[Verdict], expected: Verdict) -> None:
    assert combine(verdicts) is expected


# -- statistics ----------------------------------------------------------------------------------
def test_mean_interval_is_rliables() -> None:
    from rliable import library as rly
    from rliable import metrics

    values = [0.3, 1.2, -0.4, 2.5, 0.9, 1.1, 0.0, 3.3]
    array = np.asarray(values)
    found = st.mean_interval(values)
    np.random.seed(0)
    point, interval = rly.get_interval_estimates(
        {"x": array.reshape(-1, 1)}, metrics.aggregate_mean, reps=2000
    )
    low, high = np.asarray(interval["x"]).ravel()
    assert found.value == pytest.approx(float(np.mean(array)), abs=1e-12)
    assert found.value == pytest.approx(float(point["x"]), abs=1e-12)
    assert found.low == pytest.approx(low, abs=1e-12)
    assert found.high == pytest.approx(high, abs=1e-12)
    assert found.n == len(values)
    assert found.low < found.value < found.high


def test_mean_interval_leaves_the_global_generator_alone_and_is_reproducible() -> None:
    np.random.seed(123)
    expected_next = np.random.random_sample()
    values = [0.31, 1.7, -0.44, 2.9, 0.05, 1.13, 3.8, -1.2, 0.66, 2.2]
    np.random.seed(123)
    first = st.mean_interval(values)
    assert np.random.random_sample() == expected_next
    assert st.mean_interval(values) == first
    other = st.mean_interval(values, seed=1)
    assert other.value == first.value
    assert (other.low, other.high) != (first.low, first.high)


def test_mean_interval_of_nothing_has_no_runs() -> None:
    empty = st.mean_interval([])
    assert empty.n == 0 and math.isnan(empty.value)
    assert judge(ABOVE, empty, 1).verdict is INCONCLUSIVE


#: Bootstrap repetitions where only the point estimate is checked (it does not depend on them).
FEW = 100


def _hand_probability(x: list[float], y: list[float]) -> float:
    """P(X > Y) + 0.5 P(X = Y) over every pair of a run of x and a run of y."""
    wins = sum((a > b) + 0.5 * (a == b) for a in x for b in y)
    return wins / (len(x) * len(y))


@pytest.mark.parametrize(
    ("x", "y"),
    [
        ([3.0, 1.0, 4.0, 1.0, 5.0], [2.0, 7.0, 1.0, 8.0, 2.0]),
        ([1.0, 2.0, 3.0], [1.0, 2.0, 3.0, 4.0]),  # ties, unequal counts
        ([10.0, 11.0, 12.0], [0.0, 1.0, 2.0]),
        ([0.0, 1.0], [5.0, 6.0, 7.0]),
    ],
)
def test_improvement_probability_point_is_a_hand_count(x: list[float], y: list[float]) -> None:
    found = st.improvement_probability(x, y, reps=FEW)
    assert found.value == pytest.approx(_hand_probability(x, y), abs=1e-12)
    assert found.low <= found.value <= found.high
    assert found.n == min(len(x), len(y))


def test_improvement_probability_separated_runs_have_a_degenerate_interval() -> None:
    """Every resample of runs that never overlap gives P = 1: the interval is [1, 1]."""
    found = st.improvement_probability([10.0, 11.0, 12.0, 13.0], [0.0, 1.0, 2.0], reps=FEW)
    assert (found.value, found.low, found.high) == (1.0, 1.0, 1.0)


def test_improvement_probability_matrix_averages_tasks() -> None:
    x = np.array([[1.0, 5.0], [2.0, 6.0], [3.0, 0.0]])
    y = np.array([[2.0, 1.0], [2.0, 1.0], [0.0, 9.0]])
    found = st.improvement_probability_matrix(x, y, reps=FEW)
    tasks = [_hand_probability(list(x[:, t]), list(y[:, t])) for t in range(2)]
    assert found.value == pytest.approx(float(np.mean(tasks)), abs=1e-12)
    assert found.n == 3
    empty = st.improvement_probability_matrix(np.empty((0, 1)), y[:, :1])
    assert empty.n == 0 and math.isnan(empty.value)


@pytest.mark.parametrize(
    "groups",
    [
        {0.2: [0.1, 0.3, 0.2], 1.0: [0.5, 0.4, 0.6], 5.0: [0.9, 0.7, 0.8]},
        {0.2: [1.0, 0.0], 1.0: [0.5, 0.5, 0.25], 5.0: [0.0]},
        {1.0: [3.0, 3.0], 2.0: [1.0, 2.0]},
    ],
)
def test_spearman_is_scipys_on_the_expanded_runs(groups: dict[float, list[float]]) -> None:
    from scipy.stats import spearmanr

    keys = [key for key, values in groups.items() for _ in values]
    values = [value for runs in groups.values() for value in runs]
    expected = spearmanr(keys, values).statistic
    found = st.spearman({k: np.asarray(v) for k, v in groups.items()})
    assert found == pytest.approx(float(expected), abs=1e-12)


def test_spearman_of_constant_values_is_zero_and_of_one_key_nan() -> None:
    assert st.spearman({0.2: np.array([0.5, 0.5]), 5.0: np.array([0.5])}) == 0.0
    assert math.isnan(st.spearman({1.0: np.array([0.1, 0.9])}))


def test_min_group_mean_by_hand() -> None:
    groups = {0.2: np.array([3.0, 2.0, 3.0]), 1.0: np.array([1.0, 3.0]), 5.0: np.array([2.5])}
    assert st.min_group_mean(groups) == pytest.approx(min(8 / 3, 2.0, 2.5))
    assert st.min_group_mean({0.0: np.array([-1.0, -3.0])}) == -2.0


GROUPS = {0.2: [0.0, 0.1, 0.3, 0.2], 1.0: [0.5, 0.9], 5.0: [1.0, 0.8, 0.6]}


def test_stratified_bootstrap_keeps_each_groups_size() -> None:
    seen: list[tuple[int, ...]] = []

    def sizes(data: dict[float, np.ndarray]) -> float:
        seen.append(tuple(data[key].size for key in sorted(data)))
        return 0.0

    found = st.stratified_bootstrap(GROUPS, sizes, reps=50, seed=3)
    assert len(seen) == 51  # the point, then every resample
    assert set(seen) == {(4, 2, 3)}
    assert found.n == 2  # the smallest group's runs


def test_stratified_bootstrap_resamples_within_groups() -> None:
    """Every resampled value comes from its own group."""

    def check(data: dict[float, np.ndarray]) -> float:
        for key, values in data.items():
            assert set(values.tolist()) <= set(GROUPS[key])
        return 0.0

    st.stratified_bootstrap(GROUPS, check, reps=100, seed=0)


def test_stratified_bootstrap_interval_is_the_percentiles_of_its_resamples() -> None:
    """The interval is the 2.5/97.5 percentiles of the statistic over resamples drawn in order."""
    found = st.stratified_bootstrap(GROUPS, st.min_group_mean, reps=300, seed=7)
    rng = np.random.default_rng(7)
    arrays = {k: np.asarray(v) for k, v in GROUPS.items()}
    draws = [
        st.min_group_mean({k: v[rng.integers(0, v.size, v.size)] for k, v in arrays.items()})
        for _ in range(300)
    ]
    low, high = np.percentile(draws, [2.5, 97.5])
    assert found.value == pytest.approx(min(np.mean(v) for v in GROUPS.values()))
    assert (found.low, found.high) == (pytest.approx(low), pytest.approx(high))


def test_stratified_bootstrap_is_reproducible_for_a_seed() -> None:
    first = st.stratified_bootstrap(GROUPS, st.spearman, reps=400, seed=11)
    again = st.stratified_bootstrap(GROUPS, st.spearman, reps=400, seed=11)
    other = st.stratified_bootstrap(GROUPS, st.spearman, reps=400, seed=12)
    assert first == again
    assert first.value == other.value  # the point does not depend on the seed
    assert (first.low, first.high) != (other.low, other.high)


def test_stratified_bootstrap_without_runs_or_with_mostly_undefined_resamples() -> None:
    empty = st.stratified_bootstrap({0.2: [1.0], 1.0: []}, st.min_group_mean, reps=10)
    assert empty.n == 0 and math.isnan(empty.value)
    one_key = st.stratified_bootstrap({0.2: [0.1, 0.5, 0.9]}, st.spearman, reps=10)
    assert math.isnan(one_key.low) and math.isnan(one_key.high)
    assert judge(ABOVE, one_key, 1).verdict is INCONCLUSIVE
