"""The suite file model: what a suite YAML may say, validated by pydantic.

A suite names algorithms (with default hyperparameters and per-environment overrides, keyed like
rl-baselines3-zoo's hyperparameter files), environments, seeds, the budget, the evaluation
protocol, parallel envs per run and the checkpoint interval. Every key is documented in README.md.

Types are strict: a count is a whole number (``1e4`` is fine, ``true`` or ``"5"`` is not), a flag
is ``true``/``false`` (YAML 1.1's ``yes``/``no``/``on``/``off`` read as booleans too), a name that
becomes a folder is an :data:`~maxbench.suite.identifiers.Identifier`. Sizes are bounded so that
a typo cannot ask for a billion cells: the bounds are the ``MAX_*`` constants below.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from maxbench.devices import DEVICE_PATTERN
from maxbench.suite.identifiers import Identifier, describe_name, is_identifier

MAX_SEED = 2**32 - 1  # numpy's and SB3's seed range
MAX_SEED_COUNT = 1_000
MAX_CELLS = 100_000
MAX_STEPS = 10**12  # budgets, intervals, episode lengths
MAX_EPISODES = 1_000_000
MAX_ENVS = 4_096


def show_value(value: Any, width: int = 60) -> str:
    """A short, one-line rendering of a user's value for error messages (YAML spelling)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    shown = repr(value)
    return shown if len(shown) <= width else shown[: width - 3] + "..."


def _value_error(message: str) -> PydanticCustomError:
    """An error whose message is complete after the key path ('suite_value' errors)."""
    return PydanticCustomError("suite_value", message)


def whole_number(value: Any, low: int, high: int) -> int:
    """``value`` as an int in [low, high]: an int or a whole float, never a bool or a string."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        what = "a positive whole number" if low == 1 else f"a whole number from {low:,}"
        raise _value_error(f"must be {what} (got {show_value(value)})")
    if value < low:
        what = "a positive whole number" if low == 1 else f"at least {low:,}"
        raise _value_error(f"must be {what} (got {show_value(value)})")
    if value > high:
        raise _value_error(f"must be at most {high:,} (got {value:,})")
    return value


def _count(high: int) -> BeforeValidator:
    """A positive whole number up to ``high``."""
    return BeforeValidator(lambda value: whole_number(value, 1, high))


Steps = Annotated[int, _count(MAX_STEPS)]


def _check_seeds(value: Any) -> int | list[int]:
    """A count (1..MAX_SEED_COUNT) or a non-empty list of distinct seeds in [0, MAX_SEED]."""
    if isinstance(value, list):
        if not value:
            raise _value_error("give a count of seeds (>= 1) or a non-empty list")
        if len(value) > MAX_SEED_COUNT:
            raise _value_error(f"at most {MAX_SEED_COUNT:,} seeds (got a list of {len(value):,})")
        seeds = []
        for seed in value:
            try:
                seeds.append(whole_number(seed, 0, MAX_SEED))
            except PydanticCustomError as err:
                raise _value_error(f"each seed {err.message()}") from None
        if len(set(seeds)) != len(seeds):
            raise _value_error("seeds must be distinct")
        return seeds
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _value_error(
            f"give a count of seeds (1 to {MAX_SEED_COUNT:,}) or a list of seeds "
            f"(got {show_value(value)})"
        )
    try:
        return whole_number(value, 1, MAX_SEED_COUNT)
    except PydanticCustomError as err:
        raise _value_error(f"a count of seeds {err.message()}") from None


def _check_device(value: Any) -> Any:
    """``auto``, ``cpu``, ``cuda`` or ``cuda:N`` (None: not set here)."""
    if value is None:
        return None
    if not isinstance(value, str) or not DEVICE_PATTERN.fullmatch(value):
        raise _value_error(
            f"device must be auto, cpu, cuda or cuda:N (got {show_value(value)}); auto is CUDA "
            "when torch sees a GPU, else the CPU"
        )
    return value


Device = Annotated[str, BeforeValidator(_check_device)]


def _same_folder(names: list[str], what: str) -> None:
    """Names that differ only in case are one folder on macOS and Windows: refuse them."""
    seen: dict[str, str] = {}
    for name in names:
        other = seen.setdefault(name.casefold(), name)
        if other != name:
            raise _value_error(
                f"{what} {other!r} and {name!r} differ only in case: they would share a folder "
                "on case-insensitive file systems"
            )


class StrictModel(BaseModel):
    """A model that rejects unknown keys and values of the wrong type."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class EvaluationProtocol(StrictModel):
    """How and when a run is evaluated, on an environment separate from the training one."""

    every: Steps = Field(10_000, description="env steps between evaluations")
    episodes: Annotated[int, _count(MAX_EPISODES)] = Field(
        10, description="test episodes per evaluation"
    )
    deterministic: bool = Field(True, description="deterministic actions at test time")


class WrapperSpec(StrictModel):
    """A gymnasium wrapper: ``"module:Class"`` and its keyword arguments."""

    target: str
    kwargs: dict[str, Any] = Field(default_factory=dict)

    @field_validator("kwargs", mode="before")
    @classmethod
    def _none_is_empty(cls, value: Any) -> Any:
        return {} if value is None else value


def derived_name(env_id: str) -> str:
    """The folder name of an environment without a label: its id with '/' and ':' as '_'."""
    return env_id.replace("/", "_").replace(":", "_")


class EnvironmentSpec(StrictModel):
    """One environment of the suite: a gymnasium id, its kwargs and wrappers."""

    id: str = Field(min_length=1)
    label: Identifier | None = Field(None, description="folder and report name; default: the id")
    kwargs: dict[str, Any] = Field(default_factory=dict)
    max_episode_steps: Steps | None = None
    wrappers: list[WrapperSpec] = Field(default_factory=list)
    budget: Steps | None = Field(None, description="overrides the suite's budget")

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
                wrappers.append({"target": target, "kwargs": kwargs})
            else:
                wrappers.append(item)
        return wrappers

    @field_validator("kwargs", mode="before")
    @classmethod
    def _none_kwargs_are_empty(cls, value: Any) -> Any:
        return {} if value is None else value

    @model_validator(mode="after")
    def _name_is_a_folder_name(self) -> EnvironmentSpec:
        """Without a label, the id gives the folder name: it must be a valid one."""
        if self.label is None and not is_identifier(derived_name(self.id)):
            raise _value_error(
                f"{describe_name('the folder name derived from id', derived_name(self.id))}; "
                "set a 'label'"
            )
        return self

    @property
    def name(self) -> str:
        """The label used for folders and reports."""
        return self.label or derived_name(self.id)


class AlgorithmSpec(StrictModel):
    """One algorithm of the suite and its hyperparameters."""

    algo: str | None = Field(None, description="registry name or module:Class; default: the key")
    policy: str = "MlpPolicy"
    device: Device | None = Field(
        None, description="torch device of this algorithm's runs; default: the suite's"
    )
    hyperparams: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="'default' and per-environment (by label) constructor keyword arguments",
    )

    @field_validator("hyperparams", mode="before")
    @classmethod
    def _none_sections_are_empty(cls, value: Any) -> Any:
        if value is None:
            return {}
        if isinstance(value, dict):
            return {key: ({} if section is None else section) for key, section in value.items()}
        return value


class Suite(StrictModel):
    """A whole suite: algorithms × environments × seeds, with one protocol."""

    name: Identifier | None = Field(
        None, description="results folder name; default: the file's stem"
    )
    description: str = ""
    algorithms: dict[Identifier, AlgorithmSpec]
    environments: list[EnvironmentSpec]
    seeds: Annotated[int | list[int], BeforeValidator(_check_seeds)]
    budget: Steps = Field(description="env steps per run")
    evaluation: EvaluationProtocol = Field(default_factory=EvaluationProtocol)
    n_envs: Annotated[int, _count(MAX_ENVS)] = Field(
        1, description="parallel training envs per run"
    )
    checkpoint_every: Steps | None = Field(
        None, description="env steps between checkpoints; default: evaluation.every"
    )
    device: Device = Field(
        "auto", description="torch device of every run: auto, cpu, cuda or cuda:N"
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

    @field_validator("algorithms")
    @classmethod
    def _algorithms_not_empty(cls, value: dict[str, AlgorithmSpec]) -> dict[str, AlgorithmSpec]:
        if not value:
            raise _value_error("name at least one algorithm")
        _same_folder(list(value), "algorithm keys")
        return value

    @field_validator("environments")
    @classmethod
    def _environments_not_empty(cls, value: list[EnvironmentSpec]) -> list[EnvironmentSpec]:
        if not value:
            raise _value_error("name at least one environment")
        names = [env.name for env in value]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise _value_error(f"environment names repeat: {', '.join(duplicates)} (set 'label')")
        _same_folder(names, "environment names")
        return value

    @model_validator(mode="after")
    def _cells_are_bounded(self) -> Suite:
        """algorithms × environments × seeds stays below MAX_CELLS (checked without a list)."""
        cells = len(self.algorithms) * len(self.environments) * self.seed_count
        if cells > MAX_CELLS:
            raise _value_error(
                f"the suite has {cells:,} cells ({len(self.algorithms)} algorithms × "
                f"{len(self.environments)} environments × {self.seed_count} seeds); "
                f"at most {MAX_CELLS:,} are allowed"
            )
        return self

    @property
    def seed_count(self) -> int:
        """How many seeds each (algorithm, environment) pair runs."""
        return self.seeds if isinstance(self.seeds, int) else len(self.seeds)

    @property
    def seed_list(self) -> list[int]:
        """The seeds as a list: a count n means 0..n-1."""
        return list(range(self.seeds)) if isinstance(self.seeds, int) else list(self.seeds)

    @property
    def checkpoint_interval(self) -> int:
        """Env steps between checkpoints."""
        return self.checkpoint_every or self.evaluation.every
