"""Rule propensity: cohort -> propensity scores, matching distance, common-support discards."""
from pipeline.config.settings import PropensityDesign, Variable
from pipeline.design.stages import coded_columns, propensity_columns, propensity_stage
from pipeline.io import read_parquet, run_script, write_json, write_parquet


def main(smk):
    design = PropensityDesign.from_dict(smk.params.design)
    cohort = read_parquet(smk.input.cohort, columns=propensity_columns(design), categories=coded_columns(design))
    variables = {name: Variable.from_dict(spec) for name, spec in smk.params.variables.items()}
    scores, summary = propensity_stage(cohort, design, variables, smk.params.seed)
    write_parquet(scores, smk.output.scores)
    write_json(summary, smk.output.summary)


run_script(main, snakemake)  # noqa: F821
