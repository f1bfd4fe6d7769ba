"""Expand a suite into cells: one (algorithm, environment, seed) run each.

A cell is plain data (JSON-serialisable) so that it can travel to a worker process or a Ray task
and be stored verbatim in the run's ``run.json`` as its spec.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from maxbench.errors import UserInputError
from maxbench.suite.identifiers import check_inside, describe_name, is_identifier
from maxbench.suite.model import Suite


@dataclass(frozen=True)
class Cell:
    """Everything one run needs, and nothing about where or how it is executed."""

    suite: str
    algo: str
    algo_target: str
    policy: str
    hyperparams: dict[str, Any]
    env_id: str
    env_name: str
    env_kwargs: dict[str, Any]
    max_episode_steps: int | None
    wrappers: list[dict[str, Any]]
    seed: int
    budget: int
    eval_every: int
    eval_episodes: int
    eval_deterministic: bool
    n_envs: int
    checkpoint_every: int
    extra: dict[str, Any] = field(default_factory=dict)
    device: str = "auto"

    @property
    def key(self) -> str:
        """``algo/env/seed_n``: the cell's name, and its folder below the suite's."""
        return f"{self.algo}/{self.env_name}/seed_{self.seed}"

    def folder(self, out: Path) -> Path:
        """The cell's results folder: ``<out>/<suite>/<algo>/<env>/seed_<n>``.

        Every part must be a valid name and the folder must stay under ``out`` (checked
        lexically): a cell read back from a hostile or damaged run.json cannot point elsewhere.
        """
        for what, part in (("suite", self.suite), ("algorithm", self.algo), ("env", self.env_name)):
            if not is_identifier(part):
                raise UserInputError(f"cell {self.key!r}: {describe_name(what + ' name', part)}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise UserInputError(f"cell {self.key!r}: the seed must be a whole number >= 0")
        folder = Path(out) / self.suite / self.algo / self.env_name / f"seed_{self.seed}"
        return check_inside(folder, Path(out))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary (the ``spec`` of run.json)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Cell:
        """Inverse of :meth:`to_dict`."""
        return cls(**data)

    def fingerprint(self) -> str:
        """A short hash of everything that determines the run's results."""
        text = json.dumps(self.to_dict(), sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def merged_hyperparameters(suite: Suite, algo_key: str, env_name: str) -> dict[str, Any]:
    """The hyperparameters of one (algorithm, environment) pair, as in rl-baselines3-zoo: the
    registry preset, then the ``default`` section, then the environment's own section on top."""
    from maxbench.registry import ALGORITHMS

    algo = suite.algorithms[algo_key]
    entry = ALGORITHMS.get((algo.algo or algo_key).lower())
    preset = dict(entry.preset) if entry else {}
    return {
        **preset,
        **algo.hyperparams.get("default", {}),
        **algo.hyperparams.get(env_name, {}),
    }


def pair_cells(suite: Suite, name: str) -> list[Cell]:
    """One cell per (algorithm, environment) pair, algorithm-major, with the suite's first seed.

    :func:`expand_suite` makes each pair's seeds from these; the preflight check builds each
    pair's model from them.
    """
    from maxbench.registry import ALGORITHMS

    first_seed = suite.seeds[0] if isinstance(suite.seeds, list) else 0
    cells: list[Cell] = []
    for algo_key, algo in suite.algorithms.items():
        target_name = algo.algo or algo_key
        entry = ALGORITHMS.get(target_name.lower())
        target = entry.target if entry else target_name
        for env in suite.environments:
            cells.append(
                Cell(
                    suite=name,
                    algo=algo_key,
                    algo_target=target,
                    policy=algo.policy,
                    hyperparams=merged_hyperparameters(suite, algo_key, env.name),
                    env_id=env.id,
                    env_name=env.name,
                    env_kwargs=dict(env.kwargs),
                    max_episode_steps=env.max_episode_steps,
                    wrappers=[w.model_dump() for w in env.wrappers],
                    seed=first_seed,
                    budget=env.budget or suite.budget,
                    eval_every=suite.evaluation.every,
                    eval_episodes=suite.evaluation.episodes,
                    eval_deterministic=suite.evaluation.deterministic,
                    n_envs=suite.n_envs,
                    checkpoint_every=suite.checkpoint_interval,
                    device=algo.device or suite.device,
                )
            )
    return cells


def expand_suite(suite: Suite, name: str, only: str | None = None) -> list[Cell]:
    """All cells of ``suite`` (algorithm-major order), optionally filtered by a glob on the key.

    Hyperparameters merge as in rl-baselines3-zoo (:func:`merged_hyperparameters`). The suite
    model bounds the number of cells, so the list stays small.
    """
    cells: list[Cell] = []
    for pair in pair_cells(suite, name):
        for seed in suite.seed_list:
            cell = dataclasses.replace(
                pair,
                env_kwargs=dict(pair.env_kwargs),
                wrappers=[dict(w) for w in pair.wrappers],
                seed=seed,
            )
            if only is None or fnmatch.fnmatchcase(cell.key, only):
                cells.append(cell)
    return cells
