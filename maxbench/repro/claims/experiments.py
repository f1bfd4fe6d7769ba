"""``maxbench claims run``: the experiments behind the claims, resumable, into one results folder.

* A ``suite`` experiment runs through the normal runner (:func:`maxbench.suite.runner.run_suite`:
  resumable, ``--workers``, ``--backend ray``); with ``test_episodes`` it then records each
  finished multi-goal cell's test episodes (on its env and, at test time only, with the
  obstacle; spec §1.7) into the cell's ``test_episodes.json``, once. Agents matching
  ``softmax_agents`` are tested with ``predict(deterministic=True)``: the S2AC authors' test-time
  softmax selection over the particles (their ``--test_action_selection softmax``); the others
  act stochastically, as the paper's Fig. 7 draws them.
* ``entropy`` runs S2AC's entropy check (§3.3, Fig. 4) for each seed into ``entropy/entropy.json``.
* ``latency`` times ``predict`` at batch 1 in interleaved blocks into ``latency/latency.json``.
* For a suite that does not run at the chosen scale, its paper-scale cells' training throughput
  is measured briefly (``throughput/<suite>.json``), so the ledger can say what the paper's scale
  costs. Timings want a quiet machine: run them when nothing else is running.

Every file is written atomically; an experiment whose file exists with the same settings is
skipped, so ``claims run`` can be repeated until everything is there.
"""

from __future__ import annotations

import fnmatch
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from maxbench.repro.claims.catalogue import Claim, Experiment
from maxbench.repro.claims.measures import ENTROPY_FILE, LATENCY_FILE
from maxbench.results.atomic import read_json, write_json_atomic

__all__ = [
    "ENTROPY_SWEEPS",
    "THROUGHPUT_FOLDER",
    "ExperimentOutcome",
    "experiments_of",
    "run_experiment",
    "suite_folder",
]

#: The entropy sweeps the claims use: the Fig. 4a target, Fig. 4c's mixtures, Fig. 10b's stds.
ENTROPY_SWEEPS = ("gaussian", "mixture", "std")
THROUGHPUT_FOLDER = Path("throughput")
#: Environment steps timed per (algorithm, env) pair of a paper-scale suite, after a warm-up.
THROUGHPUT_STEPS = 200
_THROUGHPUT_WARMUP = 100


@dataclass(frozen=True)
class ExperimentOutcome:
    """What running one experiment did: ``ok`` is False when some cell failed or is missing."""

    name: str
    ok: bool
    summary: str


def experiments_of(claims: tuple[Claim, ...]) -> list[Experiment]:
    """The experiments of ``claims``, each once, in catalogue order."""
    seen: dict[str, Experiment] = {}
    for claim in claims:
        seen.setdefault(claim.experiment.name, claim.experiment)
    return list(seen.values())


def suite_folder(root: Path, suite_path: Path) -> Path:
    """Where the runner writes ``suite_path``'s cells under ``root`` (``root/<suite name>``)."""
    from maxbench.suite.loading import load_suite

    loaded = load_suite(suite_path, check=False)
    return root / loaded.name


def run_experiment(
    experiment: Experiment,
    scale: str,
    root: Path,
    say: Callable[[str], None],
    **runner: Any,
) -> ExperimentOutcome:
    """Run ``experiment`` at ``scale`` into ``root`` (``runner``: run_suite's options)."""
    if experiment.kind == "entropy":
        return _entropy(experiment, root, say)
    if experiment.kind == "latency":
        return _latency(experiment, root, say)
    suite = experiment.suite(scale)
    if suite is None:
        return _throughput(experiment, root, say)
    from maxbench.suite.runner import run_suite

    episodes = experiment.options.get("test_episodes")
    recorded = 0
    if episodes is not None:  # cells finished earlier first: an interrupted run loses nothing
        recorded += record_episodes(suite_folder(root, suite), episodes, say)
    outcome = run_suite(suite, out=root, **runner)
    ok = outcome.exit_code == 0
    if episodes is not None:
        recorded += record_episodes(suite_folder(root, suite), episodes, say)
    extra = f"; test episodes recorded for {recorded} new cell(s)" if recorded else ""
    return ExperimentOutcome(experiment.name, ok, f"suite exit status {outcome.exit_code}{extra}")


def record_episodes(folder: Path, options: dict[str, Any], say: Callable[[str], None]) -> int:
    """Record test episodes of every finished multi-goal cell under ``folder`` (new ones only)."""
    from maxbench.repro.claims.measures import MeasureContext
    from maxbench.repro.claims.test_episodes import EPISODES_FILE, record_test_episodes

    context = MeasureContext(folder.parent)
    softmax = list(options.get("softmax_agents") or [])
    count = 0
    for cell in context.suite_cells(folder):
        path = cell.folder / EPISODES_FILE
        deterministic = any(fnmatch.fnmatchcase(cell.algo, pattern) for pattern in softmax)
        fresh = not path.exists()
        record_test_episodes(
            cell.folder,
            episodes=int(options.get("episodes", 20)),
            deterministic=deterministic,
        )
        if fresh:
            count += 1
            say(f"recorded test episodes of {cell.algo}/{cell.env_id}/seed_{cell.seed}")
    for warning in context.warnings:
        say(f"warning: {warning}")
    return count


def _entropy(experiment: Experiment, root: Path, say: Callable[[str], None]) -> ExperimentOutcome:
    from maxbench.repro.entropy_report import run_entropy_report

    seeds = int(experiment.options.get("seeds", 20))
    settings = {"sweeps": list(ENTROPY_SWEEPS), "seeds": seeds, "n_particles": 20, "n_steps": 30}
    path = root / ENTROPY_FILE
    if _same_settings(path, settings):
        return ExperimentOutcome(experiment.name, True, f"{ENTROPY_FILE} already there")
    rows = []
    for seed in range(seeds):
        report = run_entropy_report(ENTROPY_SWEEPS, n_particles=20, n_steps=30, seed=seed)
        rows.extend(
            {
                "seed": seed,
                "sweep": row.sweep,
                "setting": row.setting,
                "truth": round(row.truth, 6),
                "estimate": round(row.estimate, 6),
            }
            for row in report.rows
        )
        say(f"entropy check, seed {seed + 1}/{seeds}")
    write_json_atomic(path, {"settings": settings, "rows": rows})
    return ExperimentOutcome(experiment.name, True, f"wrote {ENTROPY_FILE}")


def _latency(experiment: Experiment, root: Path, say: Callable[[str], None]) -> ExperimentOutcome:
    """Median predict time per block, blocks interleaved across algorithms (drift hits all)."""
    import torch

    from maxbench.report.runtime import MUJOCO_SHAPES, latency_model

    options = experiment.options
    algorithms = list(options.get("algorithms", ["sac"]))
    blocks, calls = int(options.get("blocks", 20)), int(options.get("calls", 50))
    shape = next(s for s in MUJOCO_SHAPES if s.label.startswith("HalfCheetah"))
    settings = {
        "algorithms": algorithms,
        "blocks": blocks,
        "calls": calls,
        "shape": {"env": shape.label, "obs": shape.obs, "act": shape.act},
        "threads": 1,
    }
    path = root / LATENCY_FILE
    if _same_settings(path, settings):
        return ExperimentOutcome(experiment.name, True, f"{LATENCY_FILE} already there")
    torch.set_num_threads(1)
    models = {name: latency_model(name, shape) for name in algorithms}
    observation = np.random.default_rng(0).standard_normal(shape.obs).astype(np.float32)
    medians: dict[str, list[float]] = {name: [] for name in algorithms}
    with torch.no_grad():
        for model in models.values():
            for _ in range(20):
                model.predict(observation, deterministic=True)
        for block in range(blocks):
            for name, model in models.items():
                elapsed = np.empty(calls)
                for index in range(calls):
                    started = time.perf_counter_ns()
                    model.predict(observation, deterministic=True)
                    elapsed[index] = time.perf_counter_ns() - started
                medians[name].append(round(float(np.median(elapsed)) / 1e6, 5))
            say(f"latency block {block + 1}/{blocks}")
    write_json_atomic(path, {"settings": settings, "algorithms": medians, **_machine()})
    return ExperimentOutcome(experiment.name, True, f"wrote {LATENCY_FILE}")


def _throughput(
    experiment: Experiment, root: Path, say: Callable[[str], None]
) -> ExperimentOutcome:
    """Env steps per second of each (algorithm, env) of the paper-scale suite, briefly timed."""
    import torch

    from maxbench.suite.cells import expand_suite
    from maxbench.suite.loading import load_suite

    paper = experiment.suite("paper")
    if paper is None:
        return ExperimentOutcome(experiment.name, True, "nothing to run at any scale")
    loaded = load_suite(paper, check=False)
    path = root / THROUGHPUT_FOLDER / f"{loaded.name}.json"
    pairs = {}
    for cell in expand_suite(loaded.suite, loaded.name):
        pairs.setdefault((cell.algo, cell.env_id), cell)
    settings = {"steps": THROUGHPUT_STEPS, "warmup": _THROUGHPUT_WARMUP, "threads": 1}
    found = read_json(path) if path.is_file() else {}
    if found.get("settings") != settings:
        found = {"settings": settings, "steps_per_s": {}}
    torch.set_num_threads(1)
    for (algo, env_id), cell in sorted(pairs.items()):
        key = f"{algo}/{env_id}"
        if key in found["steps_per_s"]:
            continue
        found["steps_per_s"][key] = round(_time_cell(cell), 3)
        found.update(_machine())
        write_json_atomic(path, found)
        say(f"throughput {key}: {found['steps_per_s'][key]} env steps/s")
    return ExperimentOutcome(experiment.name, True, f"throughput of {len(pairs)} pairs in {path}")


def _time_cell(cell: Any) -> float:
    """Env steps per second of ``cell``'s training once updates run (learning starts early)."""
    from maxbench.registry import resolve_algorithm
    from maxbench.suite.environments import training_env
    from maxbench.suite.hyperparams import convert_hyperparameters

    cls, _ = resolve_algorithm(cell.algo_target)
    env = training_env(cell, seed=cell.seed)
    action_dim = int(np.prod(env.action_space.shape or (1,)))
    kwargs = convert_hyperparameters(cell.hyperparams, action_dim, algorithm=cls)
    kwargs.update(verbose=0, buffer_size=10_000)
    kwargs["learning_starts"] = min(int(kwargs.get("learning_starts", 100)), 100)
    model = cls(cell.policy, env, seed=cell.seed, **kwargs)
    model.learn(_THROUGHPUT_WARMUP)
    started = time.perf_counter()
    model.learn(THROUGHPUT_STEPS, reset_num_timesteps=False)
    elapsed = time.perf_counter() - started
    env.close()
    return THROUGHPUT_STEPS / elapsed


def _same_settings(path: Path, settings: dict[str, Any]) -> bool:
    try:
        return path.is_file() and read_json(path).get("settings") == settings
    except (OSError, ValueError, AttributeError):
        return False


def _machine() -> dict[str, Any]:
    """The hardware a timing ran on (for the ledger's header)."""
    from maxbench.provenance import hardware_summary

    return {"machine": hardware_summary()}
