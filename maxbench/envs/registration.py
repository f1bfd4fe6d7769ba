"""Registration of maxbench's gymnasium environments.

The multi-goal toy tasks follow the S2AC paper (arXiv 2405.00987), Sec. 5.1 / App. multi-goal;
authors' STAC/envs. All use a 30-step ``TimeLimit`` (truncation, not termination):

* ``MultiGoal-v0``: goals (5,0) (-5,0) (0,5) (0,-5), no obstacle;
* ``MultiGoalObstacle-v0``: same goals, obstacle segment (-1.5,3)--(1.5,3);
* ``MultiGoalMaxEnt-v0``: goals (5,0) (-4,3) (-4,-3), no obstacle;
* ``MultiGoalMaxEntObstacle-v0``: same goals as MaxEnt, obstacle segment (-2,0)--(0,2).
"""

from __future__ import annotations

from typing import Any

from gymnasium.envs.registration import register, registry

from maxbench.envs.multigoal import (
    FOUR_GOALS,
    FOUR_GOALS_OBSTACLE,
    MAXENT_GOALS,
    MAXENT_OBSTACLE,
)

__all__ = ["MULTIGOAL_ENV_IDS", "MULTIGOAL_MAX_EPISODE_STEPS", "register_envs"]

#: Episode length of every multi-goal task.
MULTIGOAL_MAX_EPISODE_STEPS = 30

_MULTIGOAL_ENTRY_POINT = "maxbench.envs.multigoal:MultiGoalEnv"

_MULTIGOAL_KWARGS: dict[str, dict[str, Any]] = {
    "MultiGoal-v0": {"goals": FOUR_GOALS, "obstacle": None},
    "MultiGoalObstacle-v0": {"goals": FOUR_GOALS, "obstacle": FOUR_GOALS_OBSTACLE},
    "MultiGoalMaxEnt-v0": {"goals": MAXENT_GOALS, "obstacle": None},
    "MultiGoalMaxEntObstacle-v0": {"goals": MAXENT_GOALS, "obstacle": MAXENT_OBSTACLE},
}

#: The ids registered by :func:`register_envs`.
MULTIGOAL_ENV_IDS: tuple[str, ...] = tuple(_MULTIGOAL_KWARGS)


def register_envs() -> None:
    """Register maxbench's environments with gymnasium.

    Idempotent: ids already present in ``gymnasium.envs.registry`` are skipped, so calling this
    more than once neither warns nor fails.
    """
    for env_id, kwargs in _MULTIGOAL_KWARGS.items():
        if env_id in registry:
            continue
        register(
            id=env_id,
            entry_point=_MULTIGOAL_ENTRY_POINT,
            max_episode_steps=MULTIGOAL_MAX_EPISODE_STEPS,
            kwargs=dict(kwargs),
        )
