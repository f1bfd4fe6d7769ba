"""The engine's speed against SB3's SAC, measured in one process (issue 14).

Variants (each at its defaults on HalfCheetah-v5, learning from a short warm-up on): SB3's SAC
(eager, the reference of every ratio), then each maxbench algorithm eager and with
``compile=True``: the engine's SAC (``sac-engine``: device replay, multi-tensor optimisers and
target update, device-side logs), S2AC(φ,θ), SoftGAC, BSAC, SQL and SAC-NF (``--only`` picks
some; ``--list`` names them). Training time per env step is timed in interleaved blocks (SAC,
engine, compiled, SAC, ...; see ``s2ac_speed.py``), by the thread's CPU time and the wall clock;
the time to compile is measured apart (the first block after the model is built, less a steady
block) and never enters the steady-state figure. The matrix products and activations of one
profiled block of each eager variant give the floor no implementation of the same computation
avoids. ``predict`` at batch 1 (deterministic) is timed the same way, beside its own floor.

On ``--device cuda`` the same runs on the GPU (the wall clock is the figure there: the thread's
CPU time does not see the GPU's work).

Usage::

    .venv/bin/python benchmarks/engine_speed.py                  # about an hour on 2 cores
    .venv/bin/python benchmarks/engine_speed.py --only "engine SAC" S2AC    # some of them
    .venv/bin/python benchmarks/engine_speed.py --quick          # a smoke run
    .venv/bin/python benchmarks/engine_speed.py --device cuda --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import warnings
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
os.environ.setdefault("KINETO_LOG_LEVEL", "5")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import gymnasium as gym  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from s2ac_speed import (  # noqa: E402
    _interleaved,
    _print_table,
    _summary,
    _timed,
    floor_kernel_time,
    kernel_time_per_step,
)
from stable_baselines3 import SAC  # noqa: E402
from stable_baselines3.common.logger import Logger  # noqa: E402

from maxbench.algos.bsac import BSAC  # noqa: E402
from maxbench.algos.engine_sac import EngineSAC  # noqa: E402
from maxbench.algos.s2ac import S2AC  # noqa: E402
from maxbench.algos.sacnf import SACNF  # noqa: E402
from maxbench.algos.softgac import SoftGAC  # noqa: E402
from maxbench.algos.sql import SQL  # noqa: E402

#: The maxbench algorithms, each timed eager and with ``compile=True`` (its defaults otherwise).
ALGORITHMS: dict[str, type] = {
    "engine SAC": EngineSAC,
    "S2AC(phi,theta)": S2AC,
    "SoftGAC": SoftGAC,
    "BSAC": BSAC,
    "SQL": SQL,
    "SAC-NF": SACNF,
}

#: name -> (class, constructor overrides); "SAC" (SB3's, eager) is the reference of every ratio.
VARIANTS: dict[str, tuple[type, dict[str, Any]]] = {"SAC": (SAC, {})}
for _name, _cls in ALGORITHMS.items():
    VARIANTS[_name] = (_cls, {})
    VARIANTS[f"{_name} compiled"] = (_cls, {"compile": True})


def _make(name: str, env: Any, warmup: int, device: str) -> Any:
    cls, overrides = VARIANTS[name]
    kwargs = {"seed": 0, "device": device, "learning_starts": warmup, **overrides}
    if cls is S2AC:  # act with SVGD after the warm-up too (not the authors' 10k random steps)
        kwargs["random_exploration_steps"] = warmup
    model = cls("MlpPolicy", env, **kwargs)
    model.set_logger(Logger(folder=None, output_formats=[]))
    return model


def select(names: list[str] | None) -> None:
    """Keep SAC and the variants whose names start with one of ``names`` (all when None)."""
    if not names:
        return
    unknown = [n for n in names if not any(v.startswith(n) for v in VARIANTS)]
    if unknown:
        raise SystemExit(f"--only: no variant starts with {', '.join(unknown)}; see --list")
    for name in list(VARIANTS):
        if name != "SAC" and not any(name.startswith(n) for n in names):
            del VARIANTS[name]


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def train_benchmark(
    env_id: str, warmup: int, block: int, rounds: int, device: str
) -> dict[str, Any]:
    """Seconds per env step of ``learn`` in the steady state; compile time apart."""
    models = {name: _make(name, env_id, warmup, device) for name in VARIANTS}
    first: dict[str, float] = {}
    for name, model in models.items():
        model.learn(warmup, reset_num_timesteps=True)  # fills the buffer; no update yet
        started = time.perf_counter()
        model.learn(block, reset_num_timesteps=False)  # first updates (and the compilation)
        _sync(device)
        first[name] = time.perf_counter() - started

    def timer(model: Any) -> Any:
        def run() -> tuple[float, float]:
            def work() -> None:
                model.learn(block, reset_num_timesteps=False)
                _sync(device)

            return _timed(work, block)

        return run

    times = _interleaved({name: timer(m) for name, m in models.items()}, rounds)
    out = _summary(times)
    for name in models:
        steady = out[name]["wall"]["median_s"] * block
        out[name]["first_block_s"] = first[name]
        out[name]["compile_s"] = max(0.0, first[name] - steady)
    if not device.startswith("cuda"):  # each eager variant's kernels: the floor of its step
        for name, model in models.items():
            if "compile" not in VARIANTS[name][1]:
                out[name]["floor_cpu_s"] = kernel_time_per_step(model, block)
    return out


def predict_benchmark(env_id: str, calls: int, rounds: int, device: str) -> dict[str, Any]:
    """Seconds per deterministic ``predict`` at batch 1."""
    env = gym.make(env_id)
    obs, _ = env.reset(seed=0)
    models = {name: _make(name, env, 100, device) for name in VARIANTS}

    def timer(model: Any) -> Any:
        def work() -> None:
            for _ in range(calls):
                model.predict(obs, deterministic=True)

        return lambda: _timed(work, calls)

    for model in models.values():
        timer(model)()
    out = _summary(_interleaved({name: timer(m) for name, m in models.items()}, rounds))
    if not device.startswith("cuda"):  # each eager variant's kernels: the floor of its predict
        for name, model in models.items():
            if "compile" not in VARIANTS[name][1]:
                out[name]["floor_cpu_s"] = predict_kernel_time(model, obs, calls)
    env.close()
    return out


def predict_kernel_time(model: Any, obs: Any, calls: int) -> dict[str, float]:
    """CPU seconds per deterministic ``predict`` inside ``s2ac_speed.FLOOR_KERNELS`` (its matrix
    products and activations, profiled): the floor of any implementation of that forward pass."""

    def work() -> None:
        for _ in range(calls):
            model.predict(obs, deterministic=True)

    return floor_kernel_time(work, calls)


def _print_floors(title: str, found: dict[str, Any], unit: str, scale: float) -> None:
    """Each eager variant's floor (products and activations) beside SAC's whole figure."""
    if "floor_cpu_s" not in found["SAC"]:
        return
    sac_cpu = found["SAC"]["cpu"]["median_s"]
    print(f"  {title}:")
    for name in VARIANTS:
        if "floor_cpu_s" not in found[name]:
            continue
        floor = found[name]["floor_cpu_s"]
        both = floor["matmul"] + floor["activation"]
        print(
            f"    {name}: {both * scale:.1f} {unit} = {both / sac_cpu:.2f}x SAC's "
            f"({found[name]['cpu']['median_s'] / both:.2f}x above its own floor)"
        )


#: Issue 14's CPU targets: (what, variant, measure, reference, bound); a ratio of CPU medians.
TARGETS = (
    ("engine SAC at least 1.6x faster than SAC", "engine SAC compiled", "train", "SAC", 1 / 1.6),
    ("S2AC(phi,theta) training at most 5x SAC", "S2AC(phi,theta) compiled", "train", "SAC", 5.0),
    ("S2AC(phi,theta) predict at most 2.5x SAC", "S2AC(phi,theta) compiled", "predict", "SAC", 2.5),
    ("SoftGAC at most 1.3x engine SAC", "SoftGAC compiled", "train", "engine SAC compiled", 1.3),
    ("BSAC at most 1.3x engine SAC", "BSAC compiled", "train", "engine SAC compiled", 1.3),
)


def _print_targets(train: dict[str, Any], found: dict[str, Any]) -> None:
    """Each of :data:`TARGETS` whose variants were timed: the ratio, and met or missed."""
    measures = {"train": train, "predict": found}
    lines = []
    for what, variant, measure, reference, bound in TARGETS:
        table = measures[measure]
        if variant not in table or reference not in table:
            continue
        ratio = table[variant]["cpu"]["median_s"] / table[reference]["cpu"]["median_s"]
        verdict = "met" if ratio <= bound else "missed"
        lines.append(
            f"  {what}: {variant} {ratio:.2f}x {reference} (bound {bound:.3g}x): {verdict}"
        )
    if lines:
        print("\nissue 14's targets (CPU time ratios):")
        print("\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--quick", action="store_true", help="tiny settings (a smoke run)")
    parser.add_argument("--train-block", type=int, default=300)
    parser.add_argument("--train-rounds", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1000)
    parser.add_argument("--predict-calls", type=int, default=300)
    parser.add_argument("--predict-rounds", type=int, default=7)
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument(
        "--only",
        nargs="+",
        metavar="NAME",
        help="time SAC and only the variants whose names start with these (e.g. 'engine SAC')",
    )
    parser.add_argument("--list", action="store_true", help="list the variants and stop")
    args = parser.parse_args(argv)
    if args.list:
        print("\n".join(VARIANTS))
        return 0
    select(args.only)
    if args.quick:
        args.train_block, args.train_rounds, args.warmup = 50, 2, 100
        args.predict_calls, args.predict_rounds = 20, 2
    warnings.filterwarnings("ignore")
    torch.set_num_threads(1)
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    gpu = torch.cuda.get_device_name() if args.device.startswith("cuda") else "none"
    print(
        f"python {platform.python_version()}, torch {torch.__version__} (1 thread), "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, GPU {gpu}, "
        f"device {args.device}, load average at start {load}"
    )
    results: dict[str, Any] = {"device": args.device, "gpu": gpu, "load_at_start": load}
    train = train_benchmark(
        "HalfCheetah-v5", args.warmup, args.train_block, args.train_rounds, args.device
    )
    results["train_HalfCheetah-v5"] = train
    _print_table(
        f"training time per env step, HalfCheetah-v5 ({args.train_rounds} blocks of "
        f"{args.train_block} steps)",
        {k: v for k, v in train.items() if k in VARIANTS},
        "ms/step",
        1e3,
    )
    for name in VARIANTS:
        print(
            f"  {name}: first block {train[name]['first_block_s']:.1f} s, of which compile "
            f"(first block less a steady one) {train[name]['compile_s']:.1f} s"
        )
    _print_floors(
        "matrix products and activations of each eager step (the floor of compiling it)",
        train,
        "ms/step",
        1e3,
    )
    found = predict_benchmark(
        "HalfCheetah-v5", args.predict_calls, args.predict_rounds, args.device
    )
    results["predict_HalfCheetah-v5"] = found
    _print_table(
        f"deterministic predict at batch 1, HalfCheetah-v5 ({args.predict_rounds} blocks of "
        f"{args.predict_calls} calls)",
        found,
        "us/call",
        1e6,
    )
    _print_floors(
        "matrix products and activations of each eager predict (the floor of compiling it)",
        found,
        "us/call",
        1e6,
    )
    _print_targets(train, found)
    results["load_at_end"] = os.getloadavg() if hasattr(os, "getloadavg") else None
    print(f"\nload average at end {results['load_at_end']}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2, default=float))
    return 0


if __name__ == "__main__":
    np.seterr(all="ignore")
    sys.exit(main())
