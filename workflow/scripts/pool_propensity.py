"""Rule pool_propensity: the imputations' propensity scores -> the analysis's (averaged) scores."""
from pipeline.config.settings import PropensityDesign
from pipeline.imputation.pooling import average_propensity
from pipeline.io import read_json, read_parquet, run_script, write_json, write_parquet


def main(smk):
    cohort = read_parquet(smk.input.cohort)
    summaries = [read_json(path) for path in smk.input.summaries]
    scores = [read_parquet(path) if summary.get("estimable", True) else None
              for path, summary in zip(smk.input.scores, summaries)]
    frame, summary = average_propensity(cohort, scores, summaries, PropensityDesign.from_dict(smk.params.design),
                                        smk.params.approach)
    write_parquet(frame, smk.output.scores)
    write_json(summary, smk.output.summary)


run_script(main, snakemake, propagate=False)  # noqa: F821 (pools the estimable imputations)
