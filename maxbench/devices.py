"""Device names a user may give (suites' ``device`` key, ``maxbench latency --device``), checked
against what this machine has (issue 14).

SB3 silently trains on the CPU when ``cuda`` is asked for and torch sees no GPU; maxbench refuses
such a request instead, before anything runs.
"""

from __future__ import annotations

import re

__all__ = ["DEVICE_PATTERN", "device_problem"]

#: What a device option accepts: torch's device names for a process's model (``auto`` is CUDA
#: when torch sees a GPU, else the CPU).
DEVICE_PATTERN = re.compile(r"(auto|cpu|cuda(:[0-9]{1,3})?)")


def device_problem(device: str, instead: str = "use auto or cpu") -> str | None:
    """Why ``device`` cannot be used on this machine, or None (``auto`` and ``cpu`` always can);
    ``instead`` is the advice that ends the message."""
    if not device.startswith("cuda"):
        return None
    import torch

    if not torch.cuda.is_available():
        return f"device {device}: torch sees no CUDA GPU on this machine ({instead})"
    index = int(device.partition(":")[2] or 0)
    if index >= torch.cuda.device_count():
        count = torch.cuda.device_count()
        return f"device {device}: this machine has {count} CUDA GPU(s) ({instead})"
    return None
