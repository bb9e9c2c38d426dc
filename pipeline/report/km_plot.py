"""Kaplan-Meier figure for the report: one weighted curve per arm with censoring marks, medians
marked, optional confidence bands, and the numbers at risk in a table under the x axis (weighted when
the matching weights are not all 1; counts resting on fewer than ``min_cell`` patients suppressed)."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from pipeline.report.figures import figure_style, save_png  # noqa: E402
from pipeline.outcome.km import KaplanMeier  # noqa: E402
from pipeline.report.disclosure import rounded  # noqa: E402

_COLORS = ("#1f77b4", "#d62728")
MAX_INTERVALS = 8
NATURAL_STEPS = {
    "days": (1, 7, 14, 30, 90, 180, 365, 730, 1825, 3650),
    "weeks": (1, 2, 4, 13, 26, 52, 104, 260, 520),
    "months": (1, 3, 6, 12, 24, 36, 60, 120),
    "years": (0.25, 0.5, 1, 2, 5, 10, 20),
}
"""Tick spacings a reader counts in, per time unit (a week, a month, a quarter, half a year, one,
two, five and ten years), the smallest one giving at most MAX_INTERVALS intervals is used."""


def plot_km(curves: dict[str, KaplanMeier], *, endpoint: str, labels: dict[str, str] | None = None,
            time_unit="months", min_cell=5, path=None, bands=False, rounding: int | None = None,
            shareable: bool = False, medians: bool = True):
    """Draw the fitted curves ({arm: KaplanMeier}, treated first); save a byte-reproducible PNG
    when ``path`` is given.

    ``endpoint``: the outcome's name (outcome.name, e.g. "overall survival"); ``labels``: {arm:
    display name} (default: the arm names); ``bands``: draw each curve's confidence band (of the
    type it was fitted with, survival.ci); ``medians``: mark each curve's median (off where the reported
    medians are not those of the drawn curves, as in an imputed analysis).
    """
    labels = labels or {arm: arm for arm in curves}
    t_max = max(curve.time[-1] for curve in curves.values())
    ticks = natural_ticks(t_max, time_unit)
    weighted = any(curve.weighted for curve in curves.values())
    with figure_style():
        fig, (ax, table) = plt.subplots(2, 1, figsize=(7, 5.2), sharex=True,
                                        gridspec_kw={"height_ratios": [4, 1]})
        for color, (arm, curve) in zip(_COLORS, curves.items()):
            if shareable and curve.n < min_cell:
                ax.plot([], [], color=color, label=f"{labels[arm]} (fewer than {min_cell} patients: not shown)")
                continue
            _draw_curve(ax, curve, color, labels[arm], bands, medians)
        ax.set_ylim(0, 1.02)
        ax.set_ylabel(f"{endpoint[:1].upper()}{endpoint[1:]} probability")
        ax.legend(loc="upper right", frameon=False)
        _risk_table(table, [(labels[arm], curve) for arm, curve in curves.items()], ticks, min_cell, weighted,
                    rounding)
        table.set_xlabel(f"Time ({time_unit})")
        table.set_xticks(ticks)
        table.set_xlim(-0.02 * t_max, 1.03 * t_max)
        fig.tight_layout()
        if path is not None:
            save_png(fig, path, dpi=120)
    return fig


def natural_ticks(t_max: float, time_unit: str) -> np.ndarray:
    """Ticks from 0 to t_max at the smallest natural spacing of the unit giving <= MAX_INTERVALS."""
    steps = NATURAL_STEPS[time_unit]
    step = next((s for s in steps if t_max / s <= MAX_INTERVALS), None)
    if step is None:
        step = steps[-1] * np.ceil(t_max / (steps[-1] * MAX_INTERVALS))
    return np.arange(0.0, t_max + step * 1e-9, step) if t_max > 0 else np.array([0.0])


def _draw_curve(ax, curve, color, label, bands, medians):
    steps_t = np.concatenate(([0.0], curve.time))
    steps_s = np.concatenate(([1.0], curve.surv))
    median = curve.median().value if medians else None
    shown = "not reached" if median is None else f"{median:.1f}"
    ax.step(steps_t, steps_s, where="post", color=color, label=f"{label} (median {shown})" if medians else label)
    if bands:
        ax.fill_between(steps_t, np.concatenate(([1.0], curve.lower)), np.concatenate(([1.0], curve.upper)),
                        step="post", color=color, alpha=0.15, linewidth=0)
    censored = curve.n_censor > 0
    ax.plot(curve.time[censored], curve.surv[censored], linestyle="none", marker="|", markersize=6, color=color)
    if median is not None:
        ax.plot([0, median, median], [0.5, 0.5, 0], color=color, linestyle=":", linewidth=1)


def _risk_table(ax, rows, ticks, min_cell, weighted, rounding):
    """The numbers at risk of each (label, curve) at the ticks, the first curve on top."""
    ax.set_ylim(-0.5, len(rows) - 0.5)
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels([label for label, _ in rows[::-1]])
    for spine in ax.spines.values():
        spine.set_visible(False)
    ax.tick_params(left=False)
    ax.set_title("Number at risk (weighted)" if weighted else "Number at risk", fontsize=9, loc="left")
    for row, (_, curve) in enumerate(rows[::-1]):
        for t in ticks:
            ax.text(t, row, _at_risk(curve, t, min_cell, weighted, rounding), ha="center", va="center", fontsize=8)


def _at_risk(curve, t, min_cell, weighted, rounding) -> str:
    """Patients (or their weight) still at risk at t; suppressed when 1 to min_cell - 1 patients."""
    rows, weight = curve.at_risk(t)
    if rows == 0:
        return "0"
    if rows < min_cell:
        return f"<{min_cell}"
    return (f"{rounded(float(weight), rounding, min_cell):.1f}" if weighted
            else str(rounded(int(rows), rounding, min_cell)))
