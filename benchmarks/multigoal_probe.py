"""Watch an agent's goal coverage on MultiGoal-v0 while it trains (issue 4, a diagnostic).

``maxbench multigoal`` counts the goals of a finished run's final model. This script trains one
agent and, every ``--every`` steps, shows *why* it covers the goals it covers:

* goals: distinct goals reached over ``--episodes`` stochastic test episodes, hits per goal
  (goal order (5, 0), (-5, 0), (0, 5), (0, -5); spec §1.7), episodes without a goal, mean return;
* policy: the mean sampled action at the origin and at four states two units out on the axes
  (a goal-directed policy points each of them at its nearest goal; a collapsed one points all
  five at the same goal), and the spread (mean per-dimension std) of the actions at the origin;
* critic: min_k Q_k at the origin for an action of norm 0.8 towards each goal, and the spread
  max - min of min_k Q_k over eight directions there.

Usage::

    .venv/bin/python benchmarks/multigoal_probe.py --algo softgac --ent-coef 10       # ~2 min
    .venv/bin/python benchmarks/multigoal_probe.py --algo sac --ent-coef 10
    .venv/bin/python benchmarks/multigoal_probe.py --algo softgac --ent-coef 10 \\
        --hyperparams '{"learning_starts": 10000}' --steps 24000

The schedule is suites/softgac-multigoal.yaml's (batch 100, learning starts 1000, UTD 2; SoftGAC
with policy delay 2 and without the input LayerNorm), SAC's is suites/multigoal.yaml's;
``--hyperparams`` (JSON) overrides or adds constructor arguments. SoftGAC runs the authors' actor
and critic target unless ``--suite-options`` adds the two maxbench options that
suites/softgac-multigoal.yaml sets (with its ``--ent-coef 15``): the actor's state encoder
(``net_arch: {pi: [256, 256]}``) and ``log_volume_bonus``::

    .venv/bin/python benchmarks/multigoal_probe.py --algo softgac --ent-coef 15 --suite-options
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from stable_baselines3 import SAC  # noqa: E402
from stable_baselines3.common.logger import Logger  # noqa: E402

import maxbench.envs  # noqa: E402,F401  (registers MultiGoal-v0)
from maxbench.algos import SoftGAC  # noqa: E402
from maxbench.repro.multigoal import run_episodes  # noqa: E402

#: The probe states: the origin and two units out towards each goal.
PROBE_STATES = np.array([[0, 0], [2, 0], [-2, 0], [0, 2], [0, -2]], dtype=np.float32)
#: Unit directions towards the goals (5, 0), (-5, 0), (0, 5), (0, -5).
GOAL_DIRECTIONS = np.array([[1, 0], [-1, 0], [0, 1], [0, -1]], dtype=np.float32)

#: The maxbench options of suites/softgac-multigoal.yaml (README, "Multi-goal checks").
SOFTGAC_SUITE_OPTIONS: dict[str, object] = {
    "log_volume_bonus": True,
    "policy_kwargs": {"input_layer_norm": False, "net_arch": {"pi": [256, 256], "qf": [256, 256]}},
}

SCHEDULES: dict[str, dict[str, object]] = {
    "softgac": {
        "learning_starts": 1000,
        "buffer_size": 100_000,
        "batch_size": 100,
        "gradient_steps": 2,
        "policy_delay": 2,
        "policy_kwargs": {"input_layer_norm": False},
    },
    "sac": {
        "learning_starts": 1000,
        "buffer_size": 100_000,
        "batch_size": 100,
        "gradient_steps": 2,
    },
}


def make_agent(algo: str, ent_coef: str, seed: int, overrides: dict[str, object]):
    """SoftGAC or SB3's SAC on MultiGoal-v0 with the schedule above and the overrides."""
    kwargs = {**SCHEDULES[algo], **overrides}
    coefficient: str | float = ent_coef if ent_coef.startswith("auto") else float(ent_coef)
    algo_class = SoftGAC if algo == "softgac" else SAC
    agent = algo_class("MlpPolicy", "MultiGoal-v0", ent_coef=coefficient, seed=seed, **kwargs)
    agent.set_logger(Logger(folder=None, output_formats=[]))
    return agent


def goal_coverage(agent, episodes: int) -> tuple[np.ndarray, int, float]:
    """Hits per goal, episodes without a goal and mean return over stochastic test episodes."""
    played = run_episodes(agent, "MultiGoal-v0", episodes, deterministic=False)
    goals = np.array([episode.goal for episode in played])
    hits = np.bincount(goals[goals >= 0], minlength=len(GOAL_DIRECTIONS))
    mean_return = float(np.mean([episode.episode_return for episode in played]))
    return hits, int((goals < 0).sum()), mean_return


def policy_probe(agent, samples: int = 2000) -> tuple[np.ndarray, float]:
    """Mean sampled action at each probe state, and the actions' mean std at the origin."""
    means, origin_spread = [], 0.0
    for index, state in enumerate(PROBE_STATES):
        actions, _ = agent.predict(np.repeat(state[None], samples, axis=0), deterministic=False)
        means.append(actions.mean(axis=0))
        if index == 0:
            origin_spread = float(actions.std(axis=0).mean())
    return np.array(means), origin_spread


def critic_probe(agent) -> tuple[np.ndarray, float]:
    """min_k Q_k(origin, 0.8 u) towards each goal, and its spread over eight directions."""
    angles = np.deg2rad(np.arange(0, 360, 45))
    directions = np.stack([np.cos(angles), np.sin(angles)], axis=1).astype(np.float32)
    actions = torch.as_tensor(0.8 * np.concatenate([GOAL_DIRECTIONS, directions]))
    states = torch.zeros(len(actions), 2)
    with torch.no_grad():
        q_values = torch.cat(agent.policy.critic(states, actions), dim=1).min(dim=1).values
    q_values = q_values.numpy()
    towards_goals, around = q_values[: len(GOAL_DIRECTIONS)], q_values[len(GOAL_DIRECTIONS) :]
    return towards_goals, float(around.max() - around.min())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--algo", choices=sorted(SCHEDULES), default="softgac")
    parser.add_argument("--ent-coef", default="10", help="a number or 'auto' / 'auto_<x>'")
    parser.add_argument("--steps", type=int, default=9000, help="environment steps in all")
    parser.add_argument("--every", type=int, default=3000, help="steps between probes")
    parser.add_argument("--episodes", type=int, default=20, help="stochastic test episodes")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--hyperparams", default="{}", help="JSON constructor overrides")
    parser.add_argument(
        "--suite-options",
        action="store_true",
        help="SoftGAC with the state encoder and log_volume_bonus of suites/softgac-multigoal.yaml",
    )
    args = parser.parse_args(argv)
    try:
        overrides = json.loads(args.hyperparams)
    except json.JSONDecodeError as error:
        parser.error(f"--hyperparams is not JSON: {error}")
    if not isinstance(overrides, dict):
        parser.error("--hyperparams must be a JSON object")
    if args.suite_options:
        if args.algo != "softgac":
            parser.error("--suite-options is for --algo softgac")
        overrides = {**SOFTGAC_SUITE_OPTIONS, **overrides}
    torch.set_num_threads(1)
    agent = make_agent(args.algo, args.ent_coef, args.seed, overrides)
    print(
        f"{args.algo} ent_coef {args.ent_coef} seed {args.seed} on MultiGoal-v0, "
        f"overrides {overrides or 'none'}; goals (5,0) (-5,0) (0,5) (0,-5)"
    )
    print(
        "policy: mean action at (0,0) (2,0) (-2,0) (0,2) (0,-2); "
        "critic: min Q(origin, 0.8 towards each goal), spread over 8 directions"
    )
    started = time.perf_counter()
    while agent.num_timesteps < args.steps:
        agent.learn(min(args.every, args.steps - agent.num_timesteps), reset_num_timesteps=False)
        hits, misses, mean_return = goal_coverage(agent, args.episodes)
        means, origin_spread = policy_probe(agent)
        towards_goals, q_spread = critic_probe(agent)
        print(
            f"{agent.num_timesteps:>6} steps  goals {int((hits > 0).sum())}  hits "
            f"{' '.join(str(h) for h in hits)}  none {misses}  return {mean_return:7.1f}  "
            f"[{time.perf_counter() - started:.0f} s]"
        )
        policy = " ".join(f"({m[0]:+.2f},{m[1]:+.2f})" for m in means)
        print(f"        policy {policy}  origin spread {origin_spread:.2f}")
        critic = " ".join(f"{q:.0f}" for q in towards_goals)
        print(f"        critic towards goals {critic}  spread {q_spread:.0f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
