"""The finishing sequence: a crash between any two of its steps loses nothing (issue 16).

A driver process trains one tiny cell and kills itself (``os._exit``, no cleanup, like
``kill -9``) at a chosen point of :data:`maxbench.suite.cell_runner.FINISH_STEPS`: before each
step, after the last one, and in the middle of writing the final model. The cell is then run
again, and:

- a cell whose run.json was written ``finished`` is not retrained: run.json, model.zip and
  evals.csv are byte-identical;
- in every case the cell ends finished, evals.csv has every evaluation timestep exactly once,
  the evaluations recorded up to the last checkpoint are kept as they were, and no temporary
  file or checkpoint is left.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from maxbench.results.layout import read_evals, read_run_json
from maxbench.suite.cell_runner import FINISH_STEPS, run_cell
from maxbench.suite.cells import Cell

from conftest import tiny_cell as conftest_tiny_cell

EVAL_STEPS = [50, 100, 150, 200]
CHECKPOINT_STEP = 100
RECORDED_FINISHED = FINISH_STEPS.index("record_finished") + 1  # steps done once it is written

DRIVER = textwrap.dedent(
    """
    import contextlib, json, os, sys
    from pathlib import Path
    from maxbench.suite import cell_runner
    from maxbench.suite.cells import Cell

    cell = Cell.from_dict(json.loads(sys.argv[1]))
    steps = cell_runner.FINISH_STEPS


    def arm(crash):
        \"\"\"Make this process die (os._exit: no cleanup, like kill -9) at ``crash``.\"\"\"

        def wrap(index, name):
            original = getattr(cell_runner.CellRun, name)

            def step(self, finishing=None):
                if finishing is not None and crash == f"gap:{index}":
                    os._exit(77)  # before this step
                original(self, finishing)
                last = index + 1 == len(steps)
                if finishing is not None and last and crash == f"gap:{index + 1}":
                    os._exit(77)  # after the last step, before run_cell returns

            return step

        for index, name in enumerate(steps):
            setattr(cell_runner.CellRun, name, wrap(index, name))
        if crash == "inside:save_final_model":
            real_atomic_open = cell_runner.atomic_open

            @contextlib.contextmanager
            def dying_open(path, mode="w"):
                with real_atomic_open(path, mode) as handle:
                    yield handle
                    handle.flush()
                    os._exit(77)  # the temporary model file is written, not yet renamed

            cell_runner.atomic_open = dying_open


    codes = {}
    for crash, out in json.loads(sys.argv[2]).items():
        pid = os.fork()  # one child per crash point: the imports are paid once
        if pid == 0:
            arm(crash)
            cell_runner.run_cell(cell, Path(out))
            os._exit(3)  # ran to the end without crashing: the hook did not fire
        codes[crash] = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
    print(json.dumps(codes))
    """
)

CRASH_POINTS = [f"gap:{i}" for i in range(len(FINISH_STEPS) + 1)] + ["inside:save_final_model"]


def tiny_cell() -> Cell:
    """The shared tiny cell (conftest), in this module's suite folder."""
    return conftest_tiny_cell(suite="finish", checkpoint_every=CHECKPOINT_STEP)


def _leftovers(folder: Path) -> list[str]:
    """Temporary files and staging folders anywhere in the cell's folder."""
    return [
        str(path.relative_to(folder))
        for path in folder.rglob(".*")
        if path.name != ".lock" and (path.name.endswith(".tmp") or ".tmp." in path.name)
    ]


@pytest.fixture(scope="module")
def crashed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Run the cell once per crash point, each in its own results folder; crash -> folder."""
    root = tmp_path_factory.mktemp("crashed")
    outs = {crash: root / crash.replace(":", "_") for crash in CRASH_POINTS}
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            DRIVER,
            json.dumps(tiny_cell().to_dict()),
            json.dumps({crash: str(out) for crash, out in outs.items()}),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "OMP_NUM_THREADS": "1", "SB3_LOGDIR": str(root / "sb3-default")},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    codes = json.loads(result.stdout.strip().splitlines()[-1])
    assert codes == {crash: 77 for crash in CRASH_POINTS}, codes
    return outs


def _snapshot(folder: Path) -> dict[str, bytes | None]:
    names = ("run.json", "model.zip", "evals.csv")
    return {n: (folder / n).read_bytes() if (folder / n).exists() else None for n in names}


def test_the_crash_points_cover_every_gap_of_the_sequence() -> None:
    assert FINISH_STEPS.index("save_final_model") < FINISH_STEPS.index("record_finished")
    assert FINISH_STEPS.index("record_finished") < FINISH_STEPS.index("remove_checkpoints")
    assert len([p for p in CRASH_POINTS if p.startswith("gap:")]) == len(FINISH_STEPS) + 1


@pytest.mark.slow
@pytest.mark.parametrize("crash", CRASH_POINTS)
def test_a_crash_in_the_finishing_sequence_loses_nothing(
    crash: str, crashed: dict[str, Path], capfd: pytest.CaptureFixture[str]
) -> None:
    cell, out = tiny_cell(), crashed[crash]
    folder = cell.folder(out)

    before = _snapshot(folder)
    rows_before = read_evals(folder)
    assert [r.timestep for r in rows_before] == EVAL_STEPS  # the last evaluation was written
    recorded_finished = crash.startswith("gap:") and int(crash[4:]) >= RECORDED_FINISHED
    assert (read_run_json(folder)["status"] == "finished") is recorded_finished
    if crash == "inside:save_final_model":
        assert _leftovers(folder), "the crash should have left a temporary model file"

    assert run_cell(cell, out) == "finished"

    run = read_run_json(folder)
    rows = read_evals(folder)
    assert [r.timestep for r in rows] == EVAL_STEPS  # every evaluation exactly once
    if recorded_finished:
        assert _snapshot(folder) == before, "a finished cell was trained again"
        assert len(run["attempts"]) == 1
    else:
        # Resumed from the checkpoint, which the sequence had not removed yet: the rows up to
        # it are kept as they were, the later ones are evaluated again.
        assert [a["resumed_from"] for a in run["attempts"]] == [0, CHECKPOINT_STEP]
        assert [r for r in rows if r.timestep <= CHECKPOINT_STEP] == [
            r for r in rows_before if r.timestep <= CHECKPOINT_STEP
        ]
        assert run["timings"]["env_steps"] == cell.budget
    assert run["final"]["timestep"] == cell.budget
    assert (folder / "model.zip").stat().st_size > 0
    assert not (folder / "checkpoints").exists()
    assert _leftovers(folder) == []
    assert "Traceback" not in "".join(capfd.readouterr())
