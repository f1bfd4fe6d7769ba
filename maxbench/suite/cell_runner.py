"""One cell's training loop: build, resume, train in segments, evaluate, checkpoint, record.

The loop trains with SB3's own ``learn`` between boundaries (evaluation and checkpoint steps), so
at every boundary the model, its optimizers and its replay buffer are in a consistent state:
an evaluation row at timestep t and a checkpoint at t describe the same model. A resumed cell
keeps the evaluation rows up to its checkpoint and trains on from there, so evals.csv never has a
duplicated or a missing evaluation timestep.

The finishing sequence (:data:`FINISH_STEPS`) is ordered so that a crash between any two of its
steps loses nothing: evals.csv already holds the last evaluation; the final model is written
durably; then run.json says ``finished`` (a finished cell is never trained again); only then are
the checkpoints removed and the environments closed. A crash before ``finished`` is written
resumes from the last checkpoint, which is still there.

Every write that fails (a full disk: ENOSPC, EDQUOT, EIO) fails the cell with the system's
message, recorded in run.json's ``error`` when run.json can still be written, else printed on
stderr as ``maxbench: <cell>: <what> failed: [Errno 28] No space left on device``; no temporary
file is left behind and every file written before is intact.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.logger import configure

from maxbench import provenance
from maxbench.engine.compiled import compile_seconds
from maxbench.registry import resolve_algorithm
from maxbench.results.atomic import atomic_open, is_temporary_name, write_json_atomic
from maxbench.results.layout import (
    DAMAGED,
    FAILED,
    FINISHED,
    INTERRUPTED,
    MODEL_ZIP,
    RUN_JSON,
    RUNNING,
    SB3_LOGS,
    TRAIN_LOG,
    DamagedCellError,
    EvalRow,
    read_cell,
    read_evals,
    write_evals,
)
from maxbench.results.lock import LockUnsupportedError, cell_lock
from maxbench.suite import checkpoint as ckpt
from maxbench.suite.cells import Cell
from maxbench.suite.environments import evaluation_env, training_env
from maxbench.suite.health import (
    CellWatchdog,
    NonFiniteError,
    clear_stop,
    explain_crash,
    stop_requested,
)
from maxbench.suite.hyperparams import convert_hyperparameters

ProgressFn = Callable[[int], None]
_SEED_MODULUS = 2**31 - 1
# The finishing sequence, in order; each name is a method of CellRun taking a _Finishing.
FINISH_STEPS = ("save_final_model", "record_finished", "remove_checkpoints", "close_envs")
# A temporary final model of maxbench versions before issue 16 (SB3 appends ".zip").
_LEGACY_MODEL_TEMP = f".{MODEL_ZIP}.tmp.zip"


def boundaries(cell: Cell, after: int = 0) -> Iterator[tuple[int, bool, bool]]:
    """(timestep, evaluate?, checkpoint?) points in ``(after, budget]``, in increasing order.

    Evaluations every ``eval_every`` steps and at the budget; checkpoints every
    ``checkpoint_every`` steps before the budget (the final model is saved at the budget).
    Lazy: each point is computed from the previous one, so ``every: 1`` with a budget of 10**15
    costs nothing up front (issue 16, "Unbounded work").
    """
    budget, every, checkpoint_every = cell.budget, cell.eval_every, cell.checkpoint_every
    if min(every, checkpoint_every) < 1:
        raise ValueError("eval_every and checkpoint_every must be at least 1")
    timestep = max(0, after)
    while timestep < budget:
        next_eval = min((timestep // every + 1) * every, budget)
        next_checkpoint = (timestep // checkpoint_every + 1) * checkpoint_every
        point = min(next_eval, next_checkpoint)
        yield point, point == next_eval, point == next_checkpoint and point < budget
        timestep = point


def evaluation_seed(cell: Cell, timestep: int) -> int:
    """The eval env's seed at ``timestep``: fixed by (seed, timestep), so resumes repeat it."""
    return (1_000_003 * (cell.seed + 1) + timestep) % _SEED_MODULUS


def training_seed(cell: Cell, timestep: int) -> int:
    """The training env's seed when (re)starting at ``timestep``."""
    return (cell.seed + 7_919 * timestep) % _SEED_MODULUS


class ResultWriteError(Exception):
    """Writing one of the cell's files failed; says what, with the system's message."""

    def __init__(self, what: str, cause: OSError) -> None:
        super().__init__(f"{what} failed: {cause}")
        self.what, self.cause = what, cause


@contextlib.contextmanager
def writing(what: str) -> Iterator[None]:
    """Turn an OSError of the block into a ResultWriteError saying ``what`` was being done."""
    try:
        yield
    except OSError as err:
        raise ResultWriteError(what, err) from err


def remove_temporary_files(folder: Path) -> list[str]:
    """Remove the temporary files an interrupted write left in a cell's folder; return them.

    Only maxbench's own temporary names: atomic writes' ``.<name>.<random>.tmp``, the old
    ``.model.zip.tmp.zip`` and checkpoints' staging folders ``checkpoints/.step_<t>.tmp``.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = []
    for path in folder.iterdir():
        temporary = is_temporary_name(path.name) or path.name == _LEGACY_MODEL_TEMP
        if temporary and path.is_file() and not path.is_symlink():
            path.unlink(missing_ok=True)
            removed.append(path.name)
    return removed + [f"checkpoints/{name}" for name in ckpt.remove_temporary(folder)]


@dataclass
class _Finishing:
    """What the finishing steps work on."""

    model: Any
    rows: list[EvalRow]


class CellRun:
    """Runs one cell in its folder; use :func:`run_cell`."""

    def __init__(
        self, cell: Cell, folder: Path, report: ProgressFn | None, run: dict[str, Any] | None
    ) -> None:
        self.cell, self.folder, self.report = cell, Path(folder), report
        self.log = _file_logger(self.folder / TRAIN_LOG, cell.key)
        self.run: dict[str, Any] = dict(run or {})
        self.attempt_monotonic = time.monotonic()
        self.timing = {
            "train_time_s": 0.0,
            "compile_time_s": 0.0,
            "eval_time_s": 0.0,
            "wall_time_s": 0.0,
        }
        self.envs: list[Any] = []

    # -- run.json -----------------------------------------------------------------------------
    def _write_run(self, status: str, **fields: Any) -> None:
        """Write run.json with ``status`` and ``fields``; ``self.run`` changes only on success."""
        updated = {**self.run, "status": status, **fields, "updated_at": _now()}
        write_json_atomic(self.folder / RUN_JSON, updated)
        self.run = updated

    def _record_end(self, status: str, **fields: Any) -> str:
        """Write the final status; if even that fails (a full disk), say so on stderr.

        A cell whose run.json already says ``finished`` stays finished: a failure after that
        point (removing checkpoints, closing envs) cannot undo a completed run.
        """
        if self.run.get("status") == FINISHED:
            self.log.warning("%s after the run was recorded finished; it stays finished", status)
            return FINISHED
        if self.run.get("attempts"):
            self.run["attempts"][-1].update(ended_at=_now(), wall_time_s=self._attempt_wall())
        try:
            self._write_run(status, **fields)
        except OSError:
            try:  # a smaller run.json may still fit (a quota): the traceback is in train.log
                self._write_run(status, **{k: v for k, v in fields.items() if k != "traceback"})
            except OSError as err:
                what = fields.get("error") or f"recording status {status}"
                print(
                    f"maxbench: {self.cell.key}: {what} (and writing {RUN_JSON} failed: {err})",
                    file=sys.stderr,
                )
        return status

    def _attempt_wall(self) -> float:
        return time.monotonic() - self.attempt_monotonic

    # -- building and resuming ----------------------------------------------------------------
    def _previous_evals(self) -> list[EvalRow] | None:
        """evals.csv's rows, or None when it is damaged (then nothing of it can be kept)."""
        try:
            return read_evals(self.folder)
        except DamagedCellError as err:
            self.log.warning("%s; its evaluations cannot be kept", err)
            return None

    def _build(self) -> tuple[Any, int, list[EvalRow]]:
        cls, _ = resolve_algorithm(self.cell.algo_target)
        previous = self._previous_evals()
        found = ckpt.find_checkpoint(self.folder, log=self.log.warning)
        if found is not None and previous is None:
            self.log.warning("evals.csv is damaged: the checkpoint cannot be resumed")
            found = None
        if found is None:
            env = training_env(self.cell, seed=training_seed(self.cell, 0))
            self.envs.append(env)
            action_dim = int(np.prod(env.action_space.shape or (1,)))
            kwargs = convert_hyperparameters(self.cell.hyperparams, action_dim, algorithm=cls)
            kwargs.setdefault("verbose", 0)
            model = cls(
                self.cell.policy, env, seed=self.cell.seed, device=self.cell.device, **kwargs
            )
            if previous is None or previous:
                self.log.warning("no usable checkpoint: restarting from scratch")
            return model, 0, []
        timestep = found.timestep
        self.log.info("resuming from checkpoint at timestep %d", timestep)
        env = training_env(self.cell, seed=training_seed(self.cell, timestep))
        self.envs.append(env)
        action_dim = int(np.prod(env.action_space.shape or (1,)))
        custom = {
            key: value
            for key, value in convert_hyperparameters(self.cell.hyperparams, action_dim).items()
            if key in ("action_noise",)
        }
        model = cls.load(
            found.model_path, env=env, device=self.cell.device, custom_objects=custom or None
        )
        if found.replay_buffer_path is not None:
            model.load_replay_buffer(found.replay_buffer_path)
        ckpt.restore_rng_state(found.rng)
        for key in self.timing:
            self.timing[key] = float(found.state.get(key, 0.0))
        rows = [row for row in previous or [] if row.timestep <= timestep]
        return model, timestep, rows

    # -- the loop -------------------------------------------------------------------------------
    def _evaluate(self, model: Any, eval_env: Any, timestep: int) -> EvalRow:
        eval_env.seed(evaluation_seed(self.cell, timestep))
        started = time.monotonic()
        numpy_state = np.random.get_state()
        with torch.random.fork_rng(devices=[]):
            returns, lengths = evaluate_policy(
                model,
                eval_env,
                n_eval_episodes=self.cell.eval_episodes,
                deterministic=self.cell.eval_deterministic,
                return_episode_rewards=True,
                warn=False,
            )
        np.random.set_state(numpy_state)
        self.timing["eval_time_s"] += time.monotonic() - started
        row = EvalRow(
            timestep=timestep,
            wall_time_s=self.timing["wall_time_s"] + self._attempt_wall(),
            returns=tuple(float(r) for r in returns),
            lengths=tuple(int(n) for n in lengths),
        )
        self.log.info("eval at %d: mean return %.3f", timestep, row.mean_return)
        return row

    def _state(self, timestep: int) -> dict[str, Any]:
        return {
            "timestep": timestep,
            "train_time_s": self.timing["train_time_s"],
            "compile_time_s": self.timing["compile_time_s"],
            "eval_time_s": self.timing["eval_time_s"],
            "wall_time_s": self.timing["wall_time_s"] + self._attempt_wall(),
        }

    def _checkpoint(self, model: Any, timestep: int) -> None:
        with writing(f"writing the checkpoint at timestep {timestep}"):
            ckpt.save_checkpoint(self.folder, model, self._state(timestep))

    def _learn(self, model: Any, steps: int, watchdog: CellWatchdog) -> None:
        """Train ``steps`` env steps; the time goes to ``train_time_s``, and the part of it that
        ``torch.compile`` spent compiling (a ``compile: true`` model) to ``compile_time_s`` too."""
        started, compiling = time.monotonic(), compile_seconds()
        try:
            model.learn(steps, reset_num_timesteps=False, callback=watchdog)
        except NonFiniteError:
            raise
        except OSError as error:  # SB3's progress log on a full disk, most often
            raise (explain_crash(model, error) or ResultWriteError("training", error)) from error
        except Exception as error:
            raise (explain_crash(model, error) or error) from error
        self.timing["train_time_s"] += time.monotonic() - started
        self.timing["compile_time_s"] += max(compile_seconds() - compiling, 0.0)

    def execute(self) -> str:
        cell = self.cell
        attempts = self.run.get("attempts", [])
        attempts.append({"started_at": _now(), "pid": os.getpid()})
        model, start, rows = self._build()
        attempts[-1]["resumed_from"] = start
        with writing("writing evals.csv"):
            write_evals(self.folder, rows)
        self.run.setdefault("started_at", _now())
        self.run.update(
            spec=cell.to_dict(),
            fingerprint=cell.fingerprint(),
            attempts=attempts,
            provenance=provenance.collect(
                device=str(model.device), threads=torch.get_num_threads()
            ),
        )
        self.run.pop("error", None)
        self.run.pop("traceback", None)
        with writing(f"writing {RUN_JSON}"):
            self._write_run(RUNNING)
        sb3_folder = self.folder / SB3_LOGS / f"attempt_{len(attempts)}"
        with writing("creating the SB3 progress log"):
            model.set_logger(configure(str(sb3_folder), ["csv", "log"]))
        eval_env = evaluation_env(cell)
        self.envs.append(eval_env)
        watchdog = CellWatchdog(self.report)
        last_eval = rows[-1].timestep if rows else 0
        for point, do_eval, do_checkpoint in boundaries(cell, after=start):
            remaining = point - model.num_timesteps
            if remaining > 0:
                self._learn(model, remaining, watchdog)
            timestep = int(model.num_timesteps)
            watchdog.check()
            if stop_requested():
                return self._stop_gracefully(model, timestep)
            if do_eval and timestep > last_eval:
                rows.append(self._evaluate(model, eval_env, timestep))
                last_eval = timestep
                with writing("writing evals.csv"):
                    write_evals(self.folder, rows)
            if do_checkpoint:
                self._checkpoint(model, timestep)
            if self.report is not None:
                self.report(timestep)
        finishing = _Finishing(model, rows)
        for step in FINISH_STEPS:
            getattr(self, step)(finishing)
        return FINISHED

    # -- the finishing sequence (FINISH_STEPS) ---------------------------------------------------
    def save_final_model(self, finishing: _Finishing) -> None:
        """Write model.zip durably (fsynced file, renamed, folder fsynced)."""
        with writing(f"writing {MODEL_ZIP}"), atomic_open(self.folder / MODEL_ZIP, "wb") as out:
            finishing.model.save(out)

    def record_finished(self, finishing: _Finishing) -> None:
        """Write run.json with status ``finished``, the timings and the final evaluation."""
        model, rows = finishing.model, finishing.rows
        trained = int(model.num_timesteps)
        wall = self.timing["wall_time_s"] + self._attempt_wall()
        # steady-state throughput: training time without the compilation it paid for
        steady = self.timing["train_time_s"] - self.timing["compile_time_s"]
        self.run["attempts"][-1].update(ended_at=_now(), wall_time_s=self._attempt_wall())
        with writing(f"writing {RUN_JSON}"):
            self._write_run(
                FINISHED,
                ended_at=_now(),
                timings={
                    "env_steps": trained,
                    "train_time_s": round(self.timing["train_time_s"], 3),
                    "compile_time_s": round(self.timing["compile_time_s"], 3),
                    "eval_time_s": round(self.timing["eval_time_s"], 3),
                    "wall_time_s": round(wall, 3),
                    "env_steps_per_s": round(trained / max(steady, 1e-9), 2),
                },
                final={
                    "timestep": rows[-1].timestep if rows else trained,
                    "mean_return": rows[-1].mean_return if rows else None,
                    "std_return": rows[-1].std_return if rows else None,
                    "episodes": len(rows[-1].returns) if rows else 0,
                },
            )
        self.log.info("finished: %d env steps in %.1f s", trained, wall)

    def remove_checkpoints(self, finishing: _Finishing) -> None:
        """Delete the checkpoints: the cell is recorded finished, nothing will resume them."""
        ckpt.remove_checkpoints(self.folder)

    def close_envs(self, finishing: _Finishing | None = None) -> None:
        """Close the training and evaluation environments (an error is logged, not raised)."""
        while self.envs:
            env = self.envs.pop()
            try:
                env.close()
            except Exception as err:  # noqa: BLE001  (the results are complete already)
                self.log.warning("closing an environment failed: %s: %s", type(err).__name__, err)

    # -- other endings ---------------------------------------------------------------------------
    def _stop_gracefully(self, model: Any, timestep: int) -> str:
        """A stop was requested: checkpoint where training stopped, then mark interrupted."""
        self._checkpoint(model, timestep)
        self.log.warning("stop requested: checkpoint written at timestep %d", timestep)
        return self.interrupt()

    def fail(self, error: BaseException) -> str:
        text = "".join(traceback.format_exception(error))
        self.log.error("run failed:\n%s", text)
        line = str(error) if isinstance(error, ResultWriteError) else _describe(error)
        return self._record_end(FAILED, ended_at=_now(), error=line, traceback=text)

    def interrupt(self) -> str:
        self.log.warning("interrupted; the next run resumes from the last checkpoint")
        return self._record_end(INTERRUPTED)


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


def run_cell(
    cell: Cell,
    out: Path,
    report: ProgressFn | None = None,
    retry_failed: bool = False,
) -> str:
    """Run (or resume) one cell under ``out``; return its final status.

    The caller fixes the process's torch thread count (the workers do, before importing torch).

    Never raises for a failure inside the run: the error and its traceback go to the cell's
    train.log and run.json, and the status is ``failed``. Raises CellBusyError when another
    process is training the same cell. A cell that another process finished (or failed, unless
    ``retry_failed``) while this one waited is left as it is, and so is a damaged one (a file
    that cannot be read as what maxbench wrote: its status is ``damaged``, nothing is written).
    """
    folder = cell.folder(out)
    clear_stop()
    try:
        with cell_lock(folder):
            removed = remove_temporary_files(folder)
            files = read_cell(folder)
            status = files.run.get("status") if files.run else None
            if status == FINISHED:
                ckpt.remove_checkpoints(folder)  # a crash may have left them: never needed
                return FINISHED
            if status == FAILED and not retry_failed:
                return FAILED
            if files.damage is not None:  # never run as it is: `run` sets it aside first
                print(f"maxbench: {cell.key}: damaged: {files.damage}", file=sys.stderr)
                return DAMAGED
            run = CellRun(cell, folder, report, files.run)
            if removed:
                run.log.warning("removed temporary files of an interrupted write: %s", removed)
            try:
                return run.execute()
            except KeyboardInterrupt:
                return run.interrupt()
            except Exception as error:  # noqa: BLE001  (a crash is recorded, never propagated)
                return run.fail(error)
            finally:
                run.close_envs()
                _close_logger(run.log)
    except LockUnsupportedError as err:
        return _fail_without_lock(cell, folder, err)
    except OSError as err:  # the folder cannot even be written: nothing to record it in
        print(f"maxbench: {cell.key}: cannot write to {folder}: {err}", file=sys.stderr)
        return FAILED


def _fail_without_lock(cell: Cell, folder: Path, error: LockUnsupportedError) -> str:
    """The cell cannot be locked: say why on stderr and, unless it is finished, in run.json."""
    print(f"maxbench: {cell.key}: {error}", file=sys.stderr)
    run = read_cell(folder).run
    if run is not None and run.get("status") == FINISHED:
        return FINISHED
    record = {**(run or {"spec": cell.to_dict()}), "status": FAILED, "error": str(error)}
    with contextlib.suppress(OSError):
        write_json_atomic(folder / RUN_JSON, record)
    return FAILED


class _QuietFileHandler(logging.FileHandler):
    """A FileHandler that never prints a traceback on the terminal when a write fails.

    The log is best effort: a full disk is reported through run.json or stderr by the runner,
    not by the ``--- Logging error ---`` tracebacks of :meth:`logging.Handler.handleError`.
    """

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802  (logging's name)
        return


def _file_logger(path: Path, name: str) -> logging.Logger:
    path.parent.mkdir(parents=True, exist_ok=True)
    logger = logging.getLogger(f"maxbench.cell.{name}")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    _close_logger(logger)
    handler = _QuietFileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logger.addHandler(handler)
    return logger


def _close_logger(logger: logging.Logger) -> None:
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
