"""Reference scores per environment id, and the normalisation they define (issue 5, point 2).

A normalised score is ``(score - random) / (reference - random)``: 0 is a uniformly random
policy, 1 is the reference. Both numbers live in the versioned file ``reference_scores.json``
beside this module, each with its source:

- ``random``: the mean return of the uniform random policy, measured by maxbench itself with
  ``maxbench reference random ENV --episodes N`` (:func:`measure_random_score`), on the very env
  id the suites use (MuJoCo -v5, Box2D -v3, ...);
- ``reference``: D4RL's expert scores for Hopper, Walker2d, HalfCheetah, Ant (measured by D4RL on
  -v2/-v3 envs), rl-baselines3-zoo's benchmark for the Box2D tasks, Pendulum and Humanoid, and
  for the multi-goal tasks the best return found by trajectory optimisation on the known,
  deterministic dynamics (:func:`multigoal_best_return`).

An env with no reference, or no measured random score, is not normalised: the report gives its
raw per-env tables and a warning, and leaves it out of the aggregates.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from maxbench.errors import UserInputError
from maxbench.results.atomic import write_text_atomic

__all__ = [
    "REFERENCE_FILE",
    "RandomScore",
    "ReferenceScore",
    "ReferenceTable",
    "check_reference_file",
    "load_references",
    "measure_random_score",
    "multigoal_best_return",
    "record_random_score",
]

#: The versioned reference file shipped with maxbench.
REFERENCE_FILE = Path(__file__).resolve().parent / "reference_scores.json"


@dataclass(frozen=True)
class ReferenceScore:
    """The two ends of one env's normalisation, with their sources."""

    env_id: str
    random: float | None
    random_source: str | None
    reference: float | None
    reference_source: str | None
    note: str = ""

    @property
    def normalisable(self) -> bool:
        """Whether both ends are known and distinct."""
        return (
            self.random is not None
            and self.reference is not None
            and not math.isclose(self.random, self.reference)
        )

    def normalise(self, scores: Any) -> Any:
        """``(scores - random) / (reference - random)`` (numbers or numpy arrays)."""
        if not self.normalisable:
            raise ValueError(f"{self.env_id} has no usable reference scores")
        return (scores - self.random) / (self.reference - self.random)  # type: ignore[operator]


@dataclass(frozen=True)
class ReferenceTable:
    """The contents of a reference file: its version, its path, and the per-env scores."""

    path: Path
    version: int
    scores: dict[str, ReferenceScore]

    def get(self, env_id: str) -> ReferenceScore | None:
        """The env's reference scores, or None when the file has none."""
        return self.scores.get(env_id)


def _read_raw(path: Path) -> dict[str, Any]:
    """The file's JSON object with an ``envs`` object; anything else is a UserInputError."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserInputError(f"reference file '{path}' does not exist") from None
    except IsADirectoryError:
        raise UserInputError(f"reference file '{path}' is a folder, not a file") from None
    except UnicodeDecodeError:
        raise UserInputError(f"reference file '{path}' is not UTF-8 text") from None
    except json.JSONDecodeError as err:
        raise UserInputError(
            f"reference file '{path}' is not valid JSON (line {err.lineno}: {err.msg})"
        ) from None
    except (OSError, ValueError) as err:
        text = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
        raise UserInputError(f"reference file '{path}' cannot be read: {text}") from None
    except RecursionError:
        raise UserInputError(f"reference file '{path}' is nested too deeply") from None
    if not isinstance(data, dict) or not isinstance(data.get("envs"), dict):
        raise UserInputError(
            f"reference file '{path}' has no 'envs' mapping (expected "
            '{"version": N, "envs": {"<env id>": {"random": {...}, "reference": {...}}}})'
        )
    version = data.get("version", 0)
    if isinstance(version, bool) or not isinstance(version, int) or version < 0:
        raise UserInputError(
            f"reference file '{path}': 'version' is {_shown(version)}, expected an integer >= 0"
        )
    for env_id, entry in data["envs"].items():
        _parse_entry(path, env_id, entry)
    return data


def _shown(value: Any) -> str:
    """A JSON value for a message: short, one line."""
    text = json.dumps(value, ensure_ascii=True)
    return text if len(text) <= 40 else text[:37] + "..."


def _parse_entry(path: Path, env_id: str, entry: Any) -> ReferenceScore:
    """One env's entry of the file, every field checked; a bad one names the file and key."""
    where = f"reference file '{path}': envs.{_shown(env_id)}"
    if not isinstance(entry, dict):
        raise UserInputError(f"{where} is {_shown(entry)}, expected an object")
    ends: dict[str, tuple[float | None, str | None]] = {}
    for end in ("random", "reference"):
        part = entry.get(end)
        if part is None:
            ends[end] = (None, None)
            continue
        if not isinstance(part, dict):
            raise UserInputError(f"{where}.{end} is {_shown(part)}, expected an object")
        if "score" not in part:
            raise UserInputError(
                f"{where}.{end} has no 'score' (a number, or null when it is not known)"
            )
        score = part["score"]
        if score is not None and (
            isinstance(score, bool)
            or not isinstance(score, (int, float))
            or not math.isfinite(score)
        ):
            raise UserInputError(
                f"{where}.{end}.score is {_shown(score)}, expected a finite number (or null)"
            )
        source = part.get("source")
        if source is not None and not isinstance(source, str):
            raise UserInputError(
                f"{where}.{end}.source is {_shown(source)}, expected a text (where the score "
                "comes from)"
            )
        ends[end] = (None if score is None else float(score), source)
    note = entry.get("note", "")
    if not isinstance(note, str):
        raise UserInputError(f"{where}.note is {_shown(note)}, expected a text")
    return ReferenceScore(
        env_id=env_id,
        random=ends["random"][0],
        random_source=ends["random"][1],
        reference=ends["reference"][0],
        reference_source=ends["reference"][1],
        note=note,
    )


def load_references(path: str | Path | None = None) -> ReferenceTable:
    """Read a reference file (default: maxbench's own :data:`REFERENCE_FILE`).

    Raises:
        UserInputError: the file is missing, unreadable, not JSON, or an entry is not what
            :func:`record_random_score` writes (a score that is not a finite number, an entry
            that is not an object, ...); the message names the file and the env and key.
    """
    path = Path(path) if path is not None else REFERENCE_FILE
    data = _read_raw(path)
    scores = {env_id: _parse_entry(path, env_id, entry) for env_id, entry in data["envs"].items()}
    return ReferenceTable(path=path, version=int(data.get("version", 0)), scores=scores)


# -- random scores ----------------------------------------------------------------------------
@dataclass(frozen=True)
class RandomScore:
    """The returns of the uniform random policy on one env."""

    env_id: str
    mean: float
    std: float
    episodes: int
    seed: int
    mean_length: float


def measure_random_score(env_id: str, episodes: int, seed: int = 0) -> RandomScore:
    """Mean return of uniformly random actions over ``episodes`` full episodes.

    The env is made exactly as a suite makes it (``gym.make(env_id)`` with its registered time
    limit); episode ``i`` is reset with seed ``seed + i`` and the action space is seeded with
    ``seed``, so the measurement repeats exactly.
    """
    import gymnasium as gym

    import maxbench.envs  # noqa: F401  (registers the multi-goal envs)

    if episodes < 1:
        raise UserInputError(f"--episodes must be at least 1 (got {episodes})")
    try:
        env = gym.make(env_id)
    except gym.error.Error as err:
        raise UserInputError(f"cannot make environment '{env_id}': {err}") from None
    env.action_space.seed(seed)
    returns: list[float] = []
    lengths: list[int] = []
    try:
        for episode in range(episodes):
            env.reset(seed=seed + episode)
            total, length, done = 0.0, 0, False
            while not done:
                _, reward, terminated, truncated, _ = env.step(env.action_space.sample())
                total += float(reward)
                length += 1
                done = terminated or truncated
            returns.append(total)
            lengths.append(length)
    finally:
        env.close()
    values = np.asarray(returns)
    return RandomScore(
        env_id=env_id,
        mean=float(values.mean()),
        std=float(values.std()),
        episodes=episodes,
        seed=seed,
        mean_length=float(np.mean(lengths)),
    )


def record_random_score(measurement: RandomScore, path: str | Path | None = None) -> int:
    """Write a measured random score into the reference file; return the file's new version.

    The env's reference score (if any) is kept; the file's ``version`` goes up by one.
    """
    import gymnasium

    path = Path(path) if path is not None else REFERENCE_FILE
    data = _read_raw(path) if path.exists() else {"version": 0, "envs": {}}
    entry = data["envs"].get(measurement.env_id, {})
    random = {
        "score": round(measurement.mean, 6),
        "std": round(measurement.std, 6),
        "episodes": measurement.episodes,
        "seed": measurement.seed,
        "mean_length": round(measurement.mean_length, 3),
        "source": (
            f"measured by maxbench: uniform random actions, {measurement.episodes} episodes, "
            f"seed {measurement.seed}, gymnasium {gymnasium.__version__} "
            f"(maxbench reference random {measurement.env_id} "
            f"--episodes {measurement.episodes} --seed {measurement.seed})"
        ),
    }
    rest = {key: value for key, value in entry.items() if key != "random"}
    data["envs"][measurement.env_id] = {"random": random, **rest}
    data["version"] = int(data.get("version", 0)) + 1
    data["envs"] = dict(sorted(data["envs"].items()))
    try:
        write_text_atomic(path, json.dumps(data, indent=2) + "\n")
    except OSError as err:
        raise UserInputError(
            f"cannot write reference file '{path}': {err.strerror or err}"
        ) from None
    return data["version"]


def check_reference_file(path: str | Path) -> None:
    """Check before a measurement that ``path`` can take a random score (UserInputError if not).

    An existing file must be a valid reference file; a new one needs a folder it can be made in.
    """
    path = Path(path)
    if path.exists():
        _read_raw(path)
        if not os.access(path, os.W_OK):
            raise UserInputError(f"reference file '{path}' is read-only")
        return
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise UserInputError(f"reference file '{path}' cannot be made: '{folder}' is a file")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise UserInputError(f"reference file '{path}' cannot be made: '{folder}' is read-only")


# -- the multi-goal reference -------------------------------------------------------------------
def multigoal_best_return(env_id: str) -> tuple[float, np.ndarray]:
    """The best return found for a multi-goal env, and the actions that achieve it.

    The dynamics are known and deterministic (spec §1.7: ``s' = clip(s + a)``, reward
    ``-30 ||a||^2 - min_g ||s' - g||^2``, +10 and termination within 0.5 of a goal, 30 steps).
    For every goal (at distance D) and every arrival step T we solve the straight-line control
    problem ``min sum_t 30 u_t^2 + (D - x_t)^2`` subject to ``|u_t| <= 1`` and arriving at
    step T (``x_T`` inside the goal radius, ``x_t`` outside before it), plus the case of never
    arriving (:func:`_straight_line_controls`); every candidate is then replayed in the real env
    (whose reward uses the nearest goal, never farther than the targeted one) and the best
    replayed return is kept. A straight line is optimal without obstacles (a sideways component
    costs action and distance alike); with an obstacle a blocked line shows in the replay. The
    result is therefore an achieved return: a lower bound on the optimum, exact up to the
    optimiser's tolerance when the optimum is a straight line.
    """
    import gymnasium as gym

    import maxbench.envs  # noqa: F401

    env = gym.make(env_id)
    base = env.unwrapped
    horizon = int(env.spec.max_episode_steps or 30)  # type: ignore[union-attr]
    goals = np.asarray(base.goals, dtype=np.float64)
    radius = float(base.goal_radius)
    margin = 1e-4  # the env compares float32 positions with a strict '<'

    best_return, best_actions = -math.inf, np.zeros((0, 2))
    solved: dict[float, list[np.ndarray]] = {}  # goals at the same distance share their speeds
    for goal in goals:
        distance = float(np.linalg.norm(goal))
        direction = goal / distance
        target = distance - radius + margin
        if distance not in solved:
            solved[distance] = [
                _straight_line_controls(distance, target, arrival, base.action_cost)
                for arrival in range(1, horizon + 1)
                if arrival >= target  # |u| <= 1: the goal is out of reach in fewer steps
            ] + [_straight_line_controls(distance, target, None, base.action_cost, horizon)]
        for speeds in solved[distance]:
            actions = (np.clip(speeds, -1.0, 1.0)[:, None] * direction[None, :]).astype(np.float32)
            achieved = _replay(env, actions)
            if achieved > best_return:
                best_return, best_actions = achieved, actions
    env.close()
    return best_return, best_actions


def _straight_line_controls(
    distance: float,
    target: float,
    arrival: int | None,
    action_cost: float,
    horizon: int = 0,
) -> np.ndarray:
    """Speeds ``u`` toward a goal at ``distance`` minimising ``sum c u_t^2 + (D - x_t)^2``.

    ``x_t = u_1 + ... + u_t`` and ``|u_t| <= 1``. With ``arrival = T`` the path must reach
    ``target`` (inside the goal radius) at step T and stay short of it before; with ``None`` it
    must stay short of it for ``horizon`` steps. A convex quadratic programme with linear
    constraints, solved by SLSQP with exact gradients.
    """
    from scipy.optimize import minimize

    steps = arrival if arrival is not None else horizon
    short_of = target - 2e-4  # strictly outside the goal radius before arriving

    def cost(u: np.ndarray) -> float:
        gaps = distance - np.cumsum(u)
        return float(action_cost * u @ u + gaps @ gaps)

    def gradient(u: np.ndarray) -> np.ndarray:
        gaps = distance - np.cumsum(u)
        return 2.0 * action_cost * u - 2.0 * np.cumsum(gaps[::-1])[::-1]

    lower = np.tril(np.ones((steps, steps)))
    if arrival is None:
        constraints = [
            {"type": "ineq", "fun": lambda u: short_of - np.cumsum(u), "jac": lambda u: -lower}
        ]
        start = np.zeros(steps)
    else:
        constraints = [
            {"type": "ineq", "fun": lambda u: np.sum(u) - target, "jac": lambda u: lower[-1]}
        ]
        if steps > 1:
            constraints.append(
                {
                    "type": "ineq",
                    "fun": lambda u: short_of - np.cumsum(u)[:-1],
                    "jac": lambda u: -lower[:-1],
                }
            )
        start = np.full(steps, target / steps)
    solution = minimize(
        cost,
        start,
        jac=gradient,
        bounds=[(-1.0, 1.0)] * steps,
        constraints=constraints,
        method="SLSQP",
        options={"ftol": 1e-12, "maxiter": 1000},
    )
    return np.asarray(solution.x)


def _replay(env: Any, actions: np.ndarray) -> float:
    """The return of an open-loop action sequence in the real env (from its fixed start)."""
    env.reset(seed=0)
    total = 0.0
    for action in actions:
        _, reward, terminated, truncated, _ = env.step(action)
        total += float(reward)
        if terminated or truncated:
            break
    return total
