"""A simulated cohort whose confounder is missing at random depending on treatment and outcome, and
the multiple-imputation analysis as the workflow runs it (rule impute, then the usual stages per
imputation, then pool_survival), as plain function calls for tests and fixture scripts."""
from dataclasses import replace

import numpy as np
import pandas as pd

from pipeline.config.settings import Analysis, Variable
from pipeline.config.validate import block_with_defaults
from pipeline.design.stages import match_stage, propensity_stage
from pipeline.errors import NotEstimable
from pipeline.imputation.chained import impute_cohort
from pipeline.imputation.pooling import curves_of, pool_survival
from pipeline.io import estimable_record
from pipeline.outcome.stage import survival_stage

VARIABLES = {"x": Variable.from_dict({"type": "numeric", "min": -10, "max": 10}),
             "z": Variable.from_dict({"type": "binary"}),
             "grade": Variable.from_dict({"type": "category", "levels": ["G1", "G2", "G3"]})}
ANALYSIS = Analysis.from_dict(block_with_defaults({
    "treatment": {"column": "arm", "treated": "a", "control": "b"},
    "covariates": ["x", "z", "grade"],
    "missing": "multiple_imputation",
    "imputation": {"m": 5, "iterations": 5},
    "matching": {"caliper": 0.2},
    "survival": {"bootstrap": 0, "rmst_tau": 24, "landmarks": [12, 24]},
}, "analysis"))


def expit(v):
    return 1 / (1 + np.exp(-v))


def simulated_cohort(n: int, seed: int, log_hr: float = 0.0) -> pd.DataFrame:
    """Confounders x (strong), z, grade; treatment by them; exponential survival with hazard ratio
    exp(log_hr) given them; uniform censoring. x is missing for most treated patients who died and few
    others (missing at random given treatment and event), grade for some at random."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    z = rng.integers(0, 2, n)
    grade = rng.choice(["G1", "G2", "G3"], n, p=[0.5, 0.3, 0.2])
    g3 = grade == "G3"
    treated = rng.random(n) < expit(-0.2 + 1.0 * x + 0.5 * z + 0.5 * g3)
    hazard = 0.04 * np.exp(log_hr * treated + 1.0 * x + 0.3 * z + 0.5 * g3)
    death, censor = rng.exponential(1 / hazard), rng.uniform(6, 48, n)
    time, event = np.minimum(death, censor), (death <= censor).astype(int)
    x_missing = rng.random(n) < np.where(treated & (event == 1), 0.7, 0.1)
    grade_missing = rng.random(n) < 0.1
    return pd.DataFrame({
        "patient_id": [f"P{i}" for i in range(n)], "center": "sim", "treated": treated,
        "x": np.where(x_missing, np.nan, np.clip(x, -10, 10)),
        "z": pd.array(z, dtype="Int8"),
        "grade": pd.array(np.where(grade_missing, None, grade), dtype="string"),
        "time": time, "event": event,
    })


def design_and_survival(cohort: pd.DataFrame, analysis: Analysis, seed: int):
    """One completed (or complete-case) cohort through propensity, matching and survival:
    (survival result, matched sample) or (not-estimable record, None)."""
    try:
        scores, summary = propensity_stage(cohort, analysis.propensity_design, VARIABLES, seed)
        matched, pairs, _ = match_stage(cohort, scores, analysis.matching, seed, summary)
        result, _ = survival_stage(cohort, matched, pairs, analysis.survival, seed, "months", 1.5)
    except NotEstimable as err:
        return estimable_record(err.reason, "survival"), None
    return result, matched


def imputation_results(cohort: pd.DataFrame, analysis: Analysis = ANALYSIS, seed: int = 1):
    """Per imputation: (survival result, matched sample)."""
    out = []
    for index in range(1, analysis.imputation.m + 1):
        completed, _ = impute_cohort(cohort, analysis.covariates, VARIABLES, analysis.imputation, seed, index)
        out.append(design_and_survival(completed, analysis.completed(), seed))
    return out


def pooled_result(cohort: pd.DataFrame, analysis: Analysis = ANALYSIS, seed: int = 1) -> dict:
    per = imputation_results(cohort, analysis, seed)
    curves = [None if matched is None else curves_of(cohort, matched, analysis.survival.ci) for _, matched in per]
    return pool_survival([result for result, _ in per], curves, analysis.survival, "within", 1.5)


def complete_case_result(cohort: pd.DataFrame, analysis: Analysis = ANALYSIS, seed: int = 1) -> dict:
    complete = cohort.dropna(subset=list(analysis.covariates)).reset_index(drop=True)
    return design_and_survival(complete, replace(analysis, missing="complete_case"), seed)[0]
