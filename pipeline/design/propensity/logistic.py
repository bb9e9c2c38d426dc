"""Unpenalized logistic regression by maximum likelihood: coefficients and scores equal R's
``glm(treat ~ ., family = binomial)`` (what MatchIt uses), with the fitting problems R's glm
signals (separation, rank deficiency, no convergence) reported in words."""
from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy.special import expit

from pipeline.config.settings import Propensity
from pipeline.design.propensity.common import (R_GLM_EPS, PropensityFit, PropensityModel, checked_inputs,
                                               on_covariates)
from pipeline.design.propensity.design_matrix import INTERCEPT
from pipeline.design.propensity.splines import add_spline_terms

_MAX_ITERATIONS = 50


def fit(X: pd.DataFrame, treated: np.ndarray, propensity: Propensity, seed: int,
        cohort: pd.DataFrame | None) -> PropensityFit:
    """The logistic propensity model on X and its spline terms (``seed`` and ``cohort`` are unused:
    the fit is deterministic and needs nothing beyond the covariates)."""
    treated = checked_inputs(X, treated)
    return _fit_logistic(add_spline_terms(X, propensity.splines), treated)


def describe(propensity: Propensity, covariates: Sequence[str]) -> str:
    return ("The propensity score was estimated with an unpenalized logistic regression (maximum likelihood, "
            f"as R's glm) {on_covariates(propensity, covariates)}.")


MODEL = PropensityModel(fit=fit, describe=describe, intercept=True)


def _separation_warning(ps: np.ndarray, X: pd.DataFrame, treated: np.ndarray, converged: bool) -> list[str]:
    """A sentence when the covariates (quasi-)separate the arms, naming the covariates that do.

    R's glm warns when fitted probabilities are numerically 0 or 1; a fit that did not converge is
    checked too, as separation is its usual cause (the likelihood has no maximum)."""
    extreme = int(np.sum((ps < R_GLM_EPS) | (ps > 1 - R_GLM_EPS)))
    culprits = separating_covariates(X, treated) if extreme or not converged else []
    if not extreme and not culprits:
        return []
    named = ("; ".join(culprits) if culprits
             else "no single covariate separates them on its own: a combination of covariates does")
    found = "fitted propensity scores numerically 0 or 1" if extreme else "the model did not converge"
    return [f"{found}: the covariates (quasi-)perfectly separate the arms ({named}); coefficients are not "
            f"identified and the patients concerned have no comparable counterpart"]


def separating_covariates(X: pd.DataFrame, treated: np.ndarray) -> list[str]:
    """Sentences naming the design columns that on their own (quasi-)separate the arms: an indicator
    whose patients are all in one arm, or a continuous covariate whose ranges in the arms do not overlap."""
    sentences = []
    for name in X.columns:
        x = X[name].to_numpy(dtype=float)
        if np.all((x == 0) | (x == 1)):
            sentences += _indicator_separation(name, x == 1, treated)
        else:
            sentences += _range_separation(name, x, treated)
    return sentences


def _indicator_separation(name: str, has: np.ndarray, treated: np.ndarray) -> list[str]:
    sentences = []
    for value, rows in ((1, has), (0, ~has)):
        arms = treated[rows]
        if rows.any() and (arms.all() or not arms.any()):
            sentences.append(f"every patient with {name} = {value} is {'treated' if arms.all() else 'a control'}")
    return sentences


def _range_separation(name: str, x: np.ndarray, treated: np.ndarray) -> list[str]:
    t, c = x[treated], x[~treated]
    if t.min() > c.max() or t.max() < c.min():
        return [f"{name} ranges {t.min():g} to {t.max():g} in the treated and {c.min():g} to {c.max():g} in "
                f"the controls: the ranges do not overlap"]
    return []


def _design_rank(design: np.ndarray) -> int:
    """Rank of the design from its column-normalized Gram matrix (p x p: cheap for a million rows)."""
    gram = design.T @ design
    norms = np.sqrt(np.diag(gram))
    norms[norms == 0] = 1.0
    return int(np.linalg.matrix_rank(gram / np.outer(norms, norms), hermitian=True))


def _rank_warning(design: np.ndarray, names: list[str]) -> list[str]:
    rank = _design_rank(design)
    if rank == design.shape[1]:
        return []
    constant = [n for n, col in zip(names, design.T) if n != "(Intercept)" and np.ptp(col) == 0]
    detail = f"; constant columns: {constant}" if constant else ""
    return [f"design matrix is rank deficient ({rank} independent of {design.shape[1]} columns): some covariates "
            f"are collinear and their coefficients not identified (R's glm reports NA for them){detail}"]


def _maximum_likelihood(design: np.ndarray, y: np.ndarray, full_rank: bool):
    """Coefficients, convergence flag and caught warnings of the logistic MLE.

    Newton-Raphson on the exact Hessian (statsmodels Logit) when the design has full rank: fast on large
    registries. Otherwise, or if the Hessian turns singular, IRLS with a pseudo-inverse (statsmodels
    GLM), which still yields usable fitted scores.
    """
    import statsmodels.api as sm

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if full_rank:
            try:
                model = sm.Logit(y, design, check_rank=False)     # the rank was checked above
                result = model.fit(method="newton", tol=1e-10, maxiter=_MAX_ITERATIONS, disp=False)
                return result.params, bool(result.mle_retvals["converged"]), caught
            except np.linalg.LinAlgError:
                pass
        result = sm.GLM(y, design, family=sm.families.Binomial()).fit(tol=1e-10, maxiter=_MAX_ITERATIONS)
        return result.params, bool(result.converged), caught


def _with_intercept(X: pd.DataFrame) -> tuple[np.ndarray, pd.DataFrame]:
    """The design matrix (ones, then X's columns; each row contiguous, as the fit's arithmetic has
    always seen it) and the covariates without the intercept. X's own storage when X comes with its
    intercept (design_matrix's ``intercept``), a new matrix otherwise."""
    if len(X.columns) and X.columns[0] == INTERCEPT:
        return np.ascontiguousarray(X.to_numpy(dtype=float)), X.iloc[:, 1:]
    design = np.ones((len(X), X.shape[1] + 1))
    design[:, 1:] = X.to_numpy(dtype=float)
    return design, X


def _fit_logistic(X: pd.DataFrame, treated: np.ndarray) -> PropensityFit:
    """Unpenalized ML logistic regression with an intercept: the estimates of R's glm(family = binomial)."""
    from statsmodels.tools import sm_exceptions

    # The problems these warnings signal are reported in words by the checks below; library
    # deprecations are not the analyst's concern.
    ignored = (sm_exceptions.PerfectSeparationWarning, sm_exceptions.SingularMatrixWarning,
               sm_exceptions.ConvergenceWarning, RuntimeWarning, DeprecationWarning, FutureWarning)
    design, X = _with_intercept(X)
    names = [INTERCEPT] + list(X.columns)
    notes = _rank_warning(design, names)
    params, converged, caught = _maximum_likelihood(design, treated.astype(float), full_rank=not notes)
    notes += sorted({f"logistic: {w.message}" for w in caught if not issubclass(w.category, ignored)})
    converged = converged and bool(np.all(np.isfinite(params)))
    if not converged:
        notes.append(f"logistic propensity model did not converge in {_MAX_ITERATIONS} iterations; "
                     f"scores may be unreliable")
    ps = expit(design @ params)
    notes += _separation_warning(ps, X, treated, converged)
    coefficients = {name: float(value) for name, value in zip(names, params)}
    return PropensityFit(ps=ps, model="logistic", coefficients=coefficients, converged=converged, warnings=notes)
