"""S2AC's run-time against SB3's SAC, measured in one process (the S2AC paper's Table 1).

Two measurements, each interleaved (SAC block, S2AC block, SAC block, ...) so that a busy machine
slows both alike; the reported figure is the median over blocks and the ratio is S2AC / SAC.
Each block is timed twice: by the thread's CPU time (``time.thread_time``: the work itself, not
the time spent waiting for a core on a shared machine; torch runs on this one thread) and by the
wall clock. The CPU-time ratio is the headline figure; both are printed.

1. **Training time per env step** on HalfCheetah-v5, each algorithm at its own default
   hyperparameters (SAC: batch 256, 1 gradient step per env step; S2AC: batch 100 × 10 particles,
   3 SVGD steps, 50 gradient steps every 50 env steps), except that both start learning and act
   with their policy after a short warm-up (``learning_starts`` / ``random_exploration_steps``
   lowered) so that the timed blocks are in the steady state. A block is ``--train-block`` env
   steps of ``learn`` (collection, replay, gradient steps; no evaluation).
   The matrix products and activation functions of one more block of each (self time of those
   kernels under ``torch.profiler``) give the floor that no implementation of the same
   computation avoids.
2. **Action-selection latency**: ``model.predict(obs)`` at batch 1 for the action sizes of Hopper,
   Walker2d, HalfCheetah and Ant (the -v5 envs' own observation and action spaces), untrained
   networks at default sizes, deterministic and stochastic.

Targets (issue 8): S2AC(phi, theta) training <= 5x SAC per env step; its action selection <= 2x
SAC; the amortised sampler's <= 1.2x SAC.

Usage::

    .venv/bin/python benchmarks/s2ac_speed.py            # the full benchmark (about 10 min)
    .venv/bin/python benchmarks/s2ac_speed.py --quick    # a smoke run (seconds)
    .venv/bin/python benchmarks/s2ac_speed.py --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
os.environ.setdefault("KINETO_LOG_LEVEL", "5")  # no profiler start/stop lines

import gymnasium as gym  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from stable_baselines3 import SAC  # noqa: E402
from stable_baselines3.common.logger import Logger  # noqa: E402

from maxbench.algos.s2ac import S2AC  # noqa: E402

#: The envs of the paper's run-time table and their action sizes (3, 6, 6, 8).
PREDICT_ENVS = ("Hopper-v5", "Walker2d-v5", "HalfCheetah-v5", "Ant-v5")

#: name -> (class, constructor overrides of the defaults)
VARIANTS: dict[str, tuple[type, dict[str, Any]]] = {
    "SAC": (SAC, {}),
    "S2AC(phi,theta)": (S2AC, {}),
    "S2AC(phi,theta,psi)": (S2AC, {"amortized": True}),
}


def _make(name: str, env: Any, warmup: int) -> Any:
    cls, overrides = VARIANTS[name]
    kwargs: dict[str, Any] = {"learning_starts": warmup, **overrides}
    if cls is S2AC:
        kwargs["random_exploration_steps"] = warmup
    model = cls("MlpPolicy", env, seed=0, device="cpu", **kwargs)
    model.set_logger(Logger(folder=None, output_formats=[]))  # no SB3-<date> temp folder
    return model


def _interleaved(fns: dict[str, Callable[[], float]], rounds: int) -> dict[str, list[float]]:
    """Call every function once per round, in a rotating order; return each one's results."""
    results: dict[str, list[float]] = {name: [] for name in fns}
    names = list(fns)
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            results[name].append(fns[name]())
    return results


def _timed(work: Callable[[], None], per: int) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of ``work()`` divided by ``per``."""
    cpu, wall = time.thread_time(), time.perf_counter()
    work()
    return (time.thread_time() - cpu) / per, (time.perf_counter() - wall) / per


def train_benchmark(env_id: str, warmup: int, block: int, rounds: int) -> dict[str, Any]:
    """Seconds per env step of ``learn`` in the steady state, per algorithm."""
    models = {name: _make(name, env_id, warmup) for name in VARIANTS}
    for model in models.values():
        model.learn(warmup + block, reset_num_timesteps=True)  # warm-up: buffer, first updates

    def timer(model: Any) -> Callable[[], tuple[float, float]]:
        def run() -> tuple[float, float]:
            return _timed(lambda: model.learn(block, reset_num_timesteps=False), block)

        return run

    times = _interleaved({name: timer(m) for name, m in models.items()}, rounds)
    out = _summary(times)
    for name in ("SAC", "S2AC(phi,theta)"):
        out[name]["floor_cpu_s"] = kernel_time_per_step(models[name], block)
    return out


#: The kernels whose self time makes the training floor: the matrix products (the networks'
#: forward and backward passes, the SVGD kernel's and the critic gradient's) and the networks'
#: activation functions with their derivatives (ELU for S2AC's networks, ReLU for SAC's).
FLOOR_KERNELS = {
    "matmul": ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm", "aten::addbmm"),
    "activation": ("aten::elu", "aten::elu_backward", "aten::relu", "aten::threshold_backward"),
}


def kernel_time_per_step(model: Any, block: int) -> dict[str, float]:
    """CPU seconds per env step inside the :data:`FLOOR_KERNELS` during ``learn(block)``.

    Profiled with ``torch.profiler`` (self time per kernel family). Whatever an implementation
    does around them, these products and activations of the algorithm's networks remain: their sum
    is a floor on this algorithm's training time per env step at these sizes on this CPU.
    """
    return floor_kernel_time(lambda: model.learn(block, reset_num_timesteps=False), block)


def floor_kernel_time(work: Callable[[], Any], count: int) -> dict[str, float]:
    """CPU seconds per unit (``work`` does ``count`` of them) inside each family of
    :data:`FLOOR_KERNELS`, by their self time under ``torch.profiler``."""
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        work()
    events = prof.key_averages()
    return {
        family: sum(e.self_cpu_time_total for e in events if e.key in names) * 1e-6 / count
        for family, names in FLOOR_KERNELS.items()
    }


def predict_benchmark(env_id: str, calls: int, rounds: int) -> dict[str, Any]:
    """Seconds per ``predict`` call at batch 1, deterministic and stochastic."""
    env = gym.make(env_id)
    obs, _ = env.reset(seed=0)
    models = {name: _make(name, env, 100) for name in VARIANTS}
    out: dict[str, Any] = {
        "obs_dim": int(np.prod(env.observation_space.shape)),
        "action_dim": int(np.prod(env.action_space.shape)),
    }
    for deterministic in (True, False):

        def timer(
            model: Any, deterministic: bool = deterministic
        ) -> Callable[[], tuple[float, float]]:
            def work(model: Any = model) -> None:
                for _ in range(calls):
                    model.predict(obs, deterministic=deterministic)

            return lambda: _timed(work, calls)

        for model in models.values():
            timer(model)()  # warm-up
        times = _interleaved({name: timer(m) for name, m in models.items()}, rounds)
        out["deterministic" if deterministic else "stochastic"] = _summary(times)
    floor_cpu, floor_wall = matmul_floor(models["S2AC(phi,theta)"], out["obs_dim"], calls, rounds)
    sac = out["deterministic"]["SAC"]
    out["s2ac_matmul_floor"] = {
        "cpu_s": floor_cpu,
        "wall_s": floor_wall,
        "cpu_ratio_to_sac": floor_cpu / sac["cpu"]["median_s"],
        "wall_ratio_to_sac": floor_wall / sac["wall"]["median_s"],
    }
    env.close()
    return out


def matmul_floor(model: Any, obs_dim: int, calls: int, rounds: int) -> tuple[float, float]:
    """(CPU, wall) seconds of the matrix products alone of one S2AC acting pass at batch 1.

    The products S2AC must do to act, on random tensors of the shapes of ``model``'s networks:
    the q0 network on one state; per SVGD step, every critic's forward pass over the m particles
    (the state part of the first layer is computed once) and its backward pass to the actions;
    then one more forward pass to pick the particle. Nothing else (no activations, kernel,
    Python or SB3 conversions): a lower bound on what any implementation on this CPU pays.
    """
    policy = model.policy
    critic_layers = [
        [layer for layer in q_net if isinstance(layer, torch.nn.Linear)]
        for q_net in policy.critic.q_networks
    ]
    actor_layers = [layer for layer in policy.actor.modules() if isinstance(layer, torch.nn.Linear)]
    m, steps, d = policy.n_particles, policy.svgd_steps, policy.action_space.shape[0]
    C = len(critic_layers)
    sizes = [layer.out_features for layer in critic_layers[0]]  # e.g. [256, 256, 1]
    weights = [torch.randn(C, a, b) for a, b in zip([d, *sizes[:-1]], sizes, strict=True)]
    state = torch.randn(1, obs_dim)
    actor_weights = [layer.weight.detach().clone() for layer in actor_layers]
    x = torch.randn(C, m, d)
    hidden = [torch.randn(C, m, n) for n in sizes]

    def one_pass() -> None:
        h = state
        for w in actor_weights:  # q0's network (it reads the state only)
            h = h @ w.T if w.shape[1] == h.shape[1] else h
        for _ in range(steps + 1):  # L steps, then the choice of a particle
            torch.bmm(x, weights[0])
            for k in range(1, len(weights)):
                torch.bmm(hidden[k - 1], weights[k])
        for _ in range(steps):  # backward to the actions
            for k in range(len(weights) - 1, 0, -1):
                torch.bmm(hidden[k], weights[k].transpose(1, 2))
            torch.bmm(hidden[0], weights[0].transpose(1, 2))

    def work() -> None:
        with torch.inference_mode():
            for _ in range(calls):
                one_pass()

    work()  # warm-up
    blocks = [_timed(work, calls) for _ in range(rounds)]
    return statistics.median(b[0] for b in blocks), statistics.median(b[1] for b in blocks)


def _summary(times: dict[str, list[tuple[float, float]]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for clock, index in (("cpu", 0), ("wall", 1)):
        medians = {
            name: statistics.median(v[index] for v in values) for name, values in times.items()
        }
        for name, values in times.items():
            out.setdefault(name, {})[clock] = {
                "median_s": medians[name],
                "blocks_s": [v[index] for v in values],
                "ratio_to_sac": medians[name] / medians["SAC"],
            }
    return out


def _print_table(title: str, rows: dict[str, Any], unit: str, scale: float) -> None:
    print(f"\n{title}")
    print(
        f"  {'algorithm':<22}{'CPU ' + unit:>14}{'x SAC':>8}{'wall ' + unit:>15}{'x SAC':>8}"
        "   CPU blocks"
    )
    for name, row in rows.items():
        cpu, wall = row["cpu"], row["wall"]
        blocks = " ".join(f"{v * scale:.0f}" for v in cpu["blocks_s"])
        print(
            f"  {name:<22}{cpu['median_s'] * scale:>14.1f}{cpu['ratio_to_sac']:>8.2f}"
            f"{wall['median_s'] * scale:>15.1f}{wall['ratio_to_sac']:>8.2f}   {blocks}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny settings (a smoke run)")
    parser.add_argument("--train-block", type=int, default=200, help="env steps per timed block")
    parser.add_argument("--train-rounds", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1000, help="env steps before timing")
    parser.add_argument("--predict-calls", type=int, default=300)
    parser.add_argument("--predict-rounds", type=int, default=7)
    parser.add_argument("--skip-train", action="store_true")
    parser.add_argument("--skip-predict", action="store_true")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args(argv)
    if args.quick:
        args.train_block, args.train_rounds, args.warmup = 50, 2, 100
        args.predict_calls, args.predict_rounds = 20, 2
    warnings.filterwarnings("ignore")
    torch.set_num_threads(1)
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    print(
        f"python {platform.python_version()}, torch {torch.__version__} "
        f"({torch.get_num_threads()} thread), {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs, load average at start {load}"
    )
    results: dict[str, Any] = {"load_average_at_start": load}
    if not args.skip_train:
        train = train_benchmark("HalfCheetah-v5", args.warmup, args.train_block, args.train_rounds)
        results["train_HalfCheetah-v5"] = train
        _print_table(
            f"training time per env step, HalfCheetah-v5 ({args.train_rounds} blocks of "
            f"{args.train_block} steps after {args.warmup} warm-up steps)",
            train,
            "ms/step",
            1e3,
        )
        sac_cpu = train["SAC"]["cpu"]["median_s"]
        for name in ("SAC", "S2AC(phi,theta)"):
            floor = train[name]["floor_cpu_s"]
            both = floor["matmul"] + floor["activation"]
            print(
                f"  {name}, profiled block (a floor): matrix products {floor['matmul'] * 1e3:.1f} "
                f"ms/step = {floor['matmul'] / sac_cpu:.2f}x SAC's whole step; with the "
                f"activations {both * 1e3:.1f} ms/step = {both / sac_cpu:.2f}x"
            )
    if not args.skip_predict:
        for env_id in PREDICT_ENVS:
            found = predict_benchmark(env_id, args.predict_calls, args.predict_rounds)
            results[f"predict_{env_id}"] = found
            for mode in ("deterministic", "stochastic"):
                _print_table(
                    f"predict at batch 1, {env_id} (obs {found['obs_dim']}, action "
                    f"{found['action_dim']}), {mode}, {args.predict_rounds} blocks of "
                    f"{args.predict_calls} calls",
                    found[mode],
                    "us/call",
                    1e6,
                )
            floor = found["s2ac_matmul_floor"]
            print(
                f"  S2AC(phi,theta)'s matrix products alone (a floor): CPU "
                f"{floor['cpu_s'] * 1e6:.1f} us = {floor['cpu_ratio_to_sac']:.2f}x SAC's "
                f"deterministic predict; wall {floor['wall_s'] * 1e6:.1f} us = "
                f"{floor['wall_ratio_to_sac']:.2f}x"
            )
    load_end = os.getloadavg() if hasattr(os, "getloadavg") else None
    results["load_average_at_end"] = load_end
    print(f"\nload average at end {load_end}")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(results, handle, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
