"""The ledger's evidence figures, drawn from a results folder's files (no model is loaded).

:func:`draw` makes one figure of an experiment by name (the ``figures`` of a claim in
``suites/claims/claims.yaml``): multi-goal trajectory grids and goal histograms (S2AC Fig. 7,
12, 16) from the cells' ``test_episodes.json``, pooled over seeds; final returns per run;
the entropy sweeps; the latency blocks. The drawing itself is in
:mod:`maxbench.repro.claims.figures`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from maxbench.repro.claims import figures
from maxbench.repro.claims.catalogue import Experiment
from maxbench.repro.claims.measures import ENTROPY_FILE, LATENCY_FILE, MeasureContext
from maxbench.repro.multigoal import OBSTACLE_VARIANT as _OBSTACLE
from maxbench.results.atomic import read_json

__all__ = ["draw"]


def draw(experiment: Experiment, name: str, root: Path, scale: str, folder: Path) -> Path | None:
    """Draw figure ``name`` of ``experiment`` into ``folder``; None when there is nothing yet."""
    path = folder / f"{experiment.name}-{name}.png"
    title = f"{experiment.name} ({scale} scale)"
    if name == "entropy":
        return _entropy(root, path)
    if name == "latency":
        return _latency(root, path)
    suite = experiment.suite(scale) if experiment.kind == "suite" else None
    if suite is None:
        return None
    from maxbench.repro.claims.experiments import suite_folder

    cells = MeasureContext(root).suite_cells(suite_folder(root, suite))
    if not cells:
        return None
    if name == "returns":
        algos = _suite_algorithms(suite)
        returns = {a: [c.final_return for c in cells if c.algo == a] for a in algos}
        env = sorted({c.env_id for c in cells})
        return figures.plot_final_returns(returns, path, f"{title}: {', '.join(env)}")
    rows = _episode_rows(experiment, cells, obstacle=name.startswith("obstacle"))
    if rows is None:
        return None
    if name.endswith("trajectories"):
        return figures.plot_trajectory_grid(rows, path, title)
    return figures.plot_goal_histograms(rows, path, title)


def _suite_algorithms(suite: Path) -> list[str]:
    from maxbench.suite.loading import load_suite

    return list(load_suite(suite, check=False).suite.algorithms)


def _episode_rows(experiment: Experiment, cells: list[Any], obstacle: bool) -> Any:
    """The grid's rows: per row label, per column label, the agent's pooled test episodes."""
    from maxbench.repro.claims.test_episodes import pool, read_test_episodes

    grid = experiment.options.get("grid")
    if not grid:
        return None
    rows = []
    found_any = False
    for row_label, row in grid["rows"].items():
        columns = []
        for column_label, column in grid["columns"].items():
            agent = grid["agent"].format(row=row, column=column)
            groups = []
            for cell in cells:
                if cell.algo != agent:
                    continue
                try:
                    episodes = read_test_episodes(cell.folder)
                except ValueError:
                    continue  # the measures name it among the ledger's warnings
                env = _OBSTACLE.get(episodes.trained_on) if obstacle else episodes.trained_on
                if env in episodes.envs:
                    groups.append(episodes.envs[env])
            columns.append((str(column_label), pool(groups) if groups else None))
            found_any = found_any or bool(groups)
        rows.append((str(row_label), columns))
    return rows if found_any else None


def _entropy(root: Path, path: Path) -> Path | None:
    file = root / ENTROPY_FILE
    if not file.is_file():
        return None
    try:
        rows = read_json(file)["rows"]
        sweeps: dict[str, dict[str, list[tuple[float, float]]]] = {}
        for row in rows:
            setting = sweeps.setdefault(str(row["sweep"]), {}).setdefault(str(row["setting"]), [])
            setting.append((float(row["truth"]), float(row["estimate"])))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    points = {
        name: [
            (
                float(np.mean([t for t, _ in values])),
                float(np.mean([e for _, e in values])),
                float(np.std([e for _, e in values])),
            )
            for values in settings.values()
        ]
        for name, settings in sweeps.items()
    }
    return figures.plot_entropy_sweeps(points, path, "closed-form SVGD entropy vs truth")


def _latency(root: Path, path: Path) -> Path | None:
    file = root / LATENCY_FILE
    if not file.is_file():
        return None
    try:
        blocks = {str(k): [float(x) for x in v] for k, v in read_json(file)["algorithms"].items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    return figures.plot_latency_blocks(blocks, path, "predict at batch 1, HalfCheetah's shapes")
