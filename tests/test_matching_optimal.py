"""Optimal k:1 matching (pipeline.design.matching.optimal): the total distance equals an independent
optimum (scipy's linear_sum_assignment on the dense problem, or a linear program solved by HiGHS)
on every R fixture and on random problems, with caliper and exact restrictions."""
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import linear_sum_assignment, linprog
from scipy.sparse import coo_matrix, vstack

from pipeline.config.settings import Matching
from pipeline.design import matching as matching_methods
from pipeline.design.matching import flow
from pipeline.design.matching.common import caliper_in_distance_units, distance_from_ps
from pipeline.design.matching.optimal import match_optimal
from pipeline.design.stages import match_stage

REFERENCE = Path(__file__).parent / "reference"
TREATMENT_COLUMN = {"lalonde": "treat", "gbsg": "hormon"}
SPECS = ["r1", "r1_cal_logit", "r2_cal_logit", "r1_cal_ps", "r3_cal_ps", "r1_replace", "r1_smallest"]
INADMISSIBLE = 1e6     # far above any total distance here: the assignment avoids such pairs first


def total(result) -> float:
    return float(result.pairs["distance_diff"].sum())


def admissible_costs(distance, treated, limit, exact=None):
    """Dense treated x control costs, INADMISSIBLE outside the caliper or the exact stratum."""
    C = np.abs(distance[treated][:, None] - distance[~treated][None, :])
    bad = C > limit
    if exact is not None:
        bad |= exact[treated][:, None] != exact[~treated][None, :]
    return np.where(bad, INADMISSIBLE, C)


def most_pairs_least_cost(C):
    """Independent 1:1 reference: the assignment avoids inadmissible pairs first (so it has the
    most admissible pairs), then minimises the distance; returns (pairs, total)."""
    rows, cols = linear_sum_assignment(C)
    ok = C[rows, cols] < INADMISSIBLE
    return int(ok.sum()), float(C[rows, cols][ok].sum())


def up_to_k_lp(C, covered, k):
    """Independent reference of step 3: the treated rows ``covered`` keep 1..k controls, each
    control at most one; first the most pairs, then the least distance (two HiGHS LPs; the
    constraint matrix is a network matrix, so the LP optimum is the integer optimum)."""
    rows, cols = np.nonzero(C[covered] < INADMISSIBLE)
    cost = C[covered][rows, cols]
    n_edges = len(rows)
    by_treated = coo_matrix((np.ones(n_edges), (rows, np.arange(n_edges))), shape=(len(covered), n_edges))
    by_control = coo_matrix((np.ones(n_edges), (cols, np.arange(n_edges))), shape=(C.shape[1], n_edges))
    A = vstack([by_treated, -by_treated, by_control]).tocsr()
    b = np.r_[np.full(len(covered), k), -np.ones(len(covered)), np.ones(C.shape[1])]
    most = linprog(-np.ones(n_edges), A_ub=A, b_ub=b, bounds=(0, 1), method="highs")
    n_pairs = round(-most.fun)
    least = linprog(cost, A_ub=A, b_ub=b, A_eq=np.ones((1, n_edges)), b_eq=[n_pairs], bounds=(0, 1), method="highs")
    return n_pairs, least.fun


def check_against_references(distance, treated, ratio, limit, exact=None, result=None):
    result = result or match_optimal(distance, treated, ratio=ratio, caliper=None if np.isinf(limit) else limit,
                                     std_caliper=False, exact=exact)
    C = admissible_costs(distance, treated, limit, exact)
    n_first, first_total = most_pairs_least_cost(C)
    matched_rows = np.flatnonzero(np.isin(np.flatnonzero(treated), result.pairs["treated_index"]))
    assert result.counts["n_treated_matched"] == n_first == len(matched_rows)
    if ratio == 1:
        assert abs(total(result) - first_total) <= max(1e-9, result.details["total_distance_tolerance"])
    else:
        n_pairs, least = up_to_k_lp(C, matched_rows, ratio)
        assert len(result.pairs) == n_pairs
        assert abs(total(result) - least) <= 1e-9
    assert abs(result.details["total_distance"] - total(result)) < 1e-9
    pairs = result.pairs
    assert (pairs["distance_diff"] <= limit).all()
    assert not pairs["control_index"].duplicated().any()                     # without replacement
    assert pairs.groupby("treated_index").size().max() <= ratio
    if exact is not None:
        assert (exact[pairs["treated_index"]] == exact[pairs["control_index"]]).all()
    return result


# ---------------------------------------------------------------------------------------------
# the R fixtures (lalonde, gbsg with their ps): every spec's ratio and caliper


@pytest.mark.parametrize("dataset", sorted(TREATMENT_COLUMN))
@pytest.mark.parametrize("spec", SPECS)
def test_total_distance_equals_the_independent_optimum_on_the_fixtures(dataset, spec):
    units = pd.read_csv(REFERENCE / f"{dataset}_units.csv", float_precision="round_trip")
    expected = json.loads((REFERENCE / f"{dataset}_{spec}_expected.json").read_text())
    distance = distance_from_ps(units["ps"].to_numpy(), expected["caliper_scale"])
    treated = units[TREATMENT_COLUMN[dataset]].to_numpy() == 1
    discarded = np.zeros(len(distance), dtype=bool)
    caliper = caliper_in_distance_units(distance, discarded, expected["caliper_sd"], True)
    result = check_against_references(distance, treated, expected["ratio"], np.inf if caliper is None else caliper)
    assert result.details["total_distance_tolerance"] < 1e-9
    if caliper is not None:         # the caliper in raw units is the same as nearest matching's (MatchIt's)
        assert caliper == pytest.approx(expected["caliper_raw"], rel=1e-14)


def test_optimal_total_is_never_above_greedy_nearest_on_the_fixture():
    units = pd.read_csv(REFERENCE / "lalonde_units.csv", float_precision="round_trip")
    expected = json.loads((REFERENCE / "lalonde_r1_cal_logit_expected.json").read_text())
    reference_pairs = pd.read_csv(REFERENCE / "lalonde_r1_cal_logit_pairs.csv")
    distance = distance_from_ps(units["ps"].to_numpy(), "logit")
    result = match_optimal(distance, units["treat"].to_numpy() == 1, caliper=0.2)
    row = {r: i for i, r in enumerate(units["row_id"])}
    greedy = np.abs(distance[reference_pairs["treated_row"].map(row)] - distance[reference_pairs["control_row"].map(row)])
    # MatchIt's greedy match of the same caliper: at least as many treated, more total distance
    assert result.counts["n_treated_matched"] >= expected["n_treated_matched"]
    if result.counts["n_treated_matched"] == expected["n_treated_matched"]:
        assert total(result) < greedy.sum()


# ---------------------------------------------------------------------------------------------
# random problems, with the solver given few candidates so that pricing has to work


@pytest.fixture
def few_candidates(monkeypatch):
    monkeypatch.setattr(flow, "CANDIDATES", 1)
    monkeypatch.setattr(flow, "PRICED", 1)
    monkeypatch.setattr(flow, "MARGIN", 0.0)


@pytest.mark.parametrize("seed", range(12))
def test_random_problems_with_caliper_and_exact_strata(seed, few_candidates):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(20, 120))
    treated = rng.random(n) < rng.uniform(0.2, 0.5)
    distance = rng.normal(size=n) + 0.7 * treated
    distance[rng.random(n) < 0.1] = 0.25                       # ties
    exact = rng.integers(0, 3, size=n) if seed % 2 else None
    ratio = [1, 2, 3][seed % 3]
    limit = [np.inf, 0.15, 0.4][seed % 3 - 1 if seed % 4 else 0]
    check_against_references(distance, treated, ratio, limit, exact)


def test_pricing_reaches_the_same_optimum_as_all_pairs(monkeypatch):
    rng = np.random.default_rng(7)
    treated = rng.random(300) < 0.4
    distance = rng.normal(size=300) + 0.8 * treated
    monkeypatch.setattr(flow, "CANDIDATES", 10_000)      # every admissible pair at once
    reference = match_optimal(distance, treated, ratio=2, caliper=0.3, std_caliper=False)
    monkeypatch.setattr(flow, "CANDIDATES", 1)
    monkeypatch.setattr(flow, "PRICED", 2)
    priced = match_optimal(distance, treated, ratio=2, caliper=0.3, std_caliper=False)
    assert len(priced.pairs) == len(reference.pairs)
    assert abs(total(priced) - total(reference)) <= priced.details["total_distance_tolerance"]


# ---------------------------------------------------------------------------------------------
# the rule where not every treated patient can get k controls


def test_a_treated_patient_is_not_dropped_to_give_another_a_second_control():
    # t0 can only use c2; t1 can use c2 (nearer to it) and c3. Most pairs with least distance
    # alone would give t1 both controls; the rule matches both treated patients first.
    distance = np.array([0.0, 0.5, 0.3, 0.9])
    treated = np.array([True, True, False, False])
    result = match_optimal(distance, treated, ratio=2, caliper=0.4, std_caliper=False)
    assert result.pairs[["treated_index", "control_index"]].values.tolist() == [[0, 2], [1, 3]]
    assert result.counts["n_treated_matched"] == 2 and result.counts["n_treated_unmatched"] == 0


def test_treated_without_an_admissible_control_stay_unmatched():
    distance = np.array([0.0, 5.0, 0.1, 0.2])
    treated = np.array([True, True, False, False])
    result = match_optimal(distance, treated, caliper=0.5, std_caliper=False)
    assert result.pairs["treated_index"].tolist() == [0]
    assert result.counts["n_treated_unmatched"] == 1 and result.weights[1] == 0


def test_fewer_controls_than_treated_match_as_many_as_possible():
    distance = np.array([0.0, 1.0, 2.0, 0.9, 2.2])
    treated = np.array([True, True, True, False, False])
    result = match_optimal(distance, treated)
    # two controls for three treated: the optimum pairs 1-3 (0.1) and 2-4 (0.2)
    assert result.pairs[["treated_index", "control_index"]].values.tolist() == [[1, 3], [2, 4]]
    assert result.details["total_distance"] == pytest.approx(0.3, abs=1e-12)


def test_weights_and_subclasses_are_matchits_for_sets():
    distance = np.array([0.0, 0.1, -0.1, 5.0, 5.1, 0.05])
    treated = np.array([True, False, False, True, False, False])
    result = match_optimal(distance, treated, ratio=3, caliper=0.5, std_caliper=False)
    # t0 gets 3 controls (1, 2, 5), t3 one (4): raw control weights 1/3 x3 and 1, mean 1/2 -> x2
    np.testing.assert_allclose(result.weights, [1, 2 / 3, 2 / 3, 1, 2, 2 / 3])
    assert result.subclass.tolist() == [1, 1, 1, 2, 2, 1]
    # slots by distance: 5 (0.05), then 1 and 2 (0.1, tie: data order)
    assert result.pairs.query("treated_index == 0")["control_index"].tolist() == [5, 1, 2]


def test_same_input_gives_the_same_pairs():
    rng = np.random.default_rng(11)
    treated = rng.random(200) < 0.3
    distance = np.round(rng.normal(size=200), 1)              # many ties
    first = match_optimal(distance, treated, ratio=2, caliper=0.2)
    second = match_optimal(distance, treated, ratio=2, caliper=0.2)
    pd.testing.assert_frame_equal(first.pairs, second.pairs)


# ---------------------------------------------------------------------------------------------
# through the registry and the stage


def matching_settings(**changes) -> Matching:
    return Matching.from_dict({"method": "optimal", "ratio": 1, "caliper": 0.2, "std_caliper": True,
                               "caliper_scale": "logit", "replace": False, "order": "largest", "exact": [],
                               "discard": "none", "distance": "propensity", "mahalanobis": [],
                               "min_controls": None, "max_controls": None, **changes})


def test_match_stage_reports_the_total_distance_and_its_tolerance():
    distance = np.array([0.0, 0.05, 3.0, 1.0, 1.05, 0.92])
    treated = np.array([True, False, False, True, False, False])
    ids = [f"P{i}" for i in range(6)]
    cohort = pd.DataFrame({"patient_id": ids, "treated": treated})
    scores = pd.DataFrame({"patient_id": ids, "group": "x", "ps": 1 / (1 + np.exp(-distance)),
                           "distance": distance, "discarded": False})
    matched, pairs, summary = match_stage(cohort, scores, matching_settings(ratio=2, caliper=0.2, std_caliper=False),
                                          seed=1)
    assert pairs[["treated_id", "control_id"]].values.tolist() == [["P0", "P1"], ["P3", "P4"], ["P3", "P5"]]
    assert summary["total_distance"] == pytest.approx(0.05 + 0.05 + 0.08, abs=1e-12)
    assert 0 < summary["total_distance_tolerance"] < 1e-12
    assert matched["subclass"].tolist() == [1, 1, 2, 2, 2]


def test_optimal_describes_itself():
    sentence = matching_methods.describe(matching_settings(ratio=2, exact=["center"]), 0.35)
    assert sentence.startswith("Patients were matched 2:1 by optimal matching without replacement")
    assert "exactly within center" in sentence and "(raw width 0.3500)" in sentence
    assert sentence.endswith("common-support discard: none.")


# ---------------------------------------------------------------------------------------------
# large problems on the distance: predicted pairs from a thinned problem, cheap pricing on a line


@pytest.fixture
def thinned_from_small_problems(monkeypatch):
    """Hints on problems of any size, with windows so narrow that pricing must grow them."""
    from pipeline.design.matching import optimal
    monkeypatch.setattr(optimal, "THINNED_ABOVE", 8)
    monkeypatch.setattr(optimal, "THINNING", 3)
    monkeypatch.setattr(flow, "HINT_WINDOW", 1)
    monkeypatch.setattr(flow, "HINTED_CANDIDATES", 1)
    monkeypatch.setattr(flow, "PRICED", 1)


def clustered_problem(seed):
    """Clusters of patients farther apart than the caliper (independent components), with ties."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(60, 200))
    treated = rng.random(n) < rng.uniform(0.25, 0.55)
    distance = rng.normal(size=n) + 0.8 * treated + 3.0 * rng.integers(0, 3, size=n)
    distance[rng.random(n) < 0.1] = 0.5
    return distance, treated


@pytest.mark.parametrize("seed", range(16))
def test_thinned_hints_reach_the_independent_optimum(seed, thinned_from_small_problems, monkeypatch):
    distance, treated = clustered_problem(seed)
    exact = np.random.default_rng(seed).integers(0, 2, size=len(distance)) if seed % 4 == 3 else None
    ratio = [1, 2, 3][seed % 3]
    limit = [0.1, 0.3, 0.6, np.inf][seed % 4]
    solves = []
    original = flow._solve_once
    monkeypatch.setattr(flow, "_solve_once", lambda *args: solves.append(1) or original(*args))
    check_against_references(distance, treated, ratio, limit, exact)
    assert len(solves) > 1             # the thinned problem's solves, and this one's


def test_the_first_candidates_are_grown_when_they_do_not_hold_the_optimum(thinned_from_small_problems, monkeypatch):
    # treated patients outnumber the controls at the right: the optimum reaches controls far
    # from the predicted ones, which pricing has to add
    rng = np.random.default_rng(5)
    treated = rng.random(400) < 0.45
    distance = rng.normal(size=400) + 1.2 * treated
    rounds = []
    original = flow._price
    monkeypatch.setattr(flow, "_price", lambda *args: rounds.append(original(*args)) or rounds[-1])
    check_against_references(distance, treated, 1, 0.5)
    assert any(len(t_new) for t_new, _, _ in rounds)


@pytest.mark.parametrize("seed", range(6))
def test_the_line_check_never_misses_a_pair_below_the_threshold(seed):
    rng = np.random.default_rng(seed)
    n = 300
    treated = rng.random(n) < 0.4
    distance = np.round(rng.normal(size=n), 2)
    exact = rng.integers(0, 2, size=n)
    graph = flow.admissible_pairs(distance, treated, np.zeros(n, dtype=bool), exact, 0.4)
    n_t, n_c = len(graph.treated), len(graph.control)
    scale = 1e9
    potential = rng.integers(-10**8, 10**8, size=n_t + n_c + 2)
    t_cand, c_cand = flow._union(*flow._windows(graph, np.arange(n_t), graph.position), [], [])
    candidate = set(zip(t_cand.tolist(), c_cand.tolist()))
    least = np.full(n_t, np.iinfo(np.int64).max)
    for i in range(n_t):
        for j in range(graph.lo[i], graph.hi[i] + 1):
            if (i, j) not in candidate:
                cost = np.int64(np.rint(abs(distance[graph.treated[i]] - distance[graph.control[j]]) * scale))
                least[i] = min(least[i], cost + potential[i] - potential[n_t + j])
    for threshold in (-1, 0, 10**7):
        suspects = flow._may_price_below(graph, scale, potential, t_cand, c_cand, threshold)
        assert suspects[least < threshold].all()
        assert not suspects.all()              # it rules nodes out, else it would be no check


def test_predicted_pairs_of_a_thinned_problem_shift_its_sorted_optimum():
    # treated at 0..9, controls at 0.5..9.5 and a far one: every treated patient's partner is the
    # control to its right, in the thinned problem too; the prediction recovers exactly that
    distance = np.r_[np.arange(10.0), np.arange(10.0) + 0.5, 50.0]
    treated = np.r_[np.ones(10, dtype=bool), np.zeros(11, dtype=bool)]
    graph = flow.admissible_pairs(distance, treated, np.zeros(21, dtype=bool), None, None)
    thinned, *kept = graph.thinned(2)
    from pipeline.design.matching.optimal import _optimum
    t_nodes, c_nodes = graph.predicted_pairs(2, kept, _optimum(thinned, 1)[0])
    np.testing.assert_array_equal(t_nodes, np.arange(10))
    np.testing.assert_array_equal(c_nodes, np.arange(10))


def test_a_problem_whose_only_pairs_cost_nothing():
    distance = np.array([0.5, 0.5, 3.0, 0.5])
    treated = np.array([True, False, True, True])
    result = match_optimal(distance, treated, caliper=0.1, std_caliper=False)
    assert result.pairs[["treated_index", "control_index"]].values.tolist() == [[0, 1]]
    assert result.details["total_distance"] == 0.0
