"""Rules index_report and shareable_index (from the disclosed results): results/report.html (every analysis
with its headline), the forest plot and its tables, and the design forest plot and its table when an analysis
varies its design."""
from pathlib import Path

from pipeline.config.settings import ReportContext, Treatment
from pipeline.io import read_json, run_script, write_csv
from pipeline.report.design_forest import design_forest_plot, design_rows
from pipeline.report.design_forest import suppressed as suppressed_designs
from pipeline.report.forest import forest_plot, forest_rows, interaction_tests, suppressed
from pipeline.report.formatting import arm_labels
from pipeline.report.html import design_section, render_index


ENTRY_RESULTS = ("survival", "attrition", "matching", "balance_summary")


def exact_entries(smk, analyses: dict) -> list[dict]:
    return [{"name": name, **{key: read_json(smk.input[key][i]) for key in ENTRY_RESULTS}}
            for i, name in enumerate(analyses)]


def shareable_entries(smk, analyses: dict) -> list[dict]:
    """The analyses' disclosed results (rule shareable_index)."""
    bundles = [read_json(path) for path in smk.input.disclosed]
    return [{"name": name, **{key: bundle[key] for key in ENTRY_RESULTS}} for name, bundle in zip(analyses, bundles)]


def main(smk):
    context = ReportContext.from_dict(smk.params.context)
    analyses = {name: {**a, "treatment": Treatment.from_dict(a["treatment"])}
                for name, a in smk.params.analyses.items()}
    entries = shareable_entries(smk, analyses) if "disclosed" in smk.input.keys() else exact_entries(smk, analyses)
    min_cell = context.report.min_cell
    rows = forest_rows(analyses, entries, context.variables)
    interactions = interaction_tests(rows)
    write_csv(suppressed(rows, min_cell), smk.output.forest_table)
    write_csv(interactions, smk.output.interaction_table)
    labels = arm_labels(next(iter(analyses.values()))["treatment"])
    forest_plot(rows, labels, smk.output.forest_plot, min_cell)
    design = None
    if "design_forest_plot" in smk.output.keys():      # some analysis varies its design
        designs = design_rows(analyses, entries)
        write_csv(suppressed_designs(designs, min_cell), smk.output.design_forest_table)
        design_forest_plot(designs, labels, smk.output.design_forest_plot, min_cell)
        design = design_section(designs, analyses, smk.output.design_forest_plot, min_cell)
    page = render_index(analyses, context, read_json(smk.input.ingest), entries, smk.output.forest_plot, interactions,
                        design)
    Path(smk.output.index).write_text(page)


run_script(main, snakemake, propagate=False)  # noqa: F821 (reads not-estimable inputs itself)
