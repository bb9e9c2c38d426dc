"""What every matching method shares: the result type, the distance matched on, common support and
the caliper in distance units.

A method (one module, registered in pipeline.design.matching.METHODS) turns the distance into a
match matrix, as MatchIt's ``matchit2<method>`` does: one row per treated unit, one column per
slot, the matched control's index or NO_MATCH. ``match_result`` turns that matrix into the
MatchResult every method returns (pairs, MatchIt's weights and subclasses, counts).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pandas as pd

from pipeline.config.settings import Matching
from pipeline.errors import DataError

NO_MATCH = -1


@dataclass(frozen=True)
class MatchResult:
    """Matched sets of one matching run.

    ``pairs`` has one row per (treated, control) pair with columns ``treated_index``,
    ``control_index`` (positional indices into the inputs), ``slot`` (1..ratio, the column of
    MatchIt's match matrix) and ``distance_diff`` (absolute distance difference); rows are sorted by
    treated unit in data order, then slot. ``subclass`` numbers the matched sets 1..n in the data
    order of their treated unit, as MatchIt; 0 = not matched, and 0 for everyone with replacement.
    ``caliper_raw`` is the caliper in distance units (None without one); ``counts`` are the
    matching's own counts (matched, unmatched, discarded per arm); ``details`` what else a method
    reports in matching.json (optimal and full matching: the total distance of the solution and
    how far above the exact optimum it may lie at most).
    """

    pairs: pd.DataFrame
    weights: np.ndarray
    subclass: np.ndarray
    caliper_raw: float | None
    counts: dict
    details: dict = field(default_factory=dict)


@dataclass(frozen=True)
class MatchingMethod:
    """A matching method as the registry holds it.

    ``match(distance, treated, exact, discarded, matching, seed)``: ``distance`` per unit,
    ``treated`` and ``discarded`` (common support) booleans, ``exact`` one integer stratum code per
    unit (None without exact matching), ``matching`` the analysis's Matching settings. A method
    that supports ``matching.distance: mahalanobis`` also takes ``features=`` (one row per unit
    whose Euclidean distances are the Mahalanobis distances; pipeline.design.matching.mahalanobis).
    ``describe(matching, caliper_raw)``: the sentence of the report's methods paragraph.
    """

    match: Callable[[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray, Matching, int], MatchResult]
    describe: Callable[[Matching, float | None], str]


# ---------------------------------------------------------------------------------------------
# distance, common support, caliper


def distance_from_ps(ps: np.ndarray, scale: str) -> np.ndarray:
    """The matching distance: the PS itself (``ps``) or R's ``qlogis(ps)`` = log(ps / (1 - ps))."""
    ps = np.asarray(ps, dtype=np.float64)
    if np.isnan(ps).any() or (ps < 0).any() or (ps > 1).any():
        raise DataError("propensity scores must lie in [0, 1] and not be missing")
    if scale == "ps":
        return ps.copy()
    if ((ps == 0) | (ps == 1)).any():
        raise DataError("propensity scores of exactly 0 or 1 have no logit; use caliper_scale: ps")
    return np.log(ps / (1.0 - ps))


def matching_distance(ps: np.ndarray, scale: str) -> tuple[np.ndarray, np.ndarray]:
    """The distance to match on, and which patients cannot be matched on it: on the logit scale a
    score of exactly 0 or 1 (separation) has no finite distance, so those patients (distance
    -inf/+inf) are discarded, as patients without a comparable counterpart."""
    unmatchable = ((ps <= 0) | (ps >= 1)) if scale == "logit" else np.zeros(len(ps), dtype=bool)
    distance = np.where(ps >= 1, np.inf, -np.inf)
    distance[~unmatchable] = distance_from_ps(ps[~unmatchable], scale)
    return distance, unmatchable


def common_support(ps: np.ndarray, treated: np.ndarray, discard: str) -> np.ndarray:
    """Units outside the other group's score range (MatchIt's ``discard``); True = discarded.

    MatchIt compares the *distance* it matches on (the logit when matching on the logit), with
    strict inequalities: a unit exactly at the other group's minimum or maximum is kept. Because
    the logit is monotone, passing the PS or its logit gives the same result.
    """
    ps = np.asarray(ps, dtype=np.float64)
    treated = as_bool(treated, "treated")
    if discard == "none":
        return np.zeros(len(ps), dtype=bool)
    if treated.all() or not treated.any():
        raise DataError("common support needs both treated and control units")

    def outside(arm: np.ndarray) -> np.ndarray:
        return (ps < ps[arm].min()) | (ps > ps[arm].max())

    treated_outside = treated & outside(~treated)
    controls_outside = ~treated & outside(treated)
    return {"both": treated_outside | controls_outside, "treated": treated_outside,
            "control": controls_outside}[discard]


def caliper_in_distance_units(distance: np.ndarray, discarded: np.ndarray, caliper: float | None,
                              std_caliper: bool) -> float | None:
    """The caliper in raw distance units: ``caliper * sd(distance[!discarded])`` when standardised.

    The SD follows R's ``sd``: n - 1 denominator, a corrected two-pass mean and long-double sums.
    """
    if caliper is None:
        return None
    if not std_caliper:
        return float(caliper)
    kept = distance[~discarded]
    if len(kept) < 2:
        raise DataError("the caliper's SD needs at least two non-discarded units")
    return float(caliper) * _r_sd(kept)


def _r_sd(x: np.ndarray) -> float:
    n = len(x)
    mean = np.sum(x, dtype=np.longdouble) / n
    mean = mean + np.sum(x - mean, dtype=np.longdouble) / n
    centred = x - np.float64(mean)
    return float(np.sqrt(np.float64(np.sum(centred * centred, dtype=np.longdouble) / (n - 1))))


def validated_inputs(distance, treated, exact, discarded):
    """The matching inputs as arrays of the right types and lengths (DataError otherwise)."""
    distance = np.ascontiguousarray(distance, dtype=np.float64)
    n = len(distance)
    treated = as_bool(treated, "treated")
    discarded = np.zeros(n, dtype=bool) if discarded is None else as_bool(discarded, "discarded")
    exact = np.zeros(n, dtype=np.int64) if exact is None else np.asarray(exact)
    if exact.dtype.kind not in "iu":
        raise DataError("exact stratum codes must be integers")
    for name, arr in (("treated", treated), ("discarded", discarded), ("exact", exact)):
        if len(arr) != n:
            raise DataError(f"{name} has {len(arr)} values but the distance has {n}")
    if np.isnan(distance).any() or not np.isfinite(distance[~discarded]).all():
        raise DataError("the matching distance is missing, or infinite for a unit that is not discarded")
    return distance, treated, exact.astype(np.int64), discarded


def caliper_phrase(matching: Matching, caliper_raw: float | None) -> str:
    """The caliper in words, for a method's sentence."""
    if matching.caliper is None:
        return "no caliper"
    raw_width = "" if caliper_raw is None else f" (raw width {caliper_raw:.4f})"
    if matching.std_caliper:
        return f"a caliper of {matching.caliper} SD of the {matching.caliper_scale} of the propensity score{raw_width}"
    return f"a caliper of {matching.caliper} on the {matching.caliper_scale} scale{raw_width}"


def exact_phrase(matching: Matching) -> str:
    """The exact-matching variables in words (empty when there are none)."""
    return f", exactly within {', '.join(matching.exact)}" if matching.exact else ""


def distance_phrase(matching: Matching) -> str:
    """What the patients were matched on, in words (empty for the propensity score, which the
    caliper sentence already names)."""
    if matching.distance != "mahalanobis":
        return ""
    covariates = ", ".join(matching.mahalanobis) if matching.mahalanobis else "the analysis covariates"
    return (f" on the Mahalanobis distance of {covariates} (pooled within-arm covariance, as MatchIt), "
            "the caliper applying to the propensity score")


def as_bool(values, name: str) -> np.ndarray:
    arr = np.asarray(values)
    if arr.dtype != bool:
        if not np.isin(arr, (0, 1)).all():
            raise DataError(f"{name} must be boolean or 0/1")
        arr = arr.astype(bool)
    return arr


# ---------------------------------------------------------------------------------------------
# the result


def match_result(match_matrix: np.ndarray, treated: np.ndarray, discarded: np.ndarray, distance: np.ndarray,
                 replace: bool, caliper_raw: float | None) -> MatchResult:
    """The MatchResult of a match matrix (one row per treated unit in data order, ``ratio`` slots
    holding a control's index or NO_MATCH), with MatchIt's weights: a matched treated unit 1, a
    control the sum over its sets of 1 / (controls in the set), rescaled to mean 1 over the
    matched controls."""
    treated_idx = np.flatnonzero(treated)
    rows, slots = np.nonzero(match_matrix != NO_MATCH)
    t_index = treated_idx[rows]
    c_index = match_matrix[rows, slots]
    pairs = pd.DataFrame({
        "treated_index": t_index,
        "control_index": c_index,
        "slot": slots + 1,
        "distance_diff": np.abs(distance[t_index] - distance[c_index]),
    })
    set_sizes = (match_matrix != NO_MATCH).sum(axis=1)
    weights = np.zeros(len(treated))
    weights[treated_idx[set_sizes > 0]] = 1.0
    if replace:
        np.add.at(weights, c_index, 1.0 / set_sizes[rows])
    else:
        weights[c_index] = 1.0 / set_sizes[rows]
    used = ~treated & (weights > 0)
    weights[used] = used.sum() * weights[used] / weights[used].sum()
    subclass = np.zeros(len(treated), dtype=np.int64)
    if not replace:
        set_id = np.cumsum(set_sizes > 0)
        subclass[treated_idx[set_sizes > 0]] = set_id[set_sizes > 0]
        subclass[c_index] = set_id[rows]
    return MatchResult(pairs, weights, subclass, caliper_raw, _counts(treated, discarded, set_sizes, used))


def _counts(treated, discarded, set_sizes, used) -> dict:
    """The matching's own counts (the cohort's arm sizes are in cohort.json)."""
    matched = int((set_sizes > 0).sum())
    n_discarded_treated = int((treated & discarded).sum())
    return {
        "n_treated_matched": matched,
        "n_treated_unmatched": int(treated.sum()) - matched - n_discarded_treated,
        "n_controls_matched": int(used.sum()),
        "n_discarded_treated": n_discarded_treated,
        "n_discarded_control": int((~treated & discarded).sum()),
    }


def result_from_sets(t_index: np.ndarray, c_index: np.ndarray, set_key: np.ndarray, treated: np.ndarray,
                     discarded: np.ndarray, distance: np.ndarray, caliper_raw: float | None,
                     details: dict | None = None) -> MatchResult:
    """The MatchResult of matched sets given as pairs (treated and control data indices and any
    integer key of the set each pair belongs to; every patient in one set).

    Sets are numbered 1..n in the data order of their first treated patient; a pair's slot is
    the control's rank among its treated patient's controls in data order. Weights as MatchIt's
    ``get_weights_from_subclass`` for the ATT: treated 1, a control (treated / controls) of its
    set, rescaled to mean 1 over the matched controls (MatchIt's ``normalize``)."""
    order = np.lexsort((c_index, t_index))
    t_index, c_index, set_key = t_index[order], c_index[order], set_key[order]
    keys, set_of_pair = np.unique(set_key, return_inverse=True)
    first_treated = np.full(len(keys), np.iinfo(np.int64).max)
    np.minimum.at(first_treated, set_of_pair, t_index)
    number = np.empty(len(keys), dtype=np.int64)
    number[np.argsort(first_treated, kind="stable")] = np.arange(1, len(keys) + 1)
    subclass = np.zeros(len(treated), dtype=np.int64)
    subclass[t_index] = number[set_of_pair]
    subclass[c_index] = number[set_of_pair]
    members = subclass > 0
    n_treated = np.bincount(subclass[members & treated], minlength=len(keys) + 1)
    n_controls = np.bincount(subclass[members & ~treated], minlength=len(keys) + 1)
    weights = np.zeros(len(treated))
    weights[members & treated] = 1.0
    used = members & ~treated
    weights[used] = n_treated[subclass[used]] / n_controls[subclass[used]]
    weights[used] = used.sum() * weights[used] / weights[used].sum() if used.any() else 0.0
    slot = np.ones(len(t_index), dtype=np.int64)
    if len(t_index):
        starts = np.r_[True, t_index[1:] != t_index[:-1]]
        run_start = np.maximum.accumulate(np.where(starts, np.arange(len(t_index)), 0))
        slot = np.arange(len(t_index)) - run_start + 1
    pairs = pd.DataFrame({"treated_index": t_index, "control_index": c_index, "slot": slot,
                          "distance_diff": np.abs(distance[t_index] - distance[c_index])})
    matched_treated = np.zeros(int(treated.sum()), dtype=np.int64)
    matched_treated[np.searchsorted(np.flatnonzero(treated), np.unique(t_index))] = 1
    return MatchResult(pairs, weights, subclass, caliper_raw,
                       _counts(treated, discarded, matched_treated, used), details or {})
