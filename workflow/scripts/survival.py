"""Rule survival: the survival comparison in the matched sample and the KM figure."""
import pandas as pd

from pipeline.analysis import matched_sample, survival_stage
from pipeline.io import run_script, write_json
from pipeline.survival import plot_km


def main(smk):
    cohort = pd.read_parquet(smk.input.cohort)
    matched = pd.read_csv(smk.input.matched, dtype={"patient_id": str})
    analysis = smk.params.analysis
    result = survival_stage(cohort, matched, analysis, smk.params.seed, smk.params.time_unit,
                            smk.params.relevant_hr)
    write_json(result, smk.output.survival)
    sample = matched_sample(cohort, matched)
    treatment = analysis["treatment"]
    plot_km(sample["time"].to_numpy(float), sample["event"].to_numpy(int), sample["treated"].to_numpy(bool),
            sample["weight"].to_numpy(float), labels=(treatment["treated"], treatment["control"]),
            time_unit=smk.params.time_unit, min_cell=smk.params.min_cell, path=smk.output.km_plot,
            medians=(result["treated"]["median"], result["control"]["median"]))


run_script(main, snakemake)  # noqa: F821
