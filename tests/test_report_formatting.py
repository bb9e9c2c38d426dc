"""Report text: the headline sentence, labels and disclosure control."""
import pytest

from pipeline.config.settings import Variable
from pipeline.config.validate import block_with_defaults, prepare_config
from pipeline.report.formatting import (column_label, count, headline, median_difference_text, p_clause, p_value,
                                        subgroup_label, weighted_count)
from tests.conftest import REPO

LABELS = {"treated": "resection", "control": "IAT"}
OS = "overall survival"


def variables(**specs) -> dict[str, Variable]:
    """Typed registry variables from their config blocks (schema defaults filled)."""
    return {name: Variable.from_dict(block_with_defaults(spec, "variable")) for name, spec in specs.items()}


def survival(**changes) -> dict:
    """A survival.json as the survival stage writes it with the test, tau rule and bootstrap keys."""
    arm = {"n": 40, "events": 20, "events_weighted": 20.0, "ess": 40.0, "last_followup": 70.0, "rmst": 40.2,
           "rmst_se": 1.9,
           "median": 20.0, "median_lower": 15.0, "median_upper": 30.0,
           "survival_at": {"12": 0.8, "36": 0.4, "60": 0.3},
           "survival_at_ci": {"12": [0.7, 0.9], "36": [0.3, 0.5], "60": [0.2, 0.4]}}
    result = {
        "time_unit": "months", "treated": dict(arm), "control": dict(arm, median=14.0, median_lower=10.0,
                                                                     median_upper=18.0),
        "logrank_chisq": 0.08, "logrank_p": 0.78, "hr": 0.95, "hr_lower": 0.6, "hr_upper": 1.5, "hr_p": 0.8,
        "hr_robust_se": 0.24,
        "test": {"method": "logrank", "label": "Log-rank test", "chisq": 0.08, "df": 1, "p": 0.78, "cluster": None},
        "hr_cluster": "matched set", "warnings": [], "tau": 60.0, "tau_rule": "configured",
        "rmst_difference": {"estimate": -3.31, "se": 2.0, "lower": -7.5, "upper": 1.0,
                            "method": "percentile interval of 500 bootstrap resamples of the matched sets",
                            "se_independent": 2.2, "lower_independent": -7.6, "upper_independent": 1.1,
                            "n_bootstrap": 500},
        "median_difference": {"estimate": 6.0, "lower": 1.0, "upper": 11.0, "n_bootstrap": 500,
                              "n_bootstrap_without_median": 0},
        "e_value": {"point": 1.3, "ci": 1.0, "outcome_common": True},
        "power": {"mdrr": 2.5, "alpha": 0.05, "power": 0.8, "relevant_hr": 1.5, "underpowered": False},
        "estimable": True,
    }
    for key, value in changes.items():
        result[key] = value
    return result


def test_headline_reads_like_the_paper():
    data = survival(hr=0.9512, hr_lower=0.6, hr_upper=1.5)
    data["test"]["p"] = 0.7812
    data["treated"] = dict(data["treated"], median=16.7, median_lower=11.02, median_upper=25.0,
                           survival_at={"12": 0.7, "36": 0.3, "60": None})
    data["control"] = dict(data["control"], median=None, median_lower=14.5, median_upper=None,
                           survival_at={"12": 0.75, "36": 0.52, "60": 0.5})
    data["rmst_difference"].update(estimate=-4.04, lower=-7.96, upper=-0.12)
    text = headline(data, LABELS, OS)
    assert text.startswith("Median overall survival: resection 16.7 months (95% CI 11.0–25.0) vs IAT not reached "
                           "(95% CI 14.5–NR); ")
    assert text.endswith("; RMST difference to 60 months: -4.0 months (95% CI -8.0 to -0.1); survival at 36 "
                         "months: resection 30.0% vs IAT 52.0%; log-rank p = 0.78; HR 0.95 (0.60–1.50)")


def test_headline_names_the_log_rank_test_for_unit_weights():
    text = headline(survival(), LABELS, OS)
    assert text == ("Median overall survival: resection 20.0 months (95% CI 15.0–30.0) vs IAT 14.0 months "
                    "(95% CI 10.0–18.0); log-rank p = 0.78; HR 0.95 (0.60–1.50)")


def test_headline_uses_the_robust_score_test_for_weighted_designs():
    weighted = survival(test={"method": "robust_score", "label": "Robust score test", "chisq": 4.7, "df": 1,
                              "p": 0.0301, "cluster": "matched set"}, logrank_p=0.5)
    text = headline(weighted, LABELS, OS)
    assert "robust score test p = 0.03" in text
    assert "log-rank" not in text and "0.50" not in text


def test_headline_names_the_endpoint():
    assert headline(survival(), LABELS, "event-free survival").startswith("Median event-free survival: resection")


def test_headline_without_a_median_gives_rmst_and_the_last_landmark_both_arms_reach():
    data = survival()
    data["control"] = dict(data["control"], median=None, median_upper=None,
                           survival_at={"12": 0.9, "36": 0.61, "60": None})
    text = headline(data, LABELS, OS)
    medians, rmst, landmark, test, hr = text.split("; ")
    assert medians.endswith("IAT not reached (95% CI 10.0–NR)")
    assert rmst == "RMST difference to 60 months: -3.3 months (95% CI -7.5 to 1.0)"
    assert landmark == "survival at 36 months: resection 40.0% vs IAT 61.0%"
    assert (test, hr) == ("log-rank p = 0.78", "HR 0.95 (0.60–1.50)")


def test_headline_with_null_test_and_hr_says_not_estimable():
    no_hr = {"hr": None, "hr_lower": None, "hr_upper": None, "hr_p": None, "logrank_p": None}
    undefined = {"method": "logrank", "label": "", "chisq": None, "df": 1, "p": None, "cluster": None}
    assert headline(survival(test=undefined, **no_hr), LABELS, OS).endswith("; log-rank test not estimable; "
                                                                            "HR not estimable")
    undefined = dict(undefined, method="robust_score", cluster="patient")
    assert headline(survival(test=undefined, **no_hr), LABELS, OS).endswith("; robust score test not estimable; "
                                                                            "HR not estimable")


def test_headline_of_a_not_estimable_analysis_gives_the_reason():
    record = {"estimable": False, "reason": "no treated patient could be matched", "stage": "match"}
    assert headline(record, LABELS, OS) == "Not estimable: no treated patient could be matched (stage: match)"


def test_unbounded_median_difference_reads_as_such():
    text = median_difference_text({"estimate": None, "lower": None, "upper": None, "n_bootstrap": 400,
                                   "n_bootstrap_without_median": 150})
    assert text == "no estimate (a median is not reached); 95% CI unbounded (38% of resamples without a median)"
    assert "NR" not in text
    one_sided = median_difference_text({"estimate": 4.0, "lower": 1.5, "upper": None, "n_bootstrap": 200,
                                        "n_bootstrap_without_median": 20})
    assert one_sided == "4.0 (95% CI 1.5 to unbounded (10% of resamples without a median))"
    assert median_difference_text({"estimate": 4.0, "lower": -1.0, "upper": 9.0, "n_bootstrap": 200}) == \
        "4.0 (95% CI -1.0 to 9.0)"


def test_small_counts_are_suppressed_but_zero_is_not():
    assert [count(n, 5) for n in (0, 1, 4, 5, 120)] == ["0", "<5", "<5", "5", "120"]
    assert count(3, 10) == "<10"


def test_weighted_counts_one_decimal_suppressed_by_their_row_count():
    assert weighted_count(12.3456, 20, 5) == "12.3"
    assert weighted_count(7.5, 4, 5) == "<5"       # 4 patients: suppressed whatever their weight
    assert weighted_count(0.0, 0, 5) == "0.0"


def test_p_values():
    assert [p_value(p) for p in (0.0004, 0.0042, 0.049, 0.78)] == ["< 0.001", "0.004", "0.05", "0.78"]


def test_p_clause_in_running_text():
    assert p_clause(0.0001) == "p < 0.001" and p_clause(0.78) == "p = 0.78"


VARIABLES = variables(functional={"type": "binary", "label": "Hormonally active"}, extrahepatic={"type": "binary"},
                      site={"type": "category", "levels": ["1", "small bowel"]}, ki67={"type": "numeric"},
                      grade={"type": "category", "levels": ["G1", "G2"], "label": "WHO grade"})


@pytest.mark.parametrize("variable, level, expected", [
    ("functional", 1, "Hormonally active = yes"), ("extrahepatic", 0, "extrahepatic = no"),
    ("extrahepatic", 0.0, "extrahepatic = no"), ("extrahepatic", "1", "extrahepatic = yes"),
    ("site", "small bowel", "site = small bowel"), ("site", "1", "site = 1"),
])
def test_subgroup_levels_are_named(variable, level, expected):
    assert subgroup_label(variable, level, VARIABLES) == expected


@pytest.mark.parametrize("column, expected", [
    ("functional", "Hormonally active"), ("grade=G2", "WHO grade = G2"), ("ki67", "ki67"),
    ("ki67_missing", "ki67 missing"), ("center=b", "center=b"),
])
def test_balance_columns_get_the_variables_labels(column, expected):
    assert column_label(column, VARIABLES) == expected


def test_new_config_keys_validate_and_get_defaults(demo_config):
    demo_config["registry"]["variables"]["ki67"]["label"] = "Ki-67 index (%)"
    study = prepare_config(demo_config, REPO)
    assert study["analyses"]["all_patients"]["survival"]["km_bands"] is False
    assert study["registry"]["variables"]["ki67"]["label"] == "Ki-67 index (%)"
