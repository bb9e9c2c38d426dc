"""Propensity models and their diagnostics: R glm reference fixtures, hand-checkable cases, causalml seeding."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from pipeline.config.settings import Propensity, Variable
from pipeline.design.propensity import fit_propensity
from pipeline.design.propensity.design_matrix import add_missing_indicators, design_matrix
from pipeline.design.propensity.diagnostics import preference_score, ps_diagnostics, weighted_auc
from pipeline.design.propensity.splines import restricted_cubic_spline
from pipeline.errors import ConfigError, DataError

REFERENCE = Path(__file__).parent / "reference"
FIXTURES = {
    "lalonde": ("treat", ["age", "educ", "black", "hispan", "married", "nodegree", "re74", "re75"]),
    "gbsg": ("hormon", ["age", "meno", "size", "grade", "nodes", "pgr", "er"]),
}
VARIABLES = {name: Variable.from_dict(spec) for name, spec in {
    "age": {"type": "numeric"},
    "ecog": {"type": "integer"},
    "functional": {"type": "binary"},
    "grade": {"type": "category", "levels": ["G1", "G2", "G3"]},
    "site": {"type": "category", "levels": ["pancreas", "small_bowel", "other"]},
    "treatment_date": {"type": "date"},
}.items()}


def model(name: str = "logistic", **settings) -> Propensity:
    """An analysis's propensity settings as the schema fills them."""
    return Propensity.from_dict({"model": name, "splines": {}, **settings})


def small_frame() -> pd.DataFrame:
    return pd.DataFrame({
        "age": [50.0, 60.0, np.nan, 70.0],
        "ecog": pd.array([0, 1, None, 2], dtype="Int64"),
        "functional": pd.array([1, None, 0, 1], dtype="Int8"),
        "grade": pd.array(["G2", "G3", "G2", None], dtype="string"),
        "site": pd.array(["small_bowel", "other", "small_bowel", "other"], dtype="string"),
    })


# ---------------------------------------------------------------- R glm reference

@pytest.mark.parametrize("dataset", sorted(FIXTURES))
def test_logistic_equals_r_glm(dataset):
    treatment, covariates = FIXTURES[dataset]
    units = pd.read_csv(REFERENCE / f"{dataset}_units.csv")
    expected = json.loads((REFERENCE / f"{dataset}_glm_coef.json").read_text())
    fit = fit_propensity(units[covariates].astype(float), units[treatment].to_numpy(), model(), seed=1)
    assert fit.converged and fit.warnings == []
    assert list(fit.coefficients) == list(expected)
    for name, value in expected.items():
        assert fit.coefficients[name] == pytest.approx(value, rel=1e-6, abs=1e-12), name
    np.testing.assert_allclose(fit.ps, units["ps"], rtol=0, atol=1e-6)


# ---------------------------------------------------------------- design matrix

def test_design_matrix_reference_level_is_first_configured_level_present():
    X = design_matrix(small_frame().iloc[[0, 1, 2]], ["site", "grade"], VARIABLES)
    # site: 'pancreas' is absent, so 'small_bowel' is the reference; grade: G1 absent, G2 reference.
    assert list(X.columns) == ["site=other", "grade=G3"]
    assert X["site=other"].tolist() == [0.0, 1.0, 0.0]
    assert X["grade=G3"].tolist() == [0.0, 1.0, 0.0]


def test_design_matrix_numeric_types_become_float_with_nan():
    X = design_matrix(small_frame(), ["age", "ecog", "functional"], VARIABLES)
    assert list(X.columns) == ["age", "ecog", "functional"]
    assert all(dtype == np.float64 for dtype in X.dtypes)
    assert np.isnan(X.loc[2, "ecog"]) and np.isnan(X.loc[1, "functional"])
    assert X["ecog"].tolist()[:2] == [0.0, 1.0]


def test_design_matrix_missing_category_value_stays_missing():
    X = design_matrix(small_frame(), ["grade"], VARIABLES)
    assert np.isnan(X.loc[3, "grade=G3"])


def test_design_matrix_rejects_unknown_level_and_unusable_types():
    frame = small_frame().assign(site=pd.array(["liver"] * 4, dtype="string"))
    with pytest.raises(DataError, match="site"):
        design_matrix(frame, ["site"], VARIABLES)
    with pytest.raises(ConfigError, match="treatment_date"):
        design_matrix(frame.assign(treatment_date=pd.Timestamp("2001-01-01")), ["treatment_date"], VARIABLES)
    with pytest.raises(ConfigError, match="weight"):
        design_matrix(frame.assign(weight=1.0), ["weight"], VARIABLES)


def test_missing_indicators_fill_and_flag():
    frame, names = add_missing_indicators(small_frame(), ["age", "ecog", "functional", "grade", "site"], VARIABLES)
    assert names == ["age", "age_missing", "ecog", "ecog_missing", "functional", "functional_missing",
                     "grade", "site"]
    assert frame["age"].tolist() == [50.0, 60.0, 60.0, 70.0]          # the observed mean fills the gap
    assert frame["age_missing"].tolist() == [0, 0, 1, 0]
    assert frame["ecog"].tolist() == [0.0, 1.0, 1.0, 2.0]             # mean of 0, 1, 2
    assert frame["functional"].tolist() == [1.0, 0.0, 0.0, 1.0]       # binary gaps filled with 0
    assert frame["functional_missing"].tolist() == [0, 1, 0, 0]
    assert frame["grade"].tolist() == ["G2", "G3", "G2", "(missing)"]
    X = design_matrix(frame, names, VARIABLES)
    assert list(X.columns) == ["age", "age_missing", "ecog", "ecog_missing", "functional", "functional_missing",
                               "grade=G3", "grade=(missing)", "site=other"]
    assert not X.isna().any().any()


def test_missing_indicators_leave_complete_covariates_alone():
    frame, names = add_missing_indicators(small_frame(), ["site"], VARIABLES)
    assert names == ["site"]
    pd.testing.assert_frame_equal(frame, small_frame())


# ---------------------------------------------------------------- splines

def test_restricted_cubic_spline_by_hand():
    # knots 1, 2, 3, 4; first term at x = 5: (4^3 - 2^3 * 3/1 + 1^3 * 2/1) / (4 - 1)^2 = 42 / 9
    basis = restricted_cubic_spline(np.array([0.0, 1.0, 3.0, 5.0]), np.array([1.0, 2.0, 3.0, 4.0]))
    assert basis.shape == (4, 2)
    np.testing.assert_allclose(basis[:, 0], [0.0, 0.0, 8 / 9, 42 / 9])
    # second term (t = 2) at x = 5: (3^3 - 2^3 * 2/1 + 1^3 * 1/1) / 9 = 12 / 9
    np.testing.assert_allclose(basis[:, 1], [0.0, 0.0, 1 / 9, 12 / 9])


def test_restricted_cubic_spline_is_linear_beyond_the_outer_knots():
    x = np.linspace(-5.0, 15.0, 81)
    basis = restricted_cubic_spline(x, np.array([0.0, 2.0, 5.0, 7.0, 10.0]))
    for column in basis.T:
        outside_left, outside_right = column[x <= 0.0], column[x >= 10.0]
        assert np.allclose(outside_left, 0.0)
        assert np.allclose(np.diff(outside_right, 2), 0.0, atol=1e-9)


def test_spline_terms_enter_the_logistic_model():
    rng = np.random.default_rng(4)
    age = rng.uniform(30, 90, 300)
    treated = rng.random(300) < 1 / (1 + np.exp(-((age - 60) / 8) ** 2 + 1))
    fit = fit_propensity(pd.DataFrame({"age": age}), treated, model(splines={"age": 4}), seed=1)
    assert list(fit.coefficients) == ["(Intercept)", "age", "age'", "age''"]
    with pytest.raises(DataError, match="too few distinct values for 4 knots"):
        fit_propensity(pd.DataFrame({"age": np.round(age / 100)}), treated, model(splines={"age": 4}), seed=1)


# ---------------------------------------------------------------- fitting problems

def test_perfect_separation_warns_and_still_returns_scores():
    x = np.arange(12.0)
    treated = x > 5.5
    fit = fit_propensity(pd.DataFrame({"x": x}), treated, model(), seed=1)
    assert any("separate" in w for w in fit.warnings)
    assert np.all(np.isfinite(fit.ps)) and np.all((fit.ps >= 0) & (fit.ps <= 1))
    assert np.all(fit.ps[treated] > 0.5) and np.all(fit.ps[~treated] < 0.5)


def test_collinear_covariates_warn():
    rng = np.random.default_rng(3)
    x = rng.normal(size=40)
    X = pd.DataFrame({"a": x, "b": 2 * x, "c": rng.normal(size=40)})
    fit = fit_propensity(X, rng.random(40) < 0.5, model(), seed=1)
    assert any("rank deficient" in w for w in fit.warnings)
    assert np.all(np.isfinite(fit.ps))


def test_missing_values_or_one_arm_are_data_errors():
    X = pd.DataFrame({"x": [1.0, np.nan, 3.0, 4.0]})
    with pytest.raises(DataError, match="missing"):
        fit_propensity(X, np.array([1, 0, 1, 0]), model(), seed=1)
    with pytest.raises(DataError, match="arm"):
        fit_propensity(X.fillna(2.0), np.ones(4), model(), seed=1)


def test_precomputed_scores_pass_through_and_are_checked():
    X = pd.DataFrame({"x": [1.0, 2.0, 3.0]})
    precomputed = model("precomputed", column="p")
    fit = fit_propensity(X, np.array([1, 0, 1]), precomputed, seed=1, cohort=pd.DataFrame({"p": [0.2, 0.5, 0.9]}))
    assert fit.ps.tolist() == [0.2, 0.5, 0.9] and fit.model == "precomputed"
    with pytest.raises(DataError, match="'p' has 2 values missing or outside"):
        fit_propensity(X, np.array([1, 0, 1]), precomputed, seed=1, cohort=pd.DataFrame({"p": [0.2, 1.0, np.nan]}))


# ---------------------------------------------------------------- causalml models

@pytest.fixture(scope="module")
def tiny_data():
    rng = np.random.default_rng(11)
    X = pd.DataFrame({"age": rng.normal(60, 10, 120), "grade": rng.integers(0, 3, 120).astype(float)})
    treated = rng.random(120) < 1 / (1 + np.exp(-(X["age"].to_numpy() - 60) / 10))
    return X, treated


@pytest.mark.parametrize("name", ["elastic_net", "gradient_boosting"])
def test_causalml_models_are_seeded_and_reproducible(tiny_data, name):
    X, treated = tiny_data
    first = fit_propensity(X, treated, model(name), seed=20110801)
    second = fit_propensity(X, treated, model(name), seed=20110801)
    assert first.model == name and first.coefficients is None
    assert np.array_equal(first.ps, second.ps)
    assert first.ps.shape == (120,) and np.all((first.ps > 0) & (first.ps < 1))
    # the scores carry the signal: treated patients have higher scores on average
    assert first.ps[treated].mean() > first.ps[~treated].mean()


# ---------------------------------------------------------------- diagnostics

def test_c_statistic_by_hand_with_ties():
    # pairs (treated, control): (.8,.6) (.8,.2) (.6,.6) tie = 1/2, (.6,.2) -> 3.5 / 4
    ps = np.array([0.8, 0.6, 0.6, 0.2])
    treated = np.array([True, True, False, False])
    assert weighted_auc(ps, treated) == pytest.approx(0.875, abs=1e-15)
    assert ps_diagnostics(ps, treated)["c_statistic"] == pytest.approx(0.875, abs=1e-15)


def test_weighted_c_statistic_matches_sklearn():
    rng = np.random.default_rng(5)
    ps = np.round(rng.random(300), 2)               # rounding creates ties
    treated = rng.random(300) < ps
    w = rng.integers(0, 3, 300).astype(float)
    assert weighted_auc(ps, treated, w) == pytest.approx(roc_auc_score(treated, ps, sample_weight=w), abs=1e-12)


def test_preference_score_walker():
    # logit F = logit(ps) - logit(P): ps = 0.5 with 25% treated -> F = 1 / (1 + 1/3) = 0.75
    assert preference_score(np.array([0.5]), 0.25)[0] == pytest.approx(0.75, abs=1e-12)
    assert preference_score(np.array([0.25]), 0.25)[0] == pytest.approx(0.5, abs=1e-12)


def test_equipoise_share_before_and_after_weights():
    ps = np.array([0.5, 0.5, 0.5, 0.9])
    treated = np.array([True, False, False, True])     # P = 1/2 -> F = ps
    before = ps_diagnostics(ps, treated)
    assert before["share_treated"] == 0.5
    assert before["equipoise_share"] == pytest.approx(0.75)
    assert before["equipoise_share_treated"] == pytest.approx(0.5)
    after = ps_diagnostics(ps, treated, weights=np.array([1.0, 1.0, 0.0, 0.0]))   # units 3 and 4 unmatched
    assert after["share_treated"] == 0.5
    assert after["equipoise_share"] == pytest.approx(1.0)
    assert after["c_statistic"] == pytest.approx(0.5)
