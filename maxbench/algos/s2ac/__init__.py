"""S2AC, Stein Soft Actor-Critic (arXiv 2405.00987), as a stable-baselines3 algorithm.

``S2AC("MlpPolicy", env)`` is S2AC(phi, theta); ``init="fixed"`` gives S2AC(phi) and
``amortized=True`` S2AC(phi, theta, psi) (spec §1). The CLI commands ``maxbench entropy`` and
``maxbench multigoal`` live in :mod:`maxbench.algos.s2ac.commands`.
"""

from maxbench.algos.s2ac.policies import AmortizedSampler, InitialGaussian, MlpPolicy, S2ACPolicy
from maxbench.algos.s2ac.s2ac import S2AC

__all__ = ["S2AC", "AmortizedSampler", "InitialGaussian", "MlpPolicy", "S2ACPolicy"]
