"""Rule index_report: results/report.html (every analysis with its headline), the forest plot and its tables."""
from pathlib import Path

from pipeline.config.settings import ReportContext, Treatment
from pipeline.io import read_json, run_script, write_csv
from pipeline.report.forest import forest_plot, forest_rows, interaction_tests, suppressed
from pipeline.report.formatting import arm_labels
from pipeline.report.html import render_index


def main(smk):
    context = ReportContext.from_dict(smk.params.context)
    analyses = {name: {"treatment": Treatment.from_dict(a["treatment"]), "derived_from": a["derived_from"]}
                for name, a in smk.params.analyses.items()}
    files = zip(analyses, smk.input.survival, smk.input.attrition, smk.input.matching, smk.input.balance_summary)
    entries = [
        {"name": name, "survival": read_json(survival), "attrition": read_json(attrition),
         "matching": read_json(matching), "balance_summary": read_json(balance_summary)}
        for name, survival, attrition, matching, balance_summary in files
    ]
    min_cell = context.report.min_cell
    rows = forest_rows(analyses, entries, context.variables)
    interactions = interaction_tests(rows)
    write_csv(suppressed(rows, min_cell), smk.output.forest_table)
    write_csv(interactions, smk.output.interaction_table)
    forest_plot(rows, arm_labels(next(iter(analyses.values()))["treatment"]), smk.output.forest_plot, min_cell)
    page = render_index(analyses, context, read_json(smk.input.ingest), entries, smk.output.forest_plot, interactions)
    Path(smk.output.index).write_text(page)


run_script(main, snakemake, propagate=False)  # noqa: F821 (reads not-estimable inputs itself)
