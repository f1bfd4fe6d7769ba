"""SQL with the S2AC authors' settings: the ``"particles"`` soft value, the independent Stein
draws, the sampler temperature, and the ``sql-s2ac`` registry preset.

The references are written here from the authors' code (``STAC/core.py::compute_loss_q``,
``compute_loss_pi`` and ``STAC/actors/kernels.py`` of
SafaMessaoud/S2AC-Energy-Based-RL-with-Stein-Soft-Actor-Critic) in numpy or per-particle loops,
without calling maxbench's functions.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from typer.testing import CliRunner

from maxbench.algos.sql import SQL, amortized_svgd_loss, min_q_over_particles, sampler_soft_value
from maxbench.cli import app
from maxbench.registry import ALGORITHMS, check_hyperparameters, resolve_algorithm

DT = torch.float64


@pytest.fixture(autouse=True, scope="module")
def _single_thread():
    prev = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(prev)


# ------------------------------------------------------------------------ toy Q and reference
def _centre(obs: np.ndarray, d: int) -> np.ndarray:
    """``c(s) = 0.5 tanh(s[:d])``: where the toy Q peaks."""
    return 0.5 * np.tanh(obs[..., :d])


def _toy_twin_q(obs: np.ndarray, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two toy critics ``Q1 = -3 |a - c(s)|^2``, ``Q2 = -2 |a - c(s)|^2 - 0.1`` (numpy)."""
    sq = ((actions - _centre(obs, actions.shape[-1])) ** 2).sum(-1)
    return -3.0 * sq, -2.0 * sq - 0.1


class ToyTwinCritic(torch.nn.Module):
    """The same two critics with SB3's ``ContinuousCritic`` call signature (a tuple of (N, 1))."""

    def forward(self, obs: torch.Tensor, actions: torch.Tensor) -> tuple[torch.Tensor, ...]:
        d = actions.shape[-1]
        sq = (actions - 0.5 * torch.tanh(obs[:, :d])).pow(2).sum(-1, keepdim=True)
        return -3.0 * sq, -2.0 * sq - 0.1


def _authors_soft_value(q_pi_targ: np.ndarray, alpha_c: float, act_dim: int) -> np.ndarray:
    """``STAC/core.py`` lines 84-86, in numpy with a hand-written logsumexp::

    V_soft_ = alpha_c * torch.logsumexp(q_pi_targ / alpha_c, dim=-1)
    V_soft_ += alpha_c * (act_dim * np.log(2) - np.log(num_particles))
    """
    num_particles = q_pi_targ.shape[-1]
    z = q_pi_targ / alpha_c
    top = z.max(axis=-1, keepdims=True)
    logsumexp = np.log(np.exp(z - top).sum(axis=-1)) + top[..., 0]
    v_soft = alpha_c * logsumexp
    v_soft += alpha_c * (act_dim * np.log(2) - np.log(num_particles))
    return v_soft


def _particles(n_states: int, m: int, d: int, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.rand((n_states, m, d), generator=generator, dtype=DT) * 2 - 1


# ------------------------------------------------------------------------ the soft value
@pytest.mark.parametrize("alpha", [0.05, 0.2, 1.0, 4.0])
@pytest.mark.parametrize(("m", "d"), [(10, 2), (1, 1), (7, 3)])
def test_particle_soft_value_equals_the_authors_formula(alpha: float, m: int, d: int) -> None:
    obs = _particles(5, 1, 4, seed=1)[:, 0]
    particles = _particles(5, m, d, seed=2)

    def q_fn(actions: torch.Tensor) -> torch.Tensor:
        q1, q2 = _toy_twin_q(obs.numpy()[:, None, :], actions.numpy())
        return torch.as_tensor(np.minimum(q1, q2))

    got = sampler_soft_value(q_fn, particles, alpha).numpy()
    q1, q2 = _toy_twin_q(obs.numpy()[:, None, :], particles.numpy())
    expected = _authors_soft_value(np.minimum(q1, q2), alpha, d)
    assert got.shape == (5,)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)


def test_particle_soft_value_is_optimistic_when_the_particles_sit_on_the_mode() -> None:
    """All m particles at the peak of Q = -c |a|^2: the estimate is alpha d log 2, above the true
    ``alpha log int_{[-1,1]^d} exp(Q / alpha) da`` (the integrand is below 1 off the peak)."""
    alpha, c, d, m = 0.5, 3.0, 2, 10
    particles = torch.zeros((1, m, d), dtype=DT)
    got = sampler_soft_value(lambda a: -c * a.pow(2).sum(-1), particles, alpha).item()
    k = math.sqrt(c / alpha)
    one_dim = math.sqrt(math.pi) / k * math.erf(k)  # int_{-1}^{1} exp(-c x^2 / alpha) dx
    exact = alpha * d * math.log(one_dim)
    assert got == pytest.approx(alpha * d * math.log(2.0), abs=1e-12)
    assert got > exact + 0.5


def _pendulum_sql(**extra) -> SQL:
    kwargs = {
        "learning_starts": 16,
        "batch_size": 16,
        "value_n_particles": 10,
        "kernel_n_particles": 8,
        "policy_kwargs": {"net_arch": [16], "n_eval_particles": 6},
    }
    kwargs.update(extra)
    return SQL("MlpPolicy", "Pendulum-v1", seed=0, **kwargs)


def test_sql_soft_value_uses_the_samplers_particles_and_the_target_critics(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``SQL.soft_value`` with ``value_estimator="particles"``: the sampler's ``m`` draws at the
    given next states, ``min`` of the *target* critics, alpha = ``ent_coef``, the authors' V."""
    model = _pendulum_sql(value_estimator="particles", ent_coef=0.3)
    next_obs = _particles(6, 1, 3, seed=3)[:, 0]
    particles = _particles(6, model.value_n_particles, 1, seed=4)
    calls = []

    def fixed_sample(obs: torch.Tensor, n: int) -> torch.Tensor:
        calls.append((obs, n))
        return particles

    monkeypatch.setattr(model.actor, "sample", fixed_sample)
    model.critic_target = ToyTwinCritic()  # the online critic stays a network: must not be used
    with torch.no_grad():
        got = model.soft_value(next_obs).numpy()
    assert len(calls) == 1 and calls[0][1] == 10 and calls[0][0] is next_obs
    q1, q2 = _toy_twin_q(next_obs.numpy()[:, None, :], particles.numpy())
    expected = _authors_soft_value(np.minimum(q1, q2), 0.3, 1)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)


def test_uniform_estimator_does_not_draw_from_the_sampler(monkeypatch: pytest.MonkeyPatch) -> None:
    model = _pendulum_sql()
    assert model.value_estimator == "uniform"

    def no_sample(*args, **kwargs):
        raise AssertionError("the uniform estimator must not use the sampler")

    monkeypatch.setattr(model.actor, "sample", no_sample)
    with torch.no_grad():
        values = model.soft_value(torch.zeros((3, 3)))
    assert values.shape == (3,)


# ------------------------------------------------------------------------ the sampler update
def test_independent_draws_follow_the_authors_kernel_and_direction() -> None:
    """``STAC/core.py`` lines 107-132 with ``STAC/actors/kernels.py`` (``adaptive_sig=4``): scores
    at the first draw ``a``, direction at the second draw ``a_updated``, bandwidth from the cross
    distances; the surrogate's gradient is minus that direction over ``B m``."""
    B, m, d = 2, 5, 2
    centre = torch.tensor([0.2, -0.1], dtype=DT)

    def log_target(a: torch.Tensor) -> torch.Tensor:
        return -4.0 * (a - centre).pow(2).sum(-1) + torch.sin(3 * a[..., 0])

    a = _particles(B, m, d, seed=5)
    a_updated = _particles(B, m, d, seed=6).requires_grad_(True)
    loss = amortized_svgd_loss(a_updated, log_target, None, fixed_particles=a)
    (grad,) = torch.autograd.grad(loss, a_updated)

    a_np, b_np = a.numpy(), a_updated.detach().numpy()
    expected = np.zeros_like(b_np)
    for b in range(B):
        dist_sq = np.array(
            [[((a_np[b, j] - b_np[b, i]) ** 2).sum() for i in range(m)] for j in range(m)]
        )
        median_sq = dist_sq.mean() / 2
        h = median_sq / (2 * np.log(m + 1.0))
        gamma = 1.0 / (1e-8 + 2 * h)
        for i in range(m):
            for j in range(m):
                x = a[b, j].clone().requires_grad_(True)
                (grad_q,) = torch.autograd.grad(log_target(x), x)
                diff = a_np[b, j] - b_np[b, i]
                kappa = np.exp(-gamma * dist_sq[j, i])
                kappa_grad = -2.0 * (diff * gamma) * kappa
                expected[b, i] += (kappa * grad_q.numpy() + kappa_grad) / m
    np.testing.assert_allclose(grad.numpy(), -expected / (B * m), rtol=1e-6, atol=1e-12)


@pytest.mark.parametrize("stein_draws", ["shared", "independent"])
def test_sampler_loss_uses_the_sampler_temperature(stein_draws: str) -> None:
    """``sampler_temperature=1.0`` (alpha only in V): the scores are ``grad min Q``, not over
    alpha; the draws are one set (shared) or two (independent, the first carrying the scores)."""
    model = _pendulum_sql(ent_coef=0.25, sampler_temperature=1.0, stein_draws=stein_draws)
    assert model.stein_temperature == 1.0
    assert _pendulum_sql(ent_coef=0.25).stein_temperature == 0.25
    obs = _particles(4, 1, 3, seed=7)[:, 0].float()

    def log_target(a: torch.Tensor) -> torch.Tensor:
        return min_q_over_particles(model.critic, obs, a)

    torch.manual_seed(11)
    got = model._sampler_loss(obs)
    torch.manual_seed(11)
    fixed = None
    if stein_draws == "independent":
        with torch.no_grad():
            fixed = model.actor.sample(obs, model.kernel_n_particles)
    actions = model.actor.sample(obs, model.kernel_n_particles)
    expected = amortized_svgd_loss(actions, log_target, None, fixed)
    assert got.item() == pytest.approx(expected.item(), rel=1e-6, abs=1e-9)
    scaled = _pendulum_sql(ent_coef=0.25, stein_draws=stein_draws)  # T = alpha
    scaled.policy.load_state_dict(model.policy.state_dict())
    torch.manual_seed(11)
    assert scaled._sampler_loss(obs).item() != pytest.approx(got.item(), rel=1e-3)


# ------------------------------------------------------------------------ options
@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("value_estimator", "importance"),
        ("value_estimator", "Particles"),
        ("value_estimator", None),
        ("stein_draws", "halves"),
        ("sampler_temperature", 0.0),
        ("sampler_temperature", -1.0),
        ("sampler_temperature", "auto"),
    ],
)
def test_invalid_options_raise(option: str, value: object) -> None:
    with pytest.raises(ValueError, match=option):
        _pendulum_sql(**{option: value})


def test_save_and_load_keep_the_options(tmp_path: Path) -> None:
    model = _pendulum_sql(
        value_estimator="particles", sampler_temperature=1.0, stein_draws="independent"
    )
    model.save(tmp_path / "sql")
    loaded = SQL.load(tmp_path / "sql")
    assert loaded.value_estimator == "particles"
    assert loaded.sampler_temperature == 1.0
    assert loaded.stein_draws == "independent"
    assert loaded.stein_temperature == 1.0


def test_a_model_saved_without_the_options_loads_with_the_defaults(tmp_path: Path) -> None:
    model = _pendulum_sql(value_estimator="particles", stein_draws="independent")
    for name in ("value_estimator", "sampler_temperature", "stein_draws"):
        del model.__dict__[name]  # as a model saved before the options existed
    model.save(tmp_path / "old")
    loaded = SQL.load(tmp_path / "old")
    assert (loaded.value_estimator, loaded.sampler_temperature, loaded.stein_draws) == (
        "uniform",
        None,
        "shared",
    )


# ------------------------------------------------------------------------ the registry preset
def test_sql_s2ac_preset_holds_the_authors_settings() -> None:
    cls, preset = resolve_algorithm("sql-s2ac")
    assert cls is SQL
    check_hyperparameters(cls, preset)
    expected = {
        "value_estimator": "particles",
        "sampler_temperature": 1.0,
        "stein_draws": "independent",
        "value_n_particles": 10,
        "kernel_n_particles": 10,
        "ent_coef": 0.2,
        "learning_rate": 1e-3,
        "batch_size": 100,
        "tau": 0.005,
        "target_update_interval": 1,
        "gamma": 0.99,
        "learning_starts": 1000,
        "random_exploration_steps": 10_000,
        "train_freq": 50,
        "gradient_steps": 50,
    }
    assert {key: preset[key] for key in expected} == expected
    assert preset["policy_kwargs"]["net_arch"] == {"pi": [256, 256, 256], "qf": [256, 256]}
    # The plain `sql` stays the uniform estimator with SB3's defaults.
    assert resolve_algorithm("sql") == (SQL, {})
    assert "S2AC authors" not in ALGORITHMS["sql"].summary


def test_sql_s2ac_preset_builds_the_authors_networks() -> None:
    cls, preset = resolve_algorithm("sql-s2ac")
    model = cls("MlpPolicy", "Pendulum-v1", seed=0, **{**preset, "buffer_size": 1000})
    widths = [
        layer.out_features for layer in model.actor.f_psi if isinstance(layer, torch.nn.Linear)
    ]
    assert widths == [256, 256, 256, 1]
    assert all(
        isinstance(layer, torch.nn.ReLU)
        for layer in model.actor.f_psi
        if not isinstance(layer, torch.nn.Linear)
    )
    critic_widths = [
        layer.out_features for layer in model.critic.qf0 if isinstance(layer, torch.nn.Linear)
    ]
    assert critic_widths == [256, 256, 1]
    assert len(model.critic.q_networks) == 2
    assert model.policy.n_eval_particles == 10
    assert model.policy.action_selection == "softmax"
    assert model.policy.selection_temperature == 1.0
    assert model.actor.optimizer.param_groups[0]["lr"] == 1e-3
    assert model.critic.optimizer.param_groups[0]["lr"] == 1e-3


def test_sql_s2ac_preset_trains_on_pendulum_with_tiny_networks() -> None:
    cls, preset = resolve_algorithm("sql-s2ac")
    kwargs = {
        **preset,
        "buffer_size": 1000,
        "learning_starts": 50,
        "random_exploration_steps": 100,
        "policy_kwargs": {**preset["policy_kwargs"], "net_arch": {"pi": [8] * 3, "qf": [8] * 2}},
    }
    model = cls("MlpPolicy", "Pendulum-v1", seed=0, **kwargs)
    soft_values = []
    original = model.soft_value

    def recording_soft_value(obs):
        values = original(obs)
        soft_values.append(values)
        return values

    model.soft_value = recording_soft_value  # type: ignore[method-assign]
    model.learn(200)
    assert model.num_timesteps == 200
    assert model._n_updates == 150  # 50 gradient steps after steps 100, 150 and 200
    assert len(soft_values) == 150 and all(v.shape == (100,) for v in soft_values)
    assert all(torch.isfinite(v).all() for v in soft_values)
    action, _ = model.predict(model.observation_space.sample(), deterministic=True)
    assert model.action_space.contains(action)


def test_a_suite_with_a_bad_estimator_is_bad_input(tmp_path: Path) -> None:
    suite = {
        "name": "sqlbad",
        "algorithms": {"sql-s2ac": {"hyperparams": {"default": {"value_estimator": "bogus"}}}},
        "environments": ["Pendulum-v1"],
        "seeds": 1,
        "budget": 200,
    }
    path = tmp_path / "sqlbad.yaml"
    path.write_text(yaml.safe_dump(suite, sort_keys=False))
    out = tmp_path / "results"
    result = CliRunner().invoke(app, ["run", str(path), "--out", str(out)])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.output
    assert "value_estimator" in lines[0] and "particles" in lines[0]
    assert not out.exists()
