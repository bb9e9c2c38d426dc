"""Pooling the sites' bundles at the coordinating site (``python -m pipeline.federated pool``).

- Curves, medians, landmark survival and log-rank tests come from the sites' risk tables summed
  time by time: exactly those of the union of the sites' matched samples with their times rounded
  up to the grid (pipeline.outcome.km.KaplanMeier.from_counts, hazard_ratio.logrank_terms). The
  log-rank test is given unstratified and stratified by site; like survival.json's it counts rows
  (unweighted).
- The hazard ratio: fixed-effect and random-effects meta-analysis of the sites' log hazard ratios
  with their cluster-robust SEs (pipeline.federated.meta).
- Balance: the sites' weighted sums combined into the pooled sample's means, variances and SMDs.
Bundles of different config hashes (different analysis settings) are refused.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from pipeline.errors import DataError
from pipeline.federated import meta
from pipeline.federated.bundle import FORMAT, FORMAT_VERSION
from pipeline.outcome.hazard_ratio import logrank_terms, logrank_test
from pipeline.outcome.km import KaplanMeier, RiskTable, finite_or_none

ARMS = ("treated", "control")


def read_bundles(paths) -> list[dict]:
    """The bundles, checked to be bundles of one analysis with one config hash and distinct sites."""
    bundles = []
    for path in map(Path, paths):
        try:
            bundle = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise DataError(f"{path}: cannot be read as a bundle ({exc})") from None
        if not isinstance(bundle, dict) or bundle.get("format") != FORMAT:
            raise DataError(f"{path}: not a federated bundle (results/federated/<analysis>.json of a site run)")
        if bundle.get("format_version") != FORMAT_VERSION:
            raise DataError(f"{path}: bundle format version {bundle.get('format_version')}; this code reads "
                            f"version {FORMAT_VERSION}")
        bundles.append({**bundle, "path": str(path)})
    if not bundles:
        raise DataError("no bundle to pool")
    _check_same(bundles, "analysis", "analyses")
    _check_same(bundles, "config_hash", "config hashes: the sites ran different analysis settings "
                "(compare the bundles' \"settings\")")
    sites = [b["site"] for b in bundles]
    repeated = sorted({s for s in sites if sites.count(s) > 1})
    if repeated:
        raise DataError(f"site {', '.join(repeated)} appears in more than one bundle: "
                        + ", ".join(b["path"] for b in bundles if b["site"] in repeated))
    return bundles


def _check_same(bundles: list[dict], key: str, what: str) -> None:
    groups: dict[str, list[str]] = {}
    for bundle in bundles:
        groups.setdefault(str(bundle[key]), []).append(bundle["path"])
    if len(groups) > 1:
        listing = "; ".join(f"{value[:12] if key == 'config_hash' else value}: {', '.join(paths)}"
                            for value, paths in groups.items())
        raise DataError(f"the bundles differ in {what}; refusing to pool them. {listing}")


def pool(bundles: list[dict]) -> tuple[dict, dict[str, KaplanMeier]]:
    """The pooled result (pooled.json's content) and the pooled curves per arm."""
    settings = bundles[0]["settings"]
    survival = settings["settings"]["survival"]
    used = [b for b in bundles if b["estimable"]]
    result = {"analysis": bundles[0]["analysis"], "config_hash": bundles[0]["config_hash"],
              "settings": settings, "time_unit": bundles[0]["time_unit"], "time_grid": bundles[0]["time_grid"],
              "sites": [_site_row(b) for b in bundles]}
    if not used:
        return {**result, "estimable": False, "reason": "no site could estimate the analysis"}, {}
    tables = {arm: [RiskTable.from_dict(b["risk_tables"][arm]) for b in used] for arm in ARMS}
    summed = {arm: RiskTable.summed(tables[arm]) for arm in ARMS}
    if any(len(summed[arm].time) == 0 for arm in ARMS):
        return {**result, "estimable": False, "reason": "an arm has no patient at any site"}, {}
    robust = any(not b["weights"]["whole_numbers"] for b in used)
    weighted = any(not b["weights"]["all_one"] for b in used)
    curves = {arm: KaplanMeier.from_counts(summed[arm], survival["ci"], robust=robust, weighted=weighted)
              for arm in ARMS}
    result.update({
        "estimable": True, "weighted": weighted, "ci": survival["ci"],
        **{arm: _arm(curves[arm], survival["landmarks"]) for arm in ARMS},
        "logrank": _logrank([(summed["treated"], summed["control"])]),
        "logrank_stratified": _logrank([(t, c) for t, c in zip(tables["treated"], tables["control"])]),
        "hazard_ratio": meta_analysis(used, settings["federated"]),
        "balance": pooled_balance(used, settings["variables"]),
        "risk_tables": {arm: {**summed[arm].to_dict(), "n_risk": summed[arm].n_risk.tolist(),
                              "n_risk_rows": summed[arm].n_risk_rows.tolist()} for arm in ARMS},
    })
    return result, curves


def _site_row(bundle: dict) -> dict:
    row = {"site": bundle["site"], "path": bundle["path"], "estimable": bundle["estimable"],
           "versions": bundle["versions"], "seed": bundle["seed"]}
    if not bundle["estimable"]:
        return {**row, "reason": bundle["reason"]}
    for arm in ARMS:
        table = RiskTable.from_dict(bundle["risk_tables"][arm])
        row[f"n_{arm}"] = int(table.n_risk_rows[0]) if len(table.time) else 0
        row[f"events_{arm}"] = int(table.event_rows.sum())
    return {**row, **{k: bundle["hazard_ratio"].get(k) for k in ("log_hr", "se", "hr", "lower", "upper", "reason")}}


def _arm(curve: KaplanMeier, landmarks) -> dict:
    median = curve.median()
    at = curve.survival_at(landmarks)
    return {"n": curve.n, "events": curve.events, "events_weighted": float(curve.n_event.sum()),
            "median": median.value, "median_lower": median.lower, "median_upper": median.upper,
            "survival_at": {f"{float(t):g}": e.value for t, e in zip(landmarks, at)},
            "survival_at_ci": {f"{float(t):g}": [e.lower, e.upper] for t, e in zip(landmarks, at)}}


def _logrank(strata) -> dict:
    """The log-rank test from (treated, control) risk tables per stratum; None without information
    (no event time with both arms at risk and a survivor)."""
    terms = [logrank_terms(t, c) for t, c in strata]
    if sum(variance for _, variance in terms) <= 0:
        return {"chisq": None, "p": None, "strata": len(terms),
                "reason": "no event time with both arms at risk and a survivor"}
    chisq, p = logrank_test(terms)
    return {"chisq": chisq, "p": p, "strata": len(terms)}


def meta_analysis(bundles: list[dict], federated: dict) -> dict:
    """Fixed-effect and random-effects pooled hazard ratios of the sites with an estimate."""
    with_hr = [b for b in bundles if b["hazard_ratio"]["log_hr"] is not None]
    out = {"sites": [b["site"] for b in with_hr],
           "sites_without_estimate": {b["site"]: b["hazard_ratio"]["reason"] for b in bundles if b not in with_hr}}
    if not with_hr:
        return {**out, "fixed": None, "random": None, "heterogeneity": None,
                "reason": "no site estimated a hazard ratio"}
    y = [b["hazard_ratio"]["log_hr"] for b in with_hr]
    se = [b["hazard_ratio"]["se"] for b in with_hr]
    out["fixed"] = _on_hr_scale(meta.fixed_effect(y, se))
    if len(y) < 2:
        return {**out, "random": None, "heterogeneity": None,
                "reason": "a random-effects meta-analysis needs at least two sites with an estimate"}
    random = meta.random_effects(y, se, federated["tau2"], federated["hartung_knapp"])
    out["random"] = _on_hr_scale(random)
    out["heterogeneity"] = meta.heterogeneity(y, se, random["tau2"])
    return out


def _on_hr_scale(summary: dict) -> dict:
    """The log-HR summary with its hazard ratios added (hr, hr_lower, hr_upper, prediction)."""
    out = dict(summary)
    out.update(hr=float(np.exp(summary["estimate"])), hr_lower=float(np.exp(summary["lower"])),
               hr_upper=float(np.exp(summary["upper"])))
    if "prediction_lower" in summary:
        out.update(hr_prediction_lower=float(np.exp(summary["prediction_lower"])),
                   hr_prediction_upper=float(np.exp(summary["prediction_upper"])))
    return out


def pooled_balance(bundles: list[dict], variables: dict) -> dict:
    """Per covariate column: the pooled sample's means per arm before and after matching or
    weighting, and the SMDs (the denominator of the design's estimand, from the pooled sample
    before: the treated arm's SD for the ATT, else the root mean of the arms' variances)."""
    columns = bundles[0]["balance"]["columns"]
    estimand = bundles[0]["balance"]["estimand"]
    combined = {(when, arm): _combined([b["balance"][when][arm] for b in bundles])
                for when in ("before", "after") for arm in ARMS}
    rows = []
    for j, column in enumerate(columns):
        binary = "=" in column or variables.get(column, {}).get("type") == "binary"
        stats = {key: _mean_variance(moments, j, binary) for key, moments in combined.items()}
        var_t, var_c = stats[("before", "treated")][1], stats[("before", "control")][1]
        scale = np.sqrt(var_t) if estimand == "ATT" else np.sqrt((var_t + var_c) / 2)
        row = {"column": column}
        for when in ("before", "after"):
            mean_t, mean_c = stats[(when, "treated")][0], stats[(when, "control")][0]
            row[f"mean_treated_{when}"], row[f"mean_control_{when}"] = mean_t, mean_c
            with np.errstate(invalid="ignore", divide="ignore"):
                row[f"smd_{when}"] = finite_or_none((mean_t - mean_c) / scale)
        rows.append(row)
    return {"estimand": estimand, "columns": rows}


def _combined(parts: list[dict]) -> dict:
    """Sites' weighted sums of one arm combined (Chan et al.'s parallel update of mean and sum of
    squared deviations)."""
    total = np.sum([p["sum_weights"] for p in parts], axis=0)
    means = np.array([[np.nan if m is None else m for m in p["mean"]] for p in parts])
    weights = np.array([p["sum_weights"] for p in parts])
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.nansum(weights * means, axis=0) / total
    deviations = np.array([[0.0 if v is None else v for v in p["sum_sq_dev"]] for p in parts])
    between = np.where(weights > 0, weights * (np.nan_to_num(means) - mean) ** 2, 0.0)
    return {"sum_weights": total, "sum_weights_sq": np.sum([p["sum_weights_sq"] for p in parts], axis=0),
            "mean": mean, "sum_sq_dev": deviations.sum(axis=0) + between.sum(axis=0)}


def _mean_variance(moments: dict, j: int, binary: bool) -> tuple[float, float]:
    """Mean and variance (R cov.wt's reliability weights; p(1 - p) for a 0/1 column, as the
    balance table) of column j."""
    total, mean = moments["sum_weights"][j], moments["mean"][j]
    if total <= 0:
        return float("nan"), float("nan")
    if binary:
        return float(mean), float(mean * (1 - mean))
    with np.errstate(invalid="ignore", divide="ignore"):
        return float(mean), float(moments["sum_sq_dev"][j] / total / (1 - moments["sum_weights_sq"][j] / total ** 2))
