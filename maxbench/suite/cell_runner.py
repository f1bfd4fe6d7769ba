"""One cell's training loop: build, resume, train in segments, evaluate, checkpoint, record.

The loop trains with SB3's own ``learn`` between boundaries (evaluation and checkpoint steps), so
at every boundary the model, its optimizers and its replay buffer are in a consistent state:
an evaluation row at timestep t and a checkpoint at t describe the same model. A resumed cell
keeps the evaluation rows up to its checkpoint and trains on from there, so evals.csv never has a
duplicated or a missing evaluation timestep.
"""

from __future__ import annotations

import datetime as dt
import logging
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.logger import configure

from maxbench import provenance
from maxbench.registry import resolve_algorithm
from maxbench.results.atomic import write_json_atomic
from maxbench.results.layout import (
    FAILED,
    FINISHED,
    INTERRUPTED,
    MODEL_ZIP,
    RUNNING,
    SB3_LOGS,
    TRAIN_LOG,
    EvalRow,
    read_evals,
    read_run_json,
    write_evals,
)
from maxbench.results.lock import cell_lock
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


def boundaries(cell: Cell) -> list[tuple[int, bool, bool]]:
    """Sorted (timestep, evaluate?, checkpoint?) points up to the budget.

    Evaluations every ``eval_every`` steps and at the budget; checkpoints every
    ``checkpoint_every`` steps before the budget (the final model is saved at the budget).
    """
    evals = set(range(cell.eval_every, cell.budget + 1, cell.eval_every)) | {cell.budget}
    checkpoints = set(range(cell.checkpoint_every, cell.budget, cell.checkpoint_every))
    return [(t, t in evals, t in checkpoints) for t in sorted(evals | checkpoints)]


def evaluation_seed(cell: Cell, timestep: int) -> int:
    """The eval env's seed at ``timestep``: fixed by (seed, timestep), so resumes repeat it."""
    return (1_000_003 * (cell.seed + 1) + timestep) % _SEED_MODULUS


def training_seed(cell: Cell, timestep: int) -> int:
    """The training env's seed when (re)starting at ``timestep``."""
    return (cell.seed + 7_919 * timestep) % _SEED_MODULUS


class CellRun:
    """Runs one cell in its folder; use :func:`run_cell`."""

    def __init__(self, cell: Cell, folder: Path, report: ProgressFn | None) -> None:
        self.cell, self.folder, self.report = cell, Path(folder), report
        self.log = _file_logger(self.folder / TRAIN_LOG, cell.key)
        self.run: dict[str, Any] = read_run_json(self.folder) or {}
        self.attempt_monotonic = time.monotonic()
        self.timing = {"train_time_s": 0.0, "eval_time_s": 0.0, "wall_time_s": 0.0}

    # -- run.json -----------------------------------------------------------------------------
    def _write_run(self, status: str, **fields: Any) -> None:
        self.run.update(status=status, **fields)
        self.run["updated_at"] = _now()
        write_json_atomic(self.folder / "run.json", self.run)

    def _record_end(self, status: str, **fields: Any) -> str:
        """Write the final status; if even that fails (a full disk), say so on stderr."""
        if self.run.get("attempts"):
            self.run["attempts"][-1].update(ended_at=_now(), wall_time_s=self._attempt_wall())
        try:
            self._write_run(status, **fields)
        except OSError as err:
            print(
                f"maxbench: {self.cell.key}: cannot record status {status}: {err}", file=sys.stderr
            )
        return status

    def _attempt_wall(self) -> float:
        return time.monotonic() - self.attempt_monotonic

    # -- building and resuming ----------------------------------------------------------------
    def _build(self) -> tuple[Any, int, list[EvalRow]]:
        cls, _ = resolve_algorithm(self.cell.algo_target)
        found = ckpt.find_checkpoint(self.folder, log=self.log.warning)
        if found is None:
            env = training_env(self.cell, seed=training_seed(self.cell, 0))
            action_dim = int(np.prod(env.action_space.shape or (1,)))
            kwargs = convert_hyperparameters(self.cell.hyperparams, action_dim, algorithm=cls)
            kwargs.setdefault("verbose", 0)
            model = cls(self.cell.policy, env, seed=self.cell.seed, **kwargs)
            if read_evals(self.folder):
                self.log.warning("no usable checkpoint: restarting from scratch")
            return model, 0, []
        timestep = int(found.state["timestep"])
        self.log.info("resuming from checkpoint at timestep %d", timestep)
        env = training_env(self.cell, seed=training_seed(self.cell, timestep))
        action_dim = int(np.prod(env.action_space.shape or (1,)))
        custom = {
            key: value
            for key, value in convert_hyperparameters(self.cell.hyperparams, action_dim).items()
            if key in ("action_noise",)
        }
        model = cls.load(found.model_path, env=env, custom_objects=custom or None)
        if found.replay_buffer_path is not None:
            model.load_replay_buffer(found.replay_buffer_path)
        ckpt.restore_rng_state(torch.load(found.folder / "rng.pt", weights_only=False))
        for key in self.timing:
            self.timing[key] = float(found.state.get(key, 0.0))
        rows = [row for row in read_evals(self.folder) if row.timestep <= timestep]
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
            "eval_time_s": self.timing["eval_time_s"],
            "wall_time_s": self.timing["wall_time_s"] + self._attempt_wall(),
        }

    def execute(self) -> str:
        cell = self.cell
        attempts = self.run.get("attempts", [])
        attempts.append({"started_at": _now(), "pid": _pid()})
        model, start, rows = self._build()
        attempts[-1]["resumed_from"] = start
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
        self._write_run(RUNNING)
        sb3_folder = self.folder / SB3_LOGS / f"attempt_{len(attempts)}"
        model.set_logger(configure(str(sb3_folder), ["csv", "log"]))
        eval_env = evaluation_env(cell)
        watchdog = CellWatchdog(self.report)
        last_eval = rows[-1].timestep if rows else 0
        for point, do_eval, do_checkpoint in boundaries(cell):
            if point <= start:
                continue
            remaining = point - model.num_timesteps
            if remaining > 0:
                started = time.monotonic()
                try:
                    model.learn(remaining, reset_num_timesteps=False, callback=watchdog)
                except NonFiniteError:
                    raise
                except Exception as error:
                    raise (explain_crash(model, error) or error) from error
                self.timing["train_time_s"] += time.monotonic() - started
            timestep = int(model.num_timesteps)
            watchdog.check()
            if stop_requested():
                return self._stop_gracefully(model, timestep)
            if do_eval and timestep > last_eval:
                rows.append(self._evaluate(model, eval_env, timestep))
                last_eval = timestep
                write_evals(self.folder, rows)
            if do_checkpoint:
                ckpt.save_checkpoint(self.folder, model, self._state(timestep))
            if self.report is not None:
                self.report(timestep)
        model.save(self.folder / f".{MODEL_ZIP}.tmp.zip")
        (self.folder / f".{MODEL_ZIP}.tmp.zip").replace(self.folder / MODEL_ZIP)
        ckpt.remove_checkpoints(self.folder)
        eval_env.close()
        model.get_env().close()
        return self._finish(model, rows)

    def _stop_gracefully(self, model: Any, timestep: int) -> str:
        """A stop was requested: checkpoint where training stopped, then mark interrupted."""
        ckpt.save_checkpoint(self.folder, model, self._state(timestep))
        self.log.warning("stop requested: checkpoint written at timestep %d", timestep)
        return self.interrupt()

    def _finish(self, model: Any, rows: list[EvalRow]) -> str:
        trained = int(model.num_timesteps)
        wall = self.timing["wall_time_s"] + self._attempt_wall()
        self.run["attempts"][-1].update(ended_at=_now(), wall_time_s=self._attempt_wall())
        self._write_run(
            FINISHED,
            ended_at=_now(),
            timings={
                "env_steps": trained,
                "train_time_s": round(self.timing["train_time_s"], 3),
                "eval_time_s": round(self.timing["eval_time_s"], 3),
                "wall_time_s": round(wall, 3),
                "env_steps_per_s": round(trained / max(self.timing["train_time_s"], 1e-9), 2),
            },
            final={
                "timestep": rows[-1].timestep if rows else trained,
                "mean_return": rows[-1].mean_return if rows else None,
                "std_return": rows[-1].std_return if rows else None,
                "episodes": len(rows[-1].returns) if rows else 0,
            },
        )
        self.log.info("finished: %d env steps in %.1f s", trained, wall)
        return FINISHED

    def fail(self, error: BaseException) -> str:
        text = "".join(traceback.format_exception(error))
        self.log.error("run failed:\n%s", text)
        return self._record_end(
            FAILED, ended_at=_now(), error=f"{type(error).__name__}: {error}", traceback=text
        )

    def interrupt(self) -> str:
        self.log.warning("interrupted; the next run resumes from the last checkpoint")
        return self._record_end(INTERRUPTED)


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
    ``retry_failed``) while this one waited is left as it is.
    """
    folder = cell.folder(out)
    clear_stop()
    try:
        with cell_lock(folder):
            status = (read_run_json(folder) or {}).get("status")
            if status == FINISHED or (status == FAILED and not retry_failed):
                return status
            run = CellRun(cell, folder, report)
            try:
                return run.execute()
            except KeyboardInterrupt:
                return run.interrupt()
            except Exception as error:  # noqa: BLE001  (a crash is recorded, never propagated)
                return run.fail(error)
            finally:
                logging.getLogger(f"maxbench.cell.{cell.key}").handlers.clear()
    except OSError as err:  # the folder cannot even be written: nothing to record it in
        print(f"maxbench: {cell.key}: cannot write to {folder}: {err}", file=sys.stderr)
        return FAILED


def _file_logger(path: Path, name: str) -> logging.Logger:
    path.parent.mkdir(parents=True, exist_ok=True)
    logger = logging.getLogger(f"maxbench.cell.{name}")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    logger.handlers.clear()
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logger.addHandler(handler)
    return logger


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def _pid() -> int:
    import os

    return os.getpid()
