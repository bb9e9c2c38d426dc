"""The design stages of an analysis (propensity, matching, balance) as functions of frames keyed
by patient_id.

The numerical modules work on arrays; these functions translate between them and the result
tables the workflow writes, so the workflow's scripts and the tests call the same code. Each stage
logs what it did.
"""
from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from pipeline.config.settings import Matching, PropensityDesign, Variable, Weighting
from pipeline.design import matching as matching_methods
from pipeline.design import weighting as weighting_schemes
from pipeline.design.balance import balance_failed, balance_table, constant_covariates
from pipeline.design.matching.common import MatchResult, common_support, matching_distance
from pipeline.design.propensity import MODELS, fit_propensity
from pipeline.design.propensity.common import PropensityFit
from pipeline.design.propensity.design_matrix import covariate_matrix
from pipeline.design.propensity.diagnostics import ps_diagnostics
from pipeline.design.table_one import table_one
from pipeline.design.weighting.common import kish_ess, unweighable
from pipeline.errors import NotEstimable
from pipeline.io import id_positions, text_column

log = logging.getLogger(__name__)

ARM_NAMES = {True: "treated", False: "control"}
"""The published arm column (``group`` in matched.csv and propensity.parquet)."""


def analysis_variables(variables: dict[str, Variable], cohort: pd.DataFrame) -> dict[str, Variable]:
    """The registry variables plus the derived ones an analysis may use: center (its levels those
    of the cohort) and, for date outcomes, index_year."""
    full = dict(variables)
    if "center" in cohort:
        full["center"] = _derived_variable("category", tuple(sorted(cohort["center"].dropna().unique())))
    if "index_year" in cohort:
        full["index_year"] = _derived_variable("integer")
    return full


def _derived_variable(kind: str, levels: tuple[str, ...] | None = None) -> Variable:
    return Variable(type=kind, levels=levels, min=None, max=None, required=None, label=None, description=None)


# --- propensity -----------------------------------------------------------------------------------

def propensity_columns(design: PropensityDesign) -> list[str]:
    """The cohort columns propensity_stage reads: the id, the arm, the covariates, the strata of
    propensity.within and a precomputed score."""
    propensity = design.propensity
    score = [propensity.column] if propensity.model == "precomputed" else []
    return list(dict.fromkeys(["patient_id", "treated", *design.covariates, *propensity.within, *score]))


def coded_columns(design: PropensityDesign) -> list[str]:
    """The covariates propensity_stage only codes into the design matrix: they may come as
    categoricals (pipeline.io.read_parquet's ``categories``); the strata of propensity.within,
    whose order names the strata's coefficients, stay text."""
    return [name for name in design.covariates if name not in design.propensity.within]


def propensity_stage(cohort: pd.DataFrame, design: PropensityDesign, variables: dict[str, Variable],
                     seed: int) -> tuple[pd.DataFrame, dict]:
    """Scores, matching distance and common-support discards (propensity.parquet) and the model's
    summary (propensity.json)."""
    treated = cohort["treated"].to_numpy(bool)
    propensity = design.propensity
    fit = _fit_within(cohort, treated, design, variables, seed)
    distance, unmatchable = matching_distance(fit.ps, design.caliper_scale)
    discarded = common_support(fit.ps, treated, design.discard) | unmatchable
    scores = pd.DataFrame({
        "patient_id": cohort["patient_id"].array,
        "group": np.where(treated, ARM_NAMES[True], ARM_NAMES[False]),
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
        "n_score_0_or_1": int(unmatchable.sum()),
        "diagnostics_before": ps_diagnostics(fit.ps, treated),
    }
    log.info("propensity: %s model on %d patients (%d treated); converged: %s", fit.model, len(cohort),
             treated.sum(), fit.converged)
    for warning in fit.warnings:
        log.info("propensity warning: %s", warning)
    log.info("propensity: %d treated and %d controls discarded (common support, discard: %s; scores of "
             "exactly 0 or 1, which have no logit: %d)", (discarded & treated).sum(), (discarded & ~treated).sum(),
             design.discard, unmatchable.sum())
    return scores, summary


def _fit_within(cohort: pd.DataFrame, treated: np.ndarray, design: PropensityDesign,
                variables: dict[str, Variable], seed: int) -> PropensityFit:
    """The model fitted on the whole cohort, or (propensity.within) separately in each stratum, each
    exactly as a site holding only that stratum would fit it; the strata's coefficients are then keyed
    by stratum ("center=center_a") and their warnings prefixed with it."""
    propensity = design.propensity
    intercept = MODELS[propensity.model].intercept
    if not propensity.within:
        X = covariate_matrix(cohort, design.covariates, design.missing, analysis_variables(variables, cohort),
                             intercept)
        return fit_propensity(X, treated, propensity, seed, cohort)
    ps = np.empty(len(cohort))
    coefficients, warnings, converged = {}, [], True
    for key, rows in cohort.groupby(list(propensity.within), sort=True, dropna=False).indices.items():
        stratum = cohort.iloc[rows].reset_index(drop=True)
        label = ", ".join(f"{var}={value}" for var, value in zip(propensity.within, np.atleast_1d(key)))
        if stratum["treated"].all() or not stratum["treated"].any():
            raise NotEstimable(f"the propensity model is fitted within {label}, which has only one arm")
        X = covariate_matrix(stratum, design.covariates, design.missing, analysis_variables(variables, stratum),
                             intercept)
        fit = fit_propensity(X, treated[rows], propensity, seed, stratum)
        ps[rows] = fit.ps
        coefficients[label] = fit.coefficients
        warnings += [f"{label}: {warning}" for warning in fit.warnings]
        converged &= fit.converged
        log.info("propensity within %s: %d patients, %d design columns", label, len(rows), X.shape[1] - intercept)
    return PropensityFit(ps, fit.model, coefficients, converged, warnings)


# --- matching -------------------------------------------------------------------------------------

def exact_strata(cohort: pd.DataFrame, exact) -> np.ndarray | None:
    """One integer code per combination of the exact-matching variables (None without any)."""
    if not exact:
        return None
    return cohort.groupby(list(exact), sort=True, dropna=False).ngroup().to_numpy()


def match_stage(cohort: pd.DataFrame, scores: pd.DataFrame, matching: Matching, seed: int,
                propensity_summary: dict | None = None, covariates: pd.DataFrame | None = None
                ) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Matched sample (matched.parquet), pairs (pairs.parquet) and summary (matching.json) with the
    analysis's matching method; NotEstimable (with the likely cause) when nobody matches.

    ``cohort``: patient_id, treated and the exact-matching variables, in the scores' order;
    ``propensity_summary``: the propensity stage's summary, whose warnings explain a failed match;
    ``covariates``: the design matrix of the Mahalanobis covariates (matching.distance: mahalanobis)."""
    treated = cohort["treated"].to_numpy(bool)
    discarded = scores["discarded"].to_numpy(bool)
    if discarded.all():
        raise NotEstimable("every patient is outside the common support of the propensity score "
                           f"(discard: {matching.discard})")
    result = matching_methods.match(scores["distance"].to_numpy(float), treated,
                                    exact_strata(cohort, matching.exact), discarded, matching, seed,
                                    None if covariates is None else covariates.to_numpy(float))
    counts = result.counts
    log.info("matching (%s): %d of %d treated matched to %d controls; %d treated without a control within "
             "the caliper, %d treated and %d controls discarded; caliper in distance units: %s",
             matching.method, counts["n_treated_matched"], treated.sum(), counts["n_controls_matched"],
             counts["n_treated_unmatched"], counts["n_discarded_treated"], counts["n_discarded_control"],
             result.caliper_raw)
    if counts["n_treated_matched"] == 0:
        raise NotEstimable(_why_nobody_matched(result, matching, propensity_summary or {}))
    matched = _matched_sample(scores, treated, result, subclasses=not matching.replace)
    pairs = _pairs_by_id(scores, result)
    summary = {"estimable": True, "settings": matching.to_dict(), "caliper_raw": result.caliper_raw, **counts,
               **result.details}
    return matched, pairs, summary


def _matched_sample(scores: pd.DataFrame, treated: np.ndarray, result: MatchResult, subclasses: bool) -> pd.DataFrame:
    """The patients with a weight; ``subclasses``: whether they belong to one matched set each."""
    keep = result.weights > 0
    return pd.DataFrame({
        "patient_id": scores["patient_id"].array[keep],
        "treated": treated[keep],
        "subclass": _subclass_column(result.subclass[keep], subclasses),
        "weight": result.weights[keep],
        "ps": scores["ps"].to_numpy()[keep],
        "distance": scores["distance"].to_numpy()[keep],
    })


def _pairs_by_id(scores: pd.DataFrame, result: MatchResult) -> pd.DataFrame:
    """pairs.parquet: the result's pairs with the patients' ids."""
    ids = scores["patient_id"].array
    return pd.DataFrame({
        "treated_id": ids.take(result.pairs["treated_index"].to_numpy()),
        "control_id": ids.take(result.pairs["control_index"].to_numpy()),
        "slot": result.pairs["slot"].to_numpy(),
        "distance_diff": result.pairs["distance_diff"].to_numpy(),
    })


def published_matched(matched: pd.DataFrame, cohort: pd.DataFrame) -> pd.DataFrame:
    """matched.csv: the matched sample with each patient's center (from ``cohort``: patient_id,
    center, as text or categorical) and its arm as the published ``group`` column."""
    group = pd.Categorical.from_codes(matched["treated"].to_numpy(bool).astype(np.int8),
                                      categories=[ARM_NAMES[False], ARM_NAMES[True]])
    rows = id_positions(matched["patient_id"], cohort["patient_id"])
    center = text_column(pd.Series(cohort["center"].array.take(rows, allow_fill=True))).array
    return pd.DataFrame({"patient_id": matched["patient_id"], "center": center, "group": group,
                         **{c: matched[c] for c in ("subclass", "weight", "ps", "distance")}})


def _why_nobody_matched(result: MatchResult, matching: Matching, propensity_summary: dict) -> str:
    """The likely cause, in words (no counts: a reason is shown wherever the analysis is listed)."""
    separation = [w for w in propensity_summary.get("warnings", []) if "separate the arms" in w]
    if separation:
        return f"no treated patient could be matched: {separation[0]}"
    remedies = "widen the caliper" if matching.caliper is not None else "check the propensity model"
    if matching.exact:
        remedies += f" or match exactly on fewer variables than {', '.join(matching.exact)}"
    within = ", within the exact-matching strata" if matching.exact else ""
    if matching.caliper is None:
        return f"no treated patient has a control to be matched with{within}; {remedies}"
    return (f"no treated patient has a control within the caliper (caliper {matching.caliper}, "
            f"{result.caliper_raw:.4g} in distance units{within}); {remedies}")


def _subclass_column(subclass: np.ndarray, subclasses: bool) -> pd.Series:
    """Matched-set ids; empty without them (with replacement a control can belong to several
    sets; a weighting design has none)."""
    if not subclasses:
        return pd.Series([pd.NA] * len(subclass), dtype="Int64")
    return pd.Series(subclass, dtype="Int64")


# --- weighting ------------------------------------------------------------------------------------

def weighting_stage(cohort: pd.DataFrame, scores: pd.DataFrame, weighting: Weighting
                    ) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """The weighted sample (matched.parquet: every patient with a weight, no matched sets), its empty
    pairs (pairs.parquet) and the design's summary (matching.json); NotEstimable when an arm has no
    patient left to weight. ``cohort``: patient_id and treated, in the scores' order."""
    treated = cohort["treated"].to_numpy(bool)
    ps = scores["ps"].to_numpy(float)
    excluded = unweighable(ps, scores["discarded"].to_numpy(bool))
    result = weighting_schemes.weigh(ps, treated, excluded, weighting)
    counts = result.counts
    scheme = weighting_schemes.SCHEMES[weighting.estimand]
    log.info("weighting (%s): %d treated and %d controls weighted; %d treated and %d controls discarded "
             "(common support or a score of exactly 0 or 1), %d and %d trimmed (bounds %s)", scheme.name,
             counts["n_treated_matched"], counts["n_controls_matched"], counts["n_discarded_treated"],
             counts["n_discarded_control"], counts["n_trimmed_treated"], counts["n_trimmed_control"],
             result.trim_bounds)
    for arm, n in (("treated", counts["n_treated_matched"]), ("control", counts["n_controls_matched"])):
        if n == 0:
            raise NotEstimable(f"no {arm} patient is left to weight (common support, scores of exactly 0 or 1"
                               f"{', trimming' if weighting.trim is not None else ''})")
    matched = _matched_sample(scores, treated, result, subclasses=False)
    summary = {"estimable": True, "design": "weighting", "scheme": scheme.name, "estimand": weighting.estimand,
               "settings": weighting.to_dict(), **counts,
               "trim_bounds": None if result.trim_bounds is None else list(result.trim_bounds),
               **{arm: _weights_summary(result.weights[rows]) for arm, rows in (("treated", treated),
                                                                                ("control", ~treated))}}
    return matched, _pairs_by_id(scores, result), summary


def _weights_summary(weights: np.ndarray) -> dict:
    """One arm's weights: Kish's effective sample size, the smallest and largest weight."""
    used = weights[weights > 0]
    return {"ess": kish_ess(used), "weight_min": float(used.min()), "weight_max": float(used.max())}


# --- balance --------------------------------------------------------------------------------------

def matching_weights(cohort: pd.DataFrame, matched: pd.DataFrame) -> np.ndarray:
    """Weight per cohort row (0 for the unmatched)."""
    rows = id_positions(cohort["patient_id"], matched["patient_id"])
    return np.where(rows >= 0, matched["weight"].to_numpy(float)[rows], 0.0)


def balance_columns(covariates) -> list[str]:
    """The cohort columns balance_stage reads (the covariates may come as categoricals:
    pipeline.io.read_parquet's ``categories``, since it only codes them by their configured levels)."""
    return ["patient_id", "treated", *covariates]


def balance_stage(cohort: pd.DataFrame, scores: pd.DataFrame, weights: np.ndarray, covariates, missing: str,
                  variables: dict[str, Variable], min_cell: int, estimand: str = "ATT"
                  ) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Balance table (balance.csv), Table 1 (table1.csv) and summary (balance.json); ``weights``:
    matching_weights of the cohort's rows; ``estimand`` (the design's) chooses the SMD denominator."""
    treated = cohort["treated"].to_numpy(bool)
    variables = analysis_variables(variables, cohort)
    X = covariate_matrix(cohort, covariates, missing, variables)
    binary = {c for c in X.columns if c not in variables or variables[c].type == "binary"}
    balance = balance_table(X, treated, weights, binary=binary, estimand=estimand)
    table1 = table_one(cohort, list(covariates), variables, treated, weights, min_cell, estimand=estimand)
    summary = {
        "estimable": True,
        "failed": balance_failed(balance),
        "warnings": constant_covariates(X, treated, weights),
        "max_abs_smd_before": _largest_magnitude(balance["smd_before"]),
        "max_abs_smd_after": _largest_magnitude(balance["smd_after"]),
        "diagnostics_after": ps_diagnostics(scores["ps"].to_numpy(float), treated, weights),
    }
    log.info("balance (SMD denominators for the %s): %d covariate columns, largest |SMD| %s before and %s after",
             estimand, len(balance), summary["max_abs_smd_before"], summary["max_abs_smd_after"])
    for column in summary["failed"]:
        log.info("balance not achieved for %s: SMD %.3f, variance ratio %.2f after",
                 column["variable"], column["smd_after"], column["var_ratio_after"])
    for warning in summary["warnings"]:
        log.info("balance warning: %s", warning)
    return balance, table1, summary


def _largest_magnitude(values: pd.Series) -> float | None:
    """max |value| over the defined values; None when there is none (no covariate column)."""
    magnitudes = values.abs().dropna()
    return float(magnitudes.max()) if len(magnitudes) else None
