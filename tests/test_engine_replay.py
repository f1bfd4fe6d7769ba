"""TensorReplayBuffer (maxbench/engine/replay.py) against SB3's own ReplayBuffer.

The reference is SB3's ``ReplayBuffer`` fed the same transitions: stored contents array for array
(dtypes included), samples for the same indices, VecNormalize's normalisation. The sampler is
checked for uniformity with a chi-square test, for reproducibility under SB3's seeding, and the
pickle round trip through SB3's ``save_replay_buffer`` / ``load_replay_buffer``.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces
from scipy.stats import chisquare
from stable_baselines3 import SAC
from stable_baselines3.common.buffers import ReplayBuffer
from stable_baselines3.common.type_aliases import ReplayBufferSamples
from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

from maxbench.engine import TensorReplayBuffer

OBS_DIM = 3  # Pendulum-v1's, so that a VecNormalize of Pendulum can normalise the samples
N_ENVS = 2
SMALL_SAC = {"learning_starts": 50, "buffer_size": 500, "device": "cpu"}
SMALL_NET = {"net_arch": [32, 32]}


@pytest.fixture(autouse=True)
def one_torch_thread():
    """One torch thread, as maxbench's workers run (DESIGN.md, "Threads")."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def box(dtype: type, shape: tuple[int, ...]) -> spaces.Box:
    return spaces.Box(-10.0, 10.0, shape, dtype=dtype)


def transitions(n_steps: int, obs_space: spaces.Box, action_space: spaces.Space, seed: int):
    """``n_steps`` random vectorised steps of ``N_ENVS`` envs, with terminations and time limits.

    Observations are drawn as float64 and cast by the buffers (as SB3 stores them); env ``i`` is
    done at steps ``t`` with ``t % 3 == i``, a time-limit truncation when ``t`` is even (written
    in ``infos`` as gymnasium's wrappers do), so both kinds occur from the first two steps on.
    """
    rng = np.random.default_rng(seed)
    steps = []
    for t in range(n_steps):
        obs = rng.normal(size=(N_ENVS, *obs_space.shape)) * 3
        next_obs = rng.normal(size=(N_ENVS, *obs_space.shape)) * 3
        if isinstance(action_space, spaces.Discrete):
            action = rng.integers(0, action_space.n, size=(N_ENVS,))
        else:
            action = rng.uniform(-1, 1, size=(N_ENVS, *action_space.shape))
        reward = rng.normal(size=N_ENVS)
        done = np.arange(N_ENVS) == t % 3
        truncated = done & (t % 2 == 0)
        infos = [
            {"TimeLimit.truncated": bool(cut)} if end else {}
            for end, cut in zip(done, truncated, strict=True)
        ]
        steps.append((obs, next_obs, action, reward, done, infos))
    return steps


def twin_buffers(
    buffer_size: int,
    obs_space: spaces.Box,
    action_space: spaces.Space,
    handle_timeout_termination: bool = True,
) -> tuple[ReplayBuffer, TensorReplayBuffer]:
    kwargs = {
        "device": "cpu",
        "n_envs": N_ENVS,
        "handle_timeout_termination": handle_timeout_termination,
    }
    return (
        ReplayBuffer(buffer_size, obs_space, action_space, **kwargs),
        TensorReplayBuffer(buffer_size, obs_space, action_space, **kwargs),
    )


def assert_same_contents(reference: ReplayBuffer, ours: TensorReplayBuffer) -> None:
    """Every stored array equal, value for value and dtype for dtype, and the same position."""
    assert (ours.pos, ours.full, ours.size()) == (reference.pos, reference.full, reference.size())
    for name in ("observations", "next_observations", "actions", "rewards", "dones", "timeouts"):
        stored = getattr(ours, name)
        assert isinstance(stored, torch.Tensor), name
        np.testing.assert_array_equal(stored.cpu().numpy(), getattr(reference, name), err_msg=name)
        assert stored.cpu().numpy().dtype == getattr(reference, name).dtype, name


def assert_same_samples(a: ReplayBufferSamples, b: ReplayBufferSamples) -> None:
    for field in ("observations", "actions", "next_observations", "dones", "rewards"):
        x, y = getattr(a, field), getattr(b, field)
        assert x.dtype == y.dtype and x.shape == y.shape, field
        torch.testing.assert_close(x.cpu(), y.cpu(), rtol=0, atol=0, msg=field)


SPACE_CASES = {
    "float32": (box(np.float32, (OBS_DIM,)), box(np.float32, (2,))),
    "float64 (actions cast to float32)": (box(np.float64, (OBS_DIM,)), box(np.float64, (2,))),
    "uint8 images, discrete actions": (
        spaces.Box(0, 255, (2, 2, 3), dtype=np.uint8),
        spaces.Discrete(4),
    ),
}


@pytest.mark.parametrize("case", SPACE_CASES)
@pytest.mark.parametrize("n_steps", [5, 17], ids=["partial", "wrapped"])
@pytest.mark.parametrize("handle_timeout_termination", [True, False])
def test_contents_and_samples_equal_sb3(
    case: str, n_steps: int, handle_timeout_termination: bool
) -> None:
    """Fed the same steps (14 // 2 = 7 rows, 17 steps wrap around), both buffers hold the same
    arrays; for the same row and env indices they return the same samples."""
    obs_space, action_space = SPACE_CASES[case]
    reference, ours = twin_buffers(14, obs_space, action_space, handle_timeout_termination)
    for step in transitions(n_steps, obs_space, action_space, seed=1):
        reference.add(*step)
        ours.add(*step)
    assert_same_contents(reference, ours)
    if handle_timeout_termination:
        assert ours.timeouts.sum() > 0 and (ours.dones - ours.timeouts).sum() > 0  # both kinds

    batch_inds = np.random.default_rng(2).integers(0, ours.size(), size=64)
    np.random.seed(3)  # SB3 draws the env indices inside _get_samples, with numpy's global RNG
    expected = reference._get_samples(batch_inds)
    np.random.seed(3)
    env_indices = np.random.randint(0, high=N_ENVS, size=(len(batch_inds),))
    got = ours.samples_at(torch.as_tensor(batch_inds), torch.as_tensor(env_indices))
    assert_same_samples(got, expected)


def test_samples_normalised_through_vecnormalize_as_sb3() -> None:
    """With ``env`` a VecNormalize, observations and rewards are normalised as SB3 does."""
    obs_space, action_space = SPACE_CASES["float32"]
    reference, ours = twin_buffers(20, obs_space, action_space)
    for step in transitions(12, obs_space, action_space, seed=4):
        reference.add(*step)
        ours.add(*step)
    venv = VecNormalize(DummyVecEnv([lambda: gym.make("Pendulum-v1")]), clip_obs=2.0)
    venv.obs_rms.mean = np.array([0.5, -1.0, 2.0])
    venv.obs_rms.var = np.array([4.0, 0.25, 9.0])
    venv.ret_rms.var = np.array(6.0)

    batch_inds = np.arange(10)
    np.random.seed(5)
    expected = reference._get_samples(batch_inds, env=venv)
    np.random.seed(5)
    env_indices = np.random.randint(0, high=N_ENVS, size=(len(batch_inds),))
    got = ours.samples_at(batch_inds, env_indices, env=venv)
    assert_same_samples(got, expected)
    raw = ours.samples_at(batch_inds, env_indices)
    assert not torch.equal(raw.observations.double(), got.observations)  # it did normalise


def test_extend_and_reset_as_sb3() -> None:
    """SB3's ``extend`` (a stack of steps) and ``reset`` work on the tensor storage."""
    obs_space, action_space = SPACE_CASES["float32"]
    reference, ours = twin_buffers(10, obs_space, action_space)
    steps = transitions(8, obs_space, action_space, seed=6)
    stacked = [np.stack([step[i] for step in steps]) for i in range(5)]
    infos = [step[5] for step in steps]
    reference.extend(*stacked, infos)
    ours.extend(*stacked, infos)
    assert_same_contents(reference, ours)
    ours.reset()
    assert (ours.pos, ours.full, ours.size()) == (0, False, 0)
    with pytest.raises(ValueError, match="empty replay buffer"):
        ours.sample(4)


def index_buffer(buffer_rows: int, n_steps: int) -> TensorReplayBuffer:
    """A buffer whose observation says where it is: ``[step + 1, env]`` (0 = never written)."""
    buffer = TensorReplayBuffer(
        buffer_rows * N_ENVS, box(np.float32, (2,)), box(np.float32, (1,)), "cpu", N_ENVS
    )
    for step in range(n_steps):
        obs = np.array([[step + 1, env] for env in range(N_ENVS)], dtype=np.float32)
        buffer.add(obs, obs, np.zeros((N_ENVS, 1)), np.zeros(N_ENVS), np.zeros(N_ENVS), [{}] * 2)
    return buffer


@pytest.mark.parametrize(
    ("buffer_rows", "n_steps"), [(64, 50), (50, 73)], ids=["partial", "wrapped"]
)
def test_sampling_is_uniform_over_stored_transitions(buffer_rows: int, n_steps: int) -> None:
    """200 000 draws over the 50 rows × 2 envs stored: a chi-square test of uniformity over the
    100 (row, env) cells passes at level 1e-3, and no draw reaches past what was stored.

    The seed (numpy's global RNG, 0, from which the buffer seeds its generator) was fixed before
    the test was first run, not picked: the statistic is a real test, so a uniform sampler fails
    it for about one seed in a thousand and a biased one for almost every seed.
    """
    np.random.seed(0)
    buffer = index_buffer(buffer_rows, n_steps)
    draws = buffer.sample(200_000).observations
    steps = draws[:, 0].long() - 1
    envs = draws[:, 1].long()
    assert steps.min() >= 0 and steps.max() < n_steps  # never an unwritten row
    assert steps.min() >= n_steps - 50  # after wrap-around, never an overwritten step
    rows = steps % buffer_rows
    counts = torch.bincount(rows * N_ENVS + envs, minlength=buffer_rows * N_ENVS)
    stored = counts[: 50 * N_ENVS] if n_steps < buffer_rows else counts
    assert stored.sum() == 200_000 and len(stored) == 100
    assert chisquare(stored.numpy()).pvalue > 1e-3


def test_same_numpy_seed_same_batches_and_torch_stream_untouched() -> None:
    """Buffers built after the same ``np.random.seed`` sample the same batches, another seed
    samples others; building one draws nothing from torch's global RNG."""

    def batches(seed: int) -> list[torch.Tensor]:
        np.random.seed(seed)
        buffer = index_buffer(30, 30)
        return [buffer.sample(16).observations for _ in range(3)]

    first, again, other = batches(0), batches(0), batches(1)
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    assert not any(torch.equal(a, b) for a, b in zip(first, other, strict=True))

    torch.manual_seed(0)
    expected = torch.rand(4)
    torch.manual_seed(0)
    index_buffer(4, 2)
    assert torch.equal(torch.rand(4), expected)


def test_algorithms_with_the_same_seed_draw_the_same_indices() -> None:
    """SB3 seeds numpy before it builds the buffer: same seed, same generator; and the networks
    are initialised exactly as with SB3's own ReplayBuffer."""

    def sac(seed: int, buffer_class: type = TensorReplayBuffer) -> SAC:
        return SAC(
            "MlpPolicy",
            "Pendulum-v1",
            replay_buffer_class=buffer_class,
            seed=seed,
            policy_kwargs=SMALL_NET,
            **SMALL_SAC,
        )

    a, b, c = sac(0), sac(0), sac(1)
    assert torch.equal(a.replay_buffer._rng().get_state(), b.replay_buffer._rng().get_state())
    assert not torch.equal(a.replay_buffer._rng().get_state(), c.replay_buffer._rng().get_state())
    stock = sac(0, ReplayBuffer)
    for ours, theirs in zip(a.policy.parameters(), stock.policy.parameters(), strict=True):
        assert torch.equal(ours, theirs)


def test_save_load_replay_buffer_through_sb3(tmp_path: Path) -> None:
    """SB3's save_replay_buffer / load_replay_buffer: same contents, position and generator (the
    next batch is the one the original would have drawn), and the loaded model trains on."""
    model = SAC(
        "MlpPolicy",
        "Pendulum-v1",
        replay_buffer_class=TensorReplayBuffer,
        seed=0,
        policy_kwargs=SMALL_NET,
        **SMALL_SAC,
    ).learn(120)
    path = tmp_path / "buffer.pkl"
    model.save_replay_buffer(path)

    loaded = SAC(
        "MlpPolicy",
        "Pendulum-v1",
        replay_buffer_class=TensorReplayBuffer,
        seed=1,
        policy_kwargs=SMALL_NET,
        **{**SMALL_SAC, "learning_starts": 0},
    )
    loaded.load_replay_buffer(path)
    original, restored = model.replay_buffer, loaded.replay_buffer
    assert isinstance(restored, TensorReplayBuffer)
    assert (restored.pos, restored.full) == (original.pos, original.full) == (120, False)
    for name in ("observations", "next_observations", "actions", "rewards", "dones", "timeouts"):
        assert torch.equal(getattr(restored, name), getattr(original, name)), name
        assert getattr(restored, name).device == loaded.device
    assert_same_samples(restored.sample(32), original.sample(32))

    loaded.learn(20)
    assert restored.pos == 140 and loaded._n_updates > 0


def test_pickle_keeps_original_untouched_and_device_setter_moves() -> None:
    """Pickling leaves the original buffer as it was; setting ``device`` moves the storage."""
    np.random.seed(0)
    buffer = index_buffer(10, 7)
    copy = pickle.loads(pickle.dumps(buffer))
    copy.device = "cpu"
    assert copy.observations.device == torch.device("cpu") and copy.device == torch.device("cpu")
    for _ in range(2):
        assert_same_samples(copy.sample(8), buffer.sample(8))


def test_generator_saved_on_another_device_type_is_reseeded_deterministically() -> None:
    """A generator state saved from another device type (CPU and CUDA states differ) cannot be
    restored: the buffer seeds a new generator from a digest of it, the same for every load.
    Simulated here on the CPU by marking the saved state as a CUDA one (the CUDA test does it
    for real where a GPU is present)."""
    np.random.seed(0)
    saved = pickle.dumps(index_buffer(10, 7))
    loads = [pickle.loads(saved) for _ in range(3)]
    for buffer in loads[:2]:
        buffer._parked_generator = ("cuda", buffer._parked_generator[1])
    reseeded, again, restored = (buffer.sample(64) for buffer in loads)
    assert_same_samples(reseeded, again)
    assert not torch.equal(reseeded.observations, restored.observations)  # restored continues


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"optimize_memory_usage": True}, "optimize_memory_usage"),
        (
            {"observation_space": spaces.Dict({"x": box(np.float32, (2,))})},
            "Box observation spaces only, got Dict",
        ),
        ({"observation_space": spaces.Discrete(3)}, "Box observation spaces only, got Discrete"),
    ],
    ids=["optimize_memory_usage", "dict", "discrete"],
)
def test_rejected_with_a_clear_message(kwargs: dict, message: str) -> None:
    arguments = {
        "buffer_size": 10,
        "observation_space": box(np.float32, (2,)),
        "action_space": box(np.float32, (1,)),
        "device": "cpu",
        "handle_timeout_termination": False,
        **kwargs,
    }
    with pytest.raises(ValueError, match=message):
        TensorReplayBuffer(**arguments)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_on_cuda() -> None:
    """On CUDA: storage and batches on the device, equal to a CPU buffer's at the same indices;
    a pickle round trip back onto CUDA continues the generator's stream exactly, one loaded onto
    the CPU gets a generator seeded deterministically from the saved state."""
    obs_space, action_space = SPACE_CASES["float32"]
    kwargs = {"n_envs": N_ENVS}
    on_cpu = TensorReplayBuffer(14, obs_space, action_space, device="cpu", **kwargs)
    on_cuda = TensorReplayBuffer(14, obs_space, action_space, device="cuda", **kwargs)
    for step in transitions(17, obs_space, action_space, seed=7):
        on_cpu.add(*step)
        on_cuda.add(*step)
    assert on_cuda.observations.is_cuda
    batch = on_cuda.sample(64)
    assert all(t.is_cuda for t in batch[:5])
    rows, envs = torch.arange(7).repeat(2), torch.arange(2).repeat_interleave(7)
    assert_same_samples(on_cuda.samples_at(rows.cuda(), envs.cuda()), on_cpu.samples_at(rows, envs))

    saved = pickle.dumps(on_cuda)
    back = pickle.loads(saved)
    back.device = torch.device("cuda")
    assert back.observations.is_cuda
    assert_same_samples(back.sample(32), on_cuda.sample(32))

    cpu_a, cpu_b = pickle.loads(saved), pickle.loads(saved)
    assert_same_samples(cpu_a.sample(32), cpu_b.sample(32))
    assert cpu_a.observations.device == torch.device("cpu")
