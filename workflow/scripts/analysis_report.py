"""Rules analysis_report and shareable_analysis_report: one analysis's self-contained HTML report, from
its exact results (results/<analysis>/) or from their shareable form (results/disclosure/<analysis>.json,
with the shareable Table 1, balance table and Love plot)."""
from pathlib import Path

import pandas as pd

from pipeline.config.settings import Analysis, ReportContext, Variable
from pipeline.io import read_json, read_result_csv, run_script, write_csv, write_not_estimable
from pipeline.provenance import analysis_provenance
from pipeline.report.diagnostic_plots import love_plot
from pipeline.report.disclosure import table
from pipeline.report.html import design_words, render_analysis
from pipeline.report.table1 import read_table1

IMAGES = ("km_plot", "love_plot", "overlap_plot")
JSON_RESULTS = ("attrition", "propensity", "matching", "balance_summary", "survival")


def exact_results(smk) -> dict:
    results = {key: read_json(smk.input[key]) for key in (*JSON_RESULTS, "ingest")}
    results["balance"] = read_result_csv(smk.input.balance)
    results["table1"] = read_table1(smk.input.table1)
    return results


def shareable_results(smk, analysis: Analysis, variables: dict[str, Variable]) -> dict:
    """The disclosed results; writes the shareable Table 1, balance table and Love plot."""
    bundle = read_json(smk.input.disclosed)
    results = {key: bundle[key] for key in JSON_RESULTS}
    results["ingest"] = read_json(smk.input.ingest)
    results["balance"], results["table1"] = table(bundle["balance"]), table(bundle["table1"])
    write_csv(results["table1"], smk.output.table1)
    write_csv(results["balance"], smk.output.balance)
    if results["balance_summary"]["estimable"]:
        numeric = results["balance"].assign(**{column: pd.to_numeric(results["balance"][column], errors="coerce")
                                               for column in ("smd_before", "smd_after")})
        love_plot(numeric, smk.output.love_plot, variables, design_words(analysis).adjustment)
    else:
        write_not_estimable([smk.output.love_plot], results["balance_summary"])
    return results


def main(smk):
    analysis, context = Analysis.from_dict(smk.params.analysis), ReportContext.from_dict(smk.params.context)
    shareable = "disclosed" in smk.input.keys()
    results = shareable_results(smk, analysis, context.variables) if shareable else exact_results(smk)
    settings = {"analysis": smk.params.analysis, "context": smk.params.context}
    provenance = analysis_provenance(settings, context, results["ingest"], Path(smk.scriptdir).parents[1])
    images = {k: smk.output[k] if shareable and k == "love_plot" else smk.input[k] for k in IMAGES}
    page = render_analysis(smk.params.name, analysis, context, results, images, provenance)
    Path(smk.output[0]).write_text(page)


run_script(main, snakemake, propagate=False)  # noqa: F821 (reads not-estimable inputs itself)
