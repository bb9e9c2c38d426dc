"""Restricted cubic splines (Harrell) for continuous covariates of the propensity model
(``propensity.splines``: column -> number of knots)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline.errors import DataError

# Harrell's default knot quantiles (Regression Modeling Strategies, 2nd ed., table 2.3).
RCS_KNOT_QUANTILES = {3: (0.10, 0.50, 0.90), 4: (0.05, 0.35, 0.65, 0.95), 5: (0.05, 0.275, 0.50, 0.725, 0.95),
                      6: (0.05, 0.23, 0.41, 0.59, 0.77, 0.95), 7: (0.025, 0.1833, 0.3417, 0.50, 0.6583, 0.8167, 0.975)}


def restricted_cubic_spline(x: np.ndarray, knots: np.ndarray) -> np.ndarray:
    """Nonlinear terms of a restricted (natural) cubic spline, Harrell's parametrization (k knots -> k - 2 columns).

    Together with x itself they span the cubic splines that are linear beyond the outer knots. Each term
    is divided by (t_k - t_1)^2 so its scale is that of x (Hmisc rcspline.eval, norm = 2).
    """
    t = np.asarray(knots, dtype=float)
    k = len(t)

    def cube(u):
        return np.maximum(u, 0.0) ** 3

    tail = t[-1] - t[-2]
    terms = [cube(x - t[j]) - cube(x - t[-2]) * (t[-1] - t[j]) / tail + cube(x - t[-1]) * (t[-2] - t[j]) / tail
             for j in range(k - 2)]
    return np.column_stack(terms) / (t[-1] - t[0]) ** 2


def add_spline_terms(X: pd.DataFrame, splines: dict[str, int]) -> pd.DataFrame:
    """X with restricted cubic spline terms "<var>'", "<var>''", ... after each named continuous column.

    Knots sit at Harrell's default quantiles of the column; ``splines`` maps a column to its number of
    knots (3 to 7; the config checks that each names a continuous covariate). Balance is still assessed
    on the original covariates. Without splines X itself is returned (not a copy).
    """
    if not splines:
        return X
    out = X.copy()
    for name, n_knots in splines.items():
        x = X[name].to_numpy(dtype=float)
        knots = np.quantile(x, RCS_KNOT_QUANTILES[n_knots])
        if len(np.unique(knots)) < n_knots:
            raise DataError(f"propensity.splines.{name}: too few distinct values for {n_knots} knots "
                            f"(knots at {np.unique(knots).tolist()})")
        terms = restricted_cubic_spline(x, knots)
        position = out.columns.get_loc(name) + 1
        for j in range(terms.shape[1]):
            out.insert(position + j, name + "'" * (j + 1), terms[:, j])
    return out
