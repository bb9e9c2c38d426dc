"""Rule analysis_report: one analysis's self-contained HTML report."""
from pipeline.jobserver import delegate

delegate(snakemake, __file__)  # noqa: F821 (small jobs run in a warm process: pipeline/jobserver.py)

from pathlib import Path

from pipeline.config.settings import Analysis, ReportContext
from pipeline.io import read_json, read_result_csv, run_script
from pipeline.provenance import analysis_provenance
from pipeline.report.html import render_analysis
from pipeline.report.table1 import read_table1

IMAGES = ("km_plot", "love_plot", "overlap_plot")


def main(smk):
    analysis, context = Analysis.from_dict(smk.params.analysis), ReportContext.from_dict(smk.params.context)
    results = {key: read_json(smk.input[key])
               for key in ("attrition", "propensity", "matching", "balance_summary", "survival", "ingest")}
    results["balance"] = read_result_csv(smk.input.balance)
    results["table1"] = read_table1(smk.input.table1)
    settings = {"analysis": smk.params.analysis, "context": smk.params.context}
    provenance = analysis_provenance(settings, context, results["ingest"], Path(smk.scriptdir).parents[1])
    page = render_analysis(smk.params.name, analysis, context, results, {k: smk.input[k] for k in IMAGES}, provenance)
    Path(smk.output[0]).write_text(page)


run_script(main, snakemake, propagate=False)  # noqa: F821 (reads not-estimable inputs itself)
