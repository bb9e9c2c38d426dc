"""Mahalanobis matching (pipeline.design.matching.mahalanobis and the methods' ``features``):
MatchIt's covariance (pooled within arm), its distance, nearest and optimal matching on it with a
caliper on the propensity score."""
import numpy as np
import pandas as pd
import pytest
from pathlib import Path
from scipy.optimize import linear_sum_assignment

from pipeline.config.settings import Matching
from pipeline.design import matching as matching_methods
from pipeline.design.matching.common import distance_from_ps
from pipeline.design.matching.mahalanobis import mahalanobis_features
from pipeline.design.matching.nearest import match_nearest
from pipeline.design.matching.optimal import match_optimal
from pipeline.design.stages import match_stage

REFERENCE = Path(__file__).parent / "reference"
LALONDE_COVARIATES = ["age", "educ", "black", "hispan", "married", "nodegree", "re74", "re75"]


def lalonde():
    units = pd.read_csv(REFERENCE / "lalonde_units.csv", float_precision="round_trip")
    return units, units["treat"].to_numpy() == 1, units[LALONDE_COVARIATES].to_numpy(float)


def textbook_distances(X, treated, discarded):
    """sqrt((x - y)' S^-1 (x - y)) with S the pooled within-arm covariance of the raw covariates
    of the patients not discarded (sums of squares over n - 2), for every treated x control."""
    keep = ~discarded
    centred = X[keep].copy()
    for arm in (True, False):
        centred[treated[keep] == arm] -= X[keep][treated[keep] == arm].mean(axis=0)
    S = centred.T @ centred / (keep.sum() - 2)
    diff = X[treated][:, None, :] - X[~treated][None, :, :]
    return np.sqrt(np.einsum("tcj,jk,tck->tc", diff, np.linalg.inv(S), diff))


def feature_distances(F, treated):
    return np.sqrt(((F[treated][:, None, :] - F[~treated][None, :, :]) ** 2).sum(axis=2))


def test_distances_are_mahalanobis_with_the_pooled_within_arm_covariance():
    _, treated, X = lalonde()
    discarded = np.zeros(len(X), dtype=bool)
    discarded[::17] = True                       # the covariance leaves the discarded out
    F = mahalanobis_features(X, treated, discarded)
    np.testing.assert_allclose(feature_distances(F, treated), textbook_distances(X, treated, discarded),
                               rtol=1e-9, atol=1e-12)


def test_constant_covariates_are_dropped_and_a_category_does_not_depend_on_its_reference():
    rng = np.random.default_rng(2)
    n = 200
    treated = rng.random(n) < 0.4
    age = rng.normal(60, 10, n)
    level = rng.integers(0, 3, n)
    one_hot = np.eye(3)[level]
    discarded = np.zeros(n, dtype=bool)
    reference_b = np.column_stack([age, one_hot[:, 1:], np.ones(n)])        # level 0 reference, a constant
    reference_c = np.column_stack([age, one_hot[:, [0, 2]]])                 # level 1 reference
    np.testing.assert_allclose(feature_distances(mahalanobis_features(reference_b, treated, discarded), treated),
                               feature_distances(mahalanobis_features(reference_c, treated, discarded), treated),
                               rtol=1e-9, atol=1e-12)
    # MatchIt's all-levels indicators (singular covariance -> generalised inverse) give the same
    np.testing.assert_allclose(feature_distances(mahalanobis_features(np.column_stack([age, one_hot]), treated,
                                                                      discarded), treated),
                               feature_distances(mahalanobis_features(reference_c, treated, discarded), treated),
                               rtol=1e-7, atol=1e-9)


def greedy_reference(distance, treated, F, limit, ratio, order):
    """Nearest matching on the features by brute force: rounds of the treated in ``order``, each
    taking the nearest available control within the caliper on the distance (ties: data order)."""
    controls = list(np.flatnonzero(~treated))
    used, pairs = set(), []
    active = {t: True for t in order}
    for slot in range(ratio):
        for t in order:
            if not active[t]:
                continue
            options = [(np.sum((F[t] - F[c]) ** 2), c) for c in controls
                       if c not in used and abs(distance[t] - distance[c]) <= limit]
            if not options:
                active[t] = False
                continue
            _, best = min(options)
            used.add(best)
            pairs.append((t, slot + 1, best))
    return sorted(pairs)


@pytest.mark.parametrize("ratio", [1, 2])
def test_nearest_on_features_equals_a_brute_force_greedy_match(ratio):
    units, treated, X = lalonde()
    distance = distance_from_ps(units["ps"].to_numpy(), "logit")
    F = mahalanobis_features(X, treated, np.zeros(len(X), dtype=bool))
    result = match_nearest(distance, treated, ratio=ratio, caliper=0.5, std_caliper=False, order="largest",
                           features=F)
    treated_idx = np.flatnonzero(treated)
    order = treated_idx[np.argsort(-distance[treated_idx], kind="stable")]
    expected = greedy_reference(distance, treated, F, 0.5, ratio, order)
    got = sorted(result.pairs[["treated_index", "slot", "control_index"]].itertuples(index=False, name=None))
    assert got == expected


def test_optimal_on_features_equals_the_assignment_within_the_propensity_caliper():
    units, treated, X = lalonde()
    distance = distance_from_ps(units["ps"].to_numpy(), "logit")
    F = mahalanobis_features(X, treated, np.zeros(len(X), dtype=bool))
    result = match_optimal(distance, treated, caliper=0.3, std_caliper=False, features=F)
    D = feature_distances(F, treated)
    outside = np.abs(distance[treated][:, None] - distance[~treated][None, :]) > 0.3
    C = np.where(outside, 1e6, D)
    rows, cols = linear_sum_assignment(C)
    ok = C[rows, cols] < 1e6
    assert result.counts["n_treated_matched"] == ok.sum()
    assert abs(result.details["total_distance"] - C[rows, cols][ok].sum()) <= 1e-9
    assert (result.pairs["distance_diff"] <= 0.3).all()          # the caliper is on the propensity score


def test_match_stage_matches_on_the_mahalanobis_distance_of_the_covariates():
    # P0 (treated) is nearest P1 on the score but identical to P2 on the covariates
    ids = ["P0", "P1", "P2", "P3"]
    distance = np.array([0.0, 0.01, 0.1, 0.3])
    covariates = pd.DataFrame({"age": [50.0, 80.0, 50.0, 65.0], "size": [2.0, 5.0, 2.0, 3.0]})
    cohort = pd.DataFrame({"patient_id": ids, "treated": [True, False, False, False]})
    scores = pd.DataFrame({"patient_id": ids, "group": "x", "ps": 1 / (1 + np.exp(-distance)),
                           "distance": distance, "discarded": False})
    base = {"ratio": 1, "caliper": 0.2, "std_caliper": False, "caliper_scale": "logit", "replace": False,
            "order": "largest", "exact": [], "discard": "none", "mahalanobis": [], "min_controls": None,
            "max_controls": None}
    for method in ("nearest", "optimal", "full"):
        on_ps = Matching.from_dict({**base, "method": method, "distance": "propensity"})
        on_covariates = Matching.from_dict({**base, "method": method, "distance": "mahalanobis"})
        assert match_stage(cohort, scores, on_ps, 1)[1]["control_id"].tolist()[:1] == ["P1"]
        pairs = match_stage(cohort, scores, on_covariates, 1, covariates=covariates)[1]
        # P3 is beyond the caliper; full matching puts every patient with a possible match in a set
        assert pairs["control_id"].tolist() == (["P1", "P2"] if method == "full" else ["P2"])
        sentence = matching_methods.describe(on_covariates, 0.2)
        assert "on the Mahalanobis distance of the analysis covariates" in sentence


def test_mahalanobis_covariates_default_to_the_analysis_covariates():
    matching = Matching.from_dict({"method": "nearest", "mahalanobis": []})
    assert matching.mahalanobis_covariates(("age", "grade")) == ("age", "grade")
    listed = Matching.from_dict({"method": "nearest", "mahalanobis": ["grade", "functional"]})
    # a subgroup analysis has lost its subgroup variable (constant within it)
    assert listed.mahalanobis_covariates(("age", "grade")) == ("grade",)
