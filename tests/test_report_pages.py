"""The analysis and index pages as rendered HTML: survival body, warnings, not-estimable analyses,
review flags and escaping. Inputs are result files shaped as the stages write them."""
import copy
import html
import re
from html.parser import HTMLParser

import pandas as pd
import pytest

from pipeline.report.forest import forest_rows, interaction_tests
from pipeline.report.html import render_analysis, render_index
from tests.test_report_formatting import survival

NOT_MATCHED = {"estimable": False, "reason": "no treated patient had a control within the caliper", "stage": "match"}
VARIABLES = {"patient_id": {"type": "id"}, "age": {"type": "numeric", "label": "Age at <treatment> & after"},
             "functional": {"type": "binary", "label": "Hormonally active"}}
PROVENANCE = {"inputs": [{"file": "center_a.csv", "sha256": "ab"}], "packages": {"numpy": "2.0"},
              "config_sha256": "cd", "git_commit": "ef", "seed": 1}
INGEST = {"centers": {"a": {"rows_read": 100, "accepted": 98, "quarantined": 2, "reasons": {"not_a_date": 2}}},
          "total": {"rows_read": 100, "accepted": 98, "quarantined": 2, "reasons": {"not_a_date": 2}}}


def study(labels=None, **analyses) -> dict:
    analysis = {
        "treatment": {"column": "treatment", "treated": "res", "control": "iat",
                      "labels": labels or {"treated": "resection", "control": "IAT"}},
        "cohort": [], "covariates": ["age", "functional"], "missing": "complete_case",
        "propensity": {"model": "logistic"},
        "matching": {"ratio": 1, "caliper": 0.2, "std_caliper": True, "caliper_scale": "logit", "replace": False,
                     "order": "largest", "exact": [], "discard": "none"},
        "survival": {"rmst_tau": 60, "ci": "log-log", "bootstrap": 500, "km_bands": False},
    }
    return {"seed": 7, "time_unit": "months", "report": {"min_cell": 5},
            "registry": {"variables": VARIABLES}, "outcome": {"time": "t", "event": "e"},
            "analyses": {name: dict(copy.deepcopy(analysis), **extra) for name, extra in analyses.items()}
            or {"main": analysis}}


def results(**changes) -> dict:
    out = {
        "ingest": INGEST,
        "attrition": {"steps": [{"criterion": "age >= 18", "before": 98, "after": 90, "excluded": 8,
                                 "reason": "criterion not met"}], "n_treated": 42, "n_control": 48},
        "propensity": {"warnings": [], "diagnostics_before": {"c_statistic": 0.7, "equipoise_share": 0.5}},
        "matching": {"n_treated": 42, "n_treated_matched": 40, "n_treated_unmatched": 2, "n_controls_matched": 40,
                     "n_discarded_treated": 0, "n_discarded_control": 0, "caliper_raw": 0.3},
        "balance_summary": {"failed": [], "diagnostics_after": {"equipoise_share": 0.8}},
        "balance": pd.DataFrame({"variable": ["age", "functional"], "smd_before": [0.3, 0.2],
                                 "smd_after": [0.05, 0.02], "var_ratio_before": [1.1, None],
                                 "var_ratio_after": [1.0, None], "ecdf_max_after": [0.05, 0.01], "flag": [None, None]}),
        "table1": pd.DataFrame({"variable": ["n", "age"], "level": ["", ""], "statistic": ["n", "mean (SD)"],
                                "treated_before": ["42", "60 (10)"], "control_before": ["48", "61 (9)"],
                                "smd_before": ["", "0.3"], "treated_after": ["40", "60 (10)"],
                                "control_after": ["40", "60 (9)"], "smd_after": ["", "0.05"]}),
        "survival": survival(power={"mdrr": 2.5, "alpha": 0.05, "power": 0.8, "relevant_hr": 1.5,
                                    "underpowered": True},
                             e_value={"point": 1.3, "ci": 1.0}),
    }
    out.update(changes)
    return out


@pytest.fixture
def images(tmp_path):
    paths = {}
    for key in ("km_plot", "love_plot", "overlap_plot"):
        paths[key] = tmp_path / f"{key}.png"
        paths[key].write_bytes(b"\x89PNG " + key.encode())
    return paths


class _Text(HTMLParser):
    """The text of the whole page, or of the element with one id (nested elements included)."""

    def __init__(self, element_id):
        super().__init__()
        self.element_id, self.depth, self.parts = element_id, 0 if element_id else 1, []

    def handle_starttag(self, tag, attrs):
        if self.depth or dict(attrs).get("id") == self.element_id:
            self.depth += tag not in VOID

    def handle_endtag(self, tag):
        if self.depth and self.element_id:
            self.depth -= 1

    def handle_data(self, data):
        if self.depth and self.lasttag != "style":
            self.parts.append(data)


VOID = {"img", "br", "meta", "input", "hr"}


def text_of(page: str, element_id: str | None = None) -> str:
    """What a reader sees (of one element): tags dropped, entities decoded, whitespace collapsed."""
    parser = _Text(element_id)
    parser.feed(page)
    return re.sub(r"\s+", " ", " ".join(parser.parts)).strip()


def table_rows(page: str, element_id: str) -> dict[str, list[str]]:
    """First cell -> the other cells, for each row of a table."""
    table = re.search(rf'<table id="{element_id}">(.*?)</table>', page, flags=re.S).group(1)
    rows = {}
    for row in re.findall(r"<tr>(.*?)</tr>", table, flags=re.S):
        cells = [html.unescape(c) for c in re.findall(r"<t[dh]>(.*?)</t[dh]>", row, flags=re.S)]
        rows[cells[0]] = cells[1:]
    return rows


def render(study_config, result_files, images, name="main"):
    return render_analysis(name, study_config, result_files, images, PROVENANCE)


def test_unit_weight_report_names_the_log_rank_and_the_cluster(images):
    page = render(study(), results(), images)
    effects = table_rows(page, "effects")
    assert "Hazard ratio, marginal (Cox with matching weights, cluster-robust SE on matched sets)" in effects
    assert effects["Log-rank test (unweighted; every matching weight is 1) (chi-square)"] == ["0.08 (df 1)", "0.78"]
    survival_rows = table_rows(page, "survival")
    assert "Events, weighted" not in survival_rows and "weights-note" not in page
    methods = text_of(page, "methods")
    assert "compared by the log-rank test (every matching weight is 1)" in methods
    assert "clustered on matched sets" in methods
    assert "Restricted mean survival time to 60 months, as configured, its difference with a 95% CI from 500 " \
           "bootstrap resamples of matched sets" in methods
    assert "overall survival was estimated" in methods


def test_weighted_report_shows_weighted_events_ess_and_the_robust_score_test(images):
    data = results()
    weighted = data["survival"]
    weighted["test"] = {"method": "robust_score", "label": "Robust score test of the weighted Cox model.",
                        "chisq": 4.71, "df": 1, "p": 0.03, "cluster": "patient"}
    weighted["hr_cluster"] = "patient"
    weighted["treated"] = dict(weighted["treated"], events_weighted=20.0, ess=40.0)
    weighted["control"] = dict(weighted["control"], n=60, events=31, events_weighted=17.25, ess=33.333, )
    page = render(study(), data, images)
    assert "robust score test p = 0.03" in text_of(page, "headline")
    rows = table_rows(page, "survival")
    assert rows["Events, weighted"] == ["20.0", "17.2"]
    assert rows["Effective sample size (Kish)"] == ["40.0", "33.3"]
    assert "weights are not all 1" in text_of(page, "weights-note")
    effects = table_rows(page, "effects")
    assert effects["Robust score test of the Cox model with matching weights, clustered on patients (chi-square)"] == \
        ["4.71 (df 1)", "0.03"]
    assert "Hazard ratio, marginal (Cox with matching weights, cluster-robust SE on patients)" in effects
    assert "robust score test of the Cox model with matching weights" in text_of(page, "methods")


def test_weighted_counts_on_few_patients_are_suppressed(images):
    data = results()
    data["survival"]["control"] = dict(data["survival"]["control"], n=9, events=3, events_weighted=2.5, ess=7.9)
    rows = table_rows(render(study(), data, images), "survival")
    assert rows["Events"][1] == "<5" and rows["Events, weighted"][1] == "<5"
    assert rows["Effective sample size (Kish)"][1] == "7.9"


def test_landmarks_beyond_follow_up_tau_rule_and_rmst_bootstrap(images):
    data = results()
    data["survival"]["control"]["survival_at"] = {"12": 0.8, "36": 0.4, "60": None}
    data["survival"].update(tau=47.25, tau_rule="smaller of the arms' largest follow-up times")
    page = render(study(), data, images)
    rows = table_rows(page, "survival")
    assert rows["Survival at 60 months (95% CI)"][1] == "beyond follow-up"
    assert "RMST to 47.2 months, smaller of the arms' largest follow-up times (SE)" in rows
    effects = table_rows(page, "effects")
    bootstrap, independent = [k for k in effects if k.startswith("RMST difference")]
    assert bootstrap.startswith("RMST difference to 47.2 months, smaller of the arms' largest follow-up times")
    assert bootstrap.endswith("; 95% CI: percentile interval of 500 bootstrap resamples of the matched sets")
    assert effects[bootstrap][0] == "-3.3 (95% CI -7.5 to 1.0)"
    assert "survRM2" in independent and effects[independent][0] == "-3.3 (95% CI -7.6 to 1.1)"


def test_warnings_box_lists_survival_warnings_and_lost_treated(images):
    data = results()
    data["survival"]["warnings"] = ["The RMST horizon lies beyond the follow-up of one arm."]
    data["matching"].update(n_treated_unmatched=6, n_treated_matched=36)
    data["balance_summary"]["failed"] = ["Balance not achieved: after matching, 1 of 2 covariates ...: age (+0.150)."]
    warnings = text_of(render(study(), data, images), "warnings")
    assert "The RMST horizon lies beyond the follow-up of one arm." in warnings
    assert "age (+0.150)" in warnings
    assert "14% of resection patients (6 of 42) are not in the matched sample" in warnings
    assert "not the average treatment effect in the treated (ATT)" in warnings


def test_few_lost_treated_keep_the_att(images):
    page = render(study(), results(), images)   # 2 of 42 lost: under 5%
    assert "matched population" not in text_of(page)


def test_not_estimable_analysis_page_shows_the_reason_and_the_flow_so_far(images):
    placeholder = pd.DataFrame({"estimable": [False], "reason": [NOT_MATCHED["reason"]]})
    data = results(matching=NOT_MATCHED, balance_summary=NOT_MATCHED, survival=NOT_MATCHED,
                   balance=placeholder, table1=placeholder)
    page = render(study(), data, images)
    assert text_of(page, "headline") == ("Not estimable: no treated patient had a control within the caliper "
                                         "(stage: match)")
    flow = text_of(page, "flow")
    assert "age >= 18: 90 — resection 42, IAT 48" in flow
    assert flow.endswith("Not estimable: no treated patient had a control within the caliper (stage: match)")
    assert "Matched:" not in flow
    for section in ("design-not-estimable", "survival-not-estimable"):
        assert "no treated patient had a control within the caliper" in text_of(page, section)
    for absent in ('id="table1"', 'id="survival"', 'id="effects"', "Kaplan-Meier curves", "Love plot"):
        assert absent not in page
    assert "the log-rank test (the robust score test of the weighted Cox model when" in text_of(page, "methods")
    default_tau = study()
    default_tau["analyses"]["main"]["survival"]["rmst_tau"] = None
    assert "Restricted mean survival time to the smaller of the arms' largest follow-up times;" in \
        text_of(render(default_tau, data, images), "methods")


def test_not_estimable_cohort_stops_the_flow_after_ingest(images):
    record = {"estimable": False, "reason": "the cohort has no control patients", "stage": "cohort"}
    data = results(attrition=record, propensity=record, matching=record, balance_summary=record, survival=record)
    flow = text_of(render(study(), data, images), "flow")
    assert flow.startswith("Rows in 1 center extracts: 100")
    assert flow.endswith("Not estimable: the cohort has no control patients (stage: cohort)")


def test_labels_with_markup_are_escaped(images):
    labels = {"treated": "<b>resection</b>", "control": "IAT & TACE"}
    page = render(study(labels=labels), results(), images)
    assert "<b>resection</b>" not in page
    assert "&lt;b&gt;resection&lt;/b&gt;" in page and "IAT &amp; TACE" in page
    assert text_of(page, "headline").startswith("Median overall survival: <b>resection</b> 20.0 months")
    assert "Age at <treatment> & after" in table_rows(page, "table1")
    assert "<treatment>" not in page


def test_variable_labels_in_table1_and_balance(images):
    page = render(study(), results(), images)
    assert "Hormonally active" in table_rows(page, "balance")
    assert "Age at <treatment> & after" in table_rows(page, "balance")


def test_endpoint_name_in_headline_and_methods(images):
    config = study()
    config["outcome"]["name"] = "event-free survival"
    page = render(config, results(), images)
    assert text_of(page, "headline").startswith("Median event-free survival:")
    assert "event-free survival was estimated" in text_of(page, "methods")


def test_old_survival_files_still_render(images):
    old = results()["survival"]
    for key in ("test", "hr_cluster", "warnings", "tau_rule", "estimable"):
        old.pop(key)
    old["rmst_difference"] = {"estimate": -3.31, "se": 2.0, "lower": -7.2, "upper": 0.6}
    old["median_difference"] = {"estimate": 6.0, "lower": None, "upper": None, "n_bootstrap": 500,
                                "n_bootstrap_undefined": 3}
    for arm in ("treated", "control"):
        for key in ("events_weighted", "ess", "last_followup"):
            old[arm].pop(key)
    page = render(study(), results(survival=old), images)
    assert text_of(page, "headline").endswith("log-rank p = 0.78; HR 0.95 (0.60–1.50)")
    effects = table_rows(page, "effects")
    assert effects["RMST difference to 60 months (months)"][0] == "-3.3 (95% CI -7.2 to 0.6)"
    assert "6.0 (95% CI unbounded)" in [v[0] for v in effects.values()]


# --- index ---------------------------------------------------------------------------------------

SUBGROUPS = {
    "main": {},
    "main__functional_0": {"derived_from": {"analysis": "main", "subgroup": {"variable": "functional", "level": 0}}},
    "main__functional_1": {"derived_from": {"analysis": "main", "subgroup": {"variable": "functional", "level": 1}}},
    "main__functional_<2 & 3": {"derived_from": {"analysis": "main",
                                                 "subgroup": {"variable": "functional", "level": 2}}},
}


def index_entries():
    base = results()
    entries = []
    for name in SUBGROUPS:
        entry = {"name": name, "survival": copy.deepcopy(base["survival"]), "attrition": base["attrition"],
                 "matching": base["matching"], "balance_summary": base["balance_summary"]}
        entries.append(entry)
    entries[0]["survival"].update(hr_robust_se=0.2)
    entries[1]["survival"].update(hr=0.5, hr_robust_se=0.3)
    entries[2].update(survival=NOT_MATCHED, matching=NOT_MATCHED, balance_summary=NOT_MATCHED)
    entries[3]["survival"].update(hr=1.2, hr_robust_se=0.25)
    entries[3]["matching"] = dict(base["matching"], n_treated_unmatched=10, n_treated_matched=32)
    entries[3]["balance_summary"] = {"failed": ["Balance not achieved: ... age (+0.210)."]}
    entries[3]["balance"] = base["balance"].assign(flag=["|SMD|>=0.1", None])
    return entries


def test_index_rows_flag_what_a_reviewer_must_see(tmp_path):
    config = study(**SUBGROUPS)
    entries = index_entries()
    rows = forest_rows(config["analyses"], entries, VARIABLES)
    forest_png = tmp_path / "forest.png"
    forest_png.write_bytes(b"\x89PNG")
    page = render_index(config, INGEST, entries, forest_png, interaction_tests(rows))
    table = re.search(r'<table id="analyses">(.*?)</table>', page, flags=re.S).group(1)
    cells = {text_of(r[0]): [text_of(c) for c in r[1:]]
             for r in (re.findall(r"<td>(.*?)</td>", row, flags=re.S) for row in re.findall(r"<tr>(.*?)</tr>", table,
                                                                                              flags=re.S)) if r}
    assert cells["main__functional_1"][2] == ("Not estimable: no treated patient had a control within the caliper "
                                              "(stage: match)")
    assert cells["main__functional_1"][1] == "–"
    assert cells["main__functional_1"][4] == "Not estimable (stage: match)."
    flags = cells["main__functional_<2 & 3"][4]
    assert "Balance not achieved after matching: Age at <treatment> & after." in flags
    assert "24% of resection patients not matched (10 of 42): the estimate describes the matched population" in flags
    assert "Underpowered: minimum detectable hazard ratio 2.50 at 80% power" in flags
    assert cells["main__functional_0"][4] == ("Underpowered: minimum detectable hazard ratio 2.50 at 80% power, "
                                              "clinically relevant 1.5.")
    assert 'href="main__functional_%3C2%20%26%203/report.html"' in page
    assert "main__functional_<2" not in page
    interactions = table_rows(page, "interactions")
    assert interactions["main"][0:3] == ["functional", "2", "1"]


def test_index_lists_analyses_without_flags_as_none(tmp_path):
    config = study()
    base = results()
    base["survival"]["power"]["underpowered"] = False
    entry = {"name": "main", "survival": base["survival"], "attrition": base["attrition"],
             "matching": base["matching"], "balance_summary": base["balance_summary"]}
    forest_png = tmp_path / "forest.png"
    forest_png.write_bytes(b"\x89PNG")
    page = render_index(config, INGEST, [entry], forest_png, interaction_tests(forest_rows(
        config["analyses"], [entry], VARIABLES)))
    assert re.search(r"<td>none</td></tr>", page)


def test_index_falls_back_to_balance_json_sentences_without_flagged_rows(tmp_path):
    config = study()
    base = results()
    entry = {"name": "main", "survival": base["survival"], "attrition": base["attrition"],
             "matching": base["matching"], "balance": base["balance"],
             "balance_summary": {"failed": ["After matching, 1 covariates have a variance ratio outside [0.5, 2]: "
                                            "age (2.40)."]}}
    forest_png = tmp_path / "forest.png"
    forest_png.write_bytes(b"\x89PNG")
    page = render_index(config, INGEST, [entry], forest_png, interaction_tests(forest_rows(
        config["analyses"], [entry], VARIABLES)))
    assert "variance ratio outside [0.5, 2]: age (2.40)." in text_of(page, "analyses")


def test_power_sentence_suppresses_a_small_event_count(images):
    data = results()
    data["survival"]["treated"] = dict(data["survival"]["treated"], events=2, events_weighted=2.0)
    data["survival"]["control"] = dict(data["survival"]["control"], events=1, events_weighted=1.0)
    assert "alpha 0.05, <5 events)" in text_of(render(study(), data, images), "power")
