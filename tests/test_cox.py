"""Cox score tests and the hazard ratio's estimability (R agreement is in test_survival.py)."""
import numpy as np
import pytest

from pipeline.outcome.cox import fit_cox, group_codes, score_tests, why_no_hazard_ratio
from pipeline.outcome.hazard_ratio import logrank


def test_naive_score_test_without_ties_is_the_log_rank_test():
    """Without tied times and with unit weights the Cox score test of beta = 0 is the log-rank
    test (both are sum(O - E)^2 / sum of the hypergeometric variances)."""
    rng = np.random.default_rng(5)
    n = 60
    time = rng.permutation(np.arange(1, n + 1)).astype(float)
    event = rng.integers(0, 2, n)
    treated = rng.integers(0, 2, n).astype(bool)
    naive = score_tests(time, event, treated.astype(float), np.ones(n)).naive_chisq
    assert naive == pytest.approx(logrank(time, event, treated)[0], rel=1e-12)


def test_robust_score_with_each_row_its_own_cluster_is_invariant_to_row_order():
    rng = np.random.default_rng(8)
    n = 50
    time, event = rng.integers(0, 10, n).astype(float), rng.integers(0, 2, n)
    x, w = rng.integers(0, 2, n).astype(float), rng.uniform(0.5, 2, n)
    order = rng.permutation(n)
    a = score_tests(time, event, x, w)
    b = score_tests(time[order], event[order], x[order], w[order])
    assert a.robust_chisq == pytest.approx(b.robust_chisq, rel=1e-12)
    assert a.naive_chisq == pytest.approx(b.naive_chisq, rel=1e-12)


def test_cancelling_clusters_have_no_robust_variance():
    """Matched sets of identical treated and control rows: every set's score contributions
    cancel, so the sandwich variance is zero (R prints rounding noise); we report none."""
    time, event = np.array([1.0, 2, 3] * 2), np.array([1, 0, 1] * 2)
    x, sets = np.array([1.0] * 3 + [0.0] * 3), np.array([0, 1, 2] * 2)
    fit = fit_cox(time, event, x, np.ones(6), cluster=sets)
    assert fit.hr == pytest.approx(1.0) and fit.robust_se is None and fit.p is None
    assert score_tests(time, event, x, np.ones(6), cluster=sets).robust_chisq is None
    assert fit_cox(time, event, x, np.ones(6)).robust_se > 0      # each row its own cluster


@pytest.mark.parametrize("time, event, treated, expected, tests_defined", [
    ([1, 2, 3, 4], [0, 0, 0, 0], [1, 0, 1, 0], "no events", False),
    ([5, 5, 5, 5], [1, 1, 1, 1], [1, 1, 0, 0], "do not compare", False),     # all die at once
    ([1, 2, 3, 3], [0, 0, 1, 1], [0, 0, 1, 1], "do not compare", False),     # only treated left
    ([1, 2, 3, 4], [1, 1, 0, 0], [1, 1, 0, 0], "infinite", True),
    ([1, 2, 3, 4], [1, 1, 1, 0], [1, 1, 0, 0], "infinite", True),            # control dies alone
    ([1, 2, 3, 4], [0, 1, 0, 0], [1, 0, 1, 0], "zero", True),
    ([1, 2, 3, 4], [1, 1, 1, 0], [1, 0, 1, 0], None, None),
    ([5, 5, 7, 8], [1, 1, 0, 0], [1, 0, 1, 0], None, None),                  # tied deaths, survivors
])
def test_why_no_hazard_ratio(time, event, treated, expected, tests_defined):
    found = why_no_hazard_ratio(np.array(time, float), np.array(event), np.array(treated, bool))
    if expected is None:
        assert found is None
        fit = fit_cox(time, event, np.array(treated, float), np.ones(len(time)))
        assert np.isfinite(fit.beta) and fit.iterations < 20
    else:
        assert expected in found.reason and found.tests_defined == tests_defined


def test_why_no_hazard_ratio_within_strata():
    """Informative overall but not within the pairs: each pair's members die together."""
    time, event = np.array([1.0, 1, 2, 2]), np.array([1, 1, 1, 1])
    treated, pairs = np.array([True, False, True, False]), np.array([0, 0, 1, 1])
    assert why_no_hazard_ratio(time, event, treated) is None
    assert "do not compare" in why_no_hazard_ratio(time, event, treated, strata=pairs).reason


@pytest.mark.parametrize("ids", [
    np.array([5, 3, 3, 9, 0, 5]),                         # small non-negative integers, with gaps
    np.array([7], dtype=np.uint32),
    np.array([2, -1, 2, 4]),                              # negative: sorted by np.unique
    np.array([10**9, 3, 10**9]),                          # sparse: sorted by np.unique
    np.array(["b", "a", "b", "c"]),
    np.array([0.5, 0.25, 0.5]),
])
def test_group_codes_are_the_ranks_of_the_distinct_ids(ids):
    distinct = sorted(set(ids.tolist()))
    assert group_codes(ids).tolist() == [distinct.index(v) for v in ids.tolist()]
