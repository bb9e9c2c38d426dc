"""Weighted Cox model for one covariate, Efron ties, cluster-robust variance: R's
``coxph(Surv(time, event) ~ x [+ strata(s)], weights = w, cluster = c, ties = "efron")``.

Everything is vectorized over the rows sorted once by (stratum, time), so a fit costs
O(n log n) for the sort and O(n) per Newton step. The robust variance sums the dfbeta
residuals (Efron-exact score residuals, as R's coxscore2) by cluster; lifelines' version is
O(n^2) and its score residuals ignore Efron's tie correction.

Convergence follows R's coxfit6: Newton-Raphson from beta = 0 with step halving, stopping
when |1 - loglik_old / loglik_new| <= 1e-9, reporting the last Newton iterate.

The score tests of beta = 0 (``score_tests``) are R's ``summary(coxph(...))$sctest`` (naive) and
``$robscore`` (the same score residuals at beta = 0, weighted and summed by cluster).
``why_no_hazard_ratio`` says, for a binary covariate, when the partial likelihood carries no
information or has no finite maximum (R warns and reports a huge coefficient; we report none).
"""
from dataclasses import dataclass

import numpy as np
from scipy import stats

from pipeline.errors import DataError

_EPS = 1e-9
_MAX_ITER = 20
_CANCELLED = 1e-12
"""A cluster-summed variance below this fraction of the row-level one is rounding noise left
after exact cancellation (e.g. each matched set holding identical treated and control rows)."""


@dataclass(frozen=True)
class CoxResult:
    """The fit; the robust quantities are None when the cluster-robust variance is zero."""
    beta: float
    naive_se: float
    robust_se: float | None
    hr: float
    hr_lower: float | None
    hr_upper: float | None
    p: float | None
    iterations: int


@dataclass(frozen=True)
class ScoreTests:
    """Chi-square (1 df) score tests of beta = 0; robust is None when its variance is zero."""
    naive_chisq: float
    robust_chisq: float | None


@dataclass(frozen=True)
class _Layout:
    """Rows sorted by (stratum, time) and grouped into tied (stratum, time) blocks."""
    order: np.ndarray
    group: np.ndarray          # block index of each sorted row
    stratum_end: np.ndarray    # for each block: one past the last block of its stratum
    stratum_start: np.ndarray  # for each block: the first block of its stratum
    n_groups: int


def risk_layout(time, strata=None) -> _Layout:
    """The rows' layout by (stratum, time), for several fits and tests on the same rows (each would
    otherwise sort them again)."""
    time = np.asarray(time, dtype=float)
    return _layout(time, np.zeros(len(time), dtype=np.int64) if strata is None else group_codes(strata))


def _layout(time, strata):
    order = np.lexsort((time, strata))
    t, s = time[order], strata[order]
    new_block = np.empty(len(t), dtype=bool)
    new_block[0] = True
    new_block[1:] = (t[1:] != t[:-1]) | (s[1:] != s[:-1])
    group = np.cumsum(new_block) - 1
    n_groups = int(group[-1]) + 1
    block_stratum = s[new_block]
    new_stratum = np.empty(n_groups, dtype=bool)
    new_stratum[0] = True
    new_stratum[1:] = block_stratum[1:] != block_stratum[:-1]
    stratum_id = np.cumsum(new_stratum) - 1
    starts = np.flatnonzero(new_stratum)
    ends = np.append(starts[1:], n_groups)
    return _Layout(order, group, ends[stratum_id], starts[stratum_id], n_groups)


def _risk_set_sums(per_group, layout):
    """Sum over blocks at or after each block within its stratum (the risk set)."""
    tail = np.append(np.cumsum(per_group[::-1])[::-1], 0.0)
    return tail[:-1] - tail[layout.stratum_end]


def _efron_terms(layout, x, w, dead, beta):
    """Per-death-slot Efron quantities at ``beta`` (rows already sorted).

    A block with d deaths contributes d slots l = 0..d-1 with denominator
    R0 - (l/d) D0 (R = risk set sums, D = sums over the block's deaths).
    """
    risk = w * np.exp(beta * x)
    g, ng = layout.group, layout.n_groups
    r0 = _risk_set_sums(np.bincount(g, risk, ng), layout)
    r1 = _risk_set_sums(np.bincount(g, risk * x, ng), layout)
    r2 = _risk_set_sums(np.bincount(g, risk * x * x, ng), layout)
    d_count = np.bincount(g, dead, ng)
    d_wt = np.bincount(g, w * dead, ng)
    d0 = np.bincount(g, risk * dead, ng)
    d1 = np.bincount(g, risk * x * dead, ng)
    d2 = np.bincount(g, risk * x * x * dead, ng)

    slot_group = np.repeat(np.arange(ng), d_count.astype(np.int64))
    first_slot = np.cumsum(d_count) - d_count
    frac = (np.arange(len(slot_group)) - first_slot[slot_group]) / d_count[slot_group]
    denom = r0[slot_group] - frac * d0[slot_group]
    mean = (r1[slot_group] - frac * d1[slot_group]) / denom
    second = (r2[slot_group] - frac * d2[slot_group]) / denom
    wtave = (d_wt / np.where(d_count > 0, d_count, 1.0))[slot_group]
    return dict(slot_group=slot_group, frac=frac, denom=denom, mean=mean, second=second,
                wtave=wtave, d_count=d_count)


def _loglik_score_info(layout, x, w, dead, beta):
    e = _efron_terms(layout, x, w, dead, beta)
    wd = w * dead
    loglik = float(np.sum(wd * beta * x) - np.sum(e["wtave"] * np.log(e["denom"])))
    score = float(np.sum(wd * x) - np.sum(e["wtave"] * e["mean"]))
    info = float(np.sum(e["wtave"] * (e["second"] - e["mean"] ** 2)))
    return loglik, score, info


def _newton(layout, x, w, dead):
    """R coxfit6's iteration (one covariate): returns (beta, information, iterations)."""
    beta = 0.0
    best_lik, score, info = _loglik_score_info(layout, x, w, dead, beta)
    new_beta = beta + score / info
    halving = 0
    for iteration in range(1, _MAX_ITER + 1):
        lik, score, info = _loglik_score_info(layout, x, w, dead, new_beta)
        finite = np.isfinite(lik) and np.isfinite(score) and np.isfinite(info)
        if finite and abs(1 - best_lik / lik) <= _EPS:
            return new_beta, info, iteration
        if not finite or lik < best_lik:
            halving += 1
            new_beta = (new_beta + halving * beta) / (halving + 1.0)
        else:
            halving = 0
            best_lik = lik
            beta, new_beta = new_beta, new_beta + score / info
    raise DataError(f"Cox model did not converge in {_MAX_ITER} iterations "
                    "(is one arm free of events, or the hazard ratio infinite?)")


def _score_residuals(layout, x, w, dead, beta):
    """Efron score residuals per sorted row (R coxscore2, unweighted)."""
    e = _efron_terms(layout, x, w, dead, beta)
    ng, sg = layout.n_groups, e["slot_group"]
    haz = e["wtave"] / e["denom"]
    keep = 1.0 - e["frac"]
    h1 = np.bincount(sg, haz, ng)
    h2 = np.bincount(sg, haz * e["mean"], ng)
    own1 = np.bincount(sg, haz * keep, ng)
    own2 = np.bincount(sg, haz * keep * e["mean"], ng)
    d = np.where(e["d_count"] > 0, e["d_count"], 1.0)
    mean_slot = np.bincount(sg, e["mean"], ng) / d

    c1, c2 = _cumulative_within_stratum(h1, layout), _cumulative_within_stratum(h2, layout)
    g = layout.group
    score = np.exp(beta * x)
    censored_part = -score * (x * c1[g] - c2[g])
    before1, before2 = c1[g] - h1[g], c2[g] - h2[g]
    death_part = (x - mean_slot[g]) - score * (x * (before1 + own1[g]) - (before2 + own2[g]))
    return np.where(dead == 1, death_part, censored_part)


def _cumulative_within_stratum(per_group, layout):
    head = np.insert(np.cumsum(per_group), 0, 0.0)
    return head[1:] - head[layout.stratum_start]


def _sorted_data(time, event, x, weight, strata, layout=None):
    """Layout (risk_layout(time, strata) unless given) and the sorted, centred covariate, weights and
    events (R centres the covariate)."""
    event, x, weight = (np.asarray(a, dtype=float) for a in (event, x, weight))
    layout = risk_layout(time, strata) if layout is None else layout
    o = layout.order
    xs, ws, ds = x[o], weight[o], event[o]
    return layout, xs - np.sum(ws * xs) / np.sum(ws), ws, ds


def _cluster_variance(resid, cluster_sorted):
    """Sum over clusters of the squared within-cluster sums of ``resid``; 0 when that is only
    rounding noise left by exact cancellation (see _CANCELLED)."""
    by_cluster = np.bincount(cluster_sorted, resid)
    variance = float(np.sum(by_cluster ** 2))
    return 0.0 if variance <= _CANCELLED * float(np.sum(resid ** 2)) else variance


def _clusters(cluster, n):
    return np.arange(n) if cluster is None else group_codes(cluster)


def fit_cox(time, event, x, weight, cluster=None, strata=None, conf_level=0.95, layout=None) -> CoxResult:
    """Weighted Efron Cox fit of one covariate; robust SE clustered on ``cluster``
    (each row its own cluster when None); ``layout``: risk_layout(time, strata), if already made.
    Check why_no_hazard_ratio first."""
    if np.sum(np.asarray(event, dtype=float)) == 0:
        raise DataError("Cox model: no events in the matched sample")
    layout, xs, ws, ds = _sorted_data(time, event, x, weight, strata, layout)
    beta, info, iterations = _newton(layout, xs, ws, ds)
    naive_var = 1.0 / info
    resid = _score_residuals(layout, xs, ws, ds, beta) * ws * naive_var
    robust_var = _cluster_variance(resid, _clusters(cluster, len(xs))[layout.order])
    common = dict(beta=float(beta), naive_se=float(np.sqrt(naive_var)), hr=float(np.exp(beta)),
                  iterations=iterations)
    if robust_var == 0:
        return CoxResult(robust_se=None, hr_lower=None, hr_upper=None, p=None, **common)
    robust_se = float(np.sqrt(robust_var))
    z = stats.norm.ppf(1 - (1 - conf_level) / 2)
    return CoxResult(
        robust_se=robust_se, hr_lower=float(np.exp(beta - z * robust_se)),
        hr_upper=float(np.exp(beta + z * robust_se)),
        p=float(2 * stats.norm.sf(abs(beta) / robust_se)), **common)


def score_tests(time, event, x, weight, cluster=None, strata=None, layout=None) -> ScoreTests:
    """Score tests of beta = 0 in the weighted Efron model, as R's coxph.

    Naive: U(0)^2 / I(0) (``summary(fit)$sctest``). Robust (``$robscore``): the weighted score
    residuals at beta = 0 summed per cluster, U = their total, chisq = U^2 / sum over clusters
    of the squared cluster sums. ``layout`` as fit_cox's. Check why_no_hazard_ratio first.
    """
    layout, xs, ws, ds = _sorted_data(time, event, x, weight, strata, layout)
    _, score, info = _loglik_score_info(layout, xs, ws, ds, 0.0)
    resid = _score_residuals(layout, xs, ws, ds, 0.0) * ws
    variance = _cluster_variance(resid, _clusters(cluster, len(xs))[layout.order])
    robust = None if variance == 0 else float(np.sum(resid) ** 2 / variance)
    return ScoreTests(naive_chisq=score * score / info, robust_chisq=robust)


@dataclass(frozen=True)
class NoHazardRatio:
    """Why the data cannot estimate the hazard ratio, and whether the tests of HR = 1 still can."""
    reason: str
    tests_defined: bool


def why_no_hazard_ratio(time, event, treated, strata=None, layout=None) -> NoHazardRatio | None:
    """Why the hazard ratio of ``treated`` (binary) cannot be estimated, or None when it can
    (``layout`` as fit_cox's).

    Checked on the (stratum, time) blocks; weights do not matter (they are positive):
    - no events, or no event time at which both arms are at risk and someone at risk survives
      it: nothing compares the arms' hazards (R's survdiff variance is 0; with all patients at
      risk dying at one time, Efron's approximation alone would give the likelihood a maximum);
      the log-rank and score tests are undefined too;
    - no control event while a treated patient is at risk (e.g. every event in the treated
      arm): the partial likelihood increases without bound and the HR is infinite (R warns and
      reports a huge coefficient); symmetrically zero. The tests of HR = 1 are still defined.
    """
    treated = np.asarray(treated, dtype=bool)
    layout, _, _, dead = _sorted_data(time, event, treated, np.ones(len(treated)), strata, layout)
    arm = treated[layout.order]
    g, ng = layout.group, layout.n_groups
    at_risk_t = _risk_set_sums(np.bincount(g, arm, ng), layout)
    at_risk_c = _risk_set_sums(np.bincount(g, ~arm, ng), layout)
    dead_t = np.bincount(g, dead * arm, ng)
    dead_c = np.bincount(g, dead * ~arm, ng)
    if dead.sum() == 0:
        return NoHazardRatio("there are no events", tests_defined=False)
    survivors = at_risk_t + at_risk_c - dead_t - dead_c
    if not np.any((at_risk_t > 0) & (at_risk_c > 0) & (dead_t + dead_c > 0) & (survivors > 0)):
        return NoHazardRatio("no event time has both arms at risk and a patient at risk who survives "
                             "it, so the data do not compare the arms' hazards", tests_defined=False)
    if not np.any((dead_c > 0) & (at_risk_t > 0)):
        return NoHazardRatio("no control patient had an event while a treated patient was at risk "
                             "(e.g. all events are in the treated arm): the hazard ratio is infinite",
                             tests_defined=True)
    if not np.any((dead_t > 0) & (at_risk_c > 0)):
        return NoHazardRatio("no treated patient had an event while a control patient was at risk "
                             "(e.g. all events are in the control arm): the hazard ratio is zero",
                             tests_defined=True)
    return None


def group_codes(values):
    """0..k-1 codes of the distinct values (ids of clusters, strata or matched sets), in their sorted
    order. Ids that are small non-negative integers (matched sets numbered 0..n) are coded by marking
    the ids present, in linear time; others by np.unique's sort."""
    values = np.asarray(values)
    if values.dtype.kind in "iu" and len(values) and values.min() >= 0 and values.max() < 4 * len(values):
        present = np.zeros(int(values.max()) + 1, dtype=bool)
        present[values] = True
        return (np.cumsum(present) - 1)[values]
    return np.unique(values, return_inverse=True)[1].ravel()
