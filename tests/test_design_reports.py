"""How the reports word a weighting design (its estimand, weights, cluster and trimmed patients), and
the index's design sensitivity: the design forest's rows, plot and the sentence on whether the
conclusion depends on the design."""
import copy
import hashlib
import json

import pandas as pd
import pytest

from pipeline.report.design_forest import conclusion, design_forest_plot, design_rows, suppressed
from pipeline.report.forest import forest_rows, interaction_tests
from pipeline.report.html import design_section, render_index
from tests.test_report_formatting import survival as full_survival
from tests.test_report_pages import (INGEST, context, images, render, results, settings, table_rows,  # noqa: F401
                                     text_of)

LABELS = {"treated": "resection", "control": "IAT"}


def weighting_json(**changes) -> dict:
    """matching.json of a weighting design as the weight rule writes it."""
    out = {"estimable": True, "design": "weighting", "scheme": "ipw_ate", "estimand": "ATE",
           "settings": {"estimand": "ATE", "stabilize": False, "trim": 0.05},
           "n_treated_matched": 30, "n_treated_unmatched": 0, "n_controls_matched": 40, "n_discarded_treated": 3,
           "n_discarded_control": 0, "n_trimmed_treated": 9, "n_trimmed_control": 8, "trim_bounds": [0.1234, 0.8765],
           "treated": {"ess": 21.25, "weight_min": 1.1, "weight_max": 9.0},
           "control": {"ess": 33.5, "weight_min": 1.0, "weight_max": 3.0}}
    out.update(changes)
    return out


def weighted_results(**matching) -> dict:
    data = results(matching=weighting_json(**matching))
    data["survival"]["test"] = {"method": "robust_score", "label": "robust score test", "chisq": 4.71, "df": 1,
                                "p": 0.03, "cluster": "patient"}
    data["survival"]["hr_cluster"] = "patient"
    data["survival"]["control"] = dict(data["survival"]["control"], events_weighted=17.25, ess=33.5)
    return data


IPW_ATE = settings(design="weighting", weighting={"estimand": "ATE", "trim": 0.05})


def test_a_weighting_report_names_its_design_estimand_weights_and_cluster(images):
    page = render(IPW_ATE, weighted_results(), images)
    assert "propensity-score weighted survival comparison" in text_of(page)
    assert text_of(page, "design") == ("Design: IPW (ATE) · estimand: average treatment effect in the whole cohort "
                                       "(ATE)")
    flow = text_of(page, "flow")
    assert "<5 outside common support (discarded)" in flow
    assert "9 resection and 8 IAT trimmed (propensity score outside the trimming bounds)" in flow
    assert "Weighted: resection 30 (effective sample size 21.2), IAT 40 (effective sample size 33.5)" in flow
    assert "without a control within the caliper" not in flow
    assert "Table 1: characteristics before and after weighting" in text_of(page)
    assert ("cobalt conventions for the ATE: signed, denominator the square root of the mean of the two arms' "
            "variances before weighting") in text_of(page)
    effects = table_rows(page, "effects")
    assert "Hazard ratio, marginal (Cox with inverse-probability weights, cluster-robust SE on patients)" in effects
    assert effects["Robust score test of the Cox model with inverse-probability weights, clustered on patients "
                   "(chi-square)"] == ["4.71 (df 1)", "0.03"]
    assert any(k.startswith("Median difference (months, bootstrap over patients") for k in effects)
    assert "inverse-probability weights are not all 1 (every patient's weight comes from the propensity score)" in \
        text_of(page, "weights-note")
    assert "Survival in the weighted sample" in text_of(page)


def test_a_weighting_methods_paragraph_describes_the_weights_and_the_trimming(images):
    methods = text_of(render(IPW_ATE, weighted_results(), images), "methods")
    assert "(estimand: average treatment effect in the whole cohort (ATE))" in methods
    assert "treated patients 1 / ps, control patients 1 / (1 - ps)" in methods
    assert ("below the 5th percentile of the treated patients' scores or above the 95th percentile of the control "
            "patients' scores (0.1234 and 0.8765) were excluded") in methods
    assert "denominator the square root of the mean of the two arms' variances before weighting, as cobalt" in methods
    assert "In the weighted sample, overall survival was estimated" in methods
    assert "clustered on patients" in methods and "bootstrap replicates of patients (the weights held fixed)" in methods
    assert "caliper" not in methods and "treated patients were not matched" not in methods


def test_a_weighting_design_warns_of_trimming_not_of_a_moved_att(images):
    data = weighted_results(n_discarded_treated=10)      # 10 + 9 of 42 treated left out
    warnings = text_of(render(IPW_ATE, data, images), "warnings")
    assert ("9 resection and 8 IAT patients trimmed (propensity score outside the trimming bounds): the estimate "
            "describes the trimmed population") in warnings
    assert "not the average treatment effect in the treated" not in warnings
    untrimmed = weighted_results(n_trimmed_treated=0, n_trimmed_control=0, settings={"estimand": "ATE",
                                                                                      "stabilize": False, "trim": None})
    page = render(settings(design="weighting", weighting={"estimand": "ATE"}), untrimmed, images)
    assert "trimmed" not in text_of(page, "flow") and 'id="warnings"' not in page


def test_a_weighting_design_that_could_not_be_weighted_says_why(images):
    stopped = {"estimable": False, "reason": "no control patient is left to weight (common support, scores of "
                                             "exactly 0 or 1, trimming)", "stage": "weight"}
    page = render(IPW_ATE, results(matching=stopped, balance_summary=stopped, survival=stopped), images)
    assert text_of(page, "flow").endswith(f"Not estimable: {stopped['reason']} (stage: weight)")
    methods = text_of(page, "methods")
    assert "treated patients 1 / ps" in methods and "(0." not in methods, "no trimming bounds without a sample"
    assert "clustered on patients" in methods


def test_balance_failures_of_a_weighting_design_read_after_weighting(images):
    data = weighted_results()
    data["balance_summary"]["failed"] = [{"variable": "age", "smd_after": 0.2, "var_ratio_after": 1.0}]
    assert "Balance not achieved: after weighting, 1 of 2 covariates" in text_of(render(IPW_ATE, data, images),
                                                                                  "warnings")


def test_overlap_and_att_weighting_name_their_estimands(images):
    ato = settings(design="weighting", weighting={"estimand": "ATO"})
    page = render(ato, weighted_results(settings={"estimand": "ATO", "stabilize": False, "trim": None},
                                        n_trimmed_treated=0, n_trimmed_control=0), images)
    assert text_of(page, "design").endswith("estimand: average treatment effect in the overlap population (ATO)")
    assert "Cox with overlap weights" in " ".join(table_rows(page, "effects"))
    assert "denominator the overlap-weighted SD of the whole cohort" in text_of(page)
    att = settings(design="weighting", weighting={"stabilize": True})
    page = render(att, weighted_results(settings={"estimand": "ATT", "stabilize": True, "trim": None},
                                        n_trimmed_treated=0, n_trimmed_control=0), images)
    assert "denominator the SD of the resection group before weighting" in text_of(page)
    assert "The weights were stabilised" in text_of(page, "methods")


def test_a_matching_report_keeps_its_wording_and_names_its_estimand(images):
    page = render(settings(), results(), images)
    assert text_of(page, "design") == ("Design: nearest matching · estimand: average treatment effect in the treated "
                                       "(ATT)")
    assert ("Standardized mean differences (MatchIt conventions: signed, denominator the SD of the resection group "
            "in the full sample)") in text_of(page)
    assert "propensity-score matched survival comparison" in text_of(page)
    assert "Table 1: characteristics before and after matching" in text_of(page)


# --- the design forest -----------------------------------------------------------------------------

def survival(hr, lower, upper, n=(40, 40), ess=(40.0, 40.0)):
    """survival.json with that hazard ratio and the arms' sizes and effective sample sizes."""
    out = full_survival(hr=hr, hr_lower=lower, hr_upper=upper, hr_p=0.04)
    for arm, size, e in zip(("treated", "control"), n, ess):
        out[arm] = dict(out[arm], n=size, ess=e)
    return out


NOT_ESTIMABLE = {"estimable": False, "reason": "no patient is left to weight", "stage": "weight"}
DESIGNS = {   # name: (design, estimand, derived_from)
    "main": ("nearest", "ATT", None),
    "main__caliper-0.1": ("nearest", "ATT", {"analysis": "main", "variant": {"matching.caliper": 0.1}}),
    "main__design-ipw_ate": ("ipw_ate", "ATE", {"analysis": "main", "variant": {"design": "ipw_ate"}}),
    "main__design-overlap": ("overlap", "ATO", {"analysis": "main", "variant": {"design": "overlap"}}),
    "main__functional_0": ("nearest", "ATT", {"analysis": "main", "subgroup": {"variable": "functional", "level": 0}}),
    "other": ("ipw_att", "ATT", None),
}


def design_analyses() -> dict:
    treatment = settings().treatment
    return {name: {"treatment": treatment, "design": design, "estimand": estimand,
                   "derived_from": copy.deepcopy(origin)} for name, (design, estimand, origin) in DESIGNS.items()}


def design_entries(**survivals) -> list[dict]:
    balance = {"estimable": True, "failed": [], "max_abs_smd_after": 0.04}
    default = survival(0.7, 0.5, 0.9)
    return [{"name": name, "survival": survivals.get(name, default), "balance_summary": balance}
            for name in DESIGNS]


def test_design_rows_hold_the_analysis_and_its_other_designs():
    entries = design_entries(**{"main__design-ipw_ate": survival(0.8, 0.6, 0.95, n=(54, 111), ess=(14.3, 89.8))})
    entries[3]["balance_summary"] = {"estimable": True, "max_abs_smd_after": 0.21,
                                     "failed": [{"variable": "age", "smd_after": 0.21, "var_ratio_after": 1.0}]}
    rows = design_rows(design_analyses(), entries)
    assert rows.analysis.tolist() == ["main", "main__design-ipw_ate", "main__design-overlap"]
    assert rows.label.tolist() == ["nearest matching", "IPW (ATE)", "overlap weights (ATO)"]
    assert rows.estimand.tolist() == ["ATT", "ATE", "ATO"] and (rows.parent == "main").all()
    ate = rows.iloc[1]
    assert (ate.n_treated, ate.n_control, ate.ess_treated, ate.ess_control) == (54, 111, 14.3, 89.8)
    assert rows.balance_failed.tolist() == [False, False, True]
    assert rows.max_abs_smd_after.tolist() == [0.04, 0.04, 0.21]


def test_a_design_crossed_with_other_settings_is_labelled_with_them():
    analyses = design_analyses()
    analyses["main__design-ipw_ate"]["derived_from"]["variant"]["matching.discard"] = "both"
    rows = design_rows(analyses, design_entries())
    assert rows.label.tolist()[1] == "IPW (ATE) (discard both)"


def test_no_design_variants_no_rows():
    analyses = {name: a for name, a in design_analyses().items() if "design-" not in name}
    assert design_rows(analyses, [e for e in design_entries() if e["name"] in analyses]).empty


@pytest.mark.parametrize("cis, expected", [
    ([(0.5, 0.9), (0.6, 0.95), (0.4, 0.99)],
     "The conclusion does not depend on the design: every design's 95% CI lies below 1 (favouring resection)."),
    ([(1.1, 2.0), (1.2, 3.0), (1.01, 1.5)],
     "The conclusion does not depend on the design: every design's 95% CI lies above 1 (favouring IAT)."),
    ([(0.5, 1.1), (0.9, 1.5), (0.7, 1.2)],
     "The conclusion does not depend on the design: every design's 95% CI includes 1 (no design shows a "
     "difference)."),
    ([(0.5, 0.9), (0.6, 1.05), (0.4, 0.99)],
     "The conclusion depends on the design: the 95% CI lies below 1 for nearest matching, overlap weights (ATO); "
     "it includes 1 for IPW (ATE)."),
])
def test_the_conclusion_sentence(cis, expected):
    names = ["main", "main__design-ipw_ate", "main__design-overlap"]
    rows = design_rows(design_analyses(), design_entries(**{
        name: survival((lower * upper) ** 0.5, lower, upper) for name, (lower, upper) in zip(names, cis)}))
    assert conclusion(rows, LABELS) == expected


def test_designs_without_a_ci_are_named():
    rows = design_rows(design_analyses(), design_entries(**{"main__design-overlap": NOT_ESTIMABLE,
                                                            "main__design-ipw_ate": survival(None, None, None)}))
    assert not rows.estimable.iloc[2] and rows.reason.iloc[2] == "no patient is left to weight"
    assert conclusion(rows, LABELS) == (
        "The conclusion does not depend on the design: the only 95% CI lies below 1 (favouring resection). "
        "No confidence interval for IPW (ATE), overlap weights (ATO).")
    assert conclusion(rows.iloc[1:], LABELS).startswith("No design gave a hazard ratio with a confidence interval.")


def test_the_shared_table_suppresses_small_arms_and_their_ess():
    rows = design_rows(design_analyses(), design_entries(**{"main__design-ipw_ate": survival(
        0.8, 0.6, 0.95, n=(3, 111), ess=(2.5, 89.75))}))
    shared = suppressed(rows, 5).iloc[1]
    assert (shared.n_treated, shared.ess_treated, shared.n_control, shared.ess_control) == ("<5", "<5", "111", "89.8")


def test_design_forest_plot_is_deterministic(tmp_path):
    rows = design_rows(design_analyses(), design_entries(**{"main__design-overlap": NOT_ESTIMABLE}))
    digests = []
    for name in ("a.png", "b.png"):
        design_forest_plot(rows, LABELS, tmp_path / name, 5)
        digests.append(hashlib.sha256((tmp_path / name).read_bytes()).hexdigest())
    assert digests[0] == digests[1]
    assert b"Software" not in (tmp_path / "a.png").read_bytes()


def test_index_shows_the_design_sensitivity_with_its_conclusion(tmp_path):
    analyses = design_analyses()
    entries = design_entries(**{"main__design-ipw_ate": survival(0.9, 0.7, 1.1, n=(54, 111), ess=(14.3, 89.8))})
    base = results()
    for entry in entries:
        entry.update(attrition=base["attrition"], matching=base["matching"])
    entries[2]["matching"] = weighting_json()
    png = tmp_path / "forest.png"
    png.write_bytes(b"\x89PNG")
    rows = design_rows(analyses, entries)
    design = design_section(rows, analyses, png, 5)
    page = render_index(analyses, context(), INGEST, entries, png,
                        interaction_tests(forest_rows(analyses, entries, context().variables)), design)
    text = text_of(page)
    assert "Does the conclusion depend on the design?" in text
    assert ("The conclusion depends on the design: the 95% CI lies below 1 for nearest matching, overlap weights "
            "(ATO); it includes 1 for IPW (ATE).") in text
    table = table_rows(page, "designs-main")
    assert table["IPW (ATE)"] == ["ATE", "54 / 111", "14.3 / 89.8", "0.040", "0.90 (95% CI 0.70–1.10)", "0.04"]
    assert "Matched or weighted (treated / control)" in text
    assert "9 resection and 8 IAT patients trimmed: the estimate describes the trimmed population." in text
    no_design = render_index(analyses, context(), INGEST, entries, png, interaction_tests(
        forest_rows(analyses, entries, context().variables)))
    assert "Does the conclusion depend on the design?" not in text_of(no_design)


def test_design_rows_ignore_entries_order_of_unrelated_analyses():
    entries = design_entries()
    shuffled = [entries[5], *copy.deepcopy(entries[:5])]
    assert design_rows(design_analyses(), shuffled).analysis.tolist() == design_rows(
        design_analyses(), entries).analysis.tolist()


@pytest.mark.slow
def test_the_demo_compares_its_designs(demo):
    """The demo's all_patients is weighted three ways besides its matching; the design forest table
    holds their results and the weighted analyses cluster on the patient."""
    table = pd.read_csv(demo / "design_forest.csv", dtype={"n_treated": str, "n_control": str})
    assert table.analysis.tolist() == ["all_patients", "all_patients__design-ipw_att",
                                       "all_patients__design-ipw_ate", "all_patients__design-overlap"]
    for row in table.to_dict("records"):
        survival = json.loads((demo / row["analysis"] / "survival.json").read_text())
        balance = json.loads((demo / row["analysis"] / "balance.json").read_text())
        assert row["hr"] == pytest.approx(survival["hr"], rel=1e-12)
        assert row["max_abs_smd_after"] == pytest.approx(balance["max_abs_smd_after"], rel=1e-12)
        assert row["n_treated"] == str(survival["treated"]["n"])
        weighted = row["design"] != "nearest"
        assert survival["hr_cluster"] == ("patient" if weighted else "matched set")
        assert survival["test"]["method"] == ("robust_score" if weighted else "logrank")
    overlap = table.set_index("design").loc["overlap"]
    assert overlap.max_abs_smd_after < 1e-8, "overlap weights balance the logistic model's covariates exactly"
    index = text_of((demo / "report.html").read_text())
    assert "Does the conclusion depend on the design?" in index and "The conclusion" in index
    page = (demo / "all_patients__design-ipw_ate/report.html").read_text()
    assert text_of(page, "design").endswith("(ATE)")
