"""The engine: what makes every algorithm fast (DESIGN.md; issue 14).

Device-resident replay (:class:`TensorReplayBuffer`), the compiled update and acting
(:class:`Compilable`), device placement. Algorithms use it; it knows no algorithm and imports
nothing of maxbench but itself.
"""

from __future__ import annotations

from maxbench.engine.options import Compilable, check_compile_option
from maxbench.engine.replay import TensorReplayBuffer

__all__ = ["Compilable", "TensorReplayBuffer", "check_compile_option"]
