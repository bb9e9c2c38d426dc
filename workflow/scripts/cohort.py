"""Rule cohort: harmonized registry -> the analysis cohort and its attrition."""
from pipeline.config.settings import Outcome, Selection
from pipeline.design.cohort import build_cohort, carried_columns, registry_columns
from pipeline.io import parquet_columns, read_parquet, run_script, write_json, write_parquet


def main(smk):
    selection, outcome = Selection.from_dict(smk.params.selection), Outcome.from_dict(smk.params.outcome)
    columns = registry_columns(parquet_columns(smk.input[0]), selection, outcome, smk.params.id_variable)
    harmonized = read_parquet(smk.input[0], columns=columns,
                              categories=carried_columns(columns, selection, smk.params.id_variable))
    cohort, attrition = build_cohort(harmonized, selection, outcome, smk.params.time_unit,
                                     id_column=smk.params.id_variable)
    write_parquet(cohort, smk.output.cohort)
    write_json(attrition, smk.output.attrition)


run_script(main, snakemake)  # noqa: F821
