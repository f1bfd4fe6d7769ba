"""Exact tests for the batched SVGD sampler and S2AC's closed-form log-density (float64).

References are computed independently: naive per-particle loops, autograd Jacobians
(torch.autograd.functional.jacobian), scipy, and central finite differences.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats
from scipy.spatial.distance import pdist

from maxbench.algos.svgd import (
    SVGDResult,
    rbf_kernel,
    score_from_log_prob,
    stein_direction,
    svgd_field,
    svgd_field_and_trace,
    svgd_logdensity_trace,
    svgd_sample,
    tanh_log_det_jacobian,
    truncated_normal_particles,
)

DT = torch.float64
DIMS = (1, 2, 5)
NPART = (5, 10)


@pytest.fixture(autouse=True, scope="module")
def _single_thread():
    """Tiny tensors: one intra-op thread avoids OpenMP spin-wait slowdowns on a busy 2-core box."""
    prev = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(prev)


# ----------------------------------------------------------------------------- helpers
def _gaussian(d: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and a random (non-diagonal) SPD covariance."""
    g = torch.Generator().manual_seed(seed)
    A = torch.randn(d, d, generator=g, dtype=DT)
    cov = A @ A.T / d + 0.5 * torch.eye(d, dtype=DT)
    mean = torch.randn(d, generator=g, dtype=DT)
    return mean, cov


def _score_fn(mean: torch.Tensor, cov: torch.Tensor):
    P = torch.linalg.inv(cov)
    return lambda x: -(x - mean) @ P


def _log_prob_fn(mean: torch.Tensor, cov: torch.Tensor):
    P = torch.linalg.inv(cov)

    def lp(u: torch.Tensor) -> torch.Tensor:
        x = u - mean
        return -0.5 * ((x @ P) * x).sum(-1)

    return lp


def _particles(B: int, m: int, d: int, seed: int, scale: float = 1.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return scale * torch.randn(B, m, d, generator=g, dtype=DT)


def _ref_bandwidth(u_b: torch.Tensor) -> float:
    """sigma_k^2 for one state, from scipy's pdist: (mean of m x m sq. dists / 2) / (2 log(m+1))."""
    m = u_b.shape[0]
    sq = pdist(u_b.numpy(), "sqeuclidean")
    mean_full = 2.0 * sq.sum() / m**2  # the m x m matrix has a zero diagonal
    return (mean_full / 2.0) / (2.0 * math.log(m + 1.0))


def _k(a: torch.Tensor, x: torch.Tensor, h: float) -> torch.Tensor:
    return torch.exp(-((a - x) ** 2).sum() / (2.0 * h))


def _phi_loo(x: torch.Tensor, others: torch.Tensor, s_others: torch.Tensor, h: float):
    """Naive leave-one-out field 1/(m-1) sum_{j != i} [k(u_j,x) s_j + grad_{u_j} k(u_j,x)]."""
    out = torch.zeros_like(x)
    for a, s in zip(others, s_others, strict=True):
        k = _k(a, x, h)
        out = out + k * s - (a - x) / h * k
    return out / others.shape[0]


def _phi_full_naive(x: torch.Tensor, parts: torch.Tensor, s_parts: torch.Tensor, h: float):
    out = torch.zeros_like(x)
    for a, s in zip(parts, s_parts, strict=True):
        k = _k(a, x, h)
        out = out + k * s - (a - x) / h * k
    return out / parts.shape[0]


# ----------------------------------------------------------------------------- kernel
def test_rbf_kernel_matches_scipy_bandwidth_and_naive_kernel():
    u = _particles(3, 7, 4, seed=0)
    K, sigma2 = rbf_kernel(u)
    assert K.shape == (3, 7, 7) and sigma2.shape == (3, 1, 1)
    for b in range(3):
        h = _ref_bandwidth(u[b])
        assert sigma2[b].item() == pytest.approx(h, rel=1e-12)
        for j in range(7):
            for i in range(7):
                assert K[b, j, i].item() == pytest.approx(_k(u[b, j], u[b, i], h).item(), rel=1e-12)
    K2, s2 = rbf_kernel(u, sigma=0.7)
    assert s2.shape == (3, 1, 1) and torch.allclose(s2, torch.full_like(s2, 0.49))
    assert K2[1, 2, 5].item() == pytest.approx(_k(u[1, 2], u[1, 5], 0.49).item(), rel=1e-12)


def test_adaptive_bandwidth_is_detached():
    u = _particles(2, 6, 3, seed=1).requires_grad_(True)
    _, sigma2 = rbf_kernel(u)
    assert not sigma2.requires_grad


# ----------------------------------------------------------------------------- (a) trace
@pytest.mark.parametrize("d", DIMS)
@pytest.mark.parametrize("m", NPART)
@pytest.mark.parametrize("sigma", [None, 0.8])
def test_closed_form_trace_equals_autograd_jacobian_trace(d, m, sigma):
    mean, cov = _gaussian(d, seed=10 + d)
    score = _score_fn(mean, cov)
    B = 2
    u = _particles(B, m, d, seed=100 * d + m, scale=1.5)
    s = score(u)
    trace = svgd_logdensity_trace(u, s, sigma=sigma)
    assert trace.shape == (B, m)
    for b in range(B):
        h = _ref_bandwidth(u[b]) if sigma is None else sigma**2
        for i in range(m):
            keep = [j for j in range(m) if j != i]
            J = torch.autograd.functional.jacobian(
                lambda x, b=b, keep=keep, h=h: _phi_loo(x, u[b, keep], s[b, keep], h), u[b, i]
            )
            ref = torch.trace(J).item()
            assert trace[b, i].item() == pytest.approx(ref, rel=1e-10, abs=1e-12)


# ----------------------------------------------------------------------------- (b) O(eps^2)
@pytest.mark.parametrize("d", DIMS)
@pytest.mark.parametrize("m", NPART)
def test_logdet_minus_eps_trace_is_second_order(d, m):
    mean, cov = _gaussian(d, seed=20 + d)
    score = _score_fn(mean, cov)
    u = _particles(1, m, d, seed=7 * d + m, scale=1.5)[0]
    s = score(u)
    h = _ref_bandwidth(u)
    eye = torch.eye(d, dtype=DT)
    for i in range(m):
        keep = [j for j in range(m) if j != i]
        J = torch.autograd.functional.jacobian(
            lambda x, keep=keep: _phi_loo(x, u[keep], s[keep], h), u[i]
        )
        tr = torch.trace(J)

        def gap(eps: float, J=J, tr=tr) -> float:
            return (torch.linalg.slogdet(eye + eps * J)[1] - eps * tr).abs().item()

        eps = 0.02
        ratio = gap(eps) / gap(eps / 2)
        assert 3.0 <= ratio <= 5.0, (i, ratio)


# ----------------------------------------------------------------------------- (c) Hessian term
@pytest.mark.parametrize("d", DIMS)
@pytest.mark.parametrize("m", NPART)
def test_full_field_trace_is_closed_form_plus_hessian_term(d, m):
    """Tr grad phi_full(u_i) = (m-1)/m Tr_loo(u_i) + (1/m) Tr grad^2 log p(u_i).

    For a Gaussian target grad^2 log p = -Sigma^-1.

    phi_full is the library's svgd_field with particle i replaced by x and its score by s(x), so the
    self-interaction term moves with x; sigma_k is held at the value computed from the particles.
    """
    mean, cov = _gaussian(d, seed=30 + d)
    score = _score_fn(mean, cov)
    B = 2
    u = _particles(B, m, d, seed=3 * d + m, scale=1.5)
    s = score(u)
    tr_loo = svgd_logdensity_trace(u, s)
    hess_tr = -torch.trace(torch.linalg.inv(cov)).item()
    for b in range(B):
        sig = math.sqrt(_ref_bandwidth(u[b]))
        for i in range(m):

            def phi_full(x, b=b, i=i, sig=sig):
                parts = u[b : b + 1].clone()
                parts[0, i] = x
                scores = s[b : b + 1].clone()
                scores[0, i] = score(x)
                return svgd_field(parts, scores, sigma=sig)[0, i]

            J = torch.autograd.functional.jacobian(phi_full, u[b, i])
            expected = (m - 1) / m * tr_loo[b, i].item() + hess_tr / m
            assert torch.trace(J).item() == pytest.approx(expected, rel=1e-10, abs=1e-12)


# ----------------------------------------------------------------------------- (h) field
def test_stein_direction_equals_field_and_naive_reference():
    d, m, B = 3, 6, 2
    mean, cov = _gaussian(d, seed=4)
    score = _score_fn(mean, cov)
    u = _particles(B, m, d, seed=5)
    s = score(u)
    phi, _, _ = svgd_field_and_trace(u, s)
    assert torch.allclose(stein_direction(u, s, u), phi, rtol=1e-12, atol=1e-14)
    assert torch.allclose(svgd_field(u, s), phi, rtol=1e-12, atol=1e-14)
    q = _particles(B, 4, d, seed=6)
    delta = stein_direction(u, s, q)
    assert delta.shape == (B, 4, d)
    for b in range(B):
        h = _ref_bandwidth(u[b])
        for i in range(m):
            ref = _phi_full_naive(u[b, i], u[b], s[b], h)
            assert torch.allclose(phi[b, i], ref, rtol=1e-12, atol=1e-14)
        for i in range(4):
            ref = _phi_full_naive(q[b, i], u[b], s[b], h)
            assert torch.allclose(delta[b, i], ref, rtol=1e-12, atol=1e-14)
    # fixed sigma: also the 1/m normalisation against the naive field
    delta_fixed = stein_direction(u, s, q, sigma=0.9)
    ref = _phi_full_naive(q[1, 2], u[1], s[1], 0.81)
    assert torch.allclose(delta_fixed[1, 2], ref, rtol=1e-12, atol=1e-14)


def test_score_from_log_prob_matches_analytic_score():
    mean, cov = _gaussian(3, seed=8)
    u = _particles(2, 5, 3, seed=9)
    with torch.no_grad():  # must still work (grad mode enabled locally)
        s = score_from_log_prob(_log_prob_fn(mean, cov), u, temperature=2.0)
    assert torch.allclose(s, _score_fn(mean, cov)(u) / 2.0, rtol=1e-12)


# ----------------------------------------------------------------------------- sampler
def test_svgd_sample_is_batched_per_state_and_tracks_log_q():
    d, m = 2, 8
    mean, cov = _gaussian(d, seed=11)
    lp = _log_prob_fn(mean, cov)
    score = _score_fn(mean, cov)
    u0 = _particles(3, m, d, seed=12, scale=2.0)
    u0[1] *= 0.3  # different spreads -> different per-state adaptive bandwidths
    lq0 = torch.randn(3, m, generator=torch.Generator().manual_seed(13), dtype=DT)
    res = svgd_sample(u0, lq0, lp, n_steps=4, step_size=0.3)
    assert isinstance(res, SVGDResult) and res.sigma2.shape == (3, 1, 1)
    # manual unrolled reference, one state at a time
    for b in range(3):
        u, lq = u0[b : b + 1].clone(), lq0[b : b + 1].clone()
        for _ in range(4):
            h = _ref_bandwidth(u[0])
            s = score(u)
            tr = torch.stack(
                [
                    torch.trace(
                        torch.autograd.functional.jacobian(
                            lambda x, i=i, u=u, s=s, h=h: _phi_loo(
                                x,
                                u[0, [j for j in range(m) if j != i]],
                                s[0, [j for j in range(m) if j != i]],
                                h,
                            ),
                            u[0, i],
                        )
                    )
                    for i in range(m)
                ]
            )
            phi = torch.stack([_phi_full_naive(u[0, i], u[0], s[0], h) for i in range(m)])
            u = u + 0.3 * phi.unsqueeze(0)
            lq = lq - 0.3 * tr.unsqueeze(0)
        assert torch.allclose(res.particles[b], u[0], rtol=1e-10, atol=1e-12)
        assert torch.allclose(res.log_q[b], lq[0], rtol=1e-10, atol=1e-12)


def test_svgd_moves_particles_to_gaussian_target():
    """(d) starting far away, the particle mean converges to the target mean."""
    d = 2
    target_mean = torch.tensor([3.0, -2.0], dtype=DT)
    cov = torch.tensor([[1.0, 0.3], [0.3, 0.5]], dtype=DT)
    lp = _log_prob_fn(target_mean, cov)
    u0 = _particles(4, 20, d, seed=14, scale=0.5)
    lq0 = torch.zeros(4, 20, dtype=DT)
    start_err = (u0.mean(1) - target_mean).norm(dim=-1)
    res = svgd_sample(u0, lq0, lp, n_steps=300, step_size=0.5)
    err = (res.particles.mean(1) - target_mean).norm(dim=-1)
    assert torch.all(start_err > 3.0)
    assert torch.all(err < 0.05), err
    assert torch.isfinite(res.log_q).all()


def test_create_graph_false_builds_no_graph_and_zero_steps_is_identity():
    mean, cov = _gaussian(2, seed=15)
    mu = torch.zeros(2, 2, dtype=DT, requires_grad=True)
    std = torch.ones(2, 2, dtype=DT)
    u0, lq0 = truncated_normal_particles(mu, std, 5, torch.Generator().manual_seed(0))
    res = svgd_sample(u0, lq0, _log_prob_fn(mean, cov), n_steps=3, step_size=0.2)
    assert not res.particles.requires_grad and not res.log_q.requires_grad
    with torch.no_grad():
        res_ng = svgd_sample(u0, lq0, _log_prob_fn(mean, cov), n_steps=3, step_size=0.2)
    assert torch.equal(res_ng.particles, res.particles)
    res0 = svgd_sample(u0, lq0, _log_prob_fn(mean, cov), n_steps=0, step_size=0.2)
    assert torch.equal(res0.particles, u0.detach()) and res0.sigma2 is None
    with torch.no_grad(), pytest.raises(RuntimeError):
        svgd_sample(u0, lq0, _log_prob_fn(mean, cov), n_steps=1, step_size=0.2, create_graph=True)


# ----------------------------------------------------------------------------- (g) gradients
def _mixture_log_prob(u: torch.Tensor) -> torch.Tensor:
    """Non-Gaussian target so that the SVGD map is non-linear in the particles."""
    c1 = torch.tensor([1.0, -0.5], dtype=DT)
    c2 = torch.tensor([-1.0, 1.0], dtype=DT)
    a = -((u - c1) ** 2).sum(-1)
    b = -0.5 * ((u - c2) ** 2).sum(-1)
    return torch.logaddexp(a, b)


def _objective(mu: torch.Tensor, std: torch.Tensor, detach_steps: bool = False) -> torch.Tensor:
    gen = torch.Generator().manual_seed(123)  # the same U for every call (reparameterised)
    u0, lq0 = truncated_normal_particles(mu, std, 6, gen)
    if detach_steps:
        res = svgd_sample(u0, lq0, _mixture_log_prob, 5, 0.3, sigma=0.7, create_graph=False)
        uL = u0 + (res.particles - u0.detach())
        lqL = lq0 + (res.log_q - lq0.detach())
    else:
        res = svgd_sample(u0, lq0, _mixture_log_prob, 5, 0.3, sigma=0.7, create_graph=True)
        uL, lqL = res.particles, res.log_q
    w = torch.tensor([0.7, -1.3], dtype=DT)
    # S2AC-like actor objective: a (non-linear) value of the final particles minus log-density.
    return (torch.sin(uL) @ w).sum() + ((uL**2).sum(-1)).sum() * 0.1 - lqL.sum()


def test_create_graph_gradient_matches_finite_differences():
    mu = torch.tensor([[0.2, -0.1], [-0.4, 0.5]], dtype=DT, requires_grad=True)
    std = torch.tensor([[0.8, 0.5], [0.6, 0.9]], dtype=DT, requires_grad=True)
    J = _objective(mu, std)
    g_mu, g_std = torch.autograd.grad(J, (mu, std))
    g_mu_det, g_std_det = torch.autograd.grad(_objective(mu, std, detach_steps=True), (mu, std))
    # the gradient really flows through the steps
    assert (g_mu - g_mu_det).abs().max() > 1e-2
    assert (g_std - g_std_det).abs().max() > 1e-2
    delta = 1e-6
    for param, grad in ((mu, g_mu), (std, g_std)):
        fd = torch.zeros_like(grad)
        for idx in np.ndindex(*param.shape):
            with torch.no_grad():
                p_plus, p_minus = param.detach().clone(), param.detach().clone()
                p_plus[idx] += delta
                p_minus[idx] -= delta
            args_p = (p_plus, std.detach()) if param is mu else (mu.detach(), p_plus)
            args_m = (p_minus, std.detach()) if param is mu else (mu.detach(), p_minus)
            fd[idx] = (_objective(*args_p) - _objective(*args_m)).item() / (2 * delta)
        assert torch.allclose(grad, fd, rtol=1e-6, atol=1e-7), (grad, fd)


def test_create_graph_adaptive_kernel_gradient_flows():
    mu = torch.tensor([[0.2, -0.1]], dtype=DT, requires_grad=True)
    std = torch.tensor([[0.8, 0.5]], dtype=DT)
    u0, lq0 = truncated_normal_particles(mu, std, 6, torch.Generator().manual_seed(1))
    res = svgd_sample(u0, lq0, _mixture_log_prob, 3, 0.3, create_graph=True)
    (g,) = torch.autograd.grad(res.particles.sum() - res.log_q.sum(), mu)
    assert torch.isfinite(g).all()
    assert (g - 6.0).abs().max() > 1e-3  # differs from the detached-steps value (= m per entry)


# ----------------------------------------------------------------------------- (e) init
def test_truncated_normal_particles():
    B, d, m = 2, 3, 200_000
    mu = torch.tensor([[0.5, -1.0, 2.0], [0.0, 0.3, -0.7]], dtype=DT, requires_grad=True)
    std = torch.tensor([[0.2, 1.0, 3.0], [0.7, 0.05, 1.5]], dtype=DT, requires_grad=True)
    u0, lq0 = truncated_normal_particles(mu, std, m, torch.Generator().manual_seed(0))
    assert u0.shape == (B, m, d) and lq0.shape == (B, m)
    lo, hi = (mu - 3 * std).unsqueeze(1), (mu + 3 * std).unsqueeze(1)
    assert torch.all(u0 >= lo) and torch.all(u0 <= hi)
    ref = torch.distributions.Normal(mu.unsqueeze(1), std.unsqueeze(1)).log_prob(u0).sum(-1)
    assert torch.allclose(lq0, ref, rtol=1e-12, atol=1e-12)
    # reparameterised: d(sum u0)/d mu = m, d(sum log_q0)/d mu = 0; d/d std = sum z - m/std
    (u0.sum() + lq0.sum()).backward()
    z = ((u0 - mu.unsqueeze(1)) / std.unsqueeze(1)).detach()
    assert torch.allclose(mu.grad, torch.full_like(mu, float(m)), rtol=1e-10)
    assert torch.allclose(std.grad, z.sum(1) - m / std.detach(), rtol=1e-8, atol=1e-6)
    # distribution: standardised samples ~ truncnorm(-3, 3)
    zf = z.reshape(-1).numpy()
    tn = stats.truncnorm(-3.0, 3.0)
    assert zf.var() == pytest.approx(tn.var(), rel=6e-3)  # untruncated (1.0) is 2.7% away
    assert abs(zf.mean()) < 5e-3
    assert zf.max() > 2.95 and zf.min() < -2.95
    assert stats.kstest(zf[:20_000], tn.cdf).pvalue > 1e-3
    # per-coordinate variance in original units
    emp = u0.detach().var(1)
    assert torch.allclose(emp, tn.var() * std.detach() ** 2, rtol=0.03)


# ----------------------------------------------------------------------------- (f) tanh
def test_tanh_log_det_jacobian():
    u = torch.linspace(-5, 5, 41, dtype=DT).reshape(-1, 1).repeat(1, 3) * torch.tensor(
        [1.0, 0.5, -0.8], dtype=DT
    )
    ref = torch.log(1 - torch.tanh(u) ** 2).sum(-1)
    assert torch.allclose(tanh_log_det_jacobian(u), ref, rtol=1e-9, atol=1e-12)
    big = torch.tensor([[20.0, -20.0]], dtype=torch.float32)
    val = tanh_log_det_jacobian(big)
    assert torch.isfinite(val).all()
    assert torch.isinf(torch.log(1 - torch.tanh(big) ** 2).sum(-1)).all()  # naive form fails
    expected = 2 * 2 * (math.log(2.0) - 20.0)  # log(1 - tanh^2 u) ~ 2 (log 2 - |u|) for large |u|
    assert val.item() == pytest.approx(expected, rel=1e-6)
    big64 = big.double().requires_grad_(True)
    tanh_log_det_jacobian(big64).sum().backward()
    assert torch.isfinite(big64.grad).all()
