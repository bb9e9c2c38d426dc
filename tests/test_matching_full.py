"""Full matching (pipeline.design.matching.full): the total distance equals the optimum of a
linear program (HiGHS) over the same restrictions, the sets meet the definition and the bounds,
and the weights are MatchIt's for subclasses."""
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import linprog
from scipy.sparse import coo_matrix, vstack

from pipeline.config.settings import Matching
from pipeline.design import matching as matching_methods
from pipeline.design.matching.common import caliper_in_distance_units, distance_from_ps
from pipeline.design.matching.full import degree_bounds, match_full
from pipeline.errors import NotEstimable

REFERENCE = Path(__file__).parent / "reference"


def cover_lp(distance, treated, limit, min_controls=None, max_controls=None):
    """The cheapest cover by admissible pairs, each patient with a partner in a_t..b_t (treated)
    or a_c..b_c (controls) pairs, as an LP (bipartite incidence matrix: integral optimum)."""
    T, C = np.flatnonzero(treated), np.flatnonzero(~treated)
    D = np.abs(distance[T][:, None] - distance[C][None, :])
    rows, cols = np.nonzero(D <= limit)
    a_t, b_t, a_c, b_c = degree_bounds(min_controls, max_controls)
    units = np.r_[T[np.unique(rows)], C[np.unique(cols)]]
    index = {u: i for i, u in enumerate(units)}
    n_edges = len(rows)
    incidence = coo_matrix((np.ones(2 * n_edges),
                            (np.r_[[index[T[r]] for r in rows], [index[C[c]] for c in cols]],
                             np.r_[np.arange(n_edges), np.arange(n_edges)])), shape=(len(units), n_edges))
    low = np.where(treated[units], a_t, a_c)
    high = np.minimum(np.where(treated[units], b_t, b_c), n_edges)
    result = linprog(D[rows, cols], A_ub=vstack([incidence, -incidence]).tocsr(), b_ub=np.r_[high, -low],
                     bounds=(0, 1), method="highs")
    return result.fun if result.status == 0 else None, set(units)


def check_sets(result, treated, min_controls=None, max_controls=None):
    """Every matched patient in one set with >= 1 treated and >= 1 control, sets are stars within
    the bounds, and the weights are MatchIt's: treated 1, controls treated/controls of their set,
    rescaled to mean 1."""
    sub = result.subclass
    members = pd.DataFrame({"set": sub[sub > 0], "treated": treated[sub > 0]})
    sizes = members.groupby("set")["treated"].agg(n_t="sum", n="size")
    sizes["n_c"] = sizes["n"] - sizes["n_t"]
    assert (sizes["n_t"] >= 1).all() and (sizes["n_c"] >= 1).all()
    assert ((sizes["n_t"] == 1) | (sizes["n_c"] == 1)).all()
    a_t, b_t, a_c, b_c = degree_bounds(min_controls, max_controls)
    one_treated = sizes["n_t"] == 1
    assert sizes.loc[one_treated, "n_c"].between(a_t, b_t).all()
    assert sizes.loc[~one_treated, "n_t"].between(a_c, b_c).all()
    raw = np.where(treated, 1.0, 0.0)
    controls = (sub > 0) & ~treated
    raw[controls] = (sizes["n_t"] / sizes["n_c"]).reindex(sub[controls]).to_numpy()
    raw[controls] /= raw[controls].mean()
    np.testing.assert_allclose(result.weights, np.where(sub > 0, raw, 0.0), rtol=1e-13)
    # pairs: every (treated, control) of each set, both in the same set
    assert (sub[result.pairs["treated_index"]] == sub[result.pairs["control_index"]]).all()
    assert len(result.pairs) == int((sizes["n_t"] * sizes["n_c"]).sum())


BOUNDS = [(None, None), (0.5, None), (None, 2), (1, 3), (0.5, 2), (2, None), (None, 0.5)]


@pytest.mark.parametrize("seed", range(21))
def test_random_problems_equal_the_linear_program(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(10, 70))
    treated = rng.random(n) < rng.uniform(0.25, 0.6)
    distance = rng.normal(size=n)
    min_controls, max_controls = BOUNDS[seed % len(BOUNDS)]
    limit = [np.inf, 0.6, 1.2][seed % 3]
    caliper = None if np.isinf(limit) else limit
    optimum, coverable = cover_lp(distance, treated, limit, min_controls, max_controls)
    if optimum is None:                                  # the bounds cannot be met
        with pytest.raises(NotEstimable, match="min_controls"):
            match_full(distance, treated, min_controls=min_controls, max_controls=max_controls, caliper=caliper,
                       std_caliper=False)
        return
    result = match_full(distance, treated, min_controls=min_controls, max_controls=max_controls, caliper=caliper,
                        std_caliper=False)
    assert abs(result.pairs["distance_diff"].sum() - optimum) <= 1e-9
    assert abs(result.details["total_distance"] - optimum) <= 1e-9
    assert set(np.flatnonzero(result.subclass > 0)) == coverable     # everyone with a possible partner
    check_sets(result, treated, min_controls, max_controls)


@pytest.mark.parametrize("dataset,column", [("lalonde", "treat"), ("gbsg", "hormon")])
def test_fixture_with_a_caliper_equals_the_linear_program(dataset, column):
    units = pd.read_csv(REFERENCE / f"{dataset}_units.csv", float_precision="round_trip")
    distance = distance_from_ps(units["ps"].to_numpy(), "logit")
    treated = units[column].to_numpy() == 1
    limit = caliper_in_distance_units(distance, np.zeros(len(distance), dtype=bool), 0.2, True)
    expected = json.loads((REFERENCE / f"{dataset}_r1_cal_logit_expected.json").read_text())
    assert limit == pytest.approx(expected["caliper_raw"], rel=1e-14)
    result = match_full(distance, treated, caliper=0.2)
    optimum, coverable = cover_lp(distance, treated, limit)
    assert abs(result.details["total_distance"] - optimum) <= 1e-9
    assert result.details["total_distance_tolerance"] < 1e-9
    assert set(np.flatnonzero(result.subclass > 0)) == coverable
    check_sets(result, treated)


def test_each_exact_stratum_is_its_own_problem_and_one_that_fails_stays_unmatched():
    # stratum 0: 2 treated, 1 control -> with max 1 treated per control (min_controls 1) it fails;
    # stratum 1: 1 treated, 2 controls: matched
    distance = np.array([0.0, 0.1, 0.05, 1.0, 1.1, 0.9])
    treated = np.array([True, True, False, True, False, False])
    exact = np.array([0, 0, 0, 1, 1, 1])
    result = match_full(distance, treated, min_controls=1, exact=exact)
    assert result.subclass.tolist() == [0, 0, 0, 1, 1, 1]
    assert result.details["n_strata_failed"] == 1


def test_a_control_may_serve_several_treated_and_a_treated_several_controls():
    distance = np.array([0.0, 0.02, 0.01, 5.0, 5.01, 5.02])
    treated = np.array([True, True, False, True, False, False])
    result = match_full(distance, treated)
    assert result.subclass.tolist() == [1, 1, 1, 2, 2, 2]
    # set 1: two treated, one control (weight 2); set 2: one treated, two controls (1/2 each)
    np.testing.assert_allclose(result.weights, [1, 1, 2 * 3 / 3, 1, 0.5 * 3 / 3, 0.5 * 3 / 3])


def test_degree_bounds_follow_optmatchs_rounding():
    assert degree_bounds(None, None) == (1, np.inf, 1, np.inf)
    assert degree_bounds(0.5, 3) == (1, 3, 1, 2)
    assert degree_bounds(0.4, 2.5) == (1, 3, 1, 3)       # 0.4 rounds down to 1/3, 2.5 up to 3
    assert degree_bounds(2, None) == (2, np.inf, 1, 1)
    assert degree_bounds(None, 0.5) == (1, 1, 2, np.inf)


def test_full_describes_its_bounds():
    matching = Matching.from_dict({"method": "full", "ratio": 1, "caliper": None, "std_caliper": True,
                                   "caliper_scale": "logit", "replace": False, "order": "largest", "exact": [],
                                   "discard": "none", "distance": "propensity", "mahalanobis": [],
                                   "min_controls": 0.5, "max_controls": 3})
    sentence = matching_methods.describe(matching, None)
    assert sentence.startswith("Patients were matched by optimal full matching")
    assert "(at least 1 control per 2 treated patients and at most 3 controls per treated patient in a set)" in sentence
    assert sentence.endswith("common-support discard: none.")
