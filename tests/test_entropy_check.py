"""S2AC's entropy sanity check (Fig. 4): Gaussian estimate within 5%, sweeps monotone."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

from maxbench.algos import entropy_check as ec


@pytest.fixture(autouse=True, scope="module")
def _single_thread():
    """Tiny tensors: one intra-op thread avoids OpenMP spin-wait slowdowns on a busy 2-core box."""
    prev = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(prev)


def _assert_monotone(points: list[ec.SweepPoint]) -> None:
    truths = [p.truth for p in points]
    ests = [p.estimate for p in points]
    assert all(math.isfinite(e) for e in ests)
    assert all(a < b for a, b in zip(truths, truths[1:], strict=False)), truths
    assert all(a < b for a, b in zip(ests, ests[1:], strict=False)), points


def test_gaussian_entropy_check_within_5_percent():
    res = ec.gaussian_entropy_check()
    ref = stats.multivariate_normal(mean=ec.FIG4A_MEAN, cov=np.array(ec.FIG4A_COV)).entropy()
    assert res.truth == pytest.approx(ref, rel=1e-12)
    assert res.truth == pytest.approx(3.4112, abs=1e-4)
    assert abs(res.rel_error) < 0.05, res
    assert res.settings["n_particles"] == 20 and res.settings["n_steps"] == 30
    assert res.as_dict()["estimate"] == res.estimate


def test_gaussian_entropy_check_depends_on_step_count():
    """Documented caveat: the estimate keeps falling after the particles have converged."""
    short = ec.gaussian_entropy_check(n_steps=15, n_batches=50)
    long = ec.gaussian_entropy_check(n_steps=60, n_batches=50)
    assert short.estimate > short.truth * 1.05
    assert long.estimate < long.truth * 0.95


def test_dimension_sweep_monotone():
    pts = ec.dimension_sweep()
    assert [p.setting for p in pts] == [2, 10, 20, 100]
    assert pts[-1].truth == pytest.approx(50 * math.log(2 * math.pi * math.e), rel=1e-12)
    _assert_monotone(pts)


def test_mixture_sweep_monotone():
    pts = ec.mixture_sweep()
    assert [p.setting for p in pts] == [1, 2, 4, 6]
    # MC truth of a single component is the closed-form Gaussian entropy
    assert pts[0].truth == pytest.approx(math.log(2 * math.pi * math.e), abs=0.01)
    _assert_monotone(pts)


def test_std_sweep_monotone():
    pts = ec.std_sweep()
    assert [p.setting for p in pts] == [0.5, 1.0, 2.0, 5.0]
    _assert_monotone(pts)


def test_mixture_log_prob_is_normalised():
    means = ec._mixture_means(4, 4.0)
    lp = ec._mixture_log_prob(means, 1.0)
    xs = torch.linspace(-10, 10, 401, dtype=torch.float64)
    grid = torch.stack(torch.meshgrid(xs, xs, indexing="ij"), dim=-1)
    mass = lp(grid).exp().sum().item() * (xs[1] - xs[0]).item() ** 2
    assert mass == pytest.approx(1.0, abs=1e-4)


def test_hessian_term_size_report():
    rep = ec.hessian_term_size(n_batches=50)
    cov = torch.tensor(ec.FIG4A_COV, dtype=torch.float64)
    precision_trace = torch.trace(torch.linalg.inv(cov)).item()
    assert rep.hessian_term == pytest.approx(-precision_trace / 20, rel=1e-12)
    assert rep.relative == pytest.approx(abs(rep.hessian_term) / rep.mean_abs_trace)
    assert 0.0 < rep.relative < 10.0
    # dropping the term changes the estimate by ~ n_steps * step_size * |term| (plus 1/m vs 1/(m-1))
    assert rep.entropy_loo - rep.entropy_full > 0.5 * 30 * 0.5 * abs(rep.hessian_term)
