"""Strict YAML loading for suite files, with line numbers for error messages.

- YAML 1.2 floats: PyYAML follows YAML 1.1, where ``1e-3`` and ``1e6`` are strings; in
  hyperparameter files they are meant as numbers (rl-baselines3-zoo needs ``!!float`` for this).
  The loader below resolves them as floats. Booleans stay YAML 1.1's: ``yes``/``no``/``on``/``off``
  are ``true``/``false`` (so ``use_sde: no`` is never the truthy string ``"no"``), and the suite
  model's strict types refuse a boolean wherever a number is meant.
- Duplicate keys in a mapping are an error naming the key and both lines (PyYAML keeps the last
  one silently: a duplicated algorithm key would drop an algorithm). Anchors, aliases and merge
  keys (``<<: *defaults``) work; a key written next to a merge overrides the merged one.
- The file must be UTF-8 text, readable, not empty, and not absurdly large once aliases are
  expanded (a "billion laughs" document is refused, not expanded).

:func:`line_of` finds the line of a key path so that validation errors can point at it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from maxbench.errors import UserInputError

MAX_FILE_BYTES = 10 * 2**20
MAX_VALUES = 1_000_000  # scalars and collections, counting each alias as often as it is used
MAX_DEPTH = 64  # levels of nested mappings and lists

_FLOAT_PATTERN = re.compile(
    r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
    |\.[0-9_]+(?:[eE][-+][0-9]+)?
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""",
    re.X,
)
_MERGE_TAG = "tag:yaml.org,2002:merge"
_FLOAT_TAG = "tag:yaml.org,2002:float"
_TIMESTAMP_TAG = "tag:yaml.org,2002:timestamp"


class DuplicateKeyError(yaml.YAMLError):
    """A key written twice in one mapping."""

    def __init__(self, key: Any, line: int, first_line: int) -> None:
        super().__init__(f"duplicate key {key!r} at line {line} (first at line {first_line})")
        self.line = line


class SuiteLoader(yaml.SafeLoader):
    """SafeLoader that reads ``1e-3`` and ``1e6`` as floats."""


def check_duplicate_keys(root: yaml.Node) -> None:
    """Raise DuplicateKeyError for a key written twice among a mapping's own (not merged) keys.

    Walks the composed node tree (before construction flattens merge keys), each node once.
    """
    constructor = SuiteLoader("")
    seen_nodes: set[int] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        if id(node) in seen_nodes:
            continue
        seen_nodes.add(id(node))
        if isinstance(node, yaml.MappingNode):
            _check_mapping(constructor, node)
            for key_node, value_node in node.value:
                stack.extend((key_node, value_node))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)


def _check_mapping(constructor: SuiteLoader, node: yaml.MappingNode) -> None:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        if key_node.tag == _MERGE_TAG or not isinstance(key_node, yaml.ScalarNode):
            continue  # merged keys may be overridden; PyYAML refuses unhashable keys itself
        key = constructor.construct_object(key_node)
        line = key_node.start_mark.line + 1
        if key in seen:
            raise DuplicateKeyError(key, line, seen[key])
        seen[key] = line


# YAML 1.2 floats; no implicit timestamps (``2024-01-01`` is text, as in YAML 1.2's core schema).
SuiteLoader.yaml_implicit_resolvers = {
    key: [(tag, regexp) for tag, regexp in resolvers if tag not in (_FLOAT_TAG, _TIMESTAMP_TAG)]
    for key, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.copy().items()
}
SuiteLoader.add_implicit_resolver(_FLOAT_TAG, _FLOAT_PATTERN, list("-+0123456789."))


def _refuse_tag(loader: SuiteLoader, node: yaml.Node) -> Any:
    """Values a suite cannot hold (JSON has no dates, bytes, sets or ordered pairs): an error."""
    raise yaml.constructor.ConstructorError(
        None, None, f"the tag {node.tag} is not allowed in a suite file", node.start_mark
    )


for _tag in ("timestamp", "binary", "set", "omap", "pairs"):
    SuiteLoader.add_constructor(f"tag:yaml.org,2002:{_tag}", _refuse_tag)


def read_text(path: Path) -> str:
    """The file's text: UTF-8 (a BOM is allowed); anything else is a one-line UserInputError."""
    try:
        if not path.exists():
            raise UserInputError(f"suite file not found: {path}")
        if not path.is_file():
            raise UserInputError(f"not a file: {path}")
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise UserInputError(
                f"{path}: {size:,} bytes is too large for a suite file (at most {MAX_FILE_BYTES:,})"
            )
        data = path.read_bytes()
    except OSError as err:
        reason = err.strerror or type(err).__name__
        raise UserInputError(f"cannot read the suite file {path}: {reason}") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise UserInputError(
            f"{path}:{line}: not UTF-8 text (byte 0x{data[err.start]:02x} at offset {err.start}); "
            "save the suite file as UTF-8"
        ) from None


def read_yaml(path: Path) -> tuple[Any, yaml.Node | None]:
    """Parse ``path``; return the data and its node tree (for line numbers).

    Raises :class:`UserInputError` for a missing, unreadable, non-UTF-8 or empty file, invalid
    YAML or a duplicate key, with the line number where there is one.
    """
    text = read_text(path)
    try:
        node = yaml.compose(text, Loader=SuiteLoader)
        if node is not None:
            check_duplicate_keys(node)
        data = yaml.load(text, Loader=SuiteLoader)
    except DuplicateKeyError as err:
        raise UserInputError(f"{path}:{err.line}: {err}") from None
    except yaml.YAMLError as err:
        raise UserInputError(_yaml_error_message(path, text, err)) from None
    except RecursionError:
        raise UserInputError(f"{path}: invalid YAML: nested too deeply") from None
    if node is None:
        raise UserInputError(
            f"{path}: the file is empty; a suite file is a mapping with keys such as algorithms, "
            "environments, seeds, budget"
        )
    _check_size(path, data)
    return data, node


def _yaml_error_message(path: Path, text: str, err: yaml.YAMLError) -> str:
    """One line: the file, the line of the problem, and PyYAML's description of it."""
    if isinstance(err, yaml.reader.ReaderError):
        line = text[: err.position].count("\n") + 1
        return f"{path}:{line}: invalid YAML: character {err.character!r} is not allowed"
    mark = getattr(err, "problem_mark", None)
    context = getattr(err, "context_mark", None)
    if mark is not None and context is not None and mark.line >= len(text.splitlines()):
        mark = context  # the problem is the end of the file: point at what was left open
    where = f":{mark.line + 1}" if mark is not None else ""
    problem = getattr(err, "problem", None) or str(err).splitlines()[0]
    return f"{path}{where}: invalid YAML: {' '.join(str(problem).split())}"


def _check_size(path: Path, data: Any) -> None:
    """Refuse a document whose aliases expand to more than MAX_VALUES values, or that nests
    deeper than MAX_DEPTH (later stages copy and validate it recursively)."""
    budget = MAX_VALUES
    stack = [(data, 0)]
    while stack:
        value, depth = stack.pop()
        budget -= 1
        if budget < 0:
            raise UserInputError(
                f"{path}: the document expands to more than {MAX_VALUES:,} values "
                "(aliases of aliases?); write it out plainly"
            )
        if depth > MAX_DEPTH:
            raise UserInputError(f"{path}: invalid YAML: nested too deeply (over {MAX_DEPTH})")
        if isinstance(value, dict):
            stack.extend((item, depth + 1) for item in value)
            stack.extend((item, depth + 1) for item in value.values())
        elif isinstance(value, list):
            stack.extend((item, depth + 1) for item in value)


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
