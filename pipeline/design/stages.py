"""The design stages of an analysis (propensity, matching, balance) as functions of frames keyed
by patient_id.

The numerical modules work on arrays; these functions translate between them and the result
tables the workflow writes, so the workflow's scripts and the tests call the same code.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline.design.balance import balance_failed, balance_table, constant_covariates
from pipeline.errors import NotEstimable
from pipeline.design.matching.nearest import common_support, distance_from_ps, match_nearest
from pipeline.design.propensity.models import add_missing_indicators, design_matrix, fit_propensity, ps_diagnostics
from pipeline.design.table_one import table_one


def analysis_variables(variables: dict, cohort: pd.DataFrame) -> dict:
    """The registry variables plus the derived ones an analysis may use (center, index_year)."""
    full = dict(variables)
    if "center" in cohort:
        full["center"] = {"type": "category", "levels": sorted(cohort["center"].dropna().unique())}
    if "index_year" in cohort:
        full["index_year"] = {"type": "integer"}
    return full


def covariate_matrix(cohort: pd.DataFrame, analysis: dict, variables: dict) -> pd.DataFrame:
    """Design matrix of the analysis's covariates (with missingness indicators if configured)."""
    variables = analysis_variables(variables, cohort)
    covariates = list(analysis["covariates"])
    data = cohort
    if analysis["missing"] == "indicator":
        data, covariates = add_missing_indicators(cohort, covariates, variables)
        variables = variables | {c: {"type": "binary"} for c in covariates if c not in variables}
    return design_matrix(data, covariates, variables)


def propensity_stage(cohort: pd.DataFrame, analysis: dict, variables: dict, seed: int):
    treated = cohort["treated"].to_numpy(bool)
    spec = analysis["propensity"]
    precomputed = cohort[spec["column"]].to_numpy(float) if spec["model"] == "precomputed" else None
    X = covariate_matrix(cohort, analysis, variables)
    fit = fit_propensity(X, treated, spec, seed, precomputed=precomputed)
    matching = analysis["matching"]
    distance, unmatchable = matching_distance(fit.ps, matching["caliper_scale"])
    discarded = common_support(fit.ps, treated, matching["discard"]) | unmatchable
    scores = pd.DataFrame({
        "patient_id": cohort["patient_id"].to_numpy(),
        "group": cohort["group"].to_numpy(),
        "ps": fit.ps,
        "distance": distance,
        "discarded": discarded,
    })
    summary = {
        "estimable": True,
        "model": fit.model,
        "converged": fit.converged,
        "warnings": fit.warnings,
        "coefficients": fit.coefficients,
        "n_discarded_treated": int((discarded & treated).sum()),
        "n_discarded_control": int((discarded & ~treated).sum()),
        "n_score_0_or_1": int(unmatchable.sum()),
        "diagnostics_before": ps_diagnostics(fit.ps, treated),
    }
    return scores, summary


def matching_distance(ps: np.ndarray, scale: str) -> tuple[np.ndarray, np.ndarray]:
    """The distance to match on, and which patients cannot be matched on it: on the logit scale a
    score of exactly 0 or 1 (separation) has no finite distance, so those patients (distance
    -inf/+inf) are discarded, as patients without a comparable counterpart."""
    unmatchable = ((ps <= 0) | (ps >= 1)) if scale == "logit" else np.zeros(len(ps), dtype=bool)
    distance = np.where(ps >= 1, np.inf, -np.inf)
    distance[~unmatchable] = distance_from_ps(ps[~unmatchable], scale)
    return distance, unmatchable


def exact_strata(cohort: pd.DataFrame, exact: list[str]) -> np.ndarray | None:
    """One integer code per combination of the exact-matching variables (None without any)."""
    if not exact:
        return None
    return cohort.groupby(list(exact), sort=True, dropna=False).ngroup().to_numpy()


def match_stage(cohort: pd.DataFrame, scores: pd.DataFrame, analysis: dict, seed: int,
                propensity: dict | None = None):
    """Matched sample, pairs and summary; NotEstimable (with the likely cause) when nobody matches.

    ``propensity``: the propensity stage's summary, whose warnings explain a failed match."""
    matching = analysis["matching"]
    treated = scores["group"].eq("treated").to_numpy()
    discarded = scores["discarded"].to_numpy(bool)
    if discarded.all():
        raise NotEstimable("every patient is outside the common support of the propensity score "
                           f"(discard: {matching['discard']})")
    result = match_nearest(
        scores["distance"].to_numpy(float), treated,
        ratio=matching["ratio"], caliper=matching["caliper"], std_caliper=matching["std_caliper"],
        replace=matching["replace"], order=matching["order"],
        exact=exact_strata(cohort, matching["exact"]),
        discarded=discarded, seed=seed,
    )
    if result.counts["n_treated_matched"] == 0:
        raise NotEstimable(_why_nobody_matched(result, matching, propensity or {}))
    ids = scores["patient_id"].to_numpy()
    keep = result.weights > 0
    matched = pd.DataFrame({
        "patient_id": ids[keep],
        "group": scores["group"].to_numpy()[keep],
        "subclass": _subclass_column(result.subclass[keep], matching["replace"]),
        "weight": result.weights[keep],
        "ps": scores["ps"].to_numpy()[keep],
        "distance": scores["distance"].to_numpy()[keep],
    })
    pairs = pd.DataFrame({
        "treated_id": ids[result.pairs["treated_index"].to_numpy()],
        "control_id": ids[result.pairs["control_index"].to_numpy()],
        "slot": result.pairs["slot"].to_numpy(),
        "distance_diff": result.pairs["distance_diff"].to_numpy(),
    })
    summary = {"estimable": True, "settings": matching, "caliper_raw": result.caliper_raw, **result.counts}
    return matched, pairs, summary


def _why_nobody_matched(result, matching: dict, propensity: dict) -> str:
    """The likely cause, in words (no counts: a reason is shown wherever the analysis is listed)."""
    separation = [w for w in propensity.get("warnings", []) if "separate the arms" in w]
    if separation:
        return f"no treated patient could be matched: {separation[0]}"
    remedies = "widen the caliper" if matching["caliper"] is not None else "check the propensity model"
    if matching["exact"]:
        remedies += f" or match exactly on fewer variables than {', '.join(matching['exact'])}"
    within = ", within the exact-matching strata" if matching["exact"] else ""
    return (f"no treated patient has a control within the caliper (caliper {matching['caliper']}, "
            f"{result.caliper_raw:.4g} in distance units{within}); {remedies}")


def _subclass_column(subclass: np.ndarray, replace: bool) -> pd.Series:
    """Matched-set ids; empty with replacement, where a control can belong to several sets."""
    if replace:
        return pd.Series([pd.NA] * len(subclass), dtype="Int64")
    return pd.Series(subclass, dtype="Int64")


def matched_rows(cohort: pd.DataFrame, matched: pd.DataFrame) -> np.ndarray:
    """Row of `matched` (one row per matched patient) for each cohort row; -1 for the unmatched."""
    return pd.Index(matched["patient_id"]).get_indexer(cohort["patient_id"])


def matching_weights(cohort: pd.DataFrame, matched: pd.DataFrame) -> np.ndarray:
    """Weight per cohort row (0 for the unmatched)."""
    rows = matched_rows(cohort, matched)
    return np.where(rows >= 0, matched["weight"].to_numpy(float)[rows], 0.0)


def balance_stage(cohort: pd.DataFrame, scores: pd.DataFrame, matched: pd.DataFrame,
                  analysis: dict, variables: dict, min_cell: int):
    treated = cohort["treated"].to_numpy(bool)
    weights = matching_weights(cohort, matched)
    X = covariate_matrix(cohort, analysis, variables)
    full_variables = analysis_variables(variables, cohort)
    binary = {c for c in X.columns if c not in full_variables or full_variables[c]["type"] == "binary"}
    balance = balance_table(X, treated, weights, binary=binary)
    table1 = table_one(cohort, list(analysis["covariates"]), full_variables, treated, weights, min_cell)
    ps = scores["ps"].to_numpy(float)
    summary = {
        "estimable": True,
        "failed": balance_failed(balance),
        "warnings": constant_covariates(X, treated, weights),
        "max_abs_smd_before": _largest_magnitude(balance["smd_before"]),
        "max_abs_smd_after": _largest_magnitude(balance["smd_after"]),
        "diagnostics_after": ps_diagnostics(ps, treated, weights),
    }
    return balance, table1, summary


def _largest_magnitude(values: pd.Series) -> float | None:
    """max |value| over the defined values; None when there is none (no covariate column)."""
    magnitudes = values.abs().dropna()
    return float(magnitudes.max()) if len(magnitudes) else None
