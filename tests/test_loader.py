"""The results loader: a results folder -> tidy DataFrames (runs and evaluation episodes)."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_report import episode_returns, write_run

from maxbench.errors import UserInputError
from maxbench.results.layout import FAILED, RUNNING, read_evals
from maxbench.results.loader import EPISODE_COLUMNS, RUN_COLUMNS, find_run_folders, load_results


@pytest.fixture
def results(tmp_path: Path) -> Path:
    root = tmp_path / "results"
    write_run(root, "sac", "TaskA-v0", 0)
    write_run(root, "sac", "TaskA-v0", 1, status=RUNNING, evaluations=2)
    write_run(root, "td3", "TaskA-v0", 0, status=FAILED, evaluations=1)
    write_run(root, "td3", "TaskA-v0", 5, step=1024)
    pending = root / "synth" / "td3" / "TaskA-v0" / "seed_7"
    pending.mkdir(parents=True)
    (pending / "train.log").write_text("started\n")
    (root / "synth" / "sac" / "TaskA-v0" / "seed_9").mkdir()  # an empty folder is not a run
    return root


def test_runs_table(results: Path) -> None:
    loaded = load_results(results)
    assert list(loaded.runs.columns) == list(RUN_COLUMNS)
    keys = list(zip(loaded.runs["algo"], loaded.runs["seed"], loaded.runs["status"], strict=True))
    assert keys == [
        ("sac", 0, "finished"),
        ("sac", 1, "running"),
        ("td3", 0, "failed"),
        ("td3", 5, "finished"),
        ("td3", 7, "pending"),
    ]
    failed = loaded.runs[loaded.runs["status"] == "failed"].iloc[0]
    assert failed["error"] == "RuntimeError: boom"
    finished = loaded.runs[(loaded.runs["algo"] == "td3") & (loaded.runs["seed"] == 5)].iloc[0]
    assert finished["env_steps"] == 3072
    assert finished["env_steps_per_s"] == pytest.approx(105.0)
    assert finished["last_timestep"] == 3072
    assert finished["cpu"] == "Test CPU" and finished["torch_threads"] == 1
    assert finished["torch"] == "2.13.0" and finished["stable_baselines3"] == "2.9.2"
    assert finished["budget"] == 3000 and finished["eval_episodes"] == 3
    pending = loaded.runs[loaded.runs["status"] == "pending"].iloc[0]
    assert pending["suite"] == "synth" and pending["env"] == "TaskA-v0"


def test_episodes_are_tidy_and_exact(results: Path) -> None:
    loaded = load_results(results)
    episodes = loaded.episodes
    assert list(episodes.columns) == list(EPISODE_COLUMNS)
    # 3 + 2 + 1 + 3 evaluations of 3 episodes each; the pending run has none
    assert len(episodes) == 9 * 3
    mine = episodes[(episodes["algo"] == "td3") & (episodes["seed"] == 5)]
    assert sorted(set(mine["timestep"])) == [1024, 2048, 3072]
    second = mine[mine["timestep"] == 2048]
    assert tuple(second["return"]) == episode_returns("td3", "TaskA-v0", 5, 1)
    assert set(second["length"]) == {200}
    assert list(second["episode"]) == [0, 1, 2]
    assert set(mine["status"]) == {"finished"}


def test_evaluations_match_evals_csv(results: Path) -> None:
    loaded = load_results(results)
    table = loaded.evaluations()
    folder = results / "synth" / "sac" / "TaskA-v0" / "seed_1"
    rows = read_evals(folder)
    mine = table[(table["algo"] == "sac") & (table["seed"] == 1)]
    assert list(mine["timestep"]) == [row.timestep for row in rows]
    assert list(mine["mean_return"]) == pytest.approx([row.mean_return for row in rows])
    assert list(mine["std_return"]) == pytest.approx([row.std_return for row in rows])
    assert set(mine["episodes"]) == {3}


def test_a_single_run_folder_loads(results: Path) -> None:
    folder = results / "synth" / "sac" / "TaskA-v0" / "seed_0"
    assert find_run_folders(folder) == [folder]
    assert len(load_results(folder).runs) == 1


def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(UserInputError, match="does not exist"):
        load_results(tmp_path / "nowhere")


def test_folder_without_runs(tmp_path: Path) -> None:
    (tmp_path / "smoke" / "sac" / "Pendulum-v1" / "seed_0").mkdir(parents=True)
    with pytest.raises(UserInputError, match="no runs in"):
        load_results(tmp_path)
