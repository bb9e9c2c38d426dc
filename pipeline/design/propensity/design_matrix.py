"""The covariates as a model matrix: numeric columns as they are, categories one-hot, and the
missing-indicator method for analyses with ``missing: indicator``."""
from __future__ import annotations

from typing import Callable

import numpy as np
import pandas as pd

from pipeline.config.settings import Variable
from pipeline.errors import ConfigError, DataError

MISSING_LEVEL = "(missing)"
MISSING_SUFFIX = "_missing"
INTERCEPT = "(Intercept)"
_NUMERIC_TYPES = ("numeric", "integer", "binary")


def covariate_matrix(cohort: pd.DataFrame, covariates, missing: str, variables: dict[str, Variable],
                     intercept: bool = False) -> pd.DataFrame:
    """Design matrix of an analysis's covariates, with missingness indicators when ``missing`` is
    "indicator". ``variables`` holds every covariate's Variable (center and index_year included).
    With ``intercept``, see design_matrix."""
    data, columns = cohort, list(covariates)
    if missing == "indicator":
        data, columns = add_missing_indicators(cohort, columns, variables)
    return design_matrix(data, columns, variables, intercept)


def variable_type(name: str, variables: dict[str, Variable]) -> str:
    """Type of a covariate; ``<var>_missing`` indicator columns (see add_missing_indicators) are binary."""
    if name in variables:
        return variables[name].type
    base = name[: -len(MISSING_SUFFIX)] if name.endswith(MISSING_SUFFIX) else None
    if base in variables:
        return "binary"
    raise ConfigError(f"covariate '{name}' is not a variable in registry.variables")


def _as_float(column: pd.Series) -> np.ndarray:
    try:
        return pd.to_numeric(column, errors="raise").astype("Float64").to_numpy(dtype=float, na_value=np.nan)
    except (TypeError, ValueError) as exc:
        raise DataError(f"covariate '{column.name}' is not numeric: {exc}") from None


def category_codes(name: str, column: pd.Series, levels: list[str]) -> np.ndarray:
    """Index of each value in ``levels`` (-1 where missing); a value outside ``levels`` is a DataError."""
    coded = isinstance(column.dtype, (pd.StringDtype, pd.CategoricalDtype))   # no Python string per row
    values = column if coded else column.astype("string")
    codes = pd.Categorical(values, categories=list(levels)).codes.astype(np.int64)
    unknown = (codes < 0) & values.notna().to_numpy()
    if unknown.any():
        raise DataError(f"covariate '{name}' has values not among its configured levels {list(levels)}: "
                        f"{sorted(set(values[unknown]))}")
    return codes


def _one_hot(name: str, column: pd.Series, variable: Variable) -> list[tuple[str, Callable]]:
    """Indicator columns "<var>=<level>" for every present level except the reference (the first present one),
    each as its name and a function that fills a column of the matrix with it.

    Levels are the configured ones plus "(missing)", the fill level of add_missing_indicators.
    """
    allowed = list(variable.levels or ()) + [MISSING_LEVEL]
    codes = category_codes(name, column, allowed)
    present = np.flatnonzero(np.bincount(codes[codes >= 0], minlength=len(allowed)))
    missing = codes < 0

    def indicator(index: int) -> Callable:
        def fill(column: np.ndarray) -> None:
            np.equal(codes, index, out=column, casting="unsafe")
            column[missing] = np.nan
        return fill

    return [(f"{name}={allowed[index]}", indicator(index)) for index in present[1:]]


def _numeric(name: str, column: pd.Series) -> list[tuple[str, Callable]]:
    def fill(out: np.ndarray) -> None:
        out[:] = _as_float(column)
    return [(name, fill)]


def design_matrix(df: pd.DataFrame, covariates: list[str], variables: dict[str, Variable],
                  intercept: bool = False) -> pd.DataFrame:
    """Float model matrix: numeric/integer/binary as is, categories one-hot with a reference level.

    The reference level of a category is the first configured level present in the data; levels that no
    row has get no column (it would be constant zero). Missing values stay NaN: the caller chooses
    complete-case analysis or add_missing_indicators() beforehand. The matrix is one float64 block,
    filled column by column (a large cohort's matrix is built once, without intermediate frames): each
    column contiguous, or, with ``intercept``, a first column INTERCEPT of ones and each row contiguous,
    as a regression with an intercept uses it (``to_numpy()`` then gives the matrix itself, not a copy).
    """
    absent = [c for c in covariates if c not in df.columns]
    if absent:
        raise DataError(f"covariates missing from the data: {absent}")
    columns = []
    for name in covariates:
        kind = variable_type(name, variables)
        if kind in _NUMERIC_TYPES:
            columns += _numeric(name, df[name])
        elif kind == "category":
            columns += _one_hot(name, df[name], variables[name])
        else:
            raise ConfigError(f"covariate '{name}' has type '{kind}'; a propensity covariate must be "
                              f"numeric, integer, binary or category")
    if intercept:
        columns.insert(0, (INTERCEPT, lambda column: column.fill(1.0)))
        values = np.empty((len(df), len(columns)))
    else:
        values = np.empty((len(columns), len(df))).T
    for j, (_, fill) in enumerate(columns):
        fill(values[:, j])
    return pd.DataFrame(values, index=df.index, columns=[name for name, _ in columns], copy=False)


def add_missing_indicators(df: pd.DataFrame, covariates: list[str],
                           variables: dict[str, Variable]) -> tuple[pd.DataFrame, list[str]]:
    """The missing-indicator method: keep every row, model missingness explicitly.

    For a numeric/integer covariate with missing values: a 0/1 column "<var>_missing" and the gaps filled
    with the observed mean; for a binary one: the indicator and the gaps filled with 0 (any constant gives
    the same fitted scores once the indicator is in the model; 0 keeps the variable 0/1 for balance).
    A category's gaps become the level "(missing)", whose one-hot column already is the indicator, so no
    extra column is added (it would be collinear with it). Covariates without missing values are untouched.
    Returns the new frame and the covariate list with the indicator names inserted after their variable.
    """
    out = df.copy(deep=False)     # the columns filled below are replaced, not written into
    names: list[str] = []
    for name in covariates:
        names.append(name)
        gaps = out[name].isna()
        if not gaps.any():
            continue
        kind = variable_type(name, variables)
        if kind == "category":
            out[name] = out[name].astype("string").fillna(MISSING_LEVEL)
            continue
        if kind not in _NUMERIC_TYPES:
            raise ConfigError(f"covariate '{name}' has type '{kind}' and cannot get a missing indicator")
        values = _as_float(out[name])
        fill = 0.0 if kind == "binary" else float(np.nanmean(values))
        indicator = f"{name}{MISSING_SUFFIX}"
        if indicator in out.columns:
            raise DataError(f"cannot add missing indicator '{indicator}': a column of that name exists")
        out[name] = np.where(np.isnan(values), fill, values)
        out[indicator] = gaps.to_numpy().astype(np.int8)
        names.append(indicator)
    return out, names
