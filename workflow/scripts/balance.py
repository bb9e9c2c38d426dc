"""Rule balance: covariate balance, Table 1 and the design plots."""
from pipeline.design.stages import balance_stage, matching_weights
from pipeline.report.diagnostic_plots import love_plot, overlap_plot
from pipeline.io import read_parquet, read_result_csv, run_script, write_csv, write_json
from pipeline.report.formatting import arm_labels, column_label


def main(smk):
    cohort = read_parquet(smk.input.cohort)
    scores = read_parquet(smk.input.scores)
    matched = read_result_csv(smk.input.matched)
    balance, table1, summary = balance_stage(cohort, scores, matched, smk.params.analysis,
                                             smk.params.variables, smk.params.min_cell)
    write_csv(balance, smk.output.balance)
    write_csv(table1, smk.output.table1)
    write_json(summary, smk.output.summary)
    variables = smk.params.variables
    love_plot(balance, smk.output.love_plot, labels={v: column_label(v, variables) for v in balance["variable"]})
    labels = arm_labels(smk.params.analysis)
    overlap_plot(scores["ps"].to_numpy(), cohort["treated"].to_numpy(bool),
                 matching_weights(cohort, matched), smk.output.overlap_plot,
                 labels=(labels["treated"], labels["control"]))


run_script(main, snakemake)  # noqa: F821
