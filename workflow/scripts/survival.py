"""Rule survival: the survival comparison in the matched or weighted sample and the KM figure of its curves
(and the figure's shareable form)."""
import matplotlib.pyplot as plt
import numpy as np

from pipeline.config.settings import Survival
from pipeline.io import read_parquet, run_script, write_json
from pipeline.outcome.stage import survival_stage
from pipeline.report.km_plot import plot_km


def main(smk):
    cohort = read_parquet(smk.input.cohort, columns=["patient_id", "treated", "time", "event"])
    matched = read_parquet(smk.input.matched, columns=["patient_id", "subclass", "weight"])
    pairs = read_parquet(smk.input.pairs, columns=["treated_id", "control_id"])
    survival = Survival.from_dict(smk.params.survival)
    gathered = np.concatenate([np.load(path) for path in smk.input.bootstrap]) if smk.input.bootstrap else None
    result, curves = survival_stage(cohort, matched, pairs, survival, smk.params.seed, smk.params.time_unit,
                                    smk.params.relevant_hr, bootstrap_replicates=gathered)
    write_json(result, smk.output.survival)
    figure = plot_km(curves, endpoint=smk.params.endpoint, labels=smk.params.arm_labels,
                     time_unit=smk.params.time_unit, min_cell=smk.params.min_cell, path=smk.output.km_plot,
                     bands=survival.km_bands)
    plt.close(figure)
    shareable = plot_km(curves, endpoint=smk.params.endpoint, labels=smk.params.arm_labels,
                        time_unit=smk.params.time_unit, min_cell=smk.params.min_cell,
                        path=smk.output.shareable_km_plot, bands=survival.km_bands, rounding=smk.params.rounding,
                        shareable=True)
    plt.close(shareable)


run_script(main, snakemake)  # noqa: F821
