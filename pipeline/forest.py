"""Forest plot of every analysis and subgroup, with an exploratory test of effect modification.

The test of interaction compares the subgroup-specific log hazard ratios of one variable's levels
(Cochran's Q with their cluster-robust SEs). The levels are disjoint sets of patients, each matched
separately, so the estimates are independent. It is exploratory: subgroups were not the design's
primary question and the test has little power.
"""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from scipy.stats import chi2  # noqa: E402

from pipeline.report.formatting import count  # noqa: E402

TICKS = [0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10]
COLUMNS = ["analysis", "parent", "subgroup_variable", "subgroup_level", "n_treated", "n_control",
           "events_treated", "events_control", "hr", "hr_lower", "hr_upper", "hr_p", "hr_robust_se",
           "median_treated", "median_control", "mdrr"]


def forest_rows(analyses: dict, survivals: dict[str, dict]) -> pd.DataFrame:
    """One row per analysis, in config order (a parent followed by its derived analyses)."""
    rows = []
    for name, survival in survivals.items():
        origin = analyses[name].get("derived_from", {})
        subgroup = origin.get("subgroup", {})
        rows.append({
            "analysis": name, "parent": origin.get("analysis", name),
            "subgroup_variable": subgroup.get("variable"), "subgroup_level": subgroup.get("level"),
            "n_treated": survival["treated"]["n"], "n_control": survival["control"]["n"],
            "events_treated": survival["treated"]["events"], "events_control": survival["control"]["events"],
            "hr": survival["hr"], "hr_lower": survival["hr_lower"], "hr_upper": survival["hr_upper"],
            "hr_p": survival["hr_p"], "hr_robust_se": survival["hr_robust_se"],
            "median_treated": survival["treated"]["median"], "median_control": survival["control"]["median"],
            "mdrr": survival.get("power", {}).get("mdrr"),
        })
    return pd.DataFrame(rows, columns=COLUMNS)


def interaction_tests(rows: pd.DataFrame) -> pd.DataFrame:
    """Cochran's Q across the levels of each (parent, subgroup variable) with two or more estimable levels."""
    tests = []
    subgroups = rows.dropna(subset=["subgroup_variable"])
    for (parent, variable), group in subgroups.groupby(["parent", "subgroup_variable"], sort=False):
        usable = group.dropna(subset=["hr", "hr_robust_se"])
        usable = usable[usable["hr_robust_se"] > 0]
        if len(usable) < 2:
            continue
        log_hr = np.log(usable["hr"].to_numpy(float))
        weight = 1.0 / usable["hr_robust_se"].to_numpy(float) ** 2
        pooled = np.sum(weight * log_hr) / weight.sum()
        q = float(np.sum(weight * (log_hr - pooled) ** 2))
        df = len(usable) - 1
        tests.append({"parent": parent, "subgroup_variable": variable, "levels": len(usable),
                      "chisq": q, "df": df, "p": float(chi2.sf(q, df))})
    return pd.DataFrame(tests, columns=["parent", "subgroup_variable", "levels", "chisq", "df", "p"])


def suppressed(rows: pd.DataFrame, min_cell: int) -> pd.DataFrame:
    """The table as shared: counts below min_cell shown as '<min_cell'."""
    out = rows.copy()
    for column in ("n_treated", "n_control", "events_treated", "events_control"):
        out[column] = [count(v, min_cell) for v in out[column]]
    return out


def forest_plot(rows: pd.DataFrame, labels: dict, path, min_cell: int) -> None:
    """Hazard ratios with robust 95% CIs on one log axis; n and events per arm beside each row."""
    n = len(rows)
    fig, ax = plt.subplots(figsize=(10, 0.45 * n + 1.6))
    y = np.arange(n)[::-1]
    for yi, (_, row) in zip(y, rows.iterrows()):
        if pd.isna(row["hr"]):
            continue
        parent = row["subgroup_variable"] is None or pd.isna(row["subgroup_variable"])
        ax.plot([row["hr_lower"], row["hr_upper"]], [yi, yi], color="black", lw=1.2)
        ax.plot(row["hr"], yi, marker="D" if parent else "s", color="#2b6cb0" if parent else "#4a5568",
                markersize=7 if parent else 5)
    ax.axvline(1.0, color="#999", lw=1, ls="--")
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(matplotlib.ticker.FixedLocator(TICKS))
    ax.xaxis.set_major_formatter(matplotlib.ticker.FixedFormatter([f"{t:g}" for t in TICKS]))
    ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
    finite = rows[["hr_lower", "hr_upper"]].astype(float).to_numpy()
    finite = finite[np.isfinite(finite)]
    low, high = (finite.min(), finite.max()) if finite.size else (0.5, 2.0)
    ax.set_xlim(min(low, 0.9) / 1.15, max(high, 1.1) * 1.15)
    right = ax.secondary_yaxis("right")
    right.set_yticks(y)
    right.set_yticklabels([_estimate_label(r) for _, r in rows.iterrows()], fontsize=8)
    right.tick_params(length=0)
    ax.set_yticks(y)
    ax.set_yticklabels([_row_label(r, min_cell) for _, r in rows.iterrows()], fontsize=8)
    ax.set_xlabel(f"Hazard ratio, {labels['treated']} vs {labels['control']} (log scale; < 1 favours "
                  f"{labels['treated']})")
    ax.set_ylim(-0.8, n - 0.2)
    fig.tight_layout()
    fig.savefig(path, dpi=110, metadata={"Software": None})
    plt.close(fig)


def _estimate_label(row) -> str:
    if pd.isna(row["hr"]):
        return "not estimable"
    return f"{row['hr']:.2f} ({row['hr_lower']:.2f}–{row['hr_upper']:.2f})"


def _row_label(row, min_cell: int) -> str:
    name = (row["analysis"] if pd.isna(row["subgroup_variable"])
            else f"   {row['subgroup_variable']} = {row['subgroup_level']}")
    return (f"{name}  (n {count(row['n_treated'], min_cell)}/{count(row['n_control'], min_cell)}, "
            f"events {count(row['events_treated'], min_cell)}/{count(row['events_control'], min_cell)})")
