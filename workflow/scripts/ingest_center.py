"""Rule ingest_center: one extract -> accepted rows, quarantined rows, counts."""
from pathlib import Path

from pipeline.harmonize import harmonize_center
from pipeline.ingest import read_extract
from pipeline.io import run_script, write_json, write_parquet


def main(smk):
    path = Path(smk.input[0])
    raw = read_extract(path, smk.params.center)
    accepted, quarantine, summary = harmonize_center(
        raw, smk.wildcards.center, smk.params.center, smk.params.variables, smk.params.outcome, str(path))
    write_parquet(accepted, smk.output.accepted)
    write_parquet(quarantine.astype("string"), smk.output.quarantine)
    write_json(summary, smk.output.summary)


run_script(main, snakemake)  # noqa: F821 (injected by Snakemake)
