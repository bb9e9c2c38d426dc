"""Forest table and the exploratory interaction test."""
import math

import pytest
from scipy.stats import chi2

from pipeline.config.settings import Treatment
from pipeline.report.forest import forest_plot, forest_rows, interaction_tests, suppressed
from tests.test_report_formatting import variables


def _survival(hr, se, n=40, events=20):
    arm = {"n": n, "events": events, "median": 18.0}
    return {"estimable": True, "treated": arm, "control": dict(arm, median=None), "hr": hr, "hr_lower": hr / 1.5,
            "hr_upper": hr * 1.5, "hr_p": 0.5, "hr_robust_se": se,
            "power": {"mdrr": 2.2, "alpha": 0.05, "underpowered": True}}


def analyses(**derived) -> dict:
    """The index rule's `analyses` parameter, typed: per name the treatment and its origin."""
    treatment = Treatment("treatment", "res", "iat", None)
    return {name: {"treatment": treatment, "derived_from": origin} for name, origin in derived.items()}


VARIABLES = variables(functional={"type": "binary"}, site={"type": "category", "levels": ["pancreas", "ileum"]})
ANALYSES = analyses(main=None,
                    main__functional_0={"analysis": "main", "subgroup": {"variable": "functional", "level": 0}},
                    main__functional_1={"analysis": "main", "subgroup": {"variable": "functional", "level": 1}})
SURVIVALS = {"main": _survival(0.9, 0.2), "main__functional_0": _survival(0.5, 0.3, n=3),
             "main__functional_1": _survival(1.2, 0.25)}
NOT_ESTIMABLE = {"estimable": False, "reason": "no events in either arm", "stage": "survival"}


def entries(survivals=SURVIVALS, **extra):
    return [{"name": name, "survival": survival, **extra.get(name, {})} for name, survival in survivals.items()]


def test_rows_follow_the_survival_results():
    rows = forest_rows(ANALYSES, entries(), VARIABLES)
    assert rows["analysis"].tolist() == list(SURVIVALS)
    assert rows["parent"].tolist() == ["main", "main", "main"]
    assert rows.loc[1, "subgroup_variable"] == "functional" and rows.loc[1, "subgroup_level"] == "0"
    assert rows["subgroup_label"].tolist()[1:] == ["functional = no", "functional = yes"]
    assert rows["hr"].tolist() == [0.9, 0.5, 1.2]
    assert rows.loc[0, "median_control"] is None and rows.loc[0, "mdrr"] == 2.2
    assert rows["estimable"].tolist() == [True, True, True] and rows["underpowered"].all()
    assert suppressed(rows, 5).loc[1, "n_treated"] == "<5"


def test_design_checks_are_columns():
    matching = {"estimable": True, "n_treated_unmatched": 4, "n_discarded_treated": 1, "n_treated_matched": 45}
    failed = {"estimable": True, "failed": [{"variable": "x", "smd_after": 0.2, "var_ratio_after": None}]}
    rows = forest_rows(ANALYSES, entries(main={"matching": matching, "attrition": {"estimable": True, "n_treated": 50},
                                               "balance_summary": failed}), VARIABLES)
    assert rows.loc[0, "treated_lost_share"] == pytest.approx(5 / 50)
    assert bool(rows.loc[0, "estimand_moved"]) and bool(rows.loc[0, "balance_failed"])
    assert not rows.loc[1, "balance_failed"] and not rows.loc[1, "estimand_moved"]


def test_not_estimable_level_is_a_row_with_its_reason_and_is_left_out_of_the_test(tmp_path):
    survivals = dict(SURVIVALS, main__functional_1=NOT_ESTIMABLE)
    rows = forest_rows(ANALYSES, entries(survivals), VARIABLES)
    row = rows.iloc[2]
    assert not row["estimable"] and row["reason"] == "no events in either arm"
    assert row[["n_treated", "hr", "hr_lower", "hr_upper"]].isna().all()
    shared = suppressed(rows, 5)
    assert shared.iloc[2]["n_treated"] is None and shared.iloc[2]["reason"] == "no events in either arm"
    tests = interaction_tests(rows)
    assert tests.loc[0, "levels"] == 1 and tests.loc[0, "levels_not_estimable"] == 1
    assert tests[["chisq", "df", "p"]].isna().all(axis=None)
    forest_plot(rows, {"treated": "resection", "control": "IAT"}, tmp_path / "forest.png", 5)
    assert (tmp_path / "forest.png").stat().st_size > 1000


def test_interaction_is_cochrans_q_by_hand():
    tests = interaction_tests(forest_rows(ANALYSES, entries(), VARIABLES))
    w0, w1 = 1 / 0.3 ** 2, 1 / 0.25 ** 2
    pooled = (w0 * math.log(0.5) + w1 * math.log(1.2)) / (w0 + w1)
    q = w0 * (math.log(0.5) - pooled) ** 2 + w1 * (math.log(1.2) - pooled) ** 2
    assert len(tests) == 1
    assert tests.loc[0, "chisq"] == pytest.approx(q) and tests.loc[0, "df"] == 1
    assert tests.loc[0, "p"] == pytest.approx(chi2.sf(q, 1))
    assert tests.loc[0, "levels_not_estimable"] == 0


def test_forest_plot_is_reproducible(tmp_path):
    rows = forest_rows(ANALYSES, entries(), VARIABLES)
    labels = {"treated": "resection", "control": "IAT"}
    forest_plot(rows, labels, tmp_path / "a.png", 5)
    forest_plot(rows, labels, tmp_path / "b.png", 5)
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()


def test_a_significant_result_is_not_flagged_underpowered():
    significant = {**_survival(0.4, 0.2), "hr_p": 0.001}
    rows = forest_rows(ANALYSES, entries({**SURVIVALS, "main": significant}), VARIABLES)
    assert rows["underpowered"].tolist() == [False, True, True]
