"""SAC on maxbench's engine (issue 14): SB3's SAC mathematics, device replay, a compiled step."""

from maxbench.algos.engine_sac.engine_sac import EngineSAC

__all__ = ["EngineSAC"]
