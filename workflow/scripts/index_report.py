"""Rule index_report: results/report.html (every analysis with its headline), the forest plot and its tables."""
from pathlib import Path

from pipeline.report.forest import forest_plot, forest_rows, interaction_tests, suppressed
from pipeline.io import read_json, read_result_csv, run_script, write_csv
from pipeline.report.formatting import arm_labels
from pipeline.report.html import render_index


def main(smk):
    study = smk.params.study
    names = smk.params.analyses
    files = zip(names, smk.input.survival, smk.input.attrition, smk.input.matching, smk.input.balance_summary,
                smk.input.balance)
    entries = [
        {"name": name, "survival": read_json(survival), "attrition": read_json(attrition),
         "matching": read_json(matching), "balance_summary": read_json(balance_summary),
         "balance": read_result_csv(balance)}
        for name, survival, attrition, matching, balance_summary, balance in files
    ]
    min_cell = study["report"]["min_cell"]
    rows = forest_rows(study["analyses"], entries, study["registry"]["variables"])
    interactions = interaction_tests(rows)
    write_csv(suppressed(rows, min_cell), smk.output.forest_table)
    write_csv(interactions, smk.output.interaction_table)
    forest_plot(rows, arm_labels(study["analyses"][names[0]]), smk.output.forest_plot, min_cell)
    page = render_index(study, read_json(smk.input.ingest), entries, smk.output.forest_plot, interactions)
    Path(smk.output.index).write_text(page)


run_script(main, snakemake, propagate=False)  # noqa: F821 (reads not-estimable inputs itself)
