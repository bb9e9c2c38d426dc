"""The Mahalanobis distance as MatchIt computes it for matching (``mahvars``; its
``transform_covariates(method = "mahalanobis")`` with the treatment given).

Covariates whose range is below sqrt(machine epsilon) are dropped; the others are standardised
over all patients (R's ``scale``); the covariance is the pooled within-arm covariance of the
patients not discarded (each arm centred on its own means, sums of squares over n - 2: Rubin 1980,
optmatch); its inverse, or its generalised inverse (singular values above 1e-8 of the largest) when
its determinant is at most 1e-8. The patients' rows are multiplied by a factor of that inverse, so
that the Euclidean distance between two rows is their Mahalanobis distance. Categories enter as
the design matrix's indicators: the distance does not depend on which level is the reference.
"""
from __future__ import annotations

import numpy as np

from pipeline.errors import DataError

_NO_VARIANCE = np.sqrt(np.finfo(float).eps)
_SINGULAR = 1e-8


def mahalanobis_features(covariates: np.ndarray, treated: np.ndarray, discarded: np.ndarray) -> np.ndarray:
    """Rows whose Euclidean distances are the Mahalanobis distances (module docstring)."""
    X = np.asarray(covariates, dtype=np.float64)
    if X.ndim != 2 or len(X) != len(treated):
        raise DataError("the Mahalanobis covariates need one row per patient")
    if not np.isfinite(X).all():
        raise DataError("the Mahalanobis covariates have missing or infinite values")
    varies = (X.max(axis=0, initial=-np.inf) - X.min(axis=0, initial=np.inf)) >= _NO_VARIANCE
    if not varies.any():                    # MatchIt then matches on the first column: all distances 0
        return np.zeros((len(X), 1))
    X = X[:, varies]
    X = (X - X.mean(axis=0)) / X.std(axis=0, ddof=1)
    covariance = pooled_within_arm_covariance(X[~discarded], treated[~discarded])
    return X @ _inverse_factor(covariance)


def pooled_within_arm_covariance(X: np.ndarray, treated: np.ndarray) -> np.ndarray:
    """Covariance of the columns centred on their arm's means, over n - (number of arms)."""
    centred = X.copy()
    arms = np.unique(treated)
    for arm in arms:
        centred[treated == arm] -= X[treated == arm].mean(axis=0)
    return centred.T @ centred / (len(X) - len(arms))


def _inverse_factor(covariance: np.ndarray) -> np.ndarray:
    """F with F @ F.T the (generalised) inverse of the covariance."""
    values, vectors = np.linalg.eigh(covariance)
    if np.prod(values) > _SINGULAR:
        keep = np.ones(len(values), dtype=bool)
    else:
        keep = values > _SINGULAR * values.max()
    return vectors[:, keep] / np.sqrt(values[keep])
