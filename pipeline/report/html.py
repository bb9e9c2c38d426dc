"""Assemble the analysis and index reports from the stages' result files.

A stage that was not estimable wrote {estimable: false, reason, stage} (and placeholder tables and
figures); the reports check `estimable` before reading any number and show the reason instead.
"""
from __future__ import annotations

import base64
import functools
import html
from datetime import datetime, timezone
from pathlib import Path
from typing import NamedTuple
from urllib.parse import quote

import jinja2
import pandas as pd
from markupsafe import Markup

from pipeline.config.settings import Analysis, ReportContext, Treatment, Variable
from pipeline.design import matching as matching_methods, propensity as propensity_methods
from pipeline.design import weighting as weighting_schemes
from pipeline.design.designs import design_label, design_name
from pipeline.design.weighting.common import ESTIMANDS
from pipeline.outcome.survival import TAU_RULE
from pipeline.report.checks import (TREATED_LOSS_THRESHOLD, adjustment, balance_failed, balance_sentences,
                                    estimand_moved, estimand_sentence, review_flags, trimming_sentence, underpowered)
from pipeline.report.design_forest import conclusion
from pipeline.report.disclosure import sum_counts
from pipeline.report.formatting import (CLUSTER_PLURAL, arm_labels, column_label, count, estimate_ci, headline,
                                        hr_cluster, is_estimable, is_suppressed, median_difference_text,
                                        not_estimable_text, number, p_value, percent, time_value, variable_label,
                                        weighted_count)
from pipeline.report.imputation import imputation_methods, imputation_section
from pipeline.report.table1 import table1_display

TEMPLATES = Path(__file__).parent / "templates"

CITATIONS = [
    "Austin PC. Optimal caliper widths for propensity-score matching. Pharm Stat 2011;10:150-61.",
    "Austin PC. Balance diagnostics for comparing the distribution of baseline covariates. Stat Med 2009;28:3083-107.",
    "Stuart EA. Matching methods for causal inference: a review and a look forward. Stat Sci 2010;25:1-21.",
    "Austin PC. The use of propensity score methods with survival or time-to-event outcomes. Stat Med 2014;33:1242-58.",
    "Austin PC, Small DS. The use of bootstrapping when using propensity-score matching without replacement. "
    "Stat Med 2014;33:4306-19.",
    "VanderWeele TJ, Ding P. Sensitivity analysis in observational research: the E-value. Ann Intern Med 2017;167:268-74.",
    "Ho D, Imai K, King G, Stuart EA. MatchIt: nonparametric preprocessing for parametric causal inference. "
    "J Stat Softw 2011;42(8).",
    "Yao XI, et al. Reporting and guidelines in propensity score analysis. J Natl Cancer Inst 2017;109:djw323.",
]
TAU_RULES = {"configured": "as configured"}
TEST_ROWS = {"logrank": "Log-rank test (unweighted; every matching weight is 1)",
             "robust_score": "Robust score test of the Cox model with {weights}, clustered on {cluster}",
             "pooled_wald": "Wald test of the log hazard ratio pooled over the imputations (Rubin's rules, t with "
                            "Barnard-Rubin df)"}
TEST_METHODS = {
    "logrank": "the log-rank test (every matching weight is 1)",
    "robust_score": "the robust score test of the Cox model with {weights} (the {weights} are not all 1, which the "
                    "log-rank test would ignore)",
    "pooled_wald": "the Wald test of the log hazard ratio pooled over the imputations (Rubin's rules)",
}


class DesignWords(NamedTuple):
    """How the texts name the analysis's design."""
    adjustment: str    # matching, weighting
    sample: str        # matched, weighted
    weights: str       # matching weights, inverse-probability weights, overlap weights
    resampled: str     # what the bootstrap resamples: matched sets, patients


MATCHING_WORDS = DesignWords("matching", "matched", "matching weights", "matched sets")


def estimand_text(estimand: str) -> str:
    """'average treatment effect in the treated (ATT)'."""
    return f"{ESTIMANDS[estimand]} ({estimand})"


def design_line(analysis: Analysis) -> str:
    """The report's design and estimand under its title."""
    return f"Design: {design_label(design_name(analysis))} · estimand: {estimand_text(analysis.estimand)}"


def design_words(analysis: Analysis) -> DesignWords:
    if analysis.design == "weighting":
        scheme = weighting_schemes.SCHEMES[analysis.weighting.estimand]
        return DesignWords("weighting", "weighted", scheme.weights_name, "patients")
    return MATCHING_WORDS


@functools.cache
def templates() -> jinja2.Environment:
    """The report templates (compiled once per process: the job server compiles them for its jobs)."""
    return jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True,
                              undefined=jinja2.StrictUndefined, keep_trailing_newline=True)


def _timestamp() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def image_base64(path) -> str:
    return base64.b64encode(Path(path).read_bytes()).decode("ascii")


def html_table(frame: pd.DataFrame, table_id: str | None = None) -> Markup:
    """A plain HTML table of already formatted cells (escaped)."""
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    rows = []
    for _, row in frame.iterrows():
        cells = "".join(f"<td>{html.escape('' if pd.isna(v) else str(v))}</td>" for v in row)
        rows.append(f"<tr>{cells}</tr>")
    attr = f' id="{table_id}"' if table_id else ""
    return Markup(f"<table{attr}><tr>{head}</tr>{''.join(rows)}</table>")


# --- sections -----------------------------------------------------------------------------------

def flow_items(ingest: dict, attrition: dict, matching: dict, labels: dict, min_cell: int) -> list[dict]:
    """The STROBE/RECORD flow as boxes and exclusions: extracts -> accepted -> cohort steps -> matched,
    as far as the analysis got (a stage that was not estimable ends it with its reason)."""
    total = ingest["total"]
    c = lambda n: count(n, min_cell)  # noqa: E731
    items = [{"kind": "box", "text": f"Rows in {len(ingest['centers'])} center extracts: {c(total['rows_read'])}"}]
    reasons = ", ".join(f"{code}: {c(n)}" for code, n in sorted(total["reasons"].items()))
    items.append({"kind": "excl", "text": f"{c(total['quarantined'])} quarantined by validation ({reasons or 'none'})"})
    items += [{"kind": "arrow"}, {"kind": "box", "text": f"Accepted registry rows: {c(total['accepted'])}"}]
    if not is_estimable(attrition):
        return items + [{"kind": "arrow"}, {"kind": "stop", "text": not_estimable_text(attrition)}]
    for step in attrition["steps"]:
        items.append({"kind": "excl", "text": f"{c(step['excluded'])} ({step['reason']}: {step['criterion']})"})
        items += [{"kind": "arrow"}, {"kind": "box", "text": f"{step['criterion']}: {c(step['after'])}"}]
    items[-1]["text"] += (f" — {labels['treated']} {c(attrition['n_treated'])}, "
                          f"{labels['control']} {c(attrition['n_control'])}")
    if not is_estimable(matching):
        return items + [{"kind": "arrow"}, {"kind": "stop", "text": not_estimable_text(matching)}]
    discarded = sum_counts(matching["n_discarded_treated"], matching["n_discarded_control"])
    if discarded:
        items.append({"kind": "excl", "text": f"{c(discarded)} outside common support (discarded)"})
    if adjustment(matching) == "weighting":
        return items + _weighting_flow(matching, labels, min_cell)
    items.append({"kind": "excl", "text": f"{c(matching['n_treated_unmatched'])} {labels['treated']} without a "
                                          "control within the caliper"})
    items += [{"kind": "arrow"}, {"kind": "box", "text": (
        f"Matched: {labels['treated']} {c(matching['n_treated_matched'])}, "
        f"{labels['control']} {c(matching['n_controls_matched'])}")}]
    return items


def _weighting_flow(matching: dict, labels: dict, min_cell: int) -> list[dict]:
    """A weighting design's end of the flow: the trimmed patients, the weighted sample with its ESS."""
    c = lambda n: count(n, min_cell)  # noqa: E731
    items = []
    if matching["settings"]["trim"] is not None:
        items.append({"kind": "excl", "text": (
            f"{c(matching['n_trimmed_treated'])} {labels['treated']} and {c(matching['n_trimmed_control'])} "
            f"{labels['control']} trimmed (propensity score outside the trimming bounds)")})
    weighted = {"treated": matching["n_treated_matched"], "control": matching["n_controls_matched"]}
    arms = ", ".join(f"{labels[arm]} {c(n)} (effective sample size "
                     f"{weighted_count(matching[arm]['ess'], n, min_cell)})" for arm, n in weighted.items())
    return items + [{"kind": "arrow"}, {"kind": "box", "text": f"Weighted: {arms}"}]


def balance_display(balance: pd.DataFrame, variables: dict[str, Variable]) -> pd.DataFrame:
    return pd.DataFrame({
        "Variable": balance["variable"].map(lambda v: column_label(v, variables)),
        "SMD before": balance["smd_before"].map(lambda v: number(v, 3)),
        "SMD after": balance["smd_after"].map(lambda v: number(v, 3)),
        "VR before": balance["var_ratio_before"].map(lambda v: "" if pd.isna(v) else number(v, 2)),
        "VR after": balance["var_ratio_after"].map(lambda v: "" if pd.isna(v) else number(v, 2)),
        "eCDF max after": balance["ecdf_max_after"].map(lambda v: number(v, 3)),
        "Flag": balance["flag"].fillna(""),
    })


def weights_not_unit(survival: dict) -> bool:
    """Some matching weight is not 1: the arms' weighted events or effective sample size differ
    from their row counts (the shareable tier, whose counts may be suppressed, says so itself)."""
    if "weights_not_unit" in survival:
        return survival["weights_not_unit"]

    def differs(arm: dict, weighted: str, rows: str) -> bool:
        return abs(arm[weighted] - arm[rows]) > 1e-9

    return any(differs(survival[arm], "ess", "n") or differs(survival[arm], "events_weighted", "events")
               for arm in ("treated", "control"))


def tau_text(survival: dict) -> str:
    """'60 months, as configured'."""
    rule = survival["tau_rule"]
    return f"{time_value(survival['tau'])} {survival['time_unit']}, {TAU_RULES.get(rule, rule)}"


def survival_display(survival: dict, labels: dict, min_cell: int) -> pd.DataFrame:
    unit = survival["time_unit"]
    rows = {"n": lambda a: count(a["n"], min_cell), "Events": lambda a: count(a["events"], min_cell)}
    if weights_not_unit(survival):
        rows["Events, weighted"] = lambda a: weighted_count(a["events_weighted"], a["events"], min_cell)
        rows["Effective sample size (Kish)"] = lambda a: weighted_count(a["ess"], a["n"], min_cell)
    rows[f"Median ({unit}, 95% CI)"] = lambda a: estimate_ci(a["median"], a["median_lower"], a["median_upper"])
    for landmark in survival["treated"]["survival_at"]:
        rows[f"Survival at {landmark} {unit} (95% CI)"] = _landmark_formatter(landmark)
    rows[f"RMST to {tau_text(survival)} (SE)"] = (
        lambda a: "not estimated" if a["rmst"] is None else f"{number(a['rmst'])} ({number(a['rmst_se'], 2)})")
    rows[f"Longest follow-up ({unit})"] = lambda a: number(a["last_followup"])
    table = {"": list(rows)}
    for arm in ("treated", "control"):
        table[labels[arm]] = [fmt(survival[arm]) for fmt in rows.values()]
    return pd.DataFrame(table)


def _landmark_formatter(landmark: str):
    def fmt(arm: dict) -> str:
        value, ci = arm["survival_at"][landmark], arm["survival_at_ci"][landmark]
        if value is None:
            return "beyond follow-up"
        if is_suppressed(value):
            return value
        return f"{percent(value)}% ({_pct(ci[0])}–{_pct(ci[1])})"
    return fmt


def _pct(x) -> str:
    return "NR" if x is None else percent(x)


WEIGHTS_WHY = {"matching": "matching with replacement or a varying number of controls per treated patient",
               "weighting": "every patient's weight comes from the propensity score"}


def survival_note(survival: dict, words: DesignWords) -> str:
    if not weights_not_unit(survival):
        return ""
    return (f"The {words.weights} are not all 1 ({WEIGHTS_WHY[words.adjustment]}): the table gives the weighted "
            "events and the effective sample size (Kish) beside the patient counts, and the numbers at risk under "
            "the curves are weighted.")


def effect_display(survival: dict, words: DesignWords) -> pd.DataFrame:
    unit = survival["time_unit"]
    hr = ("not estimable" if survival["hr"] is None
          else estimate_ci(survival["hr"], survival["hr_lower"], survival["hr_upper"], 2))
    rows = [(f"Hazard ratio, marginal (Cox with {words.weights}, cluster-robust SE on {hr_cluster(survival)})",
             hr, p_value(survival["hr_p"])), _test_row(survival, words)]
    rows += _rmst_rows(survival)
    median = survival["median_difference"]
    rows.append((f"Median difference ({unit}, bootstrap over {words.resampled}, {median['n_bootstrap']} resamples)",
                 median_difference_text(median), ""))
    conditional = survival.get("conditional_hr")   # pair-stratified: only without replacement
    if conditional and conditional["hr"] is not None:
        rows.append(("Hazard ratio, conditional (stratified on matched set; secondary)",
                     estimate_ci(conditional["hr"], conditional["lower"], conditional["upper"], 2),
                     p_value(conditional["p"])))
    return pd.DataFrame(rows, columns=["Effect", "Estimate", "p"])


def _test_row(survival: dict, words: DesignWords) -> tuple[str, str, str]:
    """The test the headline uses: named, with how it is clustered."""
    test = survival["test"]
    name = TEST_ROWS[test["method"]].format(cluster=CLUSTER_PLURAL.get(test["cluster"]),   # no cluster: log-rank
                                            weights=words.weights)
    if test["p"] is None:
        return name, "not estimable", "–"
    if test["method"] == "pooled_wald":
        return name, f"t² {number(test['chisq'], 2)}", p_value(test["p"])
    return f"{name} (chi-square)", f"{number(test['chisq'], 2)} (df {test['df']})", p_value(test["p"])


def _rmst_rows(survival: dict) -> list[tuple[str, str, str]]:
    """The RMST difference with its CI's method; beside a bootstrap CI, the CI with the arms as
    independent samples (as survRM2) for comparison."""
    rmst, unit = survival["rmst_difference"], survival["time_unit"]
    title = f"RMST difference to {tau_text(survival)} ({unit})"
    if rmst["estimate"] is None:
        return [(title, "not estimated", "")]
    rows = [(f"{title}; 95% CI: {rmst['method']}", estimate_ci(rmst["estimate"], rmst["lower"], rmst["upper"]), "")]
    if rmst["n_bootstrap"]:
        rows.append(("RMST difference; 95% CI with the arms' SEs combined as independent (as survRM2), for comparison",
                     estimate_ci(rmst["estimate"], rmst["lower_independent"], rmst["upper_independent"]), ""))
    return rows


def evalue_text(survival: dict) -> str:
    e = survival["e_value"]
    if e["point"] is None:
        return "E-value: not estimable (no hazard ratio)."
    return (f"E-value for the hazard ratio: {number(e['point'], 2)}; for the confidence limit nearer 1: "
            f"{number(e['ci'], 2)}. An unmeasured confounder associated with both treatment and survival by a "
            f"risk ratio of this size each, beyond the measured covariates, could explain away the estimate "
            f"(VanderWeele & Ding 2017).")


def overlap_text(propensity: dict, balance_summary: dict, design: str) -> str:
    before, after = propensity["diagnostics_before"], balance_summary["diagnostics_after"]
    return (f"c-statistic of the propensity model {number(before['c_statistic'], 3)}; share of patients in "
            f"equipoise (preference score 0.3–0.7, Walker 2013) {percent(before['equipoise_share'])}% "
            f"before and {percent(after['equipoise_share'])}% after {design}.")


SMD_DENOMINATORS = {
    "ATT": "the SD of the {treated} group {sample}",
    "ATE": "the square root of the mean of the two arms' variances before weighting",
    "ATO": "the overlap-weighted SD of the whole cohort",
}
"""The SMD's denominator per estimand (pipeline.design.balance: MatchIt's for matching, cobalt's for weighting)."""


def smd_denominator_text(analysis: Analysis, labels: dict) -> str:
    sample = "in the full sample" if analysis.design == "matching" else "before weighting"
    return SMD_DENOMINATORS[analysis.estimand].format(treated=labels["treated"], sample=sample)


def methods_text(analysis: Analysis, context: ReportContext, results: dict, labels: dict) -> str:
    """The methods paragraph; the propensity model's, the matching's and the weighting's sentences
    come from their registries (each method describes itself)."""
    steps = "; ".join(analysis.cohort) or "none"
    covariates = [variable_label(v, context.variables) for v in analysis.covariates]
    estimand, design, balance = (_weighting_methods if analysis.design == "weighting" else _matching_methods)(
        analysis, results, labels)
    return (
        f"Patients treated with {labels['treated']} were compared with patients treated with {labels['control']} "
        f"({estimand}). Inclusion criteria: {steps}. Missing covariate data: {analysis.missing.replace('_', '-')}. "
        f"{imputation_methods(analysis)}{propensity_methods.describe(analysis.propensity, covariates)} {design} {balance} "
        f"{survival_methods(analysis, context, results['survival'])} Seed {context.seed}."
    )


def _matching_methods(analysis: Analysis, results: dict, labels: dict) -> tuple[str, str, str]:
    """(estimand clause, matching sentence, balance sentence) of the methods paragraph."""
    matching = results["matching"]
    caliper_raw = matching["caliper_raw"] if is_estimable(matching) else None
    estimand = "estimand: average treatment effect in the treated"
    if estimand_moved(matching, results["attrition"]):
        estimand += (f"; more than {TREATED_LOSS_THRESHOLD:.0%} of the treated patients were not matched, so the "
                     "estimate describes the matched population rather than all treated patients")
    return (estimand, matching_methods.describe(analysis.matching, caliper_raw),
            "Balance was assessed by standardized mean differences, variance ratios and eCDF statistics.")


def _weighting_methods(analysis: Analysis, results: dict, labels: dict) -> tuple[str, str, str]:
    """(estimand clause, weighting sentences, balance sentence) of the methods paragraph."""
    weighting = results["matching"]
    bounds = weighting["trim_bounds"] if is_estimable(weighting) else None
    balance = (f"Balance was assessed in the weighted sample by standardized mean differences (denominator "
               f"{smd_denominator_text(analysis, labels)}, as cobalt for the {analysis.estimand}), variance ratios "
               "and eCDF statistics.")
    return (f"estimand: {estimand_text(analysis.estimand)}", weighting_schemes.describe(analysis.weighting, bounds),
            balance)


def survival_methods(analysis: Analysis, context: ReportContext, survival: dict) -> str:
    """The survival part of the methods: the test, the cluster, tau's rule and the bootstraps used
    (as configured when the survival stage was not estimable)."""
    s, words = analysis.survival, design_words(analysis)
    if is_estimable(survival):
        test_text = TEST_METHODS[survival["test"]["method"]].format(weights=words.weights)
        cluster, tau = hr_cluster(survival), tau_text(survival)
        rmst_ci = (f", its difference with a 95% CI from {survival['rmst_difference']['n_bootstrap']} bootstrap "
                   f"resamples of {words.resampled} (the CI treating the arms as independent samples, as survRM2, "
                   f"is shown for comparison)" if survival["rmst_difference"]["n_bootstrap"] else "")
    else:
        test_text = (f"the log-rank test (the robust score test of the weighted Cox model when the {words.weights} "
                     "are not all 1)")
        cluster = ("patients" if words.adjustment == "weighting"
                   else "matched sets (patients when matching with replacement)")
        tau = f"the {TAU_RULE}" if s.rmst_tau is None else f"{time_value(s.rmst_tau)} {context.time_unit}"
        rmst_ci = ""
    fixed = " (the weights held fixed)" if words.adjustment == "weighting" else ""
    return (f"In the {words.sample} sample, {context.outcome.name} was estimated by weighted Kaplan-Meier ({s.ci} "
            f"confidence intervals) and compared by {test_text}; the marginal hazard ratio came from a Cox model with "
            f"{words.weights} (Efron ties) and a cluster-robust (sandwich) variance clustered on {cluster}. "
            f"Restricted mean survival time to {tau}{rmst_ci}; the median difference by {s.bootstrap} bootstrap "
            f"replicates of {words.resampled}{fixed}.")


def provenance_display(provenance: dict) -> Markup:
    inputs = pd.DataFrame(provenance["inputs"]).rename(columns=str.capitalize)
    packages = html.escape(", ".join(f"{k} {v}" for k, v in provenance["packages"].items()))
    facts = (f"<p class='muted'>SHA-256 of the settings this analysis used (its own, and the study's outcome, "
             f"variables and report settings) <code>{html.escape(provenance['settings_sha256'])}</code> · code "
             f"<code>{html.escape(provenance['git_commit'])}</code> · seed {provenance['seed']}<br>{packages}</p>")
    return Markup(str(html_table(inputs)) + facts)


def power_text(survival: dict, min_cell: int, relevant_hr: float) -> str:
    """MDRR beside the HR, and in words what a non-significant result does and does not show."""
    power = survival["power"]
    if power["mdrr"] is None:
        return ""
    events = count(sum_counts(survival["treated"]["events"], survival["control"]["events"]), min_cell)
    mdrr = power["mdrr"]
    inverse = "" if is_suppressed(mdrr) else f" (or {number(1 / mdrr, 2)})"
    text = (f"Minimum detectable hazard ratio at {power['power']:.0%} power (two-sided alpha "
            f"{power['alpha']}, {events} events): {number(mdrr, 2)}{inverse}.")
    if underpowered(survival):
        text += (f" This matched sample could not reliably detect a clinically relevant hazard ratio of "
                 f"{relevant_hr} (or {number(1 / relevant_hr, 2)}): the non-significant result "
                 "is not evidence that the treatments are equivalent.")
    return text


def analysis_warnings(results: dict, labels: dict, min_cell: int) -> list[str]:
    """The orange boxes above the headline: what qualifies the numbers below."""
    failed = balance_failed(results["balance_summary"])
    warnings = [f"{sentence} Interpret the comparison with caution."
                for sentence in balance_sentences(failed, len(results["balance"]), adjustment(results["matching"]))]
    if estimand_moved(results["matching"], results["attrition"]):
        warnings.append(estimand_sentence(results["matching"], results["attrition"], labels["treated"], min_cell))
    trimmed = trimming_sentence(results["matching"], labels, min_cell)
    if trimmed:
        warnings.append(trimmed)
    if is_estimable(results["propensity"]):
        warnings += [f"Propensity model: {w}" for w in results["propensity"]["warnings"]]
    if is_estimable(results["survival"]):
        warnings += results["survival"]["warnings"]
    return warnings


# --- pages -------------------------------------------------------------------------------------

def render_analysis(name: str, analysis: Analysis, context: ReportContext, results: dict, images: dict,
                    provenance: dict) -> str:
    """`results`: the parsed result files (attrition, propensity, matching, balance, balance_summary,
    table1, survival, ingest); `images`: name -> PNG path. Sections of stages that were not
    estimable give the reason instead of their tables and figures."""
    min_cell = context.report.min_cell
    labels = arm_labels(analysis.treatment)
    survival = results["survival"]
    words = design_words(analysis)
    page = {
        "name": name, "labels": labels, "css": (TEMPLATES / "style.css").read_text(), "words": words,
        "design_line": design_line(analysis),
        "headline": headline(survival, labels, context.outcome.name),
        "warnings": analysis_warnings(results, labels, min_cell),
        "flow": flow_items(results["ingest"], results["attrition"], results["matching"], labels, min_cell),
        "design": _design_section(analysis, results, labels, context, images),
        "survival": _survival_section(survival, labels, context, images, words),
        "imputation": _imputation_section(analysis, results, labels, context),
        "methods": methods_text(analysis, context, results, labels),
        "citations": CITATIONS,
        "provenance": provenance_display(provenance),
        "timestamp": _timestamp(),
    }
    return templates().get_template("analysis.html.j2").render(page)


def balance_text(analysis: Analysis, labels: dict) -> str:
    """The balance section's note: the SMD's conventions and the flags."""
    conventions = ("MatchIt conventions: signed" if analysis.design == "matching"
                   else f"cobalt conventions for the {analysis.estimand}: signed")
    return (f"Standardized mean differences ({conventions}, denominator {smd_denominator_text(analysis, labels)}); "
            "|SMD| ≥ 0.1 or a variance ratio outside [0.5, 2] is flagged.")


def _design_section(analysis: Analysis, results: dict, labels: dict, context: ReportContext, images: dict) -> dict:
    summary = results["balance_summary"]
    if not is_estimable(summary):
        return {"missing": not_estimable_text(summary)}
    table1 = table1_display(results["table1"], labels, context.variables, context.report.min_cell)
    return {"table1": html_table(table1, "table1"), "balance_text": balance_text(analysis, labels),
            "balance": html_table(balance_display(results["balance"], context.variables), "balance"),
            "overlap_text": overlap_text(results["propensity"], summary, design_words(analysis).adjustment),
            "love_plot": image_base64(images["love_plot"]), "overlap_plot": image_base64(images["overlap_plot"])}


def _imputation_section(analysis: Analysis, results: dict, labels: dict, context: ReportContext) -> dict | None:
    section = imputation_section(analysis, results, labels, context.variables, context.report.min_cell)
    if section is None or "missing" in section:
        return section
    ranges = section["smd_ranges"]
    return {**section, "estimates": html_table(section["estimates"], "imputation-estimates"),
            "smd_ranges": "" if ranges is None else html_table(ranges, "smd-ranges")}


def _survival_section(survival: dict, labels: dict, context: ReportContext, images: dict, words: DesignWords) -> dict:
    if not is_estimable(survival):
        return {"missing": not_estimable_text(survival)}
    min_cell = context.report.min_cell
    return {"table": html_table(survival_display(survival, labels, min_cell), "survival"),
            "note": survival_note(survival, words),
            "effects": html_table(effect_display(survival, words), "effects"),
            "evalue_text": evalue_text(survival),
            "power_text": power_text(survival, min_cell, context.report.relevant_hr),
            "km_plot": image_base64(images["km_plot"])}


def interaction_display(interactions: pd.DataFrame) -> pd.DataFrame:
    dash = lambda f: lambda v: "–" if pd.isna(v) else f(v)  # noqa: E731
    return pd.DataFrame({
        "Analysis": interactions["parent"], "Subgroup variable": interactions["subgroup_variable"],
        "Levels tested": interactions["levels"], "Levels not estimable": interactions["levels_not_estimable"],
        "Chi-square": interactions["chisq"].map(dash(lambda v: number(v, 2))),
        "df": interactions["df"].map(dash(str)), "p (exploratory)": interactions["p"].map(dash(p_value)),
    })


def centers_display(ingest: dict, min_cell: int) -> pd.DataFrame:
    """Per center: rows read, accepted, quarantined with reasons, and missing values per variable
    among the accepted rows (a blank death date is expected for the living, so outcome dates are
    reported like any other variable)."""
    rows = []
    for center, c in ingest["centers"].items():
        rows.append({
            "Center": center, "Rows read": count(c["rows_read"], min_cell),
            "Accepted": count(c["accepted"], min_cell), "Quarantined": count(c["quarantined"], min_cell),
            "Quarantine reasons": ", ".join(f"{k} {count(v, min_cell)}" for k, v in sorted(c["reasons"].items())),
            "Missing values": ", ".join(f"{k} {count(v, min_cell)}" for k, v in c["missing"].items() if v),
        })
    return pd.DataFrame(rows)


def index_row(treatment: Treatment, context: ReportContext, entry: dict) -> dict:
    """One analysis in the index: sizes, headline, MDRR and the review flags."""
    min_cell = context.report.min_cell
    labels = arm_labels(treatment)
    att, m, survival = entry["attrition"], entry["matching"], entry["survival"]
    pair = lambda a, b: f"{count(a, min_cell)} / {count(b, min_cell)}"  # noqa: E731
    return {
        "name": entry["name"], "href": f"{quote(entry['name'])}/report.html",
        "cohort": pair(att["n_treated"], att["n_control"]) if is_estimable(att) else "–",
        "matched": pair(m["n_treated_matched"], m["n_controls_matched"]) if is_estimable(m) else "–",
        "headline": headline(survival, labels, context.outcome.name),
        "mdrr": number(survival["power"]["mdrr"], 2) if is_estimable(survival) else "–",
        "flags": review_flags(entry, labels, min_cell, context.report.relevant_hr, context.variables),
    }


def design_display(rows: pd.DataFrame, min_cell: int) -> pd.DataFrame:
    """One analysis's designs as the index lists them (design_forest.design_rows' rows)."""
    pair = lambda a, b, fmt: "–" if pd.isna(a) else f"{fmt(a)} / {fmt(b)}"  # noqa: E731
    return pd.DataFrame({
        "Design": rows["label"], "Estimand": rows["estimand"],
        "n (treated / control)": [pair(r.n_treated, r.n_control, lambda n: count(n, min_cell))
                                  for r in rows.itertuples()],
        "Effective sample size (treated / control)": [
            "–" if pd.isna(r.ess_treated) else f"{weighted_count(r.ess_treated, r.n_treated, min_cell)} / "
                                               f"{weighted_count(r.ess_control, r.n_control, min_cell)}"
            for r in rows.itertuples()],
        "Largest |SMD| after": [number(v, 3) if pd.notna(v) else "–" for v in rows["max_abs_smd_after"]],
        "Hazard ratio (95% CI)": ["not estimable" if pd.isna(r.hr) else estimate_ci(r.hr, r.hr_lower, r.hr_upper, 2)
                                  for r in rows.itertuples()],
        "p": [p_value(None if pd.isna(v) else v) for v in rows["hr_p"]],
    })


def design_section(rows: pd.DataFrame, analyses: dict, png, min_cell: int) -> dict:
    """The index's design sensitivity: the design forest plot and, per analysis, whether the
    conclusion depends on the design and its designs' table. ``analyses``: per name {treatment, ...}."""
    panels = [{"parent": parent, "sentence": conclusion(block, arm_labels(analyses[parent]["treatment"])),
               "table": html_table(design_display(block, min_cell), f"designs-{parent}")}
              for parent, block in rows.groupby("parent", sort=False)]
    return {"image": image_base64(png), "panels": panels}


def render_index(analyses: dict, context: ReportContext, ingest: dict, entries: list[dict], forest_png,
                 interactions: pd.DataFrame, design_forest: dict | None = None) -> str:
    """``analyses``: per name {treatment: Treatment, derived_from}; ``entries``: per analysis {name,
    survival, attrition, matching, balance_summary} (the parsed result files); ``design_forest``:
    design_section's content (None: no analysis varies its design)."""
    min_cell = context.report.min_cell
    total = ingest["total"]
    page = {"css": (TEMPLATES / "style.css").read_text(),
            "analyses": [index_row(analyses[entry["name"]]["treatment"], context, entry) for entry in entries],
            "n_centers": len(ingest["centers"]), "rows_read": count(total["rows_read"], min_cell),
            "accepted": count(total["accepted"], min_cell), "quarantined": count(total["quarantined"], min_cell),
            "centers": html_table(centers_display(ingest, min_cell), "centers"),
            "forest": image_base64(forest_png), "loss_threshold": f"{TREATED_LOSS_THRESHOLD:.0%}",
            "interactions": html_table(interaction_display(interactions), "interactions")
            if len(interactions) else "",
            "design_forest": design_forest,
            "timestamp": _timestamp()}
    return templates().get_template("index.html.j2").render(page)
