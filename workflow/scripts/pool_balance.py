"""Rule pool_balance: the imputations' balance -> the analysis's balance (averaged, with SMD ranges),
Table 1 of the observed values and the design plots (weights averaged over the imputations)."""
from pipeline.config.settings import Variable
from pipeline.design.propensity.diagnostics import ps_diagnostics
from pipeline.design.stages import analysis_variables
from pipeline.design.table_one import table_one
from pipeline.imputation.pooling import average_weights, pool_balance
from pipeline.io import read_json, read_parquet, read_result_csv, run_script, write_csv, write_json
from pipeline.report.diagnostic_plots import love_plot, overlap_plot


def main(smk):
    cohort = read_parquet(smk.input.cohort)
    scores = read_parquet(smk.input.scores)
    summaries = [read_json(path) for path in smk.input.summaries]
    estimable = [summary.get("estimable", True) for summary in summaries]
    tables = [read_result_csv(p) if ok else None for p, ok in zip(smk.input.balance, estimable)]
    balance, summary = pool_balance(tables, summaries)
    matched = [read_parquet(p) for p, ok in zip(smk.input.matched, estimable) if ok]
    weights = average_weights(cohort, matched)
    treated = cohort["treated"].to_numpy(bool)
    variables = analysis_variables({n: Variable.from_dict(s) for n, s in smk.params.variables.items()}, cohort)
    table1 = table_one(cohort, list(smk.params.covariates), variables, treated, weights, smk.params.min_cell,
                       estimand=smk.params.estimand)
    summary["diagnostics_after"] = ps_diagnostics(scores["ps"].to_numpy(float), treated, weights)
    write_csv(balance, smk.output.balance)
    write_csv(table1, smk.output.table1)
    write_json(summary, smk.output.summary)
    love_plot(balance, smk.output.love_plot, variables, smk.params.design)
    overlap_plot(scores["ps"].to_numpy(), treated, weights, smk.output.overlap_plot, smk.params.arm_labels,
                 smk.params.design)
    overlap_plot(scores["ps"].to_numpy(), treated, weights, smk.output.shareable_overlap_plot, smk.params.arm_labels,
                 smk.params.design, min_cell=smk.params.min_cell)


run_script(main, snakemake, propagate=False)  # noqa: F821 (pools the estimable imputations)
