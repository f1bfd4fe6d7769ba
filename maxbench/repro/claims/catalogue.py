"""The claims catalogue: ``suites/claims/claims.yaml`` read into typed records, strictly.

The catalogue is data (issue 15, "Claims as data"): each claim names its paper and location, the
claim in one sentence, the experiment that re-runs it, one or more tests (a measurement and the
decision rule fixed in advance), the minimum number of runs, and the scale used against the
paper's. Experiments are shared between claims (one multi-goal suite serves Fig. 7, 12 and 16).
Anything malformed is a :class:`~maxbench.errors.UserInputError` naming the claim and the key.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from maxbench.errors import UserInputError
from maxbench.repro.claims.rules import Rule

__all__ = [
    "DEFAULT_CATALOGUE",
    "EXPERIMENT_KINDS",
    "FIGURES",
    "SCALES",
    "Catalogue",
    "Claim",
    "ClaimTest",
    "Experiment",
    "load_catalogue",
]

#: Where ``maxbench claims`` looks by default (run from the repository's root, as suites are).
DEFAULT_CATALOGUE = Path("suites/claims/claims.yaml")
#: The scales an experiment can run at.
SCALES = ("workstation", "paper")
#: Experiment kinds: a suite run by the normal runner, or one of maxbench's own measurements.
EXPERIMENT_KINDS = ("suite", "entropy", "latency")
_ID = re.compile(r"[a-z0-9][a-z0-9.-]{0,63}\Z")


@dataclass(frozen=True)
class Experiment:
    """What produces a claim's data; ``suites`` maps a scale to its suite file (or None)."""

    name: str
    kind: str
    what: str
    suites: dict[str, Path | None] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)

    def suite(self, scale: str) -> Path | None:
        """The suite file of ``scale`` (None: not run at that scale); suites only."""
        return self.suites.get(scale)

    def runs_at(self, scale: str) -> bool:
        """Whether this experiment has anything to run at ``scale``."""
        return self.kind != "suite" or self.suites.get(scale) is not None


@dataclass(frozen=True)
class ClaimTest:
    """One measurement and the rule that judges it."""

    label: str
    measure: dict[str, Any]
    rule: Rule


@dataclass(frozen=True)
class Claim:
    """One checkable claim of a paper."""

    id: str
    paper: str
    where: str
    claim: str
    experiment: Experiment
    tests: tuple[ClaimTest, ...]
    min_runs: int
    scale: str
    figures: tuple[str, ...] = ()


@dataclass(frozen=True)
class Catalogue:
    """Every experiment and claim of the catalogue file at ``path``."""

    path: Path
    experiments: dict[str, Experiment]
    claims: tuple[Claim, ...]

    def select(self, only: str | None) -> tuple[Claim, ...]:
        """The claims whose id matches the glob ``only`` (all when None)."""
        if only is None:
            return self.claims
        import fnmatch

        chosen = tuple(c for c in self.claims if fnmatch.fnmatchcase(c.id, only))
        if not chosen:
            ids = ", ".join(c.id for c in self.claims)
            raise UserInputError(f"--only {only!r} matches no claim; the claims are: {ids}")
        return chosen


def load_catalogue(path: Path = DEFAULT_CATALOGUE) -> Catalogue:
    """Read and check the catalogue; suite paths are resolved against its folder."""
    from maxbench.suite.yaml_loader import read_yaml

    path = Path(path)
    if not path.is_file():
        raise UserInputError(
            f"claims catalogue '{path}' not found: run from the repository's root or give "
            "--catalogue suites/claims/claims.yaml"
        )
    data, _ = read_yaml(path)
    where = str(path)
    table = _mapping(data, where, {"experiments", "claims"}, required={"experiments", "claims"})
    experiments_data = _mapping(table["experiments"], f"{where}: experiments")
    experiments = {
        name: _experiment(name, value, path.parent, where)
        for name, value in experiments_data.items()
    }
    claims_data = table["claims"]
    if not isinstance(claims_data, list) or not claims_data:
        raise UserInputError(f"{where}: 'claims' must be a non-empty list")
    claims = tuple(_claim(item, experiments, where) for item in claims_data)
    seen: set[str] = set()
    for claim in claims:
        if claim.id in seen:
            raise UserInputError(f"{where}: claim id {claim.id!r} appears twice")
        seen.add(claim.id)
    return Catalogue(path=path, experiments=experiments, claims=claims)


def _experiment(name: str, data: Any, folder: Path, where: str) -> Experiment:
    here = f"{where}: experiment {name!r}"
    if not _ID.match(str(name)):
        raise UserInputError(f"{here}: names are lowercase letters, digits, '.' and '-'")
    table = _mapping(data, here)
    kind = table.get("kind")
    if kind not in EXPERIMENT_KINDS:
        raise UserInputError(f"{here}: kind must be one of {', '.join(EXPERIMENT_KINDS)}")
    what = _text(table.get("what"), f"{here}: what")
    options = {k: v for k, v in table.items() if k not in ("kind", "what", *SCALES)}
    suites: dict[str, Path | None] = {}
    if kind == "suite":
        for scale in SCALES:
            value = table.get(scale)
            if value is not None and not isinstance(value, str):
                raise UserInputError(f"{here}: {scale} must be a suite file name or null")
            suites[scale] = None if value is None else folder / value
        allowed = {"test_episodes", "grid"}
    else:
        allowed = {"seeds"} if kind == "entropy" else {"algorithms", "blocks", "calls"}
        misplaced = [scale for scale in SCALES if scale in table]
        if misplaced:
            raise UserInputError(f"{here}: a {kind} experiment runs the same at every scale")
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise UserInputError(f"{here}: unknown key(s) {', '.join(unknown)}")
    for key in ("seeds", "blocks", "calls"):
        value = options.get(key, 1)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise UserInputError(f"{here}: {key} must be a whole number of at least 1")
    if "test_episodes" in options:
        _check_test_episodes(options["test_episodes"], f"{here}: test_episodes")
    if "grid" in options:
        _check_grid(options["grid"], f"{here}: grid")
    if kind == "latency":
        algorithms = options.get("algorithms", ["sac"])
        if not isinstance(algorithms, list) or not all(isinstance(a, str) for a in algorithms):
            raise UserInputError(f"{here}: algorithms must be a list of registered names")
    return Experiment(name=name, kind=kind, what=what, suites=suites, options=options)


def _check_test_episodes(data: Any, here: str) -> None:
    """``{episodes: n, softmax_agents: [glob, ...]}``."""
    table = _mapping(data, here, {"episodes", "softmax_agents"})
    episodes = table.get("episodes", 20)
    if isinstance(episodes, bool) or not isinstance(episodes, int) or episodes < 1:
        raise UserInputError(f"{here}: episodes must be a whole number of at least 1")
    agents = table.get("softmax_agents", [])
    if not isinstance(agents, list) or not all(isinstance(a, str) for a in agents):
        raise UserInputError(f"{here}: softmax_agents must be a list of algorithm-key globs")


def _check_grid(data: Any, here: str) -> None:
    """``{agent: "{row}-{column}", rows: {label: key}, columns: {label: key}}``."""
    table = _mapping(
        data, here, {"agent", "rows", "columns"}, required={"agent", "rows", "columns"}
    )
    pattern = table["agent"]
    if not isinstance(pattern, str) or "{row}" not in pattern or "{column}" not in pattern:
        raise UserInputError(f"{here}: agent must be a text holding {{row}} and {{column}}")
    try:
        pattern.format(row="r", column="c")
    except (KeyError, IndexError, ValueError):
        raise UserInputError(f"{here}: agent may hold only {{row}} and {{column}}") from None
    for key in ("rows", "columns"):
        labels = _mapping(table[key], f"{here}: {key}")
        if not labels or not all(isinstance(v, (str, int, float)) for v in labels.values()):
            raise UserInputError(f"{here}: {key} maps each label to an algorithm-key part")


_CLAIM_KEYS = {"id", "paper", "where", "claim", "experiment", "tests", "min_runs", "scale"}
#: The evidence figures a claim can show (drawn by :mod:`maxbench.repro.claims.ledger`).
FIGURES = (
    "entropy",
    "latency",
    "returns",
    "trajectories",
    "goals",
    "obstacle-trajectories",
    "obstacle-goals",
)


def _claim(data: Any, experiments: dict[str, Experiment], where: str) -> Claim:
    table = _mapping(data, f"{where}: a claim", _CLAIM_KEYS | {"figures"}, required=_CLAIM_KEYS)
    claim_id = str(table["id"])
    here = f"{where}: claim {claim_id!r}"
    if not _ID.match(claim_id):
        raise UserInputError(f"{here}: ids are lowercase letters, digits, '.' and '-'")
    name = table["experiment"]
    experiment = experiments.get(name) if isinstance(name, str) else None  # a list: no key
    if experiment is None:
        raise UserInputError(
            f"{here}: experiment {table['experiment']!r} is not one of {', '.join(experiments)}"
        )
    tests_data = table["tests"]
    if not isinstance(tests_data, list) or not tests_data:
        raise UserInputError(f"{here}: 'tests' must be a non-empty list")
    tests = tuple(_test(item, f"{here}, test {i + 1}") for i, item in enumerate(tests_data))
    min_runs = table["min_runs"]
    if isinstance(min_runs, bool) or not isinstance(min_runs, int) or min_runs < 1:
        raise UserInputError(f"{here}: min_runs must be a whole number of at least 1")
    figures = table.get("figures") or []
    if not isinstance(figures, list) or any(f not in FIGURES for f in figures):
        raise UserInputError(f"{here}: figures is a list of {', '.join(FIGURES)}")
    return Claim(
        figures=tuple(figures),
        id=claim_id,
        paper=_text(table["paper"], f"{here}: paper"),
        where=_text(table["where"], f"{here}: where"),
        claim=_text(table["claim"], f"{here}: claim"),
        experiment=experiment,
        tests=tests,
        min_runs=min_runs,
        scale=_text(table["scale"], f"{here}: scale"),
    )


def _test(data: Any, here: str) -> ClaimTest:
    from maxbench.repro.claims.measures import check_measure

    keys = {"label", "measure", "rule"}
    table = _mapping(data, here, keys, required=keys)
    measure = _mapping(table["measure"], f"{here}: measure")
    try:
        check_measure(measure)
        rule = Rule.parse(table["rule"])
    except ValueError as err:
        raise UserInputError(f"{here}: {err}") from None
    return ClaimTest(label=_text(table["label"], f"{here}: label"), measure=measure, rule=rule)


def _mapping(
    data: Any, here: str, allowed: set[str] | None = None, required: set[str] = frozenset()
) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise UserInputError(f"{here} must be a mapping of keys to values")
    if allowed is not None:
        unknown = sorted(set(data) - allowed)
        if unknown:
            raise UserInputError(f"{here}: unknown key(s) {', '.join(map(str, unknown))}")
    missing = sorted(required - set(data))
    if missing:
        raise UserInputError(f"{here}: missing key(s) {', '.join(missing)}")
    return data


def _text(value: Any, here: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise UserInputError(f"{here} must be a non-empty text")
    return " ".join(value.split())
