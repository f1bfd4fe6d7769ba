"""Read a suite file, validate it, and say precisely what is wrong when it is not valid.

Two stages: the file's shape (pydantic, :mod:`maxbench.suite.model`), then its meaning — the
algorithms exist, their constructors accept the hyperparameters, the environment ids are
registered with gymnasium, the wrappers import. Both run before any training starts.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from maxbench.errors import UserInputError, close_match_hint
from maxbench.suite.model import (
    AlgorithmSpec,
    EnvironmentSpec,
    EvaluationProtocol,
    Suite,
    WrapperSpec,
)
from maxbench.suite.yaml_loader import line_of, read_yaml


@dataclass(frozen=True)
class LoadedSuite:
    """A validated suite and where it came from."""

    suite: Suite
    name: str
    path: Path


def _section_model(loc: tuple[Any, ...]) -> type[BaseModel]:
    """The model class that describes the mapping at key path ``loc``."""
    if loc[:1] == ("evaluation",):
        return EvaluationProtocol
    if loc[:1] == ("algorithms",) and len(loc) >= 2:
        return AlgorithmSpec
    if loc[:1] == ("environments",) and len(loc) >= 4 and loc[2] == "wrappers":
        return WrapperSpec
    if loc[:1] == ("environments",) and len(loc) >= 2:
        return EnvironmentSpec
    return Suite


def _describe(error: dict[str, Any]) -> tuple[tuple[Any, ...], str]:
    """One readable sentence for a pydantic error, and the key path it concerns."""
    # Drop union-member tags such as 'int' or 'list[int]' that pydantic adds to locations.
    loc = tuple(
        part
        for part in error["loc"]
        if not (isinstance(part, str) and ("[" in part or part == "int"))
    )
    dotted = ".".join(str(part) for part in loc) or "suite"
    kind = error["type"]
    if kind == "extra_forbidden":
        section = loc[:-1]
        allowed = sorted(_section_model(section).model_fields)
        where = ".".join(str(p) for p in section) or "the top level"
        return loc, (
            f"unknown key '{loc[-1]}' in {where}{close_match_hint(str(loc[-1]), allowed)}; "
            f"allowed: {', '.join(allowed)}"
        )
    if kind == "missing":
        return loc, f"missing required key '{dotted}'"
    if kind in ("greater_than", "greater_than_equal"):
        return loc, f"{dotted}: must be a positive number (got {error.get('input')!r})"
    message = error["msg"].removeprefix("Value error, ")
    return loc, f"{dotted}: {message}"


def parse_suite(data: Any, path: Path, node: yaml.Node | None = None) -> Suite:
    """Validate the shape of a suite's data; raise :class:`UserInputError` on the first problem."""
    if not isinstance(data, dict):
        raise UserInputError(
            f"{path}: a suite file must be a mapping with keys such as algorithms, environments, "
            "seeds, budget"
        )
    try:
        return Suite.model_validate(data)
    except ValidationError as err:
        errors = err.errors()
        loc, message = _describe(errors[0])
        line = line_of(node, loc)
        where = f"{path}:{line}" if line else f"{path}"
        more = f" (+{len(errors) - 1} more problems)" if len(errors) > 1 else ""
        raise UserInputError(f"{where}: {message}{more}") from None


def _check_environment(env: EnvironmentSpec) -> None:
    import gymnasium as gym

    import maxbench.envs  # noqa: F401  (registers maxbench's own environments)

    try:
        gym.spec(env.id)
    except gym.error.Error as err:
        hint = close_match_hint(env.id, gym.envs.registry.keys())
        raise UserInputError(
            f"unknown environment id '{env.id}'{hint} ({type(err).__name__}: {err})"
        ) from None
    except ModuleNotFoundError as err:
        raise UserInputError(f"environment '{env.id}': cannot import its module: {err}") from None
    for wrapper in env.wrappers:
        if ":" not in wrapper.target:
            raise UserInputError(f"wrapper '{wrapper.target}' must be written 'module:Class'")
        from maxbench.registry import import_target

        import_target(wrapper.target)


def check_semantics(suite: Suite, path: Path, node: yaml.Node | None = None) -> None:
    """Check names and hyperparameters against the real classes and gymnasium's registry."""
    from maxbench.registry import check_hyperparameters, resolve_algorithm
    from maxbench.suite.hyperparams import convert_hyperparameters

    for index, env in enumerate(suite.environments):
        try:
            _check_environment(env)
        except UserInputError as err:
            line = line_of(node, ("environments", index))
            raise UserInputError(f"{path}{f':{line}' if line else ''}: {err}") from None
    for key, spec in suite.algorithms.items():
        try:
            cls, preset = resolve_algorithm(spec.algo or key)
        except UserInputError as err:
            line = line_of(node, ("algorithms", key))
            raise UserInputError(f"{path}{f':{line}' if line else ''}: {err}") from None
        for section, hyperparams in spec.hyperparams.items():
            try:
                check_hyperparameters(cls, {**preset, **hyperparams})
                convert_hyperparameters(hyperparams, action_dim=1)
            except UserInputError as err:
                line = line_of(node, ("algorithms", key, "hyperparams", section))
                where = f"{path}{f':{line}' if line else ''}"
                raise UserInputError(
                    f"{where}: algorithms.{key}.hyperparams.{section}: {err}"
                ) from None


def load_suite(path: str | Path, check: bool = True) -> LoadedSuite:
    """Read and validate the suite at ``path``. With ``check``, also resolve every name."""
    path = Path(path)
    data, node = read_yaml(path)
    suite = parse_suite(data, path, node)
    if check:
        check_semantics(suite, path, node)
    return LoadedSuite(suite=suite, name=suite.name or path.stem, path=path)
