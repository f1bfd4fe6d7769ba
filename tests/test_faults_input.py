"""Fault injection, input side: a hostile or careless suite file never crashes a command, never
writes outside ``--out`` (or anything at all), and is refused by ``validate`` exactly as by ``run``.

Every case runs ``maxbench run SUITE --out <tmp>/work/results`` and ``maxbench validate SUITE``
and checks the bad-input promise of README: exit status 2, exactly one line of error text, no
traceback, and nothing written anywhere under the test's folder (nor beside it). The classes come
from issue 16: "Escaping the results folder" and "Validation that checks names only", plus
cases of the same classes that the issue does not name.

Most cases are refused by the cheap checks (YAML, shape, names); the few marked "preflight" are
caught only by building the environment or the model in the throwaway check process, ~3 s each.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from cli_checks import bad_input_message
from typer.testing import CliRunner, Result

from maxbench.cli import app
from maxbench.errors import UserInputError
from maxbench.suite.cells import Cell
from maxbench.suite.model import MAX_CELLS, MAX_SEED_COUNT

WIDE = {"COLUMNS": "4000"}
BASE = {
    "name": "faults",
    "algorithms": {"sac": {"hyperparams": {"default": {"learning_starts": 10}}}},
    "environments": ["Pendulum-v1"],
    "seeds": 1,
    "budget": 100,
}


def suite_yaml(**overrides: object) -> str:
    """YAML of a small valid suite with top-level keys replaced."""
    return yaml.safe_dump({**BASE, **overrides}, sort_keys=False, allow_unicode=True)


def sac(**hyperparams: object) -> dict[str, object]:
    """``algorithms`` with one SAC whose default hyperparameters are ``hyperparams``."""
    return {"sac": {"hyperparams": {"default": {"learning_starts": 10, **hyperparams}}}}


def snapshot(tmp_path: Path) -> set[str]:
    """Everything under the test's folder, and the names beside it (where '../x' would land)."""
    inside = {str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")}
    beside = {f"../{p.name}" for p in tmp_path.parent.iterdir()}
    return inside | beside


def invoke(*args: str | Path) -> Result:
    return CliRunner(env=WIDE).invoke(app, [str(arg) for arg in args])


def one_error_line(result: Result) -> str:
    """The bad-input contract (:func:`cli_checks.bad_input_message`), stdout or stderr."""
    return bad_input_message(result, on_stderr=False)


def refused(tmp_path: Path, suite: Path) -> str:
    """Run then validate ``suite``: both refuse it alike and nothing is written; the message."""
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    out = work / "results"
    before = snapshot(tmp_path)
    messages = [one_error_line(invoke("run", suite, "--out", out))]
    messages.append(one_error_line(invoke("validate", suite)))
    assert not out.exists()
    assert snapshot(tmp_path) == before, "something was written"
    assert messages[0] == messages[1]
    return messages[0]


def write(tmp_path: Path, text: str | bytes, name: str = "suite.yaml") -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


# --- escaping the results folder: every name that becomes a folder is one safe path component --

ESCAPES: list[tuple[str, str, list[str]]] = [
    ("name-parent", suite_yaml(name="../escaped"), ["name '../escaped'", "becomes a folder"]),
    ("name-parent-only", suite_yaml(name=".."), ["name '..'"]),
    ("name-absolute", suite_yaml(name="/tmp/maxbench-escaped"), ["name '/tmp/maxbench-escaped'"]),
    ("name-nested", suite_yaml(name="a/b"), ["name 'a/b'"]),
    ("name-markup", suite_yaml(name="x[/]"), ["name 'x[/]'"]),
    ("name-trailing-newline", suite_yaml(name="faults\n"), ["name 'faults\\n'"]),
    ("name-too-long", suite_yaml(name="n" * 129), ["at most 128"]),
    ("name-not-text", suite_yaml(name=["a"]), ["name", "text"]),
    (
        "algorithm-key-trailing-newline",
        suite_yaml(algorithms={"sac\n": {}}),
        ["algorithm key 'sac\\n'"],
    ),
    ("algorithm-key-parent", suite_yaml(algorithms={"..": {"algo": "sac"}}), ["algorithm key"]),
    (
        "env-label-parent",
        suite_yaml(environments=[{"id": "Pendulum-v1", "label": "../up"}]),
        ["environment label '../up'"],
    ),
    (
        "env-label-trailing-newline",
        suite_yaml(environments=[{"id": "Pendulum-v1", "label": "pend\n"}]),
        ["environment label 'pend\\n'"],
    ),
    (
        "algorithm-keys-differ-only-in-case",
        suite_yaml(algorithms={"sac": {}, "SAC": {"algo": "sac"}}),
        ["'sac' and 'SAC' differ only in case"],
    ),
    (
        "env-labels-differ-only-in-case",
        suite_yaml(
            environments=[
                {"id": "Pendulum-v1", "label": "pend"},
                {"id": "Pendulum-v1", "label": "Pend"},
            ]
        ),
        ["differ only in case"],
    ),
    (
        "tensorboard-log-outside",
        suite_yaml(algorithms=sac(tensorboard_log="../../tb")),
        ["'tensorboard_log'", "outside the results folder"],
    ),
    (
        "env-id-gives-a-bad-folder",
        suite_yaml(environments=["../Pendulum-v1"]),
        ["derived from id", "set a 'label'"],
    ),
]


@pytest.mark.parametrize(
    ("text", "expected"), [c[1:] for c in ESCAPES], ids=[c[0] for c in ESCAPES]
)
def test_names_cannot_escape_the_results_folder(
    tmp_path: Path, text: str, expected: list[str]
) -> None:
    message = refused(tmp_path, write(tmp_path, text))
    for part in expected:
        assert part in message, f"{part!r} not in {message!r}"
    assert not Path("/tmp/maxbench-escaped").exists()


def test_file_stem_must_be_a_valid_name_without_a_name_key(tmp_path: Path) -> None:
    text = suite_yaml()
    text = "\n".join(line for line in text.splitlines() if not line.startswith("name:")) + "\n"
    message = refused(tmp_path, write(tmp_path, text, name="my suite.yaml"))
    assert "'my suite'" in message
    assert "name:" in message


@pytest.mark.parametrize(
    ("field", "value"),
    [("suite", "../x"), ("algo", "a/b"), ("env_name", ".."), ("seed", "../../x"), ("seed", -1)],
)
def test_a_cell_from_a_hostile_run_json_cannot_point_outside(
    tmp_path: Path, field: str, value: object
) -> None:
    data = {**_valid_cell().to_dict(), field: value}
    with pytest.raises(UserInputError):
        Cell.from_dict(data).folder(tmp_path / "results")


def test_cell_folder_is_checked_lexically_so_a_linked_results_folder_is_fine(
    tmp_path: Path,
) -> None:
    (tmp_path / "disk").mkdir()
    (tmp_path / "results").symlink_to(tmp_path / "disk")
    cell = _valid_cell()
    assert cell.folder(tmp_path / "results") == tmp_path / "results/faults/sac/Pendulum-v1/seed_0"
    assert cell.folder(Path(".")) == Path("faults/sac/Pendulum-v1/seed_0")


def _valid_cell() -> Cell:
    from maxbench.suite.cells import expand_suite
    from maxbench.suite.loading import parse_suite

    suite = parse_suite(dict(BASE), Path("suite.yaml"))
    return expand_suite(suite, "faults")[0]


# --- the file itself: strict YAML ---------------------------------------------------------------

DUPLICATE_ALGORITHM = """\
name: faults
algorithms:
  sac:
    hyperparams: {default: {learning_starts: 10}}
  td3:
    hyperparams: {default: {learning_starts: 10}}
environments: [Pendulum-v1]
seeds: 1
budget: 100
algorithms:
  sac: {}
"""

FILES: list[tuple[str, str | bytes, list[str]]] = [
    (
        "duplicate-top-level-key",
        DUPLICATE_ALGORITHM,
        ["suite.yaml:10:", "duplicate key 'algorithms' at line 10 (first at line 2)"],
    ),
    (
        "duplicate-algorithm-key",
        "name: faults\nalgorithms:\n  sac: {}\n  td3: {}\n  sac: {}\nenvironments: [Pendulum-v1]\n"
        "seeds: 1\nbudget: 100\n",
        ["duplicate key 'sac' at line 5 (first at line 3)"],
    ),
    (
        "duplicate-hyperparameter",
        "name: faults\nalgorithms:\n  sac:\n    hyperparams:\n      default:\n"
        "        batch_size: 64\n        batch_size: 128\nenvironments: [Pendulum-v1]\n"
        "seeds: 1\nbudget: 100\n",
        ["duplicate key 'batch_size' at line 7 (first at line 6)"],
    ),
    (
        "not-utf8",
        suite_yaml().replace("faults", "caf\udce9", 1).encode("utf-8", "surrogateescape"),
        ["not UTF-8", "suite.yaml:1:", "0xe9"],
    ),
    ("utf16", suite_yaml().encode("utf-16"), ["not UTF-8"]),
    ("empty", "", ["empty"]),
    ("only-comments", "# a suite, one day\n", ["empty"]),
    ("nul-character", suite_yaml() + "description: a\x00b\n", ["invalid YAML", "not allowed"]),
    ("binary-tag", suite_yaml() + "description: !!binary aGVsbG8=\n", ["not allowed"]),
    ("set-tag", suite_yaml() + "description: !!set {a, b}\n", ["not allowed"]),
    ("python-tag", suite_yaml() + "description: !!python/object/apply:os.system [ls]\n", ["YAML"]),
    ("nested-deep", "a: " + "[" * 100 + "]" * 100 + "\n", ["nested too deeply"]),
    ("nested-deeper-than-the-parser-goes", "a: " + "[" * 1200 + "]" * 1200 + "\n", ["nested"]),
    (
        "alias-bomb",
        "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
        + "".join(
            f"{name}: &{name} [{', '.join([f'*{prev}'] * 10)}]\n"
            for prev, name in zip("abcdef", "bcdefg", strict=True)
        ),
        ["expands to more than"],
    ),
]


@pytest.mark.parametrize(("text", "expected"), [c[1:] for c in FILES], ids=[c[0] for c in FILES])
def test_strict_yaml(tmp_path: Path, text: str | bytes, expected: list[str]) -> None:
    message = refused(tmp_path, write(tmp_path, text))
    for part in expected:
        assert part in message, f"{part!r} not in {message!r}"


def test_merge_keys_and_anchors_still_work(tmp_path: Path) -> None:
    text = """\
name: faults
algorithms:
  sac:
    hyperparams:
      default: &small {learning_starts: 10, batch_size: 32}
      Pendulum-v1: {<<: *small, batch_size: 64}
environments: [Pendulum-v1]
seeds: 1
budget: 100
"""
    from maxbench.suite.cells import expand_suite
    from maxbench.suite.loading import load_suite

    loaded = load_suite(write(tmp_path, text), preflight=False)
    (cell,) = expand_suite(loaded.suite, loaded.name)
    assert cell.hyperparams == {"learning_starts": 10, "batch_size": 64}


@pytest.mark.parametrize(
    "make",
    [
        lambda tmp_path: tmp_path / "a_folder.yaml",
        lambda tmp_path: tmp_path / "missing.yaml",
    ],
    ids=["a-directory", "missing"],
)
def test_suite_path_that_is_not_a_readable_file(
    tmp_path: Path, make: Callable[[Path], Path]
) -> None:
    path = make(tmp_path)
    if path.name == "a_folder.yaml":
        path.mkdir()
    assert str(path) in refused(tmp_path, path)


def test_unreadable_suite_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, suite_yaml())
    path.chmod(0)

    def denied(self: Path) -> bytes:  # root reads a mode-0 file anyway: refuse like the OS would
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "read_bytes", denied)
    message = refused(tmp_path, path)
    assert "cannot read" in message and "Permission denied" in message


# --- types and sizes: strict, bounded, answered at once -----------------------------------------

TYPES: list[tuple[str, str, list[str]]] = [
    ("seeds-true", suite_yaml(seeds=True), ["seeds", "got true"]),
    ("seeds-huge", suite_yaml(seeds=1_000_000_000), ["seeds", f"at most {MAX_SEED_COUNT:,}"]),
    ("seed-2-to-the-32", suite_yaml(seeds=[0, 2**32]), ["seed", "4,294,967,295"]),
    ("seed-negative", suite_yaml(seeds=[-1]), ["seed", "-1"]),
    ("seed-fraction", suite_yaml(seeds=[1.5]), ["seed", "1.5"]),
    ("seed-text", suite_yaml(seeds=["1"]), ["seed", "'1'"]),
    ("seed-list-too-long", suite_yaml(seeds=list(range(1001))), ["at most 1,000 seeds"]),
    ("budget-true", suite_yaml(budget=True), ["budget", "got true"]),
    ("budget-text", suite_yaml(budget="100"), ["budget", "'100'"]),
    ("budget-astronomical", suite_yaml(budget=10**30), ["budget", "at most"]),
    (
        "episodes-yes",
        suite_yaml(evaluation={"episodes": "yes"}).replace("'yes'", "yes"),
        ["got true"],
    ),
    ("deterministic-one", suite_yaml(evaluation={"deterministic": 1}), ["true or false"]),
    ("n-envs-text", suite_yaml(n_envs="2"), ["n_envs", "'2'"]),
    (
        "max-episode-steps-true",
        suite_yaml(environments=[{"id": "Pendulum-v1", "max_episode_steps": True}]),
        ["max_episode_steps", "got true"],
    ),
    (
        "env-kwargs-not-a-mapping",
        suite_yaml(environments=[{"id": "Pendulum-v1", "kwargs": [1]}]),
        ["kwargs", "mapping"],
    ),
    ("policy-not-text", suite_yaml(algorithms={"sac": {"policy": 5}}), ["policy", "text"]),
    (
        "too-many-cells",
        suite_yaml(algorithms={f"a{i}": {"algo": "sac"} for i in range(101)}, seeds=1000),
        ["101,000 cells", f"at most {MAX_CELLS:,}"],
    ),
]


@pytest.mark.parametrize(("text", "expected"), [c[1:] for c in TYPES], ids=[c[0] for c in TYPES])
def test_strict_types_and_bounds(tmp_path: Path, text: str, expected: list[str]) -> None:
    message = refused(tmp_path, write(tmp_path, text))
    for part in expected:
        assert part in message, f"{part!r} not in {message!r}"


# --- hyperparameters, targets, policies: refused by the cheap checks -----------------------------

HYPERPARAMETERS: list[tuple[str, str, list[str]]] = [
    (
        "learning-rate-fast",
        suite_yaml(algorithms=sac(learning_rate="fast")),
        ["learning_rate", "'fast'"],
    ),
    ("schedule-bad-number", suite_yaml(algorithms=sac(learning_rate="lin_x")), ["lin_x"]),
    ("schedule-nan", suite_yaml(algorithms=sac(learning_rate="lin_nan")), ["lin_nan"]),
    ("gamma-text", suite_yaml(algorithms=sac(gamma="fast")), ["'gamma'", "number"]),
    ("gamma-above-one", suite_yaml(algorithms=sac(gamma=1.5)), ["'gamma'", "between 0 and 1"]),
    (
        "tau-nan",
        suite_yaml(algorithms=sac()).replace("learning_starts: 10", "tau: .nan"),
        ["'tau'", "finite"],
    ),
    (
        "target-update-interval-zero",
        suite_yaml(algorithms=sac(target_update_interval=0)),
        ["'target_update_interval'", ">= 1"],
    ),
    ("batch-size-zero", suite_yaml(algorithms=sac(batch_size=0)), ["'batch_size'", ">= 1"]),
    ("batch-size-true", suite_yaml(algorithms=sac(batch_size=True)), ["'batch_size'", "got true"]),
    ("use-sde-one", suite_yaml(algorithms=sac(use_sde=1)), ["'use_sde'", "true or false"]),
    ("train-freq-bad-unit", suite_yaml(algorithms=sac(train_freq=[1, "epoch"])), ["train_freq"]),
    ("train-freq-one-element", suite_yaml(algorithms=sac(train_freq=[1])), ["train_freq"]),
    ("train-freq-text", suite_yaml(algorithms=sac(train_freq="often")), ["train_freq"]),
    ("noise-sigma-text", suite_yaml(algorithms=sac(action_noise={"sigma": "big"})), ["sigma"]),
    ("noise-sigma-negative", suite_yaml(algorithms=sac(action_noise={"sigma": -0.1})), ["sigma"]),
    ("noise-sigma-empty-list", suite_yaml(algorithms=sac(action_noise={"sigma": []})), ["sigma"]),
    (
        "noise-unknown-type",
        suite_yaml(algorithms=sac(action_noise={"type": "pink", "sigma": 0.1})),
        ["unknown action_noise type 'pink'"],
    ),
    (
        "noise-extra-key",
        suite_yaml(algorithms=sac(action_noise={"sigma": 0.1, "theta": 0.2})),
        ["unknown key 'theta'"],
    ),
    ("noise-not-a-mapping", suite_yaml(algorithms=sac(action_noise=[0.1])), ["action_noise"]),
    ("policy-kwargs-list", suite_yaml(algorithms=sac(policy_kwargs=[64, 64])), ["policy_kwargs"]),
    (
        "activation-unknown",
        suite_yaml(algorithms=sac(policy_kwargs={"activation_fn": "relux"})),
        ["'relux'", "did you mean 'relu'"],
    ),
    (
        "activation-not-text",
        suite_yaml(algorithms=sac(policy_kwargs={"activation_fn": 3})),
        ["activation_fn"],
    ),
    (
        "activation-not-a-class",
        suite_yaml(algorithms=sac(policy_kwargs={"activation_fn": "torch.nn.functional.relu"})),
        ["not a class"],
    ),
    (
        "unknown-policy",
        suite_yaml(algorithms={"sac": {"policy": "MlpPolicyy"}}),
        ["no policy 'MlpPolicyy'", "did you mean 'MlpPolicy'"],
    ),
    (
        "algorithm-empty-module",
        suite_yaml(algorithms={"mine": {"algo": ":Foo"}}),
        ["module", "empty"],
    ),
    (
        "algorithm-relative-module",
        suite_yaml(algorithms={"mine": {"algo": ".mod:Foo"}}),
        ["relative"],
    ),
    (
        "algorithm-empty-attribute",
        suite_yaml(algorithms={"mine": {"algo": "stable_baselines3:"}}),
        ["not a class name"],
    ),
    ("algorithm-two-colons", suite_yaml(algorithms={"mine": {"algo": "a:b:c"}}), ["module:Class"]),
    (
        "algorithm-not-a-class",
        suite_yaml(algorithms={"mine": {"algo": "os:getcwd"}}),
        ["stable-baselines3 API"],
    ),
    (
        "wrapper-no-colon",
        suite_yaml(environments=[{"id": "Pendulum-v1", "wrappers": ["ClipAction"]}]),
        ["module:Class"],
    ),
    (
        "wrapper-empty-module",
        suite_yaml(environments=[{"id": "Pendulum-v1", "wrappers": [":W"]}]),
        ["empty"],
    ),
    (
        "wrapper-not-callable",
        suite_yaml(environments=[{"id": "Pendulum-v1", "wrappers": ["math:pi"]}]),
        ["not a class"],
    ),
]


@pytest.mark.parametrize(
    ("text", "expected"), [c[1:] for c in HYPERPARAMETERS], ids=[c[0] for c in HYPERPARAMETERS]
)
def test_values_that_cannot_work_are_refused_early(
    tmp_path: Path, text: str, expected: list[str]
) -> None:
    message = refused(tmp_path, write(tmp_path, text))
    for part in expected:
        assert part in message, f"{part!r} not in {message!r}"


@pytest.fixture
def modules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[str, str], None]:
    """``modules(name, source)`` writes an importable module (beside, not inside, the suite's
    folder checks: it lives in its own subfolder, made before the snapshot)."""
    folder = tmp_path / "modules"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))

    def make(name: str, source: str) -> None:
        (folder / f"{name}.py").write_text(textwrap.dedent(source))

    return make


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("raise RuntimeError('boom at import')\n", ["RuntimeError", "boom at import"]),
        ("import sys\nsys.exit(3)\n", ["SystemExit"]),
        ("x = (\n", ["SyntaxError"]),
    ],
    ids=["raises", "exits", "syntax-error"],
)
@pytest.mark.parametrize("role", ["algorithm", "wrapper"])
def test_a_module_that_fails_to_import(
    tmp_path: Path, modules: Callable[[str, str], None], source: str, expected: list[str], role: str
) -> None:
    name = f"faulty_{role}_module"
    modules(name, source)
    if role == "algorithm":
        text = suite_yaml(algorithms={"mine": {"algo": f"{name}:Algo"}})
    else:
        text = suite_yaml(environments=[{"id": "Pendulum-v1", "wrappers": [f"{name}:Wrap"]}])
    message = refused(tmp_path, write(tmp_path, text))
    for part in [f"cannot import module '{name}'", *expected]:
        assert part in message, f"{part!r} not in {message!r}"


# --- meaning: caught by building the env and the model in the preflight process -----------------

PREFLIGHT: list[tuple[str, str, list[str]]] = [
    (
        "sac-on-a-discrete-env",
        suite_yaml(environments=["CartPole-v1"]),
        ["suite.yaml:3:", "algorithms.sac × CartPole-v1", "Discrete(2)", "not supported"],
    ),
    (
        "env-kwargs-the-env-rejects",
        suite_yaml(environments=[{"id": "Pendulum-v1", "kwargs": {"gravity": 3.7}}]),
        ["suite.yaml:8:", "environment 'Pendulum-v1' cannot be made", "gravity"],
    ),
    (
        "net-arch-nonsense",
        suite_yaml(algorithms=sac(policy_kwargs={"net_arch": "wide"})),
        ["algorithms.sac × Pendulum-v1", "SAC cannot be built", "net_arch"],
    ),
    (
        "noise-sigma-per-dimension-of-the-wrong-length",
        suite_yaml(algorithms=sac(action_noise={"sigma": [0.1, 0.2]})),
        ["algorithms.sac × Pendulum-v1", "2 values", "1 dimensions"],
    ),
]


@pytest.mark.parametrize(
    ("text", "expected"), [c[1:] for c in PREFLIGHT], ids=[c[0] for c in PREFLIGHT]
)
def test_preflight_builds_what_a_run_would(tmp_path: Path, text: str, expected: list[str]) -> None:
    message = refused(tmp_path, write(tmp_path, text))
    for part in expected:
        assert part in message, f"{part!r} not in {message!r}"


NEEDS_EXTRA = """\
    import gymnasium as gym
    from gymnasium.error import DependencyNotInstalled


    class NeedsExtra(gym.Env):
        def __init__(self):
            print("noise on stdout from the environment")
            raise DependencyNotInstalled('fancy is not installed: pip install "gymnasium[fancy]"')


    gym.register("NeedsExtra-v0", entry_point=NeedsExtra)
"""
CRASHES = """\
    import os
    import signal

    import gymnasium as gym


    class Crashes(gym.Env):
        def __init__(self):
            os.kill(os.getpid(), signal.SIGSEGV)


    gym.register("Crashes-v0", entry_point=Crashes)
"""


HANGS = """\
    import time

    import gymnasium as gym


    class Hangs(gym.Env):
        def __init__(self):
            time.sleep(3600)


    gym.register("Hangs-v0", entry_point=Hangs)
"""


def test_env_that_needs_an_uninstalled_extra(
    tmp_path: Path, modules: Callable[[str, str], None]
) -> None:
    modules("needs_extra_env", NEEDS_EXTRA)
    text = suite_yaml(environments=["needs_extra_env:NeedsExtra-v0"])
    message = refused(tmp_path, write(tmp_path, text))
    assert "not installed" in message
    assert "gymnasium[fancy]" in message


def test_env_that_crashes_the_process_building_it(
    tmp_path: Path, modules: Callable[[str, str], None]
) -> None:
    modules("crashing_env", CRASHES)
    text = suite_yaml(environments=["crashing_env:Crashes-v0"])
    message = refused(tmp_path, write(tmp_path, text))
    assert "environment 'crashing_env:Crashes-v0' cannot be made" in message
    assert "SIGSEGV" in message


@pytest.mark.slow
def test_env_whose_constructor_hangs(
    tmp_path: Path, modules: Callable[[str, str], None], monkeypatch: pytest.MonkeyPatch
) -> None:
    from maxbench.suite import preflight

    monkeypatch.setattr(preflight, "JOB_TIMEOUT_S", 20.0)
    modules("hanging_env", HANGS)
    text = suite_yaml(environments=["hanging_env:Hangs-v0"])
    message = one_error_line(invoke("validate", write(tmp_path, text)))  # once: it takes 20 s
    assert "hanging_env:Hangs-v0" in message
    assert "after 20 s" in message


def test_preflight_output_stays_off_the_terminal(tmp_path: Path, subprocess_env) -> None:
    """Through a real process: what the env prints in the check process is not shown, the
    error is the only line (stderr), stdout is empty."""
    modules = tmp_path / "modules"
    modules.mkdir()
    (modules / "needs_extra_env.py").write_text(textwrap.dedent(NEEDS_EXTRA))
    suite = write(tmp_path, suite_yaml(environments=["needs_extra_env:NeedsExtra-v0"]))
    env = dict(subprocess_env)
    env["PYTHONPATH"] = os.pathsep.join([str(modules), env.get("PYTHONPATH", "")])
    result = subprocess.run(
        [sys.executable, "-m", "maxbench", "validate", str(suite)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "not installed" in lines[0]


def test_cheap_errors_come_before_the_preflight(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A name error is reported even when the preflight would also fail (on CartPole)."""
    text = suite_yaml(
        algorithms={"sac": {"hyperparams": {"default": {"learnin_rate": 0.1}}}},
        environments=["CartPole-v1"],
    )
    message = refused(tmp_path, write(tmp_path, text))
    assert "did you mean 'learning_rate'" in message


def test_a_valid_suite_passes_the_preflight_and_huge_schedules_are_not_materialised(
    tmp_path: Path,
) -> None:
    text = suite_yaml(budget=10**12, evaluation={"every": 1, "episodes": 1}, seeds=MAX_SEED_COUNT)
    result = invoke("validate", write(tmp_path, text))
    assert result.exit_code == 0, result.output
    assert f"{MAX_SEED_COUNT} seeds" in result.output
