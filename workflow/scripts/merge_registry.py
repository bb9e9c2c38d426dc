"""Rule merge_registry: the centers' parts -> harmonized.parquet, quarantine.csv, ingest_summary.json."""
from pipeline.ingest.harmonize import merge_centers
from pipeline.io import read_json, read_parquet, read_table, run_script, write_csv, write_json, write_table


def main(smk):
    parts = [
        (read_table(accepted), read_parquet(quarantine), read_json(summary))
        for accepted, quarantine, summary in zip(smk.input.accepted, smk.input.quarantine, smk.input.summary)
    ]
    harmonized, quarantine, summary = merge_centers(parts, smk.params.id_variable, smk.params.id_scope)
    write_table(harmonized, smk.output.harmonized)
    write_csv(quarantine, smk.output.quarantine)
    write_json(summary, smk.output.summary)


run_script(main, snakemake)  # noqa: F821
