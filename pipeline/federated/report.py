"""The pooled report's files: pooled.json, the pooled Kaplan-Meier figure, the forest plot by site
and a self-contained report.html. Counts below min_cell (the largest of the bundles') are shown as
"<min_cell" in the figures and the HTML; pooled.json holds the pooled numbers."""
from __future__ import annotations

import html
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from pipeline.io import write_json
from pipeline.report.figures import figure_style, save_png
from pipeline.report.forest import log_axis
from pipeline.report.formatting import arm_median, count, estimate_ci, number, p_clause, p_value, time_value
from pipeline.report.html import html_table, image_base64
from pipeline.report.km_plot import plot_km  # noqa: I001 (selects the Agg backend)
import matplotlib.pyplot as plt  # noqa: E402


def write_pooled(result: dict, curves: dict, bundles: list[dict], out: Path) -> None:
    """OUT/pooled.json, OUT/km.png, OUT/forest.png and OUT/report.html."""
    out.mkdir(parents=True, exist_ok=True)
    min_cell = max(b.get("disclosure", {}).get("min_cell", 1) for b in bundles)
    write_json(result, out / "pooled.json")
    labels = _arm_labels(result["settings"]["settings"]["treatment"])
    if result["estimable"]:
        plt.close(plot_km(curves, endpoint="survival", labels=labels, time_unit=result["time_unit"],
                          min_cell=min_cell, path=out / "km.png"))
        forest_plot(result, labels, out / "forest.png", min_cell)
    (out / "report.html").write_text(report_html(result, labels, out, min_cell))


def _arm_labels(treatment: dict) -> dict:
    labels = treatment.get("labels") or {}
    return {arm: labels.get(arm) or str(treatment[arm]) for arm in ("treated", "control")}


def forest_rows(result: dict) -> pd.DataFrame:
    """One row per site with an estimate, then the fixed-effect and random-effects summaries."""
    rows = [{"label": s["site"], "hr": s["hr"], "hr_lower": s["lower"], "hr_upper": s["upper"], "summary": False,
             "n": (s["n_treated"], s["n_control"])}
            for s in result["sites"] if s["estimable"] and s.get("log_hr") is not None]
    hazard = result["hazard_ratio"]
    for key, name in (("fixed", "Fixed effect"), ("random", "Random effects")):
        if hazard.get(key):
            rows.append({"label": name, "hr": hazard[key]["hr"], "hr_lower": hazard[key]["hr_lower"],
                         "hr_upper": hazard[key]["hr_upper"], "summary": True, "n": None})
    return pd.DataFrame(rows, columns=["label", "hr", "hr_lower", "hr_upper", "summary", "n"])


def forest_plot(result: dict, labels: dict, path, min_cell: int) -> None:
    rows = forest_rows(result)
    if rows.empty:
        return
    n = len(rows)
    with figure_style():
        fig = Figure(figsize=(8, 0.45 * n + 1.6))
        ax = fig.add_subplot()
        y = np.arange(n)[::-1]
        for yi, (_, row) in zip(y, rows.iterrows()):
            ax.plot([row["hr_lower"], row["hr_upper"]], [yi, yi], color="black", lw=1.2)
            ax.plot(row["hr"], yi, marker="D" if row["summary"] else "s",
                    color="#2b6cb0" if row["summary"] else "#4a5568", markersize=7 if row["summary"] else 5)
        ax.axvline(1.0, color="#999", lw=1, ls="--")
        log_axis(ax, rows)
        ax.set_yticks(y)
        ax.set_yticklabels([_row_label(row, min_cell) for _, row in rows.iterrows()], fontsize=8)
        ax.set_xlabel(f"Hazard ratio, {labels['treated']} vs {labels['control']} (log scale)")
        ax.set_ylim(-0.8, n - 0.2)
        fig.tight_layout()
        save_png(fig, path, dpi=110)


def _row_label(row, min_cell: int) -> str:
    estimate = f"{row['hr']:.2f} ({row['hr_lower']:.2f}–{row['hr_upper']:.2f})"
    if row["summary"]:
        return f"{row['label']}  {estimate}"
    return f"{row['label']} (n {count(row['n'][0], min_cell)}/{count(row['n'][1], min_cell)})  {estimate}"


def report_html(result: dict, labels: dict, out: Path, min_cell: int) -> str:
    title = f"Federated analysis {result['analysis']}: {len(result['sites'])} sites"
    parts = [f"<h1>{html.escape(title)}</h1>",
             f"<p>Config hash {html.escape(result['config_hash'])}; times rounded up to a grid of "
             f"{time_value(result['time_grid']['width'])} {html.escape(result['time_unit'])}.</p>",
             _sites_table(result, min_cell)]
    if not result["estimable"]:
        parts.append(f"<p><b>Not estimable:</b> {html.escape(result['reason'])}</p>")
    else:
        parts += [_survival_section(result, labels, min_cell), _img(out / "km.png", "Pooled Kaplan-Meier curves"),
                  _hazard_section(result["hazard_ratio"])]
        if (out / "forest.png").exists():
            parts.append(_img(out / "forest.png", "Forest plot by site"))
        parts.append(_balance_table(result["balance"]))
    body = "\n".join(parts)
    return ("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>" + html.escape(title) + "</title>"
            "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto}table{border-collapse:collapse}"
            "td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}</style></head><body>\n"
            + body + "\n</body></html>\n")


def _table(header: list[str], rows: list[list[str]]) -> str:
    return str(html_table(pd.DataFrame(rows, columns=header)))


def _sites_table(result: dict, min_cell: int) -> str:
    rows = []
    for s in result["sites"]:
        if not s["estimable"]:
            rows.append([s["site"], "", "", "", "", f"not estimable: {s['reason']}"])
            continue
        hr = estimate_ci(s["hr"], s["lower"], s["upper"], 2) if s.get("log_hr") is not None else s.get("reason")
        rows.append([s["site"], count(s["n_treated"], min_cell), count(s["n_control"], min_cell),
                     count(s["events_treated"], min_cell), count(s["events_control"], min_cell), hr])
    return "<h2>Sites</h2>" + _table(["site", "n treated", "n control", "events treated", "events control",
                                      "HR (95% CI)"], rows)


def _survival_section(result: dict, labels: dict, min_cell: int) -> str:
    unit = result["time_unit"]
    rows = [[labels[arm], count(result[arm]["n"], min_cell), count(result[arm]["events"], min_cell),
             arm_median(result[arm], unit)] for arm in ("treated", "control")]
    tests = [[f"log-rank ({name})", number(test["chisq"], 3) if test["chisq"] is not None else test["reason"],
              p_value(test["p"]) if test["p"] is not None else ""]
             for name, test in (("unstratified", result["logrank"]), ("stratified by site", result["logrank_stratified"]))]
    return ("<h2>Pooled survival</h2>" + _table(["arm", "n", "events", "median (95% CI)"], rows)
            + _table(["test", "chi-square", "p"], tests))


def _hazard_section(hazard: dict) -> str:
    rows = []
    for key, name in (("fixed", "fixed effect (inverse variance)"), ("random", "random effects")):
        summary = hazard.get(key)
        if summary:
            rows.append([name, estimate_ci(summary["hr"], summary["hr_lower"], summary["hr_upper"], 2),
                         p_value(summary["p"]), summary["distribution"]])
    text = "<h2>Hazard ratio (meta-analysis of the sites' log hazard ratios)</h2>" + _table(
        ["model", "HR (95% CI)", "p", "distribution"], rows)
    random, heterogeneity = hazard.get("random"), hazard.get("heterogeneity")
    if random and heterogeneity:
        text += (f"<p>tau² {number(random['tau2'], 4)} ({random['tau2_method'].upper()}), I² "
                 f"{number(heterogeneity['i2'], 1)}%, Q {number(heterogeneity['q'], 2)} on {heterogeneity['df']} df "
                 f"({p_clause(heterogeneity['q_p'])}); 95% prediction interval of a new site's HR "
                 f"{number(random['hr_prediction_lower'], 2)}–{number(random['hr_prediction_upper'], 2)}.</p>")
    if random and len(hazard["sites"]) < 3:
        text += (f"<p>With {len(hazard['sites'])} sites the between-site variance rests on that many estimates: "
                 "the random-effects and prediction intervals are wide by construction.</p>")
    if hazard.get("reason"):
        text += f"<p>{html.escape(hazard['reason'])}</p>"
    return text


def _balance_table(balance: dict) -> str:
    rows = [[c["column"], _num(c["smd_before"]), _num(c["smd_after"])] for c in balance["columns"]]
    return (f"<h2>Pooled balance (SMD, {html.escape(balance['estimand'])} denominator)</h2>"
            + _table(["covariate", "SMD before", "SMD after"], rows))


def _num(x) -> str:
    return "" if x is None else f"{x:.3f}"


def _img(path: Path, alt: str) -> str:
    return f'<p><img alt="{html.escape(alt)}" src="data:image/png;base64,{image_base64(path)}"></p>'
