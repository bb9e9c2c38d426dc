"""Rule survival: the survival comparison in the matched sample and the KM figure."""
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from pipeline.outcome.stage import matched_sample, survival_stage
from pipeline.io import read_result_csv, run_script, write_json
from pipeline.report.km_plot import plot_km
from pipeline.report.formatting import arm_labels, endpoint_name


def main(smk):
    cohort = pd.read_parquet(smk.input.cohort, columns=["patient_id", "treated", "time", "event"])
    matched = read_result_csv(smk.input.matched)
    pairs = read_result_csv(smk.input.pairs)
    analysis = smk.params.analysis
    gathered = np.concatenate([np.load(path) for path in smk.input.bootstrap]) if smk.input.bootstrap else None
    result = survival_stage(cohort, matched, pairs, analysis, smk.params.seed, smk.params.time_unit,
                            smk.params.relevant_hr, bootstrap_replicates=gathered)
    write_json(result, smk.output.survival)
    sample = matched_sample(cohort, matched)
    labels = arm_labels(analysis)
    figure = plot_km(
        sample["time"].to_numpy(float), sample["event"].to_numpy(int), sample["treated"].to_numpy(bool),
        sample["weight"].to_numpy(float), labels=(labels["treated"], labels["control"]),
        time_unit=smk.params.time_unit, min_cell=smk.params.min_cell, path=smk.output.km_plot,
        medians={labels[arm]: result[arm]["median"] for arm in ("treated", "control")},
        endpoint=endpoint_name(smk.config),
        bands=analysis["survival"]["ci"] if analysis["survival"]["km_bands"] else None)
    plt.close(figure)


run_script(main, snakemake)  # noqa: F821
