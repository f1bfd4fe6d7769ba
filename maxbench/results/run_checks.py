"""What maxbench writes in a cell's run.json and evals.csv, field by field, as checks.

:func:`maxbench.results.layout.read_cell` applies these to every cell it reads, so that ``run``,
``report``, ``multigoal`` and the loader agree on which cells are damaged: a field that is
present with the wrong type (``"seed": "one"``, ``"budget": null``, a timing that is text) makes
the cell damaged, with the field named; a field that is absent is unknown, not damaged (a run
that failed while its model was built has no spec).
"""

from __future__ import annotations

import json
import re
from typing import Any

from maxbench.results.layout import EVALS_CSV, RUN_JSON, EvalRow

__all__ = ["SPEC_FIELDS", "TIMING_FIELDS", "evals_problem", "run_json_problem"]
_INT_LIMIT = 2**63
# A suite, algorithm or env name is a folder name of the cell's path: one line, no separator.
_NAME = re.compile(r"[^\x00-\x1f\x7f/\\]{1,200}\Z")

#: The spec fields that the loader reads, and what maxbench writes in each (Cell.to_dict).
SPEC_FIELDS: dict[str, str] = {
    "suite": "name",
    "algo": "name",
    "algo_target": "text",
    "policy": "text",
    "hyperparams": "object",
    "env_id": "text",
    "env_name": "name",
    "env_kwargs": "object",
    "max_episode_steps": "count or null",
    "wrappers": "list",
    "seed": "seed",
    "budget": "count",
    "eval_every": "count",
    "eval_episodes": "count",
    "eval_deterministic": "true or false",
    "n_envs": "count",
}
#: run.json's ``timings`` fields, in the order the loader's runs table has them.
TIMING_FIELDS: tuple[str, ...] = (
    "env_steps",
    "train_time_s",
    "compile_time_s",
    "eval_time_s",
    "wall_time_s",
    "env_steps_per_s",
)
_TIMING_FIELDS = dict.fromkeys(TIMING_FIELDS, "number or null")
_PROVENANCE_FIELDS = {
    "python": "text or null",
    "git_revision": "text or null",
    "cpu": "text or null",
    "cpu_count": "integer or null",
    "device": "text or null",
    "torch_threads": "integer or null",
}
_ARTICLE = {
    "name": "a folder name (one line, no '/')",
    "text": "a text",
    "count": "a positive integer",
    "count or null": "a positive integer or null",
    "seed": "an integer >= 0",
    "true or false": "true or false",
    "object": "an object",
    "list": "a list",
    "number or null": "a number or null",
    "integer or null": "an integer or null",
    "text or null": "a text or null",
}


def _is_integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and abs(value) < _INT_LIMIT


def _is_number(value: Any) -> bool:
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and (not isinstance(value, int) or abs(value) < _INT_LIMIT)
    )


def _kind(value: Any) -> str:
    return "null" if value is None else f"{type(value).__name__} {json.dumps(value)[:40]}"


def _field_problem(where: str, key: str, value: Any, expected: str) -> str | None:
    """Why ``value`` is not what maxbench writes for ``key`` (None when it is)."""
    checks = {
        "name": lambda v: (
            isinstance(v, str) and _NAME.match(v) is not None and v not in (".", "..")
        ),
        "text": lambda v: isinstance(v, str),
        "count": lambda v: _is_integer(v) and v >= 1,
        "count or null": lambda v: v is None or (_is_integer(v) and v >= 1),
        "seed": lambda v: _is_integer(v) and v >= 0,
        "true or false": lambda v: isinstance(v, bool),
        "object": lambda v: isinstance(v, dict),
        "list": lambda v: isinstance(v, list),
        "number or null": lambda v: v is None or _is_number(v),
        "integer or null": lambda v: v is None or _is_integer(v),
        "text or null": lambda v: v is None or isinstance(v, str),
    }
    if checks[expected](value):
        return None
    return f"{RUN_JSON}: {where}'{key}' is {_kind(value)}, expected {_ARTICLE[expected]}"


def run_json_problem(run: dict[str, Any]) -> str | None:
    """Why a run.json (an object with a known status) is not what maxbench writes, or None.

    Every field the loader, ``report`` and ``multigoal`` use is checked for its type: the spec's
    names (text), seed (an integer >= 0), budget and evaluation protocol (positive integers),
    hyperparameters and env kwargs (objects), the timings (numbers), the provenance and the
    error. A field that is absent is unknown, not damaged (a run that failed while its model was
    built has no spec); a field of the wrong type (``"seed": "one"``, ``"budget": null``) makes
    the cell damaged, so that no command trips over it later.
    """
    spec = run.get("spec")
    for key, expected in SPEC_FIELDS.items():
        if isinstance(spec, dict) and key in spec:
            problem = _field_problem("spec ", key, spec[key], expected)
            if problem:
                return problem
    for section, fields in (("timings", _TIMING_FIELDS), ("provenance", _PROVENANCE_FIELDS)):
        values = run.get(section)
        for key, expected in fields.items():
            if isinstance(values, dict) and key in values:
                problem = _field_problem(f"{section} ", key, values[key], expected)
                if problem:
                    return problem
    packages = (run.get("provenance") or {}).get("packages")
    if packages is not None and not (
        isinstance(packages, dict)
        and all(v is None or isinstance(v, str) for v in packages.values())
    ):
        return f"{RUN_JSON}: provenance 'packages' is not an object of version texts"
    if "error" in run:
        return _field_problem("", "error", run["error"], "text or null")
    return None


def evals_problem(evals: list[EvalRow]) -> str | None:
    """Why evals.csv's rows are not what maxbench writes: a step or length out of range."""
    for row in evals:
        if not 0 <= row.timestep < _INT_LIMIT:
            return f"{EVALS_CSV}: timestep {row.timestep} is out of range"
        if any(not 0 <= n < _INT_LIMIT for n in row.lengths):
            return f"{EVALS_CSV}: an episode length at timestep {row.timestep} is out of range"
    return None
