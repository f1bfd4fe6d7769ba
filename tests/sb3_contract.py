"""The stable-baselines3 contract that every maxbench algorithm must keep (DESIGN.md).

Subclass :class:`SB3Contract` in an algorithm's test file, set ``algorithm`` and small
``hyperparams`` (tiny networks, early ``learning_starts``), and pytest runs every check below:

    class TestS2ACContract(SB3Contract):
        algorithm = S2AC
        hyperparams = {"learning_starts": 32, "batch_size": 16, ...}
        logger_keys = ("train/actor_loss", "train/critic_loss", "train/ent_coef")

The checks: learn then predict for single and batched observations, deterministic and not;
save/load gives bit-identical predictions and parameters; load takes the constructor's keyword
arguments; get/set_parameters; replay-buffer save/load; two envs in a VecEnv; callbacks (called,
and able to stop training); SB3's progress bar; SB3's logger keys; same seed, same result.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.env_util import make_vec_env


class _CountingCallback(BaseCallback):
    def __init__(self, stop_after: int | None = None) -> None:
        super().__init__()
        self.calls = 0
        self.stop_after = stop_after
        self.started = self.ended = False

    def _on_training_start(self) -> None:
        self.started = True

    def _on_training_end(self) -> None:
        self.ended = True

    def _on_step(self) -> bool:
        self.calls += 1
        return self.stop_after is None or self.calls < self.stop_after


class SB3Contract:
    """Mix-in test class; see the module docstring."""

    algorithm: ClassVar[type]
    hyperparams: ClassVar[dict[str, Any]] = {}
    env_id: ClassVar[str] = "Pendulum-v1"
    learn_steps: ClassVar[int] = 64
    logger_keys: ClassVar[tuple[str, ...]] = ("train/actor_loss", "train/critic_loss")
    policy: ClassVar[str] = "MlpPolicy"

    # -- helpers ------------------------------------------------------------------------------
    def make(self, env: Any = None, seed: int = 0, **extra: Any) -> Any:
        return self.algorithm(
            self.policy, env or self.env_id, seed=seed, **{**self.hyperparams, **extra}
        )

    def trained(self, **extra: Any) -> Any:
        model = self.make(**extra)
        model.learn(self.learn_steps)
        return model

    def observations(self, model: Any, n: int) -> np.ndarray:
        space = model.observation_space
        space.seed(123)
        return np.stack([space.sample() for _ in range(n)])

    # -- the contract ---------------------------------------------------------------------------
    def test_predict_single_and_batched(self) -> None:
        model = self.trained()
        batch = self.observations(model, 5)
        for deterministic in (True, False):
            single, state = model.predict(batch[0], deterministic=deterministic)
            assert state is None
            assert single.shape == model.action_space.shape
            assert model.action_space.contains(single.astype(model.action_space.dtype))
            many, _ = model.predict(batch, deterministic=deterministic)
            assert many.shape == (5, *model.action_space.shape)
        first, _ = model.predict(batch, deterministic=True)
        again, _ = model.predict(batch, deterministic=True)
        np.testing.assert_array_equal(first, again)
        single, _ = model.predict(batch[2], deterministic=True)
        np.testing.assert_allclose(single, first[2], rtol=1e-5, atol=1e-6)

    def test_save_load_identical_predictions(self, tmp_path: Path) -> None:
        model = self.trained()
        batch = self.observations(model, 8)
        before, _ = model.predict(batch, deterministic=True)
        model.save(tmp_path / "model.zip")
        loaded = self.algorithm.load(tmp_path / "model.zip", device="cpu")
        after, _ = loaded.predict(batch, deterministic=True)
        np.testing.assert_array_equal(before, after)
        for name, tensors in model.get_parameters().items():
            for key, value in tensors.items():
                other = loaded.get_parameters()[name][key]
                if isinstance(value, torch.Tensor):
                    assert torch.equal(value, other), f"{name}.{key} differs after load"
        assert loaded.num_timesteps == model.num_timesteps
        # A loaded model keeps learning.
        loaded.set_env(make_vec_env(self.env_id, n_envs=1, seed=1))
        loaded.learn(self.learn_steps, reset_num_timesteps=False)

    def test_load_takes_the_constructor_kwargs(self, tmp_path: Path) -> None:
        """``load(path, env=env, **kwargs)`` with the constructor's own keyword arguments, as
        SB3's ``test_save_load_env_cnn`` does: the saved ``policy_kwargs`` equal the given ones."""
        kwargs = copy.deepcopy(dict(self.hyperparams))
        model = self.algorithm(self.policy, self.env_id, seed=0, **kwargs)
        batch = self.observations(model, 4)
        before, _ = model.predict(batch, deterministic=True)
        model.save(tmp_path / "model.zip")
        env = make_vec_env(self.env_id, n_envs=1, seed=1)
        loaded = self.algorithm.load(tmp_path / "model.zip", env=env, device="cpu", **kwargs)
        np.testing.assert_array_equal(loaded.predict(batch, deterministic=True)[0], before)

    def test_get_and_set_parameters(self) -> None:
        source, target = self.trained(), self.make(seed=1)
        batch = self.observations(source, 4)
        target.set_parameters(source.get_parameters(), exact_match=True)
        np.testing.assert_array_equal(
            source.predict(batch, deterministic=True)[0],
            target.predict(batch, deterministic=True)[0],
        )

    def test_replay_buffer_save_load(self, tmp_path: Path) -> None:
        model = self.trained()
        if getattr(model, "replay_buffer", None) is None:
            return  # on-policy algorithms have none
        model.save_replay_buffer(tmp_path / "buffer.pkl")
        other = self.make(seed=1)
        other.load_replay_buffer(tmp_path / "buffer.pkl")
        assert other.replay_buffer.size() == model.replay_buffer.size() == self.learn_steps
        np.testing.assert_array_equal(
            other.replay_buffer.observations, model.replay_buffer.observations
        )
        np.testing.assert_array_equal(other.replay_buffer.actions, model.replay_buffer.actions)

    def test_two_envs(self) -> None:
        env = make_vec_env(self.env_id, n_envs=2, seed=0)
        model = self.make(env=env)
        model.learn(self.learn_steps)
        assert model.num_timesteps >= self.learn_steps
        actions, _ = model.predict(env.reset(), deterministic=False)
        assert actions.shape == (2, *model.action_space.shape)

    def test_callbacks_are_called_and_can_stop_training(self) -> None:
        counting = _CountingCallback()
        model = self.make()
        model.learn(self.learn_steps, callback=counting)
        assert counting.started and counting.ended
        assert counting.calls == self.learn_steps
        stopping = _CountingCallback(stop_after=10)
        model = self.make()
        model.learn(self.learn_steps, callback=stopping)
        assert stopping.calls == 10
        assert model.num_timesteps == 10

    def test_progress_bar(self) -> None:
        model = self.make()
        model.learn(self.learn_steps, progress_bar=True)
        assert model.num_timesteps == self.learn_steps

    def test_logger_keys(self) -> None:
        model = self.make()
        recorded: dict[str, Any] = {}
        model.learn(self.learn_steps)
        # SB3's loggers clear their values after each dump: capture them from a fresh train step.
        original = model.logger.record

        def record(key: str, value: Any, *args: Any, **kwargs: Any) -> None:
            recorded[key] = value
            original(key, value, *args, **kwargs)

        model.logger.record = record  # type: ignore[method-assign]
        model.train(gradient_steps=1, batch_size=model.batch_size)
        missing = [key for key in self.logger_keys if key not in recorded]
        assert not missing, f"logger keys missing: {missing}; recorded: {sorted(recorded)}"
        assert all(np.isfinite(float(recorded[key])) for key in self.logger_keys)

    def test_same_seed_same_result(self) -> None:
        first, second = self.trained(), self.trained()
        batch = self.observations(first, 6)
        np.testing.assert_array_equal(
            first.predict(batch, deterministic=True)[0],
            second.predict(batch, deterministic=True)[0],
        )
