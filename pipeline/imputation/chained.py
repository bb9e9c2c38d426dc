"""One completed cohort by multiple imputation by chained equations (van Buuren's MICE), built from
NumPy least squares and scikit-learn's logistic regression.

Each incomplete covariate in turn is imputed from a model of it given the other covariates (their
current completed values), the treatment, the event indicator and the Nelson-Aalen cumulative
hazard at the patient's follow-up time (White & Royston 2009: these two summarize the survival
outcome in the imputation model of a Cox analysis); ``iterations`` rounds of this chain make one
imputation. Every model is fitted on a bootstrap sample of the variable's observed rows, which
draws its parameters from their approximate posterior (the imputations are "proper": they carry
the uncertainty of the imputation model into Rubin's between-imputation variance). Per type:

- numeric, integer: predictive mean matching (mice's ``pmm``, type-1 matching): the bootstrap
  model predicts the missing rows, the observed-data model the observed rows, and each missing
  value is copied from one of the ``donors`` observed rows with the closest prediction. Imputed
  values are observed values, so they respect min/max and whole numbers;
- binary: a logistic model's probability, then a Bernoulli draw (mice's ``logreg``);
- category: a multinomial logistic model's probabilities, then one draw among the levels
  (mice's ``polyreg``); only levels observed in the cohort can be drawn.

Before the first round the gaps are filled with random observed values (as mice does). One
imputation depends only on the cohort and its seed (``imputation_seed``: the study seed and the
imputation's number), so each imputation job reruns identically.
"""
from __future__ import annotations

import logging
import warnings

import numpy as np
import pandas as pd
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from threadpoolctl import ThreadpoolController

from pipeline.config.settings import Imputation, Variable
from pipeline.design.propensity.design_matrix import category_codes
from pipeline.errors import NotEstimable

log = logging.getLogger(__name__)

THREAD_POOLS = ThreadpoolController()
"""The BLAS and OpenMP libraries numpy, scipy and scikit-learn loaded, found once when this module is
imported (searching a process's libraries takes tens of milliseconds in a process that loaded many)."""

METHODS = {"numeric": "pmm", "integer": "pmm", "binary": "logreg", "category": "polyreg"}
"""The imputation method per variable type (mice's names)."""


def imputation_seed(seed: int, index: int) -> np.random.SeedSequence:
    """The random stream of imputation ``index`` (1..m) of a study with seed ``seed``."""
    return np.random.SeedSequence([seed, index])


def nelson_aalen(time, event) -> np.ndarray:
    """The Nelson-Aalen cumulative hazard at each patient's own time (events at that time included)."""
    time, event = np.asarray(time, dtype=float), np.asarray(event, dtype=float)
    times, idx = np.unique(time, return_inverse=True)
    k = len(times)
    at_risk = np.cumsum(np.bincount(idx, minlength=k)[::-1])[::-1]
    events = np.bincount(idx, event, k)
    return np.cumsum(events / at_risk)[idx]


def impute_cohort(cohort: pd.DataFrame, covariates, variables: dict[str, Variable], imputation: Imputation,
                  seed: int, index: int) -> tuple[pd.DataFrame, dict]:
    """The cohort with its covariates' gaps filled (imputation ``index`` of m) and what was imputed.

    ``cohort``: treated, time, event and the covariates; ``variables``: every covariate's Variable.
    NotEstimable when a covariate has no observed value in the cohort. The many small fits run on one
    BLAS thread: starting threads costs more than they save here, and the imputed values then do not
    depend on the machine's thread count."""
    with THREAD_POOLS.limit(limits=1):
        return _impute(cohort, list(covariates), variables, imputation, seed, index)


def _impute(cohort, covariates, variables, imputation, seed, index):
    rng = np.random.default_rng(imputation_seed(seed, index))
    values = {name: _numeric_values(cohort[name], variables[name]) for name in covariates}
    gaps = {name: np.isnan(v) for name, v in values.items()}
    incomplete = [name for name in covariates if gaps[name].any()]
    _fill_at_random(values, gaps, incomplete, rng)
    outcome = np.column_stack([cohort["treated"].to_numpy(float), cohort["event"].to_numpy(float),
                               nelson_aalen(cohort["time"], cohort["event"])])
    for _ in range(imputation.iterations if incomplete else 0):
        for name in incomplete:
            others = [_encoded(values[o], variables[o]) for o in covariates if o != name]
            X = np.column_stack([outcome, *others])
            method = METHODS[variables[name].type]
            values[name][gaps[name]] = _DRAWS[method](X, values[name], gaps[name], rng, imputation.donors)
    completed = cohort.copy()
    for name in incomplete:
        completed[name] = _as_column(values[name], cohort[name], variables[name])
    summary = {"imputation": index, "iterations": imputation.iterations,
               "imputed": {name: int(gaps[name].sum()) for name in incomplete},
               "methods": {name: METHODS[variables[name].type] for name in incomplete}}
    log.info("imputation %d: %s", index, ", ".join(f"{n} {summary['imputed'][n]} values ({summary['methods'][n]})"
                                                   for n in incomplete) or "nothing missing")
    return completed, summary


def _fill_at_random(values: dict, gaps: dict, incomplete: list[str], rng: np.random.Generator) -> None:
    """The chain's starting point: each gap filled with a random observed value of its covariate."""
    for name in incomplete:
        observed = values[name][~gaps[name]]
        if len(observed) == 0:
            raise NotEstimable(f"covariate '{name}' has no observed value in the cohort, so it cannot be imputed")
        values[name][gaps[name]] = rng.choice(observed, size=int(gaps[name].sum()))


def _numeric_values(column: pd.Series, variable: Variable) -> np.ndarray:
    """A covariate as floats with NaN gaps: categories as their level's index."""
    if variable.type == "category":
        codes = category_codes(column.name, column, list(variable.levels)).astype(float)
        codes[codes < 0] = np.nan
        return codes
    return pd.to_numeric(column).astype("Float64").to_numpy(dtype=float, na_value=np.nan)


def _encoded(values: np.ndarray, variable: Variable) -> np.ndarray:
    """A completed covariate as predictor columns: categories one-hot (the first level left out)."""
    if variable.type != "category":
        return values[:, None]
    return (values[:, None] == np.arange(1, len(variable.levels))[None, :]).astype(float)


def _as_column(values: np.ndarray, original: pd.Series, variable: Variable) -> pd.Series:
    """Completed values in the original column's dtype (categories back to their levels)."""
    if variable.type == "category":
        levels = np.asarray(variable.levels, dtype=object)
        return pd.Series(levels[values.astype(int)], index=original.index, dtype=original.dtype)
    return pd.Series(values, index=original.index).astype(original.dtype)


def _bootstrap_rows(observed: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return rng.choice(observed, size=len(observed), replace=True)


def _with_intercept(X: np.ndarray) -> np.ndarray:
    return np.column_stack([np.ones(len(X)), X])


def _pmm(X, y, missing, rng, donors):
    """Predictive mean matching: an observed value whose prediction is among the ``donors`` closest."""
    observed = np.flatnonzero(~missing)
    Xi = _with_intercept(X)
    fitted, *_ = np.linalg.lstsq(Xi[observed], y[observed], rcond=None)
    boot = _bootstrap_rows(observed, rng)
    drawn, *_ = np.linalg.lstsq(Xi[boot], y[boot], rcond=None)
    predicted_observed = Xi[observed] @ fitted
    predicted_missing = Xi[missing] @ drawn
    k = min(donors, len(observed))
    distance = np.abs(predicted_missing[:, None] - predicted_observed[None, :])
    nearest = np.argsort(distance, axis=1, kind="stable")[:, :k]
    chosen = nearest[np.arange(len(nearest)), rng.integers(0, k, size=len(nearest))]
    return y[observed][chosen]


def _class_draws(X, y, missing, rng, _donors):
    """Logistic (binary) or multinomial logistic (category) probabilities, then one draw per row."""
    observed = np.flatnonzero(~missing)
    boot = _bootstrap_rows(observed, rng)
    classes = np.unique(y[boot])
    if len(classes) == 1:
        probabilities = np.ones((int(missing.sum()), 1))
    else:
        center, scale = X[boot].mean(axis=0), X[boot].std(axis=0)
        scale[scale == 0] = 1.0
        model = LogisticRegression(C=10.0, max_iter=2000)
        with warnings.catch_warnings():      # a fit stopped at max_iter (separation) still gives probabilities
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.fit((X[boot] - center) / scale, y[boot])
        probabilities = model.predict_proba((X[missing] - center) / scale)
    cumulative = np.cumsum(probabilities, axis=1)
    u = rng.random(len(cumulative))[:, None]
    picks = np.minimum((u > cumulative).sum(axis=1), len(classes) - 1)
    return classes[picks]


_DRAWS = {"pmm": _pmm, "logreg": _class_draws, "polyreg": _class_draws}
