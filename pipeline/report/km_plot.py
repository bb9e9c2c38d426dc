"""Kaplan-Meier figure for the report: one weighted curve per arm with censoring marks, medians
marked, optional confidence bands, and the numbers at risk in a table under the x axis (weighted when
the matching weights are not all 1; counts resting on fewer than ``min_cell`` patients suppressed)."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from pipeline.report.figures import figure_style, save_png  # noqa: E402
from pipeline.report.formatting import DEFAULT_ENDPOINT  # noqa: E402
from pipeline.outcome.survival import confidence_band, kaplan_meier, r_quantile_time  # noqa: E402

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


def plot_km(time, event, treated, weight, *, labels=("treated", "control"), time_unit="months",
            min_cell=5, path=None, medians=None, endpoint=DEFAULT_ENDPOINT, bands=None):
    """Draw the KM curves; save a byte-reproducible PNG when ``path`` is given.

    ``medians``: optional {label: median or None}; computed from the curves when omitted.
    ``bands``: the confidence-interval type (survival.ci, e.g. "log-log") of bands to draw, or None.
    """
    time, event, weight = (np.asarray(a, dtype=float) for a in (time, event, weight))
    treated = np.asarray(treated).astype(bool)
    arms = {labels[0]: treated, labels[1]: ~treated}
    curves = {label: kaplan_meier(time[rows], event[rows], weight[rows]) for label, rows in arms.items()}
    ticks = natural_ticks(time.max(), time_unit)
    weighted = bool(np.any(weight != 1))
    with figure_style():
        fig, (ax, table) = plt.subplots(2, 1, figsize=(7, 5.2), sharex=True,
                                        gridspec_kw={"height_ratios": [4, 1]})
        for color, (label, curve) in zip(_COLORS, curves.items()):
            median = (medians or {}).get(label, r_quantile_time(curve.time, curve.surv))
            _draw_curve(ax, curve, time[arms[label] & (event == 0)], color, label, median, bands)
        ax.set_ylim(0, 1.02)
        ax.set_ylabel(f"{endpoint[:1].upper()}{endpoint[1:]} probability")
        ax.legend(loc="upper right", frameon=False)
        _risk_table(table, curves, ticks, min_cell, weighted)
        table.set_xlabel(f"Time ({time_unit})")
        table.set_xticks(ticks)
        table.set_xlim(-0.02 * time.max(), 1.03 * time.max())
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


def _draw_curve(ax, curve, censored_times, color, label, median, bands):
    steps_t = np.concatenate(([0.0], curve.time))
    steps_s = np.concatenate(([1.0], curve.surv))
    shown = "not reached" if median is None else f"{median:.1f}"
    ax.step(steps_t, steps_s, where="post", color=color, label=f"{label} (median {shown})")
    if bands is not None:
        lower, upper = confidence_band(curve, bands)
        ax.fill_between(steps_t, np.concatenate(([1.0], lower)), np.concatenate(([1.0], upper)),
                        step="post", color=color, alpha=0.15, linewidth=0)
    marks = np.unique(censored_times)
    at = np.searchsorted(curve.time, marks, side="right") - 1
    ax.plot(marks, np.where(at >= 0, curve.surv[np.maximum(at, 0)], 1.0), linestyle="none", marker="|",
            markersize=6, color=color)
    if median is not None:
        ax.plot([0, median, median], [0.5, 0.5, 0], color=color, linestyle=":", linewidth=1)


def _risk_table(ax, curves, ticks, min_cell, weighted):
    ax.set_ylim(-0.5, len(curves) - 0.5)
    ax.set_yticks(range(len(curves)))
    ax.set_yticklabels(list(curves)[::-1])
    for spine in ax.spines.values():
        spine.set_visible(False)
    ax.tick_params(left=False)
    ax.set_title("Number at risk (weighted)" if weighted else "Number at risk", fontsize=9, loc="left")
    for row, curve in enumerate(list(curves.values())[::-1]):
        for t in ticks:
            ax.text(t, row, _at_risk(curve, t, min_cell, weighted), ha="center", va="center", fontsize=8)


def _at_risk(curve, t, min_cell, weighted) -> str:
    """Patients (or their weight) still at risk at t; suppressed when 1 to min_cell - 1 patients."""
    i = np.searchsorted(curve.time, t, side="left")
    if i >= len(curve.time):
        return "0"
    rows = int(curve.n_risk_count[i])
    if rows < min_cell:
        return f"<{min_cell}"
    return f"{curve.n_risk[i]:.1f}" if weighted else str(rows)
