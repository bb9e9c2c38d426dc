"""Rule match: propensity distances -> matched sample and pairs (Parquet for the later stages,
CSV as published), matching summary."""
from pipeline.config.settings import Matching
from pipeline.design.stages import match_stage, published_matched
from pipeline.io import read_json, read_parquet, run_script, write_csv, write_json, write_parquet


def main(smk):
    matching = Matching.from_dict(smk.params.matching)
    cohort = read_parquet(smk.input.cohort, columns=list(dict.fromkeys(["patient_id", "treated", *matching.exact])))
    scores = read_parquet(smk.input.scores)
    matched, pairs, summary = match_stage(cohort, scores, matching, smk.params.seed, read_json(smk.input.propensity))
    write_parquet(matched, smk.output.matched)
    write_parquet(pairs, smk.output.pairs)
    write_csv(published_matched(matched), smk.output.matched_csv)
    write_csv(pairs, smk.output.pairs_csv)
    write_json(summary, smk.output.summary)


run_script(main, snakemake)  # noqa: F821
