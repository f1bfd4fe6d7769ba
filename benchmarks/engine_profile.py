"""Where the compiled engine SAC's env step goes, beside SB3's SAC (issue 14's 1.6× target).

``engine_speed.py`` times whole env steps; this script splits one of the compiled engine SAC's
(``sac-engine``, ``compile=True``, its defaults on HalfCheetah-v5, one torch thread) into what
bounds it, all by the thread's CPU time in one process:

* the env step of ``learn`` for SB3's SAC and the compiled engine SAC (interleaved blocks) and
  their ratio, against the issue's target of 1/1.6 = 0.625;
* the compiled gradient step alone, called on one stored batch, and the matrix products inside
  it (``torch.profiler``'s self time of ``aten::mm``/``addmm``; the products are the same
  whatever is compiled around them), the rest being the step's other kernels (Adam, the
  activations, the losses) and its wrappers;
* each part of the env step outside the gradient step: SB3's collection step's action
  (``_sample_action``: SB3's ``predict`` and its scaling), the environment's step, the replay
  buffer's sample, the policy's two training-mode switches (``predict`` sets eval mode, ``train``
  sets train mode back), and what is left (SB3's ``learn`` loop: storing the transition,
  callbacks, ``train``'s bookkeeping and target update);
* the least env step the products allow: products + the step's other kernels measured above
  are kept, everything outside the step is taken as zero except the environment itself.

Usage::

    .venv/bin/python benchmarks/engine_profile.py              # about 4 minutes (1 compile)
    .venv/bin/python benchmarks/engine_profile.py --quick      # a smoke run
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
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
os.environ.setdefault("KINETO_LOG_LEVEL", "5")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from s2ac_speed import _interleaved, _timed, floor_kernel_time  # noqa: E402
from stable_baselines3 import SAC  # noqa: E402
from stable_baselines3.common.logger import Logger  # noqa: E402

from maxbench.algos.engine_sac import EngineSAC  # noqa: E402

ENV_ID = "HalfCheetah-v5"
#: issue 14: the engine's SAC at least 1.6x faster than SB3's SAC per env step
TARGET_RATIO = 1 / 1.6


def _make(cls: type, warmup: int, **kwargs: Any) -> Any:
    model = cls("MlpPolicy", ENV_ID, seed=0, learning_starts=warmup, **kwargs)
    model.set_logger(Logger(folder=None, output_formats=[]))
    return model


def _cpu_per_call(work: Callable[[], Any], calls: int, rounds: int) -> float:
    """Median over ``rounds`` of the thread's CPU seconds per call of ``work``."""
    work()  # warm
    times = []
    for _ in range(rounds):
        started = time.thread_time()
        for _ in range(calls):
            work()
        times.append((time.thread_time() - started) / calls)
    return statistics.median(times)


def profile(warmup: int, block: int, rounds: int, calls: int) -> dict[str, float]:
    """CPU seconds of each part named in the module's docstring."""
    sac = _make(SAC, warmup)
    engine = _make(EngineSAC, warmup, compile=True)
    for model in (sac, engine):
        model.learn(warmup)
        model.learn(block, reset_num_timesteps=False)  # the first updates (and the compilation)

    def learn_block(model: Any) -> Callable[[], float]:
        return lambda: _timed(lambda: model.learn(block, reset_num_timesteps=False), block)[0]

    per_step = _interleaved({"SAC": learn_block(sac), "engine": learn_block(engine)}, rounds)
    out = {name: statistics.median(times) for name, times in per_step.items()}

    step = engine.compiled("gradient_step", engine._gradient_step, transforms_only=True)
    batch = engine.replay_buffer.sample(engine.batch_size)
    arguments = (
        batch.observations,
        batch.actions,
        batch.next_observations,
        batch.rewards,
        batch.dones,
        engine.gamma_tensor(),
    )
    engine.prepare_gradients("critic", "actor", "log_ent_coef")
    out["gradient_step"] = _cpu_per_call(lambda: step(*arguments), calls, rounds)

    def steps() -> None:
        for _ in range(calls):
            step(*arguments)

    out["gradient_step_products"] = floor_kernel_time(steps, calls)["matmul"]

    policy = engine.policy
    actions = np.zeros((1, *engine.action_space.shape), dtype=np.float32)
    act = lambda: engine._sample_action(0, None, 1)  # noqa: E731  (SB3's collection step's action)
    out["collection_action"] = _cpu_per_call(act, calls, rounds)
    out["env_step"] = _cpu_per_call(lambda: engine.env.step(actions), calls, rounds)
    out["buffer_sample"] = _cpu_per_call(
        lambda: engine.replay_buffer.sample(engine.batch_size), calls, rounds
    )
    out["training_mode_switches"] = _cpu_per_call(
        lambda: (policy.set_training_mode(False), policy.set_training_mode(True)), calls, rounds
    )
    return out


def report(found: dict[str, float]) -> list[str]:
    """The lines to print (milliseconds per env step)."""
    ms = {name: value * 1e3 for name, value in found.items()}
    ratio = ms["engine"] / ms["SAC"]
    other_in_step = ms["gradient_step"] - ms["gradient_step_products"]
    # predict's own training-mode switch is inside the collection action; train's is the other half
    outside_named = (
        ms["collection_action"]
        + ms["env_step"]
        + ms["buffer_sample"]
        + ms["training_mode_switches"] / 2
    )
    rest = ms["engine"] - ms["gradient_step"] - outside_named
    least = ms["gradient_step"] + ms["env_step"]
    return [
        f"per env step (CPU ms, median of interleaved blocks): SB3's SAC {ms['SAC']:.2f}, "
        f"engine SAC compiled {ms['engine']:.2f} = {ratio:.3f}x SAC's "
        f"(target {TARGET_RATIO:.3f}x = {TARGET_RATIO * ms['SAC']:.2f} ms)",
        f"  compiled gradient step alone    {ms['gradient_step']:6.2f}",
        f"    of which matrix products      {ms['gradient_step_products']:6.2f}",
        f"    other kernels and wrappers    {other_in_step:6.2f}",
        f"  collection's action (predict)   {ms['collection_action']:6.2f}"
        f"  (its eval-mode switch included)",
        f"  env step                        {ms['env_step']:6.2f}",
        f"  replay buffer sample            {ms['buffer_sample']:6.2f}",
        f"  train's train-mode switch       {ms['training_mode_switches'] / 2:6.2f}",
        f"  the rest of SB3's learn loop    {rest:6.2f}",
        f"least env step with this gradient step (nothing outside it but the env): "
        f"{least:.2f} ms = {least / ms['SAC']:.3f}x SAC's",
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny settings (a smoke run)")
    parser.add_argument("--json", help="also write the measurements (seconds) here")
    args = parser.parse_args(argv)
    warmup, block, rounds, calls = (300, 50, 2, 20) if args.quick else (1000, 300, 5, 300)
    warnings.filterwarnings("ignore")
    torch.set_num_threads(1)
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    print(
        f"python {platform.python_version()}, torch {torch.__version__} (1 thread), "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"{ENV_ID}, load average at start {load}"
    )
    found = profile(warmup, block, rounds, calls)
    print("\n".join(report(found)))
    print(f"load average at end {os.getloadavg() if hasattr(os, 'getloadavg') else None}")
    if args.json:
        Path(args.json).write_text(json.dumps(found, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
