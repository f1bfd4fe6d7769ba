"""S2AC's mathematics: the critic energy, the sampler, the actor gradient, the losses (spec §1).

Everything is checked against an independent computation: SB3's critic through autograd, the
reference sampler ``maxbench.algos.svgd.svgd_sample`` (autograd scores), torch.distributions,
central finite differences. Tiny networks, float64 where numbers are compared closely.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from gymnasium import spaces
from stable_baselines3.common.policies import ContinuousCritic
from stable_baselines3.common.torch_layers import FlattenExtractor
from torch import nn

import maxbench.algos.s2ac.energy as energy_module
import maxbench.algos.s2ac.sampler as sampler_module
from maxbench.algos.entropy_check import FIG4A_COV
from maxbench.algos.s2ac import S2AC, S2ACPolicy
from maxbench.algos.s2ac.energy import AnalyticCritic, CriticEnergy
from maxbench.algos.s2ac.sampler import squashed_log_prob, stein_sample
from maxbench.algos.svgd import stein_direction, svgd_sample

F64 = torch.float64


@pytest.fixture(autouse=True, scope="module")
def _single_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(autouse=True)
def _keep_float64_observations(monkeypatch):
    """SB3 casts Box observations to float32; keep float64 so that comparisons are exact."""
    import stable_baselines3.common.policies as sb3_policies

    original = sb3_policies.preprocess_obs

    def preprocess(obs, space, normalize_images=True):
        if isinstance(obs, torch.Tensor) and obs.dtype == F64:
            return obs
        return original(obs, space, normalize_images=normalize_images)

    monkeypatch.setattr(sb3_policies, "preprocess_obs", preprocess)


def _critic(activation: type[nn.Module], obs_dim: int = 3, act_dim: int = 2) -> ContinuousCritic:
    obs_space = spaces.Box(-1, 1, (obs_dim,), dtype=np.float32)
    act_space = spaces.Box(-1, 1, (act_dim,), dtype=np.float32)
    torch.manual_seed(0)
    critic = ContinuousCritic(
        obs_space,
        act_space,
        net_arch=[7, 5],
        features_extractor=FlattenExtractor(obs_space),
        features_dim=obs_dim,
        activation_fn=activation,
        n_critics=2,
        share_features_extractor=False,
    )
    return critic.to(F64)


def _reference_min_q(critic: ContinuousCritic, obs: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """min_k Q_k through SB3's own forward, one row per (state, particle)."""
    B, m, d = a.shape
    q = torch.cat(critic(obs.repeat_interleave(m, 0), a.reshape(B * m, d)), dim=1)
    return q.min(dim=1).values.reshape(B, m)


# -- the energy ---------------------------------------------------------------------------------
@pytest.mark.parametrize("activation", [nn.ELU, nn.ReLU, nn.Tanh, nn.LeakyReLU])
@pytest.mark.parametrize("split", [False, True])
def test_analytic_energy_matches_autograd(activation, split, monkeypatch):
    if split:
        monkeypatch.setattr(energy_module, "SPLIT_BACKWARD_MIN_ROWS", 0)
    critic = _critic(activation)
    analytic = AnalyticCritic.of(critic)
    assert analytic is not None
    torch.manual_seed(1)
    obs = torch.randn(4, 3, dtype=F64)
    a = torch.randn(4, 6, 2, dtype=F64, requires_grad=True)
    q, grad = CriticEnergy(critic, obs, analytic).min_q_and_grad(a)
    q_ref = _reference_min_q(critic, obs, a)
    (grad_ref,) = torch.autograd.grad(q_ref.sum(), a, create_graph=True)
    torch.testing.assert_close(q, q_ref, rtol=0, atol=1e-12)
    torch.testing.assert_close(grad, grad_ref, rtol=0, atol=1e-12)
    # Second order (what the actor loss needs): a Hessian-vector product, against autograd's.
    v = torch.randn_like(a)
    hv, hv_ref = (
        torch.autograd.grad((g * v).sum(), a, allow_unused=True)[0] if g.requires_grad else None
        for g in (grad, grad_ref)
    )
    # piecewise-linear activations: no curvature (the analytic gradient is then a constant of
    # the actions: the critics' weights are outside autograd)
    hv = torch.zeros_like(a) if hv is None else hv
    hv_ref = torch.zeros_like(a) if hv_ref is None else hv_ref
    if activation is nn.ELU or activation is nn.Tanh:
        assert hv.abs().max() > 1e-3  # a real check: smooth activations have curvature
    torch.testing.assert_close(hv, hv_ref, rtol=0, atol=1e-12)


def test_the_energy_gives_the_critics_no_gradient():
    """The critics are the sampler's fixed target (spec §1.4): a loss on the energy's values and
    action-gradients differentiates w.r.t. the actions only, never the critics' weights (a
    compiled actor step builds its backward for every input that requires grad)."""
    critic = _critic(nn.ELU)
    obs = torch.randn(3, 3, dtype=F64)
    a = torch.randn(3, 5, 2, dtype=F64, requires_grad=True)
    q, grad = CriticEnergy(critic, obs, AnalyticCritic.of(critic)).min_q_and_grad(a)
    loss = q.sum() + grad.square().sum()
    weights = list(critic.parameters())
    gradients = torch.autograd.grad(loss, [a, *weights], allow_unused=True)
    assert gradients[0] is not None and gradients[0].abs().max() > 0
    assert all(g is None for g in gradients[1:])
    differentiable = AnalyticCritic.of(critic).weights()  # the default stays differentiable
    assert differentiable.hidden[0].requires_grad


@pytest.mark.parametrize("analytic", [True, False])
def test_detached_gradient_matches(analytic):
    critic = _critic(nn.ELU)
    obs = torch.randn(3, 3, dtype=F64)
    a = torch.randn(3, 5, 2, dtype=F64, requires_grad=True)
    energy = CriticEnergy(critic, obs, AnalyticCritic.of(critic) if analytic else None)
    q, grad = energy.min_q_and_detached_grad(a)
    q_ref, grad_ref = energy.min_q_and_grad(a.detach())
    torch.testing.assert_close(q.detach(), q_ref, rtol=0, atol=1e-12)
    torch.testing.assert_close(grad, grad_ref, rtol=0, atol=1e-12)
    assert q.requires_grad and not grad.requires_grad


def test_autograd_energy_path_matches_analytic():
    critic = _critic(nn.ELU)
    obs = torch.randn(3, 3, dtype=F64)
    a = torch.randn(3, 5, 2, dtype=F64)
    q1, g1 = CriticEnergy(critic, obs, AnalyticCritic.of(critic)).min_q_and_grad(a)
    with torch.no_grad():
        q2, g2 = CriticEnergy(critic, obs, None).min_q_and_grad(a)
    torch.testing.assert_close(q1, q2, rtol=0, atol=1e-12)
    torch.testing.assert_close(g1, g2, rtol=0, atol=1e-12)
    assert not g2.requires_grad


def test_predict_on_the_autograd_path_equals_the_analytic_path():
    """Acting takes the fast inference-mode path only when the gradient is analytic; a critic
    the analytic path cannot differentiate (GELU) still acts, through autograd."""
    obs = np.array([[0.3, -0.8, 0.5], [1.0, 0.0, -2.0]], dtype=np.float32)
    actions = []
    for analytic in (True, False):
        model = S2AC(
            "MlpPolicy", "Pendulum-v1", seed=3, policy_kwargs={"analytic_energy": analytic}
        )
        actions.append(model.predict(obs, deterministic=True)[0])
    np.testing.assert_allclose(actions[0], actions[1], atol=1e-5)
    gelu = S2AC("MlpPolicy", "Pendulum-v1", seed=3, policy_kwargs={"activation_fn": nn.GELU})
    assert gelu.policy._analytic_critic is None
    assert gelu.predict(obs, deterministic=True)[0].shape == (2, 1)


def test_layout_refuses_unknown_activations():
    assert AnalyticCritic.of(_critic(nn.GELU)) is None


# -- the sampler --------------------------------------------------------------------------------
@pytest.mark.parametrize("energy_on", ["post_tanh", "pre_tanh", "post_tanh_jacobian"])
@pytest.mark.parametrize("kernel_sigma", [None, 0.7])
def test_sampler_matches_reference_svgd_sample(energy_on, kernel_sigma):
    """The S2AC sampler equals svgd_sample with autograd scores of the log-target: min Q(s, tanh u)
    / T, min Q(s, u) / T, or min Q(s, tanh u) / T + log|det d tanh(u) / du|."""
    critic = _critic(nn.ELU)
    torch.manual_seed(2)
    obs = torch.randn(3, 3, dtype=F64)
    u0 = torch.randn(3, 6, 2, dtype=F64)
    log_q0 = torch.randn(3, 6, dtype=F64)
    temperature = 0.3
    energy = CriticEnergy(critic, obs, AnalyticCritic.of(critic))
    ours = stein_sample(
        energy,
        u0,
        log_q0,
        n_steps=4,
        step_size=0.1,
        kernel_sigma=kernel_sigma,
        energy_on=energy_on,
        temperature=temperature,
    )

    def log_target(u: torch.Tensor) -> torch.Tensor:  # svgd_sample divides it by T
        if energy_on == "pre_tanh":
            return _reference_min_q(critic, obs, u)
        q = _reference_min_q(critic, obs, torch.tanh(u))
        if energy_on == "post_tanh":
            return q
        jacobian = torch.distributions.TanhTransform().log_abs_det_jacobian(u, torch.tanh(u))
        return q + temperature * jacobian.sum(-1)

    ref = svgd_sample(u0, log_q0, log_target, 4, 0.1, sigma=kernel_sigma, temperature=temperature)
    torch.testing.assert_close(ours.particles, ref.particles, rtol=0, atol=1e-12)
    torch.testing.assert_close(ours.log_q, ref.log_q, rtol=0, atol=1e-12)
    assert (ours.particles - u0).abs().max() > 1e-3
    with torch.no_grad():  # acting: no log-density, the single-kernel field, no autograd
        acting = stein_sample(
            energy,
            u0,
            None,
            n_steps=4,
            step_size=0.1,
            kernel_sigma=kernel_sigma,
            energy_on=energy_on,
            temperature=temperature,
        )
    assert acting.log_q is None
    torch.testing.assert_close(acting.particles, ref.particles, rtol=0, atol=1e-12)


def test_jacobian_energy_targets_the_uniform_box_under_a_flat_critic():
    """With a constant Q the action-space target exp(Q / T) is uniform on the box. With the tanh
    log-Jacobian in the score, SVGD's particles target its exact u-space image, so tanh(u) ends
    with the uniform law's variance 1/3 per dimension; without it the u-space target is flat
    and the kernel's repulsion spreads the particles into the tanh saturation."""
    critic = _critic(nn.ELU, act_dim=1)
    for q_net in critic.q_networks:  # Q(s, a) = its last bias: no dependence on the action
        q_net[-1].weight.data.zero_()
    obs = torch.zeros(1, 3, dtype=F64)
    energy = CriticEnergy(critic, obs, AnalyticCritic.of(critic))
    u0 = torch.linspace(-0.5, 0.5, 40, dtype=F64).reshape(1, 40, 1)
    finals = {}
    with torch.no_grad():
        for energy_on in ("post_tanh_jacobian", "post_tanh"):
            finals[energy_on] = stein_sample(
                energy, u0, None, n_steps=600, step_size=0.1, energy_on=energy_on
            ).particles
    a = torch.tanh(finals["post_tanh_jacobian"])  # measured: variance 0.32 (40 particles)
    assert abs(float(a.var(unbiased=False)) - 1.0 / 3.0) < 0.02
    saturated = torch.tanh(finals["post_tanh"])  # measured: variance 0.8, |u| up to 7
    assert float(saturated.var(unbiased=False)) > 0.6
    assert finals["post_tanh"].abs().max() > 2.0 * finals["post_tanh_jacobian"].abs().max()


def test_squashed_log_prob_matches_torch_distributions():
    """With L = 0, log pi is the tanh-squashed Gaussian's log-density (spec §1.3)."""
    torch.manual_seed(3)
    mu, std = torch.randn(4, 3, dtype=F64), torch.rand(4, 3, dtype=F64) + 0.2
    base = torch.distributions.Normal(
        mu.unsqueeze(1).expand(4, 5, 3), std.unsqueeze(1).expand(4, 5, 3)
    )
    u = base.sample()
    log_q0 = base.log_prob(u).sum(-1)
    squashed = torch.distributions.TransformedDistribution(
        torch.distributions.Independent(base, 1), [torch.distributions.TanhTransform()]
    )
    torch.testing.assert_close(
        squashed_log_prob(u, log_q0), squashed.log_prob(torch.tanh(u)), rtol=1e-9, atol=1e-9
    )


# -- the actor gradient -------------------------------------------------------------------------
def _tiny_policy(**overrides) -> S2ACPolicy:
    obs_space = spaces.Box(-1, 1, (3,), dtype=np.float32)
    act_space = spaces.Box(-1, 1, (2,), dtype=np.float32)
    kwargs = {
        "net_arch": {"pi": [8, 8], "qf": [8, 8]},
        "n_particles": 5,
        "svgd_steps": 3,
        "svgd_step_size": 0.2,
        "kernel_sigma": 0.6,
        **overrides,
    }
    torch.manual_seed(4)
    policy = S2ACPolicy(obs_space, act_space, lambda _: 1e-3, **kwargs).to(F64)
    with torch.no_grad():  # keep sigma_theta strictly inside its clamp [0.1, 1] (differentiable)
        policy.actor.log_std.bias.fill_(math.log(0.5))
        policy.actor.log_std.weight.mul_(0.1)
        for p in policy.critic.parameters():  # a critic with some curvature at this scale
            p.mul_(3.0)
    return policy


def _actor_loss(policy: S2ACPolicy, obs: torch.Tensor, alpha: float = 0.2) -> torch.Tensor:
    torch.manual_seed(5)  # the same uniforms U for the initial particles every time
    particles, log_pi, energy = policy.sample(obs)
    q = energy.min_q(torch.tanh(particles))
    return (alpha * log_pi.mean(1) - q.mean(1)).mean()


def test_actor_gradient_matches_finite_differences():
    policy = _tiny_policy()
    for p in policy.critic.parameters():
        p.requires_grad_(False)
    obs = torch.randn(3, 3, dtype=F64)
    params = [policy.actor.mu.weight, policy.actor.log_std.weight, policy.actor.latent[0].weight]
    loss = _actor_loss(policy, obs)
    grads = torch.autograd.grad(loss, params)
    h = 1e-6
    for param, grad in zip(params, grads, strict=True):
        for index in [(0, 0), (1, 2), (0, 1)]:
            with torch.no_grad():
                original = param[index].item()
                param[index] = original + h
                up = _actor_loss(policy, obs).item()
                param[index] = original - h
                down = _actor_loss(policy, obs).item()
                param[index] = original
            numeric = (up - down) / (2 * h)
            assert grad[index].item() == pytest.approx(numeric, rel=1e-5, abs=1e-8)


def test_actor_gradient_flows_through_the_svgd_steps(monkeypatch):
    """Detaching the SVGD updates (field and trace) changes the actor gradient."""
    policy = _tiny_policy(kernel_sigma=None)
    obs = torch.randn(4, 3, dtype=F64)
    params = list(policy.actor.parameters())
    full = torch.autograd.grad(_actor_loss(policy, obs), params)

    original = sampler_module.svgd_field_and_trace

    def detached(u, scores, sigma=None):
        phi, trace, sigma2 = original(u, scores, sigma)
        return phi.detach(), trace.detach(), sigma2

    monkeypatch.setattr(sampler_module, "svgd_field_and_trace", detached)
    cut = torch.autograd.grad(_actor_loss(policy, obs), params)
    differences = [(a - b).abs().max().item() for a, b in zip(full, cut, strict=True)]
    assert max(differences) > 1e-3 * max(g.abs().max().item() for g in full)


def test_actor_step_freezes_the_critic():
    model = S2AC(
        "MlpPolicy",
        "Pendulum-v1",
        seed=0,
        batch_size=8,
        learning_starts=8,
        random_exploration_steps=0,
        n_particles=3,
        svgd_steps=2,
        policy_kwargs={"net_arch": [8]},
    )
    model.learn(16)
    for p in model.critic.parameters():
        p.grad = None
    before = [p.detach().clone() for p in model.actor.parameters()]
    obs = torch.as_tensor(np.stack([model.observation_space.sample() for _ in range(5)]))
    model._actor_step(obs, torch.tensor(0.2))
    assert all(p.grad is None and p.requires_grad for p in model.critic.parameters())
    assert any(not torch.equal(b, p) for b, p in zip(before, model.actor.parameters(), strict=True))


# -- variants and options -----------------------------------------------------------------------
def _model(**kwargs) -> S2AC:
    defaults = {
        "seed": 0,
        "batch_size": 8,
        "learning_starts": 8,
        "random_exploration_steps": 0,
        "train_freq": 1,
        "gradient_steps": 1,
        "n_particles": 4,
        "svgd_steps": 2,
        "policy_kwargs": {"net_arch": [8]},
    }
    return S2AC("MlpPolicy", "Pendulum-v1", **{**defaults, **kwargs})


def test_sampler_temperature_follows_alpha():
    model = _model(ent_coef="auto_0.5", sampler_temperature="alpha")
    assert float(model.policy.temperature) == pytest.approx(0.5)
    model.learn(24)
    alpha = float(torch.exp(model.log_ent_coef.detach()))
    assert alpha != pytest.approx(0.5)
    assert float(model.policy.temperature) == pytest.approx(alpha)
    assert float(_model(sampler_temperature=2.0).policy.temperature) == 2.0


def test_fixed_init_has_no_actor_parameters_and_samples_n0_sigma0():
    model = _model(init="fixed", init_std=0.5)
    assert model.actor.optimizer is None and not list(model.actor.parameters())
    obs = torch.zeros((2000, 3))
    u0, log_q0 = model.policy.initial_particles(obs)
    assert u0.abs().max() <= 1.5 + 1e-6  # truncated at 3 sigma_0
    assert float(u0.std()) == pytest.approx(0.5 * 0.9866, rel=0.02)  # std of N(0,1) cut at +-3
    expected = torch.distributions.Normal(0.0, 0.5).log_prob(u0).sum(-1)
    torch.testing.assert_close(log_q0, expected)
    model.learn(16)


def test_deterministic_predict_ignores_the_rng_and_the_batch():
    model = _model()
    model.learn(16)
    obs = np.stack([model.observation_space.sample() for _ in range(6)])
    torch.manual_seed(0)
    first, _ = model.predict(obs, deterministic=True)
    torch.manual_seed(1)
    second, _ = model.predict(obs[::-1].copy(), deterministic=True)
    np.testing.assert_allclose(first, second[::-1], rtol=1e-6, atol=1e-6)
    torch.manual_seed(0)
    a, _ = model.predict(obs, deterministic=False)
    b, _ = model.predict(obs, deterministic=False)
    assert not np.allclose(a, b)


def test_max_selection_picks_the_best_particle():
    model = _model()
    model.learn(16)
    obs = torch.as_tensor(np.stack([model.observation_space.sample() for _ in range(4)]))
    with torch.no_grad():
        particles, _, energy = model.policy.sample(obs, with_log_prob=False, deterministic=True)
        actions = torch.tanh(particles)
        chosen = model.policy._predict(obs, deterministic=True)
        q = energy.min_q(actions)
    best = actions[torch.arange(4), q.argmax(1)]
    torch.testing.assert_close(chosen, best)


def test_pre_tanh_energy_differs():
    obs = torch.randn(3, 3)
    outs = []
    for energy_on in ("post_tanh", "pre_tanh"):
        model = _model(energy_on=energy_on)
        with torch.no_grad():
            outs.append(model.policy._predict(obs, deterministic=True))
    assert not torch.allclose(outs[0], outs[1])


def test_sampler_options_belong_to_the_algorithm():
    with pytest.raises(ValueError, match="n_particles"):
        _model(policy_kwargs={"n_particles": 3})
    with pytest.raises(ValueError, match="energy_on"):
        _model(energy_on="tanh")
    with pytest.raises(ValueError, match="sampler_temperature"):
        _model(sampler_temperature=0.0)


class _QuadraticEnergy:
    """Stub energy ``min Q(s, a) = -|a - c|^2 / (2 s^2)``: target N(c, s^2) (T = 1)."""

    def __init__(self, centre: torch.Tensor, scale: float) -> None:
        self.centre, self.scale = centre, scale

    def min_q_and_grad(self, a: torch.Tensor, create_graph: bool = False):
        q = -((a - self.centre) ** 2).sum(-1) / (2 * self.scale**2)
        return q, -(a - self.centre) / self.scale**2


def test_amortized_sampler_ascends_the_stein_direction():
    """Trained along Delta (spec §1.6), a_psi settles where the Stein direction vanishes.

    Fixed particles near a_psi's start (the direction only informs within the kernel's reach of
    the particles); Delta(a_psi) must shrink by two orders of magnitude and a_psi stay inside the
    particle cloud. (Delta matches locations, not spread: for particles distributed as the target
    its expectation vanishes by Stein's identity.)
    """
    model = _model(amortized=True, learning_rate=3e-3, policy_kwargs={"net_arch": [32, 32]})
    centre = torch.tensor([0.3])  # Pendulum: one action dimension
    energy = _QuadraticEnergy(centre, 0.3)
    obs = torch.zeros((16, 3))
    generator = torch.Generator().manual_seed(0)
    particles = (centre + 0.3 * torch.randn((1, 8, 1), generator=generator)).expand(16, 8, 1)
    _, scores = energy.min_q_and_grad(particles)

    def direction_at_samples() -> tuple[torch.Tensor, float]:
        with torch.no_grad():
            samples = torch.tanh(model.amortized(obs[:1], torch.rand((1, 500, 1))))
            delta = stein_direction(particles[:1], scores[:1], samples)
        return samples, float(delta.abs().mean())

    _, initial = direction_at_samples()
    for _ in range(300):
        model._amortized_step(obs, particles, scores)
    samples, final = direction_at_samples()
    assert final < initial / 100, (initial, final)
    assert particles.min() < samples.min() and samples.max() < particles.max()


@pytest.mark.parametrize("sigma", [None, 0.4])
def test_acting_field_equals_svgd_field(sigma):
    from maxbench.algos.s2ac.sampler import acting_field
    from maxbench.algos.svgd import svgd_field

    torch.manual_seed(6)
    u, s = torch.randn(5, 7, 3, dtype=F64), torch.randn(5, 7, 3, dtype=F64)
    torch.testing.assert_close(
        acting_field(u, s, sigma), svgd_field(u, s, sigma), rtol=0, atol=1e-12
    )


# -- the CLI: maxbench entropy / maxbench multigoal ----------------------------------------------
def _cli(*args: str):
    from typer.testing import CliRunner

    from maxbench.cli import app

    return CliRunner().invoke(app, list(args))


def test_entropy_command_gaussian_within_5_percent(tmp_path):
    result = _cli(
        "entropy",
        "--sweep",
        "gaussian",
        "--json",
        str(tmp_path / "e.json"),
        "--png",
        str(tmp_path / "e.png"),
    )
    assert result.exit_code == 0, result.output
    data = json.loads((tmp_path / "e.json").read_text())
    (row,) = data["rows"]
    truth = 0.5 * math.log((2 * math.pi * math.e) ** 2 * np.linalg.det(np.array(FIG4A_COV)))
    assert row["truth"] == pytest.approx(truth, rel=1e-12)
    assert abs(row["estimate"] - truth) / truth < 0.05
    assert f"{truth:.4f}" in result.output and "Hessian term" in result.output
    assert (tmp_path / "e.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_entropy_command_std_sweep_rises(tmp_path):
    result = _cli("entropy", "--sweep", "std", "--json", str(tmp_path / "e.json"))
    assert result.exit_code == 0, result.output
    data = json.loads((tmp_path / "e.json").read_text())
    assert data["monotone"] == {"std": True}
    estimates = [row["estimate"] for row in sorted(data["rows"], key=lambda r: r["truth"])]
    assert estimates == sorted(estimates) and len(estimates) == 4
    assert "std sweep: the estimate rises" in result.output


@pytest.mark.parametrize("args", [["--particles", "1"], ["--steps", "-1"], ["--step-size", "0"]])
def test_entropy_command_rejects_bad_settings(args):
    result = _cli("entropy", "--sweep", "gaussian", *args)
    assert result.exit_code == 2
    assert result.output.count("\n") == 1 and result.output.startswith("error:")


def _fake_cell(root, algo: str, target: str, model, seed: int, env_id: str = "MultiGoal-v0"):
    folder = root / "suite" / algo / env_id / f"seed_{seed}"
    folder.mkdir(parents=True)
    model.save(folder / "model.zip")
    spec = {
        "algo": algo,
        "algo_target": target,
        "env_id": env_id,
        "seed": seed,
        "hyperparams": {"ent_coef": 0.2},
    }
    (folder / "run.json").write_text(json.dumps({"status": "finished", "spec": spec}))


def test_multigoal_command_draws_and_counts(tmp_path):
    from stable_baselines3 import SAC

    import maxbench.envs  # noqa: F401

    s2ac = S2AC(
        "MlpPolicy",
        "MultiGoal-v0",
        seed=0,
        learning_starts=32,
        batch_size=16,
        random_exploration_steps=0,
        train_freq=1,
        gradient_steps=1,
        n_particles=4,
        svgd_steps=2,
        policy_kwargs={"net_arch": [16]},
    )
    s2ac.learn(48)
    sac = SAC(
        "MlpPolicy",
        "MultiGoal-v0",
        seed=0,
        learning_starts=32,
        batch_size=16,
        policy_kwargs={"net_arch": [16]},
    )
    sac.learn(48)
    _fake_cell(tmp_path, "s2ac", "maxbench.algos.s2ac:S2AC", s2ac, 0)
    _fake_cell(tmp_path, "s2ac", "maxbench.algos.s2ac:S2AC", s2ac, 1)
    _fake_cell(tmp_path, "sac", "sac", sac, 0)
    out = tmp_path / "figures"
    result = _cli("multigoal", str(tmp_path), "--out", str(out), "--episodes", "2")
    assert result.exit_code == 0, result.output
    rows = json.loads((out / "goal_counts.json").read_text())
    assert {(r["agent"], r["env"]) for r in rows} == {
        (agent, env)
        for agent in ("s2ac", "sac")
        for env in ("MultiGoal-v0", "MultiGoalObstacle-v0")
    }
    s2ac_row = next(r for r in rows if r["agent"] == "s2ac" and r["env"] == "MultiGoal-v0")
    assert s2ac_row["episodes"] == 4 and s2ac_row["seeds"] == "0 1"  # two seeds pooled
    goal_columns = [key for key in s2ac_row if key.startswith("G")]
    assert len(goal_columns) == 4
    assert sum(s2ac_row[k] for k in goal_columns) + s2ac_row["no_goal"] == 4
    for env in ("MultiGoal-v0", "MultiGoalObstacle-v0"):
        assert (out / f"multigoal_{env}.png").read_bytes()[:4] == b"\x89PNG"
    assert (out / "goal_counts.csv").read_text().startswith("agent,env")
    assert "distinct goals" in result.output


def test_multigoal_command_explains_missing_runs(tmp_path):
    missing = _cli("multigoal", str(tmp_path / "nowhere"))
    assert missing.exit_code == 2 and "does not exist" in missing.output
    (tmp_path / "x" / "seed_0").mkdir(parents=True)
    (tmp_path / "x" / "seed_0" / "run.json").write_text(
        json.dumps({"spec": {"env_id": "Pendulum-v1"}})
    )
    empty = _cli("multigoal", str(tmp_path))
    assert empty.exit_code == 2 and "Pendulum-v1" in empty.output
    assert empty.output.count("\n") == 1


def test_target_energy_sees_polyak_updates():
    """SB3's polyak_update writes through .data (no version bump): no stale weights allowed."""
    from stable_baselines3.common.utils import polyak_update

    policy = _tiny_policy()
    obs = torch.randn(3, 3, dtype=F64)
    a = torch.rand(3, 5, 2, dtype=F64) * 2 - 1
    with torch.no_grad():
        before = policy.target_energy(obs).min_q(a)
        for p in policy.critic.parameters():
            p.add_(0.3)
        polyak_update(policy.critic.parameters(), policy.critic_target.parameters(), 0.5)
        after = policy.target_energy(obs).min_q(a)
        expected = _reference_min_q(policy.critic_target, obs, a)
    assert not torch.allclose(before, after)
    torch.testing.assert_close(after, expected, rtol=0, atol=1e-12)
