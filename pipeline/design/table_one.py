"""Table 1: patient characteristics by arm, before and after matching, with disclosure control.

The table is numbers in a long format (table1.csv; the report pivots and formats it): one row per
variable, level, arm ("treated", "control") and stage ("before", "after"), with the columns

- ``statistic``: ``n`` (``value`` the count: the patients for the "n" row, the weighted count of a
  "(missing)" row), ``n_percent`` (``value`` the weighted count of a level, ``percent`` its share of
  the arm's patients with a value; empty when none has one), ``mean_sd`` (``value`` the mean,
  ``spread`` the SD) or ``median_iqr`` (``value`` the median, ``low``/``high`` the quartiles);
- ``units``: the patients behind the cell (those with weight > 0); a continuous cell without any
  has no numbers;
- ``smd``: the variable's (level's) standardized mean difference at that stage, on both arms' rows;
- ``suppressed``: the cell rests on 1 to min_cell - 1 patients; its numbers (units included) are
  left empty.

After matching (or weighting) every statistic is weighted by the weights (units with weight 0 drop
out), so matching with replacement, k:1 matching with varying set sizes or a weighting design is
described as the analysed sample. SMDs follow pipeline.design.balance's conventions for the estimand,
computed on non-missing values.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline.config.settings import Variable
from pipeline.design.balance import (ArmWeights, is_binary, mean_difference, smd_denominator, standardized_difference,
                                     weighted_variance)
from pipeline.design.propensity.design_matrix import MISSING_LEVEL, category_codes
from pipeline.errors import ConfigError, DataError

ARMS = ("treated", "control")
STAGES = ("before", "after")
COLUMNS = ["variable", "level", "statistic", "arm", "stage", "units", "value", "spread", "low", "high", "percent",
           "smd", "suppressed"]
_NUMBERS = dict.fromkeys(["units", "value", "spread", "low", "high", "percent"], np.nan)


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


def _continuous_cell(x: np.ndarray, w: np.ndarray, order: np.ndarray | None) -> dict:
    """Mean and SD, or median and quartiles when ``order`` (a stable argsort of x) is given."""
    units = np.count_nonzero(w)
    if units == 0:
        return {"units": 0}
    if order is not None:
        low, mid, high = weighted_quantiles(x, w, (0.25, 0.5, 0.75), order)
        return {"units": units, "value": mid, "low": low, "high": high}
    mean = np.sum(w * x) / np.sum(w)
    sd = np.sqrt(weighted_variance(x[w > 0], w[w > 0], False)) if units > 1 else np.nan
    return {"units": units, "value": mean, "spread": sd}


def _count_cell(indicator: np.ndarray, w: np.ndarray) -> dict:
    """The weighted count of the patients ``indicator`` marks."""
    counted = w * indicator
    return {"units": np.count_nonzero(counted), "value": np.sum(counted)}


def _smd_weights(treated: np.ndarray, weights: np.ndarray) -> tuple[ArmWeights, ArmWeights | None]:
    """Arm weights before (all 1) and after matching (None when an arm has no weight after)."""
    has_both = weights[treated].sum() > 0 and weights[~treated].sum() > 0
    return ArmWeights(treated, np.ones(len(treated))), ArmWeights(treated, weights) if has_both else None


def _smd_pair(x: np.ndarray, arms: _Arms) -> tuple[float, float]:
    """SMD before and after on the non-missing values of x (NaN when an arm has none)."""
    present = ~np.isnan(x)
    complete = present.all()
    treated = arms.treated if complete else arms.treated[present]
    weights = arms.weights if complete else arms.weights[present]
    if treated.all() or not treated.any():
        return np.nan, np.nan
    if complete:
        stages = arms.smd_weights
    else:
        x = x[present]
        stages = _smd_weights(treated, weights)
    denominator = smd_denominator(x, treated, is_binary(x), arms.estimand, weights)
    before, after = (np.nan if stage is None else standardized_difference(mean_difference(x, stage), denominator)
                     for stage in stages)
    return before, after


class _Arms:
    """Weights of the four cells of a row (stage x arm), the SMDs' arm weights of the whole sample
    (shared by every variable without missing values) and estimand, and min_cell for suppression."""

    def __init__(self, treated: np.ndarray, weights: np.ndarray, min_cell: int, estimand: str):
        self.treated, self.weights, self.min_cell, self.estimand = treated, weights, min_cell, estimand
        self.smd_weights = _smd_weights(treated, weights)
        self.cells = {}
        for stage in STAGES:
            w = np.ones(len(treated)) if stage == "before" else weights
            for arm in ARMS:
                mask = treated if arm == "treated" else ~treated
                self.cells[stage, arm] = np.where(mask, w, 0.0)

    def rows(self, variable: str, level: str, statistic: str, cell, smd=(np.nan, np.nan)) -> list[dict]:
        """The row's four cells; ``cell(key, w)`` gives a cell's numbers (units, value, ...) from its
        key (stage, arm) and weights."""
        out = []
        for key, w in self.cells.items():
            numbers = cell(key, w)
            suppressed = 0 < numbers["units"] < self.min_cell
            stage, arm = key
            out.append({"variable": variable, "level": level, "statistic": statistic, "arm": arm, "stage": stage,
                        **_NUMBERS, **({} if suppressed else numbers), "smd": smd[STAGES.index(stage)],
                        "suppressed": suppressed})
        return out


def _as_float(series: pd.Series) -> np.ndarray:
    try:
        return pd.to_numeric(series, errors="raise").astype("Float64").to_numpy(dtype=float, na_value=np.nan)
    except (TypeError, ValueError) as exc:
        raise DataError(f"Table 1 variable '{series.name}' is not numeric: {exc}") from None


def _missing_rows(name: str, missing: np.ndarray, arms: _Arms) -> list[dict]:
    return arms.rows(name, MISSING_LEVEL, "n", lambda _, w: _count_cell(missing, w))


def _continuous_rows(name: str, series: pd.Series, arms: _Arms, median: bool) -> list[dict]:
    x = _as_float(series)
    present = ~np.isnan(x)
    filled = np.where(present, x, 0.0)
    order = _stable_order(filled) if median else None
    rows = arms.rows(name, "", "median_iqr" if median else "mean_sd",
                     lambda _, w: _continuous_cell(filled, w * present, order), _smd_pair(x, arms))
    if not present.all():
        rows += _missing_rows(name, ~present, arms)
    return rows


def _stable_order(x: np.ndarray) -> np.ndarray:
    """np.argsort(x, kind="stable"), several times faster for small whole numbers (counts, scores): they
    are sorted as int16 (radix sort). A stable sort's permutation depends on the keys' order alone."""
    with np.errstate(invalid="ignore"):
        small = x.astype(np.int16)
    return np.argsort(small if np.array_equal(small, x) else x, kind="stable")


def _present_totals(present: np.ndarray, arms: _Arms) -> dict[tuple[str, str], float]:
    """Each cell's weighted count of units with a value: the denominator of its percentages."""
    return {key: np.sum(w * present) for key, w in arms.cells.items()}


def _level_rows(name: str, level: str, indicator: np.ndarray, present: np.ndarray,
                totals: dict[tuple[str, str], float], arms: _Arms) -> list[dict]:
    """n (%) of one level; ``indicator`` is 0 where the value is missing."""
    def cell(key, w):
        numbers = _count_cell(indicator, w)
        return {**numbers, "percent": 100 * numbers["value"] / totals[key] if totals[key] else np.nan}
    smd = _smd_pair(np.where(present, indicator, np.nan), arms)
    return arms.rows(name, level, "n_percent", cell, smd)


def _binary_rows(name: str, series: pd.Series, arms: _Arms) -> list[dict]:
    x = _as_float(series)
    present = ~np.isnan(x)
    totals = _present_totals(present, arms)
    rows = _level_rows(name, "1", np.where(present, x, 0.0), present, totals, arms)
    if not present.all():
        rows += _missing_rows(name, ~present, arms)
    return rows


def _category_rows(name: str, series: pd.Series, levels: list[str], arms: _Arms) -> list[dict]:
    if series.isin([MISSING_LEVEL]).any():
        levels = levels + [MISSING_LEVEL]
    codes = category_codes(name, series, levels)
    present = codes >= 0
    totals = _present_totals(present, arms)
    rows = [row for index, level in enumerate(levels)
            for row in _level_rows(name, level, (codes == index).astype(float), present, totals, arms)]
    if not present.all():
        rows += _missing_rows(name, ~present, arms)
    return rows


def table_one(df: pd.DataFrame, covariates: list[str], variables: dict[str, Variable], treated: np.ndarray,
              weights: np.ndarray, min_cell: int, median_for: set[str] | None = None,
              estimand: str = "ATT") -> pd.DataFrame:
    """Table 1 in the long format of this module's docstring.

    Continuous variables: mean and SD; those in ``median_for`` (default: the integer-typed ones, usually
    skewed counts or scores) median and quartiles. Binary: n (%) with value 1. Category: n (%) per
    configured level. A "(missing)" row follows any variable with missing values; percentages are of
    the non-missing.
    """
    treated = np.asarray(treated).astype(bool)
    weights = np.asarray(weights, dtype=float)
    if not len(df) == len(treated) == len(weights):
        raise DataError(f"Table 1 needs one treatment flag and weight per row: {len(df)} rows, "
                        f"{len(treated)} flags, {len(weights)} weights")
    if median_for is None:
        median_for = {c for c in covariates if variables[c].type == "integer"}
    arms = _Arms(treated, weights, min_cell, estimand)
    rows = arms.rows("n", "", "n", lambda _, w: {"units": np.count_nonzero(w), "value": np.count_nonzero(w)})
    for name in covariates:
        if name not in df.columns:
            raise DataError(f"Table 1 variable '{name}' is not in the data")
        kind = variables[name].type
        if kind in ("numeric", "integer"):
            rows += _continuous_rows(name, df[name], arms, name in median_for)
        elif kind == "binary":
            rows += _binary_rows(name, df[name], arms)
        elif kind == "category":
            rows += _category_rows(name, df[name], list(variables[name].levels or ()), arms)
        else:
            raise ConfigError(f"Table 1 variable '{name}' has type '{kind}'; expected numeric, integer, binary "
                              f"or category")
    table = pd.DataFrame(rows, columns=COLUMNS)
    return table.astype({"units": "Int64"})
