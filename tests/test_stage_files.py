"""Frames between stages: text read back as text (Arrow-backed), categorical reading, ids joined
without loss; the propensity design matrix built once."""
import numpy as np
import pandas as pd
import pytest

from pipeline.config.settings import Variable
from pipeline.design.propensity.design_matrix import INTERCEPT, design_matrix
from pipeline.design.propensity.logistic import _fit_logistic
from pipeline.design.stages import published_matched
from pipeline.io import id_positions
from pipeline.io import ARROW_STRING, read_parquet, text_column, write_parquet


def variable(kind, levels=None):
    return Variable(type=kind, levels=levels, min=None, max=None, required=None, label=None, description=None)


def test_text_columns_round_trip_as_text_with_their_values_and_gaps(tmp_path):
    frame = pd.DataFrame({"patient_id": pd.array(["007", "10", None], dtype="string"),
                          "group": np.array(["treated", "control", "treated"], dtype=object),
                          "ps": [0.1, 0.2, np.nan], "subclass": pd.array([1, None, 2], dtype="Int64")})
    write_parquet(frame, tmp_path / "f.parquet")
    back = read_parquet(tmp_path / "f.parquet")
    assert back["patient_id"].dtype == ARROW_STRING and back["group"].dtype == ARROW_STRING
    assert back["patient_id"].tolist()[:2] == ["007", "10"]
    assert back["patient_id"].isna().tolist() == [False, False, True]
    assert back["group"].tolist() == frame["group"].tolist()
    pd.testing.assert_frame_equal(back[["ps", "subclass"]], frame[["ps", "subclass"]])
    assert pd.read_parquet(tmp_path / "f.parquet")["patient_id"].dtype == "string"   # as a user reads it


def test_categories_read_as_codes_and_back_to_the_same_text(tmp_path):
    grades = ["G3", None, "G1", "G3", "G2"]
    write_parquet(pd.DataFrame({"grade": pd.array(grades, dtype="string"), "age": [1.0, 2, 3, 4, 5]}),
                  tmp_path / "f.parquet")
    back = read_parquet(tmp_path / "f.parquet", categories=["grade", "age", "absent"])
    assert isinstance(back["grade"].dtype, pd.CategoricalDtype) and back["age"].dtype == "float64"
    text = text_column(back["grade"])
    assert text.dtype == ARROW_STRING and text.tolist()[:1] + text.tolist()[2:] == ["G3", "G1", "G3", "G2"]
    assert text.isna().tolist() == [False, True, False, False, False]


def test_id_positions_find_each_id_once_and_mark_the_absent():
    among = pd.Series(["b", "a", "c"], dtype=ARROW_STRING)
    assert id_positions(pd.Series(["c", "x", "a"], dtype=object), among).tolist() == [2, -1, 1]
    assert id_positions(pd.Series([3, 1]), pd.Series([1, 2, 3])).tolist() == [2, 0]


@pytest.mark.parametrize("ids, expected", [
    (["b", "d"], [1, 3]),              # in among's order: looked up from among's side
    (["d", "b"], [3, 1]),              # out of order
    (["b", "x"], [1, -1]),             # one absent
    (["b", "b"], [1, 1]),              # an id asked for twice
    (["a", None], [0, -1]),            # a missing id
])
def test_id_positions_of_fewer_ids_than_among(ids, expected):
    among = pd.Series(["a", "b", "c", "d", "e"], dtype=ARROW_STRING)
    assert id_positions(pd.Series(ids, dtype=ARROW_STRING), among).tolist() == expected


def test_published_matched_takes_each_patients_center_from_the_cohort():
    cohort = pd.DataFrame({"patient_id": pd.array(["p1", "p2", "p3"], dtype=ARROW_STRING),
                           "center": pd.Categorical(["b", "a", "b"])})
    matched = pd.DataFrame({"patient_id": pd.array(["p3", "p1", "p9"], dtype=ARROW_STRING),
                            "treated": [True, False, True], "subclass": pd.array([1, 1, 2], dtype="Int64"),
                            "weight": 1.0, "ps": 0.5, "distance": 0.0})
    published = published_matched(matched, cohort)
    assert published["center"].tolist()[:2] == ["b", "b"] and pd.isna(published["center"].iloc[2])
    assert published["group"].tolist() == ["treated", "control", "treated"]


def cohort_frame(text):
    rng = np.random.default_rng(3)
    site = rng.choice(["pancreas", "small_bowel", "other"], 300).astype(object)
    site[:5] = None
    return pd.DataFrame({"age": rng.normal(60, 10, 300), "site": text(site),
                         "ecog": pd.array(rng.integers(0, 3, 300), dtype="Int64")})


VARIABLES = {"age": variable("numeric"), "site": variable("category", ("small_bowel", "pancreas", "other")),
             "ecog": variable("integer")}


@pytest.mark.parametrize("text", [lambda v: pd.array(v, dtype="string"), lambda v: pd.array(v, dtype=ARROW_STRING),
                                  lambda v: pd.Categorical(v, categories=["other", "pancreas", "small_bowel"])])
def test_the_design_matrix_is_the_same_whatever_holds_the_category(text):
    expected = design_matrix(cohort_frame(lambda v: pd.array(v, dtype="string")), ["age", "site", "ecog"], VARIABLES)
    X = design_matrix(cohort_frame(text), ["age", "site", "ecog"], VARIABLES)
    pd.testing.assert_frame_equal(X, expected)
    # the configured order, the first level present the reference
    assert list(X.columns) == ["age", "site=pancreas", "site=other", "ecog"]
    assert X["site=pancreas"].isna().sum() == 5


def test_the_matrix_with_its_intercept_is_the_one_the_logistic_fit_uses_and_fits_the_same():
    cohort = cohort_frame(lambda v: pd.array(v, dtype="string")).iloc[5:].reset_index(drop=True)
    X = design_matrix(cohort, ["age", "site", "ecog"], VARIABLES)
    with_intercept = design_matrix(cohort, ["age", "site", "ecog"], VARIABLES, intercept=True)
    assert list(with_intercept.columns) == [INTERCEPT, *X.columns] and (with_intercept[INTERCEPT] == 1).all()
    pd.testing.assert_frame_equal(with_intercept.iloc[:, 1:], X)
    treated = np.random.default_rng(4).random(len(cohort)) < 1 / (1 + np.exp(-(cohort["age"].to_numpy() - 60) / 10))
    fit, fit_with_intercept = _fit_logistic(X, treated), _fit_logistic(with_intercept, treated)
    assert fit_with_intercept.coefficients == fit.coefficients      # bit for bit
    assert np.array_equal(fit_with_intercept.ps, fit.ps)
