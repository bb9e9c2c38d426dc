"""Rule match: propensity distances -> matched sample, pairs, matching summary."""
import pandas as pd

from pipeline.analysis import match_stage
from pipeline.io import run_script, write_csv, write_json


def main(smk):
    exact = smk.params.analysis["matching"]["exact"]
    cohort = pd.read_parquet(smk.input.cohort, columns=["patient_id", *exact])
    scores = pd.read_parquet(smk.input.scores)
    matched, pairs, summary = match_stage(cohort, scores, smk.params.analysis, smk.params.seed)
    write_csv(matched, smk.output.matched)
    write_csv(pairs, smk.output.pairs)
    write_json(summary, smk.output.summary)


run_script(main, snakemake)  # noqa: F821
