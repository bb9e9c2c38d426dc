"""The method registries: a matching method or a propensity model added to its registry (and nowhere
else) runs through the stage functions and describes itself for the report."""
import numpy as np
import pandas as pd
import pytest

from pipeline.config.settings import Matching, Propensity, PropensityDesign, Variable
from pipeline.design import matching as matching_methods
from pipeline.design import propensity as propensity_models
from pipeline.design.matching.common import NO_MATCH, MatchingMethod, match_result
from pipeline.design.propensity.common import PropensityFit, PropensityModel
from pipeline.design.stages import match_stage, propensity_stage


# --- a trivial matching method: each treated patient, in data order, takes the first free control
# in distance order (no caliper, no exact strata)

def first_free_match(distance, treated, exact, discarded, matching, seed):
    free = [c for c in np.argsort(distance, kind="stable") if not treated[c] and not discarded[c]]
    match_matrix = np.full((int(treated.sum()), 1), NO_MATCH, dtype=np.int64)
    for row, unit in enumerate(np.flatnonzero(treated)):
        if free and not discarded[unit]:
            match_matrix[row, 0] = free.pop(0)
    return match_result(match_matrix, treated, discarded, distance, replace=False, caliper_raw=None)


def first_free_describe(matching, caliper_raw):
    return "Each treated patient took the first free control in distance order."


FIRST_FREE = MatchingMethod(match=first_free_match, describe=first_free_describe)


def settings(method: str) -> Matching:
    return Matching.from_dict({"method": method, "ratio": 1, "caliper": None, "std_caliper": True,
                               "caliper_scale": "logit", "replace": False, "order": "data", "exact": [],
                               "discard": "none"})


def five_patients():
    """Treated P0 (distance 0.45) and P2 (0.9); controls P1 (0.1), P3 (0.3), P4 (0.7)."""
    distance = np.array([0.45, 0.1, 0.9, 0.3, 0.7])
    treated = np.array([True, False, True, False, False])
    ids = [f"P{i}" for i in range(5)]
    cohort = pd.DataFrame({"patient_id": ids, "treated": treated})
    scores = pd.DataFrame({"patient_id": ids, "group": np.where(treated, "treated", "control"),
                           "ps": 1 / (1 + np.exp(-distance)), "distance": distance, "discarded": False})
    return cohort, scores


def test_a_matching_method_added_to_the_registry_runs_through_the_stage(monkeypatch):
    monkeypatch.setitem(matching_methods.METHODS, "first_free", FIRST_FREE)
    cohort, scores = five_patients()
    matched, pairs, summary = match_stage(cohort, scores, settings("first_free"), seed=1)
    # free controls by distance: P1, P3, P4 -> P0 takes P1, P2 takes P3 (nearest neighbours: P3 and P4)
    assert pairs[["treated_id", "control_id"]].values.tolist() == [["P0", "P1"], ["P2", "P3"]]
    assert matched["patient_id"].tolist() == ["P0", "P1", "P2", "P3"]
    assert matched["subclass"].tolist() == [1, 1, 2, 2] and (matched["weight"] == 1.0).all()
    assert summary["settings"]["method"] == "first_free" and summary["caliper_raw"] is None
    assert summary["n_treated_matched"] == 2 and summary["n_controls_matched"] == 2
    assert matching_methods.describe(settings("first_free"), None) == first_free_describe(None, None)
    nearest_pairs = match_stage(cohort, scores, settings("nearest"), seed=1)[1]
    assert nearest_pairs["control_id"].tolist() == ["P3", "P4"]


# --- a trivial propensity model: the rank of the first covariate column, scaled into (0, 1)

def rank_fit(X, treated, propensity, seed, cohort):
    x = X.iloc[:, 0].to_numpy(float)
    ps = (np.argsort(np.argsort(x, kind="stable"), kind="stable") + 0.5) / len(x)
    return PropensityFit(ps=ps, model="rank", coefficients=None, converged=True, warnings=[])


def rank_describe(propensity, covariates):
    return f"The propensity score was the rank of {covariates[0]}."


def test_a_propensity_model_added_to_the_registry_runs_through_the_stages(monkeypatch):
    monkeypatch.setitem(propensity_models.MODELS, "rank", PropensityModel(fit=rank_fit, describe=rank_describe))
    propensity = Propensity.from_dict({"model": "rank", "splines": {}})
    design = PropensityDesign(covariates=("age",), missing="complete_case", propensity=propensity,
                              caliper_scale="logit", discard="none")
    cohort = pd.DataFrame({"patient_id": ["a", "b", "c", "d"], "treated": [True, False, True, False],
                           "center": ["x", "x", "y", "y"], "age": [70.0, 40.0, 55.0, 60.0]})
    variables = {"age": Variable.from_dict({"type": "numeric"})}
    scores, summary = propensity_stage(cohort, design, variables, seed=1)
    np.testing.assert_allclose(scores["ps"], [3.5 / 4, 0.5 / 4, 1.5 / 4, 2.5 / 4])
    assert summary["model"] == "rank" and summary["coefficients"] is None
    assert propensity_models.describe(propensity, ["Age"]) == "The propensity score was the rank of Age."
    matched, _, _ = match_stage(cohort, scores, settings("nearest"), seed=1)
    assert set(matched["patient_id"]) == {"a", "b", "c", "d"}


def test_the_registries_describe_every_registered_entry():
    for name in matching_methods.METHODS:
        assert matching_methods.describe(settings(name), 0.25).endswith(".")
    for name in propensity_models.MODELS:
        propensity = Propensity.from_dict({"model": name, "column": "score", "splines": {}})
        sentence = propensity_models.describe(propensity, ["Age", "Sex"])
        assert sentence.startswith("The propensity score was") and "Age, Sex" in sentence


def test_spline_terms_are_named_in_the_description():
    propensity = Propensity.from_dict({"model": "logistic", "splines": {"age": 4}})
    sentence = propensity_models.describe(propensity, ["age", "sex"])
    assert sentence == ("The propensity score was estimated with an unpenalized logistic regression (maximum "
                        "likelihood, as R's glm) on age, sex, with restricted cubic splines (Harrell) for age "
                        "(4 knots).")
    assert "splines" not in propensity_models.describe(Propensity.from_dict({"model": "logistic", "splines": {}}),
                                                       ["age"])


@pytest.mark.parametrize("model", ["elastic_net", "gradient_boosting"])
def test_causalml_models_name_their_library(model):
    sentence = propensity_models.describe(Propensity.from_dict({"model": model, "splines": {}}), ["age"])
    assert "(causalml) on age." in sentence
