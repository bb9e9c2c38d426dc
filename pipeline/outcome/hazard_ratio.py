"""The arms compared through their hazards, with R `survival` 3.5-3 semantics: the log-rank test
(``survdiff``), the marginal hazard ratio of the weighted Cox model with its cluster-robust CI,
the naive and robust score tests of HR = 1 (``summary(coxph(...))$sctest`` and ``$robscore``),
the pair-stratified HR, the E-value, and which test the headline reports.

The headline test: the log-rank when every weight is 1 (a 1:1 or full-ratio matching without
replacement; comparable to published log-rank p-values), otherwise the robust score test, which
uses the weights and the matching structure (clustered on the matched set, or on the patient
when matching with replacement). The unweighted log-rank of a weighted sample tests a different
population than the weighted curves show.

What the data cannot estimate is None with a sentence appended to ``warnings``.
"""
import numpy as np
from scipy import stats

from pipeline.outcome.cox import fit_cox, risk_layout, score_tests, why_no_hazard_ratio
from pipeline.outcome.km import RiskTable

COMMON_OUTCOME = 0.15                  # VanderWeele & Ding: convert HR to RR above this
_ZERO_ROBUST = ("its cluster-robust variance is zero (every cluster's contributions cancel, e.g. "
                "identical arms)")


def logrank(time, event, treated, strata=None):
    """Unweighted two-group log-rank test (R survdiff, rho = 0), stratified when ``strata`` is
    given (survdiff's ``strata()``: observed minus expected and variance summed over strata):
    (chisq, p).

    Needs an event time with both arms at risk and a survivor (why_no_hazard_ratio), else the
    variance is 0."""
    time, event = np.asarray(time, dtype=float), np.asarray(event, dtype=float)
    grp = np.asarray(treated, dtype=bool)
    strata = np.zeros(len(time)) if strata is None else np.asarray(strata)
    terms = []
    for stratum in np.unique(strata):
        rows = strata == stratum
        terms.append(logrank_terms(RiskTable.of_rows(time[rows & grp], event[rows & grp], np.ones((rows & grp).sum())),
                                   RiskTable.of_rows(time[rows & ~grp], event[rows & ~grp],
                                                     np.ones((rows & ~grp).sum()))))
    return logrank_test(terms)


def logrank_terms(treated: RiskTable, control: RiskTable) -> tuple[float, float]:
    """(observed - expected treated events, variance) of one stratum from the arms' risk tables
    (their row counts: the test is unweighted)."""
    times = np.union1d(treated.time, control.time)
    n1 = treated.on_times(times).n_risk_rows
    d1 = treated.on_times(times).event_rows
    n = n1 + control.on_times(times).n_risk_rows
    d = d1 + control.on_times(times).event_rows
    expected = np.sum(n1 * d / n)
    with np.errstate(divide="ignore", invalid="ignore"):
        var = np.where(n > 1, n1 * (n - n1) * d * (n - d) / (n * n * (n - 1)), 0.0)
    return float(d1.sum() - expected), float(var.sum())


def logrank_test(terms) -> tuple[float, float]:
    """(chisq, p) of the log-rank test from its strata's (observed - expected, variance)."""
    observed_minus_expected = sum(t[0] for t in terms)
    chisq = float(observed_minus_expected ** 2 / sum(t[1] for t in terms))
    return chisq, float(stats.chi2.sf(chisq, 1))


def e_value(hr, lower, upper, common_outcome: bool):
    """E-value of a hazard ratio and of its CI limit nearer 1 (VanderWeele & Ding 2017)."""
    def as_rr(h):
        if not common_outcome:
            return h
        return (1 - 0.5 ** np.sqrt(h)) / (1 - 0.5 ** np.sqrt(1 / h))

    def evalue_of_rr(rr):
        rr = 1 / rr if rr < 1 else rr
        return float(rr + np.sqrt(rr * (rr - 1)))

    if lower <= 1 <= upper:
        ci = 1.0
    else:
        ci = evalue_of_rr(as_rr(upper if hr < 1 else lower))
    return {"point": evalue_of_rr(as_rr(hr)), "ci": ci}


def compare_hazards(time, event, treated, weight, cluster, cluster_kind: str, warnings: list) -> dict:
    """survival.json's hazard keys: log-rank, headline test, score tests, marginal HR, E-value.

    Arrays already validated (compare_survival); ``cluster`` is the matched set or the patient,
    as ``cluster_kind`` says.
    """
    layout = risk_layout(time)
    missing = why_no_hazard_ratio(time, event, treated, layout=layout)
    tests_defined = missing is None or missing.tests_defined
    if missing is not None:
        also = "" if tests_defined else " (nor the log-rank and score tests)"
        warnings.append(f"The hazard ratio is not estimated{also}: {missing.reason}.")
    logrank_chisq, logrank_p = logrank(time, event, treated) if tests_defined else (None, None)
    naive, robust = _score_chisqs(time, event, treated, weight, cluster, tests_defined, warnings, layout)
    return {
        "logrank_chisq": logrank_chisq, "logrank_p": logrank_p,
        "test": _headline_test(weight, cluster_kind, logrank_chisq, robust),
        "score_tests": {"naive_chisq": naive, "naive_p": _chisq_p(naive),
                        "robust_chisq": robust, "robust_p": _chisq_p(robust), "cluster": cluster_kind},
        **_marginal_hr(time, event, treated, weight, cluster, cluster_kind, missing is None, warnings, layout),
    }


def _score_chisqs(time, event, treated, weight, cluster, defined, warnings, layout):
    """(naive, robust) score chi-squares of HR = 1, None where undefined."""
    if not defined:
        return None, None
    scores = score_tests(time, event, treated.astype(float), weight, cluster=cluster, layout=layout)
    if scores.robust_chisq is None:
        warnings.append(f"The robust score test is undefined: {_ZERO_ROBUST}.")
    return scores.naive_chisq, scores.robust_chisq


def _marginal_hr(time, event, treated, weight, cluster, cluster_kind, estimable, warnings, layout):
    common = event.mean() > COMMON_OUTCOME
    out = dict.fromkeys(("hr", "hr_lower", "hr_upper", "hr_p", "hr_robust_se"))
    evalue = {"point": None, "ci": None}
    if estimable:
        cox = fit_cox(time, event, treated.astype(float), weight, cluster=cluster, layout=layout)
        out.update(hr=cox.hr, hr_lower=cox.hr_lower, hr_upper=cox.hr_upper, hr_p=cox.p,
                   hr_robust_se=cox.robust_se)
        if cox.robust_se is None:
            warnings.append(f"The hazard ratio has no confidence interval or p-value: {_ZERO_ROBUST}.")
        else:
            evalue = e_value(cox.hr, cox.hr_lower, cox.hr_upper, common)
    return {
        **out, "hr_cluster": cluster_kind,
        "hr_method": f"coxph(Surv ~ treated, weights, cluster = {cluster_kind}, ties = efron): "
                     "marginal HR, robust (sandwich) SE",
        "e_value": {**evalue, "outcome_common": bool(common)},
    }


def _headline_test(weight, cluster_kind, logrank_chisq, robust_chisq):
    """The test the headline reports (see the module docstring)."""
    if np.all(weight == 1):
        return {"method": "logrank", "label": "log-rank test (unweighted; every weight is 1)",
                "chisq": logrank_chisq, "df": 1, "p": _chisq_p(logrank_chisq), "cluster": None}
    return {"method": "robust_score",
            "label": f"robust score test of the weighted Cox model, clustered on {cluster_kind}",
            "chisq": robust_chisq, "df": 1, "p": _chisq_p(robust_chisq), "cluster": cluster_kind}


def _chisq_p(chisq):
    return None if chisq is None else float(stats.chi2.sf(chisq, 1))


def conditional_hr(time, event, treated, weight, pair_strata, warnings: list) -> dict:
    """The pair-stratified (conditional) HR, clustered on the matched set (secondary)."""
    label = ("pair-stratified (conditional) HR: coxph(Surv ~ treated + strata(matched set),"
             " weights, cluster = matched set, ties = efron)")
    layout = risk_layout(time, pair_strata)
    missing = why_no_hazard_ratio(time, event, treated, layout=layout)
    if missing is not None:
        warnings.append(f"The pair-stratified hazard ratio is not estimated: {missing.reason} "
                        "(within the matched sets).")
        return {"hr": None, "lower": None, "upper": None, "p": None, "robust_se": None, "label": label}
    cox = fit_cox(time, event, treated.astype(float), weight, cluster=pair_strata, layout=layout)
    if cox.robust_se is None:
        warnings.append(f"The pair-stratified hazard ratio has no confidence interval or p-value: "
                        f"{_ZERO_ROBUST}.")
    return {"hr": cox.hr, "lower": cox.hr_lower, "upper": cox.hr_upper, "p": cox.p,
            "robust_se": cox.robust_se, "label": label}
