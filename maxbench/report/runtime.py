"""Run-time tables (issue 5, point 5): training throughput from run.json, and predict latency.

- :func:`throughput_table`: per algo × env, the finished runs' env steps per second of training,
  training and wall-clock time, and the hardware and torch threads they ran with;
- :func:`measure_latencies`: the S2AC paper's run-time table (Sec. 5, "Run-time", Table 1):
  the time of one action selection, ``model.predict(obs, deterministic=True)`` on a single
  observation (batch 1), as the median of many calls after a warm-up, and the parameter counts,
  for each algorithm at the observation/action sizes of Hopper, Walker2d, HalfCheetah and Ant.
  The time includes SB3's numpy/torch conversions in ``predict``: what a user of the model pays.
  Each row records the device the model ran on (``--device``; on CUDA the time includes the copy
  of the action back to the host, as ``predict`` returns numpy) and its compile mode (``--compile``
  builds every algorithm that has the option with ``compile=True``; SB3's own have none and stay
  eager).
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from maxbench.compile_modes import compile_label
from maxbench.devices import DEVICE_PATTERN, device_problem
from maxbench.errors import UserInputError
from maxbench.report.tables import ReportTable, format_number
from maxbench.results.atomic import write_json_atomic
from maxbench.results.layout import FINISHED

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "DEFAULT_OBS_SIZE",
    "MUJOCO_SHAPES",
    "LatencyResult",
    "LatencyShape",
    "LatencyTable",
    "default_latency_algorithms",
    "latency_model",
    "latency_shapes",
    "measure_latencies",
    "measure_latency",
    "read_latency_tables",
    "throughput_table",
    "write_latency_tables",
]


@dataclass(frozen=True)
class LatencyShape:
    """An observation size and an action size, with the env they stand for."""

    label: str
    obs: int
    act: int


#: The MuJoCo -v5 tasks of the S2AC paper's run-time table: (label, observation, action) sizes.
MUJOCO_SHAPES: tuple[LatencyShape, ...] = (
    LatencyShape("Hopper-v5", 11, 3),
    LatencyShape("Walker2d-v5", 17, 6),
    LatencyShape("HalfCheetah-v5", 17, 6),
    LatencyShape("Ant-v5", 105, 8),
)
#: Observation size for an action size that no MuJoCo task of the table has.
DEFAULT_OBS_SIZE = 17


def latency_shapes(
    action_sizes: list[int], obs_sizes: list[int] | None = None
) -> list[LatencyShape]:
    """The shapes to time for ``--dims`` (action sizes) and ``--obs`` (observation sizes).

    ``3,6,6,8`` without ``--obs`` is the paper's table: Hopper, Walker2d, HalfCheetah, Ant with
    their -v5 observation sizes. Otherwise each action size takes its observation size from
    ``--obs`` (same length) or, without it, from the first of those MuJoCo tasks with that action
    size, else :data:`DEFAULT_OBS_SIZE`.
    """
    default = [s.act for s in MUJOCO_SHAPES]
    if obs_sizes is None and action_sizes == default:
        return list(MUJOCO_SHAPES)
    if obs_sizes is not None and len(obs_sizes) != len(action_sizes):
        raise UserInputError(
            f"--obs has {len(obs_sizes)} sizes but --dims has {len(action_sizes)}; give one "
            "observation size per action size"
        )
    shapes = []
    for index, act in enumerate(action_sizes):
        if obs_sizes is not None:
            obs = obs_sizes[index]
        else:
            obs = next((s.obs for s in MUJOCO_SHAPES if s.act == act), DEFAULT_OBS_SIZE)
        shapes.append(LatencyShape(f"obs {obs} / act {act}", obs, act))
    return shapes


def default_latency_algorithms() -> list[str]:
    """sac, td3, then every registered maxbench algorithm whose class imports."""
    from maxbench.registry import ALGORITHMS, import_target

    names = ["sac", "td3"]
    for name, entry in sorted(ALGORITHMS.items()):
        if name in names or not entry.target.startswith("maxbench."):
            continue
        try:
            import_target(entry.target)
        except UserInputError:
            continue
        names.append(name)
    return names


def _box_env(obs: int, act: int) -> Any:
    """A do-nothing env with the given Box observation and action sizes (spaces only matter)."""
    import gymnasium as gym

    class BoxEnv(gym.Env):
        """Zero observations, zero rewards: only its spaces are used to build a model."""

        def __init__(self) -> None:
            self.observation_space = gym.spaces.Box(-np.inf, np.inf, (obs,), np.float32)
            self.action_space = gym.spaces.Box(-1.0, 1.0, (act,), np.float32)

        def reset(self, *, seed: int | None = None, options: dict | None = None) -> Any:
            super().reset(seed=seed)
            return np.zeros(obs, dtype=np.float32), {}

        def step(self, action: Any) -> Any:
            return np.zeros(obs, dtype=np.float32), 0.0, False, False, {}

    return BoxEnv()


def _parameter_count(module: Any, skip_targets: bool = False) -> int:
    """Number of parameters; with ``skip_targets``, without target networks (``*_target.``)."""
    return int(
        sum(
            p.numel()
            for name, p in module.named_parameters()
            if not (skip_targets and any(part.endswith("_target") for part in name.split(".")))
        )
    )


@dataclass(frozen=True)
class LatencyResult:
    """One algorithm at one shape: predict latency (ms) and parameter counts."""

    algo: str
    env: str
    obs: int
    act: int
    median_ms: float
    p25_ms: float
    p75_ms: float
    calls: int
    policy_params: int
    actor_params: int | None
    device: str = "cpu"
    compile: str = "eager"


def latency_model(
    name: str,
    shape: LatencyShape,
    *,
    device: str = "cpu",
    compile: bool = False,  # noqa: A002  (the algorithms' option of that name)
) -> Any:
    """``name`` built for timing: its registry preset, ``seed=0``, on ``device``, on a Box env of
    ``shape``; with ``compile``, ``compile=True`` where the algorithm has that option.

    Off-policy algorithms get a 1 000-transition replay buffer (``predict`` never uses it; the
    default 10^6 would allocate gigabytes for Ant's 105-dimensional observations).
    """
    from maxbench.registry import constructor_arguments, resolve_algorithm

    cls, preset = resolve_algorithm(name)
    kwargs: dict[str, Any] = dict(preset)
    accepted = constructor_arguments(cls)
    if accepted is None or "buffer_size" in accepted:
        kwargs.setdefault("buffer_size", 1000)
    if compile and accepted is not None and "compile" in accepted:
        kwargs["compile"] = True
    kwargs.setdefault("verbose", 0)
    kwargs["device"] = device
    return cls("MlpPolicy", _box_env(shape.obs, shape.act), seed=0, **kwargs)


def _device_label(model: Any) -> str:
    """``cpu``, or ``cuda:N`` with the GPU's index."""
    import torch

    device = torch.device(model.device)
    if device.type == "cuda":
        return f"cuda:{device.index if device.index is not None else torch.cuda.current_device()}"
    return device.type


def check_latency_device(device: str) -> str:
    """``device`` when it is ``cpu``, ``cuda`` or ``cuda:N`` and this machine has it; else bad
    input (``auto`` is refused: a latency table names the device it measured)."""
    text = device.strip().lower()
    if text == "auto" or not DEVICE_PATTERN.fullmatch(text):
        raise UserInputError(f"--device must be cpu, cuda or cuda:N, not '{device}'")
    problem = device_problem(text, instead="use --device cpu")
    if problem is not None:
        raise UserInputError(f"--{problem}")
    return text


def measure_latency(
    name: str,
    shape: LatencyShape,
    calls: int,
    warmup: int,
    *,
    device: str = "cpu",
    compile: bool = False,  # noqa: A002
) -> LatencyResult:
    """Build ``name`` on a Box env of ``shape`` and time ``predict`` on one observation.

    The model is built with its registry preset, ``seed=0`` and, for off-policy algorithms, a
    1 000-transition replay buffer (the buffer is never used by ``predict``; the default 10^6
    would allocate gigabytes for Ant's 105-dimensional observations), on ``device``, compiled
    where ``compile`` is asked and the algorithm can be (the warm-up calls compile).
    """
    import torch

    model = latency_model(name, shape, device=device, compile=compile)
    observation = np.random.default_rng(0).standard_normal(shape.obs).astype(np.float32)
    with torch.no_grad():
        for _ in range(warmup):
            model.predict(observation, deterministic=True)
        elapsed = np.empty(calls, dtype=np.float64)
        for index in range(calls):
            started = time.perf_counter_ns()
            model.predict(observation, deterministic=True)
            elapsed[index] = time.perf_counter_ns() - started
    elapsed /= 1e6
    actor = getattr(model.policy, "actor", None)
    return LatencyResult(
        algo=name,
        env=shape.label,
        obs=shape.obs,
        act=shape.act,
        median_ms=float(np.median(elapsed)),
        p25_ms=float(np.percentile(elapsed, 25)),
        p75_ms=float(np.percentile(elapsed, 75)),
        calls=calls,
        policy_params=_parameter_count(model.policy, skip_targets=True),
        actor_params=_parameter_count(actor) if actor is not None else None,
        device=_device_label(model),
        compile=compile_label(getattr(model, "compile", False)),
    )


@dataclass(frozen=True)
class LatencyTable:
    """Every measurement and the machine they were taken on."""

    results: list[LatencyResult]
    machine: str
    threads: int
    torch_version: str
    warmup: int
    calls: int
    notes: list[str] = field(default_factory=list)

    @property
    def header(self) -> str:
        """One line: machine, threads, torch, protocol."""
        return (
            f"predict latency at batch 1 on {self.machine}, {self.threads} torch thread(s), "
            f"torch {self.torch_version}: median of {self.calls:,} calls after {self.warmup:,} "
            "warm-up calls, deterministic=True"
        )

    def report_table(self) -> ReportTable:
        """The table for Markdown, LaTeX and CSV."""
        import pandas as pd

        rows = [
            [
                r.algo,
                r.env,
                str(r.obs),
                str(r.act),
                r.device,
                r.compile,
                f"{r.median_ms:.3f}",
                f"{r.p25_ms:.3f}–{r.p75_ms:.3f}",
                format_number(r.policy_params),
                format_number(r.actor_params),
            ]
            for r in self.results
        ]
        return ReportTable(
            name="latency",
            title="Action-selection time and parameter counts",
            columns=[
                "algo",
                "env",
                "obs",
                "act",
                "device",
                "compile",
                "median ms",
                "IQR ms",
                "policy params",
                "actor params",
            ],
            rows=rows,
            data=pd.DataFrame([asdict(r) for r in self.results]),
            notes=[
                self.header + ".",
                "policy params: every network of model.policy (actor, critics, value function) "
                "except target networks; actor params: model.policy.actor where the policy has "
                "one. The time includes SB3's numpy/torch conversions in predict.",
                *self.notes,
            ],
            align=["l", "l", "r", "r", "l", "l", "r", "r", "r", "r"],
        )

    def rich_table(self) -> Any:
        """The table for the console, its header naming the machine and the thread count."""
        from rich.table import Table

        table = Table(title=self.header)
        report = self.report_table()
        for column, align in zip(report.columns, report._align(), strict=True):
            table.add_column(column, justify="right" if align == "r" else "left")
        for row in report.rows:
            table.add_row(*row)
        return table


def measure_latencies(
    names: list[str],
    shapes: list[LatencyShape],
    calls: int = 1000,
    warmup: int = 100,
    threads: int = 1,
    log: Callable[[str], None] | None = None,
    *,
    device: str = "cpu",
    compile: bool = False,  # noqa: A002
) -> LatencyTable:
    """Measure every algorithm at every shape with ``threads`` torch threads, on ``device``
    (``cpu``, ``cuda``, ``cuda:N``), compiled where ``compile`` and the algorithm allow."""
    for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[variable] = str(threads)  # effective when torch is not imported yet
    import torch

    from maxbench.provenance import cpu_model
    from maxbench.registry import resolve_algorithm

    for name in names:
        resolve_algorithm(name)  # unknown names fail before any timing
    device = check_latency_device(device)
    torch.set_num_threads(threads)
    results = []
    for name in names:
        for shape in shapes:
            if log is not None:
                log(f"timing {name} on {shape.label} (obs {shape.obs}, act {shape.act})")
            results.append(
                measure_latency(
                    name, shape, calls=calls, warmup=warmup, device=device, compile=compile
                )
            )
    machine = f"{cpu_model()} ({os.cpu_count()} cores)"
    if device.startswith("cuda"):
        machine += f", {torch.cuda.get_device_name(torch.device(device))}"
    return LatencyTable(
        results=results,
        machine=machine,
        threads=torch.get_num_threads(),
        torch_version=torch.__version__,
        warmup=warmup,
        calls=calls,
    )


def write_latency_tables(table: LatencyTable, folder: Path) -> list[Path]:
    """latency.md / .tex / .csv and latency.json (the machine facts) in ``folder``."""
    folder = Path(folder)
    paths = table.report_table().write(folder)
    meta = {
        "machine": table.machine,
        "threads": table.threads,
        "torch": table.torch_version,
        "warmup": table.warmup,
        "calls": table.calls,
        "notes": table.notes,
        "results": [asdict(r) for r in table.results],
    }
    write_json_atomic(folder / "latency.json", meta)
    return [*paths, folder / "latency.json"]


def read_latency_tables(folder: Path) -> LatencyTable | None:
    """The latency table saved by :func:`write_latency_tables`, or None when there is none."""
    path = Path(folder) / "latency.json"
    if not path.exists():
        return None
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(meta, dict) or not isinstance(meta.get("results"), list):
            raise ValueError("not an object with a 'results' list")
        table = LatencyTable(
            results=[_latency_result(r) for r in meta["results"]],
            machine=_typed(meta, "machine", str),
            threads=_typed(meta, "threads", int),
            torch_version=_typed(meta, "torch", str),
            warmup=_typed(meta, "warmup", int),
            calls=_typed(meta, "calls", int),
            notes=[_typed({"note": n}, "note", str) for n in _typed(meta, "notes", list, [])],
        )
    except (OSError, KeyError, TypeError, ValueError) as err:
        text = " ".join(str(err).split())
        raise UserInputError(f"cannot read latency table '{path}': {text}") from None
    return table


_LATENCY_TYPES: dict[str, Any] = {
    "algo": str,
    "env": str,
    "obs": int,
    "act": int,
    "median_ms": float,
    "p25_ms": float,
    "p75_ms": float,
    "calls": int,
    "policy_params": int,
    "actor_params": (int, type(None)),
    "device": str,
    "compile": str,
}
#: Fields a latency.json written before they existed may lack, with the value they then had.
_LATENCY_DEFAULTS: dict[str, Any] = {"device": "cpu", "compile": "eager"}


def _typed(data: dict[str, Any], key: str, kind: Any, default: Any = ...) -> Any:
    """``data[key]`` when it has the type ``kind`` (an int is a float too; a bool is neither)."""
    if key not in data:
        if default is ...:
            raise KeyError(f"'{key}' is missing")
        return default
    value = data[key]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if float in kinds:
        kinds = (*kinds, int)
    if isinstance(value, bool) or not isinstance(value, kinds):
        raise TypeError(f"'{key}' is {json.dumps(value)[:40]}, not a {_type_name(kind)}")
    return value


def _type_name(kind: Any) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join("null" if k is type(None) else k.__name__ for k in kinds)


def _latency_result(data: Any) -> LatencyResult:
    """One row of latency.json, every field checked for its type."""
    if not isinstance(data, dict):
        raise TypeError(f"a result is {json.dumps(data)[:40]}, not an object")
    unknown = sorted(set(data) - set(_LATENCY_TYPES))
    if unknown:
        raise KeyError(f"unknown result field(s) {', '.join(unknown)}")
    return LatencyResult(
        **{
            key: _typed(data, key, kind, _LATENCY_DEFAULTS.get(key, ...))
            for key, kind in _LATENCY_TYPES.items()
        }
    )


def _spread(values: pd.Series, digits: int = 0) -> str:
    """Mean ± std of the known values ('–' when none is known, the value when one is)."""
    values = values.dropna().astype(float)
    if values.empty:
        return "–"
    if len(values) == 1:
        return format_number(float(values.iloc[0]), digits)
    mean, std = float(values.mean()), float(values.std(ddof=0))
    return f"{format_number(mean, digits)} ± {format_number(std, digits)}"


def _mean(values: pd.Series) -> str:
    """The mean of the known values, as a whole number; '–' when none is known."""
    values = values.dropna().astype(float)
    mean = float(values.mean()) if len(values) else float("nan")
    return format_number(int(round(mean))) if math.isfinite(mean) else format_number(mean)


def _unique(values: pd.Series) -> str:
    found = sorted({str(v) for v in values.dropna()})
    return ", ".join(found) if found else "–"


def _compile_seconds(group: pd.DataFrame) -> pd.Series:
    """Each run's compilation time; 0 for an eager run whose run.json predates the field."""
    seconds = group["compile_time_s"].astype(float)
    eager = group["compile"].fillna("eager") == "eager"
    return seconds.where(~(eager & seconds.isna()), 0.0)


def throughput_table(runs: pd.DataFrame) -> ReportTable:
    """Training throughput per method × env from the finished runs' run.json.

    ``runs`` is the loader's runs table with a ``method`` column. Env steps per second is the
    runner's steady-state throughput, ``env_steps / (train_time_s − compile_time_s)``
    (evaluation time excluded; a compiled model's compilation reported apart, in "compile s");
    wall-clock is the whole run, evaluations, compilation and checkpoints included, summed over
    its attempts.
    """
    import pandas as pd

    finished = runs[runs["status"] == FINISHED]
    rows, data = [], []
    for (method, env), group in finished.groupby(["method", "env"], sort=True):
        compile_s = _compile_seconds(group)
        data.append(
            {
                "method": method,
                "env": env,
                "runs": len(group),
                "compile": _unique(group["compile"]),
                "env_steps": float(group["env_steps"].astype(float).mean()),
                "env_steps_per_s_mean": float(group["env_steps_per_s"].astype(float).mean()),
                "env_steps_per_s_std": float(group["env_steps_per_s"].astype(float).std(ddof=0)),
                "train_time_s_mean": float(group["train_time_s"].astype(float).mean()),
                "compile_time_s_mean": float(compile_s.mean()),
                "wall_time_s_mean": float(group["wall_time_s"].astype(float).mean()),
                "wall_time_s_std": float(group["wall_time_s"].astype(float).std(ddof=0)),
                "cpu": _unique(group["cpu"]),
                "device": _unique(group["device"]),
                "torch_threads": _unique(group["torch_threads"]),
            }
        )
        rows.append(
            [
                method,
                env,
                str(len(group)),
                _unique(group["compile"]),
                _mean(group["env_steps"]),
                _spread(group["env_steps_per_s"], 1),
                _spread(group["train_time_s"], 1),
                _spread(compile_s, 1),
                _spread(group["wall_time_s"], 1),
                _unique(group["cpu"]),
                _unique(group["device"]),
                _unique(group["torch_threads"]),
            ]
        )
    return ReportTable(
        name="throughput",
        title="Training throughput per algorithm and environment",
        columns=[
            "algo",
            "env",
            "runs",
            "compile",
            "env steps",
            "steps/s",
            "train s",
            "compile s",
            "wall-clock s",
            "CPU",
            "device",
            "threads",
        ],
        rows=rows,
        data=pd.DataFrame(data),
        notes=[
            "Mean ± std over the finished runs (run.json). steps/s = env steps / (training time "
            "− compile time): steady-state throughput, evaluations excluded; train s includes "
            "the compilation that compile s reports apart (torch.compile, for compile: true); "
            "wall-clock includes evaluations and checkpoints."
        ],
        align=["l", "l", "r", "l", "r", "r", "r", "r", "r", "l", "l", "r"],
    )
