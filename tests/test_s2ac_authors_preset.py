"""The ``s2ac-authors-multigoal`` preset is the S2AC authors' multi-goal command (issue 15).

The expected values are transcribed here from the authors' code, independently of the preset:
their README's multi-goal command (``--actor svgd_nonparam --svgd_steps 10 --a_c 0.2 --a_a 0.2
--train_action_selection random --test_action_selection softmax``) over ``STAC/main.py``'s
argparse defaults (``--hid 256 --l_critic 2 --l_actor 3``, ELU, ``--gamma 0.99
--replay_size 1e6 --exploration_steps 10000 --update_after 1000 --update_every 50
--polyak 0.995 --lr_critic 1e-3 --lr_actor 1e-3 --batch_size 100 --svgd_particles 10
--svgd_lr 0.1 --svgd_sigma_p0 0.5``).
"""

from __future__ import annotations

import gymnasium as gym
import pytest
import torch

import maxbench.envs  # noqa: F401
from maxbench.registry import resolve_algorithm

AUTHORS = {
    "init": "fixed",  # svgd_nonparam: particles from a fixed N(0, sigma_p0^2)
    "init_std": 0.5,  # --svgd_sigma_p0
    "n_particles": 10,  # --svgd_particles
    "svgd_steps": 10,  # the multi-goal command
    "svgd_step_size": 0.1,  # --svgd_lr
    "energy_on": "pre_tanh",  # their critic is evaluated at the pre-tanh particle
    "sampler_temperature": 1.0,
    "ent_coef": 0.2,  # --a_c 0.2 --a_a 0.2
    "action_selection": "softmax",  # --test_action_selection softmax
    "random_exploration_steps": 10_000,  # --exploration_steps
    "learning_starts": 1000,  # --update_after
    "batch_size": 100,
    "tau": 0.005,  # 1 - polyak 0.995
    "gamma": 0.99,
    "buffer_size": 1_000_000,
    "gradient_steps": 50,  # --update_every 50: 50 updates every 50 steps
    "learning_rate": 1e-3,
}


@pytest.fixture(scope="module")
def model():
    cls, preset = resolve_algorithm("s2ac-authors-multigoal")
    return cls(
        "MlpPolicy",
        gym.make("MultiGoalMaxEnt-v0"),
        seed=0,
        buffer_size=1000,
        **{k: v for k, v in preset.items() if k != "buffer_size"},
    )


@pytest.mark.parametrize(("name", "value"), sorted(AUTHORS.items()))
def test_setting_is_the_authors(name, value):
    cls, preset = resolve_algorithm("s2ac-authors-multigoal")
    built = cls("MlpPolicy", gym.make("MultiGoalMaxEnt-v0"), seed=0, **preset)
    assert getattr(built, name) == value
    assert built.train_freq.frequency == 50


def test_critics_are_two_by_256_elu(model):
    for head in (model.critic.qf0, model.critic.qf1):
        linears = [m for m in head if isinstance(m, torch.nn.Linear)]
        assert [layer.out_features for layer in linears] == [256, 256, 1]
        assert all(isinstance(m, torch.nn.ELU) for m in head if not isinstance(m, torch.nn.Linear))


def test_training_acts_with_a_random_particle_and_testing_with_softmax(model):
    """--train_action_selection random (stochastic predict), test-time softmax (deterministic)."""
    obs = torch.zeros(2).numpy()
    torch.manual_seed(0)
    stochastic = {tuple(model.predict(obs, deterministic=False)[0].round(4)) for _ in range(8)}
    assert len(stochastic) > 1
    assert model.policy.action_selection == "softmax"
