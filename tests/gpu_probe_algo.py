"""An SB3 algorithm that records which GPUs its process was shown (tests of GPU spreading)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from stable_baselines3 import SAC

#: Where each probe writes ``{"visible": CUDA_VISIBLE_DEVICES}`` (one file per seed).
PROBE_FOLDER_VARIABLE = "MAXBENCH_TEST_GPU_PROBE"


class GpuProbeSAC(SAC):
    """SAC that writes its process's ``CUDA_VISIBLE_DEVICES`` when it is built."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        folder = Path(os.environ[PROBE_FOLDER_VARIABLE])
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        (folder / f"seed_{self.seed}.json").write_text(json.dumps({"visible": visible}))
