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


def _data_path(data: Any, error: dict[str, Any]) -> tuple[Any, ...]:
    """The error's location as a path through the user's data.

    Pydantic adds tags to locations (union members such as 'constrained-int' or 'list[int]');
    keep only the parts that name a key or index of the data, and a missing key at the end.
    """
    path: list[Any] = []
    node = data
    parts = list(error["loc"])
    for position, part in enumerate(parts):
        in_dict = isinstance(node, dict) and part in node
        in_list = isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
        if in_dict or in_list:
            path.append(part)
            node = node[part]
        elif position == len(parts) - 1 and error["type"] in ("missing", "extra_forbidden"):
            path.append(part)
    return tuple(path)


def _describe(data: Any, error: dict[str, Any]) -> tuple[tuple[Any, ...], str]:
    """One readable sentence for a pydantic error, and the key path it concerns."""
    loc = _data_path(data, error)
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
    return loc, f"{dotted}: {message}" if loc else message


def parse_suite(data: Any, path: Path, node: yaml.Node | None = None) -> Suite:
    """Validate the shape of a suite's data; raise :class:`UserInputError` on the first problem."""
    if not isinstance(data, dict):
        raise UserInputError(
            f"{path}: a suite file must be a mapping with keys such as algorithms, environments, "
            "seeds, budget"
        )
    try:
        suite = Suite.model_validate(data)
    except ValidationError as err:
        errors = err.errors()
        loc, message = _describe(data, errors[0])
        line = line_of(node, loc)
        where = f"{path}:{line}" if line else f"{path}"
        # A value that fits no member of a union gives one error per member: count places.
        places = len({_data_path(data, error) for error in errors})
        more = f" (+{places - 1} more problems)" if places > 1 else ""
        raise UserInputError(f"{where}: {message}{more}") from None
    _check_override_sections(suite, path, node)
    return suite


def _check_override_sections(suite: Suite, path: Path, node: yaml.Node | None) -> None:
    """Every hyperparameter section is 'default' or the label of an environment of the suite."""
    env_names = {env.name for env in suite.environments}
    for key, spec in suite.algorithms.items():
        for section in spec.hyperparams:
            if section != "default" and section not in env_names:
                line = line_of(node, ("algorithms", key, "hyperparams", section))
                raise UserInputError(
                    f"{path}{f':{line}' if line else ''}: algorithms.{key}.hyperparams: section "
                    f"'{section}' is neither 'default' nor an environment of this suite"
                    f"{close_match_hint(section, env_names)} ({', '.join(sorted(env_names))})"
                )


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
                convert_hyperparameters(hyperparams, action_dim=1, algorithm=cls)
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
