"""Rule cohort: harmonized registry -> the analysis cohort and its attrition."""
from pipeline.design.cohort import build_cohort
from pipeline.ingest.harmonize import id_variable
from pipeline.io import read_parquet, run_script, write_json, write_parquet


def main(smk):
    harmonized = read_parquet(smk.input[0])
    cohort, attrition = build_cohort(harmonized, smk.params.analysis, smk.params.outcome,
                                     smk.params.time_unit, id_column=id_variable(smk.params.variables))
    write_parquet(cohort, smk.output.cohort)
    write_json(attrition, smk.output.attrition)


run_script(main, snakemake)  # noqa: F821
