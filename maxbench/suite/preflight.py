"""Check a suite's meaning before anything is written: build what every cell would build.

Names can be right and a suite still unrunnable: ``learning_rate: fast``, an unknown policy, SAC
on a discrete-action env, env kwargs the env rejects, an env that needs an uninstalled extra.
:func:`preflight_suite` finds these the way a run would, by doing it: it makes each environment
of the suite once (with :func:`maxbench.suite.environments.env_factory`, kwargs, episode limit
and wrappers exactly as a run does) and constructs each (algorithm, environment) model once with
the pair's merged hyperparameters converted for the env's real action size.

It does so in one throwaway spawned process (one torch thread, thread variables set before torch
is imported, its output discarded), so that a crash, a segfault or a memory-hungry constructor
cannot take the command down, and nothing it imports stays loaded. The replay buffer is shrunk to
:data:`PREFLIGHT_BUFFER_SIZE` and the device is the CPU unless the suite names one, so that the
check costs little. What passed is remembered for the life of the process, by what determines it.

The first failure becomes one :class:`UserInputError` that names the file and line, the algorithm
key and the environment, e.g. ``suite.yaml:7: algorithms.sac × Pendulum-v1: SAC cannot be built:
...``.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import re
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from maxbench.devices import device_problem
from maxbench.errors import UserInputError
from maxbench.suite.cells import Cell, pair_cells
from maxbench.suite.model import Suite
from maxbench.suite.yaml_loader import line_of

PREFLIGHT_BUFFER_SIZE = 1_000
JOB_TIMEOUT_S = 300.0  # one environment or model (the first also waits for torch's import)
MESSAGE_LIMIT = 400
_ENV, _MODEL = "env", "model"
# Jobs that passed, by key, for the life of the process: a job's outcome depends only on its key
# (and on what is installed: failures are not kept, so that installing a missing extra helps).
_PASSED: set[str] = set()


@dataclass(frozen=True)
class _Job:
    """One thing to build in the child: an environment or a model, described by a cell."""

    kind: str  # _ENV or _MODEL
    cell: dict[str, Any]
    env_index: int

    @property
    def key(self) -> str:
        """What determines the outcome: the algorithm target, policy and hyperparameters (for a
        model) and the environment spec."""
        cell = self.cell
        parts: dict[str, Any] = {
            "kind": self.kind,
            "env": [
                cell["env_id"],
                cell["env_kwargs"],
                cell["max_episode_steps"],
                cell["wrappers"],
            ],
            "n_envs": cell["n_envs"],
        }
        if self.kind == _MODEL:
            parts["model"] = [
                cell["algo_target"],
                cell["policy"],
                cell["hyperparams"],
                cell["seed"],
                cell.get("device", "auto"),
            ]
        return json.dumps(parts, sort_keys=True, default=repr)


def one_line(text: object, limit: int = MESSAGE_LIMIT) -> str:
    """``text`` on one line, at most ``limit`` characters."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def preflight_suite(suite: Suite, name: str, path: Path, node: yaml.Node | None = None) -> None:
    """Build every environment and (algorithm, environment) model of ``suite`` once, in a
    throwaway process; raise :class:`UserInputError` for the first that cannot be built."""
    check = Preflight(suite, name)
    try:
        check.finish(path, node)
    finally:
        check.cancel()


class Preflight:
    """A preflight check under way: started early (its process imports torch while the caller
    does the cheap checks), finished with :meth:`finish`, or abandoned with :meth:`cancel`."""

    def __init__(self, suite: Suite, name: str) -> None:
        self.jobs = _jobs(pair_cells(suite, name))
        self.problems: dict[str, str] = {}
        pending = [job for job in self.jobs if job.key not in _PASSED]
        self.child = _Child(pending, self.problems) if pending else None

    def finish(self, path: Path, node: yaml.Node | None = None) -> None:
        """Wait for the check; raise :class:`UserInputError` for the first failure."""
        if self.child is not None:
            self.child.collect()
            self.child = None
        for job in self.jobs:
            problem = self.problems.get(job.key)
            if problem is not None:
                raise UserInputError(f"{_where(path, node, job)}: {_subject(job)}{problem}")

    def cancel(self) -> None:
        """Stop the check's process if it still runs (the caller found a problem first)."""
        if self.child is not None:
            self.child.stop()
            self.child = None


def _jobs(pairs: list[Cell]) -> list[_Job]:
    """Each environment once (first), then each (algorithm, environment) model once."""
    env_names: list[str] = []
    for cell in pairs:
        if cell.env_name not in env_names:
            env_names.append(cell.env_name)
    envs: dict[str, _Job] = {}
    models: list[_Job] = []
    for cell in pairs:
        index = env_names.index(cell.env_name)
        envs.setdefault(cell.env_name, _Job(_ENV, cell.to_dict(), index))
        models.append(_Job(_MODEL, cell.to_dict(), index))
    return list(envs.values()) + models


def _where(path: Path, node: yaml.Node | None, job: _Job) -> str:
    if job.kind == _ENV:
        loc: tuple[Any, ...] = ("environments", job.env_index)
    else:
        loc = ("algorithms", job.cell["algo"])
    line = line_of(node, loc)
    return f"{path}:{line}" if line else f"{path}"


def _subject(job: _Job) -> str:
    if job.kind == _ENV:
        return ""
    return f"algorithms.{job.cell['algo']} × {job.cell['env_name']}: "


# --- the parent's side --------------------------------------------------------------------------


class _Child:
    """The throwaway process that runs ``jobs`` and records each outcome in the cache.

    The child stops at the first failure (the command reports only one). If it dies, the job it
    was working on is recorded as the failure, with the signal or exit code.
    """

    def __init__(self, jobs: list[_Job], problems: dict[str, str]) -> None:
        self.jobs, self.problems = jobs, problems
        context = multiprocessing.get_context("spawn")
        self.receiver, sender = context.Pipe(duplex=False)
        self.process = context.Process(
            target=child_main,
            args=([(job.kind, job.cell) for job in jobs], sender),
            name="maxbench-preflight",
        )
        self.process.start()
        sender.close()

    def collect(self) -> None:
        """Read the outcomes until the child ends; raise UserInputError if it broke down."""
        current: int | None = None
        try:
            while True:
                try:
                    if not self.receiver.poll(JOB_TIMEOUT_S):
                        self._record_stuck(current)
                        return
                    message = self.receiver.recv()
                except EOFError:
                    break
                if message[0] == "start":
                    current = message[1]
                elif message[0] == "done":
                    key, problem = self.jobs[message[1]].key, message[2]
                    if problem is None:
                        _PASSED.add(key)
                    else:
                        self.problems[key] = problem
                    current = None
                elif message[0] == "crash":
                    raise UserInputError(
                        "the check of the suite failed in its helper process: "
                        f"{one_line(message[1])}"
                    )
            self.process.join()
        finally:
            self.stop()
        if current is not None:
            self.problems[self.jobs[current].key] = _death(
                self.jobs[current], self.process.exitcode
            )
        elif self.process.exitcode not in (0, None):
            raise UserInputError(
                "the check of the suite failed: its helper process ended with "
                f"{_exit(self.process.exitcode)}"
            )

    def _record_stuck(self, current: int | None) -> None:
        """The child sent nothing for JOB_TIMEOUT_S: record the job it hangs on as the failure."""
        if current is None:
            raise UserInputError(
                f"the check of the suite failed: its helper process did not answer within "
                f"{JOB_TIMEOUT_S:.0f} s"
            )
        job = self.jobs[current]
        subject = f"environment {job.cell['env_id']!r}" if job.kind == _ENV else "the model"
        self.problems[job.key] = (
            f"{subject} was still being built after {JOB_TIMEOUT_S:.0f} s; "
            "does its constructor hang?"
        )

    def stop(self) -> None:
        """Close the pipe; end the process if it still runs."""
        self.receiver.close()
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(timeout=5)
        if self.process.is_alive():
            self.process.kill()
        self.process.join()


def _exit(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        try:
            return f"signal {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"signal {-exitcode}"
    return f"exit code {exitcode}"


def _death(job: _Job, exitcode: int | None) -> str:
    what = "made" if job.kind == _ENV else "built"
    subject = f"environment {job.cell['env_id']!r}" if job.kind == _ENV else "the model"
    return (
        f"{subject} cannot be {what}: the process building it died ({_exit(exitcode)}); "
        "a crash in native code (the environment's or a library's)?"
    )


# --- the child's side ---------------------------------------------------------------------------


def child_main(jobs: list[tuple[str, dict[str, Any]]], sender: Any) -> None:
    """Entry point of the throwaway process: build each job, report ("start", i), then
    ("done", i, None | problem); stop after the first problem."""
    import os
    import sys

    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)  # constructors and environments may print or warn: not on the terminal
    os.dup2(devnull, 2)
    sys.stdout = sys.stderr = open(os.devnull, "w")  # noqa: SIM115 (lives as long as the process)
    try:
        from maxbench.suite.worker import configure_threads

        configure_threads(1)
        import warnings

        warnings.simplefilter("ignore")
        from maxbench.suite.cells import Cell

        for index, (kind, cell_data) in enumerate(jobs):
            sender.send(("start", index))
            cell = Cell.from_dict(cell_data)
            problem = check_environment(cell) if kind == _ENV else check_model(cell)
            sender.send(("done", index, problem))
            if problem is not None:
                break
    except KeyboardInterrupt:
        return
    except BaseException as err:  # noqa: BLE001 (reported to the parent, which names it)
        sender.send(("crash", f"{type(err).__name__}: {err}"))
    finally:
        sender.close()


def _exception_text(err: BaseException) -> str:
    text = one_line(err)
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def check_environment(cell: Cell) -> str | None:
    """None if the cell's environment can be made and reset; else what went wrong."""
    import gymnasium as gym

    from maxbench.suite.environments import env_factory

    env = None
    try:
        env = env_factory(cell)()
        env.reset(seed=cell.seed)
    except gym.error.DependencyNotInstalled as err:
        return f"environment {cell.env_id!r} needs a package that is not installed: {one_line(err)}"
    except UserInputError as err:  # a wrapper that cannot be imported
        return f"environment {cell.env_id!r}: {err}"
    except Exception as err:
        with_what = _with_what(cell)
        return f"environment {cell.env_id!r} cannot be made{with_what}: {_exception_text(err)}"
    finally:
        if env is not None:
            with contextlib.suppress(Exception):  # closing is best effort
                env.close()
    return None


def _with_what(cell: Cell) -> str:
    parts = []
    if cell.env_kwargs:
        parts.append(f"kwargs {one_line(cell.env_kwargs, 120)}")
    if cell.max_episode_steps is not None:
        parts.append(f"max_episode_steps {cell.max_episode_steps}")
    if cell.wrappers:
        parts.append("wrappers " + ", ".join(w["target"] for w in cell.wrappers))
    return f" with {' and '.join(parts)}" if parts else ""


def check_model(cell: Cell) -> str | None:
    """None if the cell's model can be constructed on its training env; else what went wrong."""
    import numpy as np

    from maxbench.registry import constructor_arguments, resolve_algorithm
    from maxbench.suite.environments import training_env
    from maxbench.suite.hyperparams import convert_hyperparameters

    problem = device_problem(cell.device)
    if problem is not None:
        return problem
    env = None
    cls: type | None = None
    try:
        cls, _ = resolve_algorithm(cell.algo_target)
        env = training_env(cell, seed=cell.seed)
        action_dim = int(np.prod(env.action_space.shape or (1,)))
        kwargs = convert_hyperparameters(cell.hyperparams, action_dim, algorithm=cls)
        kwargs.update(_cheap_overrides(kwargs, constructor_arguments(cls)))
        device = "cpu" if cell.device == "auto" else cell.device  # auto: checked cheaply
        model = cls(cell.policy, env, seed=cell.seed, device=device, **kwargs)
        del model
    except UserInputError as err:
        return str(err)
    except Exception as err:
        name = getattr(cls, "__name__", cell.algo_target)
        return f"{name} cannot be built: {_explain(err, cell, env)}"
    finally:
        if env is not None:
            with contextlib.suppress(Exception):  # closing is best effort
                env.close()
    return None


def _cheap_overrides(kwargs: dict[str, Any], accepted: set[str] | None) -> dict[str, Any]:
    """A small replay buffer and no output."""
    overrides: dict[str, Any] = {}
    takes = (lambda name: name in kwargs) if accepted is None else (lambda name: name in accepted)
    size = kwargs.get("buffer_size")
    if takes("buffer_size") and (size is None or (isinstance(size, int) and size > 0)):
        overrides["buffer_size"] = min(size or PREFLIGHT_BUFFER_SIZE, PREFLIGHT_BUFFER_SIZE)
    if takes("verbose"):
        overrides["verbose"] = 0
    return overrides


_ACTION_SPACE = re.compile(r"only supports \((.*?),?\) as action spaces but (.*) was provided")


def _explain(err: BaseException, cell: Cell, env: Any) -> str:
    """The constructor's error in words; SB3's action-space assertion becomes a plain sentence."""
    text = one_line(err)
    match = _ACTION_SPACE.search(text)
    if match:
        supported = re.sub(r"<class '(?:[\w.]+\.)?(\w+)'>", r"\1", match.group(1))
        return (
            f"the action space {match.group(2)} of {cell.env_id!r} is not supported "
            f"(supported: {supported})"
        )
    return _exception_text(err)
