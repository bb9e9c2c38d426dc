"""Meta-analysis of per-site estimates (log hazard ratios with their SEs), as R's metafor 3.8
``rma(yi, sei = se, method = "FE" | "DL" | "REML", test = "z" | "knha")`` and ``predict()``:

- fixed effect: the inverse-variance weighted mean;
- random effects: tau^2 by DerSimonian-Laird or by REML (the root of the restricted likelihood's
  score, which metafor approaches by Fisher scoring), truncated at 0;
- Hartung-Knapp: the t distribution with k - 1 df and the weighted residual variance as the SE
  (metafor's ``test = "knha"``, without the ad hoc truncation); when every site has the same
  estimate that SE is 0 and the p-value is undefined (None);
- heterogeneity: Cochran's Q, I^2 = tau^2 / (tau^2 + s^2) with s^2 the typical within-site
  variance (metafor's definition; equal to (Q - df) / Q for DL), H^2;
- the 95% prediction interval of a new site's effect: estimate +- crit * sqrt(se^2 + tau^2), crit
  the normal quantile, or the t quantile with k - 1 df under Hartung-Knapp (as metafor).
"""
from __future__ import annotations

import numpy as np
from scipy import optimize, stats

LEVEL = 0.95
TAU2_METHODS = ("reml", "dl")


def fixed_effect(y, se) -> dict:
    y, v = _checked(y, se)
    w = 1.0 / v
    estimate = float(np.sum(w * y) / np.sum(w))
    return _normal_summary(estimate, float(np.sqrt(1.0 / np.sum(w))))


def heterogeneity(y, se, tau2: float) -> dict:
    """Cochran's Q (fixed-effect weights) with its p-value, I^2 (%) and H^2 at ``tau2``."""
    y, v = _checked(y, se)
    w = 1.0 / v
    k = len(y)
    q = float(np.sum(w * (y - np.sum(w * y) / np.sum(w)) ** 2))
    typical = (k - 1) * np.sum(w) / (np.sum(w) ** 2 - np.sum(w ** 2)) if k > 1 else float("nan")
    return {"q": q, "df": k - 1, "q_p": float(stats.chi2.sf(q, k - 1)) if k > 1 else None,
            "i2": float(100 * tau2 / (tau2 + typical)) if k > 1 else None,
            "h2": float((tau2 + typical) / typical) if k > 1 else None}


def tau2_dl(y, se) -> float:
    """DerSimonian-Laird's moment estimate of the between-site variance."""
    y, v = _checked(y, se)
    w = 1.0 / v
    q = np.sum(w * (y - np.sum(w * y) / np.sum(w)) ** 2)
    return float(max(0.0, (q - (len(y) - 1)) / (np.sum(w) - np.sum(w ** 2) / np.sum(w))))


def tau2_reml(y, se) -> float:
    """The REML estimate: the root of sum w^2 r^2 - (sum w - sum w^2 / sum w), w = 1 / (v + tau2),
    r the residuals from the weighted mean; 0 when the score is not positive at 0."""
    y, v = _checked(y, se)

    def score(tau2):
        w = 1.0 / (v + tau2)
        r = y - np.sum(w * y) / np.sum(w)
        return np.sum(w ** 2 * r ** 2) - (np.sum(w) - np.sum(w ** 2) / np.sum(w))

    if score(0.0) <= 0:
        return 0.0
    upper = max(float(np.var(y)), float(v.max()), 1e-8)
    while score(upper) > 0:
        upper *= 2
    return float(optimize.brentq(score, 0.0, upper, xtol=1e-15, rtol=4 * np.finfo(float).eps, maxiter=500))


def random_effects(y, se, method: str = "reml", hartung_knapp: bool = True) -> dict:
    """The random-effects estimate, its CI and p-value, tau^2 and the prediction interval."""
    y, v = _checked(y, se)
    if len(y) < 2:
        raise ValueError("a random-effects meta-analysis needs at least two sites")
    tau2 = {"reml": tau2_reml, "dl": tau2_dl}[method](y, np.sqrt(v))
    w = 1.0 / (v + tau2)
    estimate = float(np.sum(w * y) / np.sum(w))
    se_re = float(np.sqrt(1.0 / np.sum(w)))
    if hartung_knapp:
        df = len(y) - 1
        se_re = float(np.sqrt(np.sum(w * (y - estimate) ** 2) / (df * np.sum(w))))
        crit = float(stats.t.ppf(0.5 + LEVEL / 2, df))
        p = float(2 * stats.t.sf(abs(estimate / se_re), df)) if se_re > 0 else None   # identical estimates
        out = {"estimate": estimate, "se": se_re, "lower": estimate - crit * se_re,
               "upper": estimate + crit * se_re, "p": p, "distribution": f"t, {df} df (Hartung-Knapp)"}
    else:
        crit = float(stats.norm.ppf(0.5 + LEVEL / 2))
        out = _normal_summary(estimate, se_re)
    half = crit * np.sqrt(se_re ** 2 + tau2)
    return {**out, "tau2": tau2, "tau2_method": method, "hartung_knapp": hartung_knapp,
            "prediction_lower": float(estimate - half), "prediction_upper": float(estimate + half)}


def _normal_summary(estimate: float, se: float) -> dict:
    z = float(stats.norm.ppf(0.5 + LEVEL / 2))
    return {"estimate": estimate, "se": se, "lower": estimate - z * se, "upper": estimate + z * se,
            "p": float(2 * stats.norm.sf(abs(estimate / se))), "distribution": "normal"}


def _checked(y, se):
    y, se = np.asarray(y, dtype=float), np.asarray(se, dtype=float)
    if len(y) == 0 or len(y) != len(se) or not (np.all(np.isfinite(y)) and np.all(se > 0) and np.all(np.isfinite(se))):
        raise ValueError("meta-analysis needs one finite estimate and one positive finite SE per site")
    return y, se ** 2
