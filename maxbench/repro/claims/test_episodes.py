"""Test episodes of one trained multi-goal agent, recorded once into its cell folder.

The claims of S2AC §5.1 (Fig. 7: trajectories; Fig. 12 / 16: goals reached, without and with the
test-time obstacle of spec §1.7) are decided on an agent's test episodes. Running them needs the
cell's ``model.zip``; a committed results folder keeps only the small files. So
:func:`record_test_episodes` runs the episodes once, exactly as
:func:`maxbench.repro.multigoal.evaluate_agents` does, and writes them into the cell as
``test_episodes.json``; :func:`read_test_episodes` reads them back (strictly: a committed folder
may be damaged), and verdicts and figures are recomputed from those files alone.

The file (every float rounded to 4 decimals; one episode per line)::

    {"format": 1, "episodes_per_env": n, "seed": seed, "deterministic": false,
     "trained_on": env_id, "algo": key, "run_seed": s,
     "envs": {env_id: {"goals": [[x, y], ...], "obstacle": [[x1, y1], [x2, y2]] or null,
                       "episodes": [{"goal": g, "return": r, "length": l, "blocked_steps": b,
                                     "path": [[x, y], ...]}, ...]}}}

``goal`` is the index of the goal reached (-1: none), ``path`` the positions from the start
(``length + 1`` points), ``blocked_steps`` the steps the obstacle stopped.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

from maxbench.errors import UserInputError, one_line
from maxbench.repro.multigoal import (
    OBSTACLE_VARIANT,
    AgentEpisodes,
    Episode,
    MultigoalRun,
    _load_model,
    multigoal_run_from_cell,
    run_episodes,
)
from maxbench.results.atomic import write_text_atomic
from maxbench.results.layout import MODEL_ZIP

__all__ = [
    "EPISODES_FILE",
    "FORMAT",
    "TestEpisodes",
    "pool",
    "read_test_episodes",
    "record_test_episodes",
]

#: The file name in a cell folder.
EPISODES_FILE = "test_episodes.json"
#: The version of the file's layout.
FORMAT = 1
#: Decimals kept of every float (positions move by at most 1 per step on [-7, 7]^2).
_DECIMALS = 4
_HEADER = ("format", "episodes_per_env", "seed", "deterministic", "trained_on", "algo", "run_seed")
_FIELDS = (*_HEADER, "envs")
_ENV_FIELDS = ("goals", "obstacle", "episodes")
_EPISODE_FIELDS = ("goal", "return", "length", "blocked_steps", "path")


@dataclass(frozen=True)
class TestEpisodes:
    """One cell's recorded test episodes: per test env, an :class:`AgentEpisodes` of one seed."""

    __test__ = False  # not a pytest test class, whatever its name

    algo: str
    run_seed: int
    trained_on: str
    deterministic: bool
    envs: dict[str, AgentEpisodes]


# -- recording ------------------------------------------------------------------------------------
def record_test_episodes(
    cell_folder: Path,
    *,
    episodes: int = 20,
    seed: int = 0,
    deterministic: bool = False,
    obstacle: bool = True,
) -> Path:
    """Run the cell's final model on its training env (and the obstacle variant) and record it.

    The episodes are those of :func:`~maxbench.repro.multigoal.evaluate_agents` for this one run:
    ``torch`` and ``numpy`` seeded with ``seed + run seed`` before each env's episodes, resets
    seeded ``0 ... episodes - 1``, stochastic actions unless ``deterministic`` (the paper's
    Fig. 7 and 12 draw the stochastic policy). A file already recorded with the same settings
    (and the same run) is kept as it is; any other file, a damaged one included, is rewritten.

    Args:
        cell_folder: a finished cell trained on a multi-goal env, with its ``model.zip``.
        episodes: test episodes per env (the paper draws 20).
        seed: added to the run's seed to seed torch and numpy.
        deterministic: deterministic actions.
        obstacle: also test on the obstacle variant of the training env (spec §1.7).

    Returns:
        The path of ``test_episodes.json``.

    Raises:
        UserInputError: the folder is no finished multi-goal cell, or its model cannot be loaded.
    """
    if isinstance(episodes, bool) or not isinstance(episodes, int) or episodes < 0:
        raise ValueError(f"episodes must be an integer >= 0, got {episodes!r}")
    folder = Path(cell_folder)
    run = multigoal_run_from_cell(folder)
    if isinstance(run, str):
        raise UserInputError(f"{folder} {run}")
    test_envs = _test_envs(run.env_id, obstacle)
    header = _header(run, episodes, seed, deterministic)
    path = folder / EPISODES_FILE
    if _recorded_as(path, header, test_envs):
        return path
    model = _load(run)
    document: dict[str, Any] = {**header, "envs": {}}
    for env_id in test_envs:
        found = _seeded_episodes(model, env_id, episodes, seed + run.seed, deterministic)
        document["envs"][env_id] = _env_entry(env_id, found)
    write_text_atomic(path, _dumps(document, folder))
    return path


def _test_envs(env_id: str, obstacle: bool) -> list[str]:
    """The training env, then (``obstacle``) its obstacle variant, as evaluate_agents tests."""
    return (
        [env_id, OBSTACLE_VARIANT[env_id]] if obstacle and env_id in OBSTACLE_VARIANT else [env_id]
    )


def _header(run: MultigoalRun, episodes: int, seed: int, deterministic: bool) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "episodes_per_env": episodes,
        "seed": int(seed),
        "deterministic": bool(deterministic),
        "trained_on": run.env_id,
        "algo": run.algo,
        "run_seed": run.seed,
    }


def _recorded_as(path: Path, header: dict[str, Any], test_envs: list[str]) -> bool:
    """Whether ``path`` is a sound file recorded with these settings, of this run, on these envs."""
    if not path.exists():
        return False
    try:
        document, _ = _parse(path)
    except ValueError:
        return False
    same_header = all(document[key] == header[key] for key in _HEADER)
    types_too = all(type(document[key]) is type(header[key]) for key in _HEADER)
    return same_header and types_too and list(document["envs"]) == test_envs


def _load(run: MultigoalRun) -> Any:
    """The run's final model through the registry; a model that cannot be loaded is one line."""
    try:
        return _load_model(run)
    except UserInputError:
        raise
    except Exception as err:  # noqa: BLE001  (a damaged model.zip: name the cell)
        text = one_line(err)[:300]
        raise UserInputError(
            f"{run.folder}: its {MODEL_ZIP} cannot be used ({type(err).__name__}: {text})"
        ) from err


def _seeded_episodes(
    model: Any, env_id: str, n: int, seed: int, deterministic: bool
) -> list[Episode]:
    """``run_episodes`` after seeding torch and numpy as evaluate_agents does for each env."""
    import torch

    torch.manual_seed(seed)
    np.random.seed(seed)
    return run_episodes(model, env_id, n, deterministic)


def _env_entry(env_id: str, episodes: list[Episode]) -> dict[str, Any]:
    """One env of the file: its goals and obstacle (from the env itself) and the episodes."""
    import gymnasium as gym

    import maxbench.envs  # noqa: F401  (registers the multi-goal ids)

    env = gym.make(env_id)
    base = env.unwrapped
    goals, obstacle = _points(base.goals), None if base.obstacle is None else _points(base.obstacle)
    env.close()
    return {
        "goals": goals,
        "obstacle": obstacle,
        "episodes": [
            {
                "goal": int(e.goal),
                "return": _rounded(e.episode_return),
                "length": int(e.length),
                "blocked_steps": int(e.blocked_steps),
                "path": _points(e.path),
            }
            for e in episodes
        ],
    }


def _rounded(value: Any) -> float:
    return round(float(value), _DECIMALS)


def _points(array: Any) -> list[list[float]]:
    return [[_rounded(x), _rounded(y)] for x, y in np.asarray(array, dtype=np.float64)]


def _dumps(document: dict[str, Any], folder: Path) -> str:
    """Compact JSON with one episode per line: small, deterministic, and diffs stay readable."""

    def dump(value: Any) -> str:
        return json.dumps(value, separators=(",", ":"), allow_nan=False)

    try:
        head = dump({key: document[key] for key in _HEADER})
        envs = []
        for env_id, entry in document["envs"].items():
            lines = ",\n".join(dump(episode) for episode in entry["episodes"])
            envs.append(
                f'{dump(env_id)}:{{"goals":{dump(entry["goals"])},'
                f'"obstacle":{dump(entry["obstacle"])},"episodes":[\n{lines}]}}'
            )
    except ValueError as err:  # allow_nan=False: a model that steered to NaN
        raise UserInputError(
            f"{folder}: a test episode holds a number that is not finite ({err}); not recorded"
        ) from err
    return head[:-1] + ',"envs":{\n' + ",\n".join(envs) + "}}\n"


# -- reading --------------------------------------------------------------------------------------
def read_test_episodes(cell_folder: Path) -> TestEpisodes:
    """A cell's recorded test episodes, checked field by field.

    Raises:
        ValueError: one line naming the file and what is wrong: missing, not JSON, a field
            missing, unexpected or of the wrong type, a goal index out of range, a path point
            that is not a pair of finite numbers, counts that disagree.
    """
    return _parse(Path(cell_folder) / EPISODES_FILE)[1]


def _parse(path: Path) -> tuple[dict[str, Any], TestEpisodes]:
    """The file's JSON document (checked) and the episodes it holds."""
    document = _load_json(path)
    check = _Checker(path)
    check.fields(document, _FIELDS, "the document")
    if check.integer(document["format"], "format") != FORMAT:
        check.fail("format", f"is {document['format']}, not {FORMAT}")
    count = check.integer(document["episodes_per_env"], "episodes_per_env")
    check.integer(document["seed"], "seed", minimum=None)
    deterministic = check.boolean(document["deterministic"], "deterministic")
    trained_on = check.text(document["trained_on"], "trained_on")
    algo = check.text(document["algo"], "algo")
    run_seed = check.integer(document["run_seed"], "run_seed")
    envs = document["envs"]
    if not isinstance(envs, dict) or not envs:
        check.fail("envs", "is not a non-empty object")
    if trained_on not in envs:
        check.fail("envs", f"has no entry for the training env {trained_on!r}")
    groups = {}
    for env_id, entry in envs.items():
        group = _env_group(check, env_id, entry, count)
        groups[env_id] = AgentEpisodes(
            agent=algo,
            env_id=env_id,
            trained_on=trained_on,
            seeds=[run_seed],
            goals=group.goals,
            obstacle=group.obstacle,
            episodes=group.episodes,
        )
    return document, TestEpisodes(algo, run_seed, trained_on, deterministic, groups)


def _load_json(path: Path) -> Any:
    if not path.exists():
        raise ValueError(f"{path}: no such file (the cell's test episodes were not recorded)")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON (line {err.lineno}: {err.msg})") from None
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not UTF-8 text") from None
    except RecursionError:
        raise ValueError(f"{path}: not what maxbench writes (nested too deeply)") from None
    except OSError as err:
        raise ValueError(f"{path}: cannot be read ({err.strerror or err})") from None


def _env_group(check: _Checker, env_id: str, entry: Any, count: int) -> AgentEpisodes:
    """One env's entry: its goals, obstacle and episodes (whose agent :func:`_parse` names)."""
    where = f"envs[{env_id!r}]"
    check.fields(entry, _ENV_FIELDS, where)
    goals = check.points(entry["goals"], f"{where}.goals")
    if not goals:
        check.fail(f"{where}.goals", "is empty")
    obstacle = None
    if entry["obstacle"] is not None:
        obstacle = check.points(entry["obstacle"], f"{where}.obstacle")
        if len(obstacle) != 2:
            check.fail(f"{where}.obstacle", f"has {len(obstacle)} points, not 2 (or null)")
    raw = entry["episodes"]
    if not isinstance(raw, list):
        check.fail(f"{where}.episodes", "is not a list")
    if len(raw) != count:
        check.fail(f"{where}.episodes", f"holds {len(raw)} episodes, not episodes_per_env {count}")
    found = [
        _episode(check, episode, f"{where}.episodes[{index}]", len(goals))
        for index, episode in enumerate(raw)
    ]
    return AgentEpisodes(
        agent="",
        env_id=env_id,
        trained_on="",
        seeds=[],
        goals=np.array(goals, dtype=np.float64),
        obstacle=None if obstacle is None else np.array(obstacle, dtype=np.float64),
        episodes=found,
    )


def _episode(check: _Checker, episode: Any, where: str, n_goals: int) -> Episode:
    check.fields(episode, _EPISODE_FIELDS, where)
    goal = check.integer(episode["goal"], f"{where}.goal", minimum=None)
    if not -1 <= goal < n_goals:
        check.fail(f"{where}.goal", f"is {goal}, not a goal index (-1 or 0..{n_goals - 1})")
    length = check.integer(episode["length"], f"{where}.length")
    blocked = check.integer(episode["blocked_steps"], f"{where}.blocked_steps")
    if blocked > length:
        check.fail(f"{where}.blocked_steps", f"is {blocked}, more than the length {length}")
    path = check.points(episode["path"], f"{where}.path")
    if len(path) != length + 1:
        check.fail(f"{where}.path", f"has {len(path)} points, not length + 1 = {length + 1}")
    return Episode(
        path=np.array(path, dtype=np.float64).reshape(-1, 2),
        goal=goal,
        episode_return=check.number(episode["return"], f"{where}.return"),
        length=length,
        blocked_steps=blocked,
    )


class _Checker:
    """Strict checks of the file's values; each failure is one line naming the field."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, where: str, what: str) -> NoReturn:
        raise ValueError(f"{self.path}: {where} {what}")

    def fields(self, value: Any, names: tuple[str, ...], where: str) -> None:
        if not isinstance(value, dict):
            self.fail(where, f"is not an object (a {type(value).__name__})")
        missing = [name for name in names if name not in value]
        if missing:
            self.fail(where, f"lacks the field {missing[0]!r}")
        extra = sorted(str(key) for key in value if key not in names)
        if extra:
            self.fail(where, f"has an unexpected field {extra[0]!r}")

    def integer(self, value: Any, where: str, minimum: int | None = 0) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(where, f"is not an integer ({_shown(value)})")
        if minimum is not None and value < minimum:
            self.fail(where, f"is {value}, below {minimum}")
        return value

    def number(self, value: Any, where: str) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            self.fail(where, f"is not a number ({_shown(value)})")
        if not math.isfinite(value):
            self.fail(where, f"is not a finite number ({value})")
        return float(value)

    def boolean(self, value: Any, where: str) -> bool:
        if not isinstance(value, bool):
            self.fail(where, f"is not true or false ({_shown(value)})")
        return value

    def text(self, value: Any, where: str) -> str:
        if not isinstance(value, str) or not value:
            self.fail(where, f"is not a non-empty text ({_shown(value)})")
        return value

    def points(self, value: Any, where: str) -> list[list[float]]:
        if not isinstance(value, list):
            self.fail(where, f"is not a list of points ({_shown(value)})")
        points = []
        for index, point in enumerate(value):
            if not isinstance(point, list) or len(point) != 2:
                self.fail(f"{where}[{index}]", f"is not a pair [x, y] ({_shown(point)})")
            points.append([self.number(c, f"{where}[{index}]") for c in point])
        return points


def _shown(value: Any) -> str:
    """A value as a short one-line text for a message."""
    text = one_line(json.dumps(value) if not isinstance(value, str) else repr(value))
    return text if len(text) <= 60 else text[:57] + "..."


# -- pooling --------------------------------------------------------------------------------------
def pool(groups: list[AgentEpisodes]) -> AgentEpisodes:
    """The episodes of several seeds of one agent on one env, pooled (seeds concatenated).

    The paper's Fig. 12 / 16 count goals over all the test episodes of an agent; pooling checks
    that the groups are of the same agent, env, training env, goals and obstacle.

    Raises:
        ValueError: no groups, or groups that are not of one agent on one env.
    """
    if not groups:
        raise ValueError("pool: no episodes to pool")
    first = groups[0]
    for other in groups[1:]:
        for name in ("agent", "env_id", "trained_on"):
            if getattr(other, name) != getattr(first, name):
                raise ValueError(
                    f"pool: episodes of different {name}s ({getattr(first, name)!r} and "
                    f"{getattr(other, name)!r})"
                )
        if not np.array_equal(other.goals, first.goals):
            raise ValueError(f"pool: different goals on {first.env_id}")
        if (other.obstacle is None) != (first.obstacle is None) or (
            other.obstacle is not None and not np.array_equal(other.obstacle, first.obstacle)
        ):
            raise ValueError(f"pool: different obstacles on {first.env_id}")
    return AgentEpisodes(
        agent=first.agent,
        env_id=first.env_id,
        trained_on=first.trained_on,
        seeds=[seed for group in groups for seed in group.seeds],
        goals=first.goals.copy(),
        obstacle=None if first.obstacle is None else first.obstacle.copy(),
        episodes=[episode for group in groups for episode in group.episodes],
    )
