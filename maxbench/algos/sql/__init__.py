"""Soft Q-Learning (Haarnoja et al. 2017), a baseline of the S2AC paper (spec §4)."""

from maxbench.algos.sql.policies import (
    ACTION_SELECTIONS,
    SamplerActor,
    SQLCnnPolicy,
    SQLMultiInputPolicy,
    SQLPolicy,
    min_q_over_particles,
    repeat_observations,
)
from maxbench.algos.sql.sql import (
    SQL,
    STEIN_DRAWS,
    VALUE_ESTIMATORS,
    amortized_svgd_loss,
    importance_sampled_soft_value,
    sampler_soft_value,
    uniform_box_actions,
)

__all__ = [
    "ACTION_SELECTIONS",
    "SQL",
    "SQLCnnPolicy",
    "SQLMultiInputPolicy",
    "SQLPolicy",
    "STEIN_DRAWS",
    "SamplerActor",
    "VALUE_ESTIMATORS",
    "amortized_svgd_loss",
    "importance_sampled_soft_value",
    "min_q_over_particles",
    "repeat_observations",
    "sampler_soft_value",
    "uniform_box_actions",
]
