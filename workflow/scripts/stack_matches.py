"""Rule stack_matches (imputation approach within): the imputations' matched samples -> the analysis's
matched.parquet, pairs.parquet, matched.csv, pairs.csv (stacked, numbered by imputation) and matching.json."""
from pipeline.design.stages import published_matched
from pipeline.imputation.pooling import stack_matches
from pipeline.io import read_json, read_parquet, run_script, write_csv, write_json, write_parquet


def main(smk):
    cohort = read_parquet(smk.input.cohort)
    summaries = [read_json(path) for path in smk.input.summaries]
    estimable = [summary.get("estimable", True) for summary in summaries]
    matched = [read_parquet(p) if ok else None for p, ok in zip(smk.input.matched, estimable)]
    pairs = [read_parquet(p) if ok else None for p, ok in zip(smk.input.pairs, estimable)]
    stacked, stacked_pairs, summary = stack_matches(matched, pairs, summaries)
    write_parquet(stacked, smk.output.matched)
    write_parquet(stacked_pairs, smk.output.pairs)
    write_csv(published_matched(stacked, cohort).assign(imputation=stacked["imputation"]), smk.output.matched_csv)
    write_csv(stacked_pairs, smk.output.pairs_csv)
    write_json(summary, smk.output.summary)


run_script(main, snakemake, propagate=False)  # noqa: F821 (pools the estimable imputations)
