"""Benchmark BSAC's training time per env step relative to SB3's SAC on HalfCheetah-v5.

What it measures
----------------
Training time per environment step (one env step + one gradient step, SB3's default
``train_freq=1, gradient_steps=1``) of :class:`maxbench.algos.bsac.BSAC` with its defaults
(one forward-KL step per gradient step, G = 64, VDN-a trunk of the critic's sizes, K = 4) and of
stable-baselines3's SAC with its defaults, both on ``HalfCheetah-v5`` (d = 6, 256×256 networks,
batch 256), measured in the same run. Target (issue 3): BSAC at most 1.5× SAC.

How it works
------------
Each measurement runs in a fresh process (``spawn``) with one torch thread (OMP/MKL/OpenBLAS
thread counts set before torch is imported), the project's one-thread-per-worker convention.
A worker builds the model with ``learning_starts=--learning-starts``, runs ``--warmup`` untimed
steps (which include gradient updates, so that every lazy initialisation has happened), then
times ``learn(--steps, reset_num_timesteps=False)`` with ``time.perf_counter`` (wall) and
``time.process_time`` (CPU of this process). Measurements alternate SAC, BSAC, SAC, BSAC, ... for
``--repeats`` rounds, one at a time, and the medians are compared. On a machine shared with other
work the wall-clock ratio is noisy; the CPU-time ratio is the steadier figure, and both are
printed with the 1-minute load average before each measurement.

How to run
----------
From the repository root::

    .venv/bin/python benchmarks/bsac_speed.py                 # defaults, a few minutes
    .venv/bin/python benchmarks/bsac_speed.py --repeats 5 --json /tmp/bsac_speed.json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing as mp
import os
import platform
import shlex
import statistics
import sys
import time
import traceback
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

ENV_ID = "HalfCheetah-v5"
THREAD_ENV_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
ALGORITHMS = ("SAC", "BSAC")


def worker(algorithm: str, seed: int, args: dict[str, int], results: Any) -> None:
    """Build ``algorithm`` on HalfCheetah-v5 in this spawned process, time training steps."""
    try:
        for var in THREAD_ENV_VARS:
            os.environ[var] = "1"
        import torch

        torch.set_num_threads(1)
        with contextlib.suppress(RuntimeError):
            torch.set_num_interop_threads(1)
        from stable_baselines3 import SAC
        from stable_baselines3.common.logger import Logger

        from maxbench.algos.bsac import BSAC

        cls = {"SAC": SAC, "BSAC": BSAC}[algorithm]
        model = cls("MlpPolicy", ENV_ID, seed=seed, learning_starts=args["learning_starts"])
        model.set_logger(Logger(folder=None, output_formats=[]))  # no SB3-<date> temp folder
        model.learn(total_timesteps=args["warmup"])
        before = model.num_timesteps
        wall, cpu = time.perf_counter(), time.process_time()
        model.learn(total_timesteps=args["steps"], reset_num_timesteps=False)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        steps = model.num_timesteps - before
        results.put(
            {
                "ok": True,
                "steps": steps,
                "wall_ms_per_step": 1000 * wall / steps,
                "cpu_ms_per_step": 1000 * cpu / steps,
                "torch_threads": torch.get_num_threads(),
            }
        )
    except BaseException:  # report any failure to the parent
        results.put({"ok": False, "error": traceback.format_exc()})


def measure(ctx: Any, algorithm: str, seed: int, args: argparse.Namespace) -> dict[str, Any]:
    """One measurement of ``algorithm`` in a fresh process."""
    results = ctx.Queue()
    settings = {"learning_starts": args.learning_starts, "warmup": args.warmup, "steps": args.steps}
    process = ctx.Process(target=worker, args=(algorithm, seed, settings, results))
    process.start()
    result = results.get()
    process.join()
    if not result["ok"]:
        raise RuntimeError(f"{algorithm} worker failed:\n{result['error']}")
    return result


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="BSAC vs SAC training time per env step.")
    parser.add_argument("--steps", type=int, default=1000, help="timed env steps per measurement")
    parser.add_argument(
        "--warmup", type=int, default=1200, help="untimed steps (> learning starts)"
    )
    parser.add_argument("--learning-starts", type=int, default=1000, help="random steps first")
    parser.add_argument("--repeats", type=int, default=3, help="rounds; medians are reported")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None, metavar="PATH", help="write JSON here")
    args = parser.parse_args(argv)
    if args.steps < 1 or args.repeats < 1:
        parser.error("--steps and --repeats must be positive")
    if args.warmup <= args.learning_starts:
        parser.error("--warmup must exceed --learning-starts so that it includes updates")
    return args


def _version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    print(f"command:  {shlex.join([sys.executable, *sys.argv])}")
    print(
        f"versions: torch {_version('torch')} | stable-baselines3 {_version('stable-baselines3')} "
        f"| gymnasium {_version('gymnasium')} | mujoco {_version('mujoco')} "
        f"| python {platform.python_version()}"
    )
    print(f"machine:  {platform.machine()}, {os.cpu_count()} CPUs (os.cpu_count), 1 torch thread")
    print(
        f"protocol: {ENV_ID}, defaults of both algorithms, learning_starts={args.learning_starts}, "
        f"{args.warmup} warm-up steps, then {args.steps} timed steps; {args.repeats} rounds"
    )
    ctx = mp.get_context("spawn")
    rows: dict[str, list[dict[str, Any]]] = {name: [] for name in ALGORITHMS}
    start = time.perf_counter()
    for round_index in range(args.repeats):
        for name in ALGORITHMS:
            load = os.getloadavg()[0]
            result = measure(ctx, name, args.seed, args)
            result["load"] = load
            rows[name].append(result)
            print(
                f"[round {round_index + 1}/{args.repeats}] {name:4s}: "
                f"{result['wall_ms_per_step']:7.2f} ms/step wall, "
                f"{result['cpu_ms_per_step']:7.2f} ms/step CPU "
                f"(load before: {load:.2f})",
                flush=True,
            )
    medians = {
        name: {
            key: statistics.median(row[key] for row in rows[name])
            for key in ("wall_ms_per_step", "cpu_ms_per_step")
        }
        for name in ALGORITHMS
    }
    ratios = {
        key: medians["BSAC"][key] / medians["SAC"][key]
        for key in ("wall_ms_per_step", "cpu_ms_per_step")
    }
    print()
    print("median ms per env step      wall      CPU")
    for name in ALGORITHMS:
        print(
            f"  {name:24s} {medians[name]['wall_ms_per_step']:8.2f} "
            f"{medians[name]['cpu_ms_per_step']:8.2f}"
        )
    print(
        f"BSAC / SAC: {ratios['wall_ms_per_step']:.2f}x wall, {ratios['cpu_ms_per_step']:.2f}x CPU "
        "(target: at most 1.5x)"
    )
    print(f"total benchmark wall time: {time.perf_counter() - start:.1f}s")
    if args.json is not None:
        payload = {
            "env_id": ENV_ID,
            "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
            "measurements": rows,
            "medians": medians,
            "ratios_bsac_over_sac": ratios,
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(payload, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
