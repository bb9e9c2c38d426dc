"""Table 1: patient characteristics by arm, before and after matching, with disclosure control.

After matching every statistic is weighted by the matching weights (units with weight 0 drop out), so
matching with replacement or k:1 matching with varying set sizes is described as the analysed sample.
Counts from 1 to min_cell - 1 are shown as "<min_cell"; so is a continuous summary resting on fewer than
min_cell patients. SMDs follow MatchIt's conventions (see pipeline.balance), computed on non-missing values.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline.balance import is_binary, smd_denominator, standardized_mean_difference, weighted_variance
from pipeline.errors import ConfigError, DataError
from pipeline.propensity import MISSING_LEVEL, category_codes

ARMS = ("treated", "control")
STAGES = ("before", "after")
COLUMNS = ["variable", "level", "statistic", "treated_before", "control_before", "smd_before",
           "treated_after", "control_after", "smd_after"]


def weighted_quantiles(x: np.ndarray, w: np.ndarray, probs: tuple[float, ...]) -> list[float]:
    """Quantiles of the weighted eCDF with each unit at the midpoint of its weight (R type 5 when w are equal).

    With equal weights the median of an even sample is the mean of the two middle values, as usual.
    Units with weight 0 do not count.
    """
    x, w = x[w > 0], w[w > 0]
    order = np.argsort(x, kind="stable")
    x, w = x[order], w[order]
    positions = (np.cumsum(w) - w / 2) / np.sum(w)
    return [float(np.interp(p, positions, x)) for p in probs]


def _format_count(count: float, min_cell: int) -> str:
    if 0 < count < min_cell:
        return f"<{min_cell}"
    return f"{count:.0f}" if abs(count - round(count)) < 1e-9 else f"{count:.1f}"


def _format_count_percent(count: float, total: float, min_cell: int) -> str:
    shown = _format_count(count, min_cell)
    if shown.startswith("<") or total == 0:
        return shown
    return f"{shown} ({100 * count / total:.1f}%)"


def _continuous_cell(x: np.ndarray, w: np.ndarray, median: bool, min_cell: int, digits: int) -> str:
    if np.count_nonzero(w) < max(min_cell, 1):
        return f"<{min_cell}" if min_cell > 0 else ""
    if median:
        low, mid, high = weighted_quantiles(x, w, (0.25, 0.5, 0.75))
        return f"{mid:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"
    mean = np.sum(w * x) / np.sum(w)
    sd = np.sqrt(weighted_variance(x[w > 0], w[w > 0], False)) if np.count_nonzero(w) > 1 else np.nan
    return f"{mean:.{digits}f} ({sd:.{digits}f})"


def _smd_pair(x: np.ndarray, treated: np.ndarray, weights: np.ndarray) -> tuple[float, float]:
    """SMD before and after on the non-missing values of x (NaN when an arm has none)."""
    present = ~np.isnan(x)
    x, treated, weights = x[present], treated[present], weights[present]
    if treated.all() or not treated.any():
        return np.nan, np.nan
    denominator = smd_denominator(x, treated, is_binary(x))
    before = standardized_mean_difference(x, treated, np.ones(len(x)), denominator)
    has_both = weights[treated].sum() > 0 and weights[~treated].sum() > 0
    after = standardized_mean_difference(x, treated, weights, denominator) if has_both else np.nan
    return float(np.round(before, 3)) + 0.0, float(np.round(after, 3)) + 0.0     # + 0.0: no "-0.0"


class _Arms:
    """Row masks and weights of the four columns (arm x stage)."""

    def __init__(self, treated: np.ndarray, weights: np.ndarray):
        self.treated, self.weights = treated, weights
        self.cells = {}
        for stage in STAGES:
            w = np.ones(len(treated)) if stage == "before" else weights
            for arm in ARMS:
                mask = treated if arm == "treated" else ~treated
                self.cells[f"{arm}_{stage}"] = np.where(mask, w, 0.0)

    def row(self, variable: str, level: str, statistic: str, cell, smd=(np.nan, np.nan)) -> dict:
        out = {"variable": variable, "level": level, "statistic": statistic}
        out.update({name: cell(w) for name, w in self.cells.items()})
        out["smd_before"], out["smd_after"] = smd
        return out


def _as_float(series: pd.Series) -> np.ndarray:
    try:
        return pd.to_numeric(series, errors="raise").astype("Float64").to_numpy(dtype=float, na_value=np.nan)
    except (TypeError, ValueError) as exc:
        raise DataError(f"Table 1 variable '{series.name}' is not numeric: {exc}") from None


def _missing_row(name: str, missing: np.ndarray, arms: _Arms, min_cell: int) -> dict:
    return arms.row(name, "(missing)", "n", lambda w: _format_count(np.sum(w * missing), min_cell))


def _continuous_rows(name: str, series: pd.Series, arms: _Arms, median: bool, min_cell: int,
                     digits: int) -> list[dict]:
    x = _as_float(series)
    present = ~np.isnan(x)
    filled = np.where(present, x, 0.0)
    statistic = "median [IQR]" if median else "mean (SD)"
    rows = [arms.row(name, "", statistic,
                     lambda w: _continuous_cell(filled, w * present, median, min_cell, digits),
                     _smd_pair(x, arms.treated, arms.weights))]
    if not present.all():
        rows.append(_missing_row(name, ~present, arms, min_cell))
    return rows


def _indicator_row(name: str, level: str, indicator: np.ndarray, present: np.ndarray, arms: _Arms,
                   min_cell: int) -> dict:
    def cell(w):
        return _format_count_percent(np.sum(w * indicator * present), np.sum(w * present), min_cell)
    smd = _smd_pair(np.where(present, indicator, np.nan), arms.treated, arms.weights)
    return arms.row(name, level, "n (%)", cell, smd)


def _binary_rows(name: str, series: pd.Series, arms: _Arms, min_cell: int) -> list[dict]:
    x = _as_float(series)
    present = ~np.isnan(x)
    rows = [_indicator_row(name, "1", np.where(present, x, 0.0), present, arms, min_cell)]
    if not present.all():
        rows.append(_missing_row(name, ~present, arms, min_cell))
    return rows


def _category_rows(name: str, series: pd.Series, levels: list[str], arms: _Arms, min_cell: int) -> list[dict]:
    if (series == MISSING_LEVEL).any():
        levels = levels + [MISSING_LEVEL]
    codes = category_codes(name, series, levels)
    present = codes >= 0
    rows = [_indicator_row(name, level, (codes == index).astype(float), present, arms, min_cell)
            for index, level in enumerate(levels)]
    if not present.all():
        rows.append(_missing_row(name, ~present, arms, min_cell))
    return rows


def table_one(df: pd.DataFrame, covariates: list[str], variables: dict, treated: np.ndarray,
              weights: np.ndarray, min_cell: int, median_for: set[str] | None = None,
              digits: int = 1) -> pd.DataFrame:
    """Table 1 as a DataFrame of display strings (SMD columns numeric, rounded to 3 decimals).

    Continuous variables: mean (SD); those in ``median_for`` (default: the integer-typed ones, usually
    skewed counts or scores) median [IQR]. Binary: n (%) with value 1. Category: n (%) per configured level.
    A "(missing)" row follows any variable with missing values; percentages are of the non-missing.
    """
    treated = np.asarray(treated).astype(bool)
    weights = np.asarray(weights, dtype=float)
    if not len(df) == len(treated) == len(weights):
        raise DataError(f"Table 1 needs one treatment flag and weight per row: {len(df)} rows, "
                        f"{len(treated)} flags, {len(weights)} weights")
    if median_for is None:
        median_for = {c for c in covariates if variables.get(c, {}).get("type") == "integer"}
    arms = _Arms(treated, weights)
    rows = [arms.row("n", "", "n", lambda w: _format_count(np.count_nonzero(w), min_cell))]
    for name in covariates:
        if name not in df.columns:
            raise DataError(f"Table 1 variable '{name}' is not in the data")
        kind = variables.get(name, {}).get("type")
        if kind in ("numeric", "integer"):
            rows += _continuous_rows(name, df[name], arms, name in median_for, min_cell, digits)
        elif kind == "binary":
            rows += _binary_rows(name, df[name], arms, min_cell)
        elif kind == "category":
            rows += _category_rows(name, df[name], list(variables[name].get("levels", [])), arms, min_cell)
        else:
            raise ConfigError(f"Table 1 variable '{name}' has type '{kind}'; expected numeric, integer, binary "
                              f"or category")
    return pd.DataFrame(rows, columns=COLUMNS)
