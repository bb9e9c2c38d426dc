"""Rule index_report: results/report.html listing every analysis with its headline."""
from pathlib import Path

from pipeline.io import read_json, run_script
from pipeline.report.html import render_index


def main(smk):
    entries = [
        {"name": name, "survival": read_json(survival), "attrition": read_json(attrition),
         "matching": read_json(matching)}
        for name, survival, attrition, matching in zip(
            smk.params.analyses, smk.input.survival, smk.input.attrition, smk.input.matching)
    ]
    page = render_index(smk.params.study, read_json(smk.input.ingest), entries)
    Path(smk.output[0]).write_text(page)


run_script(main, snakemake)  # noqa: F821
