"""Diagnostics of a propensity score's overlap: c-statistic, preference score and equipoise
(Walker et al. 2013), score quantiles per arm; in the full sample or weighted after matching."""
from __future__ import annotations

import numpy as np

from pipeline.design.propensity.common import R_GLM_EPS

EQUIPOISE_BOUNDS = (0.3, 0.7)


def weighted_auc(score: np.ndarray, treated: np.ndarray, weights: np.ndarray | None = None) -> float:
    """c-statistic: P(score of a treated > score of a control), ties counting one half, pairs weighted w_t * w_c."""
    score = np.asarray(score, dtype=float)
    treated = np.asarray(treated).astype(bool)
    w = np.ones(len(score)) if weights is None else np.asarray(weights, dtype=float)
    values, codes = np.unique(score, return_inverse=True)
    w_treated = np.bincount(codes, weights=w * treated, minlength=len(values))
    w_control = np.bincount(codes, weights=w * ~treated, minlength=len(values))
    control_below = np.cumsum(w_control) - w_control
    concordant = np.sum(w_treated * (control_below + 0.5 * w_control))
    return float(concordant / (w_treated.sum() * w_control.sum()))


def preference_score(ps: np.ndarray, share_treated: float) -> np.ndarray:
    """Walker et al. 2013: logit(F) = logit(ps) - logit(P), P the share treated; removes prevalence from the ps."""
    ps = np.clip(np.asarray(ps, dtype=float), R_GLM_EPS, 1 - R_GLM_EPS)
    logit_f = np.log(ps / (1 - ps)) - np.log(share_treated / (1 - share_treated))
    return 1.0 / (1.0 + np.exp(-logit_f))


def ps_diagnostics(ps: np.ndarray, treated: np.ndarray, weights: np.ndarray | None = None) -> dict:
    """Overlap diagnostics of a propensity score, in the full sample (weights None) or weighted (after matching).

    Returns the c-statistic, the (weighted) share treated, the share of patients in equipoise
    (preference score in [0.3, 0.7], Walker 2013) overall and per arm, and ps quantiles per arm.
    Units with weight 0 (unmatched) do not count.
    """
    ps = np.asarray(ps, dtype=float)
    treated = np.asarray(treated).astype(bool)
    w = np.ones(len(ps)) if weights is None else np.asarray(weights, dtype=float)
    keep = w > 0
    ps, treated, w = ps[keep], treated[keep], w[keep]
    if treated.all() or not treated.any():
        return {"c_statistic": None, "share_treated": None, "equipoise_share": None,
                "equipoise_share_treated": None, "equipoise_share_control": None}
    weighted_treated, weighted_control = float(w[treated].sum()), float(w[~treated].sum())
    share = weighted_treated / (weighted_treated + weighted_control)
    pref = preference_score(ps, share)
    inside = (pref >= EQUIPOISE_BOUNDS[0]) & (pref <= EQUIPOISE_BOUNDS[1])
    return {"c_statistic": weighted_auc(ps, treated, w),
            "share_treated": share,
            "equipoise_share": float(np.sum(w * inside) / np.sum(w)),
            "equipoise_share_treated": float(np.sum((w * inside)[treated]) / np.sum(w[treated])),
            "equipoise_share_control": float(np.sum((w * inside)[~treated]) / np.sum(w[~treated])),
            "ps_quantiles_treated": _quantiles(ps[treated]),
            "ps_quantiles_control": _quantiles(ps[~treated])}


def _quantiles(values: np.ndarray) -> dict[str, float]:
    probs = {"min": 0.0, "q25": 0.25, "median": 0.5, "q75": 0.75, "max": 1.0}
    return {name: float(np.quantile(values, p)) for name, p in probs.items()}
