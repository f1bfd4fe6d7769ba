"""Bidirectional SAC (arXiv 2506.01639): a documented reconstruction (spec ``algorithms.md`` §2).

* :mod:`~maxbench.algos.bsac.bsac`: the algorithm, :class:`BSAC` (a subclass of SB3's SAC);
* :mod:`~maxbench.algos.bsac.policies`: SAC's policy plus the VDN-a network;
* :mod:`~maxbench.algos.bsac.vdn`: the VDN-a value-decomposition network;
* :mod:`~maxbench.algos.bsac.projection`: quadrature moments of the Boltzmann marginals and the
  Gaussian KL of the forward step.
"""

from maxbench.algos.bsac.bsac import BSAC
from maxbench.algos.bsac.policies import BSACCnnPolicy, BSACMultiInputPolicy, BSACPolicy
from maxbench.algos.bsac.projection import (
    QuadratureGrid,
    boltzmann_marginal_moments,
    forward_kl_loss,
    gaussian_kl,
    quadrature_grid,
)
from maxbench.algos.bsac.vdn import ValueDecompositionNetwork, chebyshev_basis

__all__ = [
    "BSAC",
    "BSACCnnPolicy",
    "BSACMultiInputPolicy",
    "BSACPolicy",
    "QuadratureGrid",
    "ValueDecompositionNetwork",
    "boltzmann_marginal_moments",
    "chebyshev_basis",
    "forward_kl_loss",
    "gaussian_kl",
    "quadrature_grid",
]
