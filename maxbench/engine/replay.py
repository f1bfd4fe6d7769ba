"""A device-resident replay buffer: SB3's ``ReplayBuffer`` with torch storage (issue 14).

:class:`TensorReplayBuffer` is a drop-in ``replay_buffer_class`` for any SB3 off-policy algorithm
(``SAC(..., replay_buffer_class=TensorReplayBuffer)``). It keeps SB3's semantics — the same
fields, shapes ``(buffer_size, n_envs, ...)``, dtype rules, ``TimeLimit.truncated`` handling and
``dones * (1 - timeouts)`` — but the storage lives on the algorithm's device and the indices of a
batch are drawn there, so a gradient step reads its batch without a host round trip:

* ``add`` makes one host → device copy per field (the conversion to the stored dtype is done on
  the host first, as SB3's numpy assignment does it);
* ``sample`` draws the row and env indices with ``torch.randint`` on the device, from the buffer's
  own ``torch.Generator``, and gathers the batch there;
* with ``env`` (a ``VecNormalize``) the gathered batch makes one round trip through SB3's numpy
  normalisation (``env.normalize_obs`` / ``env.normalize_reward``) — the normalisation statistics
  live on the host, so that path is SB3's own and as slow as SB3's.

Seeding. The generator is seeded at construction with one draw from numpy's global RNG,
``np.random.randint(2**62)``. SB3 seeds numpy (and torch) through ``set_random_seed(seed)``
before it builds the buffer, so two algorithms built with the same seed sample the same batches.
numpy rather than torch is drawn from so that torch's global stream — the networks'
initialisation, built after the buffer — stays what it is with SB3's own ``ReplayBuffer``
(which itself draws its indices from numpy's global RNG).

Pickling (SB3's ``save_replay_buffer`` / ``load_replay_buffer``). The storage is pickled on the
CPU and the generator as its state; an unpickled buffer sits on the CPU. SB3's
``load_replay_buffer`` then sets ``buffer.device = model.device``: the ``device`` setter moves the
storage there. The generator is rebuilt on the buffer's device at the next draw: on a device of
the type it was saved from, from its saved state (the stream continues exactly); on another type
(CPU and CUDA generators have different states), seeded from a SHA-256 digest of the saved state,
deterministic but a different stream.

Not supported (``ValueError``): observation spaces other than ``Box`` (SB3's ``DictReplayBuffer``
covers ``Dict``) and SB3's ``optimize_memory_usage`` trick.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.buffers import BaseBuffer, ReplayBuffer
from stable_baselines3.common.type_aliases import ReplayBufferSamples
from stable_baselines3.common.vec_env import VecNormalize

__all__ = ["TensorReplayBuffer"]

#: The tensors that hold the transitions, each shaped ``(buffer_size, n_envs, ...)``.
STORAGE_FIELDS = ("observations", "next_observations", "actions", "rewards", "dones", "timeouts")

#: Seeds are drawn below this bound (``torch.Generator.manual_seed`` takes 64-bit seeds).
SEED_BOUND = 2**62


def torch_dtype(np_dtype: np.typing.DTypeLike) -> th.dtype:
    """The torch dtype that holds numpy's ``np_dtype`` (``float32`` -> ``torch.float32``, ...)."""
    return th.from_numpy(np.empty(0, dtype=np_dtype)).dtype


def host_tensor(value: Any, np_dtype: np.typing.DTypeLike) -> th.Tensor:
    """``value`` as a CPU tensor of ``np_dtype``, converted by numpy as SB3's assignment does."""
    array = np.asarray(value, dtype=np_dtype)
    if not array.flags.writeable or not array.flags.c_contiguous:
        array = np.array(array, dtype=np_dtype, order="C")
    return th.from_numpy(array)


def seed_from_state(state: th.Tensor) -> int:
    """A seed below :data:`SEED_BOUND` derived from a generator's state (deterministic)."""
    digest = hashlib.sha256(state.cpu().numpy().tobytes()).digest()
    return int.from_bytes(digest[:8], "little") % SEED_BOUND


def seeded_generator(device: th.device, seed: int) -> th.Generator:
    """A ``torch.Generator`` on ``device`` seeded with ``seed``."""
    generator = th.Generator(device=device)
    generator.manual_seed(seed)
    return generator


def check_spaces(observation_space: spaces.Space, optimize_memory_usage: bool) -> None:
    """Reject what :class:`TensorReplayBuffer` does not store, with a message that says why."""
    if optimize_memory_usage:
        raise ValueError(
            "TensorReplayBuffer does not support optimize_memory_usage=True (SB3's trick of "
            "storing next observations in the observations array); pass "
            "optimize_memory_usage=False or use SB3's ReplayBuffer"
        )
    if not isinstance(observation_space, spaces.Box):
        raise ValueError(
            "TensorReplayBuffer stores Box observation spaces only, got "
            f"{type(observation_space).__name__} ({observation_space}); use SB3's "
            "DictReplayBuffer for Dict observations or ReplayBuffer for the others"
        )


class TensorReplayBuffer(ReplayBuffer):
    """SB3's ``ReplayBuffer`` with its storage as torch tensors on ``device`` (module docstring).

    The constructor takes SB3's arguments. ``buffer_size`` is divided by ``n_envs`` as SB3 does;
    observations are stored in ``observation_space.dtype``, actions in ``action_space.dtype``
    with ``float64`` made ``float32`` (SB3's ``_maybe_cast_dtype``), rewards, dones and timeouts
    in ``float32``.
    """

    observations: th.Tensor  # type: ignore[assignment]
    next_observations: th.Tensor  # type: ignore[assignment]
    actions: th.Tensor  # type: ignore[assignment]
    rewards: th.Tensor  # type: ignore[assignment]
    dones: th.Tensor  # type: ignore[assignment]
    timeouts: th.Tensor  # type: ignore[assignment]

    def __init__(
        self,
        buffer_size: int,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        device: th.device | str = "auto",
        n_envs: int = 1,
        optimize_memory_usage: bool = False,
        handle_timeout_termination: bool = True,
    ) -> None:
        check_spaces(observation_space, optimize_memory_usage)
        # SB3's ReplayBuffer.__init__ would allocate numpy arrays: only the common fields here.
        BaseBuffer.__init__(
            self, buffer_size, observation_space, action_space, device, n_envs=n_envs
        )
        self.buffer_size = max(buffer_size // n_envs, 1)
        self.optimize_memory_usage = False
        self.handle_timeout_termination = handle_timeout_termination
        self.observation_dtype = np.dtype(observation_space.dtype)
        self.action_dtype = np.dtype(self._maybe_cast_dtype(action_space.dtype))
        self._allocate()
        self._generator: th.Generator | None = seeded_generator(
            self.device, int(np.random.randint(SEED_BOUND))
        )
        self._parked_generator: tuple[str, th.Tensor] | None = None

    def _allocate(self) -> None:
        """Zeroed storage on the device, shaped and typed as SB3's arrays."""
        rows = (self.buffer_size, self.n_envs)
        obs_dtype = torch_dtype(self.observation_dtype)

        def zeros(*shape: int, dtype: th.dtype = th.float32) -> th.Tensor:
            return th.zeros(shape, dtype=dtype, device=self.device)

        self.observations = zeros(*rows, *self.obs_shape, dtype=obs_dtype)
        self.next_observations = zeros(*rows, *self.obs_shape, dtype=obs_dtype)
        self.actions = zeros(*rows, self.action_dim, dtype=torch_dtype(self.action_dtype))
        self.rewards = zeros(*rows)
        self.dones = zeros(*rows)
        self.timeouts = zeros(*rows)

    # -- device -----------------------------------------------------------------------------

    @property
    def device(self) -> th.device:  # type: ignore[override]
        """Where the storage lives and the indices are drawn."""
        return self._device

    @device.setter
    def device(self, value: th.device | str) -> None:
        """Move the storage to ``value`` (SB3's ``load_replay_buffer`` sets it after loading)."""
        self._device = th.device(value)
        if "observations" not in self.__dict__:  # BaseBuffer.__init__, before _allocate
            return
        for name in STORAGE_FIELDS:
            setattr(self, name, getattr(self, name).to(self._device))
        self._park_generator()

    def _park_generator(self) -> None:
        """Keep the generator as (device type, state); :meth:`_rng` rebuilds it where needed."""
        if self._generator is not None:
            self._parked_generator = (self._generator.device.type, self._generator.get_state())
            self._generator = None

    def _rng(self) -> th.Generator:
        """The buffer's generator on its device, rebuilt from a parked state if need be."""
        if self._generator is None:
            assert self._parked_generator is not None, "the generator has no state"
            device_type, state = self._parked_generator
            if device_type == self._device.type:
                self._generator = th.Generator(device=self._device)
                self._generator.set_state(state)
            else:
                self._generator = seeded_generator(self._device, seed_from_state(state))
            self._parked_generator = None
        return self._generator

    # -- pickling (save_replay_buffer / load_replay_buffer) ----------------------------------

    def __getstate__(self) -> dict[str, Any]:
        """The buffer with its storage on the CPU and its generator as a saved state."""
        generator = self._generator
        parked = self._parked_generator
        if generator is not None:
            parked = (generator.device.type, generator.get_state())
        state = self.__dict__.copy()
        state.update({name: getattr(self, name).cpu() for name in STORAGE_FIELDS})
        state.update(_generator=None, _parked_generator=parked, _device=th.device("cpu"))
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Restore a pickled buffer on the CPU; setting ``device`` moves it (module docstring)."""
        self.__dict__.update(state)

    # -- adding -----------------------------------------------------------------------------

    def add(
        self,
        obs: np.ndarray,
        next_obs: np.ndarray,
        action: np.ndarray,
        reward: np.ndarray,
        done: np.ndarray,
        infos: list[dict[str, Any]],
    ) -> None:
        """Store one step of ``n_envs`` transitions at ``pos`` (SB3's ``ReplayBuffer.add``)."""
        action = np.asarray(action).reshape((self.n_envs, self.action_dim))
        row = self.pos
        self.observations[row].copy_(host_tensor(obs, self.observation_dtype))
        self.next_observations[row].copy_(host_tensor(next_obs, self.observation_dtype))
        self.actions[row].copy_(host_tensor(action, self.action_dtype))
        self.rewards[row].copy_(host_tensor(reward, np.float32))
        self.dones[row].copy_(host_tensor(done, np.float32))
        if self.handle_timeout_termination:
            truncated = [info.get("TimeLimit.truncated", False) for info in infos]
            self.timeouts[row].copy_(host_tensor(truncated, np.float32))
        self.pos += 1
        if self.pos == self.buffer_size:
            self.full = True
            self.pos = 0

    # -- sampling ---------------------------------------------------------------------------

    def sample(self, batch_size: int, env: VecNormalize | None = None) -> ReplayBufferSamples:
        """``batch_size`` transitions drawn uniformly with replacement, on the device.

        Rows are drawn from ``[0, size())`` and then envs from ``[0, n_envs)``, both with
        ``torch.randint`` from the buffer's generator (SB3 draws the same two with numpy).
        """
        size = self.size()
        if size == 0:
            raise ValueError("cannot sample from an empty replay buffer: add transitions first")
        batch_inds = th.randint(size, (batch_size,), device=self.device, generator=self._rng())
        return self._get_samples(batch_inds, env=env)

    def _get_samples(  # type: ignore[override]
        self, batch_inds: np.ndarray | th.Tensor, env: VecNormalize | None = None
    ) -> ReplayBufferSamples:
        """SB3's ``_get_samples``: the env of each row is drawn here, on the device."""
        batch_inds = th.as_tensor(batch_inds, device=self.device)
        env_indices = th.randint(
            self.n_envs, (len(batch_inds),), device=self.device, generator=self._rng()
        )
        return self.samples_at(batch_inds, env_indices, env=env)

    def samples_at(
        self,
        batch_inds: np.ndarray | th.Tensor,
        env_indices: np.ndarray | th.Tensor,
        env: VecNormalize | None = None,
    ) -> ReplayBufferSamples:
        """The transitions at rows ``batch_inds`` of envs ``env_indices`` (no randomness).

        What SB3's ``_get_samples`` returns for the same indices: ``dones`` are
        ``dones * (1 - timeouts)`` (a time-limit truncation is not a termination), ``dones`` and
        ``rewards`` shaped ``(batch, 1)``. With ``env``, observations and rewards go through its
        numpy normalisation (:meth:`_normalized`).
        """
        rows = th.as_tensor(batch_inds, device=self.device)
        envs = th.as_tensor(env_indices, device=self.device)
        observations = self.observations[rows, envs]
        next_observations = self.next_observations[rows, envs]
        dones = self.dones[rows, envs] * (1 - self.timeouts[rows, envs])
        rewards = self.rewards[rows, envs].reshape(-1, 1)
        if env is not None:
            observations, next_observations, rewards = self._normalized(
                observations, next_observations, rewards, env
            )
        return ReplayBufferSamples(
            observations=observations,
            actions=self.actions[rows, envs],
            next_observations=next_observations,
            dones=dones.reshape(-1, 1),
            rewards=rewards,
        )

    def _normalized(
        self,
        observations: th.Tensor,
        next_observations: th.Tensor,
        rewards: th.Tensor,
        env: VecNormalize,
    ) -> tuple[th.Tensor, th.Tensor, th.Tensor]:
        """SB3's numpy normalisation of a gathered batch: one device round trip per field."""
        normalized_obs = self._normalize_obs(observations.cpu().numpy(), env)
        normalized_next_obs = self._normalize_obs(next_observations.cpu().numpy(), env)
        normalized_rewards = self._normalize_reward(rewards.cpu().numpy(), env)
        return (
            self.to_torch(normalized_obs),  # type: ignore[arg-type]
            self.to_torch(normalized_next_obs),  # type: ignore[arg-type]
            self.to_torch(normalized_rewards),
        )
