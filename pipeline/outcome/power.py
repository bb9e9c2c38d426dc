"""Power of a matched survival comparison: the minimum detectable hazard ratio.

Schoenfeld's formula, as OHDSI CohortMethod's MDRR: with D events in total and a share p of the
patients in the treated arm, the smallest hazard ratio detectable with a two-sided test at level
alpha and the given power is exp(sqrt((z_{1-alpha/2} + z_{power})^2 / (D p (1-p)))).
"""
from __future__ import annotations

import math

from scipy.stats import norm


def minimum_detectable_hr(events: int, n_treated: int, n_control: int, *, alpha: float = 0.05,
                          power: float = 0.8) -> float | None:
    """MDRR (> 1; its reciprocal is the protective counterpart); None without events or an arm."""
    if events <= 0 or n_treated <= 0 or n_control <= 0:
        return None
    share = n_treated / (n_treated + n_control)
    z = norm.ppf(1 - alpha / 2) + norm.ppf(power)
    return math.exp(math.sqrt(z * z / (events * share * (1 - share))))


def power_summary(survival: dict, relevant_hr: float, alpha: float = 0.05, power: float = 0.8) -> dict:
    """The MDRR of a survival.json result and whether the comparison could detect `relevant_hr`."""
    treated, control = survival["treated"], survival["control"]
    mdrr = minimum_detectable_hr(treated["events"] + control["events"], treated["n"], control["n"],
                                 alpha=alpha, power=power)
    return {"mdrr": mdrr, "alpha": alpha, "power": power, "relevant_hr": relevant_hr,
            "underpowered": mdrr is None or mdrr > relevant_hr}
