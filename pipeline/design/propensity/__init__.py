"""Propensity models, registered by the name the config's ``propensity.model`` uses.

Each model family is one module exposing a PropensityModel (pipeline.design.propensity.common):
``fit`` returns the PropensityFit every model shares, ``describe`` words the model for the report.
Adding a model takes that module, one line in MODELS and its tests; the config schema takes its
``propensity.model`` choices from MODELS. MODELS imports a model's module when the model is first
looked up (pipeline.design.registry), so the names cost no import. The design matrix, the splines
and the overlap diagnostics are their own modules.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from pipeline.config.settings import Propensity
from pipeline.design.propensity.common import PropensityFit, PropensityModel
from pipeline.design.registry import LazyRegistry

MODELS: Mapping[str, PropensityModel] = LazyRegistry(__name__, {
    "logistic": "logistic.MODEL",
    "elastic_net": "causal.ELASTIC_NET",
    "gradient_boosting": "causal.GRADIENT_BOOSTING",
    "precomputed": "precomputed.MODEL",
})


def fit_propensity(X: pd.DataFrame, treated: np.ndarray, propensity: Propensity, seed: int,
                   cohort: pd.DataFrame | None = None) -> PropensityFit:
    """Propensity score P(treated | X) with the analysis's model (see PropensityModel for the
    arguments; ``cohort`` only for a model that reads a column of its own)."""
    return MODELS[propensity.model].fit(X, treated, propensity, seed, cohort)


def describe(propensity: Propensity, covariates: Sequence[str]) -> str:
    """One sentence for the report's methods paragraph: how the score was obtained, on which
    covariates (``covariates``: as the report names them, in the analysis's order)."""
    return MODELS[propensity.model].describe(propensity, covariates)
