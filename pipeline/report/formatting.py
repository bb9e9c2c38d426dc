"""Number formatting and disclosure control shared by every aggregate output."""
from __future__ import annotations

import math


def count(n, min_cell: int) -> str:
    """A count, or "<min_cell" when it is small enough to identify patients (0 is shown)."""
    if n is None:
        return "–"
    n = int(n)
    return f"<{min_cell}" if 0 < n < min_cell else str(n)


def number(x, digits: int = 1) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "NR"
    return f"{x:.{digits}f}"


def p_value(p) -> str:
    if p is None:
        return "–"
    return "< 0.001" if p < 0.001 else f"{p:.3f}" if p < 0.01 else f"{p:.2f}"


def p_clause(p) -> str:
    """'p = 0.78' or 'p < 0.001', for running text."""
    text = p_value(p)
    return f"p {text}" if text.startswith("<") else f"p = {text}"


def estimate_ci(est, lower, upper, digits: int = 1) -> str:
    """'12.3 (95% CI 10.1–15.0)'; a bound that is not reached reads NR."""
    return f"{number(est, digits)} (95% CI {number(lower, digits)}–{number(upper, digits)})"


def arm_median(arm: dict, time_unit: str) -> str:
    if arm["median"] is None:
        return f"not reached (95% CI {number(arm['median_lower'])}–{number(arm['median_upper'])})"
    return (f"{number(arm['median'])} {time_unit} "
            f"(95% CI {number(arm['median_lower'])}–{number(arm['median_upper'])})")


def headline(survival: dict, labels: dict) -> str:
    """The analysis's one-sentence result, as a reader would quote it."""
    unit = survival["time_unit"]
    return (f"Median survival: {labels['treated']} {arm_median(survival['treated'], unit)} vs "
            f"{labels['control']} {arm_median(survival['control'], unit)}; "
            f"log-rank {p_clause(survival['logrank_p'])}; "
            f"HR {number(survival['hr'], 2)} ({number(survival['hr_lower'], 2)}–{number(survival['hr_upper'], 2)})")


def arm_labels(analysis: dict) -> dict:
    treatment = analysis["treatment"]
    labels = treatment.get("labels", {})
    return {arm: labels.get(arm, treatment[arm]) for arm in ("treated", "control")}
