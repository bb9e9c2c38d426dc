"""Degenerate analyses are results with a reason: the stage functions on data that real subgroups produce."""
import numpy as np
import pandas as pd
import pytest

from dataclasses import replace

from pipeline.config.settings import Analysis, Variable
from pipeline.config.validate import block_with_defaults
from pipeline.design.balance import balance_table, constant_covariates
from pipeline.design.matching.common import matching_distance
from pipeline.design.propensity import fit_propensity
from pipeline.design.propensity.logistic import separating_covariates
from pipeline.design.stages import balance_stage, match_stage, matching_weights, propensity_stage
from pipeline.errors import NotEstimable
from pipeline.io import estimable_record, upstream_not_estimable, write_json, write_not_estimable

VARIABLES = {name: Variable.from_dict(spec) for name, spec in {
    "age": {"type": "numeric"}, "ecog": {"type": "integer"}, "male": {"type": "binary"},
    "grade": {"type": "category", "levels": ["G1", "G2", "G3"]}}.items()}
ANALYSIS = Analysis.from_dict(block_with_defaults({
    "treatment": {"column": "arm", "treated": "a", "control": "b"},
    "covariates": ["age", "male", "grade"],
    "missing": "complete_case",
    "propensity": {"model": "logistic"},
    "matching": {"caliper": 0.2},
}, "analysis"))


def cohort(n=60, seed=3, **columns) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    treated = np.arange(n) % 2 == 0
    frame = pd.DataFrame({
        "patient_id": [f"P{i}" for i in range(n)],
        "treated": treated,
        "age": rng.normal(60, 10, n).round(1),
        "male": pd.array(rng.integers(0, 2, n), dtype="Int8"),
        "grade": pd.array(rng.choice(["G1", "G2", "G3"], n), dtype="string"),
    })
    for name, values in columns.items():
        frame[name] = values
    return frame


def run_design(data: pd.DataFrame, analysis=ANALYSIS):
    scores, propensity = propensity_stage(data, analysis.propensity_design, VARIABLES, seed=1)
    matched, pairs, matching = match_stage(data, scores, analysis.matching, 1, propensity)
    return scores, propensity, matched, matching


def test_separating_covariate_is_named_and_the_match_is_not_estimable():
    data = cohort()
    data["age"] = np.where(data["treated"], 70.0, 40.0) + np.arange(len(data)) / 100   # ranges do not overlap
    with pytest.raises(NotEstimable) as caught:
        run_design(data)
    assert "age ranges" in caught.value.reason and "do not overlap" in caught.value.reason
    assert "caliper" not in caught.value.reason.split("(")[0]      # not the misleading "widen the caliper"


def test_scores_of_exactly_0_or_1_are_discarded_not_an_error():
    distance, unmatchable = matching_distance(np.array([0.0, 0.25, 1.0, 0.5]), "logit")
    assert unmatchable.tolist() == [True, False, True, False]
    assert distance[0] == -np.inf and distance[2] == np.inf and distance[1] == pytest.approx(np.log(1 / 3))
    _, none = matching_distance(np.array([0.0, 1.0]), "ps")
    assert not none.any()


def test_level_present_in_one_arm_only_is_named():
    data = cohort()
    treated = data["treated"].to_numpy()
    data.loc[treated & (np.arange(len(data)) < 12), "grade"] = "G3"
    data.loc[~treated & (data["grade"] == "G3"), "grade"] = "G2"
    X = pd.get_dummies(data["grade"], prefix="grade", prefix_sep="=", dtype=float)
    sentences = separating_covariates(X, treated)
    assert "every patient with grade=G3 = 1 is treated" in sentences


def test_no_control_within_the_caliper_says_so():
    data = cohort()
    analysis = replace(ANALYSIS, matching=replace(ANALYSIS.matching, caliper=1e-9))
    with pytest.raises(NotEstimable, match="within the caliper.*widen the caliper"):
        run_design(data, analysis)


def test_no_control_in_any_exact_stratum_without_a_caliper_says_so():
    data = cohort(site=np.where(np.arange(60) % 2 == 0, "x", "y"))        # site equals the arm
    analysis = replace(ANALYSIS, matching=replace(ANALYSIS.matching, caliper=None, exact=("site",)))
    with pytest.raises(NotEstimable, match="no treated patient has a control to be matched with, within the "
                                           "exact-matching strata; check the propensity model or match exactly "
                                           "on fewer variables than site"):
        run_design(data, analysis)


def test_covariate_constant_in_one_arm_gives_na_variance_ratio_and_a_warning():
    data = cohort()
    data["age"] = np.where(data["treated"], 55.0, data["age"])
    X = data[["age"]].astype(float)
    weights = np.ones(len(data))
    table = balance_table(X, data["treated"].to_numpy(), weights)
    assert table.loc[0, "var_ratio_before"] < 1e-20                      # treated constant: ratio ~0
    flipped = balance_table(X, ~data["treated"].to_numpy(), weights)     # now the controls are constant
    assert np.isnan(flipped.loc[0, "var_ratio_before"]) and np.isnan(flipped.loc[0, "var_ratio_after"])
    assert constant_covariates(X, data["treated"].to_numpy(), weights) == [
        "age is constant among the treated: its variance ratio is not defined"]


def test_covariate_separating_the_arms_has_no_smd_instead_of_a_crash():
    treated = np.array([True] * 5 + [False] * 5)
    X = pd.DataFrame({"male": treated.astype(float), "age": np.linspace(40, 80, 10)})
    table = balance_table(X, treated, np.ones(10))
    assert np.isnan(table.loc[0, "smd_before"]) and np.isfinite(table.loc[1, "smd_before"])


def test_balance_stage_reports_constant_covariates():
    data = cohort()
    scores, _, matched, _ = run_design(data)
    data["ecog"] = pd.array(np.where(data["treated"], 1, 2), dtype="Int64")
    _, _, summary = balance_stage(data, scores, matching_weights(data, matched), ["age", "ecog"], "complete_case", VARIABLES, min_cell=5)
    assert summary["estimable"] is True
    assert any(w.startswith("ecog is constant among") for w in summary["warnings"])


def test_not_estimable_outputs_and_their_propagation(tmp_path):
    record = estimable_record("no treated patient could be matched", "match")
    outputs = [tmp_path / name for name in ("matched.csv", "matching.json", "scores.parquet", "km.png", "b.npy")]
    write_not_estimable(outputs, record)
    assert pd.read_csv(outputs[0]).to_dict("records") == [{"estimable": False, "reason": record["reason"]}]
    assert pd.read_parquet(outputs[2])["reason"].tolist() == [record["reason"]]
    assert outputs[3].read_bytes().startswith(b"\x89PNG")
    assert upstream_not_estimable([outputs[0], outputs[1]]) == record
    write_json({"estimable": True, "n": 3}, tmp_path / "fine.json")
    assert upstream_not_estimable([tmp_path / "fine.json", outputs[0]]) is None


def test_logistic_fit_on_separated_data_warns_with_the_culprit():
    treated = np.array([True] * 20 + [False] * 20)
    X = pd.DataFrame({"score": np.r_[np.linspace(5, 9, 20), np.linspace(0, 4, 20)]})
    fit = fit_propensity(X, treated, ANALYSIS.propensity, seed=1)
    assert any("score ranges 5 to 9 in the treated and 0 to 4" in w for w in fit.warnings)
