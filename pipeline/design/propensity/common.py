"""What every propensity model shares: the fitted result, the registry's entry type, the input
checks and the words for the methods paragraph."""
from __future__ import annotations

from dataclasses import dataclass, field
from collections.abc import Sequence
from typing import Callable

import numpy as np
import pandas as pd

from pipeline.config.settings import Propensity
from pipeline.errors import DataError

# R's glm.fit flags fitted probabilities within 10 * machine epsilon of 0 or 1.
R_GLM_EPS = 10 * np.finfo(float).eps


@dataclass
class PropensityFit:
    ps: np.ndarray
    model: str
    coefficients: dict[str, float] | None
    converged: bool
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class PropensityModel:
    """A propensity model family as the registry holds it.

    ``fit(X, treated, propensity, seed, cohort)``: ``X`` the covariates' design matrix, ``treated``
    booleans, ``propensity`` the analysis's Propensity settings, ``cohort`` the analysis cohort (for
    a model that reads a column of its own, as the precomputed score). ``describe(propensity,
    covariates)``: the methods paragraph's sentence; ``covariates`` are the covariates as the report
    names them (labels), in the analysis's order. ``intercept``: the model is fitted with an
    intercept, and ``X`` may come with its column of ones first (design_matrix's ``intercept``), so
    that the fit uses X's storage as its design matrix instead of a copy.
    """

    fit: Callable[[pd.DataFrame, np.ndarray, Propensity, int, pd.DataFrame | None], PropensityFit]
    describe: Callable[[Propensity, Sequence[str]], str]
    intercept: bool = False


def checked_inputs(X: pd.DataFrame, treated: np.ndarray) -> np.ndarray:
    """``treated`` as booleans, once the design fits a model: one flag per row, both arms, no gaps."""
    treated = np.asarray(treated).astype(bool)
    if len(treated) != len(X):
        raise DataError(f"treatment vector has {len(treated)} entries but the design matrix {len(X)} rows")
    if treated.all() or not treated.any():
        raise DataError("the propensity model needs both treated and control patients; one arm is empty")
    nan_columns = X.columns[X.isna().any().to_numpy()].tolist()
    if nan_columns:
        raise DataError(f"covariates with missing values reached the propensity model: {nan_columns} "
                        f"(use missing: complete_case or indicator)")
    return treated


def on_covariates(propensity: Propensity, covariates: Sequence[str]) -> str:
    """'on age, sex, grade', with the spline terms when the model has any."""
    text = f"on {', '.join(covariates)}"
    if propensity.splines:
        knots = ", ".join(f"{name} ({n} knots)" for name, n in propensity.splines.items())
        text += f", with restricted cubic splines (Harrell) for {knots}"
    return text
