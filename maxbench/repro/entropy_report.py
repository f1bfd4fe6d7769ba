"""The paper's entropy check (S2AC §3.3, Fig. 4; spec §1.3) as rows, a verdict and a figure.

:func:`run_entropy_report` runs the requested sweeps of :mod:`maxbench.algos.entropy_check` with
shared SVGD settings and returns an :class:`EntropyReport`: one row per setting (true entropy, the
closed-form estimate, relative error), whether each sweep's estimate rises with the truth, and the
size of the Hessian term the leave-one-out trace drops. ``maxbench entropy`` prints it, writes it
as JSON and draws it with :func:`plot_entropy_report`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from maxbench.algos import entropy_check as ec

__all__ = ["SWEEPS", "EntropyReport", "EntropyRow", "plot_entropy_report", "run_entropy_report"]

#: Sweep names, in display order. ``gaussian`` is the single 2-D target of Fig. 4a.
SWEEPS = ("gaussian", "dimension", "mixture", "std")

_SETTING_NAMES = {
    "gaussian": "Fig. 4a target",
    "dimension": "dimension d",
    "mixture": "mixture components",
    "std": "target std",
}


@dataclass(frozen=True)
class EntropyRow:
    """One setting: the true entropy (Monte Carlo for mixtures) and the closed-form estimate."""

    sweep: str
    setting: str
    truth: float
    estimate: float
    truth_is_monte_carlo: bool = False

    @property
    def rel_error(self) -> float:
        """``(estimate - truth) / |truth|``."""
        return (self.estimate - self.truth) / abs(self.truth)


@dataclass
class EntropyReport:
    """Rows of every sweep run, monotonicity verdicts, and the Hessian-term measurement."""

    rows: list[EntropyRow]
    settings: dict[str, Any]
    hessian: dict[str, Any] | None = None
    monotone: dict[str, bool] = field(default_factory=dict)

    def sweep_rows(self, sweep: str) -> list[EntropyRow]:
        """The rows of one sweep, in order."""
        return [row for row in self.rows if row.sweep == sweep]

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready view."""
        return {
            "settings": self.settings,
            "rows": [{**asdict(row), "rel_error": row.rel_error} for row in self.rows],
            "monotone": self.monotone,
            "hessian_term": self.hessian,
        }


def _rises(rows: list[EntropyRow]) -> bool:
    """Whether the estimate rises with the truth (rows sorted by truth)."""
    ordered = sorted(rows, key=lambda row: row.truth)
    return all(a.estimate < b.estimate for a, b in zip(ordered, ordered[1:], strict=False))


def run_entropy_report(
    sweeps: tuple[str, ...] = SWEEPS,
    n_particles: int = 20,
    n_steps: int = 30,
    step_size: float = 0.5,
    seed: int = 0,
) -> EntropyReport:
    """Run the sweeps with the given SVGD settings (the paper's Fig. 4a settings by default).

    Args:
        sweeps: a subset of :data:`SWEEPS`.
        n_particles: particles per run (paper: 20).
        n_steps: SVGD steps (paper: 30).
        step_size: epsilon (paper: 0.5).
        seed: seed of the initial particles (and of the Monte Carlo truths).

    Returns:
        The report; ``monotone`` holds a verdict for every sweep with more than one setting.
    """
    unknown = [name for name in sweeps if name not in SWEEPS]
    if unknown:
        raise ValueError(f"unknown sweep(s) {unknown}; choose from {SWEEPS}")
    common = {"n_particles": n_particles, "n_steps": n_steps, "step_size": step_size, "seed": seed}
    rows: list[EntropyRow] = []
    hessian = None
    if "gaussian" in sweeps:
        result = ec.gaussian_entropy_check(**common)
        rows.append(EntropyRow("gaussian", "2-D Gaussian (Fig. 4a)", result.truth, result.estimate))
        term = ec.hessian_term_size(**common)
        hessian = {
            "target": "Fig. 4a",
            "hessian_term": term.hessian_term,
            "mean_abs_loo_trace": term.mean_abs_trace,
            "relative": term.relative,
            "entropy_leave_one_out": term.entropy_loo,
            "entropy_with_hessian_term": term.entropy_full,
            "truth": term.truth,
        }
    sweep_functions = {
        "dimension": (ec.dimension_sweep, "d = {:g}", False),
        "mixture": (ec.mixture_sweep, "K = {:g}", True),
        "std": (ec.std_sweep, "std = {:g}", False),
    }
    for name, (function, label, monte_carlo) in sweep_functions.items():
        if name in sweeps:
            for point in function(**common):
                rows.append(
                    EntropyRow(
                        name, label.format(point.setting), point.truth, point.estimate, monte_carlo
                    )
                )
    report = EntropyReport(rows=rows, settings={**common, "sweeps": list(sweeps)}, hessian=hessian)
    for name in sweeps:
        if len(report.sweep_rows(name)) > 1:
            report.monotone[name] = _rises(report.sweep_rows(name))
    return report


def plot_entropy_report(report: EntropyReport, path: Path) -> Path:
    """Draw estimate against truth, one panel per sweep, with the line estimate = truth.

    Uses matplotlib's Agg canvas (no display). Returns the path written.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    sweeps = [name for name in SWEEPS if report.sweep_rows(name)]
    fig = Figure(figsize=(max(4.2 * len(sweeps), 8.4), 4.4), dpi=110)
    FigureCanvasAgg(fig)
    for index, name in enumerate(sweeps, start=1):
        ax = fig.add_subplot(1, len(sweeps), index)
        rows = report.sweep_rows(name)
        if len(rows) == 1:  # one target: the truth, the +-5% band and the estimate
            (row,) = rows
            ax.bar(
                ["true entropy", "estimate"], [row.truth, row.estimate], color=["0.6", "tab:blue"]
            )
            ax.axhspan(
                0.95 * row.truth,
                1.05 * row.truth,
                color="tab:green",
                alpha=0.15,
                label="truth +-5%",
            )
            ax.set_title(f"{row.setting}: {row.rel_error:+.1%}", fontsize=10)
            ax.set_ylabel("entropy (nats)")
            ax.legend(fontsize=8, loc="lower right")
            continue
        truths = [row.truth for row in rows]
        estimates = [row.estimate for row in rows]
        low, high = min(truths + estimates), max(truths + estimates)
        pad = 0.05 * (high - low or 1.0)
        ax.plot(
            [low - pad, high + pad],
            [low - pad, high + pad],
            color="grey",
            lw=1,
            ls="--",
            label="estimate = truth",
        )
        ax.plot(truths, estimates, marker="o", color="tab:blue", label="closed-form estimate")
        for row in rows:
            ax.annotate(
                row.setting,
                (row.truth, row.estimate),
                textcoords="offset points",
                xytext=(4, -10),
                fontsize=8,
            )
        verdict = report.monotone.get(name)
        title = (
            _SETTING_NAMES[name]
            if verdict is None
            else (f"{_SETTING_NAMES[name]}: {'rises' if verdict else 'does NOT rise'} with truth")
        )
        ax.set_title(title, fontsize=10)
        xlabel = "true entropy (Monte Carlo)" if rows[0].truth_is_monte_carlo else "true entropy"
        ax.set_xlabel(xlabel)
        ax.set_ylabel("estimate  -mean log q_L")
        ax.legend(fontsize=8, loc="upper left")
        ax.grid(alpha=0.3)
    settings = report.settings
    fig.suptitle(
        f"S2AC closed-form SVGD entropy\n(m = {settings['n_particles']}, "
        f"L = {settings['n_steps']}, eps = {settings['step_size']}, adaptive kernel, "
        f"seed {settings['seed']})",
        fontsize=11,
    )
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path
