"""What a reviewer must see before an analysis's estimate: balance not achieved, treated patients
lost to the caliper (the estimand of a matching design moves), too few events to detect a relevant
effect."""
from __future__ import annotations

from pipeline.config.settings import Variable
from pipeline.design.balance import SMD_THRESHOLD, VARIANCE_RATIO_BOUNDS
from pipeline.report.disclosure import sum_counts
from pipeline.report.formatting import column_label, count, is_estimable, is_suppressed, number, signed

TREATED_LOSS_THRESHOLD = 0.05
"""Share of the treated patients left out of the matched sample (no control within the caliper, or
outside common support) above which the reports say that the estimate is no longer the average
treatment effect in the treated (ATT) but the effect in the matched population (this project's
convention: a few percent can be ignored, more changes whom the estimate describes)."""


def is_weighting(matching: dict | None) -> bool:
    """matching.json describes a weighting design (a matching design's has no ``design`` key)."""
    return is_estimable(matching) and matching.get("design") == "weighting"


def adjustment(matching: dict | None) -> str:
    """How the arms were made comparable, in a word: matching or weighting."""
    return "weighting" if is_weighting(matching) else "matching"


def treated_lost(matching: dict | None, cohort: dict | None) -> tuple[int, int] | None:
    """(treated patients not in the matched or weighted sample, treated patients in the cohort); None
    when the design stage was not estimable. ``cohort``: cohort.json, which holds the arms' sizes."""
    if not is_estimable(matching):
        return None
    lost = sum_counts(matching["n_treated_unmatched"], matching["n_discarded_treated"],
                      matching.get("n_trimmed_treated", 0))
    return lost, cohort["n_treated"]


def treated_lost_share(matching: dict | None, cohort: dict | None) -> float | None:
    """None also where a count is suppressed (the shareable tier)."""
    lost = treated_lost(matching, cohort)
    if lost is None or any(map(is_suppressed, lost)) or lost[1] == 0:
        return None
    return lost[0] / lost[1]


def estimand_moved(matching: dict | None, cohort: dict | None) -> bool:
    """A matching design left out more than TREATED_LOSS_THRESHOLD of the treated patients (a
    weighting design names its own estimand and the patients it excludes). The shareable tier's
    matching.json carries the answer from the exact counts."""
    if is_weighting(matching):
        return False
    if is_estimable(matching) and "estimand_moved" in matching:
        return matching["estimand_moved"]
    share = treated_lost_share(matching, cohort)
    return share is not None and share > TREATED_LOSS_THRESHOLD


def estimand_sentence(matching: dict, cohort: dict, treated_label: str, min_cell: int, short: bool = False) -> str:
    """Why the estimate describes the matched population rather than all treated patients."""
    lost, treated = treated_lost(matching, cohort)
    shown, lost_share = count(lost, min_cell), treated_lost_share(matching, cohort)
    share = "" if shown.startswith("<") or lost_share is None else f"{100 * lost_share:.0f}% of "
    if short:
        return (f"{share}{treated_label} patients not matched ({shown} of {count(treated, min_cell)}): the estimate "
                "describes the matched population, not the ATT.")
    return (f"{share}{treated_label} patients ({shown} of {count(treated, min_cell)}) are not in the matched "
            f"sample (no control within the caliper, or outside common support): more than "
            f"{TREATED_LOSS_THRESHOLD:.0%}, so the estimate describes the matched population, not the "
            f"average treatment effect in the treated (ATT).")


def trimming_sentence(matching: dict | None, labels: dict, min_cell: int, short: bool = False) -> str | None:
    """What trimming by the propensity score left out of a weighting design (None: nobody)."""
    if not is_weighting(matching) or sum_counts(matching["n_trimmed_treated"], matching["n_trimmed_control"]) == 0:
        return None
    trimmed = (f"{count(matching['n_trimmed_treated'], min_cell)} {labels['treated']} and "
               f"{count(matching['n_trimmed_control'], min_cell)} {labels['control']} patients trimmed")
    if short:
        return f"{trimmed}: the estimate describes the trimmed population."
    return (f"{trimmed[0].upper()}{trimmed[1:]} (propensity score outside the trimming bounds): the estimate "
            "describes the trimmed population, not every patient of the cohort.")


def balance_failed(balance_summary: dict | None) -> list[dict]:
    """balance.json's covariate columns still imbalanced after matching: {variable, smd_after,
    var_ratio_after} each."""
    return balance_summary["failed"] if is_estimable(balance_summary) else []


def _smd_failed(column: dict) -> bool:
    """(A suppressed column is listed here, with its marker.)"""
    smd = column["smd_after"]
    return smd is not None and (is_suppressed(smd) or abs(smd) >= SMD_THRESHOLD)


def _ratio_failed(column: dict) -> bool:
    low, high = VARIANCE_RATIO_BOUNDS
    ratio = column["var_ratio_after"]
    return ratio is not None and not is_suppressed(ratio) and not low <= ratio <= high


def balance_sentences(failed: list[dict], n_columns: int, design: str) -> list[str]:
    """The imbalanced columns in words: those with a large SMD (of ``n_columns`` covariate columns),
    then those with a variance ratio out of bounds; ``design``: after matching or weighting."""
    sentences = []
    smd = [c for c in failed if _smd_failed(c)]
    if smd:
        listed = ", ".join(f"{c['variable']} ({signed(c['smd_after'])})" for c in smd)
        sentences.append(f"Balance not achieved: after {design}, {len(smd)} of {n_columns} covariates have an "
                         f"absolute standardized mean difference of {SMD_THRESHOLD:g} or more: {listed}.")
    ratio = [c for c in failed if _ratio_failed(c)]
    if ratio:
        low, high = VARIANCE_RATIO_BOUNDS
        listed = ", ".join(f"{c['variable']} ({c['var_ratio_after']:.2f})" for c in ratio)
        sentences.append(f"After {design}, {len(ratio)} covariates have a variance ratio (treated/control) outside "
                         f"[{low:g}, {high:g}]: {listed}.")
    return sentences


def underpowered(survival: dict | None) -> bool:
    """Too few events to detect report.relevant_hr, and no significant hazard ratio: the case in
    which a reader could mistake the non-significant result for equivalence."""
    if not (is_estimable(survival) and survival["power"]["underpowered"]):
        return False
    return survival["hr_p"] is None or survival["hr_p"] >= survival["power"]["alpha"]


def underpowered_sentence(survival: dict, relevant_hr: float) -> str:
    power = survival["power"]
    if power["mdrr"] is None:
        return "Underpowered: no events."
    return (f"Underpowered: minimum detectable hazard ratio {number(power['mdrr'], 2)} at {power['power']:.0%} "
            f"power, clinically relevant {relevant_hr}.")


def review_flags(entry: dict, labels: dict, min_cell: int, relevant_hr: float,
                 variables: dict[str, Variable]) -> list[str]:
    """What the index puts beside an analysis, most serious first. ``entry``: the analysis's parsed
    survival, attrition (cohort.json), matching and balance_summary (balance.json); ``labels``: the
    arms' display names."""
    survival, matching, cohort = entry["survival"], entry["matching"], entry["attrition"]
    if not is_estimable(survival):   # the headline gives the reason
        return [f"Not estimable (stage: {survival['stage']})."]
    flags = []
    failed = balance_failed(entry["balance_summary"])
    if failed:
        flags.append(f"Balance not achieved after {adjustment(matching)}: "
                     f"{', '.join(column_label(c['variable'], variables) for c in failed)}.")
    if estimand_moved(matching, cohort):
        flags.append(estimand_sentence(matching, cohort, labels["treated"], min_cell, short=True))
    trimmed = trimming_sentence(matching, labels, min_cell, short=True)
    if trimmed:
        flags.append(trimmed)
    if underpowered(survival):
        flags.append(underpowered_sentence(survival, relevant_hr))
    return flags
