"""Tests of Bidirectional SAC (maxbench.algos.bsac): the mathematics against exact or independent
computations, the VDN-a regression, the equivalence with SAC at ``forward_steps=0``, the ablation
options and the SB3 contract.

References: closed-form Gaussian moments, ``scipy.integrate.quad``, ``torch.distributions``,
``torch.special.chebyshev_polynomial_t``, autograd, and SB3's own SAC.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from gymnasium import spaces
from scipy import integrate
from stable_baselines3 import SAC
from stable_baselines3.common.torch_layers import FlattenExtractor

from maxbench.algos.bsac import (
    BSAC,
    ValueDecompositionNetwork,
    boltzmann_marginal_moments,
    chebyshev_basis,
    forward_kl_loss,
    gaussian_kl,
    quadrature_grid,
)
from maxbench.algos.bsac.projection import DEFAULT_EDGE, sliver_integrals

from sb3_contract import SB3Contract

TINY = {"learning_starts": 16, "batch_size": 16, "policy_kwargs": {"net_arch": [16]}}


@pytest.fixture(autouse=True, scope="module")
def _single_thread():
    """Tiny tensors: one intra-op thread avoids OpenMP spin-waits on a busy 2-core machine."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


# -- the quadrature (spec §2) ---------------------------------------------------------------------
def truncated_gaussian_atanh_moments(mode: float, scale: float) -> tuple[float, float]:
    """Mean and variance of atanh(a) for a ~ N(mode, scale²) truncated to (−1, 1), by scipy."""

    def density(a: float) -> float:
        return math.exp(-((a - mode) ** 2) / (2 * scale * scale))

    options = {"points": [mode], "limit": 500, "epsabs": 1e-13, "epsrel": 1e-12}
    norm = integrate.quad(density, -1, 1, **options)[0]
    mean = integrate.quad(lambda a: math.atanh(a) * density(a), -1, 1, **options)[0] / norm
    var = integrate.quad(lambda a: (math.atanh(a) - mean) ** 2 * density(a), -1, 1, **options)[0]
    return mean, var / norm


def test_grid_nodes_stay_inside_the_spec_bound_and_weights_measure_the_box() -> None:
    grid = quadrature_grid(64, dtype=torch.float64)
    assert grid.size == 64
    assert grid.actions.abs().max() <= 1 - DEFAULT_EDGE
    assert torch.all(grid.actions[1:] > grid.actions[:-1])
    assert grid.log_weights.exp().sum().item() == pytest.approx(2.0, abs=1e-12)
    # Only the two end nodes carry a within-cell variance (the merged slivers).
    assert torch.count_nonzero(grid.latent_var) == 2


def test_sliver_integrals_match_closed_form_and_scipy() -> None:
    first, second = sliver_integrals(1e-3)
    bound = 1 - 1e-3
    # ∫ atanh = a atanh(a) + ½ log(1 − a²), which tends to log 2 at a = 1.
    closed = math.log(2.0) - (bound * math.atanh(bound) + 0.5 * math.log(1 - bound**2))
    assert first == pytest.approx(closed, rel=1e-12)
    reference = integrate.quad(lambda a: math.atanh(a) ** 2, bound, 1, limit=200)[0]
    assert second == pytest.approx(reference, rel=1e-9)


def test_flat_marginal_has_the_exact_moments_of_atanh_of_a_uniform_action() -> None:
    # a ~ U(−1, 1): E[atanh a] = 0, Var[atanh a] = π²/12.
    grid = quadrature_grid(64)
    mean, var = boltzmann_marginal_moments(torch.zeros(3, 64), grid)
    torch.testing.assert_close(mean, torch.zeros(3), atol=1e-6, rtol=0)
    torch.testing.assert_close(var, torch.full((3,), math.pi**2 / 12), atol=1e-4, rtol=0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_projection_of_a_quadratic_separable_q_matches_the_truncated_gaussian_moments(
    dtype: torch.dtype,
) -> None:
    """Q(s, a) = Σ_i −(a_i − m_i(s))²/(2 s_i(s)²)·α: each marginal is N(m_i, s_i²) truncated to the
    box. Projected moments of atanh(a_i) for a batch of 2 states × 3 dimensions, in one call,
    against scipy's adaptive quadrature of the exact density."""
    modes = torch.tensor([[0.0, 0.3, -0.5], [0.7, -0.9, 0.5]], dtype=torch.float64)
    scales = torch.tensor([[0.3, 0.1, 0.05], [1.0, 0.3, 3.0]], dtype=torch.float64)
    alpha = 0.2
    grid = quadrature_grid(64, dtype=torch.float64)
    q_on_grid = -alpha * (grid.actions - modes[..., None]) ** 2 / (2 * scales[..., None] ** 2)
    mean, var = boltzmann_marginal_moments(
        (q_on_grid / alpha).to(dtype), quadrature_grid(64, dtype=dtype)
    )
    assert mean.shape == var.shape == (2, 3)
    for index in np.ndindex(2, 3):
        expected_mean, expected_var = truncated_gaussian_atanh_moments(
            modes[index].item(), scales[index].item()
        )
        assert mean[index].item() == pytest.approx(expected_mean, abs=1e-3)
        assert var[index].item() == pytest.approx(expected_var, abs=1e-3)


def test_projection_recovers_an_exactly_gaussian_latent() -> None:
    """Q(a)/α = −(atanh a − m)²/(2s²) − log(1 − a²) makes u = atanh(a) exactly N(m, s²): the
    projection must return (m, s²) (closed form)."""
    grid = quadrature_grid(64, dtype=torch.float64)
    mean_u = torch.tensor([[-1.0, 0.0, 0.5], [1.5, 0.2, -0.4]], dtype=torch.float64)
    std_u = torch.tensor([[0.1, 0.3, 0.6], [0.3, 0.05, 0.5]], dtype=torch.float64)
    latent = torch.atanh(grid.actions)
    scaled = -((latent - mean_u[..., None]) ** 2) / (2 * std_u[..., None] ** 2)
    scaled = scaled - torch.log1p(-(grid.actions**2))
    mean, var = boltzmann_marginal_moments(scaled.float(), quadrature_grid(64))
    torch.testing.assert_close(mean, mean_u.float(), atol=1e-3, rtol=0)
    torch.testing.assert_close(var, (std_u**2).float(), atol=1e-3, rtol=0)


def test_projection_is_invariant_to_a_constant_per_state() -> None:
    grid = quadrature_grid(32)
    scaled = torch.randn(4, 2, 32, generator=torch.Generator().manual_seed(0))
    shifted = scaled + torch.tensor([1.0, -50.0, 3.0, 400.0]).view(4, 1, 1)
    for got, want in zip(
        boltzmann_marginal_moments(shifted, grid),
        boltzmann_marginal_moments(scaled, grid),
        strict=True,
    ):
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


# -- the forward-KL step --------------------------------------------------------------------------
def test_gaussian_kl_matches_torch_distributions() -> None:
    generator = torch.Generator().manual_seed(1)
    mean_p, mean_q = torch.randn(5, 3, generator=generator), torch.randn(5, 3, generator=generator)
    var_p = torch.rand(5, 3, generator=generator) + 0.1
    var_q = torch.rand(5, 3, generator=generator) + 0.1
    reference = torch.distributions.kl_divergence(
        torch.distributions.Normal(mean_p, var_p.sqrt()),
        torch.distributions.Normal(mean_q, var_q.sqrt()),
    )
    torch.testing.assert_close(gaussian_kl(mean_p, var_p, mean_q, var_q), reference)


def test_forward_kl_loss_is_minimised_exactly_at_the_projected_moments() -> None:
    grid = quadrature_grid(64, dtype=torch.float64)
    scaled = torch.randn(4, 3, 64, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    target_mean, target_var = boltzmann_marginal_moments(3.0 * scaled, grid)

    mean = target_mean.clone().requires_grad_(True)
    log_std = (0.5 * target_var.log()).requires_grad_(True)
    loss = forward_kl_loss(target_mean, target_var, mean, torch.exp(2 * log_std))
    loss.backward()
    assert loss.item() == pytest.approx(0.0, abs=1e-12)
    assert mean.grad.abs().max().item() < 1e-12
    assert log_std.grad.abs().max().item() < 1e-12
    # Anywhere else the loss is larger.
    for d_mean, d_log_std in [(0.1, 0.0), (0.0, 0.1), (-0.05, -0.2)]:
        other = forward_kl_loss(
            target_mean,
            target_var,
            target_mean + d_mean,
            torch.exp(2 * (0.5 * target_var.log() + d_log_std)),
        )
        assert other.item() > 1e-6
    # The targets are detached: no gradient reaches them.
    target_mean.requires_grad_(True)
    forward_kl_loss(target_mean, target_var, mean, torch.exp(2 * log_std)).backward()
    assert target_mean.grad is None


def test_projected_moments_minimise_the_forward_kl_from_the_marginal_itself() -> None:
    """KL(q_i ‖ N(μ, σ²)) = const + E_q[−log N(u; μ, σ²)]: its gradient in (μ, log σ), with E_q by
    the same quadrature, vanishes at the projected moments (moment matching, spec §2)."""
    grid = quadrature_grid(64, dtype=torch.float64)
    scaled = torch.randn(3, 2, 64, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    target_mean, target_var = boltzmann_marginal_moments(2.0 * scaled, grid)
    probs = torch.softmax(2.0 * scaled + grid.log_weights, dim=-1)
    mean = target_mean.clone().requires_grad_(True)
    log_std = (0.5 * target_var.log()).requires_grad_(True)
    centred = grid.latent_mean - mean.unsqueeze(-1)
    # E_q[(u − μ)²] per cell = (m_g − μ)² + v_g (within-cell variance of the merged slivers).
    cross_entropy = (
        probs * ((centred**2 + grid.latent_var) / (2 * torch.exp(2 * log_std)).unsqueeze(-1))
    ).sum(-1) + log_std
    cross_entropy.sum().backward()
    assert mean.grad.abs().max().item() < 1e-10
    assert log_std.grad.abs().max().item() < 1e-10


# -- VDN-a ----------------------------------------------------------------------------------------
OBS_SPACE = spaces.Box(-1.0, 1.0, (3,))
ACTION_SPACE = spaces.Box(-1.0, 1.0, (2,))
MODE_WEIGHTS = torch.tensor([[0.4, -0.3, 0.2], [-0.2, 0.1, 0.5]])
CURVATURE = torch.tensor([1.5, 3.0])


def synthetic_modes(obs: torch.Tensor) -> torch.Tensor:
    return obs @ MODE_WEIGHTS.T


def synthetic_q(obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    """Separable Q(s, a) = v·s + Σ_i c_i (2 m_i(s) a_i − a_i²) for actions ``(B, n, 2)``:
    marginal i is exp(−c_i (a_i − m_i(s))²/α), a truncated Gaussian with a state-dependent mode."""
    modes = synthetic_modes(obs).unsqueeze(1)
    value = obs @ torch.tensor([1.0, -2.0, 0.5])
    return value.unsqueeze(1) + (CURVATURE * (2 * modes * actions - actions**2)).sum(-1)


def make_vdn(net_arch: list[int], basis_size: int = 4) -> ValueDecompositionNetwork:
    return ValueDecompositionNetwork(
        OBS_SPACE,
        ACTION_SPACE,
        net_arch,
        FlattenExtractor(OBS_SPACE),
        features_dim=3,
        basis_size=basis_size,
    )


def regression_data(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    obs = torch.rand(n, 3, generator=generator) * 2 - 1
    actions = torch.rand(n, 2, 2, generator=generator) * 2 - 1
    return obs, actions, synthetic_q(obs, actions)


def relative_error(vdn: ValueDecompositionNetwork, seed: int) -> float:
    obs, actions, targets = regression_data(2000, seed)
    with torch.no_grad():
        return ((vdn.q_values(obs, actions) - targets) ** 2).mean().item() / targets.var().item()


def test_chebyshev_basis_matches_torch_special() -> None:
    x = torch.linspace(-1, 1, 101, dtype=torch.float64)
    basis = chebyshev_basis(x, 6)
    for degree in range(1, 7):
        reference = torch.special.chebyshev_polynomial_t(x, degree)
        torch.testing.assert_close(basis[:, degree - 1], reference)


def test_vdn_grid_values_decomposition_and_shapes_agree() -> None:
    torch.manual_seed(0)
    vdn = make_vdn([8], basis_size=5)
    with torch.no_grad():
        vdn.log_scale.copy_(torch.tensor([0.3, -0.7]))
    obs, actions, _ = regression_data(4, seed=1)
    grid = torch.linspace(-0.9, 0.9, 7)
    with torch.no_grad():
        on_grid = vdn.marginal_q_values(obs, grid)  # (4, 2, 7)
        value, coefficients = vdn.heads(obs)
        # Direct evaluation of Q_i at each grid point, one point at a time.
        for g in range(7):
            points = grid[g].expand(4, 1, 2)
            direct = vdn.per_dimension_values(coefficients, points)[:, 0]
            torch.testing.assert_close(on_grid[..., g], direct)
        total = vdn.q_values(obs, actions)
        parts = vdn.per_dimension_values(coefficients, actions).sum(-1) + value
        torch.testing.assert_close(total, parts)
        torch.testing.assert_close(vdn(obs, actions[:, 0]), total[:, :1])
    assert on_grid.shape == (4, 2, 7)


def test_vdn_regression_loss_is_the_mse_with_level_and_shape_gradients_routed() -> None:
    torch.manual_seed(0)
    vdn = make_vdn([8])
    obs, actions, targets = regression_data(16, seed=4)
    loss = vdn.regression_loss(obs, actions, targets)
    with torch.no_grad():
        mse = 0.5 * (vdn.q_values(obs, actions) - targets).pow(2).mean()
    torch.testing.assert_close(loss, mse)

    def gradients(shifted_targets: torch.Tensor) -> dict[str, torch.Tensor]:
        vdn.zero_grad()
        vdn.regression_loss(obs, actions, shifted_targets).backward()
        return {name: p.grad.clone() for name, p in vdn.named_parameters()}

    # A per-state constant added to the targets changes only the level term: only V moves.
    base = gradients(targets)
    shifted = gradients(targets + torch.linspace(0, 10, 16).unsqueeze(1))
    for name in base:
        if name.startswith("value_head"):
            assert not torch.allclose(base[name], shifted[name])
        else:
            torch.testing.assert_close(base[name], shifted[name], msg=name)
    # A level-only error (targets = the current Q_dec + per-state constant) trains V alone.
    with torch.no_grad():
        level_only = vdn.q_values(obs, actions) + torch.linspace(-1, 1, 16).unsqueeze(1)
    for name, grad in gradients(level_only).items():
        if not name.startswith("value_head"):
            assert grad.abs().max().item() < 1e-5, name


def test_vdn_regression_fits_a_separable_q_exactly_and_recovers_its_marginals() -> None:
    """With a trunk that can represent the synthetic Q exactly (linear in the state), minimising
    the VDN-a regression loss drives the error to round-off, and the projected moments of VDN-a's
    marginals equal those of the true marginals."""
    torch.manual_seed(0)
    vdn = make_vdn([])
    obs, actions, targets = regression_data(512, seed=1)
    before = relative_error(vdn, seed=2)
    optimizer = torch.optim.LBFGS(
        vdn.parameters(),
        max_iter=200,
        history_size=50,
        line_search_fn="strong_wolfe",
        tolerance_grad=1e-12,
        tolerance_change=1e-14,
    )

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = vdn.regression_loss(obs, actions, targets)
        loss.backward()
        return loss

    optimizer.step(closure)
    after = relative_error(vdn, seed=2)
    assert before > 0.1
    assert after < 1e-8

    test_obs = regression_data(256, seed=3)[0]
    grid = quadrature_grid(64)
    with torch.no_grad():
        learned = vdn.marginal_q_values(test_obs, grid.actions)
    true_marginals = (
        -CURVATURE[None, :, None] * (grid.actions - synthetic_modes(test_obs)[..., None]) ** 2
    )
    for alpha in (1.0, 0.3, 0.1):
        got = boltzmann_marginal_moments(learned / alpha, grid)
        want = boltzmann_marginal_moments(true_marginals / alpha, grid)
        for g, w in zip(got, want, strict=True):
            torch.testing.assert_close(g, w, atol=1e-4, rtol=0)


def test_vdn_regression_with_adam_and_a_relu_trunk_reduces_its_error() -> None:
    """The optimiser BSAC uses (Adam) on a ReLU trunk: the error falls by orders of magnitude."""
    torch.manual_seed(0)
    vdn = make_vdn([32])
    optimizer = torch.optim.Adam(vdn.parameters(), lr=1e-2)
    obs, actions, targets = regression_data(512, seed=1)
    before = relative_error(vdn, seed=2)
    for _ in range(300):
        loss = vdn.regression_loss(obs, actions, targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    after = relative_error(vdn, seed=2)
    assert after < before / 100
    assert after < 1e-2


# -- the algorithm --------------------------------------------------------------------------------
def tensors_of(model: SAC) -> dict[str, torch.Tensor]:
    """Every parameter and optimiser-state tensor of ``model``, flattened by name."""
    flat: dict[str, torch.Tensor] = {}
    for name, state in model.get_parameters().items():
        for key, value in state.items():
            if isinstance(value, torch.Tensor):
                flat[f"{name}.{key}"] = value
            elif key == "state":
                for index, slots in value.items():
                    for slot, tensor in slots.items():
                        flat[f"{name}.state.{index}.{slot}"] = torch.as_tensor(tensor)
    return flat


def test_forward_steps_zero_is_bit_identical_to_sac() -> None:
    """Same seed, same env, same settings: every parameter and Adam moment equal bit for bit."""
    settings = {**TINY, "learning_starts": 50, "batch_size": 32}
    sac = SAC("MlpPolicy", "Pendulum-v1", seed=7, **settings).learn(300)
    bsac = BSAC("MlpPolicy", "Pendulum-v1", seed=7, forward_steps=0, **settings).learn(300)
    assert bsac.vdn is None
    reference, candidate = tensors_of(sac), tensors_of(bsac)
    assert reference.keys() == candidate.keys()
    assert len(reference) > 20
    for name, tensor in reference.items():
        assert torch.equal(tensor, candidate[name]), f"{name} differs from SAC"
    np.testing.assert_array_equal(sac.replay_buffer.actions, bsac.replay_buffer.actions)
    assert torch.equal(sac.log_ent_coef, bsac.log_ent_coef)


def test_forward_step_moves_the_actor_to_the_projected_gaussian() -> None:
    model = BSAC("MlpPolicy", "Pendulum-v1", seed=0, forward_steps=1, **TINY)
    for group in model.actor.forward_optimizer.param_groups:
        group["lr"] = 3e-2
    obs = torch.as_tensor(np.stack([model.observation_space.sample() for _ in range(8)]))
    target_mean, target_var = model.projected_moments(obs)
    assert target_mean.shape == target_var.shape == (8, 1)

    def distance() -> float:
        with torch.no_grad():
            mean, var = model.actor_gaussian(obs)
            return forward_kl_loss(target_mean, target_var, mean, var).item()

    start = distance()
    for _ in range(150):
        model._forward_step(obs)
    assert distance() < 0.02 * start
    # The reverse step's optimiser is untouched by the forward step.
    assert not model.actor.optimizer.state


def test_forward_step_learns_at_forward_lr_factor_times_the_learning_rate() -> None:
    model = BSAC(
        "MlpPolicy",
        "Pendulum-v1",
        seed=0,
        learning_rate=lambda progress: 1e-3 * progress,
        forward_lr_factor=0.25,
        **TINY,
    )
    model.learn(TINY["learning_starts"] + 8)
    progress = model._current_progress_remaining
    for optimizer in (model.actor.optimizer, model.critic.optimizer, model.vdn.optimizer):
        assert optimizer.param_groups[0]["lr"] == pytest.approx(1e-3 * progress)
    forward_lr = model.actor.forward_optimizer.param_groups[0]["lr"]
    assert forward_lr == pytest.approx(0.25e-3 * progress)


def test_forward_only_ablation_never_takes_the_reverse_step() -> None:
    model = BSAC("MlpPolicy", "Pendulum-v1", seed=0, reverse_step=False, **TINY)
    before = {k: v.clone() for k, v in model.actor.state_dict().items()}
    model.learn(48)
    assert not model.actor.optimizer.state  # SAC's actor step never ran
    assert model.actor.forward_optimizer.state  # the forward step did
    assert any(not torch.equal(before[k], v) for k, v in model.actor.state_dict().items())


def test_forward_freq_runs_the_forward_step_every_nth_gradient_step() -> None:
    model = BSAC("MlpPolicy", "Pendulum-v1", seed=0, forward_freq=3, forward_steps=2, **TINY)
    model.learn(TINY["learning_starts"] + 1)  # sets up the logger and fills the buffer
    calls: list[int] = []
    original = model._forward_step

    def counting(obs: torch.Tensor, coefficients: torch.Tensor) -> tuple[float, float, float]:
        calls.append(1)
        return original(obs, coefficients)

    def adam_steps() -> int:
        state = model.actor.forward_optimizer.state
        return max((int(slot["step"]) for slot in state.values()), default=0)

    model._forward_step = counting  # type: ignore[method-assign]
    start, steps_before = model._n_updates, adam_steps()
    model.train(gradient_steps=9, batch_size=8)
    expected = sum(1 for step in range(start, start + 9) if step % 3 == 0)
    assert len(calls) == expected == 3
    assert adam_steps() == steps_before + 2 * expected  # forward_steps=2 per forward step


@pytest.mark.parametrize(
    "kwargs",
    [
        {"forward_steps": -1},
        {"forward_steps": 0, "reverse_step": False},
        {"forward_freq": 0},
        {"forward_lr_factor": 0.0},
    ],
)
def test_invalid_options_are_rejected(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        BSAC("MlpPolicy", "Pendulum-v1", **kwargs, **TINY)


def test_save_load_restores_vdn_and_both_actor_optimisers(tmp_path: Path) -> None:
    model = BSAC("MlpPolicy", "Pendulum-v1", seed=0, grid_size=16, **TINY).learn(48)
    model.save(tmp_path / "bsac.zip")
    loaded = BSAC.load(tmp_path / "bsac.zip", device="cpu")
    assert loaded.grid_size == 16 and loaded.grid.size == 16
    saved, restored = tensors_of(model), tensors_of(loaded)
    assert saved.keys() == restored.keys()
    assert any(name.startswith("vdn.optimizer.state") for name in saved)
    assert any(name.startswith("actor.forward_optimizer.state") for name in saved)
    for name, tensor in saved.items():
        assert torch.equal(tensor, restored[name]), name


class TestBSACContract(SB3Contract):
    algorithm = BSAC
    hyperparams = {**TINY, "grid_size": 16}
    logger_keys = (
        "train/actor_loss",
        "train/critic_loss",
        "train/ent_coef",
        "train/forward_kl",
        "train/vdn_loss",
    )
