"""maxbench's algorithms, each an SB3 algorithm in its own sub-package.

``from maxbench.algos import S2AC`` works, but the sub-packages (and torch) are imported only
when a name is first used, so ``import maxbench.algos`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "S2AC": "maxbench.algos.s2ac",
    "BSAC": "maxbench.algos.bsac",
    "SoftGAC": "maxbench.algos.softgac",
    "SQL": "maxbench.algos.sql",
    "SACNF": "maxbench.algos.sacnf",
}
__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'maxbench.algos' has no attribute '{name}'")
