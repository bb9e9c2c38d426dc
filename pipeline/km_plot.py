"""Kaplan-Meier figure for the report: one weighted curve per arm, medians marked, and the
numbers at risk in a table under the x axis (counts below ``min_cell`` suppressed)."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from pipeline.survival import kaplan_meier, r_quantile_time  # noqa: E402

_COLORS = ("#1f77b4", "#d62728")
_PNG_METADATA = {"Software": None}


def plot_km(time, event, treated, weight, *, labels=("treated", "control"), time_unit="months",
            min_cell=5, path=None, medians=None):
    """Draw the KM curves; save a byte-reproducible PNG when ``path`` is given.

    ``medians``: optional {label: median or None}; computed from the curves when omitted.
    """
    time, event, weight = (np.asarray(a, dtype=float) for a in (time, event, weight))
    treated = np.asarray(treated).astype(bool)
    curves = {labels[0]: kaplan_meier(time[treated], event[treated], weight[treated]),
              labels[1]: kaplan_meier(time[~treated], event[~treated], weight[~treated])}
    ticks = _ticks(time.max())

    fig, (ax, table) = plt.subplots(2, 1, figsize=(7, 5.2), sharex=True,
                                    gridspec_kw={"height_ratios": [4, 1]})
    for color, (label, curve) in zip(_COLORS, curves.items()):
        steps_t = np.concatenate(([0.0], curve.time))
        steps_s = np.concatenate(([1.0], curve.surv))
        median = (medians or {}).get(label, r_quantile_time(curve.time, curve.surv))
        shown = "not reached" if median is None else f"{median:.1f}"
        ax.step(steps_t, steps_s, where="post", color=color, label=f"{label} (median {shown})")
        if median is not None:
            ax.plot([0, median, median], [0.5, 0.5, 0], color=color, linestyle=":", linewidth=1)
    ax.set_ylim(0, 1.02)
    ax.set_ylabel("Survival probability")
    ax.legend(loc="upper right", frameon=False)
    _risk_table(table, curves, ticks, min_cell)
    table.set_xlabel(f"Time ({time_unit})")
    table.set_xticks(ticks)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, format="png", dpi=120, metadata=_PNG_METADATA)
    return fig


def _ticks(t_max):
    step = max(1.0, float(np.ceil(t_max / 6)))
    return np.arange(0.0, t_max + step, step)[:8]


def _risk_table(ax, curves, ticks, min_cell):
    ax.set_ylim(-0.5, len(curves) - 0.5)
    ax.set_yticks(range(len(curves)))
    ax.set_yticklabels(list(curves)[::-1])
    for spine in ax.spines.values():
        spine.set_visible(False)
    ax.tick_params(left=False)
    ax.set_title("Number at risk", fontsize=9, loc="left")
    for row, curve in enumerate(list(curves.values())[::-1]):
        for t in ticks:
            n = _at_risk(curve, t)
            ax.text(t, row, str(n) if n >= min_cell or n == 0 else f"<{min_cell}",
                    ha="center", va="center", fontsize=8)


def _at_risk(curve, t):
    i = np.searchsorted(curve.time, t, side="left")
    return int(curve.n_risk_count[i]) if i < len(curve.time) else 0
