"""Rule match: propensity distances -> matched sample and pairs (Parquet for the later stages,
CSV as published), matching summary."""
from pipeline.config.settings import Matching, Variable
from pipeline.design.propensity.design_matrix import covariate_matrix
from pipeline.design.stages import analysis_variables, match_stage, published_matched
from pipeline.io import read_json, read_parquet, run_script, write_csv, write_json, write_parquet


def main(smk):
    matching = Matching.from_dict(smk.params.matching)
    mahalanobis = smk.params.mahalanobis      # None unless matching on the Mahalanobis distance
    extra = mahalanobis["covariates"] if mahalanobis else []
    cohort = read_parquet(smk.input.cohort,
                          columns=list(dict.fromkeys(["patient_id", "center", "treated", *matching.exact, *extra])),
                          categories=[] if "center" in [*matching.exact, *extra] else ["center"])
    scores = read_parquet(smk.input.scores, columns=["patient_id", "ps", "distance", "discarded"])
    covariates = None
    if mahalanobis:
        variables = {name: Variable.from_dict(spec) for name, spec in mahalanobis["variables"].items()}
        covariates = covariate_matrix(cohort, extra, mahalanobis["missing"], analysis_variables(variables, cohort))
    matched, pairs, summary = match_stage(cohort, scores, matching, smk.params.seed, read_json(smk.input.propensity),
                                          covariates)
    write_parquet(matched, smk.output.matched)
    write_parquet(pairs, smk.output.pairs)
    write_csv(published_matched(matched, cohort), smk.output.matched_csv)
    write_csv(pairs, smk.output.pairs_csv)
    write_json(summary, smk.output.summary)


run_script(main, snakemake)  # noqa: F821
