"""Design sensitivity in one picture: for each analysis whose ``sensitivity.design`` adds other
designs, the hazard ratio of every design side by side (the analysis's own first), with its
balance (largest |SMD| after matching or weighting) and effective sample sizes, and a sentence on
whether the conclusion changes with the design.

The designs target different populations (matching with a caliper: the matched treated patients;
ATT: the treated; ATE: the whole cohort; ATO: the overlap population), so their hazard ratios may
differ through effect heterogeneity as well as through residual confounding.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from pipeline.design.designs import design_label
from pipeline.report.checks import balance_failed
from pipeline.report.figures import figure_style, save_png
from pipeline.report.forest import log_axis
from pipeline.report.formatting import count, is_estimable, number, weighted_count

COLUMNS = ["parent", "analysis", "design", "label", "estimand", "estimable", "reason", "n_treated", "n_control",
           "ess_treated", "ess_control", "max_abs_smd_after", "balance_failed", "hr", "hr_lower", "hr_upper", "hr_p"]
SIDES = {"below": "lies below 1", "above": "lies above 1", "includes": "includes 1"}


def design_rows(analyses: dict, entries: list[dict]) -> pd.DataFrame:
    """One row per design of each analysis that varies its design: the analysis itself, then its
    variants of another design, in the entries' (config) order. ``analyses``: per name {design,
    estimand, derived_from}; an entry: {name, survival, balance_summary} (parsed result files)."""
    origins = {name: (a["derived_from"] or {}) for name, a in analyses.items()}
    designs = {name: origin["analysis"] for name, origin in origins.items() if "design" in origin.get("variant", {})}
    by_name = {entry["name"]: entry for entry in entries}
    rows = []
    for parent in (name for name in by_name if name in designs.values()):
        members = [parent] + [name for name in by_name if designs.get(name) == parent]
        rows += [_row(parent, name, analyses[name], origins[name].get("variant", {}), by_name[name])
                 for name in members]
    return pd.DataFrame(rows, columns=COLUMNS)


def _row(parent: str, name: str, analysis: dict, variant: dict, entry: dict) -> dict:
    survival, balance = entry["survival"], entry.get("balance_summary")
    others = ", ".join(f"{key.rsplit('.', 1)[-1]} {value}" for key, value in variant.items() if key != "design")
    row = {"parent": parent, "analysis": name, "design": analysis["design"],
           "label": design_label(analysis["design"]) + (f" ({others})" if others else ""),
           "estimand": analysis["estimand"], "estimable": is_estimable(survival), "reason": survival.get("reason"),
           "max_abs_smd_after": balance["max_abs_smd_after"] if is_estimable(balance) else None,
           "balance_failed": bool(balance_failed(balance))}
    if row["estimable"]:
        row.update({"n_treated": survival["treated"]["n"], "n_control": survival["control"]["n"],
                    "ess_treated": survival["treated"]["ess"], "ess_control": survival["control"]["ess"],
                    **{key: survival[key] for key in ("hr", "hr_lower", "hr_upper", "hr_p")}})
    return row


def _side(row) -> str | None:
    """Where the row's 95% CI lies relative to 1; None without one."""
    if pd.isna(row["hr_lower"]) or pd.isna(row["hr_upper"]):
        return None
    return "below" if row["hr_upper"] < 1 else "above" if row["hr_lower"] > 1 else "includes"


def conclusion(rows: pd.DataFrame, labels: dict) -> str:
    """Whether one analysis's designs agree: every 95% CI on the same side of 1 (or every one
    including 1), or not; designs without a CI are named."""
    sides = {row["label"]: _side(row) for _, row in rows.iterrows()}
    missing = [label for label, side in sides.items() if side is None]
    known = {label: side for label, side in sides.items() if side is not None}
    note = f" No confidence interval for {', '.join(missing)}." if missing else ""
    if not known:
        return f"No design gave a hazard ratio with a confidence interval.{note}"
    kinds = set(known.values())
    if len(kinds) > 1:
        parts = [f"{SIDES[kind]} for {', '.join(label for label, side in known.items() if side == kind)}"
                 for kind in SIDES if kind in kinds]
        return f"The conclusion depends on the design: the 95% CI {'; it '.join(parts)}.{note}"
    kind = kinds.pop()
    meaning = {"below": f"favouring {labels['treated']}", "above": f"favouring {labels['control']}",
               "includes": "no design shows a difference"}[kind]
    every = "every design's" if len(known) > 1 else "the only"
    return f"The conclusion does not depend on the design: {every} 95% CI {SIDES[kind]} ({meaning}).{note}"


def suppressed(rows: pd.DataFrame, min_cell: int) -> pd.DataFrame:
    """The table as shared: patient counts below min_cell as '<min_cell', and so the arm's ESS."""
    out = rows.copy()
    for arm in ("treated", "control"):
        n = out[f"n_{arm}"]
        out[f"ess_{arm}"] = [None if pd.isna(e) else weighted_count(e, rows_, min_cell)
                             for e, rows_ in zip(out[f"ess_{arm}"], n)]
        out[f"n_{arm}"] = [None if pd.isna(v) else count(v, min_cell) for v in n]
    return out


def design_forest_plot(rows: pd.DataFrame, labels: dict, path, min_cell: int) -> Figure:
    """Each analysis's designs as a block of hazard ratios with robust 95% CIs on one log axis
    (the analysis's own design a diamond), n, ESS and largest |SMD| after beside each; † marks
    balance not achieved."""
    lines = []                          # (text, row or None) from the top: a heading per analysis
    for parent, block in rows.groupby("parent", sort=False):
        lines.append((parent, None))
        lines += [(None, row) for _, row in block.iterrows()]
    n = len(lines)
    with figure_style():
        height = 0.42 * n + 1.6
        fig = Figure(figsize=(10, height))
        ax = fig.add_subplot()
        y = np.arange(n)[::-1]
        for yi, (_, row) in zip(y, lines):
            if row is None or pd.isna(row["hr"]) or pd.isna(row["hr_lower"]):
                continue
            own = row["analysis"] == row["parent"]
            ax.plot([row["hr_lower"], row["hr_upper"]], [yi, yi], color="black", lw=1.2)
            ax.plot(row["hr"], yi, marker="D" if own else "s", color="#2b6cb0" if own else "#4a5568",
                    markersize=7 if own else 5)
        ax.axvline(1.0, color="#999", lw=1, ls="--")
        log_axis(ax, rows)
        ax.set_yticks(y)
        ax.set_yticklabels([heading if row is None else _row_label(row, min_cell) for heading, row in lines],
                           fontsize=8)
        for tick, (heading, _) in zip(ax.get_yticklabels(), lines):
            tick.set_fontweight("bold" if heading is not None else "normal")
        right = ax.secondary_yaxis("right")
        right.set_yticks(y)
        right.set_yticklabels(["" if row is None else _estimate(row) for _, row in lines], fontsize=8)
        right.tick_params(length=0)
        ax.set_xlabel(f"Hazard ratio, {labels['treated']} vs {labels['control']} (log scale)\n"
                      f"< 1 favours {labels['treated']}")
        ax.set_ylim(-0.8, n - 0.2)
        fig.text(0.01, 0.01, "† balance not achieved   ◆ the analysis's own design", fontsize=7, color="#555555")
        fig.tight_layout(rect=(0, 0.25 / height, 1, 1))
        save_png(fig, path, dpi=110)
    return fig


def _row_label(row, min_cell: int) -> str:
    mark = " †" if row["balance_failed"] else ""
    if not row["estimable"]:
        return f"   {row['label']}{mark}  (not estimable)"
    ess = "/".join(weighted_count(row[f"ess_{arm}"], row[f"n_{arm}"], min_cell) for arm in ("treated", "control"))
    n = "/".join(count(row[f"n_{arm}"], min_cell) for arm in ("treated", "control"))
    return f"   {row['label']}{mark}  (n {n}, ESS {ess}, max |SMD| {number(row['max_abs_smd_after'], 2)})"


def _estimate(row) -> str:
    if not row["estimable"]:
        return "not estimable"
    if pd.isna(row["hr"]):
        return "HR not estimable"
    return f"{row['hr']:.2f} ({row['hr_lower']:.2f}–{row['hr_upper']:.2f})"
