"""Recorded multi-goal test episodes and the ledger's Fig. 7 / 12 / 16 (S2AC §5.1).

The recorded episodes are compared with episodes computed independently here, by loading the
cell's model and calling ``run_episodes`` with the seeding of ``evaluate_agents``; the figures'
bars with goal shares counted by hand.
"""

from __future__ import annotations

import json
import re
import shutil
import struct
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import pytest
import torch

from maxbench.errors import UserInputError
from maxbench.repro.claims.figures import (
    DPI,
    goal_histogram_figure,
    plot_goal_histograms,
    plot_trajectory_grid,
    trajectory_grid_figure,
)
from maxbench.repro.claims.test_episodes import (
    EPISODES_FILE,
    TestEpisodes,
    pool,
    read_test_episodes,
    record_test_episodes,
)
from maxbench.repro.multigoal import (
    AgentEpisodes,
    Episode,
    find_multigoal_runs,
    multigoal_run_from_cell,
    run_episodes,
)

ENV = "MultiGoalMaxEnt-v0"
OBSTACLE_ENV = "MultiGoalMaxEntObstacle-v0"
RUN_SEED = 3
N = 3


def _write_cell(folder: Path, model: Any, **spec: Any) -> Path:
    folder.mkdir(parents=True)
    if model is not None:
        model.save(folder / "model.zip")
    full = {"algo": "sac", "algo_target": "stable_baselines3:SAC", "env_id": ENV}
    full.update(seed=RUN_SEED, hyperparams={}, **spec)
    (folder / "run.json").write_text(json.dumps({"status": "finished", "spec": full}))
    return folder


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished MultiGoalMaxEnt-v0 cell of an untrained SAC, with N episodes per env recorded."""
    from stable_baselines3 import SAC

    import maxbench.envs  # noqa: F401

    model = SAC("MlpPolicy", ENV, seed=0, policy_kwargs={"net_arch": [8]}, buffer_size=100)
    cell = _write_cell(tmp_path_factory.mktemp("cells") / f"seed_{RUN_SEED}", model)
    record_test_episodes(cell, episodes=N, seed=5)
    return cell


def _copy(cell: Path, to: Path) -> Path:
    shutil.copytree(cell, to)
    return to


def _independent(cell: Path, env_id: str, seed: int, n: int) -> list[Episode]:
    """The episodes as evaluate_agents runs them: torch and numpy seeded with seed + run seed."""
    from stable_baselines3 import SAC

    model = SAC.load(cell / "model.zip", device="cpu")
    torch.manual_seed(seed + RUN_SEED)
    np.random.seed(seed + RUN_SEED)
    return run_episodes(model, env_id, n, False)


# -- record and read ------------------------------------------------------------------------------
def test_record_read_round_trip_equals_independent_episodes(recorded: Path) -> None:
    found = read_test_episodes(recorded)
    assert isinstance(found, TestEpisodes)
    assert (found.algo, found.run_seed, found.trained_on, found.deterministic) == (
        "sac",
        RUN_SEED,
        ENV,
        False,
    )
    assert list(found.envs) == [ENV, OBSTACLE_ENV]
    np.testing.assert_array_equal(found.envs[ENV].goals, [[5, 0], [-4, 3], [-4, -3]])
    assert found.envs[ENV].obstacle is None
    np.testing.assert_array_equal(found.envs[OBSTACLE_ENV].obstacle, [[-2, 0], [0, 2]])
    for env_id in (ENV, OBSTACLE_ENV):
        group = found.envs[env_id]
        assert (group.agent, group.env_id, group.trained_on, group.seeds) == (
            "sac",
            env_id,
            ENV,
            [RUN_SEED],
        )
        expected = _independent(recorded, env_id, seed=5, n=N)
        assert len(group.episodes) == N
        for got, want in zip(group.episodes, expected, strict=True):
            assert (got.goal, got.length, got.blocked_steps) == (
                want.goal,
                want.length,
                want.blocked_steps,
            )
            assert got.episode_return == round(want.episode_return, 4)
            rounded = [[round(float(x), 4), round(float(y), 4)] for x, y in want.path]
            assert got.path.shape == (want.length + 1, 2)
            assert got.path.tolist() == rounded
    # Another seed gives other episodes: the comparison above can fail.
    other = _independent(recorded, ENV, seed=6, n=N)
    assert [e.path.tolist() for e in found.envs[ENV].episodes] != [
        [[round(float(x), 4), round(float(y), 4)] for x, y in e.path] for e in other
    ]


def test_file_is_compact_and_rounded(recorded: Path) -> None:
    text = (recorded / EPISODES_FILE).read_text()
    document = json.loads(text)
    assert list(document) == [
        "format",
        "episodes_per_env",
        "seed",
        "deterministic",
        "trained_on",
        "algo",
        "run_seed",
        "envs",
    ]
    assert (document["format"], document["episodes_per_env"], document["seed"]) == (1, N, 5)
    assert len(text.splitlines()) == 1 + 2 * (1 + N)  # header; per env a line, then one per episode
    for entry in document["envs"].values():
        for episode in entry["episodes"]:
            values = [episode["return"], *(c for point in episode["path"] for c in point)]
            assert all(round(v, 4) == v for v in values)


def test_rerecord_keeps_same_settings_and_rewrites_others(recorded: Path, tmp_path: Path) -> None:
    cell = _copy(recorded, tmp_path / "seed_3")
    file = cell / EPISODES_FILE
    before, stamp = file.read_bytes(), file.stat().st_mtime_ns
    assert record_test_episodes(cell, episodes=N, seed=5) == file
    assert file.read_bytes() == before and file.stat().st_mtime_ns == stamp

    record_test_episodes(cell, episodes=N, seed=5, deterministic=True)
    assert json.loads(file.read_text())["deterministic"] is True
    record_test_episodes(cell, episodes=2, seed=5)
    document = json.loads(file.read_text())
    assert document["episodes_per_env"] == 2 and not document["deterministic"]
    assert all(len(e["episodes"]) == 2 for e in document["envs"].values())
    record_test_episodes(cell, episodes=2, seed=5, obstacle=False)
    assert list(json.loads(file.read_text())["envs"]) == [ENV]
    # Back to the first settings: the very same bytes again.
    record_test_episodes(cell, episodes=N, seed=5)
    assert file.read_bytes() == before


def test_a_damaged_file_is_rewritten(recorded: Path, tmp_path: Path) -> None:
    cell = _copy(recorded, tmp_path / "seed_3")
    before = (cell / EPISODES_FILE).read_bytes()
    (cell / EPISODES_FILE).write_bytes(before[:100])
    record_test_episodes(cell, episodes=N, seed=5)
    assert (cell / EPISODES_FILE).read_bytes() == before


def _damage(path: list[Any], value: Any) -> Any:
    def change(document: dict[str, Any]) -> None:
        target = document
        for key in path[:-1]:
            target = target[key]
        if value is _DELETE:
            del target[path[-1]]
        else:
            target[path[-1]] = value

    return change


_DELETE = object()
_EPISODE = ["envs", ENV, "episodes", 1]


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (_damage([*_EPISODE, "goal"], 7), "episodes[1].goal is 7, not a goal index (-1 or 0..2)"),
        (_damage([*_EPISODE, "goal"], -2), "goal is -2, not a goal index"),
        (_damage([*_EPISODE, "path", 2, 0], "3.5"), "episodes[1].path[2] is not a number ('3.5')"),
        (_damage([*_EPISODE, "path", 2], [1.0]), "path[2] is not a pair [x, y] ([1.0])"),
        (_damage([*_EPISODE, "return"], _DELETE), "episodes[1] lacks the field 'return'"),
        (_damage(["run_seed"], _DELETE), "the document lacks the field 'run_seed'"),
        (_damage(["deterministic"], "no"), "deterministic is not true or false ('no')"),
        (_damage(["episodes_per_env"], 4), "holds 3 episodes, not episodes_per_env 4"),
        (_damage([*_EPISODE, "length"], 1.5), "length is not an integer (1.5)"),
        (_damage([*_EPISODE, "extra"], 1), "has an unexpected field 'extra'"),
        (_damage(["envs", ENV, "obstacle"], [[0, 0]]), "obstacle has 1 points, not 2"),
        (_damage(["format"], 2), "format is 2, not 1"),
        (_damage(["trained_on"], "Other-v0"), "has no entry for the training env 'Other-v0'"),
    ],
)
def test_damaged_files_give_one_line_reasons(
    recorded: Path, tmp_path: Path, change: Any, reason: str
) -> None:
    document = json.loads((recorded / EPISODES_FILE).read_text())
    change(document)
    (tmp_path / EPISODES_FILE).write_text(json.dumps(document))
    with pytest.raises(ValueError, match=r"^[^\n]*$") as caught:
        read_test_episodes(tmp_path)
    assert reason in str(caught.value)
    assert str(tmp_path / EPISODES_FILE) in str(caught.value)


def test_missing_and_truncated_files(recorded: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no such file"):
        read_test_episodes(tmp_path)
    text = (recorded / EPISODES_FILE).read_text()
    (tmp_path / EPISODES_FILE).write_text(text[: len(text) // 2])
    with pytest.raises(ValueError, match=r"not valid JSON \(line \d+"):
        read_test_episodes(tmp_path)
    (tmp_path / EPISODES_FILE).write_text(
        re.sub(r'"return":[-0-9.e]+', '"return":NaN', text, count=1)
    )
    with pytest.raises(ValueError, match="is not a finite number"):
        read_test_episodes(tmp_path)


def test_record_refuses_cells_that_are_no_multigoal_runs(tmp_path: Path) -> None:
    other = _write_cell(tmp_path / "other" / "seed_0", None, env_id="Pendulum-v1")
    with pytest.raises(UserInputError, match="was not trained on a multi-goal env"):
        record_test_episodes(other)
    no_model = _write_cell(tmp_path / "nomodel" / "seed_0", None)
    with pytest.raises(UserInputError, match="is finished but has no model.zip"):
        record_test_episodes(no_model)
    evil = _write_cell(tmp_path / "evil" / "seed_0", None, algo_target="os:system")
    (evil / "model.zip").write_bytes(b"PK")
    with pytest.raises(UserInputError, match="not a registered algorithm"):
        record_test_episodes(evil)
    broken = _write_cell(tmp_path / "broken" / "seed_0", None)
    (broken / "model.zip").write_bytes(b"not a zip")
    with pytest.raises(UserInputError, match="its model.zip cannot be used"):
        record_test_episodes(broken)
    assert not any(tmp_path.rglob(EPISODES_FILE))


def test_multigoal_run_from_cell_agrees_with_find_multigoal_runs(recorded: Path) -> None:
    run = multigoal_run_from_cell(recorded)
    assert not isinstance(run, str)
    assert find_multigoal_runs(recorded) == [run]
    assert (run.algo, run.env_id, run.seed, run.algo_target) == (
        "sac",
        ENV,
        RUN_SEED,
        "stable_baselines3:SAC",
    )


# -- pooling --------------------------------------------------------------------------------------
def _group(seed: int, goals: list[int], env_id: str = ENV, agent: str = "s2ac") -> AgentEpisodes:
    """A synthetic group: straight paths from the start towards each goal (or to (1, 1))."""
    targets = np.array([[5.0, 0.0], [-4.0, 3.0], [-4.0, -3.0]])
    episodes = []
    for index, goal in enumerate(goals):
        end = targets[goal] if goal >= 0 else np.array([1.0, 1.0 + index])
        path = np.linspace([0.0, 0.0], end, 6)
        episodes.append(Episode(path, goal, -10.0 * (index + 1), 5, 0))
    return AgentEpisodes(agent, env_id, ENV, [seed], targets.copy(), None, episodes)


def test_pool_concatenates_seeds_and_episodes() -> None:
    a, b = _group(0, [0, 1]), _group(1, [-1, 2, 2])
    pooled = pool([a, b])
    assert pooled.seeds == [0, 1]
    assert [e.goal for e in pooled.episodes] == [0, 1, -1, 2, 2]
    assert pooled.hits == [1, 1, 2] and pooled.agent == "s2ac" and pooled.env_id == ENV
    assert a.seeds == [0] and len(a.episodes) == 2  # the inputs are left as they were
    with pytest.raises(ValueError, match="env_id"):
        pool([a, _group(1, [0], env_id=OBSTACLE_ENV)])
    with pytest.raises(ValueError, match="agent"):
        pool([a, _group(1, [0], agent="sac")])
    with pytest.raises(ValueError, match="no episodes"):
        pool([])


# -- figures --------------------------------------------------------------------------------------
def _rows() -> list[tuple[str, list[tuple[str, AgentEpisodes | None]]]]:
    return [
        ("S2AC", [("α = 0.2", _group(0, [0, 1, 1, -1])), ("α = 1", _group(0, [1, 2, 2, 2]))]),
        ("SAC", [("α = 0.2", _group(0, [0, 0, 0, 0], agent="sac"))]),  # α = 1 not run
    ]


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_figures_repeat_byte_for_byte(tmp_path: Path) -> None:
    for plot in (plot_trajectory_grid, plot_goal_histograms):
        first = plot(_rows(), tmp_path / f"{plot.__name__}_1.png", "multi-goal")
        with matplotlib.rc_context({"lines.linewidth": 4.0, "font.size": 20}):
            second = plot(_rows(), tmp_path / f"{plot.__name__}_2.png", "multi-goal")
        assert first.read_bytes() == second.read_bytes()
        assert b"Software" not in first.read_bytes()
        assert matplotlib.rcParams["font.size"] != 20  # the caller's style came back
    grid = (tmp_path / "plot_trajectory_grid_1.png").read_bytes()
    assert _png_size(grid) == (round((0.6 + 2 * 2.4) * DPI), round((0.5 + 2 * 2.4) * DPI))
    other = plot_trajectory_grid(_rows()[:1], tmp_path / "one_row.png", "multi-goal")
    assert other.read_bytes() != grid
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp files


def test_trajectory_grid_panels_and_not_run() -> None:
    figure = trajectory_grid_figure(_rows(), "Fig. 7")
    axes = figure.axes
    assert len(axes) == 4
    texts = [[t.get_text() for t in ax.texts] for ax in axes]
    assert "not run" in texts[3] and "not run" not in texts[0] + texts[1] + texts[2]
    blue = [
        [line for line in ax.lines if line.get_color() == "tab:blue" and len(line.get_xdata()) > 1]
        for ax in axes
    ]
    assert [len(lines) for lines in blue] == [4, 4, 4, 0]
    np.testing.assert_allclose(blue[1][0].get_xydata()[-1], [-4.0, 3.0])
    assert [ax.get_title() for ax in axes[:2]] == ["α = 0.2", "α = 1"]
    assert (axes[0].get_ylabel(), axes[2].get_ylabel()) == ("S2AC", "SAC")


def test_goal_histograms_are_shares_per_weight() -> None:
    figure = goal_histogram_figure(_rows(), "Fig. 12")
    s2ac, sac = figure.axes
    heights = [[bar.get_height() for bar in bars] for bars in s2ac.containers]
    # G1, G2, G3, none per weight: [0, 1, 1, -1] and [1, 2, 2, 2] counted by hand.
    assert heights == [[0.25, 0.5, 0.0, 0.25], [0.0, 0.25, 0.75, 0.0]]
    assert [bars.get_label() for bars in sac.containers] == ["α = 0.2", "α = 1 (not run)"]
    assert [[bar.get_height() for bar in bars] for bars in sac.containers] == [
        [1.0, 0.0, 0.0, 0.0],
        [0.0, 0.0, 0.0, 0.0],
    ]
    assert [t.get_text() for t in s2ac.get_xticklabels()] == ["G1", "G2", "G3", "none"]


def test_a_row_not_run_at_all_and_bad_rows() -> None:
    rows = [*_rows(), ("SQL", [("α = 0.2", None)])]
    figure = goal_histogram_figure(rows, "Fig. 12")
    assert "not run" in [t.get_text() for t in figure.axes[2].texts]
    with pytest.raises(ValueError, match="at least one row"):
        trajectory_grid_figure([], "empty")
    with pytest.raises(ValueError, match="names a column twice"):
        goal_histogram_figure([("S2AC", [("a", None), ("a", None)])], "twice")
