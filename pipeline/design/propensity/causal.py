"""Penalized and machine-learning propensity models from causalml (elastic net, gradient-boosted
trees), seeded so that the scores are reproducible; their warnings are kept, not printed."""
from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Callable

import numpy as np
import pandas as pd

from pipeline.config.settings import Propensity
from pipeline.design.propensity.common import PropensityFit, PropensityModel, checked_inputs, on_covariates
from pipeline.design.propensity.splines import add_spline_terms


def _standardized(X: pd.DataFrame) -> np.ndarray:
    """Columns centred and scaled to unit SD (constant columns only centred): penalties need a common scale."""
    values = X.to_numpy(dtype=float)
    sd = values.std(axis=0, ddof=1) if len(values) > 1 else np.ones(values.shape[1])
    sd[~(sd > 0)] = 1.0
    return (values - values.mean(axis=0)) / sd


def _elastic_net(X: pd.DataFrame, seed: int):
    from causalml.propensity import ElasticNetPropensityModel

    return ElasticNetPropensityModel(random_state=seed), _standardized(X)


def _gradient_boosting(X: pd.DataFrame, seed: int):
    """xgboost runs single-threaded so the scores are bit-identical across machines and runs."""
    from causalml.propensity import GradientBoostedPropensityModel

    return GradientBoostedPropensityModel(random_state=seed, nthread=1), X.to_numpy(dtype=float)


def _causalml_model(name: str, estimator: Callable, words: str) -> PropensityModel:
    """The registry entry of a causalml model; ``estimator(X, seed)`` gives the seeded model and
    the features it is fitted on."""

    def fit(X: pd.DataFrame, treated: np.ndarray, propensity: Propensity, seed: int,
            cohort: pd.DataFrame | None) -> PropensityFit:
        treated = checked_inputs(X, treated)
        model, features = estimator(add_spline_terms(X, propensity.splines), seed)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            ps = np.asarray(model.fit_predict(features, treated.astype(int)), dtype=float)
        notes = sorted({f"{name}: {w.category.__name__}: {w.message}" for w in caught
                        if not issubclass(w.category, (DeprecationWarning, FutureWarning))})
        converged = not any("ConvergenceWarning" in note for note in notes)
        return PropensityFit(ps=ps, model=name, coefficients=None, converged=converged, warnings=notes)

    def describe(propensity: Propensity, covariates: Sequence[str]) -> str:
        return f"The propensity score was estimated with {words} {on_covariates(propensity, covariates)}."

    return PropensityModel(fit=fit, describe=describe)


ELASTIC_NET = _causalml_model("elastic_net", _elastic_net, "an elastic-net logistic regression (causalml)")
GRADIENT_BOOSTING = _causalml_model("gradient_boosting", _gradient_boosting, "gradient-boosted trees (causalml)")
