"""Design-diagnostic figures: the Love plot of balance and the propensity-score overlap by arm.

Figures are drawn on a bare matplotlib Figure (no pyplot state) in pipeline.report.figures' style (labels
drawn literally) and saved without the "Software" metadata, so the same inputs give byte-identical files.
"""

from __future__ import annotations

import matplotlib.ticker
import numpy as np
import pandas as pd
from matplotlib.collections import PolyCollection
from matplotlib.figure import Figure

from pipeline.config.settings import Variable
from pipeline.design.balance import SMD_THRESHOLD
from pipeline.report.figures import figure_style, save_png
from pipeline.report.formatting import column_label

_DPI = 120
_BIN_COUNT = 40
_BINS = np.linspace(0.0, 1.0, _BIN_COUNT + 1)
_COLORS = {"treated": "#1f77b4", "control": "#d62728", "before": "#7f7f7f", "after": "#000000"}


def love_plot(balance: pd.DataFrame, path, variables: dict[str, Variable], design: str = "matching") -> Figure:
    """Absolute SMD per covariate column before (open circles) and after matching or weighting (the
    analysis's ``design``; filled), threshold line at 0.1; the columns named with their variables' labels."""
    names = [column_label(v, variables) for v in balance["variable"]][::-1]
    y = np.arange(len(names))
    with figure_style():
        fig = Figure(figsize=(6.5, 1.2 + 0.28 * max(len(names), 1)))
        ax = fig.add_subplot()
        ax.scatter(balance["smd_before"].abs().to_numpy()[::-1], y, facecolors="none",
                   edgecolors=_COLORS["before"], label=f"Before {design}", zorder=3)
        ax.scatter(balance["smd_after"].abs().to_numpy()[::-1], y, color=_COLORS["after"],
                   label=f"After {design}", zorder=3)
        ax.axvline(SMD_THRESHOLD, color="#888888", linestyle="--", linewidth=1)
        ax.axvline(0, color="#cccccc", linewidth=1)
        ax.set_yticks(y, names)
        ax.set_ylim(-0.7, len(names) - 0.3)
        ax.set_xlabel("Absolute standardized mean difference")
        ax.set_title("Covariate balance")
        ax.grid(axis="y", color="#eeeeee", zorder=0)
        ax.legend(loc="best", fontsize="small", frameon=True)
        fig.tight_layout()
        save_png(fig, path, _DPI)
    return fig


def _mirrored_histogram(ax, ps: np.ndarray, treated: np.ndarray, w: np.ndarray, labels: dict[str, str],
                        min_cell: int | None) -> None:
    """Share of each arm's (weighted) patients per ps bin: treated upwards, control downwards;
    with ``min_cell``, bins of 1 to min_cell - 1 patients are left empty."""
    for arm, sign, label in ((treated, 1.0, labels["treated"]), (~treated, -1.0, labels["control"])):
        counts = _binned(ps[arm], w[arm])
        total = counts.sum()
        share = counts / total if total > 0 else counts
        if min_cell is not None:
            patients = _binned(ps[arm & (w > 0)])
            share = np.where(patients < min_cell, 0.0, share)
        color = _COLORS["treated"] if sign > 0 else _COLORS["control"]
        ax.add_collection(_bars(_BINS, sign * share, facecolor=color, alpha=0.75, edgecolor="white",
                                linewidth=0.3, label=label))
    ax.autoscale_view()
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_xlim(0, 1)
    ax.set_xlabel("Propensity score")


def _binned(ps: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """(Weighted) counts in the _BINS; given as a count and a range, numpy bins in linear time
    (given the edges, it sorts the scores)."""
    return np.histogram(ps, bins=_BIN_COUNT, range=(_BINS[0], _BINS[-1]), weights=weights)[0]


def _bars(edges: np.ndarray, heights: np.ndarray, **style) -> PolyCollection:
    """One artist for a histogram's bars from 0 to ``heights`` between ``edges`` (empty bins left out):
    hundreds of bar patches cost matplotlib far more bookkeeping than one collection."""
    drawn = np.flatnonzero(heights)
    left, right, top = edges[drawn], edges[drawn + 1], heights[drawn]
    corners = np.stack([np.c_[left, np.zeros(len(drawn))], np.c_[left, top], np.c_[right, top],
                        np.c_[right, np.zeros(len(drawn))]], axis=1)
    return PolyCollection(corners, **style)


def overlap_plot(ps: np.ndarray, treated: np.ndarray, weights: np.ndarray, path, labels: dict[str, str],
                 design: str = "matching", min_cell: int | None = None) -> Figure:
    """Mirrored histograms of the propensity score by arm, before (all patients) and after matching or
    weighting (the analysis's ``design``; weighted); ``labels``: the arms' display names, {"treated": ...,
    "control": ...}.

    Bars are shares of the arm rather than counts; with ``min_cell`` (the shareable figure), a bin
    of fewer than min_cell patients is not drawn, since its share times the arm's size would give
    its count.
    """
    ps = np.asarray(ps, dtype=float)
    treated = np.asarray(treated).astype(bool)
    weights = np.asarray(weights, dtype=float)
    with figure_style():
        fig = Figure(figsize=(9, 3.8))
        axes = fig.subplots(1, 2, sharey=True)
        for ax, w, title in ((axes[0], np.ones(len(ps)), f"Before {design}"), (axes[1], weights, f"After {design}")):
            _mirrored_histogram(ax, ps, treated, w, labels, min_cell)
            ax.set_title(title)
        axes[0].set_ylabel(f"Share of arm ({labels['treated']} up, {labels['control']} down)")
        limit = max(abs(v) for v in axes[0].get_ylim() + axes[1].get_ylim())
        axes[0].set_ylim(-limit, limit)
        axes[0].yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{abs(v):.3g}"))
        axes[1].legend(loc="upper right", fontsize="small")
        if min_cell is not None:
            fig.text(0.01, 0.01, f"Bins of fewer than {min_cell} patients are not drawn.", fontsize=7, color="#555555")
        fig.tight_layout()
        save_png(fig, path, _DPI)
    return fig
