"""Rule cohort: harmonized registry -> the analysis cohort and its attrition."""
from pipeline.config.settings import Outcome, Selection
from pipeline.design.cohort import build_cohort
from pipeline.io import read_parquet, run_script, write_json, write_parquet


def main(smk):
    harmonized = read_parquet(smk.input[0])
    cohort, attrition = build_cohort(harmonized, Selection.from_dict(smk.params.selection),
                                     Outcome.from_dict(smk.params.outcome), smk.params.time_unit,
                                     id_column=smk.params.id_variable)
    write_parquet(cohort, smk.output.cohort)
    write_json(attrition, smk.output.attrition)


run_script(main, snakemake)  # noqa: F821
