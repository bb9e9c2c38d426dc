"""Survival comparison of the matched sample, with R `survival` 3.5-3 semantics.

- Kaplan-Meier per arm (``survfit(Surv(time, event) ~ 1, weights = w)``): Greenwood standard
  error when the arm's weights are whole numbers, otherwise R's default for fractional weights,
  the infinitesimal-jackknife (robust) standard error with each row its own cluster.
- Median and its CI: R's ``quantile.survfit`` (first time S(t) <= 0.5, midpoint of a flat stretch
  at exactly 0.5, CI by inverting the pointwise band); ``None`` when not reached.
- RMST and its SE: R's ``print(fit, rmean = tau)``; tau by default the smaller of the arms'
  largest follow-up times (survRM2's rule).
- Log-rank, hazard ratios, score tests and the headline test: see ``pipeline.outcome.hazard_ratio``.
- Median and RMST differences: a bootstrap over matched sets (percentile intervals).
What the data cannot estimate (no events, an infinite hazard ratio, ...) is null with a sentence
in ``warnings``; only an empty arm raises NotEstimable.
All functions are vectorized (sort once, cumulative sums), so 1M rows take about a second.
"""
import numbers
from dataclasses import dataclass

import numba
import numpy as np
import pandas as pd
from scipy import sparse, stats

from pipeline.outcome.cox import group_codes
from pipeline.errors import ConfigError, DataError, NotEstimable
from pipeline.outcome.hazard_ratio import CLUSTER_KINDS, compare_hazards, conditional_hr

CI_TYPES = ("log-log", "log", "plain")
_TOL = np.sqrt(np.finfo(float).eps)   # R: sqrt(.Machine$double.eps)
_Z95 = float(stats.norm.ppf(0.975))
TAU_RULE = "smaller of the arms' largest follow-up times"


@dataclass(frozen=True)
class KMCurve:
    """One Kaplan-Meier curve on the arm's distinct times (events and censorings)."""
    time: np.ndarray
    n_risk: np.ndarray        # weighted
    n_event: np.ndarray       # weighted
    n_risk_count: np.ndarray  # rows at risk (for the numbers-at-risk table)
    surv: np.ndarray
    std_err: np.ndarray       # se of log S (logse) or of S (robust)
    logse: bool
    n: int
    events: int


def kaplan_meier(time, event, weight) -> KMCurve:
    """Weighted KM of one arm (R survfit); n and events are row counts, as R reports them."""
    time, event, weight = (np.asarray(a, dtype=float) for a in (time, event, weight))
    times, idx = np.unique(time, return_inverse=True)
    k = len(times)
    at_time = np.bincount(idx, weight, k)
    n_event = np.bincount(idx, weight * event, k)
    event_rows = np.bincount(idx, event, k)
    n_risk = np.cumsum(at_time[::-1])[::-1]
    n_risk_count = np.cumsum(np.bincount(idx, minlength=k)[::-1])[::-1]
    has_event = (event_rows > 0) & (n_event > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        hazard = np.where(has_event, n_event / n_risk, 0.0)
        greenwood_step = np.where(has_event, n_event / (n_risk * (n_risk - n_event)), 0.0)
    surv = np.cumprod(1.0 - hazard)
    greenwood = np.cumsum(greenwood_step)
    robust = bool(np.any(weight != np.floor(weight)))
    if robust:
        std_err = _jackknife_se(idx, event, weight, surv, greenwood, n_risk - n_event, has_event)
    else:
        std_err = np.sqrt(greenwood)
    return KMCurve(times, n_risk, n_event, n_risk_count, surv, std_err, not robust,
                   n=len(time), events=int(event.sum()))


def _jackknife_se(idx, event, weight, surv, greenwood, survivors, has_event):
    """se(S(t)) from the infinitesimal jackknife, each row its own cluster (R survfitkm.c).

    Row k's influence on S(t) is S(t) w_k [G(min(t, T_k)) - event_k 1{T_k <= t} / (n - d)(T_k)],
    G the Greenwood sum, so the sum of squares splits into rows still at risk after t
    (w^2 G(t)^2) and rows that left at or before t (a fixed amount each). As in R, the value
    is computed at event times and carried over censoring-only times (exactly flat there).
    """
    k = len(surv)
    with np.errstate(divide="ignore", invalid="ignore"):
        own = greenwood[idx] - np.where(event == 1, 1.0 / survivors[idx], 0.0)
    left = np.cumsum(np.bincount(idx, weight ** 2 * own ** 2, k))
    w2_at = np.bincount(idx, weight ** 2, k)
    w2_later = np.cumsum(w2_at[::-1])[::-1] - w2_at
    with np.errstate(invalid="ignore"):
        var = surv ** 2 * (greenwood ** 2 * w2_later + left)
    var = np.where(surv > 0, var, 0.0)
    last_event = np.maximum.accumulate(np.where(has_event, np.arange(k), -1))
    return np.sqrt(np.where(last_event >= 0, var[np.maximum(last_event, 0)], 0.0))


def confidence_band(curve: KMCurve, ci: str, level: float = 0.95):
    """Pointwise band of S(t) (R survfit_confint); NaN where R gives NA or NaN."""
    _check_ci(ci)
    z = stats.norm.ppf(1 - (1 - level) / 2)
    p = curve.surv
    with np.errstate(divide="ignore", invalid="ignore"):
        se = curve.std_err if curve.logse else np.where(curve.std_err == 0, 0.0, curve.std_err / p)
        if ci == "plain":
            half = se * p * z
            return np.maximum(p - half, 0.0), np.minimum(p + half, 1.0)
        if ci == "log":
            logp = np.log(np.where(p == 0, np.nan, p))
            return np.exp(logp - z * se), np.minimum(np.exp(logp + z * se), 1.0)
        xx = np.where((p == 0) | (p == 1), np.nan, p)
        shift = z * se / np.log(xx)
        loglog = np.log(-np.log(xx))
        return np.exp(-np.exp(loglog - shift)), np.exp(-np.exp(loglog + shift))


def r_quantile_time(time, surv_like, p=0.5):
    """Time where a survival-type curve crosses 1 - p, as R's quantile.survfit (findq).

    ``surv_like`` may be S(t) or a band limit (NaN = NA). Returns None when not reached.
    """
    x = np.concatenate(([0.0], np.asarray(time, dtype=float)))
    y = np.concatenate(([0.0], 1.0 - np.asarray(surv_like, dtype=float)))
    if np.nanmax(y) < p:
        return None
    x_last = x[-1]
    keep = ~_duplicated(y)
    x, y = x[keep], y[keep]
    first = _approx_constant_right(y + _TOL, p)
    second = _approx_constant_right(y - _TOL, p)
    if not np.isnan(y[-1]) and abs(p - y[-1]) < _TOL and first is not None:
        return float((x[first] + x_last) / 2)
    if first is None or second is None:
        return None
    return float((x[first] + x[second]) / 2)


def _duplicated(y):
    """R's duplicated(): NaN counts as a value (repeated NaNs are duplicates)."""
    key = np.where(np.isnan(y), np.inf, y)
    _, first = np.unique(key, return_index=True)
    dup = np.ones(len(y), dtype=bool)
    dup[first] = False
    return dup


def _approx_constant_right(xs, p):
    """Index returned by R's approx(xs, seq_along(xs), p, method = "constant", f = 1)."""
    ok = np.flatnonzero(~np.isnan(xs))
    order = ok[np.argsort(xs[ok], kind="stable")]
    sorted_x = xs[order]
    if p < sorted_x[0] or p > sorted_x[-1]:
        return None
    return int(order[np.searchsorted(sorted_x, p, side="left")])


def median_with_ci(curve: KMCurve, lower, upper):
    """(median, lower, upper): the band's limits inverted at 0.5, each None when not reached."""
    return (r_quantile_time(curve.time, curve.surv), r_quantile_time(curve.time, lower),
            r_quantile_time(curve.time, upper))


def restricted_mean(curve: KMCurve, tau: float):
    """RMST up to tau and its SE, as R's print(fit, rmean = tau) (survmean)."""
    keep = curve.time <= tau
    with np.errstate(divide="ignore", invalid="ignore"):
        hh = np.where(curve.n_risk - curve.n_event == 0, 0.0,
                      curve.n_event / (curve.n_risk * (curve.n_risk - curve.n_event)))
    if not keep.any():
        return float(tau), 0.0
    times = np.append(curve.time[keep], tau)
    surv = np.append(curve.surv[keep], curve.surv[keep][-1])
    hh = np.append(hh[keep], 0.0)
    rectangles = np.diff(np.concatenate(([0.0], times))) * np.concatenate(([1.0], surv[:-1]))
    area_after = np.cumsum(rectangles[::-1])[::-1] - rectangles
    return float(rectangles.sum()), float(np.sqrt(np.sum(area_after ** 2 * hh)))


def survival_at(curve: KMCurve, lower, upper, landmarks):
    """S(t) and its band at each landmark, as R's summary(fit, times = landmarks). S(t) is None
    only beyond the arm's last follow-up time (its band may also be None where R gives NA)."""
    out = {}
    for t in landmarks:
        if t > curve.time[-1]:
            out[_key(t)] = (None, None, None)
            continue
        i = np.searchsorted(curve.time, t, side="right") - 1
        if i < 0:
            out[_key(t)] = (1.0, 1.0, 1.0)
        else:
            out[_key(t)] = (float(curve.surv[i]), _num(lower[i]), _num(upper[i]))
    return out


BOOTSTRAP_CHUNK = 32
"""Resamples drawn and summarised together; chunk c draws from default_rng([seed, c]), so the
replicates do not depend on how they are split over jobs."""


BOOTSTRAP_FIELDS = ("median_difference", "rmst_difference")
"""What each bootstrap resample records (the fields of bootstrap_differences' structured array)."""


def bootstrap_shard(replicates: int, shards: int, shard: int, chunk: int = BOOTSTRAP_CHUNK) -> range:
    """The chunks one of `shards` jobs computes: whole chunks, so every split draws the same
    resamples and the gathered differences equal an unsplit run's."""
    n_chunks = -(-replicates // chunk)
    return range(shard * n_chunks // shards, (shard + 1) * n_chunks // shards)


def bootstrap_differences(time, event, treated, weight, cluster, *, tau, replicates, seed, sets=None,
                          chunk=BOOTSTRAP_CHUNK, chunks=None) -> np.ndarray:
    """Treated minus control median and RMST (to ``tau``) of each resample in `chunks` (default:
    all of them), as a structured array with the fields BOOTSTRAP_FIELDS.

    The resampled units are the distinct ``cluster`` values, or, with ``sets`` = (row, set_id)
    membership pairs (matching with replacement: a control row may be in several sets), the
    matched sets: a drawn set brings its treated row and its share of each control's weight
    (1/k of the set, relative to the control's total over its sets).
    A resample's median that is not reached counts as +infinity (beyond follow-up), so a
    difference can be infinite or undefined (NaN). Each resample is a vector of set
    multiplicities, so the arms' weighted at-risk and event totals per distinct time for a chunk
    of resamples are one sparse (time x set) product; both statistics come from the same curves.
    """
    time, event, weight = (np.asarray(a, dtype=float) for a in (time, event, weight))
    treated = np.asarray(treated, dtype=bool)
    rows, set_codes, share = _set_shares(treated, cluster, sets)
    n_sets = int(set_codes.max()) + 1
    times, t_idx = np.unique(time, return_inverse=True)
    k = len(times)
    block = np.where(treated, 0, 2 * k)[rows] + t_idx[rows]   # treated blocks, then control
    entry_weight = weight[rows] * share
    design = sparse.csc_matrix(
        (np.concatenate([entry_weight, entry_weight * event[rows]]),
         (np.concatenate([block, block + k]), np.concatenate([set_codes, set_codes]))),
        shape=(4 * k, n_sets))
    chunks = bootstrap_shard(replicates, 1, 0, chunk) if chunks is None else chunks
    width = min(chunk, replicates)
    tallies = np.empty((width, n_sets), dtype=np.int32)   # reused: no fresh pages per chunk
    counts = np.empty((n_sets, width))
    parts = []
    for c in chunks:
        b = min(chunk, replicates - c * chunk)
        drawn = np.random.default_rng([seed, c]).integers(0, n_sets, size=(b, n_sets))
        _count_draws(drawn, tallies[:b], counts[:, :b])
        totals = design.dot(counts[:, :b])
        part = np.empty(b, dtype=[(name, float) for name in BOOTSTRAP_FIELDS])
        treated_surv = _km_columns(totals[:k], totals[k:2 * k])
        control_surv = _km_columns(totals[2 * k:3 * k], totals[3 * k:])
        with np.errstate(invalid="ignore"):          # both medians not reached: undefined (NaN)
            part["median_difference"] = (_median_columns(times, totals[:k], treated_surv)
                                         - _median_columns(times, totals[2 * k:3 * k], control_surv))
        part["rmst_difference"] = (_rmst_columns(times, treated_surv, tau)
                                   - _rmst_columns(times, control_surv, tau))
        parts.append(part)
    return np.concatenate(parts) if parts else np.empty(0, dtype=[(n, float) for n in BOOTSTRAP_FIELDS])


def percentile_interval(diffs: np.ndarray):
    """(lower, upper, n undefined) of bootstrap differences; an infinite limit is None."""
    defined = diffs[~np.isnan(diffs)]
    if len(defined) == 0:
        return None, None, len(diffs)
    with np.errstate(invalid="ignore"):
        lower, upper = np.quantile(defined, [0.025, 0.975])
    return _num(lower), _num(upper), int(np.isnan(diffs).sum())


@numba.njit(cache=True, nogil=True)
def _count_draws(drawn, tallies, counts):
    """counts[s, r] = how often resample r drew set s (drawn: resamples x draws).

    Tallied one resample at a time into a row of ``tallies`` (its random writes stay within
    one row), then transposed into ``counts``, the (set x resample) layout the sparse product reads.
    """
    n_resamples, n_draws = drawn.shape
    tallies[:] = 0
    for r in range(n_resamples):
        for i in range(n_draws):
            tallies[r, drawn[r, i]] += 1
    for s in range(counts.shape[0]):
        for r in range(n_resamples):
            counts[s, r] = tallies[r, s]


def _set_shares(treated, cluster, sets):
    """Membership entries (row, set code, share of the row's weight the set carries)."""
    n = len(treated)
    if sets is None:
        return np.arange(n), group_codes(cluster), np.ones(n)
    rows, set_ids = (np.asarray(a) for a in sets)
    if len(rows) != len(set_ids) or not np.array_equal(np.unique(rows), np.arange(n)):
        raise DataError("survival: bootstrap sets must list every matched row (0..n-1) in at "
                        "least one matched set")
    set_codes = group_codes(set_ids)
    controls_in_set = np.bincount(set_codes, ~treated[rows])
    raw = np.where(treated[rows], 1.0, 1.0 / np.maximum(controls_in_set[set_codes], 1))
    return rows, set_codes, raw / np.bincount(rows, raw, n)[rows]


def _km_columns(at_time, events):
    """KM survival per column (resample) on the pooled time grid: flat where the arm has no event."""
    n_risk = np.cumsum(at_time[::-1], axis=0)[::-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        hazard = np.where(events > 0, events / n_risk, 0.0)
    return np.cumprod(1.0 - hazard, axis=0)


def _rmst_columns(times, surv, tau):
    """Area under each column's KM step curve up to tau, as R's survmean: S = 1 before the first
    time, S(t_j) on [t_j, t_j+1), the last value carried flat to tau."""
    ends = np.minimum(np.append(times[1:], np.inf), tau)
    return min(times[0], tau) + np.maximum(ends - times, 0.0) @ surv


def _median_columns(times, at_time, surv):
    """KM median per column (resample) on the pooled time grid, R's quantile rule.

    Weights are positive, so a time with weight at risk is a time the arm was observed at.
    """
    first = _first_true(surv <= 0.5 + _TOL)
    second = _first_true(surv <= 0.5 - _TOL)
    observed = at_time > 0
    last_row = observed.shape[0] - 1 - np.argmax(observed[::-1], axis=0)
    end = surv[last_row, np.arange(surv.shape[1])]
    flat_end = (np.abs(end - 0.5) < _TOL) & (end <= 0.5)
    t_first = np.where(first >= 0, times[np.maximum(first, 0)], np.inf)
    t_second = np.where(second >= 0, times[np.maximum(second, 0)], np.inf)
    return (t_first + np.where(flat_end, times[last_row], t_second)) / 2


def _first_true(mask):
    """Row index of the first True per column, -1 when none."""
    return np.where(mask.any(axis=0), np.argmax(mask, axis=0), -1)


def rmst_horizon(time, treated, configured=None) -> tuple[float, str]:
    """(tau, rule): the configured RMST horizon, or by default the smaller of the two arms'
    largest follow-up times (survRM2's rule: beyond it one arm's curve is not observed)."""
    if configured is not None:
        return float(configured), "configured"
    time, treated = np.asarray(time, dtype=float), np.asarray(treated, dtype=bool)
    _check_arms(treated)
    return float(min(time[treated].max(), time[~treated].max())), TAU_RULE


def compare_survival(time, event, treated, weight, cluster, *, tau: float | None = None,
                     landmarks: list[float], ci: str = "log-log", bootstrap: int = 1000, seed: int = 0,
                     time_unit: str = "months", cluster_kind: str = "matched set", pair_strata=None,
                     bootstrap_sets=None, bootstrap_replicates=None) -> dict:
    """The survival stage on the matched sample: a JSON-ready dict with CONTRACT.md's
    survival.json keys (plus test, score_tests, warnings, conditional_hr, ...).

    ``cluster`` is the matched set (without replacement) or the patient (with replacement), as
    ``cluster_kind`` says: the Cox robust variance and the robust score test are clustered on it.
    ``tau``: the configured RMST horizon, None for the default (rmst_horizon).
    The bootstrap (median and RMST differences) resamples the distinct ``cluster`` values, or,
    with ``bootstrap_sets`` = (row index, set id) pairs from pairs.csv (matching with
    replacement), the matched sets (see bootstrap_differences). ``bootstrap_replicates``: the
    resamples already computed by bootstrap jobs (bootstrap_differences over bootstrap_shard
    chunks, gathered in order), instead of drawing here.
    ``pair_strata`` (matched-set ids) adds the pair-stratified (conditional) HR.
    The E-value treats the outcome as common when more than 15% of the matched rows have an event.
    Raises NotEstimable only for an empty arm; anything else the data cannot estimate is null,
    with a sentence in ``warnings``.
    """
    _check_settings(ci, tau, landmarks, cluster_kind)
    time, event, weight, treated = _validated(time, event, weight, treated, cluster)
    tau, tau_rule = rmst_horizon(time, treated, tau)
    warnings = _tau_warnings(time, treated, tau, tau_rule, time_unit)
    arms = {name: _arm_summary(time[mask], event[mask], weight[mask], tau, landmarks, ci)
            for name, mask in (("treated", treated), ("control", ~treated))}
    replicates = _bootstrap_replicates(time, event, treated, weight, cluster, tau, bootstrap, seed,
                                       bootstrap_sets, bootstrap_replicates)
    resampled = "matched sets" if bootstrap_sets is not None or cluster_kind == "matched set" else "patients"
    out = {"estimable": True, **arms}
    out.update(compare_hazards(time, event, treated, weight, cluster, cluster_kind, warnings))
    out.update({
        "rmst_difference": _rmst_difference(arms, replicates, resampled),
        "median_difference": _median_difference(arms, replicates, seed, resampled),
        "tau": tau, "tau_rule": tau_rule, "time_unit": time_unit, "ci": ci,
    })
    if pair_strata is not None:
        out["conditional_hr"] = conditional_hr(time, event, treated, weight, pair_strata, warnings)
    out["warnings"] = warnings
    return out


def _check_ci(ci):
    if ci not in CI_TYPES:
        raise ConfigError(f"survival.ci must be one of {', '.join(CI_TYPES)}; got {ci!r}")


def _check_settings(ci, tau, landmarks, cluster_kind):
    _check_ci(ci)
    if tau is not None and not (_is_number(tau) and tau > 0):
        raise ConfigError(f"survival.rmst_tau must be a positive number or null; got {tau!r}")
    if not all(_is_number(t) and t >= 0 for t in landmarks):
        raise ConfigError(f"survival.landmarks must be numbers >= 0; got {landmarks!r}")
    if cluster_kind not in CLUSTER_KINDS:
        raise ValueError(f"cluster_kind must be one of {CLUSTER_KINDS}; got {cluster_kind!r}")


def _is_number(v):
    return isinstance(v, numbers.Real) and not isinstance(v, bool) and bool(np.isfinite(v))


def _validated(time, event, weight, treated, cluster):
    time, event, weight = (np.asarray(a, dtype=float) for a in (time, event, weight))
    raw_treated = np.asarray(treated)
    lengths = {len(a) for a in (time, event, weight, raw_treated, np.asarray(cluster))}
    if len(lengths) != 1:
        raise DataError("survival: time, event, treated, weight and cluster differ in length")
    if raw_treated.dtype != bool and not np.all(np.isin(raw_treated, (0, 1))):
        raise DataError("survival: treated must be boolean or 0/1 for every matched row")
    if np.any(pd.isna(np.asarray(cluster))):
        raise DataError("survival: cluster (matched set or patient id) is missing for some rows")
    treated = raw_treated.astype(bool)
    if not (np.all(np.isfinite(time)) and np.all(time >= 0)):
        raise DataError("survival: time must be finite and >= 0 for every matched row")
    if not np.all(np.isin(event, (0, 1))):
        raise DataError("survival: event must be 0 or 1")
    if not np.all(weight > 0):
        raise DataError("survival: the matched sample must have weight > 0 on every row")
    _check_arms(treated)
    return time, event, weight, treated


def _check_arms(treated):
    for name, rows in (("treated", treated.sum()), ("control", (~treated).sum())):
        if rows == 0:
            raise NotEstimable(f"the matched sample has no {name} patients, so there is nothing to compare")


def _tau_warnings(time, treated, tau, tau_rule, unit):
    """Sentences on an RMST horizon the data do not support."""
    if tau == 0:
        return ["One arm's follow-up ends at time 0, so the RMST horizon is 0 and the RMSTs are not "
                "estimated."]
    if tau_rule != "configured":
        return []
    out = []
    for name, mask in (("treated", treated), ("control", ~treated)):
        last = time[mask].max()
        if tau > last:
            out.append(f"survival.rmst_tau ({tau:g} {unit}) is beyond the {name} arm's last follow-up "
                       f"({last:g} {unit}): its RMST extends the last survival estimate flat to tau, an "
                       "extrapolation (survRM2 refuses such a tau; by default the horizon is the "
                       f"{TAU_RULE}).")
    return out


def _arm_summary(time, event, weight, tau, landmarks, ci):
    curve = kaplan_meier(time, event, weight)
    lower, upper = confidence_band(curve, ci)
    median, med_lo, med_hi = median_with_ci(curve, lower, upper)
    rmst, rmst_se = restricted_mean(curve, tau) if tau > 0 else (None, None)
    at = survival_at(curve, lower, upper, landmarks)
    return {
        "n": curve.n, "events": curve.events,
        "events_weighted": float(np.sum(weight * event)),
        "ess": float(weight.sum() ** 2 / np.sum(weight ** 2)),
        "last_followup": float(curve.time[-1]),
        "median": median, "median_lower": med_lo, "median_upper": med_hi,
        "rmst": rmst, "rmst_se": rmst_se,
        "survival_at": {k: v[0] for k, v in at.items()},
        "survival_at_ci": {k: [v[1], v[2]] for k, v in at.items()},
    }


def _bootstrap_replicates(time, event, treated, weight, cluster, tau, replicates, seed, sets, gathered):
    """The resamples' differences (structured, BOOTSTRAP_FIELDS): drawn here or gathered from the
    bootstrap jobs; None without a bootstrap."""
    if replicates <= 0:
        return None
    if gathered is None:
        return bootstrap_differences(time, event, treated, weight, cluster, tau=tau,
                                     replicates=replicates, seed=seed, sets=sets)
    gathered = np.asarray(gathered)
    if gathered.dtype.names != BOOTSTRAP_FIELDS:
        raise DataError("survival: the gathered bootstrap replicates lack the fields "
                        f"{', '.join(BOOTSTRAP_FIELDS)}; rerun the bootstrap jobs")
    if len(gathered) != replicates:
        raise DataError(f"survival: {len(gathered)} gathered bootstrap replicates, expected {replicates}")
    return gathered


def _rmst_difference(arms, replicates, resampled):
    """Treated minus control RMST. With bootstrap replicates the interval is their percentile
    interval and se their SD (the matched-set resamples respect the matching); the independent
    SE (the arms' SEs combined as if independent, as survRM2) is kept beside it."""
    t, c = arms["treated"], arms["control"]
    if t["rmst"] is None:
        return {"estimate": None, "lower": None, "upper": None, "se": None, "method": "not estimated",
                "se_independent": None, "lower_independent": None, "upper_independent": None,
                "n_bootstrap": 0}
    est = t["rmst"] - c["rmst"]
    se = float(np.hypot(t["rmst_se"], c["rmst_se"]))
    independent = {"se_independent": se, "lower_independent": est - _Z95 * se,
                   "upper_independent": est + _Z95 * se}
    if replicates is None:
        return {"estimate": est, "lower": est - _Z95 * se, "upper": est + _Z95 * se, "se": se,
                "method": "normal interval with the arms' SEs combined as independent (as survRM2)",
                **independent, "n_bootstrap": 0}
    diffs = replicates["rmst_difference"]
    lower, upper, _ = percentile_interval(diffs)
    return {"estimate": est, "lower": lower, "upper": upper,
            "se": _num(np.std(diffs, ddof=1)) if len(diffs) > 1 else None,
            "method": f"percentile interval of {len(diffs)} bootstrap resamples of the {resampled}; "
                      "se = their standard deviation",
            **independent, "n_bootstrap": len(diffs)}


def _median_difference(arms, replicates, seed, resampled):
    t, c = arms["treated"]["median"], arms["control"]["median"]
    estimate = None if t is None or c is None else t - c
    if replicates is None:
        return {"estimate": estimate, "lower": None, "upper": None, "n_bootstrap": 0}
    diffs = replicates["median_difference"]
    lower, upper, undefined = percentile_interval(diffs)
    return {"estimate": estimate, "lower": lower, "upper": upper, "n_bootstrap": len(diffs),
            "n_bootstrap_undefined": undefined,
            "n_bootstrap_without_median": int(np.sum(~np.isfinite(diffs))), "seed": seed,
            "resampled": resampled}


def _key(t):
    return f"{float(t):g}"


def _num(v):
    return None if v is None or not np.isfinite(v) else float(v)
