"""SAC-NF: the flow actor's exact log-density against independent computations, and SB3's contract.

References: a numerical change of variables in 1-D (bisection for the base point, central finite
differences for the derivative), autograd Jacobians in 2-D, and a grid integral over the action
box in 2-D. Everything mathematical runs in float64.
"""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest
import torch

import maxbench.envs  # noqa: F401  (registers MultiGoal-v0)
from maxbench.algos.sacnf import SACNF, FlowActor

from sb3_contract import SB3Contract

DT = torch.float64
FLOW_TYPES = ("spline", "affine")


@pytest.fixture(autouse=True, scope="module")
def _single_thread():
    prev = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(prev)


def _actor(env_id: str, flow_type: str, seed: int = 0, base_std: float = 0.5) -> FlowActor:
    """A float64 flow actor with randomised (clearly non-identity) flow layers.

    The base Gaussian gets a damped state-dependent mean and a fixed std ``base_std``, and
    :func:`_obs` gives small observations, so that the squashed density has no mass piled at the
    box's edges (a grid integral needs that).
    """
    torch.manual_seed(seed)
    model = SACNF(
        "MlpPolicy",
        env_id,
        seed=seed,
        policy_kwargs={"net_arch": [16], "flow_type": flow_type, "flow_hidden": [16]},
    )
    actor = model.actor.to(DT)
    # SB3's preprocessing casts observations to float32; keep them float64 here.
    actor.extract_features = lambda obs, extractor: extractor(obs)  # type: ignore[method-assign]
    with torch.no_grad():
        for p in actor.flow.parameters():
            p.add_(0.1 * torch.randn_like(p))
        actor.mu.weight.mul_(0.2)
        actor.mu.bias.mul_(0.2)
        actor.log_std.weight.zero_()
        actor.log_std.bias.fill_(math.log(base_std))
    return actor


def _obs(actor: FlowActor, n: int, seed: int = 1) -> torch.Tensor:
    space = actor.observation_space
    space.seed(seed)
    return 0.2 * torch.as_tensor(np.stack([space.sample() for _ in range(n)]), dtype=DT)


def _gaussian_log_prob(z: torch.Tensor, mean: torch.Tensor, log_std: torch.Tensor) -> torch.Tensor:
    dist = torch.distributions.Normal(mean, log_std.exp())
    return dist.log_prob(z).sum(-1)


def _log_sech2(u: torch.Tensor) -> torch.Tensor:
    """``log d tanh(u)/du = log sech(u)^2 = 2 (log 2 - log(e^u + e^-u))``, written apart."""
    return 2.0 * (math.log(2.0) - torch.logaddexp(u, -u))


@pytest.mark.parametrize("flow_type", FLOW_TYPES)
def test_log_prob_matches_numerical_change_of_variables_1d(flow_type: str) -> None:
    actor = _actor("Pendulum-v1", flow_type)
    obs = _obs(actor, 6)
    with torch.no_grad():
        mean, log_std, latent = actor.base_params(obs)
        offsets = torch.linspace(-2.5, 2.5, 11, dtype=DT)
        for k in offsets:
            z = mean + k * log_std.exp()
            actions, log_prob = actor.squashed_log_prob(z, mean, log_std, latent)
            # Numerical change of variables: central differences of the flow, tanh in closed form.
            h = 1e-5
            u = actor.flow(z, latent)[0]
            du_dz = (actor.flow(z + h, latent)[0] - actor.flow(z - h, latent)[0]) / (2 * h)
            expected = _gaussian_log_prob(z, mean, log_std) - (du_dz.log() + _log_sech2(u)).squeeze(
                -1
            )
            np.testing.assert_allclose(log_prob.numpy(), expected.numpy(), rtol=1e-7, atol=1e-7)
            np.testing.assert_array_equal(actions.numpy(), torch.tanh(u).numpy())
        # The flow is far from the identity: the density is not the tanh-Gaussian of the base.
        plain = _gaussian_log_prob(z, mean, log_std) - _log_sech2(z).squeeze(-1)
        assert (plain - log_prob).abs().max() > 0.05
        # The inverse path (scoring given actions) agrees with the sampling path.
        sampled, sampled_log_prob = actor.action_log_prob(obs)
        np.testing.assert_allclose(
            actor.log_prob(obs, sampled).numpy(), sampled_log_prob.numpy(), rtol=1e-7, atol=1e-7
        )
        # And the density integrates to one over (-1, 1) (midpoint rule, fine grid).
        n = 20_000
        grid = (torch.arange(n, dtype=DT) + 0.5) * (2.0 / n) - 1.0
        density = actor.log_prob(obs[:1].expand(n, -1), grid.unsqueeze(-1)).exp()
        assert density.sum().item() * (2.0 / n) == pytest.approx(1.0, abs=2e-3)


@pytest.mark.parametrize("flow_type", FLOW_TYPES)
def test_log_prob_matches_autograd_jacobian_2d(flow_type: str) -> None:
    actor = _actor("MultiGoal-v0", flow_type)
    obs = _obs(actor, 5)
    mean, log_std, latent = (t.detach() for t in actor.base_params(obs))
    z = mean + log_std.exp() * torch.randn(
        mean.shape, dtype=DT, generator=torch.Generator().manual_seed(3)
    )
    actions, log_prob = actor.squashed_log_prob(z, mean, log_std, latent)
    for b in range(obs.shape[0]):
        jac = torch.autograd.functional.jacobian(
            lambda x, b=b: torch.tanh(actor.flow(x.unsqueeze(0), latent[b : b + 1])[0][0]), z[b]
        )
        expected = _gaussian_log_prob(z[b], mean[b], log_std[b]) - torch.linalg.det(jac).abs().log()
        assert log_prob[b].item() == pytest.approx(expected.item(), abs=1e-9)
    # The inverse path (given actions) agrees with the sampling path.
    with torch.no_grad():
        np.testing.assert_allclose(
            actor.log_prob(obs, actions).numpy(), log_prob.detach().numpy(), atol=1e-8
        )
        sampled, sampled_log_prob = actor.action_log_prob(obs)
        np.testing.assert_allclose(
            actor.log_prob(obs, sampled).numpy(), sampled_log_prob.numpy(), atol=1e-8
        )


@pytest.mark.parametrize("flow_type", FLOW_TYPES)
def test_density_integrates_to_one_on_a_2d_grid(flow_type: str) -> None:
    actor = _actor("MultiGoal-v0", flow_type, base_std=0.4)
    obs = _obs(actor, 1)
    n = 200
    edges = torch.linspace(-1.0, 1.0, n + 1, dtype=DT)
    centres = 0.5 * (edges[1:] + edges[:-1])
    grid = torch.cartesian_prod(centres, centres)
    with torch.no_grad():
        log_prob = actor.log_prob(obs.expand(grid.shape[0], -1), grid)
    cell = (2.0 / n) ** 2
    assert log_prob.exp().sum().item() * cell == pytest.approx(1.0, abs=1e-3)


def test_flow_is_trained_and_gsde_is_refused() -> None:
    model = SACNF(
        "MlpPolicy",
        "Pendulum-v1",
        seed=0,
        learning_starts=16,
        batch_size=16,
        policy_kwargs={"net_arch": [16], "flow_hidden": [16]},
    )
    before = [p.detach().clone() for p in model.actor.flow.parameters()]
    model.learn(48)
    after = list(model.actor.flow.parameters())
    assert any(not torch.equal(b, a) for b, a in zip(before, after, strict=True))
    with pytest.raises(ValueError, match="gSDE"):
        SACNF("MlpPolicy", "Pendulum-v1", use_sde=True)


def test_unknown_flow_type_is_refused() -> None:
    with pytest.raises(ValueError, match="flow_type"):
        SACNF("MlpPolicy", gym.make("Pendulum-v1"), policy_kwargs={"flow_type": "radial"})


class TestSACNFContract(SB3Contract):
    algorithm = SACNF
    hyperparams = {
        "learning_starts": 16,
        "batch_size": 16,
        "policy_kwargs": {"net_arch": [16], "flow_hidden": [16]},
    }
    logger_keys = ("train/actor_loss", "train/critic_loss", "train/ent_coef")
