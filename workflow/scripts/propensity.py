"""Rule propensity: cohort -> propensity scores, matching distance, common-support discards."""

from pipeline.design.stages import propensity_stage
from pipeline.io import read_parquet, run_script, write_json, write_parquet


def main(smk):
    cohort = read_parquet(smk.input.cohort)
    scores, summary = propensity_stage(cohort, smk.params.analysis, smk.params.variables, smk.params.seed)
    write_parquet(scores, smk.output.scores)
    write_json(summary, smk.output.summary)


run_script(main, snakemake)  # noqa: F821
