"""SAC-NF: SAC with a normalizing-flow policy (Mazoure et al. 2020), an S2AC paper baseline."""

from maxbench.algos.sacnf.flows import FLOW_TYPES, ConditionalFlow
from maxbench.algos.sacnf.sacnf import (
    SACNF,
    FlowActor,
    SACNFCnnPolicy,
    SACNFMultiInputPolicy,
    SACNFPolicy,
)

__all__ = [
    "FLOW_TYPES",
    "SACNF",
    "ConditionalFlow",
    "FlowActor",
    "SACNFCnnPolicy",
    "SACNFMultiInputPolicy",
    "SACNFPolicy",
]
