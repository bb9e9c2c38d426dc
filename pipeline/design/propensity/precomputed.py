"""A propensity score computed outside the pipeline: the cohort's ``propensity.column``, checked."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from pipeline.config.settings import Propensity
from pipeline.design.propensity.common import PropensityFit, PropensityModel
from pipeline.errors import DataError


def fit(X: pd.DataFrame, treated: np.ndarray, propensity: Propensity, seed: int,
        cohort: pd.DataFrame | None) -> PropensityFit:
    """The score column as given; every value must lie strictly between 0 and 1."""
    column = propensity.column
    ps = cohort[column].to_numpy(dtype=float)
    bad = int(np.sum(~((ps > 0) & (ps < 1))))
    if bad:
        raise DataError(f"precomputed propensity column {column!r} has {bad} values missing or outside (0, 1)")
    return PropensityFit(ps=ps, model="precomputed", coefficients=None, converged=True, warnings=[])


def describe(propensity: Propensity, covariates: Sequence[str]) -> str:
    return (f"The propensity score was taken as given from the variable '{propensity.column}' (precomputed); "
            f"balance was checked on {', '.join(covariates)}.")


MODEL = PropensityModel(fit=fit, describe=describe)
