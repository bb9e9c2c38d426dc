"""The site's aggregate bundle (results/federated/<analysis>.json): what leaves a site of a federated
analysis. No patient-level row: per arm the risk table of the matched (or weighted) sample on the
time grid, the within-site log hazard ratio with its cluster-robust SE, the attrition, sums for the
covariates' balance, the config hash and versions (docs/results.md lists every key and what it
reveals).

The config hash covers the settings of pipeline/federated/consortium.py.
"""
from __future__ import annotations

import platform

import numpy as np
import pandas as pd

from pipeline.config.settings import Analysis, Variable
from pipeline.design.propensity.design_matrix import category_codes
from pipeline.design.stages import analysis_variables, matching_weights
from pipeline.outcome.km import RiskTable
from pipeline.outcome.stage import MatchedSample
from pipeline.provenance import package_versions, settings_hash

FORMAT = "psm-pipeline federated bundle"
FORMAT_VERSION = 1
def on_grid(time, width: float) -> np.ndarray:
    """Each time rounded up to the grid of ``width`` (0 stays 0): an event in (g - width, g] counts
    at g."""
    return np.ceil(np.asarray(time, dtype=float) / width) * width


def risk_tables(sample: MatchedSample, width: float) -> dict[str, RiskTable]:
    """Each arm's risk table of the matched (weighted) sample on the grid."""
    time = on_grid(sample.time, width)
    return {arm: RiskTable.of_rows(time[rows], sample.event[rows], sample.weight[rows])
            for arm, rows in (("treated", sample.treated), ("control", ~sample.treated))}


def balance_sums(cohort: pd.DataFrame, matched: pd.DataFrame, covariates, variables: dict[str, Variable]) -> dict:
    """Per covariate column and arm, before (the cohort, weight 1) and after (the matching or
    weighting weights), over the rows where the covariate is known: the sum of the weights and of
    their squares, the weighted mean and the weighted sum of squared deviations from it. A category
    has a 0/1 column for every configured level, so every site has the same columns. Sites' sums
    combine exactly into the pooled sample's means and variances (pool.pooled_balance)."""
    treated = cohort["treated"].to_numpy(bool)
    columns = _balance_columns(cohort, covariates, analysis_variables(variables, cohort))
    X = np.column_stack(list(columns.values())) if columns else np.empty((len(cohort), 0))
    weights = {"before": np.ones(len(cohort)), "after": matching_weights(cohort, matched)}
    out = {"columns": list(columns)}
    for when, w in weights.items():
        out[when] = {arm: _moments(X[rows], w[rows]) for arm, rows in (("treated", treated), ("control", ~treated))}
    return out


def _balance_columns(cohort: pd.DataFrame, covariates, variables: dict[str, Variable]) -> dict[str, np.ndarray]:
    columns = {}
    for name in covariates:
        values = cohort[name]
        if variables[name].type != "category":
            columns[name] = pd.to_numeric(values).astype("Float64").to_numpy(dtype=float, na_value=np.nan)
            continue
        levels = list(variables[name].levels or ())
        codes = category_codes(name, values, levels)
        for index, level in enumerate(levels):
            columns[f"{name}={level}"] = np.where(codes < 0, np.nan, (codes == index).astype(float))
    return columns


def _moments(X: np.ndarray, w: np.ndarray) -> dict:
    """Per column, over its known values of the rows with a weight."""
    known = ~np.isnan(X) & (w[:, None] > 0)
    W = np.where(known, w[:, None], 0.0)
    values = np.where(known, X, 0.0)
    total = W.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = (W * values).sum(axis=0) / total
    deviations = np.where(known, values - mean, 0.0)
    return {"sum_weights": total.tolist(), "sum_weights_sq": (W ** 2).sum(axis=0).tolist(),
            "mean": [None if t == 0 else float(m) for t, m in zip(total, mean)],
            "sum_sq_dev": [None if t == 0 else float(v) for t, v in zip(total, (W * deviations ** 2).sum(axis=0))]}


def attrition(cohort_summary: dict, matching_summary: dict) -> dict:
    """The cohort's steps and the matching counts, exact (see disclosure)."""
    record = {key: cohort_summary[key] for key in ("n_registry", "steps", "n_final", "n_treated", "n_control")}
    record["matching"] = {key: value for key, value in matching_summary.items()
                          if key.startswith("n_") and isinstance(value, int)}
    return record


def disclosure(attrition_record: dict, tables: dict[str, RiskTable], min_cell: int) -> dict:
    """What the site's data steward checks before sending the bundle: the attrition counts from 1 to
    min_cell - 1 (by their path in the bundle) and how many risk-table counts are that small.

    The bundle's counts stay exact: the pooled curves need every risk-table count, and suppressing
    an attrition count would not hide it (it is the difference of the counts before and after its
    step). The pooled report shows counts below min_cell as "<min_cell"."""
    small: list[str] = []
    _small_counts(attrition_record, min_cell, "attrition", small)
    cells = np.concatenate([np.concatenate([t.event_rows, t.censor_rows]) for t in tables.values()])
    return {"min_cell": min_cell, "small_attrition_counts": small,
            "small_risk_table_counts": int(np.sum((cells > 0) & (cells < min_cell)))}


def _small_counts(value, min_cell: int, path: str, out: list[str]) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            _small_counts(item, min_cell, f"{path}.{key}", out)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _small_counts(item, min_cell, f"{path}[{i}]", out)
    elif isinstance(value, int) and not isinstance(value, bool) and 0 < value < min_cell:
        out.append(path)


def hazard_ratio(survival: dict) -> dict:
    """The within-site marginal log HR and its cluster-robust SE (None, with the reason, when the
    site's survival stage could not estimate them)."""
    if not survival.get("estimable", False):
        return {"log_hr": None, "se": None, "reason": survival.get("reason", "not estimable")}
    if survival.get("hr") is None or survival.get("hr_robust_se") is None:
        reason = next((w for w in survival.get("warnings", []) if "hazard ratio" in w), "not estimated")
        return {"log_hr": None, "se": None, "reason": reason}
    return {"log_hr": float(np.log(survival["hr"])), "se": survival["hr_robust_se"], "hr": survival["hr"],
            "lower": survival["hr_lower"], "upper": survival["hr_upper"], "cluster": survival["hr_cluster"],
            "method": survival["hr_method"], "reason": None}


def site_bundle(*, settings: dict, site: str, seed: int, min_cell: int, cohort: pd.DataFrame | None,
                matched: pd.DataFrame | None, pairs: pd.DataFrame | None, cohort_summary: dict,
                matching_summary: dict, survival: dict, variables: dict[str, Variable], analysis: Analysis,
                code_version: str, not_estimable: dict | None = None) -> dict:
    """The bundle's content. ``not_estimable``: the record of an upstream stage that could not
    estimate the analysis at this site (the bundle then says why and holds no table)."""
    width = settings["federated"]["time_grid"]
    bundle = {
        "format": FORMAT, "format_version": FORMAT_VERSION,
        "analysis": settings["analysis"], "site": site,
        "config_hash": settings_hash(settings), "settings": settings,
        "versions": {"code": code_version, "python": platform.python_version(), **package_versions()},
        "seed": seed,
        "time_unit": settings["time_unit"], "time_grid": {"width": width, "rounding": "up"},
    }
    if not_estimable is not None:
        return {**bundle, "estimable": False, "reason": not_estimable["reason"], "stage": not_estimable["stage"]}
    sample = MatchedSample.from_frames(cohort, matched, pairs)
    tables = risk_tables(sample, width)
    records = attrition(cohort_summary, matching_summary)
    return {
        **bundle, "estimable": True,
        "weights": {"all_one": bool(np.all(sample.weight == 1)),
                    "whole_numbers": bool(np.all(sample.weight == np.floor(sample.weight)))},
        "risk_tables": {arm: {**table.to_dict(), "n_risk": table.n_risk.tolist(),
                              "n_risk_rows": table.n_risk_rows.tolist()} for arm, table in tables.items()},
        "hazard_ratio": hazard_ratio(survival),
        "attrition": records,
        "balance": {"estimand": analysis.estimand,
                    **balance_sums(cohort, matched, analysis.covariates, variables)},
        "disclosure": disclosure(records, tables, min_cell),
    }
