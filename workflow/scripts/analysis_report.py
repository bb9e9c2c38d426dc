"""Rule analysis_report: one analysis's self-contained HTML report."""
from pathlib import Path

import pandas as pd

from pipeline.io import read_json, read_result_csv, run_script
from pipeline.provenance import study_provenance
from pipeline.report.html import render_analysis

IMAGES = ("km_plot", "love_plot", "overlap_plot")


def main(smk):
    study = smk.params.study
    results = {key: read_json(smk.input[key])
               for key in ("attrition", "propensity", "matching", "balance_summary", "survival", "ingest")}
    results["balance"] = read_result_csv(smk.input.balance)
    results["table1"] = pd.read_csv(smk.input.table1, dtype=str, keep_default_na=False)
    provenance = study_provenance(study, results["ingest"], Path(smk.scriptdir).parents[1])
    page = render_analysis(smk.params.name, study, results, {k: smk.input[k] for k in IMAGES}, provenance)
    Path(smk.output[0]).write_text(page)


run_script(main, snakemake, propagate=False)  # noqa: F821 (reads not-estimable inputs itself)
