"""Cohort building: attrition adds up, the outcome is derived in time_unit, groups follow the config."""
import numpy as np
import pandas as pd
import pytest

from pipeline.config.settings import Outcome, Selection
from pipeline.design.cohort import build_cohort
from pipeline.ingest.followup import followup_columns

ANALYSIS = {
    "treatment": {"column": "treatment", "treated": "resection", "control": "iat"},
    "cohort": ["burden == 1"],
    "min_days_at_risk": 0,
    "covariates": ["age", "grade"],
    "missing": "complete_case",
    "needed": ["center"],
}
OUTCOME = Outcome.from_dict({"time_zero": "start", "end": "stop", "event": "dead"})


def build(registry, analysis, outcome=OUTCOME, time_unit="days"):
    """The cohort of a registry harmonized as ingest does it (with its time and event columns)."""
    harmonized = registry.assign(**followup_columns(dict(registry.items()), outcome, time_unit))
    return build_cohort(harmonized, Selection.from_dict(analysis), outcome, time_unit, id_column="pid")


def _registry() -> pd.DataFrame:
    return pd.DataFrame({
        "center": pd.array(["a", "a", "b", "b", "b", "c"], dtype="string"),
        "pid": pd.array(["1", "2", "3", "4", "5", "6"], dtype="string"),
        "treatment": pd.array(["resection", "iat", "iat", "other", "resection", None], dtype="string"),
        "burden": pd.array([1, 1, 0, 1, 1, 1], dtype="Int8"),
        "age": [50.0, np.nan, 60.0, 61.0, 70.0, 40.0],
        "grade": pd.array(["G1", "G2", "G2", "G3", "G1", "G1"], dtype="string"),
        "start": pd.to_datetime(["2000-01-01"] * 6),
        "stop": pd.to_datetime(["2000-01-31", "2001-01-01", "2000-03-01", "2000-02-01", "2000-07-01", "2001-01-01"]),
        "dead": pd.array([1, 0, 1, 0, 1, 0], dtype="Int8"),
    })


def test_attrition_counts_every_exclusion():
    cohort, attrition = build(_registry(), ANALYSIS, time_unit="days")
    steps = attrition["steps"]
    assert [s["excluded"] for s in steps] == [2, 1, 1]   # other/missing arm, burden, missing age
    assert all(s["before"] - s["excluded"] == s["after"] for s in steps)
    assert steps[-1]["missing_by_variable"] == {"age": 1}
    assert attrition["n_final"] == 2 == len(cohort)
    assert list(cohort["patient_id"]) == ["1", "5"]


def test_outcome_in_time_unit_and_groups():
    cohort, attrition = build(_registry(), ANALYSIS, time_unit="months")
    assert cohort["time"].tolist() == pytest.approx([30 / 30.4375, 182 / 30.4375])
    assert cohort["treated"].tolist() == [True, True] and "group" not in cohort
    assert attrition["n_treated"] == 2 and attrition["n_control"] == 0
    assert "center" in cohort  # needed by exact matching


def test_indicator_keeps_missing_covariates():
    analysis = dict(ANALYSIS, missing="indicator")
    cohort, attrition = build(_registry(), analysis, time_unit="days")
    assert attrition["n_final"] == 3
    assert cohort["age"].isna().sum() == 1


def test_ready_time_outcome():
    registry = _registry().assign(os=[1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    cohort, _ = build(registry, dict(ANALYSIS, cohort=[]), Outcome.from_dict({"time": "os", "event": "dead"}),
                      "months")
    assert cohort["time"].tolist() == [1.0, 3.0, 5.0]
    assert "index_year" not in cohort


def test_minimum_days_at_risk_is_an_explicit_step():
    registry = _registry().assign(stop=pd.to_datetime(["2000-01-01", "2000-01-03", "2000-01-01", "2000-02-01",
                                                       "2000-01-03", "2001-01-01"]))
    kept_all, attrition_all = build(registry, dict(ANALYSIS, cohort=[], missing="indicator"), time_unit="months")
    assert 0.0 in kept_all["time"].tolist()              # same-day follow-up is kept by default
    assert not any("days at risk" in s["criterion"] for s in attrition_all["steps"])
    analysis = dict(ANALYSIS, cohort=[], missing="indicator", min_days_at_risk=2)
    cohort, attrition = build(registry, analysis, time_unit="months")
    step = next(s for s in attrition["steps"] if s["criterion"] == "at least 2 days at risk")
    assert step["excluded"] == 2                          # the two same-day patients; 2 days is kept
    assert sorted(cohort["patient_id"]) == ["2", "5"]


def test_a_cohort_without_an_arm_is_not_estimable_with_the_reason():
    _, attrition = build(_registry(), ANALYSIS, time_unit="days")
    assert attrition["estimable"] is False and attrition["stage"] == "cohort"
    assert "no control patients (iat)" in attrition["reason"]
    _, empty = build(_registry(), dict(ANALYSIS, cohort=["burden == 7"]), time_unit="days")
    assert "the cohort is empty" in empty["reason"]
    _, both = build(_registry(), dict(ANALYSIS, missing="indicator"), time_unit="days")
    assert both["estimable"] is True and "reason" not in both


def test_a_binary_treatment_column_with_treated_1_and_control_0():
    registry = _registry().assign(surgery=pd.array([1, 0, 0, 1, None, 1], dtype="Int8"))
    analysis = dict(ANALYSIS, treatment={"column": "surgery", "treated": 1, "control": 0}, cohort=[],
                    missing="indicator")
    cohort, attrition = build(registry, analysis)
    assert attrition["steps"][0] == {"criterion": "surgery is 1 or 0", "before": 6, "after": 5, "excluded": 1,
                                     "reason": "other treatment or missing"}
    assert cohort["patient_id"].tolist() == ["1", "2", "3", "4", "6"]
    assert cohort["treated"].tolist() == [True, False, False, True, True]
    assert (attrition["n_treated"], attrition["n_control"]) == (3, 2)


def test_time_is_the_harmonized_follow_up_whatever_the_center_sent():
    """A center that sent days has no dates: its rows' time is the one ingest harmonized."""
    registry = _registry().assign(**followup_columns(dict(_registry().items()), OUTCOME, "months"))
    registry.loc[4, ["start", "stop"]] = pd.NaT
    registry.loc[4, "time"] = 2.5
    cohort, _ = build_cohort(registry, Selection.from_dict(dict(ANALYSIS, cohort=[], missing="indicator")), OUTCOME,
                             "months", id_column="pid")
    assert cohort["patient_id"].tolist() == ["1", "2", "3", "5"]
    assert cohort["time"].tolist() == [30 / 30.4375, 366 / 30.4375, 60 / 30.4375, 2.5]


# --- the cohort rule reads only the registry columns it needs, carried ones as categoricals


def test_cohort_from_the_columns_it_reads_equals_the_cohort_from_the_whole_registry(tmp_path):
    from pipeline.design.cohort import carried_columns, registry_columns
    from pipeline.io import ARROW_STRING, parquet_columns, read_parquet, write_parquet

    registry = _registry().assign(unused=pd.array(["x"] * 6, dtype="string"), note=["n"] * 6)
    registry["grade"] = pd.array(["G2", "G1", None, "G3", "G1", "G1"], dtype="string")   # a missing category
    harmonized = registry.assign(**followup_columns(dict(registry.items()), OUTCOME, "days"))
    write_parquet(harmonized, tmp_path / "harmonized.parquet")
    selection = Selection.from_dict(dict(ANALYSIS, cohort=["burden == 1", "grade != 'G3'"], missing="indicator"))
    columns = registry_columns(parquet_columns(tmp_path / "harmonized.parquet"), selection, OUTCOME, "pid")
    assert columns == ["center", "pid", "treatment", "burden", "age", "grade", "start", "time", "event"]
    carried = carried_columns(columns, selection, "pid")
    assert "pid" not in carried and "grade" not in carried and "burden" not in carried   # id, criteria: text
    read = read_parquet(tmp_path / "harmonized.parquet", columns=columns, categories=carried)
    assert isinstance(read["center"].dtype, pd.CategoricalDtype) and read["pid"].dtype == ARROW_STRING
    expected, expected_attrition = build_cohort(read_parquet(tmp_path / "harmonized.parquet"), selection, OUTCOME,
                                                "days", id_column="pid")
    cohort, attrition = build_cohort(read, selection, OUTCOME, "days", id_column="pid")
    pd.testing.assert_frame_equal(cohort, expected)
    assert attrition == expected_attrition and len(cohort) == attrition["n_final"] == 3
    assert cohort["center"].dtype == ARROW_STRING and cohort["center"].tolist() == ["a", "a", "b"]
    assert cohort["patient_id"].tolist() == ["1", "2", "5"]
