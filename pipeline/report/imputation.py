"""The report's multiple-imputation parts (missing: multiple_imputation): the methods sentence, and a
section with each imputation's hazard ratio and balance beside the pooled result, the fraction of
missing information, and the range of each covariate's SMD over the imputations."""
from __future__ import annotations

import math

import pandas as pd

from pipeline.config.settings import Analysis, Variable
from pipeline.outcome.km import Z95
from pipeline.report.formatting import column_label, count, estimate_ci, is_estimable, not_estimable_text, number

APPROACHES = {
    "within": "The propensity model, the {adjustment} and the survival comparison were repeated in each completed "
              "data set and their estimates pooled (MatchThem's within approach).",
    "across": "Each patient's propensity score was averaged over the completed data sets and the {adjustment} done "
              "once on it (MatchThem's across approach); balance and the survival comparison were assessed in "
              "each completed data set and pooled.",
}


def imputation_methods(analysis: Analysis) -> str:
    """The methods paragraph's sentences on the imputation ("" without it)."""
    if not analysis.imputed:
        return ""
    imputation = analysis.imputation
    adjustment = "weighting" if analysis.design == "weighting" else "matching"
    return (f"Missing covariate values were imputed {imputation.m} times by chained equations ({imputation.iterations} "
            f"iterations; predictive mean matching with {imputation.donors} donors for numeric and integer "
            "covariates, logistic and multinomial logistic draws for binary and categorical ones, each model "
            "refitted on a bootstrap sample of the observed values; every imputation model included the treatment, "
            "the event indicator and the Nelson-Aalen cumulative hazard, White & Royston 2009). "
            f"{APPROACHES[imputation.approach].format(adjustment=adjustment)} Hazard ratios and restricted mean "
            "survival times were pooled by Rubin's rules with Barnard-Rubin degrees of freedom, survival "
            "probabilities on the complementary log-log scale; medians are the median over the imputations. ")


def imputation_section(analysis: Analysis, results: dict, labels: dict, variables: dict[str, Variable],
                       min_cell: int) -> dict | None:
    """The section's texts and tables (DataFrames: estimates, smd_ranges); None for an analysis without
    imputation."""
    if not analysis.imputed:
        return None
    survival = results["survival"]
    if not is_estimable(survival):
        return {"missing": not_estimable_text(survival)}
    details = survival["imputation"]
    return {"text": _pooling_text(details, analysis),
            "estimates": _estimates_table(details, results, labels, min_cell, survival),
            "balance_text": _balance_text(results["balance_summary"]),
            "smd_ranges": _smd_ranges(results["balance"], variables)}


def _pooling_text(details: dict, analysis: Analysis) -> str:
    pooled = details.get("pooled", [])
    text = (f"{details['m']} imputations, approach {details['approach']}; "
            f"{len(pooled)} pooled. ")
    if details["fmi"] is not None:
        text += (f"Log hazard ratio: fraction of missing information {number(details['fmi'], 3)}, relative "
                 f"increase in variance {number(details['riv'], 3)}, {number(details['df'], 1)} Barnard-Rubin "
                 f"degrees of freedom (complete-data {number(details['dfcom'], 0)}: the events minus one, as "
                 "mice::pool for a Cox model). ")
    counts = ("Counts in the patient flow and the survival table are medians over the imputations"
              if details["approach"] == "within" else "Every imputation uses the one matched sample")
    return (text + f"Pooling: {details['pooling']}. {counts}. Table 1 describes the observed values (the missing "
            "ones counted); after adjustment each patient is weighted by their weight averaged over the imputations, "
            "so its weighted counts can be fractional.")


def _estimates_table(details: dict, results: dict, labels: dict, min_cell: int, survival: dict) -> pd.DataFrame:
    matching = results["matching"]
    per_matching = matching.get("imputations") or [matching] * details["m"]
    balance = results["balance_summary"].get("imputation", {}) if is_estimable(results["balance_summary"]) else {}
    smd = dict(zip(balance.get("pooled", []), balance.get("max_abs_smd_after", [])))
    rows = []
    for i in range(details["m"]):
        log_hr, se = details["log_hr"][i], details["log_hr_se"][i]
        counts = per_matching[i]
        rows.append({
            "Imputation": str(i + 1),
            labels["treated"]: count(counts["n_treated_matched"], min_cell) if is_estimable(counts) else "–",
            labels["control"]: count(counts["n_controls_matched"], min_cell) if is_estimable(counts) else "–",
            "Hazard ratio (95% CI)": ("not estimable" if log_hr is None else
                                      estimate_ci(math.exp(log_hr), math.exp(log_hr - Z95 * se),
                                                  math.exp(log_hr + Z95 * se), 2)),
            "Largest |SMD| after": number(smd.get(i + 1), 3) if i + 1 in smd else "–",
        })
    rows.append({"Imputation": "Pooled (Rubin's rules)", labels["treated"]: "", labels["control"]: "",
                 "Hazard ratio (95% CI)": ("not estimable" if survival["hr"] is None else
                                           estimate_ci(survival["hr"], survival["hr_lower"], survival["hr_upper"], 2)),
                 "Largest |SMD| after": number(results["balance_summary"].get("max_abs_smd_after"), 3)
                 if is_estimable(results["balance_summary"]) else "–"})
    return pd.DataFrame(rows)


def _balance_text(summary: dict) -> str:
    if not is_estimable(summary):
        return not_estimable_text(summary)
    low, high = summary["imputation"]["max_abs_smd_after_range"]
    return (f"The largest |SMD| after adjustment ranged from {number(low, 3)} to {number(high, 3)} over the "
            "imputations. Each covariate's SMD averaged over the imputations (as in the balance table) and its "
            "range:")


def _smd_ranges(balance: pd.DataFrame, variables: dict[str, Variable]) -> pd.DataFrame | None:
    if "smd_after_min" not in balance:
        return None
    return pd.DataFrame({
        "Variable": balance["variable"].map(lambda v: column_label(v, variables)),
        "SMD after (mean)": balance["smd_after"].map(lambda v: number(v, 3)),
        "lowest": balance["smd_after_min"].map(lambda v: number(v, 3)),
        "highest": balance["smd_after_max"].map(lambda v: number(v, 3)),
    })
