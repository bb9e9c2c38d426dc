"""Forest table and the exploratory interaction test."""
import math

import pytest
from scipy.stats import chi2

from pipeline.forest import forest_plot, forest_rows, interaction_tests, suppressed


def _survival(hr, se, n=40, events=20):
    arm = {"n": n, "events": events, "median": 18.0}
    return {"treated": arm, "control": dict(arm, median=None), "hr": hr, "hr_lower": hr / 1.5,
            "hr_upper": hr * 1.5, "hr_p": 0.5, "hr_robust_se": se, "power": {"mdrr": 2.2}}


ANALYSES = {
    "main": {},
    "main__functional_0": {"derived_from": {"analysis": "main", "subgroup": {"variable": "functional", "level": 0}}},
    "main__functional_1": {"derived_from": {"analysis": "main", "subgroup": {"variable": "functional", "level": 1}}},
}
SURVIVALS = {"main": _survival(0.9, 0.2), "main__functional_0": _survival(0.5, 0.3, n=3),
             "main__functional_1": _survival(1.2, 0.25)}


def test_rows_follow_the_survival_results():
    rows = forest_rows(ANALYSES, SURVIVALS)
    assert rows["analysis"].tolist() == list(SURVIVALS)
    assert rows["parent"].tolist() == ["main", "main", "main"]
    assert rows.loc[1, "subgroup_variable"] == "functional" and rows.loc[1, "subgroup_level"] == 0
    assert rows["hr"].tolist() == [0.9, 0.5, 1.2]
    assert rows.loc[0, "median_control"] is None and rows.loc[0, "mdrr"] == 2.2
    assert suppressed(rows, 5).loc[1, "n_treated"] == "<5"


def test_interaction_is_cochrans_q_by_hand():
    tests = interaction_tests(forest_rows(ANALYSES, SURVIVALS))
    w0, w1 = 1 / 0.3 ** 2, 1 / 0.25 ** 2
    pooled = (w0 * math.log(0.5) + w1 * math.log(1.2)) / (w0 + w1)
    q = w0 * (math.log(0.5) - pooled) ** 2 + w1 * (math.log(1.2) - pooled) ** 2
    assert len(tests) == 1
    assert tests.loc[0, "chisq"] == pytest.approx(q) and tests.loc[0, "df"] == 1
    assert tests.loc[0, "p"] == pytest.approx(chi2.sf(q, 1))


def test_forest_plot_is_reproducible(tmp_path):
    rows = forest_rows(ANALYSES, SURVIVALS)
    labels = {"treated": "resection", "control": "IAT"}
    forest_plot(rows, labels, tmp_path / "a.png", 5)
    forest_plot(rows, labels, tmp_path / "b.png", 5)
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()
