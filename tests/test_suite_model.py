"""The suite file through the Python API: loading, expansion into cells, shorthands, YAML floats."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from maxbench.errors import UserInputError
from maxbench.registry import ALGORITHMS, AlgorithmEntry
from maxbench.suite.cells import Cell, expand_suite
from maxbench.suite.loading import LoadedSuite, load_suite
from maxbench.suite.model import Suite, WrapperSpec

FULL = """\
name: model-test
algorithms:
  sac:
    hyperparams:
      default:
        learning_starts: 10
        batch_size: 32
        learning_rate: 1e-3
      Pendulum-v1:
        batch_size: 64
  td3:
    hyperparams:
      default:
        learning_starts: 10
        buffer_size: 1e6
environments:
  - Pendulum-v1
  - id: MountainCarContinuous-v0
    label: car
    budget: 50
    max_episode_steps: 99
    kwargs: {goal_velocity: 0.1}
seeds: 3
budget: 100
evaluation:
  every: 25
  episodes: 2
"""


def load(tmp_path: Path, text: str, name: str = "suite.yaml") -> LoadedSuite:
    """Load a suite, checking its shape and names (the preflight build is tested elsewhere:
    tests/test_faults_input.py)."""
    path = tmp_path / name
    path.write_text(text)
    return load_suite(path, preflight=False)


def minimal(**lines: str) -> str:
    """A minimal valid suite; keyword arguments replace whole top-level entries (YAML text)."""
    entries = {
        "algorithms": "algorithms:\n  sac:\n    hyperparams:\n      default: {learning_starts: 10}",
        "environments": "environments: [Pendulum-v1]",
        "seeds": "seeds: 1",
        "budget": "budget: 100",
    }
    entries.update(lines)
    return "\n".join(entries.values()) + "\n"


@pytest.fixture
def full(tmp_path: Path) -> LoadedSuite:
    return load(tmp_path, FULL)


def test_load_suite(full: LoadedSuite, tmp_path: Path) -> None:
    assert full.name == "model-test"
    assert full.path == tmp_path / "suite.yaml"
    suite = full.suite
    assert isinstance(suite, Suite)
    assert list(suite.algorithms) == ["sac", "td3"]
    assert [env.id for env in suite.environments] == ["Pendulum-v1", "MountainCarContinuous-v0"]
    assert [env.name for env in suite.environments] == ["Pendulum-v1", "car"]
    assert suite.evaluation.every == 25
    assert suite.evaluation.episodes == 2
    assert suite.evaluation.deterministic is True
    assert suite.n_envs == 1


def test_name_defaults_to_the_file_stem(tmp_path: Path) -> None:
    assert load(tmp_path, minimal(), name="my_suite.yaml").name == "my_suite"


def test_load_suite_errors_are_user_input_errors(tmp_path: Path) -> None:
    with pytest.raises(UserInputError, match="not found"):
        load_suite(tmp_path / "missing.yaml")
    with pytest.raises(UserInputError, match="did you mean 'sac'"):
        load(tmp_path, minimal(algorithms="algorithms: {sacc: {}}"))


def test_check_false_skips_name_resolution(tmp_path: Path) -> None:
    path = tmp_path / "suite.yaml"
    path.write_text(minimal(algorithms="algorithms: {sacc: {}}"))
    assert list(load_suite(path, check=False).suite.algorithms) == ["sacc"]


def test_expand_cells(full: LoadedSuite) -> None:
    cells = expand_suite(full.suite, full.name)
    assert len(cells) == 2 * 2 * 3
    assert [cell.key for cell in cells] == [
        f"{algo}/{env}/seed_{seed}"
        for algo in ("sac", "td3")
        for env in ("Pendulum-v1", "car")
        for seed in (0, 1, 2)
    ]
    assert len({cell.key for cell in cells}) == len(cells)
    for cell in cells:
        assert cell.suite == "model-test"
        assert cell.policy == "MlpPolicy"
        assert cell.algo_target == ALGORITHMS[cell.algo].target
        assert cell.eval_every == 25
        assert cell.eval_episodes == 2
        assert cell.eval_deterministic is True
        assert cell.n_envs == 1
        assert cell.folder(Path("out")) == (
            Path("out") / "model-test" / cell.algo / cell.env_name / f"seed_{cell.seed}"
        )


def test_environment_options_reach_the_cells(full: LoadedSuite) -> None:
    cells = {cell.key: cell for cell in expand_suite(full.suite, full.name)}
    car, pendulum = cells["sac/car/seed_0"], cells["sac/Pendulum-v1/seed_0"]
    assert car.env_id == "MountainCarContinuous-v0"
    assert car.env_kwargs == {"goal_velocity": 0.1}
    assert car.max_episode_steps == 99
    assert pendulum.env_kwargs == {}
    assert pendulum.max_episode_steps is None
    assert pendulum.wrappers == []


def test_budget_per_environment_beats_the_suite_budget(full: LoadedSuite) -> None:
    budgets = {cell.key: cell.budget for cell in expand_suite(full.suite, full.name)}
    for key, budget in budgets.items():
        assert budget == (50 if "/car/" in key else 100), key


def test_hyperparameters_merge_default_then_environment(full: LoadedSuite) -> None:
    cells = {cell.key: cell for cell in expand_suite(full.suite, full.name)}
    assert cells["sac/Pendulum-v1/seed_1"].hyperparams == {
        "learning_starts": 10,
        "batch_size": 64,
        "learning_rate": 1e-3,
    }
    assert cells["sac/car/seed_1"].hyperparams == {
        "learning_starts": 10,
        "batch_size": 32,
        "learning_rate": 1e-3,
    }
    assert cells["td3/Pendulum-v1/seed_0"].hyperparams == {
        "learning_starts": 10,
        "buffer_size": 1e6,
    }


def test_registry_preset_lies_under_the_suite_hyperparameters(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(
        ALGORITHMS,
        "presetsac",
        AlgorithmEntry("stable_baselines3:SAC", preset={"gamma": 0.9, "tau": 0.01}),
    )
    text = minimal(
        algorithms="""\
algorithms:
  presetsac:
    hyperparams:
      default: {tau: 0.02, batch_size: 32}
      Pendulum-v1: {batch_size: 64}"""
    )
    loaded = load(tmp_path, text)
    (cell,) = expand_suite(loaded.suite, loaded.name)
    assert cell.algo_target == "stable_baselines3:SAC"
    assert cell.hyperparams == {"gamma": 0.9, "tau": 0.02, "batch_size": 64}


def test_algo_key_with_explicit_class(tmp_path: Path) -> None:
    text = minimal(algorithms="algorithms:\n  mine:\n    algo: stable_baselines3:SAC")
    loaded = load(tmp_path, text)
    (cell,) = expand_suite(loaded.suite, loaded.name)
    assert cell.key == "mine/Pendulum-v1/seed_0"
    assert cell.algo_target == "stable_baselines3:SAC"
    assert cell.hyperparams == {}


def test_algorithm_with_nothing_under_it(tmp_path: Path) -> None:
    loaded = load(tmp_path, minimal(algorithms="algorithms:\n  sac:\n  td3:"))
    assert [cell.key for cell in expand_suite(loaded.suite, loaded.name)] == [
        "sac/Pendulum-v1/seed_0",
        "td3/Pendulum-v1/seed_0",
    ]


@pytest.mark.parametrize(
    ("seeds", "expected"),
    [("seeds: 3", [0, 1, 2]), ("seeds: 1", [0]), ("seeds: [4, 7]", [4, 7]), ("seeds: [0]", [0])],
)
def test_seeds(tmp_path: Path, seeds: str, expected: list[int]) -> None:
    loaded = load(tmp_path, minimal(seeds=seeds))
    assert loaded.suite.seed_list == expected
    assert [cell.seed for cell in expand_suite(loaded.suite, loaded.name)] == expected


@pytest.mark.parametrize(
    ("only", "expected"),
    [
        ("sac/*", [f"sac/{env}/seed_{s}" for env in ("Pendulum-v1", "car") for s in (0, 1, 2)]),
        (
            "*/seed_0",
            [f"{a}/{env}/seed_0" for a in ("sac", "td3") for env in ("Pendulum-v1", "car")],
        ),
        ("td3/car/seed_2", ["td3/car/seed_2"]),
        ("*/car/seed_[01]", [f"{a}/car/seed_{s}" for a in ("sac", "td3") for s in (0, 1)]),
        ("ppo/*", []),
        ("SAC/*", []),  # case-sensitive
    ],
)
def test_only_filters_by_glob(full: LoadedSuite, only: str, expected: list[str]) -> None:
    cells = expand_suite(full.suite, full.name, only=only)
    assert [cell.key for cell in cells] == expected


def test_yaml_floats_are_numbers(full: LoadedSuite) -> None:
    sac = full.suite.algorithms["sac"].hyperparams["default"]
    td3 = full.suite.algorithms["td3"].hyperparams["default"]
    assert isinstance(sac["learning_rate"], float)
    assert sac["learning_rate"] == pytest.approx(1e-3)
    assert isinstance(td3["buffer_size"], float)
    assert td3["buffer_size"] == 1e6
    assert isinstance(sac["learning_starts"], int)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1e-3", 1e-3),
        ("1e6", 1e6),
        ("-2.5e+2", -250.0),
        ("3.", 3.0),
        (".5", 0.5),
        ("1_000.5", 1000.5),
        (".inf", float("inf")),
        ("12", 12),
        ("lin_3e-4", "lin_3e-4"),
        ("e6", "e6"),
        ("1e", "1e"),
    ],
)
def test_yaml_scalars(tmp_path: Path, text: str, expected: object) -> None:
    from maxbench.suite.yaml_loader import read_yaml

    path = tmp_path / "values.yaml"
    path.write_text(f"value: {text}\n")
    data, _ = read_yaml(path)
    assert data["value"] == expected
    assert type(data["value"]) is type(expected)


def test_budget_written_as_a_float(tmp_path: Path) -> None:
    loaded = load(tmp_path, minimal(budget="budget: 1e4"))
    assert loaded.suite.budget == 10_000
    assert isinstance(loaded.suite.budget, int)


def test_wrapper_shorthands(tmp_path: Path) -> None:
    text = minimal(
        environments="""\
environments:
  - id: Pendulum-v1
    wrappers:
      - gymnasium.wrappers:TimeLimit: {max_episode_steps: 10}
      - gymnasium.wrappers:ClipAction
      - target: gymnasium.wrappers:RescaleAction
        kwargs: {min_action: -1.0, max_action: 1.0}
      - gymnasium.wrappers:NormalizeObservation:"""
    )
    loaded = load(tmp_path, text)
    (env,) = loaded.suite.environments
    assert env.wrappers == [
        WrapperSpec(target="gymnasium.wrappers:TimeLimit", kwargs={"max_episode_steps": 10}),
        WrapperSpec(target="gymnasium.wrappers:ClipAction"),
        WrapperSpec(
            target="gymnasium.wrappers:RescaleAction",
            kwargs={"min_action": -1.0, "max_action": 1.0},
        ),
        WrapperSpec(target="gymnasium.wrappers:NormalizeObservation"),
    ]
    (cell,) = expand_suite(loaded.suite, loaded.name)
    assert cell.wrappers[0] == {
        "target": "gymnasium.wrappers:TimeLimit",
        "kwargs": {"max_episode_steps": 10},
    }
    assert cell.wrappers[1] == {"target": "gymnasium.wrappers:ClipAction", "kwargs": {}}


def test_environment_shorthand(tmp_path: Path) -> None:
    text = minimal(environments="environments:\n  - Pendulum-v1\n  - {id: MultiGoal-v0}")
    loaded = load(tmp_path, text)
    first, second = loaded.suite.environments
    assert (first.id, first.name, first.kwargs, first.wrappers, first.budget) == (
        "Pendulum-v1",
        "Pendulum-v1",
        {},
        [],
        None,
    )
    assert second.id == "MultiGoal-v0"


def test_environment_name_from_a_namespaced_id() -> None:
    suite = Suite.model_validate(
        {
            "algorithms": {"sac": None},
            "environments": ["ns/Env-v0", "module:Env-v1"],
            "seeds": 1,
            "budget": 10,
        }
    )
    assert [env.name for env in suite.environments] == ["ns_Env-v0", "module_Env-v1"]


def test_checkpoint_every_defaults_to_evaluation_every(tmp_path: Path) -> None:
    loaded = load(tmp_path, minimal() + "evaluation: {every: 40}\n")
    assert loaded.suite.checkpoint_every is None
    assert loaded.suite.checkpoint_interval == 40
    (cell,) = expand_suite(loaded.suite, loaded.name)
    assert cell.checkpoint_every == 40
    assert cell.eval_every == 40

    loaded = load(tmp_path, minimal() + "evaluation: {every: 40}\ncheckpoint_every: 15\n")
    assert expand_suite(loaded.suite, loaded.name)[0].checkpoint_every == 15


def test_evaluation_defaults(tmp_path: Path) -> None:
    loaded = load(tmp_path, minimal())
    (cell,) = expand_suite(loaded.suite, loaded.name)
    assert (cell.eval_every, cell.eval_episodes, cell.eval_deterministic) == (10_000, 10, True)
    assert cell.checkpoint_every == 10_000


def test_cell_round_trip_and_fingerprint(full: LoadedSuite) -> None:
    cells = expand_suite(full.suite, full.name)
    for cell in cells:
        data = cell.to_dict()
        assert Cell.from_dict(data) == cell
        via_json = Cell.from_dict(json.loads(json.dumps(data)))
        assert via_json == cell
        assert via_json.fingerprint() == cell.fingerprint()
    fingerprint = cells[0].fingerprint()
    assert len(fingerprint) == 16
    int(fingerprint, 16)
    # Stable: the same cell from a fresh expansion has the same fingerprint.
    assert expand_suite(full.suite, full.name)[0].fingerprint() == fingerprint
    # And it tells cells apart.
    assert len({cell.fingerprint() for cell in cells}) == len(cells)


def test_fingerprint_ignores_key_order_but_not_values(full: LoadedSuite) -> None:
    cell = expand_suite(full.suite, full.name)[0]
    data = cell.to_dict()
    reordered = Cell.from_dict({**data, "hyperparams": dict(reversed(data["hyperparams"].items()))})
    assert reordered.fingerprint() == cell.fingerprint()
    changed = Cell.from_dict({**data, "budget": data["budget"] + 1})
    assert changed.fingerprint() != cell.fingerprint()


def test_to_dict_is_a_copy(full: LoadedSuite) -> None:
    cell = expand_suite(full.suite, full.name)[0]
    data = cell.to_dict()
    data["hyperparams"]["batch_size"] = 1
    assert cell.hyperparams["batch_size"] == 64


def test_integer_hyperparameter_written_as_a_float_builds_the_model(tmp_path: Path) -> None:
    from stable_baselines3 import SAC

    from maxbench.suite.hyperparams import convert_hyperparameters

    text = minimal(
        algorithms="algorithms:\n  sac:\n    hyperparams:\n      default: {buffer_size: 1e3}"
    )
    loaded = load(tmp_path, text)  # validates
    (cell,) = expand_suite(loaded.suite, loaded.name)
    kwargs = convert_hyperparameters(cell.hyperparams, action_dim=1, algorithm=SAC)
    SAC(cell.policy, cell.env_id, **kwargs)
