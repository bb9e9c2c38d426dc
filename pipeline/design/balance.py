"""Covariate balance before and after matching or weighting, with MatchIt's ``summary()`` conventions
and, for the estimands of weighting, cobalt's (``bal.tab``) choice of SMD denominator.

Per covariate column (every one-hot level of a category is its own row):
- SMD: signed (treated minus control) mean difference divided by a standard deviation that depends on
  the estimand (cobalt's ``s.d.denom`` for it; variances with an n - 1 denominator, p(1 - p) for a 0/1
  variable):
  ATT: the SD of the treated units in the full sample (MatchIt; the within-arm pooled SD when that
  is zero); ATE: "pooled", the square root of the mean of the two arms' variances in the full sample;
  ATO: "weighted", the SD of the whole sample (both arms together) weighted by the overlap weights.
  The same denominator is used before and after, where the means are weighted by the matching or
  weighting weights. A mean difference below sqrt(machine epsilon) is reported unstandardized (as
  MatchIt does).
- Variance ratio: treated over control variance, weighted after matching with the reliability-weights
  formula of R's cov.wt(); not reported (NaN) for 0/1 variables, whose variance follows from their mean.
- eCDF mean / max: mean and maximum absolute difference of the (weighted) empirical CDFs of the arms,
  evaluated at every distinct value of the variable in the full sample; |difference in proportions| for
  0/1 variables.
Thresholds for flags: |SMD| >= 0.1 (Austin 2009) and a variance ratio outside [0.5, 2] (Stuart 2010).
"""

from __future__ import annotations

from functools import cached_property

import numpy as np
import pandas as pd

from pipeline.errors import DataError

SMD_THRESHOLD = 0.1
VARIANCE_RATIO_BOUNDS = (0.5, 2.0)
_TINY = np.sqrt(np.finfo(float).eps)
COLUMNS = ["variable", "smd_before", "smd_after", "var_ratio_before", "var_ratio_after",
           "ecdf_mean_before", "ecdf_max_before", "ecdf_mean_after", "ecdf_max_after", "flag"]


def is_binary(x: np.ndarray) -> bool:
    """MatchIt's test: every value is 0 or 1."""
    return bool(np.all((x == 0) | (x == 1)))


def weighted_variance(x: np.ndarray, w: np.ndarray, binary: bool) -> float:
    """Reliability-weights variance (R cov.wt): sum(w (x - m)^2) / (1 - sum(w^2)), w normalized to sum 1.

    With equal weights this is the usual n - 1 sample variance; for a 0/1 variable it is p(1 - p).
    """
    w = w / np.sum(w)
    if binary:
        mean = np.sum(w * x)
        return float(mean * (1 - mean))
    return _reliability_variance(x, w, np.sum(w ** 2))


def _reliability_variance(x: np.ndarray, w: np.ndarray, sum_w2: float) -> float:
    """weighted_variance of a non-0/1 column, w already normalized to sum 1 and sum_w2 = sum(w^2)."""
    mean = np.sum(w * x)
    with np.errstate(divide="ignore", invalid="ignore"):      # a single unit: NaN, as in R
        return float(np.sum(w * (x - mean) ** 2) / (1 - sum_w2))


def _pooled_sd(x: np.ndarray, treated: np.ndarray, binary: bool) -> float:
    """MatchIt's fallback denominator when the treated SD is zero: the within-arm pooled SD."""
    n = len(x)
    if binary:
        variance = sum(np.sum(x[arm]) * (1 - np.sum(x[arm]) / np.sum(arm)) / n for arm in (treated, ~treated))
    else:
        centred = np.concatenate([x[arm] - x[arm].mean() for arm in (treated, ~treated)])
        variance = np.sum(centred ** 2) / (n - 1)  # MatchIt's weighted formula with unit sampling weights
    return float(np.sqrt(variance))


def smd_denominator(x: np.ndarray, treated: np.ndarray, binary: bool, estimand: str = "ATT",
                    weights: np.ndarray | None = None) -> float:
    """The SMD's denominator for the estimand (see the module docstring); ``weights`` (the overlap
    weights of every row) are needed for the ATO only."""
    if estimand == "ATE":
        variances = [weighted_variance(x[rows], np.ones(int(rows.sum())), binary) for rows in (treated, ~treated)]
        return float(np.sqrt(np.mean(variances)))
    if estimand == "ATO":
        return float(np.sqrt(weighted_variance(x, weights, binary)))
    sd = np.sqrt(weighted_variance(x[treated], np.ones(int(treated.sum())), binary))
    if not np.isfinite(sd) or sd < _TINY:
        sd = _pooled_sd(x, treated, binary)
    return float(sd)


class ArmWeights:
    """One weight vector split by arm, with everything that depends on the weights alone computed once
    and shared by all columns (the statistics of a column then cost a few passes over that column).

    ``treated`` / ``control`` hold w on the arm's rows and 0 elsewhere; the means are dot products with them.
    """

    def __init__(self, treated: np.ndarray, w: np.ndarray):
        self.is_treated, self.w = treated, w
        self.treated = w * treated
        self.control = w - self.treated
        self.treated_total, self.control_total = self.treated.sum(), self.control.sum()

    @cached_property
    def enough(self) -> bool:
        """MatchIt skips standardized / distributional statistics when both arms have fewer than 2 weighted units."""
        weighted = self.w != 0
        return not (np.count_nonzero(weighted & self.is_treated) < 2
                    and np.count_nonzero(weighted & ~self.is_treated) < 2)

    @cached_property
    def ecdf_steps(self) -> np.ndarray:
        """Each row's step in F_treated - F_control: +w / treated total, -w / control total."""
        t, w = self.is_treated, self.w
        return np.where(t, w / np.sum(w[t]), -w / np.sum(w[~t]))

    @cached_property
    def variance_weights(self) -> tuple[tuple[np.ndarray, float], tuple[np.ndarray, float]]:
        """Per arm (treated, control): its rows' weights normalized to sum 1, and their sum of squares."""
        per_arm = []
        for rows in (self.is_treated, ~self.is_treated):
            w = self.w[rows] / np.sum(self.w[rows])
            per_arm.append((w, np.sum(w ** 2)))
        return per_arm[0], per_arm[1]


def mean_difference(x: np.ndarray, arms: ArmWeights) -> float:
    """Weighted mean of the treated minus that of the controls (dot products: no copies of x)."""
    return float(x @ arms.treated / arms.treated_total - x @ arms.control / arms.control_total)


def standardized_difference(diff: float, denominator: float, enough: bool = True) -> float:
    """Standardized mean difference; a negligible difference stays raw, too few units give NaN (as MatchIt).

    A (numerically) zero denominator (the covariate does not vary within either arm, yet differs
    between them: it separates the arms) gives NaN; constant_covariates() names such covariates.
    """
    if abs(diff) <= _TINY:
        return float(diff)
    return float(diff / denominator) if enough and denominator >= _TINY else np.nan


def constant_covariates(X: pd.DataFrame, treated: np.ndarray, weights: np.ndarray) -> list[str]:
    """Sentences naming each covariate column that takes a single value in an arm, before or after
    matching: its variance ratio is not defined there, and it may separate the arms."""
    sentences = []
    kept = weights > 0
    stages = (("", (("treated", treated), ("controls", ~treated))),
              ("matched ", (("treated", treated & kept), ("controls", ~treated & kept))))
    for name in X.columns:
        x = X[name].to_numpy(dtype=float)
        for stage, rows_of_arms in stages:
            arms = [arm for arm, rows in rows_of_arms if _single_value(x[rows])]
            if arms:
                sentences.append(f"{name} is constant among the {stage}{' and the '.join(arms)}: "
                                 "its variance ratio is not defined")
                break
    return sentences


def _single_value(x: np.ndarray) -> bool:
    return len(x) > 0 and x.min() == x.max()


def ecdf_differences(x: np.ndarray, treated: np.ndarray, w: np.ndarray,
                     order: np.ndarray | None = None) -> tuple[float, float]:
    """Mean and max |F_treated - F_control| over the distinct values of x (weighted eCDFs).

    ``order`` is an argsort of x (computed if not given); the order within ties does not matter, as the
    eCDFs are read after the last unit of each value.
    """
    if order is None:
        order = np.argsort(x)
    x_sorted = x[order]
    return _ecdf_gaps(ArmWeights(treated, w).ecdf_steps[order], _last_of_value(x_sorted))


def _last_of_value(x_sorted: np.ndarray) -> np.ndarray:
    return np.append(np.diff(x_sorted) != 0, True)


def _ecdf_gaps(steps_sorted: np.ndarray, last_of_value: np.ndarray) -> tuple[float, float]:
    """Mean and max |F_treated - F_control| read after the last unit of each distinct value."""
    at_values = np.abs(np.cumsum(steps_sorted))[last_of_value]
    return float(np.mean(at_values)), float(np.max(at_values))


def _binary_statistics(x: np.ndarray, arms: ArmWeights, denominator: float) -> tuple[float, float, float, float]:
    """SMD, no variance ratio, and |difference in proportions| as eCDF mean and max."""
    diff = mean_difference(x, arms)
    return standardized_difference(diff, denominator, arms.enough), np.nan, abs(diff), abs(diff)


def _continuous_statistics(x: np.ndarray, stages: tuple[ArmWeights, ...], denominator: float
                           ) -> list[tuple[float, float, float, float]]:
    """SMD, variance ratio, eCDF mean and max under each stage's weights; the sort and the per-arm
    copies of x are shared by the stages."""
    order = np.argsort(x)
    last_of_value = _last_of_value(x[order])
    by_arm = (x[stages[0].is_treated], x[~stages[0].is_treated])
    out = []
    for arms in stages:
        smd = standardized_difference(mean_difference(x, arms), denominator, arms.enough)
        if not arms.enough:
            out.append((smd, np.nan, np.nan, np.nan))
            continue
        variances = [_reliability_variance(x_arm, *weights) for x_arm, weights in zip(by_arm, arms.variance_weights)]
        controls_vary = not _single_value(by_arm[1][arms.variance_weights[1][0] > 0])
        ratio = variances[0] / variances[1] if controls_vary else np.nan   # no ratio to a constant
        out.append((smd, ratio, *_ecdf_gaps(arms.ecdf_steps[order], last_of_value)))
    return out


def _smd_flagged(smd: float) -> bool:
    return bool(np.isfinite(smd) and abs(smd) >= SMD_THRESHOLD)


def _ratio_flagged(ratio: float) -> bool:
    low, high = VARIANCE_RATIO_BOUNDS
    return bool(np.isfinite(ratio) and not low <= ratio <= high)


def balance_flag(smd_after: float, ratio_after: float) -> str:
    """A balance row's flag text: |SMD| and variance ratio after matching or weighting beyond the thresholds."""
    flags = []
    if _smd_flagged(smd_after):
        flags.append(f"|SMD|>={SMD_THRESHOLD:g}")
    if _ratio_flagged(ratio_after):
        low, high = VARIANCE_RATIO_BOUNDS
        flags.append(f"VR outside [{low:g},{high:g}]")
    return "; ".join(flags)


def _validated(X: pd.DataFrame, treated: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    treated = np.asarray(treated).astype(bool)
    weights = np.asarray(weights, dtype=float)
    if not len(treated) == len(weights) == len(X):
        raise DataError(f"balance needs one treatment flag and one weight per row: {len(X)} rows, "
                        f"{len(treated)} flags, {len(weights)} weights")
    if treated.all() or not treated.any():
        raise DataError("balance needs both treated and control patients; one arm is empty")
    if np.any(~np.isfinite(weights)) or np.any(weights < 0):
        raise DataError("matching weights must be finite and non-negative")
    if weights[treated].sum() == 0 or weights[~treated].sum() == 0:
        raise DataError("no matched patients in one arm: every weight is 0")
    missing = X.columns[X.isna().any().to_numpy()].tolist()
    if missing:
        raise DataError(f"balance cannot be computed on covariates with missing values: {missing}")
    return treated, weights


def balance_table(X: pd.DataFrame, treated: np.ndarray, weights: np.ndarray,
                  binary: set[str] | None = None, estimand: str = "ATT") -> pd.DataFrame:
    """One row per column of X: SMD, variance ratio, eCDF mean/max before and after (weighted) matching
    or weighting.

    ``binary`` names the columns to treat as 0/1 variables; by default MatchIt's rule (all values 0 or 1).
    ``weights`` are the matching or weighting weights for every row of X (0 = not in the sample);
    ``estimand`` chooses the SMD denominator (smd_denominator).
    """
    treated, weights = _validated(X, treated, weights)
    stages = (ArmWeights(treated, np.ones(len(X))), ArmWeights(treated, weights))
    rows = []
    for name in X.columns:
        x = X[name].to_numpy(dtype=float)
        is_bin = is_binary(x) if binary is None else name in binary
        if is_bin and binary is not None and not is_binary(x):
            raise DataError(f"balance: column '{name}' is declared binary but has values other than 0 and 1")
        denominator = smd_denominator(x, treated, is_bin, estimand, weights)
        if is_bin:
            before, after = (_binary_statistics(x, arms, denominator) for arms in stages)
        else:
            before, after = _continuous_statistics(x, stages, denominator)
        rows.append([name, before[0], after[0], before[1], after[1], before[2], before[3], after[2], after[3],
                     balance_flag(after[0], after[1])])
    return pd.DataFrame(rows, columns=COLUMNS)


def balance_failed(balance: pd.DataFrame) -> list[dict]:
    """The covariate columns still imbalanced after matching (|SMD| >= 0.1 or a variance ratio outside
    [0.5, 2]), in the table's order: {variable, smd_after, var_ratio_after} each (empty list: balanced)."""
    failed = [_smd_flagged(smd) or _ratio_flagged(ratio)
              for smd, ratio in zip(balance["smd_after"], balance["var_ratio_after"])]
    return balance.loc[failed, ["variable", "smd_after", "var_ratio_after"]].to_dict("records")
