"""S2AC, Stein Soft Actor-Critic (arXiv 2405.00987), as a stable-baselines3 algorithm.

``S2AC("MlpPolicy", env)`` is S2AC(phi, theta); ``init="fixed"`` gives S2AC(phi) and
``amortized=True`` S2AC(phi, theta, psi) (spec §1). The paper's reproductions (the entropy check,
the multi-goal figures; ``maxbench entropy`` and ``maxbench multigoal``) live in the layer above,
:mod:`maxbench.repro`: this package imports nothing of the CLI, suites, reports or results.
"""

from maxbench.algos.s2ac.policies import AmortizedSampler, InitialGaussian, MlpPolicy, S2ACPolicy
from maxbench.algos.s2ac.s2ac import S2AC

__all__ = ["S2AC", "AmortizedSampler", "InitialGaussian", "MlpPolicy", "S2ACPolicy"]
