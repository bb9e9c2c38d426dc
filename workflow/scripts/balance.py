"""Rule balance: covariate balance, Table 1 and the design plots (the overlap plot also in its shareable form)."""
from pipeline.config.settings import Variable
from pipeline.design.stages import balance_columns, balance_stage, matching_weights
from pipeline.io import read_parquet, run_script, write_csv, write_json
from pipeline.report.diagnostic_plots import love_plot, overlap_plot


def main(smk):
    covariates = smk.params.covariates
    cohort = read_parquet(smk.input.cohort, columns=balance_columns(covariates), categories=covariates)
    scores = read_parquet(smk.input.scores, columns=["ps"])
    weights = matching_weights(cohort, read_parquet(smk.input.matched, columns=["patient_id", "weight"]))
    variables = {name: Variable.from_dict(spec) for name, spec in smk.params.variables.items()}
    balance, table1, summary = balance_stage(cohort, scores, weights, covariates, smk.params.missing,
                                             variables, smk.params.min_cell, smk.params.estimand)
    write_csv(balance, smk.output.balance)
    write_csv(table1, smk.output.table1)
    write_json(summary, smk.output.summary)
    love_plot(balance, smk.output.love_plot, variables, smk.params.design)
    arms = (scores["ps"].to_numpy(), cohort["treated"].to_numpy(bool), weights)
    overlap_plot(*arms, smk.output.overlap_plot, smk.params.arm_labels, smk.params.design)
    overlap_plot(*arms, smk.output.shareable_overlap_plot, smk.params.arm_labels, smk.params.design,
                 min_cell=smk.params.min_cell)


run_script(main, snakemake)  # noqa: F821
