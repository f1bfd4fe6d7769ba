"""Benchmark SAC training throughput: many 1-thread workers vs. one multi-thread worker.

What it measures
----------------
Training throughput (environment steps per second, gradient updates included) of
stable-baselines3 SAC on ``Pendulum-v1`` in two configurations, in one run:

(a) **2 worker processes at the same time, 1 torch thread each** -- each worker's
    steps/s and the aggregate (the sum over workers);
(b) **1 worker process with 2 torch threads**.

It then reports the ratio ``aggregate(a) / aggregate(b)``.

Why
---
The project's design runs one torch thread per worker process and packs as many workers
as there are cores. SAC's default networks are small (two 256-unit hidden layers,
batch size 256), so a single update is too little work to split usefully across
threads: intra-op parallelism mostly adds synchronisation overhead, and when several
multi-threaded workers share the cores (oversubscription) throughput can drop to about
half. This script checks that choice on the machine at hand: on a 2-core machine, (a)
should give clearly more aggregate steps/s than (b).

How it works
------------
Every worker is a separate process started with the ``spawn`` start method. Before it
imports torch, it sets ``OMP_NUM_THREADS``, ``MKL_NUM_THREADS`` and
``OPENBLAS_NUM_THREADS`` to its thread count, then calls ``torch.set_num_threads(n)``
and ``torch.set_num_interop_threads(1)``. (This module therefore imports torch and
stable-baselines3 only inside the worker function.) Each worker builds
``SAC("MlpPolicy", "Pendulum-v1", seed=..., learning_starts=L, verbose=0)``, runs an
untimed warm-up of ``--warmup`` steps (at least ``learning_starts``, so that it already
includes gradient updates), waits on a barrier shared by all workers of the
configuration so that the timed sections start together, and then times
``model.learn(total_timesteps=--steps, reset_num_timesteps=False)`` with
``time.perf_counter``. With ``--repeats N`` each configuration runs N times
(alternating a, b, a, b, ...) and the median is reported.

How to run
----------
From the repository root::

    .venv/bin/python benchmarks/threads.py                  # defaults, ~1-2 minutes
    .venv/bin/python benchmarks/threads.py --repeats 3 --json results/threads.json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing as mp
import os
import platform
import queue
import shlex
import statistics
import sys
import time
import traceback
from dataclasses import asdict, dataclass, field
from importlib.metadata import PackageNotFoundError, version
from multiprocessing.synchronize import Barrier
from pathlib import Path
from typing import Any

ENV_ID = "Pendulum-v1"
THREAD_ENV_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
WORKER_TIMEOUT_S = 3600.0


@dataclass(frozen=True)
class Config:
    """One benchmark configuration: ``workers`` processes with ``threads`` torch threads."""

    key: str
    label: str
    workers: int
    threads: int


CONFIGS: tuple[Config, ...] = (
    Config(key="a", label="(a) parallel workers", workers=2, threads=1),
    Config(key="b", label="(b) single worker", workers=1, threads=2),
)


@dataclass
class ConfigResult:
    """Results of all repeats of one configuration."""

    config: Config
    # per_worker[r][w]: steps/s of worker w in repeat r.
    per_worker: list[list[float]] = field(default_factory=list)
    # seconds[r][w]: timed seconds of worker w in repeat r.
    seconds: list[list[float]] = field(default_factory=list)
    # cpu_cores[r][w]: CPU seconds / wall seconds of worker w's timed section (all threads).
    cpu_cores: list[list[float]] = field(default_factory=list)
    # loadavg[r]: 1-minute load average just before repeat r started.
    loadavg: list[float] = field(default_factory=list)
    torch_threads: list[int] = field(default_factory=list)

    @property
    def aggregates(self) -> list[float]:
        """Aggregate steps/s (sum over workers) of each repeat."""
        return [sum(rates) for rates in self.per_worker]

    @property
    def median_aggregate(self) -> float:
        """Median over repeats of the aggregate steps/s."""
        return statistics.median(self.aggregates)

    @property
    def median_per_worker(self) -> list[float]:
        """Median over repeats of each worker's steps/s."""
        return [statistics.median(col) for col in zip(*self.per_worker, strict=True)]

    @property
    def median_cpu_cores(self) -> list[float]:
        """Median over repeats of each worker's CPU cores used during the timed section."""
        return [statistics.median(col) for col in zip(*self.cpu_cores, strict=True)]


def worker(
    rank: int,
    threads: int,
    seed: int,
    steps: int,
    warmup: int,
    learning_starts: int,
    barrier: Barrier,
    results: Any,
) -> None:
    """Train SAC in this (spawned) process and put a result dict on ``results``.

    Thread-count environment variables are set before torch is imported, which is why
    torch and stable-baselines3 are imported here rather than at module level.
    """
    try:
        for var in THREAD_ENV_VARS:
            os.environ[var] = str(threads)

        import torch
        from stable_baselines3 import SAC
        from stable_baselines3.common.logger import Logger

        torch.set_num_threads(threads)
        # Raises RuntimeError if already set or parallel work has already started.
        with contextlib.suppress(RuntimeError):
            torch.set_num_interop_threads(1)

        model = SAC("MlpPolicy", ENV_ID, seed=seed, learning_starts=learning_starts, verbose=0)
        model.set_logger(Logger(folder=None, output_formats=[]))  # no SB3-<date> temp folder
        model.learn(total_timesteps=warmup)

        barrier.wait()
        before = model.num_timesteps
        start = time.perf_counter()
        cpu_start = time.process_time()
        model.learn(total_timesteps=steps, reset_num_timesteps=False)
        elapsed = time.perf_counter() - start
        cpu = time.process_time() - cpu_start
        done = model.num_timesteps - before

        results.put(
            {
                "rank": rank,
                "ok": True,
                "steps": done,
                "seconds": elapsed,
                "steps_per_s": done / elapsed,
                "cpu_cores": cpu / elapsed,
                "torch_threads": torch.get_num_threads(),
            }
        )
    except BaseException:  # Report any failure to the parent, and release the barrier.
        with contextlib.suppress(Exception):
            barrier.abort()
        results.put({"rank": rank, "ok": False, "error": traceback.format_exc()})


def run_config(
    ctx: mp.context.SpawnContext, config: Config, args: argparse.Namespace, repeat: int
) -> list[dict[str, Any]]:
    """Run one repeat of ``config``: start its workers together, return their results."""
    barrier = ctx.Barrier(config.workers)
    results = ctx.Queue()
    procs = [
        ctx.Process(
            target=worker,
            args=(
                rank,
                config.threads,
                args.seed + 1000 * repeat + rank,
                args.steps,
                args.warmup,
                args.learning_starts,
                barrier,
                results,
            ),
            name=f"threads-{config.key}-{rank}",
        )
        for rank in range(config.workers)
    ]
    for proc in procs:
        proc.start()
    # Drain the queue before joining so no worker blocks on a full pipe. If a worker fails
    # or dies without reporting (e.g. killed), the repeat is invalid: abort the barrier and
    # stop the other workers rather than wait for them.
    collected: list[dict[str, Any]] = []
    failed = False
    deadline = time.monotonic() + WORKER_TIMEOUT_S
    while len(collected) < config.workers and not failed:
        if time.monotonic() > deadline:
            failed = True
            break
        try:
            result = results.get(timeout=1.0)
            collected.append(result)
            failed = not result["ok"]
        except queue.Empty:
            if sum(not p.is_alive() for p in procs) > len(collected):
                try:  # A result may still be in flight from a worker that just exited.
                    collected.append(results.get(timeout=5.0))
                except queue.Empty:
                    failed = True
    if failed:
        barrier.abort()
    for proc in procs:
        proc.join(timeout=5 if failed else 60)
        if proc.is_alive():
            proc.terminate()
            proc.join()
    failures = [r for r in collected if not r["ok"]]
    if failures or len(collected) != config.workers:
        details = (
            "\n".join(r["error"] for r in failures)
            or "a worker died or timed out without reporting"
        )
        raise RuntimeError(f"configuration {config.label} failed:\n{details}")
    return sorted(collected, key=lambda r: r["rank"])


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse and validate the command line."""
    parser = argparse.ArgumentParser(
        description=(
            "SAC steps/s on Pendulum-v1: 2 workers x 1 torch thread (at the same time) "
            "vs. 1 worker x 2 torch threads."
        )
    )
    parser.add_argument("--steps", type=int, default=2000, help="timed env steps per worker")
    parser.add_argument(
        "--warmup", type=int, default=300, help="untimed warm-up steps (>= --learning-starts)"
    )
    parser.add_argument(
        "--learning-starts", type=int, default=100, help="SAC learning_starts (default 100)"
    )
    parser.add_argument(
        "--repeats", type=int, default=1, help="runs per configuration; the median is reported"
    )
    parser.add_argument("--seed", type=int, default=0, help="base seed (worker i uses seed+i)")
    parser.add_argument("--json", type=Path, default=None, metavar="PATH", help="write JSON here")
    args = parser.parse_args(argv)
    if args.steps < 1 or args.repeats < 1:
        parser.error("--steps and --repeats must be positive")
    if args.learning_starts < 0:
        parser.error("--learning-starts must be >= 0")
    if args.warmup < args.learning_starts:
        parser.error("--warmup must be >= --learning-starts so that warm-up includes updates")
    return args


def _package_version(name: str) -> str:
    """Installed version of ``name`` without importing it (keeps torch out of the parent)."""
    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def print_report(
    results: dict[str, ConfigResult], args: argparse.Namespace, header: dict[str, Any]
) -> float:
    """Print the results table; return aggregate(a) / aggregate(b)."""
    from rich.console import Console
    from rich.table import Table

    res_a, res_b = results["a"], results["b"]
    ratio = res_a.median_aggregate / res_b.median_aggregate
    stat = "median of " + str(args.repeats) if args.repeats > 1 else "1 run"

    table = Table(title=f"SAC on {ENV_ID}: training throughput, env steps/s ({stat})")
    table.add_column("configuration")
    table.add_column("workers x threads", justify="center")
    table.add_column("per-worker steps/s", justify="right")
    table.add_column("aggregate steps/s", justify="right")
    table.add_column("vs (b)", justify="right")
    table.add_column("CPU cores used", justify="right")
    for res in (res_a, res_b):
        cfg = res.config
        table.add_row(
            cfg.label,
            f"{cfg.workers} x {cfg.threads}",
            ", ".join(f"{r:.1f}" for r in res.median_per_worker),
            f"{res.median_aggregate:.1f}",
            f"{res.median_aggregate / res_b.median_aggregate:.2f}x",
            ", ".join(f"{c:.2f}" for c in res.median_cpu_cores),
        )

    console = Console(width=120)
    # Plain print for the header, so rich neither wraps nor parses markup in the command.
    print(f"command:    {header['command']}")
    print(
        f"versions:   torch {header['torch']} | stable-baselines3 {header['stable_baselines3']} | "
        f"gymnasium {header['gymnasium']} | python {header['python']}"
    )
    print(f"CPU count:  {header['cpu_count']} (os.cpu_count)")
    print(
        f"per worker: {args.warmup} warm-up steps (learning_starts={args.learning_starts}), "
        f"then {args.steps} timed steps"
    )
    console.print(table)
    if args.repeats > 1:
        for res in (res_a, res_b):
            runs = ", ".join(f"{a:.1f}" for a in res.aggregates)
            print(f"{res.config.label} aggregate per repeat: {runs}")
    timed = ", ".join(f"{s:.1f}s" for s in res_a.seconds[-1])
    print(f"(a) timed seconds per worker (last repeat): {timed}")
    loads = " / ".join(
        f"{res.config.key}: " + ", ".join(f"{x:.2f}" for x in res.loadavg) for res in (res_a, res_b)
    )
    print(f"1-min load average just before each run: {loads}")
    print(
        "CPU cores used = process CPU time / wall time of the timed section (all threads); "
        "well under the thread count means the worker was starved, e.g. by other load."
    )
    print(f"aggregate(a) / aggregate(b) = {ratio:.2f}")
    return ratio


def main(argv: list[str] | None = None) -> int:
    """Run both configurations, print the table and optionally write JSON."""
    args = parse_args(argv)
    header = {
        "command": shlex.join([sys.executable, *sys.argv]),
        "torch": _package_version("torch"),
        "stable_baselines3": _package_version("stable-baselines3"),
        "gymnasium": _package_version("gymnasium"),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    ctx = mp.get_context("spawn")
    results = {cfg.key: ConfigResult(config=cfg) for cfg in CONFIGS}
    t0 = time.perf_counter()
    for repeat in range(args.repeats):
        for cfg in CONFIGS:
            print(
                f"[repeat {repeat + 1}/{args.repeats}] {cfg.label}: "
                f"{cfg.workers} worker(s) x {cfg.threads} thread(s) ...",
                flush=True,
            )
            res = results[cfg.key]
            res.loadavg.append(os.getloadavg()[0])
            rows = run_config(ctx, cfg, args, repeat)
            res.per_worker.append([r["steps_per_s"] for r in rows])
            res.seconds.append([r["seconds"] for r in rows])
            res.cpu_cores.append([r["cpu_cores"] for r in rows])
            res.torch_threads.extend(r["torch_threads"] for r in rows)
            if any(n != cfg.threads for n in res.torch_threads):
                print(f"warning: workers reported torch threads {res.torch_threads}")
    total = time.perf_counter() - t0
    print()
    ratio = print_report(results, args, header)
    print(f"total benchmark wall time: {total:.1f}s")

    if args.json is not None:
        payload = {
            **header,
            "env_id": ENV_ID,
            "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
            "configs": {
                key: {
                    **asdict(res.config),
                    "per_worker_steps_per_s": res.per_worker,
                    "seconds": res.seconds,
                    "cpu_cores_used": res.cpu_cores,
                    "loadavg_1min_before": res.loadavg,
                    "aggregate_steps_per_s": res.aggregates,
                    "median_per_worker_steps_per_s": res.median_per_worker,
                    "median_aggregate_steps_per_s": res.median_aggregate,
                    "torch_threads_reported": res.torch_threads,
                }
                for key, res in results.items()
            },
            "ratio_aggregate_a_over_b": ratio,
            "total_wall_s": total,
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(payload, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
