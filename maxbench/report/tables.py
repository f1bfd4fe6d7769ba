"""Tables for the report: one model, three formats (Markdown, LaTeX with booktabs, CSV).

A :class:`ReportTable` holds the numbers (for CSV, written with full precision) and their display
strings (for Markdown and LaTeX). Builders here make the per-env final-score table (issue 5,
point 4), the aggregate-metric and probability-of-improvement tables (point 3) and the lists of
excluded and missing cells (point 7); the run-time tables live in :mod:`maxbench.report.runtime`.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from maxbench.report.markdown import Code, code_span, escape_text, one_line
from maxbench.results.atomic import write_text_atomic

if TYPE_CHECKING:
    import pandas as pd

    from maxbench.report.rliable_stats import Intervals
    from maxbench.report.scores import ScoreMatrices, ScoreSet

__all__ = [
    "ReportTable",
    "aggregate_table",
    "excluded_table",
    "final_score_table",
    "format_number",
    "improvement_table",
    "missing_table",
]

_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}
_LATEX_SYMBOLS = {
    "±": r"$\pm$",
    "×": r"$\times$",
    "≥": r"$\geq$",
    "≤": r"$\leq$",
    "−": "$-$",
    "τ": r"$\tau$",
    "–": "--",
}


def format_number(value: Any, digits: int = 2) -> str:
    """A number for display: fixed ``digits`` decimals, thousands separators; '–' for missing."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, (int, np.integer)):
        return f"{int(value):,}"
    return f"{float(value):,.{digits}f}"


def latex_escape(text: str) -> str:
    """Escape LaTeX's special characters and write ±, × and friends as math."""
    out = "".join(_LATEX_SPECIAL.get(char, char) for char in text)
    for symbol, latex in _LATEX_SYMBOLS.items():
        out = out.replace(symbol, latex)
    return out


def _markdown_cell(text: str) -> str:
    """A cell as Markdown that shows exactly its text (a :class:`Code` cell as a code span)."""
    if isinstance(text, Code):
        return code_span(text, in_table=True)
    return escape_text(text)


def _latex_cell(text: str) -> str:
    """A cell as LaTeX: one line, special characters escaped (a :class:`Code` cell in texttt)."""
    escaped = latex_escape(one_line(text))
    return r"\texttt{" + escaped + "}" if isinstance(text, Code) and escaped else escaped


@dataclass(frozen=True)
class ReportTable:
    """A table's title, its display cells and the numbers behind them.

    Attributes:
        name: File stem (``tables/<name>.md`` / ``.tex`` / ``.csv``).
        title: Caption.
        columns: Display column names.
        rows: Display strings, one list per row.
        data: The numbers (and labels) for CSV; same rows.
        notes: Lines printed under the table (protocol, truncation).
        align: Per column ``l`` or ``r``.
    """

    name: str
    title: str
    columns: list[str]
    rows: list[list[str]]
    data: pd.DataFrame
    notes: list[str] = field(default_factory=list)
    align: list[str] | None = None

    def _align(self) -> list[str]:
        return self.align or ["l"] + ["r"] * (len(self.columns) - 1)

    def to_markdown(self) -> str:
        """A GitHub-flavoured Markdown table (no title, no notes)."""
        marks = {"l": ":---", "r": "---:", "c": ":---:"}
        lines = [
            "| " + " | ".join(_markdown_cell(c) for c in self.columns) + " |",
            "|" + "|".join(marks[a] for a in self._align()) + "|",
        ]
        lines += ["| " + " | ".join(_markdown_cell(c) for c in row) + " |" for row in self.rows]
        return "\n".join(lines) + "\n"

    def to_latex(self) -> str:
        """A booktabs ``table`` environment with a caption (needs ``\\usepackage{booktabs}``)."""
        lines = [
            r"\begin{table}[t]",
            r"\centering",
            r"\caption{" + latex_escape(one_line(self.title)) + "}",
            r"\label{tab:" + self.name.replace("_", "-") + "}",
            r"\begin{tabular}{" + "".join(self._align()) + "}",
            r"\toprule",
            " & ".join(_latex_cell(c) for c in self.columns) + r" \\",
            r"\midrule",
        ]
        lines += [" & ".join(_latex_cell(c) for c in row) + r" \\" for row in self.rows]
        lines += [r"\bottomrule", r"\end{tabular}"]
        lines += [
            r"\par\smallskip{\footnotesize " + latex_escape(one_line(n)) + "}" for n in self.notes
        ]
        lines += [r"\end{table}"]
        return "\n".join(lines) + "\n"

    def to_csv(self) -> str:
        """The numbers, full precision, one header line."""
        buffer = io.StringIO()
        self.data.to_csv(buffer, index=False, lineterminator="\n", float_format="%.10g")
        return buffer.getvalue()

    def write(self, folder: Path) -> list[Path]:
        """Write ``<name>.md``, ``<name>.tex`` and ``<name>.csv`` into ``folder``."""
        folder.mkdir(parents=True, exist_ok=True)
        paths = []
        for suffix, text in (
            (".md", self.to_markdown()),
            (".tex", self.to_latex()),
            (".csv", self.to_csv()),
        ):
            path = folder / f"{self.name}{suffix}"
            write_text_atomic(path, text)
            paths.append(path)
        return paths


def _iqm(values: np.ndarray) -> float:
    """Interquartile mean over seeds: rliable's ``aggregate_iqm`` of one (runs × 1) column."""
    from rliable import metrics

    return float(metrics.aggregate_iqm(values.reshape(-1, 1)))


def final_score_table(scores: ScoreSet) -> ReportTable:
    """Per (method, env): seeds, mean ± std and IQM over seeds, raw and normalised."""
    import pandas as pd

    rows, data = [], []
    for (method, env), group in scores.final.groupby(["method", "env"], sort=True):
        raw = group["score"].to_numpy(dtype=np.float64)
        normalised = group["normalised"].to_numpy(dtype=np.float64)
        has_norm = env in scores.references
        record = {
            "method": method,
            "env": env,
            "seeds": len(raw),
            "seed_list": " ".join(str(s) for s in sorted(group["seed"])),
            "mean": float(raw.mean()),
            "std": float(raw.std(ddof=0)),
            "iqm": _iqm(raw),
            "normalised_mean": float(normalised.mean()) if has_norm else float("nan"),
            "normalised_std": float(normalised.std(ddof=0)) if has_norm else float("nan"),
            "normalised_iqm": _iqm(normalised) if has_norm else float("nan"),
        }
        data.append(record)
        rows.append(
            [
                method,
                env,
                str(record["seeds"]),
                f"{format_number(record['mean'])} ± {format_number(record['std'])}",
                format_number(record["iqm"]),
                (
                    f"{format_number(record['normalised_mean'], 3)} ± "
                    f"{format_number(record['normalised_std'], 3)}"
                    if has_norm
                    else "–"
                ),
                format_number(record["normalised_iqm"], 3) if has_norm else "–",
            ]
        )
    notes = [
        f"Final score of a run: mean evaluation return over its last K = {scores.last_k} "
        "evaluation(s). Mean ± std (population) and IQM over the finished seeds of each cell; "
        "normalised = (score − random) / (reference − random)."
    ]
    return ReportTable(
        name="final_scores",
        title="Final scores per algorithm and environment",
        columns=[
            "algo",
            "env",
            "seeds",
            "return mean ± std",
            "return IQM",
            "norm. mean ± std",
            "norm. IQM",
        ],
        rows=rows,
        data=pd.DataFrame(data),
        notes=notes,
        align=["l", "l", "r", "r", "r", "r", "r"],
    )


def aggregate_table(
    intervals: Intervals, matrices: ScoreMatrices, reps: int, seed: int
) -> ReportTable:
    """Median, IQM, mean, optimality gap per method with their 95% bootstrap CIs."""
    import pandas as pd

    from maxbench.report.rliable_stats import METRIC_NAMES

    rows, data = [], []
    for method in matrices.matrices:
        point, interval = intervals.points[method], intervals.intervals[method]
        cells = [method]
        record: dict[str, Any] = {"method": method}
        for index, name in enumerate(METRIC_NAMES):
            key = name.lower().replace(" ", "_")
            record[key] = float(point[index])
            record[f"{key}_low"] = float(interval[0, index])
            record[f"{key}_high"] = float(interval[1, index])
            cells.append(f"{point[index]:.3f} [{interval[0, index]:.3f}, {interval[1, index]:.3f}]")
        rows.append(cells)
        data.append(record)
    notes = [
        f"Normalised final scores over {len(matrices.tasks)} task(s) "
        f"({', '.join(matrices.tasks)}), "
        f"{matrices.runs} run(s) per task; point estimate [95% CI], stratified bootstrap "
        f"(rliable), {reps:,} repetitions, seed {seed}."
    ]
    return ReportTable(
        name="aggregates",
        title="Aggregate normalised scores (rliable)",
        columns=["algo", *METRIC_NAMES],
        rows=rows,
        data=pd.DataFrame(data),
        notes=notes,
    )


def improvement_table(intervals: Intervals, reps: int, seed: int) -> ReportTable:
    """P(X > Y) per pair with its 95% bootstrap CI."""
    import pandas as pd

    rows, data = [], []
    for key, point in intervals.points.items():
        x, y = intervals.pairs.get(key) or key.split(intervals.pair_separator, 1)
        low, high = (float(v) for v in np.asarray(intervals.intervals[key]).reshape(2, -1)[:, 0])
        value = float(np.asarray(point).reshape(-1)[0])
        rows.append([x, y, f"{value:.3f} [{low:.3f}, {high:.3f}]"])
        data.append({"x": x, "y": y, "probability": value, "low": low, "high": high})
    return ReportTable(
        name="probability_of_improvement",
        title="Probability of improvement P(X > Y)",
        columns=["X", "Y", "P(X > Y) [95% CI]"],
        rows=rows,
        data=pd.DataFrame(data, columns=["x", "y", "probability", "low", "high"]),
        notes=[
            "Mann-Whitney U statistic averaged over tasks (rliable); stratified independent "
            f"bootstrap, {reps:,} repetitions, seed {seed}."
        ],
        align=["l", "l", "r"],
    )


def excluded_table(scores: ScoreSet) -> ReportTable:
    """Runs with a folder that are not finished (running, interrupted, failed, pending)."""
    import pandas as pd

    frame = scores.excluded
    rows = [
        [
            str(r.method),
            str(r.env),
            str(r.seed),
            str(r.status),
            str(int(r.evaluations)),
            format_number(None if pd.isna(r.last_timestep) else int(r.last_timestep)),
            str(r.error) if isinstance(r.error, str) else "",
        ]
        for r in frame.itertuples(index=False)
    ]
    return ReportTable(
        name="excluded_runs",
        title="Runs left out of the scores (not finished)",
        columns=["algo", "env", "seed", "status", "evaluations", "last step", "error"],
        rows=rows,
        data=frame.drop(columns=["folder"]),
        align=["l", "l", "r", "l", "r", "r", "l"],
    )


def missing_table(scores: ScoreSet) -> ReportTable:
    """Cells of a suite's grid that have no run folder."""
    frame = scores.missing
    return ReportTable(
        name="missing_runs",
        title="Cells with no run folder (never started)",
        columns=["algo", "env", "seed"],
        rows=[[str(r.method), str(r.env), str(r.seed)] for r in frame.itertuples(index=False)],
        data=frame,
        align=["l", "l", "r"],
    )
