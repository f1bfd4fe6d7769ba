"""Benchmark SoftGAC against SB3's SAC: training time per env step and ``predict`` latency.

What it measures
----------------
In one run, one process, one torch thread, on ``HalfCheetah-v5`` (17-D observations, 6-D actions):

1. **Training time per environment step** (rollout step plus its gradient updates), for
   * ``sac``: stable-baselines3's SAC with its defaults (UTD 1, 2x256 networks, batch 256);
   * ``softgac``: SoftGAC with the *same update schedule* (``gradient_steps=1``,
     ``policy_delay=1``: one critic and one actor update per env step, as SAC), K = 6, H = 256,
     twin 2x256 critics. The issue's target (at most 1.3x SAC) is about this row: same work
     schedule, different actor;
   * ``softgac-authors``: SoftGAC's defaults, the authors' schedule (UTD 2, policy delay 2: two
     critic updates and one actor update per env step), for information;
   * ``softgac-stock-adam``: as ``softgac`` but with SB3's default (per-tensor) Adam instead of
     the fused Adam that SoftGAC's policy uses by default, to show what that choice buys.
   Each model first learns ``--warmup`` untimed steps (past ``learning_starts``, so updates run),
   then ``model.learn(--steps, reset_num_timesteps=False)`` is timed with ``time.perf_counter``.
   Configurations alternate (a, b, c, d, a, b, ...) over ``--repeats`` rounds; the median per
   configuration is reported with its ratio to SAC's median.
2. **Action selection latency at batch 1**: ``model.predict(obs, deterministic=...)`` on one
   observation (what a user pays, SB3's numpy/torch conversions included), for deterministic and
   stochastic actions, and the bare actor forward pass (``policy.actor(obs_tensor)`` under
   ``torch.no_grad``). Each is the median over ``--latency-blocks`` blocks of ``--calls`` calls,
   blocks alternating between SAC and SoftGAC. The target (at most 1.5x SAC) is about
   ``predict``; the authors report about 2x a Gaussian actor (61 vs 31 us, JAX, jit-compiled).

How to run
----------
From the repository root (about 5 to 10 minutes on a 2-core machine)::

    .venv/bin/python benchmarks/softgac_speed.py
    .venv/bin/python benchmarks/softgac_speed.py --repeats 5 --json /tmp/softgac_speed.json

The machine's load matters: quote the numbers with the load average the script prints.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from collections.abc import Callable  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import torch  # noqa: E402
from stable_baselines3 import SAC  # noqa: E402
from stable_baselines3.common.logger import Logger  # noqa: E402

from maxbench.algos.softgac import SoftGAC  # noqa: E402

ENV_ID = "HalfCheetah-v5"


@dataclass(frozen=True)
class TrainingConfig:
    """One algorithm configuration to time."""

    key: str
    description: str
    build: Callable[[int], Any]


def training_configs(learning_starts: int) -> list[TrainingConfig]:
    """The timed configurations (see the module docstring)."""
    common = {"learning_starts": learning_starts, "buffer_size": 100_000, "verbose": 0}
    matched = {**common, "gradient_steps": 1, "policy_delay": 1}
    stock_adam = {"optimizer_kwargs": {}}
    return [
        TrainingConfig(
            "sac", "SB3 SAC, defaults", lambda seed: SAC("MlpPolicy", ENV_ID, seed=seed, **common)
        ),
        TrainingConfig(
            "softgac",
            "SoftGAC, UTD 1, policy delay 1 (SAC's schedule)",
            lambda seed: SoftGAC("MlpPolicy", ENV_ID, seed=seed, **matched),
        ),
        TrainingConfig(
            "softgac-authors",
            "SoftGAC defaults: UTD 2, policy delay 2 (authors' schedule)",
            lambda seed: SoftGAC("MlpPolicy", ENV_ID, seed=seed, **common),
        ),
        TrainingConfig(
            "softgac-stock-adam",
            "SoftGAC, SAC's schedule, SB3's default (per-tensor) Adam",
            lambda seed: SoftGAC(
                "MlpPolicy", ENV_ID, seed=seed, policy_kwargs=stock_adam, **matched
            ),
        ),
    ]


def time_training(configs: list[TrainingConfig], warmup: int, steps: int, repeats: int) -> dict:
    """Median ms per env step of each configuration, configurations alternating per round."""
    models = {}
    for config in configs:
        model = config.build(0)
        model.set_logger(Logger(folder=None, output_formats=[]))  # no SB3-<date> temp folder
        model.learn(warmup)
        models[config.key] = model
    samples: dict[str, list[float]] = {config.key: [] for config in configs}
    for _ in range(repeats):
        for config in configs:
            model = models[config.key]
            started = time.perf_counter()
            model.learn(steps, reset_num_timesteps=False)
            samples[config.key].append((time.perf_counter() - started) / steps * 1e3)
    return samples


def _block_time_us(function: Callable[[], Any], calls: int) -> float:
    started = time.perf_counter()
    for _ in range(calls):
        function()
    return (time.perf_counter() - started) / calls * 1e6


def time_latency(models: dict[str, Any], calls: int, blocks: int) -> dict[str, dict[str, float]]:
    """Median microseconds per call of predict (deterministic / stochastic) and actor forward."""
    observation = models["sac"].observation_space.sample()
    obs_tensor = torch.as_tensor(observation)[None]
    probes: dict[str, Callable[[Any], Callable[[], Any]]] = {
        "predict deterministic": lambda m: lambda: m.predict(observation, deterministic=True),
        "predict stochastic": lambda m: lambda: m.predict(observation, deterministic=False),
        "actor forward deterministic": lambda m: lambda: m.policy.actor(obs_tensor, True),
        "actor forward stochastic": lambda m: lambda: m.policy.actor(obs_tensor, False),
    }
    samples: dict[str, dict[str, list[float]]] = {probe: {} for probe in probes}
    with torch.no_grad():
        for probe, make in probes.items():
            functions = {name: make(model) for name, model in models.items()}
            for function in functions.values():
                _block_time_us(function, calls // 5)  # warm-up
            for _ in range(blocks):
                for name, function in functions.items():
                    samples[probe].setdefault(name, []).append(_block_time_us(function, calls))
    return {
        probe: {name: statistics.median(values) for name, values in per_model.items()}
        for probe, per_model in samples.items()
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--warmup", type=int, default=600, help="untimed steps per model")
    parser.add_argument("--learning-starts", type=int, default=500)
    parser.add_argument("--steps", type=int, default=300, help="timed steps per round")
    parser.add_argument("--repeats", type=int, default=3, help="rounds of timed training")
    parser.add_argument("--calls", type=int, default=500, help="predict calls per block")
    parser.add_argument("--latency-blocks", type=int, default=7)
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    torch.set_num_threads(1)
    torch.set_num_interop_threads(1)
    if args.warmup <= args.learning_starts:
        parser.error("--warmup must exceed --learning-starts (the timed steps must train)")

    configs = training_configs(args.learning_starts)
    load_before = os.getloadavg()
    training = time_training(configs, args.warmup, args.steps, args.repeats)
    latency_models = {"sac": SAC("MlpPolicy", ENV_ID, seed=0, buffer_size=1000)}
    latency_models["softgac"] = SoftGAC("MlpPolicy", ENV_ID, seed=0, buffer_size=1000)
    latency = time_latency(latency_models, args.calls, args.latency_blocks)
    load_after = os.getloadavg()

    print(
        f"SoftGAC vs SAC on {ENV_ID}; torch {torch.__version__}, 1 thread, "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; load average "
        f"{load_before[0]:.1f} before, {load_after[0]:.1f} after"
    )
    print(
        f"\nTraining: ms per env step (rollout + updates), median of {args.repeats} rounds of "
        f"{args.steps} steps after {args.warmup} warm-up steps (learning_starts "
        f"{args.learning_starts}, batch 256)"
    )
    sac_ms = statistics.median(training["sac"])
    for config in configs:
        values = training[config.key]
        median = statistics.median(values)
        rounds = ", ".join(f"{v:.1f}" for v in values)
        print(
            f"  {config.key:<20} {median:7.2f} ms  x{median / sac_ms:4.2f} SAC   "
            f"[{rounds}]  {config.description}"
        )
    print(
        f"\nAction selection at batch 1: microseconds per call, median of "
        f"{args.latency_blocks} blocks of {args.calls} calls"
    )
    for probe, per_model in latency.items():
        ratio = per_model["softgac"] / per_model["sac"]
        print(
            f"  {probe:<28} SAC {per_model['sac']:7.1f} us   SoftGAC "
            f"{per_model['softgac']:7.1f} us   x{ratio:4.2f}"
        )
    result = {
        "env": ENV_ID,
        "torch": torch.__version__,
        "load_average": [load_before[0], load_after[0]],
        "training_ms_per_step": training,
        "latency_us": latency,
        "args": {key: str(value) for key, value in vars(args).items()},
    }
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
