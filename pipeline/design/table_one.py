"""Table 1: patient characteristics by arm, before and after matching, with disclosure control.

After matching every statistic is weighted by the matching weights (units with weight 0 drop out), so
matching with replacement or k:1 matching with varying set sizes is described as the analysed sample.
Counts from 1 to min_cell - 1 are shown as "<min_cell"; so is a continuous summary resting on fewer than
min_cell patients. SMDs follow MatchIt's conventions (see pipeline.design.balance), computed on non-missing values.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline.design.balance import (ArmWeights, is_binary, mean_difference, smd_denominator, standardized_difference,
                              weighted_variance)
from pipeline.errors import ConfigError, DataError
from pipeline.design.propensity.models import MISSING_LEVEL, category_codes

ARMS = ("treated", "control")
STAGES = ("before", "after")
COLUMNS = ["variable", "level", "statistic", "treated_before", "control_before", "smd_before",
           "treated_after", "control_after", "smd_after"]


def weighted_quantiles(x: np.ndarray, w: np.ndarray, probs: tuple[float, ...],
                       order: np.ndarray | None = None) -> list[float]:
    """Quantiles of the weighted eCDF with each unit at the midpoint of its weight (R type 5 when w are equal).

    With equal weights the median of an even sample is the mean of the two middle values, as usual.
    Units with weight 0 do not count. ``order``, a stable argsort of x, lets several weightings share
    one sort (the units kept from a stable sort of all are in the order of a stable sort of those kept).
    """
    if order is None:
        order = np.argsort(x, kind="stable")
    x, w = x[order], w[order]
    x, w = x[w > 0], w[w > 0]
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


def _continuous_cell(x: np.ndarray, w: np.ndarray, order: np.ndarray | None, min_cell: int, digits: int) -> str:
    """mean (SD), or median [IQR] when ``order`` (a stable argsort of x) is given."""
    if np.count_nonzero(w) < max(min_cell, 1):
        return f"<{min_cell}" if min_cell > 0 else ""
    if order is not None:
        low, mid, high = weighted_quantiles(x, w, (0.25, 0.5, 0.75), order)
        return f"{mid:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"
    mean = np.sum(w * x) / np.sum(w)
    sd = np.sqrt(weighted_variance(x[w > 0], w[w > 0], False)) if np.count_nonzero(w) > 1 else np.nan
    return f"{mean:.{digits}f} ({sd:.{digits}f})"


def _smd_weights(treated: np.ndarray, weights: np.ndarray) -> tuple[ArmWeights, ArmWeights | None]:
    """Arm weights before (all 1) and after matching (None when an arm has no weight after)."""
    has_both = weights[treated].sum() > 0 and weights[~treated].sum() > 0
    return ArmWeights(treated, np.ones(len(treated))), ArmWeights(treated, weights) if has_both else None


def _smd_pair(x: np.ndarray, arms: _Arms) -> tuple[float, float]:
    """SMD before and after on the non-missing values of x (NaN when an arm has none)."""
    present = ~np.isnan(x)
    complete = present.all()
    treated = arms.treated if complete else arms.treated[present]
    if treated.all() or not treated.any():
        return np.nan, np.nan
    if complete:
        stages = arms.smd_weights
    else:
        x = x[present]
        stages = _smd_weights(treated, arms.weights[present])
    denominator = smd_denominator(x, treated, is_binary(x))
    before, after = (np.nan if stage is None else standardized_difference(mean_difference(x, stage), denominator)
                     for stage in stages)
    return float(np.round(before, 3)) + 0.0, float(np.round(after, 3)) + 0.0     # + 0.0: no "-0.0"


class _Arms:
    """Row masks and weights of the four columns (arm x stage), and the SMDs' arm weights of the
    whole sample (shared by every variable without missing values)."""

    def __init__(self, treated: np.ndarray, weights: np.ndarray):
        self.treated, self.weights = treated, weights
        self.smd_weights = _smd_weights(treated, weights)
        self.cells = {}
        for stage in STAGES:
            w = np.ones(len(treated)) if stage == "before" else weights
            for arm in ARMS:
                mask = treated if arm == "treated" else ~treated
                self.cells[f"{arm}_{stage}"] = np.where(mask, w, 0.0)

    def row(self, variable: str, level: str, statistic: str, cell, smd=(np.nan, np.nan)) -> dict:
        """``cell(column, w)`` gives the display string of a column from its name and weights."""
        out = {"variable": variable, "level": level, "statistic": statistic}
        out.update({name: cell(name, w) for name, w in self.cells.items()})
        out["smd_before"], out["smd_after"] = smd
        return out


def _as_float(series: pd.Series) -> np.ndarray:
    try:
        return pd.to_numeric(series, errors="raise").astype("Float64").to_numpy(dtype=float, na_value=np.nan)
    except (TypeError, ValueError) as exc:
        raise DataError(f"Table 1 variable '{series.name}' is not numeric: {exc}") from None


def _missing_row(name: str, missing: np.ndarray, arms: _Arms, min_cell: int) -> dict:
    return arms.row(name, "(missing)", "n", lambda _, w: _format_count(np.sum(w * missing), min_cell))


def _continuous_rows(name: str, series: pd.Series, arms: _Arms, median: bool, min_cell: int,
                     digits: int) -> list[dict]:
    x = _as_float(series)
    present = ~np.isnan(x)
    filled = np.where(present, x, 0.0)
    statistic = "median [IQR]" if median else "mean (SD)"
    order = _stable_order(filled) if median else None
    rows = [arms.row(name, "", statistic,
                     lambda _, w: _continuous_cell(filled, w * present, order, min_cell, digits),
                     _smd_pair(x, arms))]
    if not present.all():
        rows.append(_missing_row(name, ~present, arms, min_cell))
    return rows


def _stable_order(x: np.ndarray) -> np.ndarray:
    """np.argsort(x, kind="stable"), several times faster for small whole numbers (counts, scores): they
    are sorted as int16 (radix sort). A stable sort's permutation depends on the keys' order alone."""
    with np.errstate(invalid="ignore"):
        small = x.astype(np.int16)
    return np.argsort(small if np.array_equal(small, x) else x, kind="stable")


def _present_totals(present: np.ndarray, arms: _Arms) -> dict[str, float]:
    """Each column's weighted count of units with a value: the denominator of its percentages."""
    return {column: np.sum(w * present) for column, w in arms.cells.items()}


def _indicator_row(name: str, level: str, indicator: np.ndarray, present: np.ndarray, totals: dict[str, float],
                   arms: _Arms, min_cell: int) -> dict:
    """n (%) of one level; ``indicator`` is 0 where the value is missing."""
    def cell(column, w):
        return _format_count_percent(np.sum(w * indicator), totals[column], min_cell)
    smd = _smd_pair(np.where(present, indicator, np.nan), arms)
    return arms.row(name, level, "n (%)", cell, smd)


def _binary_rows(name: str, series: pd.Series, arms: _Arms, min_cell: int) -> list[dict]:
    x = _as_float(series)
    present = ~np.isnan(x)
    totals = _present_totals(present, arms)
    rows = [_indicator_row(name, "1", np.where(present, x, 0.0), present, totals, arms, min_cell)]
    if not present.all():
        rows.append(_missing_row(name, ~present, arms, min_cell))
    return rows


def _category_rows(name: str, series: pd.Series, levels: list[str], arms: _Arms, min_cell: int) -> list[dict]:
    if series.isin([MISSING_LEVEL]).any():
        levels = levels + [MISSING_LEVEL]
    codes = category_codes(name, series, levels)
    present = codes >= 0
    totals = _present_totals(present, arms)
    rows = [_indicator_row(name, level, (codes == index).astype(float), present, totals, arms, min_cell)
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
    rows = [arms.row("n", "", "n", lambda _, w: _format_count(np.count_nonzero(w), min_cell))]
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
