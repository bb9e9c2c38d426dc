"""Assemble the analysis and index reports from the stages' result files."""
from __future__ import annotations

import base64
import html
from datetime import datetime, timezone
from pathlib import Path

import jinja2
from markupsafe import Markup
import pandas as pd

from pipeline.report.formatting import (arm_labels, count, estimate_ci, headline, number, p_value)

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


def _environment() -> jinja2.Environment:
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
    """The STROBE/RECORD flow as boxes and exclusions: extracts -> accepted -> cohort steps -> matched."""
    total = ingest["total"]
    c = lambda n: count(n, min_cell)  # noqa: E731
    items = [{"kind": "box", "text": f"Rows in {len(ingest['centers'])} center extracts: {c(total['rows_read'])}"}]
    reasons = ", ".join(f"{code}: {c(n)}" for code, n in sorted(total.get("reasons", {}).items()))
    items.append({"kind": "excl", "text": f"{c(total['quarantined'])} quarantined by validation ({reasons or 'none'})"})
    items += [{"kind": "arrow"}, {"kind": "box", "text": f"Accepted registry rows: {c(total['accepted'])}"}]
    for step in attrition["steps"]:
        items.append({"kind": "excl", "text": f"{c(step['excluded'])} ({step['reason']}: {step['criterion']})"})
        items += [{"kind": "arrow"}, {"kind": "box", "text": f"{step['criterion']}: {c(step['after'])}"}]
    items[-1]["text"] += (f" — {labels['treated']} {c(attrition['n_treated'])}, "
                          f"{labels['control']} {c(attrition['n_control'])}")
    discarded = matching.get("n_discarded_treated", 0) + matching.get("n_discarded_control", 0)
    if discarded:
        items.append({"kind": "excl", "text": f"{c(discarded)} outside common support (discarded)"})
    items.append({"kind": "excl", "text": f"{c(matching['n_treated_unmatched'])} {labels['treated']} without a "
                                          "control within the caliper"})
    items += [{"kind": "arrow"}, {"kind": "box", "text": (
        f"Matched: {labels['treated']} {c(matching['n_treated_matched'])}, "
        f"{labels['control']} {c(matching['n_controls_matched'])}")}]
    return items


def table1_display(table1: pd.DataFrame, labels: dict) -> pd.DataFrame:
    """Table 1 with the arms' names in the headers."""
    names = {"variable": "Variable", "level": "Level", "statistic": "Statistic",
             "smd_before": "SMD before", "smd_after": "SMD after"}
    for arm in ("treated", "control"):
        for when in ("before", "after"):
            names[f"{arm}_{when}"] = f"{labels[arm]}, {when}"
    return table1.rename(columns=names)


def balance_display(balance: pd.DataFrame) -> pd.DataFrame:
    shown = pd.DataFrame({
        "Variable": balance["variable"],
        "SMD before": balance["smd_before"].map(lambda v: number(v, 3)),
        "SMD after": balance["smd_after"].map(lambda v: number(v, 3)),
        "VR before": balance["var_ratio_before"].map(lambda v: "" if pd.isna(v) else number(v, 2)),
        "VR after": balance["var_ratio_after"].map(lambda v: "" if pd.isna(v) else number(v, 2)),
        "eCDF max after": balance["ecdf_max_after"].map(lambda v: number(v, 3)),
    })
    if "flag" in balance:
        shown["Flag"] = balance["flag"].fillna("")
    return shown


def survival_display(survival: dict, labels: dict, min_cell: int) -> pd.DataFrame:
    unit = survival["time_unit"]
    rows = {"n": lambda a: count(a["n"], min_cell), "Events": lambda a: count(a["events"], min_cell),
            f"Median ({unit}, 95% CI)": lambda a: estimate_ci(a["median"], a["median_lower"], a["median_upper"])}
    for landmark, _ in survival["treated"]["survival_at"].items():
        rows[f"Survival at {landmark} {unit}"] = _landmark_formatter(landmark)
    rows[f"RMST to {number(survival['tau'], 0)} {unit} (SE)"] = (
        lambda a: f"{number(a['rmst'])} ({number(a['rmst_se'], 2)})")
    table = {"": list(rows)}
    for arm in ("treated", "control"):
        table[labels[arm]] = [fmt(survival[arm]) for fmt in rows.values()]
    return pd.DataFrame(table)


def _landmark_formatter(landmark: str):
    def fmt(arm: dict) -> str:
        value = arm["survival_at"].get(landmark)
        ci = arm.get("survival_at_ci", {}).get(landmark, [None, None])
        if value is None:
            return "–"
        return f"{100 * value:.1f}% ({_pct(ci[0])}–{_pct(ci[1])})"
    return fmt


def _pct(x) -> str:
    return "NR" if x is None else f"{100 * x:.1f}"


def effect_display(survival: dict) -> pd.DataFrame:
    rmst = survival["rmst_difference"]
    median = survival["median_difference"]
    rows = [
        ("Hazard ratio, marginal (Cox, cluster-robust SE on matched sets)",
         estimate_ci(survival["hr"], survival["hr_lower"], survival["hr_upper"], 2), p_value(survival["hr_p"])),
        ("Log-rank test (chi-square)", number(survival["logrank_chisq"], 2), p_value(survival["logrank_p"])),
        (f"RMST difference ({survival['time_unit']})",
         estimate_ci(rmst["estimate"], rmst["lower"], rmst["upper"]), ""),
        (f"Median difference ({survival['time_unit']}, bootstrap over matched sets)",
         estimate_ci(median["estimate"], median["lower"], median["upper"]), ""),
    ]
    conditional = survival.get("conditional_hr")
    if conditional and conditional.get("hr") is not None:
        rows.append(("Hazard ratio, conditional (stratified on matched set; secondary)",
                     estimate_ci(conditional["hr"], conditional["lower"], conditional["upper"], 2),
                     p_value(conditional.get("p"))))
    return pd.DataFrame(rows, columns=["Effect", "Estimate", "p"])


def evalue_text(survival: dict) -> str:
    e = survival["e_value"]
    return (f"E-value for the hazard ratio: {number(e['point'], 2)}; for the confidence limit nearer 1: "
            f"{number(e['ci'], 2)}. An unmeasured confounder associated with both treatment and survival by a "
            f"risk ratio of this size each, beyond the measured covariates, could explain away the estimate "
            f"(VanderWeele & Ding 2017).")


def overlap_text(propensity: dict, balance_summary: dict) -> str:
    before, after = propensity["diagnostics_before"], balance_summary["diagnostics_after"]
    return (f"c-statistic of the propensity model {number(before.get('c_statistic'), 3)}; share of patients in "
            f"equipoise (preference score 0.3–0.7, Walker 2013) {number(100 * before['equipoise_share'], 1)}% "
            f"before and {number(100 * after['equipoise_share'], 1)}% after matching.")


def methods_text(study: dict, analysis: dict, matching: dict, labels: dict) -> str:
    m = analysis["matching"]
    caliper = ("no caliper" if m["caliper"] is None else
               f"a caliper of {m['caliper']} SD of the {m['caliper_scale']} of the propensity score"
               if m["std_caliper"] else f"a caliper of {m['caliper']} on the {m['caliper_scale']} scale")
    model = {"logistic": "an unpenalized logistic regression (maximum likelihood, as R's glm)",
             "elastic_net": "an elastic-net logistic regression (causalml)",
             "gradient_boosting": "gradient-boosted trees (causalml)",
             "precomputed": f"the precomputed score in '{analysis['propensity'].get('column')}'"}
    steps = "; ".join(analysis["cohort"]) or "none"
    exact = f", exactly within {', '.join(m['exact'])}" if m["exact"] else ""
    return (
        f"Patients treated with {labels['treated']} were compared with patients treated with {labels['control']} "
        f"(estimand: average treatment effect in the treated). Inclusion criteria: {steps}. Missing covariate "
        f"data: {analysis['missing'].replace('_', '-')}. The propensity score was estimated with "
        f"{model[analysis['propensity']['model']]} on {', '.join(analysis['covariates'])}. Patients were matched "
        f"{m['ratio']}:1 by greedy nearest-neighbour matching {'with' if m['replace'] else 'without'} replacement "
        f"in {m['order']} order of the distance{exact}, with {caliper} (raw width "
        f"{number(matching.get('caliper_raw'), 4)}), with MatchIt (>= 4.6) semantics; common-support discard: "
        f"{m['discard']}. Balance was assessed by standardized mean differences, variance ratios and eCDF "
        f"statistics. In the matched sample, survival was estimated by weighted Kaplan-Meier "
        f"({analysis['survival']['ci']} confidence intervals), compared by the log-rank test and a Cox model with "
        f"matching weights and a cluster-robust variance on the matched set (marginal hazard ratio, Efron ties); "
        f"restricted mean survival time to {analysis['survival']['rmst_tau']} {study['time_unit']}; the median "
        f"difference by {analysis['survival']['bootstrap']} bootstrap replicates of matched sets. Seed {study['seed']}."
    )


def provenance_display(provenance: dict) -> Markup:
    inputs = pd.DataFrame(provenance["inputs"]).rename(columns=str.capitalize)
    packages = ", ".join(f"{k} {v}" for k, v in provenance["packages"].items())
    facts = (f"<p class='muted'>Config SHA-256 <code>{provenance['config_sha256']}</code> · code "
             f"<code>{html.escape(provenance['git_commit'])}</code> · seed {provenance['seed']}<br>{packages}</p>")
    return Markup(str(html_table(inputs)) + facts)


# --- pages -------------------------------------------------------------------------------------

def render_analysis(name: str, study: dict, results: dict, images: dict, provenance: dict) -> str:
    """`results`: the parsed result files (attrition, propensity, matching, balance, balance_summary,
    table1, survival, ingest); `images`: name -> PNG path."""
    analysis = study["analyses"][name]
    min_cell = study["report"]["min_cell"]
    labels = arm_labels(analysis)
    survival = results["survival"]
    warnings = []
    if results["balance_summary"]["failed"]:
        warnings.append(" ".join(results["balance_summary"]["failed"]) + " Interpret the comparison with caution.")
    warnings += [f"Propensity model: {w}" for w in results["propensity"].get("warnings", [])]
    context = {
        "name": name, "labels": labels, "css": (TEMPLATES / "style.css").read_text(),
        "headline": headline(survival, labels), "warnings": warnings,
        "flow": flow_items(results["ingest"], results["attrition"], results["matching"], labels, min_cell),
        "table1": html_table(table1_display(results["table1"], labels), "table1"),
        "balance": html_table(balance_display(results["balance"]), "balance"),
        "overlap_text": overlap_text(results["propensity"], results["balance_summary"]),
        "survival_table": html_table(survival_display(survival, labels, min_cell), "survival"),
        "effect_table": html_table(effect_display(survival), "effects"),
        "evalue_text": evalue_text(survival),
        "power_text": power_text(survival),
        "methods": methods_text(study, analysis, results["matching"], labels),
        "citations": CITATIONS,
        "provenance": provenance_display(provenance),
        "images": {key: image_base64(path) for key, path in images.items()},
        "timestamp": _timestamp(),
    }
    return _environment().get_template("analysis.html.j2").render(context)


def power_text(survival: dict) -> str:
    """MDRR beside the HR, and in words what a non-significant result does and does not show."""
    power = survival.get("power")
    if not power or power["mdrr"] is None:
        return ""
    text = (f"Minimum detectable hazard ratio at {power['power']:.0%} power (two-sided alpha "
            f"{power['alpha']}, {survival['treated']['events'] + survival['control']['events']} events): "
            f"{number(power['mdrr'], 2)} (or {number(1 / power['mdrr'], 2)}).")
    if power["underpowered"] and (survival["hr_p"] is None or survival["hr_p"] >= power["alpha"]):
        text += (f" This matched sample could not reliably detect a clinically relevant hazard ratio of "
                 f"{power['relevant_hr']} (or {number(1 / power['relevant_hr'], 2)}): the non-significant result "
                 "is not evidence that the treatments are equivalent.")
    return text


def interaction_display(interactions: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({
        "Analysis": interactions["parent"], "Subgroup variable": interactions["subgroup_variable"],
        "Levels": interactions["levels"], "Chi-square": interactions["chisq"].map(lambda v: number(v, 2)),
        "df": interactions["df"], "p (exploratory)": interactions["p"].map(p_value),
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
            "Missing values": ", ".join(f"{k} {count(v, min_cell)}" for k, v in c.get("missing", {}).items() if v),
        })
    return pd.DataFrame(rows)


def render_index(study: dict, ingest: dict, entries: list[dict], forest_png, interactions: pd.DataFrame) -> str:
    """`entries`: per analysis {name, survival, attrition, matching}."""
    min_cell = study["report"]["min_cell"]
    rows = []
    for entry in entries:
        labels = arm_labels(study["analyses"][entry["name"]])
        att, m = entry["attrition"], entry["matching"]
        rows.append({
            "name": entry["name"],
            "cohort": f"{count(att['n_treated'], min_cell)} / {count(att['n_control'], min_cell)}",
            "matched": f"{count(m['n_treated_matched'], min_cell)} / {count(m['n_controls_matched'], min_cell)}",
            "headline": headline(entry["survival"], labels),
            "mdrr": number(entry["survival"].get("power", {}).get("mdrr"), 2),
        })
    total = ingest["total"]
    context = {"css": (TEMPLATES / "style.css").read_text(), "analyses": rows,
               "n_centers": len(ingest["centers"]), "rows_read": count(total["rows_read"], min_cell),
               "accepted": count(total["accepted"], min_cell), "quarantined": count(total["quarantined"], min_cell),
               "centers": html_table(centers_display(ingest, min_cell), "centers"),
               "forest": image_base64(forest_png),
               "interactions": html_table(interaction_display(interactions), "interactions")
               if len(interactions) else "",
               "timestamp": _timestamp()}
    return _environment().get_template("index.html.j2").render(context)
