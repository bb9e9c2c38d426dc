"""The analysis and index pages as rendered HTML: survival body, warnings, not-estimable analyses,
review flags and escaping. Inputs are result files shaped as the stages write them."""
import copy
import html
import re
from html.parser import HTMLParser

import pandas as pd
import pytest

from pipeline.config.settings import Analysis, ReportContext, Study
from pipeline.config.validate import block_with_defaults, prepare_config
from pipeline.io import write_csv
from pipeline.provenance import analysis_provenance, settings_hash
from pipeline.report.forest import forest_rows, interaction_tests
from pipeline.report.html import render_analysis, render_index
from pipeline.report.table1 import read_table1
from tests.conftest import REPO
from tests.test_report_formatting import survival

NOT_MATCHED = {"estimable": False, "reason": "no treated patient had a control within the caliper", "stage": "match"}
VARIABLES = {"age": {"type": "numeric", "label": "Age at <treatment> & after"},
             "functional": {"type": "binary", "label": "Hormonally active"},
             "ki67": {"type": "numeric"}, "grade": {"type": "category", "levels": ["G1", "NA"]}}
PROVENANCE = {"inputs": [{"file": "center_a.csv", "sha256": "ab"}], "packages": {"numpy": "2.0"},
              "settings_sha256": "cd", "git_commit": "ef", "seed": 1}
INGEST = {"centers": {"a": {"rows_read": 100, "accepted": 98, "quarantined": 2, "reasons": {"not_a_date": 2},
                            "missing": {"age": 3}, "sha256": "ab12"}},
          "total": {"rows_read": 100, "accepted": 98, "quarantined": 2, "reasons": {"not_a_date": 2},
                    "missing": {"age": 3}}}


TABLE1_COLUMNS = ["variable", "level", "statistic", "arm", "stage", "units", "value", "spread", "low", "high",
                  "percent", "smd", "suppressed"]


def settings(labels=None, **changes) -> Analysis:
    """An analysis's typed settings (schema defaults filled), with ``changes`` to its config block."""
    block = {"treatment": {"column": "treatment", "treated": "res", "control": "iat",
                           "labels": labels or {"treated": "resection", "control": "IAT"}},
             "covariates": ["age", "functional"], "survival": {"rmst_tau": 60, "bootstrap": 500}}
    for key, value in changes.items():
        block[key] = dict(block.get(key, {}), **value) if isinstance(value, dict) else value
    return Analysis.from_dict(block_with_defaults(block, "analysis"))


def context(outcome_name="overall survival") -> ReportContext:
    return ReportContext.from_dict({
        "seed": 7, "time_unit": "months", "report": {"min_cell": 5, "relevant_hr": 1.5},
        "outcome": {"time": "t", "event": "e", "name": outcome_name}, "variables": VARIABLES,
        "centers": {"a": "center_a.csv"}})


def table1() -> pd.DataFrame:
    """table1.csv (long, numbers) of n, age (mean, SD) and functional (n, %)."""
    rows = []
    for stage, sizes in (("before", {"treated": 42, "control": 48}), ("after", {"treated": 40, "control": 40})):
        for arm, n in sizes.items():
            rows += [
                {"variable": "n", "level": "", "statistic": "n", "arm": arm, "stage": stage, "units": n, "value": n},
                {"variable": "age", "level": "", "statistic": "mean_sd", "arm": arm, "stage": stage, "units": n,
                 "value": 60.0, "spread": 10.0, "smd": 0.3 if stage == "before" else 0.05},
                {"variable": "functional", "level": "1", "statistic": "n_percent", "arm": arm, "stage": stage,
                 "units": 10, "value": 10, "percent": 100 * 10 / n, "smd": 0.2 if stage == "before" else 0.02},
            ]
    return pd.DataFrame(rows, columns=TABLE1_COLUMNS).assign(suppressed=False)


def results(**changes) -> dict:
    out = {
        "ingest": INGEST,
        "attrition": {"estimable": True, "steps": [{"criterion": "age >= 18", "before": 98, "after": 90,
                                                    "excluded": 8, "reason": "criterion not met"}],
                      "n_treated": 42, "n_control": 48},
        "propensity": {"estimable": True, "warnings": [],
                       "diagnostics_before": {"c_statistic": 0.7, "equipoise_share": 0.5}},
        "matching": {"estimable": True, "n_treated_matched": 40, "n_treated_unmatched": 2, "n_controls_matched": 40,
                     "n_discarded_treated": 0, "n_discarded_control": 0, "caliper_raw": 0.3},
        "balance_summary": {"estimable": True, "failed": [], "warnings": [],
                            "diagnostics_after": {"equipoise_share": 0.8}},
        "balance": pd.DataFrame({"variable": ["age", "functional"], "smd_before": [0.3, 0.2],
                                 "smd_after": [0.05, 0.02], "var_ratio_before": [1.1, None],
                                 "var_ratio_after": [1.0, None], "ecdf_max_after": [0.05, 0.01], "flag": [None, None]}),
        "table1": table1(),
        "survival": survival(power={"mdrr": 2.5, "alpha": 0.05, "power": 0.8, "relevant_hr": 1.5,
                                    "underpowered": True}),
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


def render(analysis, result_files, images, report_context=None):
    return render_analysis("main", analysis, report_context or context(), result_files, images, PROVENANCE)


def test_unit_weight_report_names_the_log_rank_and_the_cluster(images):
    page = render(settings(), results(), images)
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
    page = render(settings(), data, images)
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
    rows = table_rows(render(settings(), data, images), "survival")
    assert rows["Events"][1] == "<5" and rows["Events, weighted"][1] == "<5"
    assert rows["Effective sample size (Kish)"][1] == "7.9"


def test_landmarks_beyond_follow_up_tau_rule_and_rmst_bootstrap(images):
    data = results()
    data["survival"]["control"]["survival_at"] = {"12": 0.8, "36": 0.4, "60": None}
    data["survival"].update(tau=47.25, tau_rule="smaller of the arms' largest follow-up times")
    page = render(settings(), data, images)
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
    data["matching"].update(n_treated_unmatched=5, n_discarded_treated=1, n_treated_matched=36)
    page = render(settings(), data, images)
    warnings = text_of(page, "warnings")
    assert "The RMST horizon lies beyond the follow-up of one arm." in warnings
    assert "14% of resection patients (6 of 42) are not in the matched sample" in warnings   # 42: cohort.json
    assert "not the average treatment effect in the treated (ATT)" in warnings
    assert "Balance not achieved" not in warnings
    assert "estimate describes the matched population rather than all treated patients" in text_of(page, "methods")


def test_balance_failures_are_worded_from_balance_json(images):
    data = results()
    data["balance"] = pd.concat([data["balance"]] * 2, ignore_index=True)    # 4 covariate columns
    data["balance_summary"]["failed"] = [
        {"variable": "age", "smd_after": 0.1504, "var_ratio_after": 2.4},
        {"variable": "grade=NA", "smd_after": -0.2, "var_ratio_after": None},
        {"variable": "ki67", "smd_after": 0.01, "var_ratio_after": 0.4449},
    ]
    warnings = [text_of(w) for w in re.findall(r'<p class="warning">(.*?)</p>', render(settings(), data, images))]
    assert warnings == [
        "Balance not achieved: after matching, 2 of 4 covariates have an absolute standardized mean difference of "
        "0.1 or more: age (+0.150), grade=NA (-0.200). Interpret the comparison with caution.",
        "After matching, 2 covariates have a variance ratio (treated/control) outside [0.5, 2]: age (2.40), "
        "ki67 (0.44). Interpret the comparison with caution.",
    ]


def test_table1_is_pivoted_and_formatted_as_a_reader_expects(tmp_path, images):
    rows = []
    for stage in ("before", "after"):
        rows += [
            ["n", "", "n", "treated", stage, 42, 42, None, None, None, None, None, False],
            ["n", "", "n", "control", stage, 4, None, None, None, None, None, None, True],
            ["age", "", "mean_sd", "treated", stage, 40, 61.26, 9.04, None, None, None, -0.05004, False],
            ["age", "", "mean_sd", "control", stage, 0, None, None, None, None, None, -0.05004, False],
            ["ki67", "", "median_iqr", "treated", stage, 42, 3.0, None, 1.5, 7.26, None, 0.1234, False],
            ["ki67", "", "median_iqr", "control", stage, 4, None, None, None, None, None, 0.1234, True],
            ["grade", "NA", "n_percent", "treated", stage, 12, 12.0 if stage == "before" else 10.5, None, None, None,
             100 * 12 / 42 if stage == "before" else 26.3, 0.3, False],
            ["grade", "NA", "n_percent", "control", stage, 0, 0.0, None, None, None, None, 0.3, False],
            ["grade", "(missing)", "n", "treated", stage, 2, None, None, None, None, None, None, True],
            ["grade", "(missing)", "n", "control", stage, 0, 0.0, None, None, None, None, None, False],
        ]
    write_csv(pd.DataFrame(rows, columns=TABLE1_COLUMNS), tmp_path / "table1.csv")
    page = render(settings(), results(table1=read_table1(tmp_path / "table1.csv")), images)
    table = table_rows(page, "table1")
    assert table["Variable"] == ["Level", "Statistic", "resection, before", "IAT, before", "SMD before",
                                 "resection, after", "IAT, after", "SMD after"]
    assert table["n"] == ["", "n", "42", "<5", "", "42", "<5", ""]
    assert table["Age at <treatment> & after"] == ["", "mean (SD)", "61.3 (9.0)", "<5", "-0.05",
                                                   "61.3 (9.0)", "<5", "-0.05"]
    assert table["ki67"] == ["", "median [IQR]", "3.0 [1.5, 7.3]", "<5", "0.123", "3.0 [1.5, 7.3]", "<5", "0.123"]
    grade = re.findall(r"<tr><td>grade</td>(.*?)</tr>", page)
    assert [[html.unescape(c) for c in re.findall(r"<td>(.*?)</td>", row)] for row in grade] == [
        ["NA", "n (%)", "12 (28.6%)", "0", "0.3", "10.5 (26.3%)", "0", "0.3"],
        ["(missing)", "n", "<5", "0", "", "<5", "0", ""],
    ]


def test_few_lost_treated_keep_the_att(images):
    page = render(settings(), results(), images)   # 2 of 42 lost: under 5%
    assert "matched population" not in text_of(page)


def test_methods_paragraph_joins_the_design_methods_sentences(images):
    data = results()
    data["attrition"]["steps"].append({"criterion": "ecog <= 2", "before": 90, "after": 80, "excluded": 10,
                                       "reason": "criterion not met"})
    analysis = settings(cohort=["age >= 18", "ecog <= 2"], missing="indicator")
    methods = text_of(render(analysis, data, images), "methods")
    assert methods.startswith("Patients treated with resection were compared with patients treated with IAT "
                              "(estimand: average treatment effect in the treated). Inclusion criteria: age >= 18; "
                              "ecog <= 2. Missing covariate data: indicator. The propensity score was estimated with ")
    assert "on Age at <treatment> & after, Hormonally active. Patients were matched 1:1" in methods
    assert "(raw width 0.3000)" in methods
    assert "statistics. In the matched sample, overall survival was estimated" in methods
    assert methods.endswith(" Seed 7.")


def test_not_estimable_analysis_page_shows_the_reason_and_the_flow_so_far(images):
    placeholder = pd.DataFrame({"estimable": [False], "reason": [NOT_MATCHED["reason"]]})
    data = results(matching=NOT_MATCHED, balance_summary=NOT_MATCHED, survival=NOT_MATCHED,
                   balance=placeholder, table1=placeholder)
    page = render(settings(), data, images)
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
    default_tau = settings(survival={"rmst_tau": None})
    assert "Restricted mean survival time to the smaller of the arms' largest follow-up times;" in \
        text_of(render(default_tau, data, images), "methods")
    assert "Seed 7." in text_of(page, "methods")


def test_not_estimable_cohort_stops_the_flow_after_ingest(images):
    record = {"estimable": False, "reason": "the cohort has no control patients", "stage": "cohort"}
    data = results(attrition=record, propensity=record, matching=record, balance_summary=record, survival=record)
    flow = text_of(render(settings(), data, images), "flow")
    assert flow.startswith("Rows in 1 center extracts: 100")
    assert flow.endswith("Not estimable: the cohort has no control patients (stage: cohort)")


def test_labels_with_markup_are_escaped(images):
    labels = {"treated": "<b>resection</b>", "control": "IAT & TACE"}
    page = render(settings(labels=labels), results(), images)
    assert "<b>resection</b>" not in page
    assert "&lt;b&gt;resection&lt;/b&gt;" in page and "IAT &amp; TACE" in page
    assert text_of(page, "headline").startswith("Median overall survival: <b>resection</b> 20.0 months")
    assert "Age at <treatment> & after" in table_rows(page, "table1")
    assert "<treatment>" not in page


def test_variable_labels_in_table1_and_balance(images):
    page = render(settings(), results(), images)
    assert "Hormonally active" in table_rows(page, "balance")
    assert "Age at <treatment> & after" in table_rows(page, "balance")


def test_endpoint_name_in_headline_and_methods(images):
    page = render(settings(), results(), images, context("event-free survival"))
    assert text_of(page, "headline").startswith("Median event-free survival:")
    assert "event-free survival was estimated" in text_of(page, "methods")


def test_the_endpoint_name_is_the_schemas_default_when_not_configured(demo_config, images):
    study = Study.from_config(prepare_config(demo_config, REPO))
    assert "name" not in demo_config["outcome"]
    page = render(settings(), results(), images, study.report_context(["age"]))
    assert text_of(page, "headline").startswith("Median overall survival:")


def test_provenance_hashes_the_settings_this_analysis_used(demo_config, images):
    def provenance(config, name="all_patients"):
        study = Study.from_config(prepare_config(copy.deepcopy(config), REPO))
        analysis = study.analyses[name]
        report_context = study.report_context(analysis.variable_names)
        used = {"analysis": analysis.to_dict(), "context": report_context.to_dict()}
        return analysis_provenance(used, report_context, ingest, REPO)

    ingest = {"centers": {c: {"sha256": f"{i:064x}", "rows_read": 10 + i}
                          for i, c in enumerate(demo_config["registry"]["centers"])}}
    base = provenance(demo_config)
    assert base["inputs"][1] == {"center": "center_b", "path": "resources/registry/center_b.csv",
                                 "sha256": f"{1:064x}", "rows": 11}
    other = copy.deepcopy(demo_config)
    other["analyses"]["asymptomatic_high_burden"]["matching"] = {"caliper": 0.1}
    assert provenance(other)["settings_sha256"] == base["settings_sha256"]
    assert provenance(other, "asymptomatic_high_burden")["settings_sha256"] != \
        provenance(demo_config, "asymptomatic_high_burden")["settings_sha256"]
    own = copy.deepcopy(demo_config)
    own["analyses"]["all_patients"]["matching"] = {"caliper": 0.1}
    shared = copy.deepcopy(demo_config)
    shared["outcome"]["name"] = "event-free survival"
    assert base["settings_sha256"] not in {provenance(own)["settings_sha256"], provenance(shared)["settings_sha256"]}
    page = render(settings(), results(), images)
    assert "SHA-256 of the settings this analysis used" in text_of(page) and "<code>cd</code>" in page


def test_settings_hash_is_canonical():
    assert settings_hash({"a": 1, "b": [1, 2]}) == settings_hash({"b": [1, 2], "a": 1})
    assert settings_hash({"a": 1}) != settings_hash({"a": 2})


# --- index ---------------------------------------------------------------------------------------

SUBGROUPS = {
    "main": None,
    "main__functional_0": {"analysis": "main", "subgroup": {"variable": "functional", "level": 0}},
    "main__functional_1": {"analysis": "main", "subgroup": {"variable": "functional", "level": 1}},
    "main__functional_<2 & 3": {"analysis": "main", "subgroup": {"variable": "functional", "level": 2}},
}


def index_analyses(derived=None) -> dict:
    """The index rule's `analyses` parameter, typed: per name its treatment and origin."""
    treatment = settings().treatment
    origins = derived or {"main": None}
    return {name: {"treatment": treatment, "derived_from": origin} for name, origin in origins.items()}


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
    entries[3]["balance_summary"] = dict(base["balance_summary"], failed=[
        {"variable": "age", "smd_after": 0.21, "var_ratio_after": 1.2},
        {"variable": "grade=NA", "smd_after": 0.02, "var_ratio_after": 2.5}])
    return entries


def render_index_page(analyses, entries, tmp_path) -> str:
    forest_png = tmp_path / "forest.png"
    forest_png.write_bytes(b"\x89PNG")
    rows = forest_rows(analyses, entries, context().variables)
    return render_index(analyses, context(), INGEST, entries, forest_png, interaction_tests(rows))


def test_index_rows_flag_what_a_reviewer_must_see(tmp_path):
    page = render_index_page(index_analyses(SUBGROUPS), index_entries(), tmp_path)
    table = re.search(r'<table id="analyses">(.*?)</table>', page, flags=re.S).group(1)
    cells = {text_of(r[0]): [text_of(c) for c in r[1:]]
             for r in (re.findall(r"<td>(.*?)</td>", row, flags=re.S) for row in re.findall(r"<tr>(.*?)</tr>", table,
                                                                                              flags=re.S)) if r}
    assert cells["main"][:2] == ["42 / 48", "40 / 40"]
    assert cells["main__functional_1"][2] == ("Not estimable: no treated patient had a control within the caliper "
                                              "(stage: match)")
    assert cells["main__functional_1"][1] == "–"
    assert cells["main__functional_1"][4] == "Not estimable (stage: match)."
    flags = cells["main__functional_<2 & 3"][4]
    assert "Balance not achieved after matching: Age at <treatment> & after, grade = NA." in flags
    assert "24% of resection patients not matched (10 of 42): the estimate describes the matched population" in flags
    assert "Underpowered: minimum detectable hazard ratio 2.50 at 80% power" in flags
    assert cells["main__functional_0"][4] == ("Underpowered: minimum detectable hazard ratio 2.50 at 80% power, "
                                              "clinically relevant 1.5.")
    assert 'href="main__functional_%3C2%20%26%203/report.html"' in page
    assert "main__functional_<2" not in page
    interactions = table_rows(page, "interactions")
    assert interactions["main"][0:3] == ["functional", "2", "1"]
    centers = table_rows(page, "centers")
    assert centers["a"] == ["100", "98", "<5", "not_a_date <5", "age <5"]


def test_index_lists_analyses_without_flags_as_none(tmp_path):
    base = results()
    base["survival"]["power"]["underpowered"] = False
    entry = {"name": "main", "survival": base["survival"], "attrition": base["attrition"],
             "matching": base["matching"], "balance_summary": base["balance_summary"]}
    assert re.search(r"<td>none</td></tr>", render_index_page(index_analyses(), [entry], tmp_path))


def test_power_sentence_suppresses_a_small_event_count(images):
    data = results()
    data["survival"]["treated"] = dict(data["survival"]["treated"], events=2, events_weighted=2.0)
    data["survival"]["control"] = dict(data["survival"]["control"], events=1, events_weighted=1.0)
    assert "alpha 0.05, <5 events)" in text_of(render(settings(), data, images), "power")
