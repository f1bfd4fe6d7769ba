"""Read a suite file, validate it, and say precisely what is wrong when it is not valid.

Three stages, cheapest first, all before any folder is written:

1. the file's shape (strict YAML, then pydantic, :mod:`maxbench.suite.model`): keys, types,
   bounds, names that become folders;
2. its names: the algorithms exist, their constructors accept the hyperparameters and these
   convert, the policies exist, the environment ids are registered with gymnasium, the wrappers
   import;
3. its meaning (:mod:`maxbench.suite.preflight`): each environment is built and each
   (algorithm, environment) model constructed once, in a throwaway process.

``maxbench validate`` and ``maxbench run`` both go through :func:`load_suite` with all three.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from maxbench.errors import UserInputError, close_match_hint
from maxbench.suite.identifiers import RULE, describe_name, is_identifier
from maxbench.suite.model import (
    AlgorithmSpec,
    EnvironmentSpec,
    EvaluationProtocol,
    Suite,
    WrapperSpec,
    show_value,
)
from maxbench.suite.yaml_loader import line_of, read_yaml

# What a value of the wrong type should have been, by pydantic error type.
_EXPECTED = {
    "int_type": "a whole number",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "bool_type": "true or false",
    "string_type": "text",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
    "list_type": "a list",
    "none_required": "empty",
}


@dataclass(frozen=True)
class LoadedSuite:
    """A validated suite and where it came from."""

    suite: Suite
    name: str
    path: Path


def where(path: Path, node: yaml.Node | None, loc: tuple[Any, ...]) -> str:
    """``path:line`` of the key path ``loc`` (just ``path`` when the line is unknown)."""
    line = line_of(node, loc)
    return f"{path}:{line}" if line else f"{path}"


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
        in_dict = isinstance(node, dict) and _hashable(part) and part in node
        in_list = isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
        if in_dict or in_list:
            path.append(part)
            node = node[part]
        elif position == len(parts) - 1 and error["type"] in ("missing", "extra_forbidden"):
            path.append(part)
    return tuple(path)


def _hashable(value: Any) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True


def _show_key(part: Any) -> str:
    """A key of a key path as text: plain when printable, else quoted with escapes."""
    text = str(part)
    return text if text.isprintable() and len(text) <= 60 else show_value(part)


def _dotted(loc: tuple[Any, ...]) -> str:
    return ".".join(_show_key(part) for part in loc) or "suite"


def _identifier_what(loc: tuple[Any, ...]) -> str:
    if loc[:1] == ("algorithms",):
        return "algorithm key"
    if loc[:1] == ("environments",):
        return "environment label"
    return "name"


def _describe(data: Any, error: dict[str, Any]) -> tuple[tuple[Any, ...], str]:
    """One readable sentence for a pydantic error, and the key path it concerns."""
    loc = _data_path(data, error)
    dotted = _dotted(loc)
    kind = error["type"]
    if kind == "extra_forbidden":
        section = loc[:-1]
        allowed = sorted(_section_model(section).model_fields)
        in_section = _dotted(section) if section else "the top level"
        return loc, (
            f"unknown key {_show_key(loc[-1])!r} in {in_section}"
            f"{close_match_hint(str(loc[-1]), allowed)}; allowed: {', '.join(allowed)}"
        )
    if kind == "missing":
        return loc, f"missing required key '{dotted}'"
    if kind == "identifier":
        return loc, describe_name(_identifier_what(loc), error.get("input"))
    if kind in ("greater_than", "greater_than_equal"):
        return loc, f"{dotted}: must be a positive number (got {show_value(error.get('input'))})"
    if kind in _EXPECTED:
        return loc, f"{dotted}: must be {_EXPECTED[kind]} (got {show_value(error.get('input'))})"
    if kind == "string_too_short":
        return loc, f"{dotted}: must not be empty"
    message = " ".join(str(error["msg"]).removeprefix("Value error, ").split())
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
        # A value that fits no member of a union gives one error per member: count places.
        places = len({_data_path(data, error) for error in errors})
        more = f" (+{places - 1} more problems)" if places > 1 else ""
        raise UserInputError(f"{where(path, node, loc)}: {message}{more}") from None
    _check_override_sections(suite, path, node)
    return suite


def suite_name(suite: Suite, path: Path) -> str:
    """The suite's folder name: its ``name``, or the file's stem, which must be a valid name."""
    if suite.name is not None:
        return suite.name
    if not is_identifier(path.stem):
        raise UserInputError(
            f"{path}: the suite has no 'name' and its file name {path.stem!r} cannot be one "
            f"({RULE}); add a line such as 'name: my-suite'"
        )
    return path.stem


def _check_override_sections(suite: Suite, path: Path, node: yaml.Node | None) -> None:
    """Every hyperparameter section is 'default' or the label of an environment of the suite."""
    env_names = {env.name for env in suite.environments}
    for key, spec in suite.algorithms.items():
        for section in spec.hyperparams:
            if section != "default" and section not in env_names:
                raise UserInputError(
                    f"{where(path, node, ('algorithms', key, 'hyperparams', section))}: "
                    f"algorithms.{key}.hyperparams: section {_show_key(section)!r} is neither "
                    f"'default' nor an environment of this suite"
                    f"{close_match_hint(section, env_names)} ({', '.join(sorted(env_names))})"
                )


def _check_environment(env: EnvironmentSpec) -> None:
    import gymnasium as gym

    import maxbench.envs  # noqa: F401  (registers maxbench's own environments)
    from maxbench.registry import import_module, import_target

    env_name = env.id
    if ":" in env.id:  # "module:Env-v0": gymnasium imports the module, which registers the env
        module_name, env_name = env.id.split(":", 1)
        if not module_name or ":" in env_name:
            raise UserInputError(
                f"environment id {env.id!r}: write 'Env-v0' or 'module:Env-v0' (one ':')"
            )
        import_module(module_name, env.id)
    try:
        gym.spec(env_name)
    except gym.error.Error as err:
        hint = close_match_hint(env.id, gym.envs.registry.keys())
        raise UserInputError(
            f"unknown environment id {env.id!r}{hint} ({type(err).__name__}: "
            f"{' '.join(str(err).split())})"
        ) from None
    except Exception as err:  # the id's module (``module:Env-v0``) failed to import
        raise UserInputError(
            f"environment {env.id!r}: cannot import its module: {type(err).__name__}: "
            f"{' '.join(str(err).split())}"
        ) from None
    for wrapper in env.wrappers:
        if not callable(import_target(wrapper.target, what="wrapper")):
            raise UserInputError(f"wrapper {wrapper.target!r} is not a class or a function")


def _check_policy(cls: type, policy: str) -> None:
    """SB3 algorithms name their policies in ``policy_aliases``: the suite's must be one."""
    aliases = getattr(cls, "policy_aliases", None)
    if isinstance(aliases, dict) and aliases and policy not in aliases:
        raise UserInputError(
            f"{cls.__name__} has no policy {policy!r}{close_match_hint(policy, aliases)}; "
            f"known: {', '.join(sorted(aliases))}"
        )


def check_semantics(suite: Suite, path: Path, node: yaml.Node | None = None) -> None:
    """Check names and hyperparameters against the real classes and gymnasium's registry."""
    from maxbench.registry import check_hyperparameters, resolve_algorithm
    from maxbench.suite.hyperparams import convert_hyperparameters

    for index, env in enumerate(suite.environments):
        try:
            _check_environment(env)
        except UserInputError as err:
            raise UserInputError(f"{where(path, node, ('environments', index))}: {err}") from None
    for key, spec in suite.algorithms.items():
        try:
            cls, preset = resolve_algorithm(spec.algo or key)
        except UserInputError as err:
            raise UserInputError(f"{where(path, node, ('algorithms', key))}: {err}") from None
        try:
            _check_policy(cls, spec.policy)
        except UserInputError as err:
            loc = ("algorithms", key, "policy")
            raise UserInputError(
                f"{where(path, node, loc)}: algorithms.{key}.policy: {err}"
            ) from None
        for section, hyperparams in spec.hyperparams.items():
            try:
                check_hyperparameters(cls, {**preset, **hyperparams})
                convert_hyperparameters(hyperparams, action_dim=None, algorithm=cls)
            except UserInputError as err:
                loc = ("algorithms", key, "hyperparams", section)
                raise UserInputError(
                    f"{where(path, node, loc)}: algorithms.{key}.hyperparams.{section}: {err}"
                ) from None


def _check_meaning(
    suite: Suite, name: str, path: Path, node: yaml.Node | None, preflight: bool
) -> None:
    """The name checks, then the preflight build. The preflight's process starts first, so that
    it imports torch while the name checks run; a name error still wins (and stops it)."""
    if not preflight:
        check_semantics(suite, path, node)
        return
    from maxbench.suite.preflight import Preflight

    check = Preflight(suite, name)
    try:
        check_semantics(suite, path, node)
        check.finish(path, node)
    finally:
        check.cancel()


def load_suite(path: str | Path, check: bool = True, preflight: bool = True) -> LoadedSuite:
    """Read and validate the suite at ``path``.

    With ``check``, also resolve every name; with ``check`` and ``preflight`` (the default, what
    ``validate`` and ``run`` use), also build every environment and model once in a throwaway
    process (:func:`maxbench.suite.preflight.preflight_suite`).
    """
    path = Path(path)
    data, node = read_yaml(path)
    suite = parse_suite(data, path, node)
    name = suite_name(suite, path)
    if check:
        _check_meaning(suite, name, path, node, preflight)
    return LoadedSuite(suite=suite, name=name, path=path)
