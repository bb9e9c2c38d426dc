"""Rule match: propensity distances -> matched sample, pairs, matching summary."""
from pipeline.design.stages import match_stage
from pipeline.io import read_json, read_parquet, run_script, write_csv, write_json


def main(smk):
    exact = smk.params.analysis["matching"]["exact"]
    cohort = read_parquet(smk.input.cohort, columns=["patient_id", *exact])
    scores = read_parquet(smk.input.scores)
    matched, pairs, summary = match_stage(cohort, scores, smk.params.analysis, smk.params.seed,
                                          read_json(smk.input.propensity))
    write_csv(matched, smk.output.matched)
    write_csv(pairs, smk.output.pairs)
    write_json(summary, smk.output.summary)


run_script(main, snakemake)  # noqa: F821
