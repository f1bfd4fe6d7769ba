"""Multi-goal 2-D point-mass toy environments (with optional wall segment).

Reference: S2AC paper (arXiv 2405.00987), Sec. 5.1 / App. multi-goal; authors' STAC/envs.

Dynamics (deterministic, no noise):

* state / observation: the 2-D position ``s`` in ``[-bound, bound]^2`` (default ``bound=7``),
  ``float32``; :meth:`MultiGoalEnv.reset` puts the agent at ``(0, 0)`` exactly;
* action: a velocity ``a`` in ``[-1, 1]^2``, clipped to that box before use;
* transition: ``s' = clip(s + a, -bound, bound)``; if an obstacle segment is given and the
  straight move ``s -> s'`` (after clipping) intersects it (touching and collinear overlap
  count as crossing), the move is blocked and ``s' = s``;
* reward: ``r = -action_cost * ||a||^2 - min_g ||s' - g||^2`` (``a`` the clipped action, ``s'``
  the position after any blocking; the action cost is charged even when blocked);
* if ``min_g ||s' - g|| < goal_radius`` the episode terminates and ``goal_reward`` is added;
* episodes are cut at 30 steps by gymnasium's ``TimeLimit`` (truncation), see
  :mod:`maxbench.envs.registration`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np
from gymnasium import spaces

__all__ = [
    "FOUR_GOALS",
    "FOUR_GOALS_OBSTACLE",
    "MAXENT_GOALS",
    "MAXENT_OBSTACLE",
    "MultiGoalEnv",
    "segments_intersect",
]

#: The four goals of ``MultiGoal-v0`` / ``MultiGoalObstacle-v0``.
FOUR_GOALS: tuple[tuple[float, float], ...] = ((5.0, 0.0), (-5.0, 0.0), (0.0, 5.0), (0.0, -5.0))
#: The wall of ``MultiGoalObstacle-v0``: the segment (-1.5, 3)--(1.5, 3).
FOUR_GOALS_OBSTACLE: tuple[tuple[float, float], tuple[float, float]] = ((-1.5, 3.0), (1.5, 3.0))
#: The three goals of ``MultiGoalMaxEnt-v0`` / ``MultiGoalMaxEntObstacle-v0``.
MAXENT_GOALS: tuple[tuple[float, float], ...] = ((5.0, 0.0), (-4.0, 3.0), (-4.0, -3.0))
#: The wall of ``MultiGoalMaxEntObstacle-v0``: the segment (-2, 0)--(0, 2).
MAXENT_OBSTACLE: tuple[tuple[float, float], tuple[float, float]] = ((-2.0, 0.0), (0.0, 2.0))

_ORIENT_EPS = 1e-9  # |cross product| below this counts as collinear (touching = crossing)


def _orientation(p: np.ndarray, q: np.ndarray, r: np.ndarray) -> int:
    """Return the orientation of the ordered triple ``(p, q, r)``.

    Args:
        p: First 2-D point.
        q: Second 2-D point.
        r: Third 2-D point.

    Returns:
        ``1`` for counter-clockwise, ``-1`` for clockwise, ``0`` for (numerically) collinear.
    """
    cross = (q[0] - p[0]) * (r[1] - p[1]) - (q[1] - p[1]) * (r[0] - p[0])
    if abs(cross) <= _ORIENT_EPS:
        return 0
    return 1 if cross > 0 else -1


def _on_segment(p: np.ndarray, q: np.ndarray, r: np.ndarray) -> bool:
    """Whether ``q``, known to be collinear with ``p`` and ``r``, lies on the segment ``p-r``.

    Args:
        p: One end of the segment.
        q: The point to test.
        r: The other end of the segment.

    Returns:
        True if ``q`` lies within the bounding box of ``p`` and ``r`` (up to a tiny tolerance).
    """
    return bool(
        min(p[0], r[0]) - _ORIENT_EPS <= q[0] <= max(p[0], r[0]) + _ORIENT_EPS
        and min(p[1], r[1]) - _ORIENT_EPS <= q[1] <= max(p[1], r[1]) + _ORIENT_EPS
    )


def segments_intersect(
    p1: np.ndarray | Sequence[float],
    p2: np.ndarray | Sequence[float],
    q1: np.ndarray | Sequence[float],
    q2: np.ndarray | Sequence[float],
) -> bool:
    """Test whether the closed segments ``p1-p2`` and ``q1-q2`` intersect.

    Uses the classic orientation (cross-product) test; touching an end point and collinear
    overlap count as an intersection. Degenerate (zero-length) segments are handled.

    Args:
        p1: Start of the first segment.
        p2: End of the first segment.
        q1: Start of the second segment.
        q2: End of the second segment.

    Returns:
        True if the two segments share at least one point.
    """
    a, b, c, d = (np.asarray(x, dtype=np.float64) for x in (p1, p2, q1, q2))
    o1 = _orientation(a, b, c)
    o2 = _orientation(a, b, d)
    o3 = _orientation(c, d, a)
    o4 = _orientation(c, d, b)
    if o1 != o2 and o3 != o4:  # general case (also covers a proper touch)
        return True
    # Collinear special cases: an end point of one segment lies on the other.
    return (
        (o1 == 0 and _on_segment(a, c, b))
        or (o2 == 0 and _on_segment(a, d, b))
        or (o3 == 0 and _on_segment(c, a, d))
        or (o4 == 0 and _on_segment(c, b, d))
    )


class MultiGoalEnv(gym.Env[np.ndarray, np.ndarray]):
    """2-D point mass that should reach one of several goals, optionally past a wall segment.

    Reference: S2AC paper (arXiv 2405.00987), Sec. 5.1 / App. multi-goal; authors' STAC/envs.

    Dynamics: the observation is the position ``s`` (``float32``, in ``[-bound, bound]^2``,
    starting at ``(0, 0)`` exactly); the action ``a`` is a velocity clipped to ``[-1, 1]^2``;
    ``s' = clip(s + a, -bound, bound)``, and ``s' = s`` if the move ``s -> s'`` intersects the
    obstacle segment (touching counts). The reward is
    ``-action_cost * ||a||^2 - min_g ||s' - g||^2``, plus ``goal_reward`` (and termination)
    when ``min_g ||s' - g|| < goal_radius``. There is no noise. Registered ids use a 30-step
    ``TimeLimit`` (truncation).

    ``info`` from :meth:`step` holds ``"position"`` (copy of ``s'``), ``"goal_index"`` (index of
    the reached goal or ``-1``) and ``"blocked"`` (whether the obstacle stopped the move).

    Attributes:
        goals: Goal positions, array of shape ``(G, 2)``.
        obstacle: ``None`` or the obstacle segment's end points, array of shape ``(2, 2)``.
        goal_radius: Distance below which a goal counts as reached.
        goal_reward: Bonus added on reaching a goal.
        action_cost: Coefficient of ``||a||^2`` in the cost.
        bound: Half-width of the square arena.
        render_mode: ``None`` or ``"rgb_array"``.
    """

    metadata: dict[str, Any] = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(
        self,
        goals: Sequence[Sequence[float]] | np.ndarray = FOUR_GOALS,
        obstacle: Sequence[Sequence[float]] | np.ndarray | None = None,
        goal_radius: float = 0.5,
        goal_reward: float = 10.0,
        action_cost: float = 30.0,
        bound: float = 7.0,
        render_mode: str | None = None,
    ) -> None:
        """Build the environment.

        Args:
            goals: Goal positions ``(x, y)``; at least one.
            obstacle: ``None`` or the segment ``((x1, y1), (x2, y2))`` that blocks moves.
            goal_radius: Distance below which a goal counts as reached (> 0).
            goal_reward: Bonus added to the reward when a goal is reached.
            action_cost: Coefficient of the squared action norm in the cost.
            bound: The position is clipped to ``[-bound, bound]^2`` (> 0).
            render_mode: ``None`` or ``"rgb_array"``.

        Raises:
            ValueError: On a bad shape or value of any argument, or an unsupported render mode.
        """
        super().__init__()
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(
                f"unsupported render_mode {render_mode!r}; "
                f"supported: None, {self.metadata['render_modes']}"
            )
        goals_arr = np.array(goals, dtype=np.float64)
        if goals_arr.ndim != 2 or goals_arr.shape[1] != 2 or goals_arr.shape[0] < 1:
            raise ValueError(f"goals must have shape (G, 2) with G >= 1, got {goals_arr.shape}")
        obstacle_arr: np.ndarray | None = None
        if obstacle is not None:
            obstacle_arr = np.array(obstacle, dtype=np.float64)
            if obstacle_arr.shape != (2, 2):
                raise ValueError(f"obstacle must have shape (2, 2), got {obstacle_arr.shape}")
        if not goal_radius > 0:
            raise ValueError(f"goal_radius must be > 0, got {goal_radius}")
        if not bound > 0:
            raise ValueError(f"bound must be > 0, got {bound}")

        self.goals: np.ndarray = goals_arr
        self.obstacle: np.ndarray | None = obstacle_arr
        self.goal_radius = float(goal_radius)
        self.goal_reward = float(goal_reward)
        self.action_cost = float(action_cost)
        self.bound = float(bound)
        self.render_mode = render_mode

        self.observation_space = spaces.Box(-self.bound, self.bound, shape=(2,), dtype=np.float32)
        self.action_space = spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)

        self._state = np.zeros(2, dtype=np.float32)
        self._path: list[np.ndarray] = [self._state.copy()]

    @property
    def position(self) -> np.ndarray:
        """A copy of the current position (``float32``, shape ``(2,)``)."""
        return self._state.copy()

    @property
    def path(self) -> np.ndarray:
        """All positions since the last reset, array of shape ``(T + 1, 2)``."""
        return np.array(self._path, dtype=np.float32)

    def _goal_distances(self, position: np.ndarray) -> np.ndarray:
        """Euclidean distances from ``position`` to every goal.

        Args:
            position: A 2-D position.

        Returns:
            Array of shape ``(G,)``.
        """
        return np.linalg.norm(self.goals - np.asarray(position, dtype=np.float64), axis=1)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Put the agent at ``(0, 0)``.

        Args:
            seed: Seed for ``self.np_random`` (the dynamics themselves are deterministic).
            options: Unused.

        Returns:
            The observation ``(0, 0)`` (``float32``) and an info dict with ``"position"``,
            ``"goal_index"`` (``-1``) and ``"blocked"`` (``False``).
        """
        super().reset(seed=seed)
        self._state = np.zeros(2, dtype=np.float32)
        self._path = [self._state.copy()]
        info = {"position": self._state.copy(), "goal_index": -1, "blocked": False}
        return self._state.copy(), info

    def step(
        self, action: np.ndarray | Sequence[float]
    ) -> tuple[np.ndarray, SupportsFloat, bool, bool, dict[str, Any]]:
        """Move by the clipped action, unless the obstacle blocks the move.

        Args:
            action: Velocity ``(dx, dy)``; clipped to ``[-1, 1]^2``.

        Returns:
            ``(observation, reward, terminated, truncated, info)``; ``truncated`` is always
            False here (the ``TimeLimit`` wrapper sets it).

        Raises:
            ValueError: If the action does not have 2 elements.
        """
        a = np.asarray(action, dtype=np.float64).reshape(-1)
        if a.shape != (2,):
            raise ValueError(f"action must have 2 elements, got shape {np.shape(action)}")
        a = np.clip(a, -1.0, 1.0)

        s = self._state.astype(np.float64)
        s_next = np.clip(s + a, -self.bound, self.bound)
        blocked = False
        if self.obstacle is not None and segments_intersect(
            s, s_next, self.obstacle[0], self.obstacle[1]
        ):
            s_next = s.copy()
            blocked = True

        # The observation is the state: store it as float32 and compute everything from it.
        self._state = s_next.astype(np.float32)
        pos = self._state.astype(np.float64)
        dists = self._goal_distances(pos)
        nearest = int(np.argmin(dists))
        reward = -self.action_cost * float(a @ a) - float(dists[nearest] ** 2)
        terminated = bool(dists[nearest] < self.goal_radius)
        if terminated:
            reward += self.goal_reward
        self._path.append(self._state.copy())

        info = {
            "position": self._state.copy(),
            "goal_index": nearest if terminated else -1,
            "blocked": blocked,
        }
        return self._state.copy(), float(reward), terminated, False, info

    def render(self) -> np.ndarray | None:  # type: ignore[override]
        """Draw the arena: value contour, goals, obstacle, path since reset, current position.

        Uses matplotlib's Agg canvas directly (no pyplot, no display).

        Returns:
            A ``(400, 400, 3)`` ``uint8`` RGB image for ``render_mode="rgb_array"``, else None.
        """
        if self.render_mode != "rgb_array":
            return None
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from matplotlib.patches import Circle

        fig = Figure(figsize=(4, 4), dpi=100)
        canvas = FigureCanvasAgg(fig)
        ax = fig.add_axes((0.0, 0.0, 1.0, 1.0))
        b = self.bound
        grid = np.linspace(-b, b, 81)
        xx, yy = np.meshgrid(grid, grid)
        pts = np.stack([xx.ravel(), yy.ravel()], axis=1)
        sq = ((pts[:, None, :] - self.goals[None, :, :]) ** 2).sum(-1).min(axis=1)
        ax.contourf(xx, yy, -sq.reshape(xx.shape), levels=20, cmap="viridis", alpha=0.6)
        for g in self.goals:
            ax.add_patch(Circle((g[0], g[1]), self.goal_radius, color="red", alpha=0.8))
        if self.obstacle is not None:
            ax.plot(self.obstacle[:, 0], self.obstacle[:, 1], color="black", linewidth=4)
        path = self.path
        ax.plot(path[:, 0], path[:, 1], color="white", linewidth=1.5, marker=".", markersize=3)
        ax.plot([path[-1, 0]], [path[-1, 1]], marker="o", color="blue", markersize=8)
        ax.set_xlim(-b, b)
        ax.set_ylim(-b, b)
        ax.set_aspect("equal")
        ax.set_axis_off()
        canvas.draw()
        image = np.asarray(canvas.buffer_rgba())[..., :3].copy()
        return image.astype(np.uint8, copy=False)
