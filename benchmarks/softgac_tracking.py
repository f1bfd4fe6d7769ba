"""Can an actor follow a fixed goal-directed critic on MultiGoal-v0? (issue 4, a diagnostic)

SoftGAC's bridge actor, as the authors build it, feeds the raw state into every bridge step's one
hidden layer. On the multi-goal env (a 2-D state) that actor learns a state-dependent drift only
very slowly, and in the closed loop of training the policy then becomes one drift everywhere
(``benchmarks/multigoal_probe.py``). This script isolates the actor from the closed loop:

1. it trains SB3's SAC (alpha = 10, multigoal_probe.py's schedule: batch 100, learning starts
   1000, UTD 2) for ``--critic-steps`` steps, whose critic is then goal-directed, and freezes
   that critic;
2. it trains fresh actors against the frozen critic, ``--updates`` Adam steps on batches of 100
   states drawn uniformly from [-5, 5]^2, each minimising its own objective at alpha = 10:
   SAC's actor E[alpha log pi - Q], SoftGAC's bridge E[alpha C - Q] as the authors build it
   (without the input LayerNorm, as the multi-goal suites run it), and SoftGAC's bridge behind
   a 2 x 256 ReLU state encoder (``net_arch: {pi: [256, 256]}``);
3. every 250 updates it prints each actor's mean action at five probe states and ``error``, the
   summed absolute distance between those means and the means of the critic's own Boltzmann
   law exp(min Q(s, a) / alpha) (computed on a 99 x 99 action grid): the actor's objective is
   minimised exactly by that law, so the error says how far the actor is from its optimum.

Usage::

    .venv/bin/python benchmarks/softgac_tracking.py            # about 2 min on 2 cores
"""

from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from multigoal_probe import SCHEDULES  # noqa: E402  (benchmarks/ is on sys.path)
from stable_baselines3 import SAC  # noqa: E402
from stable_baselines3.common.logger import Logger  # noqa: E402

import maxbench.envs  # noqa: E402,F401  (registers MultiGoal-v0)
from maxbench.algos import SoftGAC  # noqa: E402
from maxbench.algos.softgac.bridge import control_energy  # noqa: E402

ALPHA = 10.0
#: The origin and two units out towards each goal, as in multigoal_probe.py.
PROBE_STATES = torch.tensor([[0, 0], [2, 0], [-2, 0], [0, 2], [0, -2]], dtype=torch.float32)
SOFTGAC_POLICY = {"input_layer_norm": False}
ENCODED_POLICY = {"input_layer_norm": False, "net_arch": {"pi": [256, 256], "qf": [256, 256]}}


def frozen_goal_directed_critic(steps: int, seed: int):
    """SAC (alpha = 10) trained for ``steps`` steps; returns min_k Q_k(s, a), frozen."""
    sac = SAC("MlpPolicy", "MultiGoal-v0", ent_coef=ALPHA, seed=seed, **SCHEDULES["sac"])
    sac.set_logger(Logger(folder=None, output_formats=[]))
    sac.learn(steps)
    for param in sac.critic.parameters():
        param.requires_grad_(False)

    def min_q(obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        return torch.min(*sac.critic(obs, actions)).squeeze(-1)

    return min_q


def boltzmann_means(min_q) -> torch.Tensor:
    """``(5, 2)``: the mean action of exp(min Q(s, .) / alpha) at each probe state (grid)."""
    grid = torch.linspace(-1, 1, 101)[1:-1]
    actions = torch.cartesian_prod(grid, grid)
    means = []
    with torch.no_grad():
        for state in PROBE_STATES:
            q = min_q(state.expand(len(actions), 2), actions)
            weights = torch.softmax(q / ALPHA, dim=0)
            means.append(weights @ actions)
    return torch.stack(means)


class Learner:
    """One actor with its objective (sample actions and their regulariser) and its optimizer."""

    def __init__(self, name: str, seed: int, policy_kwargs: dict | None = None) -> None:
        self.name = name
        torch.manual_seed(seed)
        if policy_kwargs is None:
            self.actor = SAC("MlpPolicy", "MultiGoal-v0", seed=seed).actor
        else:
            self.actor = SoftGAC(
                "MlpPolicy", "MultiGoal-v0", seed=seed, policy_kwargs=policy_kwargs
            ).actor
        self.is_bridge = policy_kwargs is not None

    def actions_and_regulariser(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Reparameterised actions and log pi (SAC) or the control energy C (SoftGAC)."""
        if self.is_bridge:
            path = self.actor.sample_path(obs)
            return torch.tanh(path.final_latent), control_energy(path)
        return self.actor.action_log_prob(obs)

    def step(self, obs: torch.Tensor, min_q) -> None:
        actions, regulariser = self.actions_and_regulariser(obs)
        loss = (ALPHA * regulariser - min_q(obs, actions)).mean()
        self.actor.optimizer.zero_grad()
        loss.backward()
        self.actor.optimizer.step()

    def probe_means(self, samples: int = 4000) -> torch.Tensor:
        """``(5, 2)``: the mean sampled action at each probe state."""
        with torch.no_grad():
            obs = PROBE_STATES.repeat_interleave(samples, dim=0)
            actions, _ = self.actions_and_regulariser(obs)
        return actions.reshape(len(PROBE_STATES), samples, 2).mean(1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--critic-steps", type=int, default=3000, help="SAC steps for the critic")
    parser.add_argument("--updates", type=int, default=1500, help="actor updates")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)

    started = time.perf_counter()
    min_q = frozen_goal_directed_critic(args.critic_steps, args.seed)
    target = boltzmann_means(min_q)
    print(
        f"critic: SB3 SAC, alpha {ALPHA:g}, {args.critic_steps} steps on MultiGoal-v0, seed "
        f"{args.seed} [{time.perf_counter() - started:.0f} s]"
    )
    states = "(0,0) (2,0) (-2,0) (0,2) (0,-2)"
    print(f"mean action at {states}; error = sum |actor mean - Boltzmann mean|")
    print("Boltzmann of the critic: " + _format(target))

    learners = [
        Learner("SAC actor", args.seed),
        Learner("SoftGAC bridge", args.seed, SOFTGAC_POLICY),
        Learner("SoftGAC bridge + encoder", args.seed, ENCODED_POLICY),
    ]
    generator = torch.Generator().manual_seed(args.seed)
    for update in range(1, args.updates + 1):
        obs = torch.rand(100, 2, generator=generator) * 10 - 5
        for learner in learners:
            learner.step(obs, min_q)
        if update % 250 == 0 or update == args.updates:
            print(f"after {update} updates")
            for learner in learners:
                means = learner.probe_means()
                error = (means - target).abs().sum().item()
                print(f"  {learner.name:<26} {_format(means)}  error {error:.2f}")
    return 0


def _format(means: torch.Tensor) -> str:
    return " ".join(f"({x:+.2f},{y:+.2f})" for x, y in np.asarray(means).tolist())


if __name__ == "__main__":
    sys.exit(main())
