"""Rule weight: propensity scores -> weighted sample (Parquet for the later stages, CSV as published),
empty pairs, the design's summary (matching.json)."""
from pipeline.config.settings import Weighting
from pipeline.design.stages import published_matched, weighting_stage
from pipeline.io import read_parquet, run_script, write_csv, write_json, write_parquet


def main(smk):
    cohort = read_parquet(smk.input.cohort, columns=["patient_id", "center", "treated"], categories=["center"])
    scores = read_parquet(smk.input.scores, columns=["patient_id", "ps", "distance", "discarded"])
    matched, pairs, summary = weighting_stage(cohort, scores, Weighting.from_dict(smk.params.weighting))
    write_parquet(matched, smk.output.matched)
    write_parquet(pairs, smk.output.pairs)
    write_csv(published_matched(matched, cohort), smk.output.matched_csv)
    write_csv(pairs, smk.output.pairs_csv)
    write_json(summary, smk.output.summary)


run_script(main, snakemake)  # noqa: F821
