"""Forest plot of every analysis and subgroup, with an exploratory test of effect modification.

The test of interaction compares the subgroup-specific log hazard ratios of one variable's levels
(Cochran's Q with their cluster-robust SEs). The levels are disjoint sets of patients, each matched
separately, so the estimates are independent. It is exploratory: subgroups were not the design's
primary question and the test has little power. Levels without an estimate (not estimable, or no
hazard ratio) are left out of the test and counted.
"""
from __future__ import annotations

import textwrap

import matplotlib.ticker
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from scipy.stats import chi2

from pipeline.config.settings import Variable
from pipeline.report.checks import (TREATED_LOSS_THRESHOLD, balance_failed, estimand_moved, treated_lost_share,
                                    underpowered)
from pipeline.report.figures import figure_style, save_png
from pipeline.report.formatting import count, is_estimable, subgroup_label

TICKS = [0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10]
COLUMNS = ["analysis", "parent", "subgroup_variable", "subgroup_level", "subgroup_label", "estimable", "reason",
           "n_treated", "n_control", "events_treated", "events_control", "hr", "hr_lower", "hr_upper", "hr_p",
           "hr_robust_se", "median_treated", "median_control", "mdrr", "balance_failed", "treated_lost_share",
           "estimand_moved", "underpowered"]
COUNTS = ("n_treated", "n_control", "events_treated", "events_control")
MARKS = {"balance_failed": "†", "estimand_moved": "‡", "underpowered": "§"}
MARK_LEGEND = (f"† balance not achieved   ‡ more than {TREATED_LOSS_THRESHOLD:.0%} of treated patients not "
               "matched (estimate for the matched population)   § underpowered")


def forest_rows(analyses: dict, entries: list[dict], variables: dict[str, Variable]) -> pd.DataFrame:
    """One row per analysis, in the order of ``entries`` (config order: a parent, then its derived
    analyses). ``analyses``: per name {treatment, derived_from}; an entry: {name, survival, and
    optionally attrition, matching, balance_summary} (the parsed result files); ``variables``: the
    registry variables, for the subgroup levels' names."""
    return pd.DataFrame([_row(analyses[e["name"]]["derived_from"] or {}, e, variables) for e in entries],
                        columns=COLUMNS)


def _row(origin: dict, entry: dict, variables: dict[str, Variable]) -> dict:
    subgroup = origin.get("subgroup", {})
    survival, matching, cohort = entry["survival"], entry.get("matching"), entry.get("attrition")
    row = {
        "analysis": entry["name"], "parent": origin.get("analysis", entry["name"]),
        "subgroup_variable": subgroup.get("variable"),
        "subgroup_level": None if not subgroup else str(subgroup["level"]),
        "subgroup_label": None if not subgroup else subgroup_label(subgroup["variable"], subgroup["level"], variables),
        "estimable": is_estimable(survival), "reason": survival.get("reason"),
        "balance_failed": bool(balance_failed(entry.get("balance_summary"))),
        "treated_lost_share": treated_lost_share(matching, cohort),
        "estimand_moved": estimand_moved(matching, cohort),
        "underpowered": underpowered(survival),
    }
    if row["estimable"]:
        treated, control = survival["treated"], survival["control"]
        row.update({
            "n_treated": treated["n"], "n_control": control["n"],
            "events_treated": treated["events"], "events_control": control["events"],
            "hr": survival["hr"], "hr_lower": survival["hr_lower"], "hr_upper": survival["hr_upper"],
            "hr_p": survival["hr_p"], "hr_robust_se": survival["hr_robust_se"],
            "median_treated": treated["median"], "median_control": control["median"],
            "mdrr": survival["power"]["mdrr"],
        })
    return row


def interaction_tests(rows: pd.DataFrame) -> pd.DataFrame:
    """Cochran's Q across the levels of each (parent, subgroup variable); chi-square and p are empty
    when fewer than two levels have an estimate, and `levels_not_estimable` counts those left out."""
    tests = []
    subgroups = rows.dropna(subset=["subgroup_variable"])
    for (parent, variable), group in subgroups.groupby(["parent", "subgroup_variable"], sort=False):
        usable = group.dropna(subset=["hr", "hr_robust_se"])
        usable = usable[usable["hr_robust_se"] > 0]
        test = {"parent": parent, "subgroup_variable": variable, "levels": len(usable),
                "levels_not_estimable": len(group) - len(usable), "chisq": None, "df": None, "p": None}
        if len(usable) >= 2:
            log_hr = np.log(usable["hr"].to_numpy(float))
            weight = 1.0 / usable["hr_robust_se"].to_numpy(float) ** 2
            pooled = np.sum(weight * log_hr) / weight.sum()
            q = float(np.sum(weight * (log_hr - pooled) ** 2))
            test.update(chisq=q, df=len(usable) - 1, p=float(chi2.sf(q, len(usable) - 1)))
        tests.append(test)
    return pd.DataFrame(tests, columns=["parent", "subgroup_variable", "levels", "levels_not_estimable",
                                        "chisq", "df", "p"]).astype({"df": "Int64"})


def suppressed(rows: pd.DataFrame, min_cell: int) -> pd.DataFrame:
    """The table as shared: counts below min_cell shown as '<min_cell'."""
    out = rows.copy()
    for column in COUNTS:
        out[column] = [None if pd.isna(v) else count(v, min_cell) for v in out[column]]
    return out


def forest_plot(rows: pd.DataFrame, labels: dict, path, min_cell: int) -> Figure:
    """Hazard ratios with robust 95% CIs on one log axis; n and events per arm beside each row, the
    design checks' marks (MARKS) after the name, and rows without an estimate as text."""
    n = len(rows)
    with figure_style():
        height = 0.45 * n + 1.9
        fig = Figure(figsize=(10, height))
        ax = fig.add_subplot()
        y = np.arange(n)[::-1]
        for yi, (_, row) in zip(y, rows.iterrows()):
            if pd.isna(row["hr"]):
                continue
            parent = pd.isna(row["subgroup_variable"])
            ax.plot([row["hr_lower"], row["hr_upper"]], [yi, yi], color="black", lw=1.2)
            ax.plot(row["hr"], yi, marker="D" if parent else "s", color="#2b6cb0" if parent else "#4a5568",
                    markersize=7 if parent else 5)
        ax.axvline(1.0, color="#999", lw=1, ls="--")
        log_axis(ax, rows)
        right = ax.secondary_yaxis("right")
        right.set_yticks(y)
        right.set_yticklabels([_estimate_label(r) for _, r in rows.iterrows()], fontsize=8)
        right.tick_params(length=0)
        ax.set_yticks(y)
        ax.set_yticklabels([_row_label(r, min_cell) for _, r in rows.iterrows()], fontsize=8)
        ax.set_xlabel(f"Hazard ratio, {labels['treated']} vs {labels['control']} (log scale)\n"
                      f"< 1 favours {labels['treated']}")
        ax.set_ylim(-0.8, n - 0.2)
        fig.text(0.01, 0.01, MARK_LEGEND, fontsize=7, color="#555555")
        fig.tight_layout(rect=(0, 0.25 / height, 1, 1))
        save_png(fig, path, dpi=110)
    return fig


def log_axis(ax, rows: pd.DataFrame) -> None:
    """A log x axis with the forest plots' ticks, spanning the rows' CIs and 1."""
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(matplotlib.ticker.FixedLocator(TICKS))
    ax.xaxis.set_major_formatter(matplotlib.ticker.FixedFormatter([f"{t:g}" for t in TICKS]))
    ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
    finite = rows[["hr_lower", "hr_upper"]].astype(float).to_numpy()
    finite = finite[np.isfinite(finite) & (finite > 0)]
    low, high = (finite.min(), finite.max()) if finite.size else (0.5, 2.0)
    ax.set_xlim(min(low, 0.9) / 1.15, max(high, 1.1) * 1.15)


def _estimate_label(row) -> str:
    if not row["estimable"]:
        return "not estimable"
    if pd.isna(row["hr"]):
        return "HR not estimable"
    return f"{row['hr']:.2f} ({row['hr_lower']:.2f}–{row['hr_upper']:.2f})"


def _row_label(row, min_cell: int) -> str:
    name = row["analysis"] if pd.isna(row["subgroup_variable"]) else f"   {row['subgroup_label']}"
    marks = "".join(mark for key, mark in MARKS.items() if row[key])
    if not row["estimable"]:
        return f"{name}  (not estimable: {textwrap.shorten(str(row['reason']), 50, placeholder='…')})"
    return (f"{name}{' ' + marks if marks else ''}  (n {count(row['n_treated'], min_cell)}/"
            f"{count(row['n_control'], min_cell)}, events {count(row['events_treated'], min_cell)}/"
            f"{count(row['events_control'], min_cell)})")
