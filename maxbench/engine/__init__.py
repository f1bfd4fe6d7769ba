"""The engine: what makes every algorithm fast (DESIGN.md; issue 14).

Device-resident replay (:class:`TensorReplayBuffer`), the compiled update and acting, device
placement. Algorithms use it; it knows no algorithm and imports nothing of maxbench.
"""

from __future__ import annotations

from maxbench.engine.replay import TensorReplayBuffer

__all__ = ["TensorReplayBuffer"]
