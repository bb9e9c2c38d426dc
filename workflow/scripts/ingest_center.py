"""Rule ingest_center: one extract -> accepted rows, quarantined rows, counts."""
import logging
from pathlib import Path

from pipeline.config.settings import Center, Outcome, Variable
from pipeline.ingest.harmonize import harmonize_center
from pipeline.ingest.extract import read_extract
from pipeline.io import run_script, write_json, write_parquet
from pipeline.provenance import sha256_file


def main(smk):
    path = Path(smk.input[0])
    digest = sha256_file(path)   # of the bytes about to be read, for provenance
    if digest != smk.params.sha256:
        logging.warning("%s changed since the workflow was planned; rerun snakemake to use its new version", path)
    center = Center.from_dict(smk.params.center)
    variables = {name: Variable.from_dict(spec) for name, spec in smk.params.variables.items()}
    raw = read_extract(path, center)
    accepted, quarantine, summary = harmonize_center(
        raw, smk.wildcards.center, center, variables, Outcome.from_dict(smk.params.outcome), str(path),
        smk.params.time_unit)
    summary["sha256"] = digest
    write_parquet(accepted, smk.output.accepted)
    write_parquet(quarantine.astype("string"), smk.output.quarantine)
    write_json(summary, smk.output.summary)


run_script(main, snakemake)  # noqa: F821 (injected by Snakemake)
