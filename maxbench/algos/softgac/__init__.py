"""SoftGAC: generative actor-critic with soft bridge policies (arXiv 2605.08733; spec §3).

``SoftGAC`` is a stable-baselines3 off-policy algorithm; ``SoftGACPolicy`` (alias ``MlpPolicy``)
its policy; :mod:`.bridge` the bridge actor's mathematics (paths, reference, control energy).
"""

from maxbench.algos.softgac.bridge import (
    SIGMA_SQ_EPS,
    BridgeNetwork,
    BridgePath,
    control_energy,
    per_step_control_energy,
    reference_transition,
    sample_base_latent,
    sample_bridge_noise,
)
from maxbench.algos.softgac.policies import BridgeActor, MlpPolicy, SoftGACPolicy
from maxbench.algos.softgac.softgac import SoftGAC

__all__ = [
    "SIGMA_SQ_EPS",
    "BridgeActor",
    "BridgeNetwork",
    "BridgePath",
    "MlpPolicy",
    "SoftGAC",
    "SoftGACPolicy",
    "control_energy",
    "per_step_control_energy",
    "reference_transition",
    "sample_base_latent",
    "sample_bridge_noise",
]
