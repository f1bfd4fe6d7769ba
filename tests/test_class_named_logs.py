"""maxbench's algorithms name their TensorBoard run after their class, as SB3's own do."""

from __future__ import annotations

import pytest
from stable_baselines3 import SAC
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm

from maxbench.algos import BSAC, S2AC, SACNF, SQL, SoftGAC


@pytest.mark.parametrize("cls", [S2AC, SoftGAC, SQL, BSAC, SACNF])
def test_learn_passes_the_class_name_unless_told(cls, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[str] = []

    def base_learn(self, total_timesteps, callback=None, log_interval=4, tb_log_name="run",
                   reset_num_timesteps=True, progress_bar=False):  # fmt: skip
        seen.append(tb_log_name)
        return self

    monkeypatch.setattr(OffPolicyAlgorithm, "learn", base_learn)
    monkeypatch.setattr(SAC, "learn", base_learn)
    model = cls("MlpPolicy", "Pendulum-v1", learning_starts=10)
    assert model.learn(1) is model
    model.learn(1, tb_log_name="mine")
    assert seen == [cls.__name__, "mine"]
