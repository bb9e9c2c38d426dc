"""What a reviewer must see before an analysis's estimate: balance not achieved, treated patients
lost to the caliper (the estimand moves), too few events to detect a relevant effect."""
from __future__ import annotations

import pandas as pd

from pipeline.report.formatting import column_label, count, is_estimable, number

TREATED_LOSS_THRESHOLD = 0.05
"""Share of the treated patients left out of the matched sample (no control within the caliper, or
outside common support) above which the reports say that the estimate is no longer the average
treatment effect in the treated (ATT) but the effect in the matched population (this project's
convention: a few percent can be ignored, more changes whom the estimate describes)."""


def treated_lost(matching: dict | None) -> tuple[int, int] | None:
    """(treated patients not in the matched sample, treated patients in the cohort); None when
    matching was not estimable."""
    if not is_estimable(matching) or "n_treated" not in matching:
        return None
    lost = matching["n_treated_unmatched"] + matching.get("n_discarded_treated", 0)
    return lost, matching["n_treated"]


def treated_lost_share(matching: dict | None) -> float | None:
    lost = treated_lost(matching)
    return None if lost is None or lost[1] == 0 else lost[0] / lost[1]


def estimand_moved(matching: dict | None) -> bool:
    share = treated_lost_share(matching)
    return share is not None and share > TREATED_LOSS_THRESHOLD


def estimand_sentence(matching: dict, treated_label: str, min_cell: int, short: bool = False) -> str:
    """Why the estimate describes the matched population rather than all treated patients."""
    lost, total = treated_lost(matching)
    shown = count(lost, min_cell)
    share = "" if shown.startswith("<") else f"{100 * lost / total:.0f}% of "
    if short:
        return (f"{share}{treated_label} patients not matched ({shown} of {count(total, min_cell)}): the estimate "
                "describes the matched population, not the ATT.")
    return (f"{share}{treated_label} patients ({shown} of {count(total, min_cell)}) are not in the matched "
            f"sample (no control within the caliper, or outside common support): more than "
            f"{TREATED_LOSS_THRESHOLD:.0%}, so the estimate describes the matched population, not the "
            f"average treatment effect in the treated (ATT).")


def balance_failed(balance_summary: dict | None) -> list[str]:
    """balance.json's sentences naming the covariates still imbalanced after matching."""
    return list(balance_summary.get("failed") or []) if is_estimable(balance_summary) else []


def underpowered(survival: dict | None) -> bool:
    """Too few events to detect report.relevant_hr, and no significant hazard ratio: the case in
    which a reader could mistake the non-significant result for equivalence."""
    power = (survival or {}).get("power") if is_estimable(survival) else None
    if not (power and power.get("underpowered")):
        return False
    return survival["hr_p"] is None or survival["hr_p"] >= power["alpha"]


def underpowered_sentence(survival: dict) -> str:
    power = survival["power"]
    if power["mdrr"] is None:
        return "Underpowered: no events."
    return (f"Underpowered: minimum detectable hazard ratio {number(power['mdrr'], 2)} at {power['power']:.0%} "
            f"power, clinically relevant {power['relevant_hr']}.")


def imbalance_sentence(balance_summary: dict, balance: pd.DataFrame | None, variables: dict) -> list[str]:
    """The covariates flagged in balance.csv, by label; balance.json's sentences when it flags none."""
    if balance is None or "flag" not in balance:
        return balance_failed(balance_summary)
    flagged = balance.loc[balance["flag"].fillna("").astype(str) != "", "variable"]
    if flagged.empty:
        return balance_failed(balance_summary)
    return [f"Balance not achieved after matching: {', '.join(column_label(v, variables) for v in flagged)}."]


def review_flags(entry: dict, treated_label: str, min_cell: int, variables: dict) -> list[str]:
    """What the index puts beside an analysis, most serious first. ``entry``: the analysis's parsed
    survival, balance_summary (balance.json), balance (balance.csv, optional) and matching."""
    survival, summary, matching = entry["survival"], entry.get("balance_summary"), entry.get("matching")
    if not is_estimable(survival):   # the headline gives the reason
        return [f"Not estimable (stage: {survival.get('stage') or 'unknown'})."]
    flags = imbalance_sentence(summary, entry.get("balance"), variables) if balance_failed(summary) else []
    if estimand_moved(matching):
        flags.append(estimand_sentence(matching, treated_label, min_cell, short=True))
    if underpowered(survival):
        flags.append(underpowered_sentence(survival))
    return flags
