"""YAML loading for suite files: YAML 1.2 floats, and line numbers for error messages.

PyYAML follows YAML 1.1, where ``1e-3`` and ``1e6`` are strings; in hyperparameter files they are
meant as numbers (rl-baselines3-zoo needs ``!!float`` for this). The loader below resolves them as
floats. :func:`line_of` finds the line of a key path so that validation errors can point at it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from maxbench.errors import UserInputError

_FLOAT_PATTERN = re.compile(
    r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
    |\.[0-9_]+(?:[eE][-+][0-9]+)?
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""",
    re.X,
)


class SuiteLoader(yaml.SafeLoader):
    """SafeLoader that also reads ``1e-3`` and ``1e6`` as floats."""


SuiteLoader.yaml_implicit_resolvers = {
    key: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:float"]
    for key, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.copy().items()
}
SuiteLoader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT_PATTERN, list("-+0123456789."))


def read_yaml(path: Path) -> tuple[Any, yaml.Node | None]:
    """Parse ``path``; return the data and its node tree (for line numbers).

    Raises :class:`UserInputError` for a missing file or invalid YAML, with the line number.
    """
    if not path.exists():
        raise UserInputError(f"suite file not found: {path}")
    if not path.is_file():
        raise UserInputError(f"not a file: {path}")
    text = path.read_text()
    try:
        node = yaml.compose(text, Loader=SuiteLoader)
        data = yaml.load(text, Loader=SuiteLoader)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        context = getattr(err, "context_mark", None)
        if mark is not None and context is not None and mark.line >= len(text.splitlines()):
            mark = context  # the problem is the end of the file: point at what was left open
        where = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise UserInputError(f"{path}{where}: invalid YAML: {problem}") from None
    return data, node


def line_of(node: yaml.Node | None, loc: tuple[Any, ...]) -> int | None:
    """The 1-based line of the deepest node along the key path ``loc`` (None when unknown)."""
    line = None
    for key in loc:
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                if key_node.value == str(key):
                    line = key_node.start_mark.line + 1
                    node = value_node
                    break
            else:
                return line
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int):
            if key >= len(node.value):
                return line
            node = node.value[key]
            line = node.start_mark.line + 1
        else:
            return line
    return line
