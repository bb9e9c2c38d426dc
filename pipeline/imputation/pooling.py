"""An imputed analysis's results from its imputations' (missing: multiple_imputation).

Every imputation's completed cohort runs the usual stages (propensity, matching or weighting,
balance, survival). Here they are combined into the analysis's own result files:

- propensity: each patient's score averaged over the imputations (MatchThem's "across" approach
  matches on it; with "within" it is what the overlap figure shows);
- matched sample ("within"): the imputations' matched samples stacked, with their counts as the
  median over the imputations (each imputation's in ``imputations``);
- balance: each covariate's statistics averaged over the imputations (as cobalt does for
  imputed data) with the range of its SMD; Table 1 of the observed values, each patient weighted
  by their matching weight averaged over the imputations;
- survival: log hazard ratio, RMST and its difference by Rubin's rules with Barnard-Rubin degrees
  of freedom (``rubin``); survival at the landmarks on the complementary log-log scale; medians
  as the median over the imputations.

An imputation whose analysis was not estimable is left out of every pool and named with its
reason; the analysis is not estimable only when fewer imputations remain than a pool needs.
"""
from __future__ import annotations

import math
from collections import defaultdict

import numpy as np
import pandas as pd

from pipeline.config.settings import PropensityDesign, Survival
from pipeline.design.balance import COLUMNS as BALANCE_COLUMNS
from pipeline.design.balance import balance_failed, balance_flag
from pipeline.design.matching.common import common_support, matching_distance
from pipeline.design.propensity.diagnostics import ps_diagnostics
from pipeline.design.stages import ARM_NAMES, matching_weights
from pipeline.errors import NotEstimable
from pipeline.imputation.rubin import pool_scalar
from pipeline.outcome.hazard_ratio import COMMON_OUTCOME, e_value
from pipeline.outcome.km import KaplanMeier
from pipeline.outcome.power import power_summary

POOLING = ("hazard ratio and RMST by Rubin's rules (Barnard-Rubin degrees of freedom); survival at the landmarks "
           "on the complementary log-log scale; medians, counts and the median difference's interval are the "
           "median over the imputations; the log-rank and score tests are not pooled (the headline test is the "
           "Wald test of the pooled log hazard ratio)")
SMD_RANGE_COLUMNS = ["smd_before_min", "smd_before_max", "smd_after_min", "smd_after_max"]


def usable_imputations(records: list[dict], what: str) -> tuple[list[int], list[str]]:
    """(positions of the estimable imputations, a sentence per one that is not); NotEstimable when
    none is."""
    usable = [i for i, record in enumerate(records) if record.get("estimable", True)]
    notes = [f"imputation {i + 1}: {what} not estimable ({record['stage']}: {record['reason']})"
             for i, record in enumerate(records) if not record.get("estimable", True)]
    if not usable and len({record["reason"] for record in records}) == 1:
        raise NotEstimable(f"{records[0]['reason']} (in every imputation, stage {records[0]['stage']})")
    if not usable:
        raise NotEstimable(f"no imputation's {what} is estimable (imputation 1, {records[0]['stage']}: "
                           f"{records[0]['reason']})")
    return usable, notes


def _labelled(per_imputation: list[list[str]], positions: list[int]) -> list[str]:
    """Each distinct sentence once, with the imputations that gave it."""
    where = defaultdict(list)
    for position, sentences in zip(positions, per_imputation):
        for sentence in sentences:
            where[sentence].append(str(position + 1))
    return [f"imputation{'s' if len(i) > 1 else ''} {', '.join(i)}: {s}" for s, i in where.items()]


# --- propensity -----------------------------------------------------------------------------------

def average_propensity(cohort: pd.DataFrame, scores: list[pd.DataFrame], summaries: list[dict],
                       design: PropensityDesign, approach: str) -> tuple[pd.DataFrame, dict]:
    """propensity.parquet and propensity.json of an imputed analysis: the scores averaged over the
    estimable imputations, with its matching distance and common-support discards."""
    usable, notes = usable_imputations(summaries, "propensity model")
    treated = cohort["treated"].to_numpy(bool)
    ps = np.mean([scores[i]["ps"].to_numpy(float) for i in usable], axis=0)
    distance, unmatchable = matching_distance(ps, design.caliper_scale)
    discarded = common_support(ps, treated, design.discard) | unmatchable
    frame = pd.DataFrame({"patient_id": cohort["patient_id"].to_numpy(),
                          "group": np.where(treated, ARM_NAMES[True], ARM_NAMES[False]),
                          "ps": ps, "distance": distance, "discarded": discarded})
    fitted = [summaries[i] for i in usable]
    names = [name for name in fitted[0]["coefficients"] if all(name in s["coefficients"] for s in fitted)]
    summary = {
        "estimable": True,
        "model": fitted[0]["model"],
        "converged": all(s["converged"] for s in fitted),
        "warnings": _labelled([s["warnings"] for s in fitted], usable) + notes,
        "coefficients": {name: _mean_or_none([s["coefficients"][name] for s in fitted]) for name in names},
        "n_score_0_or_1": int(unmatchable.sum()),
        "diagnostics_before": ps_diagnostics(ps, treated),
        "imputation": {"m": len(summaries), "approach": approach, "pooled": [i + 1 for i in usable],
                       "scores": "each patient's score averaged over the imputations"},
    }
    return frame, summary


def _mean_or_none(values):
    return None if any(v is None for v in values) else float(np.mean(values))


# --- the matched samples of the approach "within" -----------------------------------------------

def stack_matches(matched: list[pd.DataFrame], pairs: list[pd.DataFrame], summaries: list[dict]
                  ) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """matched.parquet, pairs.parquet (each imputation's rows with its number in ``imputation``) and
    matching.json (counts: the median over the estimable imputations; each one's in ``imputations``)."""
    usable, notes = usable_imputations(summaries, "matching")
    stacked = pd.concat([matched[i].assign(imputation=i + 1) for i in usable], ignore_index=True)
    stacked_pairs = pd.concat([pairs[i].assign(imputation=i + 1) for i in usable], ignore_index=True)
    summary = {**median_summary([summaries[i] for i in usable]), "estimable": True,
               "imputations": [{"imputation": i + 1, **summary} for i, summary in enumerate(summaries)],
               "imputation_notes": notes,
               "counts": "median over the imputations whose matching is estimable"}
    return stacked, stacked_pairs, summary


def median_summary(summaries: list[dict]):
    """Numbers as their median over the summaries (whole numbers stay whole: the lower median), other
    values as the first summary's."""
    first = summaries[0]
    if isinstance(first, dict):
        return {key: median_summary([s.get(key) for s in summaries]) for key in first}
    if isinstance(first, bool) or not isinstance(first, (int, float)) or any(v is None for v in summaries):
        return first
    if all(isinstance(v, int) for v in summaries):
        return int(np.sort(summaries)[(len(summaries) - 1) // 2])
    return float(np.median(summaries))


# --- balance --------------------------------------------------------------------------------------

def average_weights(cohort: pd.DataFrame, matched: list[pd.DataFrame]) -> np.ndarray:
    """Each cohort patient's matching (or weighting) weight averaged over the matched samples."""
    return np.mean([matching_weights(cohort, sample) for sample in matched], axis=0)


def pool_balance(tables: list[pd.DataFrame], summaries: list[dict]) -> tuple[pd.DataFrame, dict]:
    """balance.csv (per covariate column: the imputations' mean of each statistic, its flag, and the
    range of the SMDs) and balance.json's pooled part, from the estimable imputations."""
    usable, notes = usable_imputations(summaries, "balance")
    stacked = pd.concat([tables[i] for i in usable], ignore_index=True)
    grouped = stacked.groupby("variable", sort=False)
    statistics = [c for c in BALANCE_COLUMNS if c not in ("variable", "flag")]
    pooled = grouped[statistics].mean().reset_index()
    pooled["flag"] = [balance_flag(s, r) for s, r in zip(pooled["smd_after"], pooled["var_ratio_after"])]
    for stage in ("before", "after"):
        pooled[f"smd_{stage}_min"] = grouped[f"smd_{stage}"].min().to_numpy()
        pooled[f"smd_{stage}_max"] = grouped[f"smd_{stage}"].max().to_numpy()
    per_imputation = [summaries[i]["max_abs_smd_after"] for i in usable]
    summary = {
        "estimable": True,
        "failed": balance_failed(pooled),
        "warnings": _labelled([summaries[i]["warnings"] for i in usable], usable) + notes,
        "max_abs_smd_before": _largest(pooled["smd_before"]),
        "max_abs_smd_after": _largest(pooled["smd_after"]),
        "imputation": {
            "m": len(summaries), "pooled": [i + 1 for i in usable],
            "statistics": "each covariate's statistics averaged over the imputations",
            "max_abs_smd_after": per_imputation,
            "max_abs_smd_after_range": [min(per_imputation), max(per_imputation)],
            "n_failed": [len(summaries[i]["failed"]) for i in usable],
        },
    }
    return pooled[[*BALANCE_COLUMNS, *SMD_RANGE_COLUMNS]], summary


def _largest(values: pd.Series) -> float | None:
    magnitudes = values.abs().dropna()
    return float(magnitudes.max()) if len(magnitudes) else None


# --- survival -------------------------------------------------------------------------------------

def pool_survival(results: list[dict], curves: list[dict[str, KaplanMeier] | None], survival: Survival,
                  approach: str, relevant_hr: float) -> dict:
    """survival.json of an imputed analysis from its imputations' (``results``) and their fitted
    curves (``curves``, None for an imputation that is not estimable): survival.json's keys, pooled,
    and ``imputation`` with the per-imputation log hazard ratios and the fraction of missing
    information."""
    usable, notes = usable_imputations(results, "survival comparison")
    if len(usable) < 2:
        raise NotEstimable(f"only imputation {usable[0] + 1} of {len(results)} has an estimable survival comparison; "
                           f"Rubin's rules need two ({'; '.join(notes)})")
    fitted = [results[i] for i in usable]
    first = fitted[0]
    warnings = _labelled([r["warnings"] for r in fitted], usable) + notes
    landmarks = dict(zip(first["treated"]["survival_at"], survival.landmarks))   # key -> time, as the stage wrote
    arms = {arm: _pool_arm([r[arm] for r in fitted], [curves[i][arm] for i in usable], landmarks,
                           first["tau"] if _same_tau(fitted) else None) for arm in ("treated", "control")}
    hazard = _pool_hazard_ratio(fitted, usable, len(results), warnings)
    out = {"estimable": True, **arms}
    out.update({
        "logrank_chisq": None, "logrank_p": None,
        "test": hazard.pop("test"),
        "score_tests": {"naive_chisq": None, "naive_p": None, "robust_chisq": None, "robust_p": None,
                        "cluster": first["score_tests"]["cluster"]},
        **hazard,
        "rmst_difference": _pool_rmst_difference(fitted, warnings),
        "median_difference": _median_difference(arms, fitted),
        "tau": first["tau"], "tau_rule": first["tau_rule"], "time_unit": first["time_unit"], "ci": first["ci"],
    })
    out["e_value"] = _e_value(out, fitted)
    out["power"] = power_summary(out, relevant_hr)
    out["imputation"] = {**out.pop("imputation"), "approach": approach, "pooling": POOLING}
    out["warnings"] = warnings
    return out


def _rubin(estimates, ses):
    """Rubin's rules (infinite complete-data df), or None where an imputation has no estimate or no
    positive SE (e.g. an RMST with no event before tau: then there is no interval to pool)."""
    if any(q is None for q in estimates) or any(se is None or not se > 0 for se in ses):
        return None
    return pool_scalar(estimates, [se ** 2 for se in ses])


def _same_tau(results: list[dict]) -> bool:
    return len({r["tau"] for r in results}) == 1


def _median(values):
    """The median of values where None means "not reached" (infinite); None when it is."""
    finite = np.array([math.inf if v is None else v for v in values], dtype=float)
    middle = float(np.median(finite))
    return None if math.isinf(middle) or math.isnan(middle) else middle


def _pool_arm(arms: list[dict], curves: list[KaplanMeier], landmarks: dict[str, float], tau) -> dict:
    counts = median_summary([{k: a[k] for k in ("n", "events", "events_weighted", "ess", "last_followup")}
                             for a in arms])
    out = {**counts, **{key: _median([a[key] for a in arms]) for key in ("median", "median_lower", "median_upper")}}
    pooled = None if tau is None else _rubin([a["rmst"] for a in arms], [a["rmst_se"] for a in arms])
    out.update(rmst=None if pooled is None else pooled.estimate, rmst_se=None if pooled is None else pooled.se)
    at = {key: pooled_survival(curves, t) for key, t in landmarks.items()}
    out["survival_at"] = {k: v[0] for k, v in at.items()}
    out["survival_at_ci"] = {k: [v[1], v[2]] for k, v in at.items()}
    return out


def pooled_survival(curves: list[KaplanMeier], t: float) -> tuple[float | None, float | None, float | None]:
    """S(t) and its 95% CI pooled over the imputations' curves by Rubin's rules on log(-log S(t))
    (normal within each imputation, Barnard-Rubin df with infinite complete-data df). S(t) exactly 0
    or 1 in an imputation has no such scale: then the median over the imputations, without a CI;
    None beyond an imputation's follow-up."""
    estimates = [_cloglog_at(curve, t) for curve in curves]
    if any(e is None for e in estimates):
        return None, None, None
    values = [s for s, _, _ in estimates]
    if any(v is None for _, v, _ in estimates):
        return float(np.median(values)), None, None
    pooled = pool_scalar([c for _, _, c in estimates], [v for _, v, _ in estimates])
    lower, upper = pooled.interval()
    back = lambda c: float(np.exp(-np.exp(c)))  # noqa: E731
    return back(pooled.estimate), back(upper), back(lower)


def _cloglog_at(curve: KaplanMeier, t: float):
    """(S(t), variance of log(-log S(t)) or None, log(-log S(t))), None beyond the follow-up."""
    if t > curve.time[-1]:
        return None
    i = np.searchsorted(curve.time, t, side="right") - 1
    if i < 0:
        return 1.0, None, None
    s, se = float(curve.surv[i]), float(curve.std_err[i])
    if not 0 < s < 1 or not np.isfinite(se):
        return s, None, None
    log_s = math.log(s)
    se_log_s = se if curve.logse else se / s          # the robust SE is of S itself
    return s, (se_log_s / log_s) ** 2, math.log(-log_s)


def _pool_hazard_ratio(results: list[dict], usable: list[int], m: int, warnings: list) -> dict:
    """The marginal hazard ratio by Rubin's rules on the log scale; dfcom as mice::pool for a Cox
    model: the events of the first pooled imputation's model minus its one coefficient."""
    log_hr = [None] * m
    log_hr_se = [None] * m
    for i, r in zip(usable, results):
        if r["hr"] is not None and r["hr_robust_se"] is not None:
            log_hr[i], log_hr_se[i] = math.log(r["hr"]), r["hr_robust_se"]
    have = [i for i in range(m) if log_hr[i] is not None]
    first = results[0]
    out = {"hr": None, "hr_lower": None, "hr_upper": None, "hr_p": None, "hr_robust_se": None,
           "hr_cluster": first["hr_cluster"],
           "hr_method": f"Rubin's rules on the log hazard ratios of the imputations' {first['hr_method']}",
           "test": {"method": "pooled_wald", "label": "Wald test of the pooled log hazard ratio (Rubin's rules, "
                    "Barnard-Rubin degrees of freedom)", "chisq": None, "df": 1, "p": None,
                    "cluster": first["hr_cluster"]},
           "imputation": {"m": m, "log_hr": log_hr, "log_hr_se": log_hr_se, "fmi": None}}
    if len(have) < 2:
        warnings.append(f"The pooled hazard ratio is not estimated: {len(have)} of {m} imputations have a "
                        "hazard ratio with a standard error (Rubin's rules need two).")
        return out
    events = results[usable.index(have[0])]
    dfcom = max(events["treated"]["events"] + events["control"]["events"] - 1, 1)
    pooled = pool_scalar([log_hr[i] for i in have], [log_hr_se[i] ** 2 for i in have], dfcom)
    lower, upper = pooled.interval()
    out.update(hr=math.exp(pooled.estimate), hr_lower=math.exp(lower), hr_upper=math.exp(upper), hr_p=pooled.p,
               hr_robust_se=pooled.se)
    out["test"].update(chisq=(pooled.estimate / pooled.se) ** 2, p=pooled.p)
    out["imputation"].update(pooled.to_dict(), m=m, pooled=[i + 1 for i in have])
    out["imputation"].update(log_hr=log_hr, log_hr_se=log_hr_se)
    return out


def _pool_rmst_difference(results: list[dict], warnings: list) -> dict:
    """Treated minus control RMST by Rubin's rules (each imputation's SE: its bootstrap SE where it
    has one, else the arms' combined; infinite complete-data df, as mice::pool.scalar's default)."""
    differences = [r["rmst_difference"] for r in results]
    empty = {"estimate": None, "lower": None, "upper": None, "se": None, "method": "not estimated",
             "se_independent": None, "lower_independent": None, "upper_independent": None, "n_bootstrap": 0}
    if not _same_tau(results):
        warnings.append("The RMST difference is not pooled: the imputations' RMST horizons differ (their matched "
                        "samples' follow-up differs); set survival.rmst_tau.")
        return empty
    pooled = _rubin([d["estimate"] for d in differences], [d["se"] for d in differences])
    independent = _rubin([d["estimate"] for d in differences], [d["se_independent"] for d in differences])
    if pooled is None or independent is None:
        return empty
    lower, upper = pooled.interval()
    lower_independent, upper_independent = independent.interval()
    return {"estimate": pooled.estimate, "lower": lower, "upper": upper, "se": pooled.se,
            "method": f"Rubin's rules over the imputations (t interval, {pooled.df:.4g} Barnard-Rubin df) of: "
                      f"{differences[0]['method']}",
            "se_independent": independent.se, "lower_independent": lower_independent,
            "upper_independent": upper_independent, "n_bootstrap": differences[0]["n_bootstrap"],
            "fmi": pooled.fmi, "df": pooled.df}


def _median_difference(arms: dict, results: list[dict]) -> dict:
    """The pooled medians' difference; its interval the median over the imputations of their bootstrap
    limits."""
    t, c = arms["treated"]["median"], arms["control"]["median"]
    per = [r["median_difference"] for r in results]
    return {"estimate": None if t is None or c is None else t - c,
            "lower": _median([p["lower"] for p in per]) if all(p["lower"] is not None for p in per) else None,
            "upper": _median([p["upper"] for p in per]) if all(p["upper"] is not None for p in per) else None,
            "n_bootstrap": per[0]["n_bootstrap"],
            "method": "difference of the medians over the imputations; interval: the median over the "
                      "imputations of their bootstrap percentile limits",
            **{k: per[0][k] for k in ("seed", "resampled") if k in per[0]}}


def _e_value(out: dict, results: list[dict]) -> dict:
    common = float(np.median([(r["treated"]["events"] + r["control"]["events"])
                              / (r["treated"]["n"] + r["control"]["n"]) for r in results])) > COMMON_OUTCOME
    if out["hr"] is None:
        return {"point": None, "ci": None, "outcome_common": common}
    return {**e_value(out["hr"], out["hr_lower"], out["hr_upper"], common), "outcome_common": common}


def curves_of(cohort: pd.DataFrame, matched: pd.DataFrame, ci: str) -> dict[str, KaplanMeier]:
    """Each arm's Kaplan-Meier curve of a matched (or weighted) sample (cohort: patient_id, treated,
    time, event)."""
    weights = matching_weights(cohort, matched)
    return arm_curves(cohort, weights, ci)


def arm_curves(cohort: pd.DataFrame, weights: np.ndarray, ci: str) -> dict[str, KaplanMeier]:
    """The arms' curves of the cohort's patients with a positive weight."""
    keep = weights > 0
    treated = cohort["treated"].to_numpy(bool)
    time, event = cohort["time"].to_numpy(float), cohort["event"].to_numpy(float)
    return {arm: KaplanMeier.fit(time[rows], event[rows], weights[rows], ci)
            for arm, rows in (("treated", keep & treated), ("control", keep & ~treated))}

