"""The suite file model: what a suite YAML may say, validated by pydantic.

A suite names algorithms (with default hyperparameters and per-environment overrides, keyed like
rl-baselines3-zoo's hyperparameter files), environments, seeds, the budget, the evaluation
protocol, parallel envs per run and the checkpoint interval. Every key is documented in README.md.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, PositiveInt, field_validator

_LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+=-]*$")


class StrictModel(BaseModel):
    """A model that rejects unknown keys."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class EvaluationProtocol(StrictModel):
    """How and when a run is evaluated, on an environment separate from the training one."""

    every: PositiveInt = Field(10_000, description="env steps between evaluations")
    episodes: PositiveInt = Field(10, description="test episodes per evaluation")
    deterministic: bool = Field(True, description="deterministic actions at test time")


class WrapperSpec(StrictModel):
    """A gymnasium wrapper: ``"module:Class"`` and its keyword arguments."""

    target: str
    kwargs: dict[str, Any] = Field(default_factory=dict)


class EnvironmentSpec(StrictModel):
    """One environment of the suite: a gymnasium id, its kwargs and wrappers."""

    id: str
    label: str | None = Field(None, description="folder and report name; default: the id")
    kwargs: dict[str, Any] = Field(default_factory=dict)
    max_episode_steps: PositiveInt | None = None
    wrappers: list[WrapperSpec] = Field(default_factory=list)
    budget: PositiveInt | None = Field(None, description="overrides the suite's budget")

    @field_validator("wrappers", mode="before")
    @classmethod
    def _wrapper_shorthand(cls, value: Any) -> Any:
        """Accept ``"module:Class"`` or ``{"module:Class": {kwargs}}`` like rl-baselines3-zoo."""
        if not isinstance(value, list):
            return value
        wrappers: list[Any] = []
        for item in value:
            if isinstance(item, str):
                wrappers.append({"target": item})
            elif isinstance(item, dict) and len(item) == 1 and "target" not in item:
                ((target, kwargs),) = item.items()
                wrappers.append({"target": target, "kwargs": kwargs or {}})
            else:
                wrappers.append(item)
        return wrappers

    @property
    def name(self) -> str:
        """The label used for folders and reports."""
        return self.label or self.id.replace("/", "_").replace(":", "_")

    @field_validator("label")
    @classmethod
    def _label_is_a_folder_name(cls, value: str | None) -> str | None:
        if value is not None and not _LABEL.match(value):
            raise ValueError("label may hold letters, digits and _ . + = - only")
        return value


class AlgorithmSpec(StrictModel):
    """One algorithm of the suite and its hyperparameters."""

    algo: str | None = Field(None, description="registry name or module:Class; default: the key")
    policy: str = "MlpPolicy"
    hyperparams: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="'default' and per-environment (by label) constructor keyword arguments",
    )

    @field_validator("hyperparams", mode="before")
    @classmethod
    def _none_sections_are_empty(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {key: ({} if section is None else section) for key, section in value.items()}
        return value


class Suite(StrictModel):
    """A whole suite: algorithms × environments × seeds, with one protocol."""

    name: str | None = Field(None, description="results folder name; default: the file's stem")
    description: str = ""
    algorithms: dict[str, AlgorithmSpec]
    environments: list[EnvironmentSpec]
    seeds: PositiveInt | list[int]
    budget: PositiveInt = Field(description="env steps per run")
    evaluation: EvaluationProtocol = Field(default_factory=EvaluationProtocol)
    n_envs: PositiveInt = Field(1, description="parallel training envs per run")
    checkpoint_every: PositiveInt | None = Field(
        None, description="env steps between checkpoints; default: evaluation.every"
    )

    @field_validator("algorithms", mode="before")
    @classmethod
    def _algorithm_shorthand(cls, value: Any) -> Any:
        """``sac:`` with nothing under it means the defaults."""
        if isinstance(value, dict):
            return {key: ({} if spec is None else spec) for key, spec in value.items()}
        return value

    @field_validator("environments", mode="before")
    @classmethod
    def _environment_shorthand(cls, value: Any) -> Any:
        """A bare string is an environment id with no options."""
        if isinstance(value, list):
            return [{"id": item} if isinstance(item, str) else item for item in value]
        return value

    @field_validator("seeds")
    @classmethod
    def _seeds_not_empty(cls, value: int | list[int]) -> int | list[int]:
        if isinstance(value, list):
            if not value:
                raise ValueError("give a count of seeds (>= 1) or a non-empty list")
            if any(seed < 0 for seed in value):
                raise ValueError("seeds must be non-negative")
            if len(set(value)) != len(value):
                raise ValueError("seeds must be distinct")
        return value

    @field_validator("algorithms")
    @classmethod
    def _algorithms_not_empty(cls, value: dict[str, AlgorithmSpec]) -> dict[str, AlgorithmSpec]:
        if not value:
            raise ValueError("name at least one algorithm")
        for key in value:
            if not _LABEL.match(key):
                raise ValueError(f"algorithm key '{key}': letters, digits and _ . + = - only")
        return value

    @field_validator("environments")
    @classmethod
    def _environments_not_empty(cls, value: list[EnvironmentSpec]) -> list[EnvironmentSpec]:
        if not value:
            raise ValueError("name at least one environment")
        names = [env.name for env in value]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"environment names repeat: {', '.join(duplicates)} (set 'label')")
        return value

    @property
    def seed_list(self) -> list[int]:
        """The seeds as a list: a count n means 0..n-1."""
        return list(range(self.seeds)) if isinstance(self.seeds, int) else list(self.seeds)

    @property
    def checkpoint_interval(self) -> int:
        """Env steps between checkpoints."""
        return self.checkpoint_every or self.evaluation.every
