"""Rule impute: the analysis cohort -> one completed cohort (one imputation of its missing covariates)."""
from pipeline.config.settings import Imputation, Variable
from pipeline.design.stages import analysis_variables
from pipeline.imputation.chained import impute_cohort
from pipeline.io import read_json, read_parquet, run_script, write_json, write_parquet


def main(smk):
    cohort = read_parquet(smk.input.cohort)
    variables = {name: Variable.from_dict(spec) for name, spec in smk.params.variables.items()}
    completed, summary = impute_cohort(cohort, smk.params.covariates, analysis_variables(variables, cohort),
                                       Imputation.from_dict(smk.params.imputation), smk.params.seed,
                                       smk.params.index)
    write_parquet(completed, smk.output.cohort)
    write_json({**read_json(smk.input.attrition), "imputation": summary}, smk.output.attrition)


run_script(main, snakemake)  # noqa: F821
