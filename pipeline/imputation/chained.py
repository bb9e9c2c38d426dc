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

import numba
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
    predictors = _Predictors(outcome, values, covariates, variables)
    for _ in range(imputation.iterations if incomplete else 0):
        for name in incomplete:
            method = METHODS[variables[name].type]
            X = predictors.without(name, intercept=method == "pmm")
            values[name][gaps[name]] = _DRAWS[method](X, values[name], gaps[name], rng, imputation.donors)
            predictors.update(name, gaps[name], values[name], variables[name])
    completed = cohort.copy()
    for name in incomplete:
        completed[name] = _as_column(values[name], cohort[name], variables[name])
    summary = {"imputation": index, "iterations": imputation.iterations,
               "imputed": {name: int(gaps[name].sum()) for name in incomplete},
               "methods": {name: METHODS[variables[name].type] for name in incomplete}}
    log.info("imputation %d: %s", index, ", ".join(f"{n} {summary['imputed'][n]} values ({summary['methods'][n]})"
                                                   for n in incomplete) or "nothing missing")
    return completed, summary


class _Predictors:
    """The predictors of every covariate's imputation model in one matrix, kept up to date: an
    intercept column, the outcome's columns, then each covariate's encoded columns. A model's
    predictors (the outcome and the other covariates, in order) are a copy of some of its columns,
    with rows contiguous as np.column_stack would lay them out."""

    def __init__(self, outcome: np.ndarray, values: dict, covariates: list[str], variables: dict[str, Variable]):
        blocks = [np.ones((len(outcome), 1)), outcome, *(_encoded(values[c], variables[c]) for c in covariates)]
        self.matrix = np.concatenate(blocks, axis=1)
        ends = np.cumsum([block.shape[1] for block in blocks])
        self.columns = {c: np.arange(start, end) for c, start, end in zip(covariates, ends[1:-1], ends[2:])}

    def without(self, name: str, intercept: bool) -> np.ndarray:
        """The outcome and every covariate but ``name``, after an intercept column if asked for."""
        keep = np.setdiff1d(np.arange(0 if intercept else 1, self.matrix.shape[1]), self.columns[name])
        return np.take(self.matrix, keep, axis=1)

    def update(self, name: str, rows: np.ndarray, values: np.ndarray, variable: Variable) -> None:
        """Covariate ``name``'s columns on ``rows`` (a mask) from its current ``values``."""
        rows = np.flatnonzero(rows)
        self.matrix[np.ix_(rows, self.columns[name])] = _encoded(values[rows], variable)


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


def _pmm(Xi, y, missing, rng, donors):
    """Predictive mean matching: an observed value whose prediction is among the ``donors`` closest.
    ``Xi``: the predictors after an intercept column."""
    observed = np.flatnonzero(~missing)
    X_observed = Xi[observed]
    fitted, *_ = np.linalg.lstsq(X_observed, y[observed], rcond=None)
    boot = _bootstrap_rows(observed, rng)
    drawn, *_ = np.linalg.lstsq(Xi[boot], y[boot], rcond=None)
    predicted_observed = X_observed @ fitted
    predicted_missing = Xi[missing] @ drawn
    k = min(donors, len(observed))
    picks = rng.integers(0, k, size=len(predicted_missing))
    return y[observed][nearest_donors(predicted_observed, predicted_missing, picks)]


def nearest_donors(predicted_observed: np.ndarray, predicted_missing: np.ndarray, picks: np.ndarray) -> np.ndarray:
    """For each missing row i, the observed row at place picks[i] (0 = the closest) when the observed
    rows are ordered by their distance |predicted_missing[i] - predicted_observed| and, among equal
    distances, by their position: a stable argsort of the row's distances, without forming them.

    Each missing row walks outward from its place among the sorted predictions, a block of equal
    distances at a time (sorted values have non-decreasing rounded distances on either side), so it
    costs O(picks[i] + the distinct values it passes) after the sort, not O(observed rows).
    """
    if not (np.isfinite(predicted_observed).all() and np.isfinite(predicted_missing).all()):
        raise NotEstimable("predictive mean matching: the imputation model's predictions are not finite")
    order = np.argsort(predicted_observed, kind="stable")
    values = predicted_observed[order]
    run_start, run_end = _runs_of_equal_values(values)
    return _walk_to_donors(values, order, run_start, run_end, predicted_missing, picks.astype(np.int64))


def _runs_of_equal_values(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each position of a sorted array: where its run of equal values starts, and one past its end."""
    new_run = np.append(True, values[1:] != values[:-1])
    starts = np.flatnonzero(new_run)
    ends = np.append(starts[1:], len(values))
    run = np.cumsum(new_run) - 1
    return starts[run], ends[run]


@numba.njit(cache=True, nogil=True)
def _walk_to_donors(values, order, run_start, run_end, targets, picks):
    """nearest_donors on the sorted predictions ``values`` (``order``: their rows)."""
    n = len(values)
    chosen = np.empty(len(targets), dtype=np.int64)
    heads, ends = np.empty(n, dtype=np.int64), np.empty(n, dtype=np.int64)
    for i in range(len(targets)):
        target, skip = targets[i], picks[i]
        right = np.searchsorted(values, target)      # [left, right): the rows passed so far
        left = right
        while True:
            d_left = abs(target - values[left - 1]) if left > 0 else np.inf
            d_right = abs(target - values[right]) if right < n else np.inf
            nearest = min(d_left, d_right)
            new_left, new_right = left, right
            while new_left > 0 and abs(target - values[new_left - 1]) == nearest:
                new_left = run_start[new_left - 1]
            while new_right < n and abs(target - values[new_right]) == nearest:
                new_right = run_end[new_right]
            size = (left - new_left) + (new_right - right)
            if skip < size:
                chosen[i] = _smallest_position(order, run_end, new_left, left, right, new_right, skip, heads, ends)
                break
            skip -= size
            left, right = new_left, new_right
    return chosen


@numba.njit(cache=True, nogil=True)
def _smallest_position(order, run_end, a0, a1, b0, b1, skip, heads, ends):
    """The (skip + 1)-th smallest of order[a0:a1] and order[b0:b1], whose runs of equal values are each
    in ascending order (a stable sort): merged run by run."""
    runs = 0
    for start, stop in ((a0, a1), (b0, b1)):
        j = start
        while j < stop:
            heads[runs], ends[runs] = j, run_end[j]
            runs += 1
            j = run_end[j]
    while True:
        best = -1
        for r in range(runs):
            if heads[r] < ends[r] and (best < 0 or order[heads[r]] < order[heads[best]]):
                best = r
        if skip == 0:
            return order[heads[best]]
        skip -= 1
        heads[best] += 1


def _class_draws(X, y, missing, rng, _donors):
    """Logistic (binary) or multinomial logistic (category) probabilities, then one draw per row."""
    observed = np.flatnonzero(~missing)
    boot = _bootstrap_rows(observed, rng)
    X_boot, y_boot = X[boot], y[boot]
    classes = np.unique(y_boot)
    if len(classes) == 1:
        probabilities = np.ones((int(missing.sum()), 1))
    else:
        center, scale = X_boot.mean(axis=0), X_boot.std(axis=0)
        scale[scale == 0] = 1.0
        model = LogisticRegression(C=10.0, max_iter=2000)
        with warnings.catch_warnings():      # a fit stopped at max_iter (separation) still gives probabilities
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.fit((X_boot - center) / scale, y_boot)
        probabilities = model.predict_proba((X[missing] - center) / scale)
    cumulative = np.cumsum(probabilities, axis=1)
    u = rng.random(len(cumulative))[:, None]
    picks = np.minimum((u > cumulative).sum(axis=1), len(classes) - 1)
    return classes[picks]


_DRAWS = {"pmm": _pmm, "logreg": _class_draws, "polyreg": _class_draws}
