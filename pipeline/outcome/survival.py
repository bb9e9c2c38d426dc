"""The survival comparison of the matched sample (survival.json), with R `survival` 3.5-3 semantics.

- Each arm's Kaplan-Meier curve (``pipeline.outcome.km``): rows, events, median with CI, survival
  at the landmarks, RMST to tau with its SE.
- The RMST horizon tau: configured, or by default the smaller of the arms' largest follow-up
  times (survRM2's rule).
- Log-rank, hazard ratios, score tests, the headline test, E-value: ``pipeline.outcome.hazard_ratio``.
- Median and RMST differences: a bootstrap over matched sets (``pipeline.outcome.bootstrap``).
What the data cannot estimate (no events, an infinite hazard ratio, ...) is null with a sentence
in ``warnings``; only an empty arm raises NotEstimable.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pandas as pd

from pipeline.errors import DataError, NotEstimable
from pipeline.outcome.bootstrap import bootstrap_differences, gathered_replicates, percentile_interval
from pipeline.outcome.hazard_ratio import compare_hazards, conditional_hr
from pipeline.outcome.km import Z95, KaplanMeier, finite_or_none

TAU_RULE = "smaller of the arms' largest follow-up times"


class Comparison(NamedTuple):
    result: dict                      # survival.json's content
    curves: dict[str, KaplanMeier]    # each arm's fitted curve: treated, control


def rmst_horizon(time, treated, configured=None) -> tuple[float, str]:
    """(tau, rule): the configured RMST horizon, or by default the smaller of the two arms'
    largest follow-up times (survRM2's rule: beyond it one arm's curve is not observed)."""
    if configured is not None:
        return float(configured), "configured"
    time, treated = np.asarray(time, dtype=float), np.asarray(treated, dtype=bool)
    _check_arms(treated)
    return float(min(time[treated].max(), time[~treated].max())), TAU_RULE


def compare_survival(time, event, treated, weight, cluster, *, tau: float | None = None,
                     landmarks: list[float], ci: str, bootstrap: int, seed: int = 0, time_unit: str,
                     cluster_kind: str = "matched set", pair_strata=None, bootstrap_sets=None,
                     bootstrap_replicates=None) -> Comparison:
    """The comparison of the matched sample: survival.json's content (a JSON-ready dict with the keys
    docs/results.md lists: test, score_tests, warnings, conditional_hr, ...) and the arms' curves.

    ``cluster`` is the matched set (without replacement) or the patient (with replacement), as
    ``cluster_kind`` says: the Cox robust variance and the robust score test are clustered on it.
    ``tau``: the configured RMST horizon, None for the default (rmst_horizon); ``ci``: the type
    of the KM confidence band (survival.ci).
    The bootstrap (median and RMST differences) resamples the distinct ``cluster`` values, or,
    with ``bootstrap_sets`` = (row index, set id) pairs from the pairs (matching with
    replacement), the matched sets (see bootstrap_differences). ``bootstrap_replicates``: the
    resamples already computed by bootstrap jobs (bootstrap_differences over bootstrap_shard
    chunks, gathered in order), instead of drawing here.
    ``pair_strata`` (matched-set ids) adds the pair-stratified (conditional) HR.
    The E-value treats the outcome as common when more than 15% of the matched rows have an event.
    Raises NotEstimable only for an empty arm; anything else the data cannot estimate is null,
    with a sentence in ``warnings``.
    """
    time, event, weight, treated = _validated(time, event, weight, treated, cluster)
    tau, tau_rule = rmst_horizon(time, treated, tau)
    warnings = _tau_warnings(time, treated, tau, tau_rule, time_unit)
    rows = {"treated": treated, "control": ~treated}
    curves = {arm: KaplanMeier.fit(time[mask], event[mask], weight[mask], ci) for arm, mask in rows.items()}
    arms = {arm: _arm_summary(curves[arm], event[mask], weight[mask], tau, landmarks)
            for arm, mask in rows.items()}
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
    return Comparison(out, curves)


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


def _arm_summary(curve: KaplanMeier, event, weight, tau, landmarks):
    median, med_lo, med_hi = curve.median()
    rmst, rmst_se = curve.rmst(tau) if tau > 0 else (None, None)
    at = dict(zip(map(_key, landmarks), curve.survival_at(landmarks)))
    return {
        "n": curve.n, "events": curve.events,
        "events_weighted": float(np.sum(weight * event)),
        "ess": float(weight.sum() ** 2 / np.sum(weight ** 2)),
        "last_followup": float(curve.time[-1]),
        "median": median, "median_lower": med_lo, "median_upper": med_hi,
        "rmst": rmst, "rmst_se": rmst_se,
        "survival_at": {k: v.value for k, v in at.items()},
        "survival_at_ci": {k: [v.lower, v.upper] for k, v in at.items()},
    }


def _bootstrap_replicates(time, event, treated, weight, cluster, tau, replicates, seed, sets, gathered):
    """The resamples' differences (structured, BOOTSTRAP_FIELDS): drawn here or gathered from the
    bootstrap jobs; None without a bootstrap."""
    if replicates <= 0:
        return None
    if gathered is None:
        return bootstrap_differences(time, event, treated, weight, cluster, tau=tau,
                                     replicates=replicates, seed=seed, sets=sets)
    return gathered_replicates(gathered, replicates)


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
    independent = {"se_independent": se, "lower_independent": est - Z95 * se,
                   "upper_independent": est + Z95 * se}
    if replicates is None:
        return {"estimate": est, "lower": est - Z95 * se, "upper": est + Z95 * se, "se": se,
                "method": "normal interval with the arms' SEs combined as independent (as survRM2)",
                **independent, "n_bootstrap": 0}
    diffs = replicates["rmst_difference"]
    lower, upper, _ = percentile_interval(diffs)
    return {"estimate": est, "lower": lower, "upper": upper,
            "se": finite_or_none(np.std(diffs, ddof=1)) if len(diffs) > 1 else None,
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

