"""SoftGAC (spec §3): bridge, control energy, temperature rule, losses and SB3's contract.

The mathematics is checked against independent computations: per-step Gaussian KLs from
``torch.distributions``, the bridge's exact 1-D marginal law propagated on a grid (for the entropy
bound), and the losses recomputed by hand from the same random draws.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import torch
from sb3_contrib.common.torch_layers import BatchRenorm1d
from sb3_contrib.crossq.policies import CrossQCritic
from stable_baselines3.common.policies import ContinuousCritic
from stable_baselines3.common.type_aliases import ReplayBufferSamples
from torch.distributions import Normal, kl_divergence

import maxbench.envs  # noqa: F401  (registers MultiGoal-v0)
from maxbench.algos.softgac import (
    SIGMA_SQ_EPS,
    BridgeNetwork,
    SoftGAC,
    control_energy,
    per_step_control_energy,
    reference_transition,
    sample_bridge_noise,
)
from maxbench.algos.softgac.bridge import LAYER_NORM_EPS, bridge_step_hidden
from maxbench.algos.svgd import tanh_log_det_jacobian

from sb3_contract import SB3Contract

TINY_POLICY = {"net_arch": [16], "n_bridge_steps": 3, "bridge_hidden_size": 16}
TINY = {
    "learning_starts": 16,
    "batch_size": 16,
    "gradient_steps": 1,
    "policy_delay": 1,
    "policy_kwargs": TINY_POLICY,
}


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """One torch thread, as maxbench's workers run (DESIGN.md): on a busy 2-core machine two
    OpenMP threads make each small LayerNorm thousands of times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_model(**overrides: Any) -> SoftGAC:
    return SoftGAC("MlpPolicy", "Pendulum-v1", seed=0, **{**TINY, **overrides})


def filled_model(steps: int = 40, **overrides: Any) -> SoftGAC:
    """A tiny model whose replay buffer holds ``steps`` transitions (and a few updates done)."""
    model = tiny_model(**overrides)
    model.learn(steps)
    return model


def randomised_bridge(
    features_dim: int, action_dim: int, n_steps: int, hidden: int, seed: int
) -> BridgeNetwork:
    """A float64 bridge whose scale heads are perturbed, so that sigma_k varies with (s, z).

    sigma_k stays within about [0.75, 1.33]: there the 1e-6 that the control energy adds to sigma^2
    changes each (k, d) term by less than 4e-7 (by 1e-6 (1 - 1/sigma^2) / 2).
    """
    torch.manual_seed(seed)
    net = BridgeNetwork(features_dim, action_dim, n_steps, hidden).double()
    with torch.no_grad():
        for step in net.steps:
            step.scale_weight.normal_(0.0, 0.02)
            step.scale_bias += 0.1 * torch.randn(action_dim, dtype=torch.float64)
    return net


# -- the control energy --------------------------------------------------------------------------
def test_path_follows_the_bridge_recursion() -> None:
    net = randomised_bridge(4, 3, 5, 8, seed=1)
    features = torch.randn(7, 4, dtype=torch.float64)
    base, noise = sample_bridge_noise(7, 5, 3, dtype=torch.float64)
    path = net.path(features, base, noise)
    h = 1 / 5
    torch.testing.assert_close(path.latents[:, 0], base)
    for k, step in enumerate(net.steps):
        drift, sigma = step(features, path.latents[:, k])
        torch.testing.assert_close(path.drifts[:, k], drift)
        torch.testing.assert_close(path.sigmas[:, k], sigma)
        expected = path.latents[:, k] + h * drift + math.sqrt(2 * h) * sigma * noise[:, k]
        torch.testing.assert_close(path.latents[:, k + 1], expected)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_control_energy_is_the_sum_of_per_step_kls(dtype: torch.dtype) -> None:
    net = randomised_bridge(4, 3, 6, 16, seed=2).to(dtype)
    features = torch.randn(64, 4, dtype=dtype)
    base, noise = sample_bridge_noise(64, 6, 3, dtype=dtype)
    with torch.no_grad():
        path = net.path(features, base, noise)
    assert path.sigmas.std() > 0.02  # the scales really vary, within the documented range
    assert float(path.sigmas.min()) > 0.75 and float(path.sigmas.max()) < 1.33
    h = 1 / 6
    per_step = []
    for k in range(6):
        z = path.latents[:, k]
        actor = Normal(z + h * path.drifts[:, k], math.sqrt(2 * h) * path.sigmas[:, k])
        reference = Normal(z - 2 * h * torch.tanh(z), math.sqrt(2 * h))
        per_step.append(kl_divergence(actor, reference).sum(-1))
    expected = torch.stack(per_step, dim=1)
    torch.testing.assert_close(per_step_control_energy(path), expected, atol=1e-5, rtol=0)
    torch.testing.assert_close(control_energy(path), expected.sum(1), atol=1e-5, rtol=0)
    # Exactly (float64): each term is the KL for the actor variance 2h (sigma^2 + 1e-6).
    if dtype == torch.float64:
        regularised = [
            kl_divergence(
                Normal(
                    path.latents[:, k] + h * path.drifts[:, k],
                    torch.sqrt(2 * h * (path.sigmas[:, k] ** 2 + SIGMA_SQ_EPS)),
                ),
                Normal(*reference_transition(path.latents[:, k], h)),
            ).sum(-1)
            for k in range(6)
        ]
        torch.testing.assert_close(
            control_energy(path), torch.stack(regularised, 1).sum(1), atol=1e-12, rtol=0
        )
    ref_mean, ref_std = reference_transition(path.latents[:, 0], h)
    torch.testing.assert_close(
        ref_mean, path.latents[:, 0] - 2 * h * torch.tanh(path.latents[:, 0])
    )
    assert ref_std == pytest.approx(math.sqrt(2 * h))


# -- the entropy bound, on the exact 1-D marginal -------------------------------------------------
GRID = torch.linspace(-14.0, 14.0, 1401, dtype=torch.float64)
DZ = float(GRID[1] - GRID[0])


def _propagate(drift_and_sigma, n_steps: int) -> list[torch.Tensor]:
    """Densities of z_0..z_K on GRID: p_{k+1}(z') = int p_k(z) N(z'; z + h f, 2h sigma^2) dz."""
    h = 1 / n_steps
    density = 0.5 / torch.cosh(GRID) ** 2  # the logistic base law of z_0 = atanh(U)
    densities = [density]
    for k in range(n_steps):
        drift, sigma = drift_and_sigma(k)
        transition = Normal((GRID + h * drift)[:, None], (math.sqrt(2 * h) * sigma)[:, None])
        density = (density[:, None] * transition.log_prob(GRID[None, :]).exp()).sum(0) * DZ
        densities.append(density)
    return densities


def _action_entropy(density: torch.Tensor) -> float:
    """H(pi) of a = tanh(z): H(z) + E[log(1 - tanh^2 z)]."""
    entropy_z = -(density * density.clamp_min(1e-300).log()).sum() * DZ
    return float(entropy_z + (density * tanh_log_det_jacobian(GRID[:, None])).sum() * DZ)


def _kl(p: torch.Tensor, q: torch.Tensor) -> float:
    return float((p * (p.clamp_min(1e-300).log() - q.clamp_min(1e-300).log())).sum() * DZ)


def _reference(k: int) -> tuple[torch.Tensor, torch.Tensor]:
    return -2.0 * torch.tanh(GRID), torch.ones_like(GRID)


@pytest.mark.parametrize("drift_scale", [1.0, 5.0])
def test_expected_control_energy_bounds_negative_entropy_in_1d(drift_scale: float) -> None:
    n_steps = 6
    net = randomised_bridge(2, 1, n_steps, 16, seed=3)
    with torch.no_grad():
        for step in net.steps:
            step.drift_weight *= drift_scale
    state = torch.tensor([[0.4, -1.2]], dtype=torch.float64)
    features = state.expand(GRID.shape[0], 2)

    def actor(k: int) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.no_grad():
            drift, sigma = net.steps[k](features, GRID[:, None])
        return drift[:, 0], sigma[:, 0]

    densities = _propagate(actor, n_steps)
    assert float(densities[-1].sum() * DZ) == pytest.approx(1.0, abs=1e-6)
    # E[C] on the grid: sum_k E_{p_k}[KL_k], each KL from torch.distributions.
    expected_energy = 0.0
    h = 1 / n_steps
    for k in range(n_steps):
        drift, sigma = actor(k)
        step_kl = kl_divergence(
            Normal(GRID + h * drift, math.sqrt(2 * h) * sigma),
            Normal(GRID - 2 * h * torch.tanh(GRID), math.sqrt(2 * h)),
        )
        expected_energy += float((densities[k] * step_kl).sum() * DZ)
    # ... agrees with the Monte Carlo mean of C over sampled paths,
    torch.manual_seed(4)
    with torch.no_grad():
        base, noise = sample_bridge_noise(20_000, n_steps, 1, dtype=torch.float64)
        energies = control_energy(net.path(state.expand(20_000, 2), base, noise))
    standard_error = float(energies.std()) / math.sqrt(energies.numel())
    assert float(energies.mean()) == pytest.approx(expected_energy, abs=4 * standard_error)
    # ... and bounds both the KL of the marginals (exact) and -H(pi) + log|A| (|A| = 2).
    reference_density = _propagate(_reference, n_steps)[-1]
    assert expected_energy >= _kl(densities[-1], reference_density) > 0.0
    negative_entropy_bound = math.log(2.0) - _action_entropy(densities[-1])
    assert negative_entropy_bound > 0.0
    assert expected_energy >= negative_entropy_bound


def test_euler_reference_is_nearly_but_not_exactly_uniform() -> None:
    """The K-step Euler reference leaves sech^2/2 only approximately stationary: the measured gap
    KL(r_K || uniform) bounds how far -H(pi) + log|A| can exceed E[C] (C = 0 for the reference)."""
    reference_density = _propagate(_reference, 6)[-1]
    gap = math.log(2.0) - _action_entropy(reference_density)
    assert 0.0 < gap < 0.01  # 0.0045 nats for K = 6
    assert math.log(2.0) - _action_entropy(_propagate(_reference, 24)[-1]) < gap


# -- the actor at initialisation, determinism, gradients -----------------------------------------
def test_sigma_is_one_at_initialisation_for_every_step() -> None:
    model = tiny_model(policy_kwargs={**TINY_POLICY, "n_bridge_steps": 4})
    obs = torch.as_tensor(np.stack([model.observation_space.sample() for _ in range(32)]))
    with torch.no_grad():
        path = model.actor.sample_path(obs)
    assert path.sigmas.shape == (32, 4, 1)
    torch.testing.assert_close(path.sigmas, torch.ones_like(path.sigmas), atol=1e-7, rtol=0)


def test_zero_noise_gives_the_deterministic_prediction() -> None:
    model = filled_model()
    obs = np.stack([model.observation_space.sample() for _ in range(5)])
    predicted, _ = model.predict(obs, deterministic=True)
    again, _ = model.predict(obs, deterministic=True)
    np.testing.assert_array_equal(predicted, again)
    with torch.no_grad():
        zeros = torch.zeros(5, model.actor.n_bridge_steps, 1)
        path = model.actor.path_from_noise(torch.as_tensor(obs), zeros[:, 0], zeros)
    action = model.policy.unscale_action(torch.tanh(path.final_latent).numpy())
    np.testing.assert_allclose(predicted, action, rtol=0, atol=1e-6)
    sampled, _ = model.predict(obs, deterministic=False)
    assert not np.allclose(sampled, predicted)


def test_actor_loss_gradients_reach_every_step() -> None:
    model = filled_model(policy_kwargs={**TINY_POLICY, "n_bridge_steps": 4})
    obs = model.replay_buffer.sample(16).observations
    loss, _ = model._actor_loss(obs, torch.tensor(0.1))
    model.actor.optimizer.zero_grad()
    loss.backward(inputs=list(model.actor.parameters()))
    for k, step in enumerate(model.actor.bridge.steps):
        for name, param in step.named_parameters():
            assert param.grad is not None and torch.isfinite(param.grad).all(), (k, name)
            assert param.grad.abs().sum() > 0, f"no gradient reaches step {k}'s {name}"


@pytest.mark.parametrize("deterministic", [False, True])
def test_swapped_parameters_reach_the_bridge(deterministic: bool) -> None:
    """The engine's compiled gradients swap the bridge's parameters (``torch.func``): its
    paths then use the swapped ones (the cached list would leave their gradients zero), the
    same gradients as ``backward``, and afterwards its own again."""
    from maxbench.engine.compiled import ParameterSwap

    net = randomised_bridge(4, 3, 3, 8, seed=2)
    features = torch.randn(5, 4, dtype=torch.float64)
    base, noise = sample_bridge_noise(5, 3, 3, dtype=torch.float64)

    def loss() -> torch.Tensor:
        if deterministic:
            return net.final_latent(features, deterministic=True).square().sum()
        return net.path(features, base, noise).final_latent.square().sum()

    loss().backward()
    # (the deterministic pass leaves the scale heads unused: no gradient, zeros for a transform)
    expected = [torch.zeros_like(p) if p.grad is None else p.grad.clone() for p in net.parameters()]
    net.zero_grad(set_to_none=True)
    ParameterSwap(net).gradients_into(loss)
    for param, reference in zip(net.parameters(), expected, strict=True):
        torch.testing.assert_close(param.grad, reference)
    assert net._current_step_parameters() is net._step_parameters


# -- the losses, recomputed by hand from the same random draws ------------------------------------
def test_critic_target_uses_alpha_times_control_energy() -> None:
    model = filled_model()
    data = model.replay_buffer.sample(16)
    alpha = torch.tensor(0.37)
    torch.manual_seed(11)
    loss = model._critic_loss(data, alpha)
    torch.manual_seed(11)
    with torch.no_grad():
        path = model.actor.sample_path(data.next_observations)
        next_q = torch.cat(
            model.critic_target(data.next_observations, torch.tanh(path.final_latent)), 1
        )
        soft = next_q.min(1, keepdim=True).values - alpha * control_energy(path)[:, None]
        target = data.rewards + (1 - data.dones) * model.gamma * soft
        q1, q2 = model.critic(data.observations, data.actions)
        expected = 0.5 * (((q1 - target) ** 2).mean() + ((q2 - target) ** 2).mean())
    torch.testing.assert_close(loss.detach(), expected)


@pytest.mark.parametrize("scheme", ["random", "antithetic"])
def test_actor_loss_is_alpha_c_minus_min_q_over_particles(scheme: str) -> None:
    model = filled_model(n_particles=4, particle_scheme=scheme)
    obs = model.replay_buffer.sample(8).observations
    alpha = torch.tensor(0.25)
    torch.manual_seed(5)
    loss, mean_energy = model._actor_loss(obs, alpha)
    torch.manual_seed(5)
    base, noise = sample_bridge_noise(8, 3, 1, n_particles=4, scheme=scheme)
    repeated = obs.repeat_interleave(4, dim=0)
    with torch.no_grad():
        path = model.actor.path_from_noise(repeated, base, noise)
        q = torch.cat(model.critic(repeated, torch.tanh(path.final_latent)), 1).min(1).values
        energy = control_energy(path)
    torch.testing.assert_close(loss.detach(), (alpha * energy - q).mean())
    torch.testing.assert_close(mean_energy.detach(), energy.mean())


def test_antithetic_noise_pairs_are_negations_grouped_by_state() -> None:
    base, noise = sample_bridge_noise(3, 2, 2, n_particles=5, scheme="antithetic")
    base, noise = base.reshape(3, 5, 2), noise.reshape(3, 5, 2, 2)
    torch.testing.assert_close(base[:, 2:4], -base[:, 0:2])
    torch.testing.assert_close(noise[:, 2:4], -noise[:, 0:2])
    assert not torch.allclose(base[:, 4], -base[:, 0])  # the odd one out is independent
    with pytest.raises(ValueError, match="particle scheme"):
        sample_bridge_noise(3, 2, 2, scheme="sobol")


# -- the temperature -----------------------------------------------------------------------------
@pytest.mark.parametrize(("offset", "rises"), [(+0.5, True), (-0.5, False)])
def test_temperature_step_follows_the_energy_budget(offset: float, rises: bool) -> None:
    model = tiny_model()
    before = float(model.current_alpha())
    mean_energy = torch.tensor(model.control_energy_target + offset)
    loss = model.temperature_loss(mean_energy)
    model.ent_coef_optimizer.zero_grad()
    loss.backward()
    # d loss / d log alpha = alpha (C_target - mean C)
    assert float(model.log_ent_coef.grad) == pytest.approx(-before * offset, rel=1e-5)
    model.ent_coef_optimizer.step()
    assert (float(model.current_alpha()) > before) is rises


@pytest.mark.parametrize(("target", "rises"), [(1e-9, True), (1e6, False)])
def test_training_moves_alpha_towards_the_energy_budget(target: float, rises: bool) -> None:
    model = filled_model(target_control_energy=target)
    before = float(model.current_alpha())
    model.train(gradient_steps=5, batch_size=16)
    assert (float(model.current_alpha()) > before) is rises


def test_energy_target_and_temperature_options() -> None:
    assert tiny_model().control_energy_target == pytest.approx(0.2 * 3 * 1)
    assert tiny_model(target_control_energy="auto_0.5").control_energy_target == pytest.approx(1.5)
    assert tiny_model(target_control_energy=2.5).control_energy_target == 2.5
    assert float(tiny_model().current_alpha()) == pytest.approx(0.1)
    assert float(tiny_model(ent_coef="auto_0.3").current_alpha()) == pytest.approx(0.3)
    ablation = filled_model(ent_coef=0.0)
    assert ablation.ent_coef_optimizer is None and float(ablation.current_alpha()) == 0.0
    for bad in ({"ent_coef": "learn"}, {"critic_type": "c51"}, {"particle_scheme": "sobol"}):
        with pytest.raises(ValueError):
            tiny_model(**bad)


def test_policy_delay_updates_the_actor_every_other_step() -> None:
    model = filled_model(steps=20, policy_delay=2, learning_starts=16)
    actor_param, critic_param = next(model.actor.parameters()), next(model.critic.parameters())

    def optimizer_steps() -> tuple[int, int]:
        actor_state = model.actor.optimizer.state[actor_param]
        critic_state = model.critic.optimizer.state[critic_param]
        return int(actor_state.get("step", 0)), int(critic_state.get("step", 0))

    actor_before, critic_before = optimizer_steps()
    model.train(gradient_steps=6, batch_size=16)
    actor_after, critic_after = optimizer_steps()
    assert (actor_after - actor_before, critic_after - critic_before) == (3, 6)


# -- the CrossQ critic option ----------------------------------------------------------------------
def test_crossq_critic_option(tmp_path) -> None:
    model = filled_model(critic_type="crossq")
    assert model.critic_target is None and isinstance(model.critic, CrossQCritic)
    assert any(isinstance(module, BatchRenorm1d) for module in model.critic.modules())
    assert isinstance(tiny_model().critic, ContinuousCritic)
    obs = np.stack([model.observation_space.sample() for _ in range(4)])
    before, _ = model.predict(obs, deterministic=True)
    model.save(tmp_path / "crossq.zip")
    loaded = SoftGAC.load(tmp_path / "crossq.zip", device="cpu")
    assert loaded.critic_type == "crossq" and loaded.critic_target is None
    np.testing.assert_array_equal(before, loaded.predict(obs, deterministic=True)[0])


# -- the SB3 contract ------------------------------------------------------------------------------
class TestSoftGACContract(SB3Contract):
    algorithm = SoftGAC
    hyperparams = TINY
    learn_steps = 32
    logger_keys = (
        "train/actor_loss",
        "train/critic_loss",
        "train/ent_coef",
        "train/ent_coef_loss",
        "train/control_energy",
    )


class TestSoftGACMultiGoalOptionsContract(SB3Contract):
    """SoftGAC as suites/softgac-multigoal.yaml runs it: state encoder, log-volume bonus,
    constant alpha, on the multi-goal env."""

    algorithm = SoftGAC
    env_id = "MultiGoal-v0"
    hyperparams = {
        **TINY,
        "ent_coef": 15.0,
        "log_volume_bonus": True,
        "policy_kwargs": {
            **TINY_POLICY,
            "input_layer_norm": False,
            "net_arch": {"pi": [16, 16], "qf": [16]},
        },
    }
    learn_steps = 32
    logger_keys = ("train/actor_loss", "train/critic_loss", "train/control_energy")


def test_input_layer_norm_option_drops_the_input_norm_and_survives_save_load(tmp_path) -> None:
    """Without the input LayerNorm the step sees its raw input: scaling [s, z] changes the
    hidden layer (with it, LayerNorm makes the step blind to that scale)."""
    policy_kwargs = {**TINY_POLICY, "input_layer_norm": False}
    model = SoftGAC("MlpPolicy", "Pendulum-v1", seed=0, policy_kwargs=policy_kwargs)
    step = model.actor.bridge.steps[0]
    assert step.input_norm_weight is None and "input_norm_weight" not in step.state_dict()
    params = step.step_parameters()
    features, latent = torch.randn(4, 3), torch.randn(4, 1)
    raw = bridge_step_hidden(params, features, latent)
    expected = torch.nn.functional.layer_norm(
        torch.nn.functional.elu(
            torch.cat([features, latent], -1) @ step.hidden_weight.T + step.hidden_bias
        ),
        raw.shape[-1:],
        step.hidden_norm_weight,
        step.hidden_norm_bias,
        LAYER_NORM_EPS,
    )
    torch.testing.assert_close(raw, expected)
    normed = SoftGAC("MlpPolicy", "Pendulum-v1", seed=0, policy_kwargs=TINY_POLICY)
    normed_params = normed.actor.bridge.steps[0].step_parameters()
    torch.testing.assert_close(
        bridge_step_hidden(normed_params, 3 * features, 3 * latent),
        bridge_step_hidden(normed_params, features, latent),
        atol=1e-4,
        rtol=0,
    )
    assert not torch.allclose(bridge_step_hidden(params, 3 * features, 3 * latent), raw)

    obs = np.array([[0.1, 0.9, -0.4]], dtype=np.float32)
    model.save(tmp_path / "m.zip")
    loaded = SoftGAC.load(tmp_path / "m.zip")
    assert loaded.actor.bridge.steps[0].input_norm_weight is None
    np.testing.assert_array_equal(
        loaded.predict(obs, deterministic=True)[0], model.predict(obs, deterministic=True)[0]
    )


def test_state_encoder_option_feeds_an_mlp_of_the_state_to_every_step(tmp_path) -> None:
    """``net_arch: {pi: [...]}`` puts a ReLU MLP between the features and the bridge; the default
    and a list ``net_arch`` (the critic's alone) keep the authors' actor."""
    assert tiny_model().actor.state_encoder is None
    assert SoftGAC("MlpPolicy", "Pendulum-v1").actor.state_encoder is None
    encoder_only = SoftGAC("MlpPolicy", "Pendulum-v1", policy_kwargs={"net_arch": {"pi": [8]}})
    default_critic = [
        m for m in encoder_only.critic.q_networks[0] if isinstance(m, torch.nn.Linear)
    ]
    assert [layer.out_features for layer in default_critic] == [256, 256, 1]
    policy_kwargs = {**TINY_POLICY, "net_arch": {"pi": [8, 8], "qf": [16]}}
    model = filled_model(policy_kwargs=policy_kwargs)
    encoder = model.actor.state_encoder
    layers = [module for module in encoder if isinstance(module, torch.nn.Linear)]
    assert [(layer.in_features, layer.out_features) for layer in layers] == [(3, 8), (8, 8)]
    assert isinstance(encoder[-1], torch.nn.ReLU)
    # every bridge step sees [encoder(s), z_k]: 8 + 1 inputs
    assert all(step.hidden_weight.shape[1] == 9 for step in model.actor.bridge.steps)
    critic_layers = [m for m in model.critic.q_networks[0] if isinstance(m, torch.nn.Linear)]
    assert [layer.out_features for layer in critic_layers] == [16, 1]

    obs = torch.as_tensor(np.stack([model.observation_space.sample() for _ in range(6)]))
    base, noise = sample_bridge_noise(6, 3, 1)
    with torch.no_grad():
        path = model.actor.path_from_noise(obs, base, noise)
        by_hand = model.actor.bridge.path(encoder(obs), base, noise)
    torch.testing.assert_close(path.latents, by_hand.latents)

    loss, _ = model._actor_loss(obs, torch.tensor(0.1))
    model.actor.optimizer.zero_grad()
    loss.backward(inputs=list(model.actor.parameters()))
    for name, param in encoder.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name

    model.save(tmp_path / "m.zip")
    loaded = SoftGAC.load(tmp_path / "m.zip")
    assert loaded.actor.state_encoder_arch == [8, 8]
    np.testing.assert_array_equal(
        loaded.predict(obs.numpy(), deterministic=True)[0],
        model.predict(obs.numpy(), deterministic=True)[0],
    )


@pytest.mark.parametrize("action_dim", [1, 2])
def test_log_volume_bonus_adds_alpha_log_volume_to_the_soft_target(action_dim: int) -> None:
    """With ``log_volume_bonus`` every non-terminal target rises by gamma alpha d log 2."""
    env_id = "Pendulum-v1" if action_dim == 1 else "MultiGoal-v0"
    models = [
        SoftGAC("MlpPolicy", env_id, seed=0, **{**TINY, "log_volume_bonus": bonus})
        for bonus in (False, True)
    ]
    models[0].learn(40)
    models[1].set_parameters(models[0].get_parameters())
    data = models[0].replay_buffer.sample(16)
    alpha = torch.tensor(0.37)
    losses = []
    for model in models:
        torch.manual_seed(3)
        with torch.no_grad():
            losses.append(model._critic_loss(data, alpha))
    assert models[1].log_action_volume == pytest.approx(action_dim * math.log(2.0))
    shift = models[0].gamma * 0.37 * action_dim * math.log(2.0)
    torch.manual_seed(3)
    with torch.no_grad():
        path = models[0].actor.sample_path(data.next_observations)
        next_q = torch.cat(
            models[0].critic_target(data.next_observations, torch.tanh(path.final_latent)), 1
        )
        soft = next_q.min(1, keepdim=True).values - alpha * control_energy(path)[:, None]
        target = data.rewards + (1 - data.dones) * models[0].gamma * soft
        q1, q2 = models[0].critic(data.observations, data.actions)
        shifted = target + (1 - data.dones) * shift
        expected = [
            0.5 * (((q1 - t) ** 2).mean() + ((q2 - t) ** 2).mean()) for t in (target, shifted)
        ]
    torch.testing.assert_close(losses[0], expected[0])
    torch.testing.assert_close(losses[1], expected[1])
    assert not torch.allclose(expected[0], expected[1])


# -- the twin-target reduction (target_reduction: SAC's min, the authors' mean) ------------------
#: A fixed batch of three transitions, the last one terminal, and the numbers the stubbed
#: networks return for it: Q'_k(s', a') of the twin critics and C(s', tau') of the s' paths.
STUB_REWARDS = [1.0, -0.5, 2.0]
STUB_DONES = [0.0, 0.0, 1.0]
STUB_NEXT_Q = ([1.0, 4.0, 7.0], [3.0, -2.0, 9.0])
STUB_ENERGY = [0.5, 1.5, 3.0]
STUB_CURRENT_Q = ([0.0, 0.5, -1.0], [1.0, 1.0, 1.0])
STUB_ALPHA, STUB_GAMMA = 0.4, 0.9
#: y = r + gamma (1 - d) (reduce_k Q'_k - alpha C), worked out by hand (alpha C = 0.2, 0.6, 1.2):
#: mean: 1 + 0.9 (2 - 0.2) = 2.62, -0.5 + 0.9 (1 - 0.6) = -0.14, terminal 2;
#: min:  1 + 0.9 (1 - 0.2) = 1.72, -0.5 + 0.9 (-2 - 0.6) = -2.84, terminal 2.
HAND_TARGETS = {"mean": [2.62, -0.14, 2.0], "min": [1.72, -2.84, 2.0]}


def _column(values: list[float]) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float32)[:, None]


def _stub_networks(model: SoftGAC, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the critics return STUB_CURRENT_Q at (s, a) and STUB_NEXT_Q at (s', a'), and the
    control energy return STUB_ENERGY, whatever the inputs."""
    current = tuple(_column(q) for q in STUB_CURRENT_Q)
    following = tuple(_column(q) for q in STUB_NEXT_Q)
    monkeypatch.setattr(
        "maxbench.algos.softgac.softgac.control_energy",
        lambda path: torch.tensor(STUB_ENERGY, dtype=torch.float32),
    )
    if model.critic_target is not None:
        monkeypatch.setattr(model.critic, "forward", lambda obs, actions: current)
        monkeypatch.setattr(model.critic_target, "forward", lambda obs, actions: following)
        return

    def joint_pass(obs: torch.Tensor, actions: torch.Tensor) -> tuple[torch.Tensor, ...]:
        # CrossQ: one forward pass over the (s, a) rows followed by the (s', a') rows.
        assert actions.shape[0] == 2 * len(STUB_REWARDS)
        return tuple(torch.cat([now, nxt]) for now, nxt in zip(current, following, strict=True))

    monkeypatch.setattr(model.critic, "forward", joint_pass)


@pytest.mark.parametrize("critic_type", ["twin", "crossq"])
@pytest.mark.parametrize("reduction", ["mean", "min"])
def test_critic_target_reduction_matches_the_hand_computed_target(
    critic_type: str, reduction: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both critic types train both critics on r + gamma (1 - d)(reduce_k Q'_k - alpha C)."""
    model = tiny_model(target_reduction=reduction, critic_type=critic_type, gamma=STUB_GAMMA)
    _stub_networks(model, monkeypatch)
    obs = torch.as_tensor(np.stack([model.observation_space.sample() for _ in range(3)]))
    actions = torch.as_tensor(np.stack([model.action_space.sample() for _ in range(3)]))
    data = ReplayBufferSamples(
        observations=obs,
        actions=actions,
        next_observations=obs.flip(0),
        dones=_column(STUB_DONES),
        rewards=_column(STUB_REWARDS),
    )
    with torch.no_grad():
        loss = model._critic_loss(data, torch.tensor(STUB_ALPHA))
    target = _column(HAND_TARGETS[reduction])
    expected = 0.5 * sum(((_column(q) - target) ** 2).mean() for q in STUB_CURRENT_Q)
    torch.testing.assert_close(loss, expected)
    other = "min" if reduction == "mean" else "mean"
    wrong = 0.5 * sum(
        ((_column(q) - _column(HAND_TARGETS[other])) ** 2).mean() for q in STUB_CURRENT_Q
    )
    assert not torch.allclose(loss, wrong)


def test_mean_target_averages_the_real_twin_target_critics() -> None:
    """On real networks and a replay batch: the mean target is the average of the two target
    critics at the seeded a' (not the min), and the actor loss keeps min_k Q_k."""
    model = filled_model(target_reduction="mean")
    data = model.replay_buffer.sample(16)
    alpha = torch.tensor(0.37)
    torch.manual_seed(11)
    with torch.no_grad():
        loss = model._critic_loss(data, alpha)
    torch.manual_seed(11)
    with torch.no_grad():
        path = model.actor.sample_path(data.next_observations)
        q1_next, q2_next = model.critic_target(
            data.next_observations, torch.tanh(path.final_latent)
        )
        soft = (q1_next + q2_next) / 2 - alpha * control_energy(path)[:, None]
        target = data.rewards + (1 - data.dones) * model.gamma * soft
        q1, q2 = model.critic(data.observations, data.actions)
        expected = 0.5 * (((q1 - target) ** 2).mean() + ((q2 - target) ** 2).mean())
    torch.testing.assert_close(loss, expected)
    assert not torch.allclose(q1_next, q2_next)  # the twin critics differ, so min != mean
    model.target_reduction = "min"
    torch.manual_seed(11)
    with torch.no_grad():
        assert not torch.allclose(model._critic_loss(data, alpha), loss)
    losses = []
    for reduction in ("mean", "min"):
        model.target_reduction = reduction
        torch.manual_seed(5)
        losses.append(model._actor_loss(data.observations, alpha)[0].detach())
    torch.testing.assert_close(losses[0], losses[1])


def test_target_reduction_defaults_to_min_and_rejects_other_values(tmp_path) -> None:
    assert tiny_model().target_reduction == "min"
    for bad in ("max", "Mean", "", None):
        with pytest.raises(ValueError, match="target_reduction"):
            tiny_model(target_reduction=bad)
    tiny_model().save(tmp_path / "m.zip")
    with pytest.raises(ValueError, match="target_reduction"):
        SoftGAC.load(tmp_path / "m.zip", target_reduction="median")


def test_target_reduction_survives_save_and_load(tmp_path) -> None:
    model = filled_model(target_reduction="mean")
    model.save(tmp_path / "mean.zip")
    loaded = SoftGAC.load(tmp_path / "mean.zip", device="cpu")
    assert loaded.target_reduction == "mean"
    data = model.replay_buffer.sample(16)
    losses = []
    for each in (model, loaded):
        torch.manual_seed(7)
        with torch.no_grad():
            losses.append(each._critic_loss(data, torch.tensor(0.2)))
    torch.testing.assert_close(losses[0], losses[1])
    tiny_model().save(tmp_path / "min.zip")
    assert SoftGAC.load(tmp_path / "min.zip").target_reduction == "min"
    overridden = SoftGAC.load(tmp_path / "mean.zip", target_reduction="min")
    assert overridden.target_reduction == "min"
