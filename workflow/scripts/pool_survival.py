"""Rule pool_survival: the imputations' survival comparisons -> the analysis's pooled survival.json and
the Kaplan-Meier figure of the imputations' matched samples together (weights averaged over them)."""
import matplotlib.pyplot as plt

from pipeline.config.settings import Survival
from pipeline.imputation.pooling import arm_curves, average_weights, curves_of, pool_survival
from pipeline.io import read_json, read_parquet, run_script, write_json
from pipeline.report.km_plot import plot_km


def main(smk):
    cohort = read_parquet(smk.input.cohort)  # every column: it may be a not-estimable record
    survival = Survival.from_dict(smk.params.survival)
    results = [read_json(path) for path in smk.input.survival]
    matched = [read_parquet(p, columns=["patient_id", "weight"]) if r.get("estimable", True) else None
               for p, r in zip(smk.input.matched, results)]
    curves = [None if m is None else curves_of(cohort, m, survival.ci) for m in matched]
    pooled = pool_survival(results, curves, survival, smk.params.approach, smk.params.relevant_hr)
    write_json(pooled, smk.output.survival)
    together = arm_curves(cohort, average_weights(cohort, [m for m in matched if m is not None]), survival.ci)
    figure = plot_km(together, endpoint=smk.params.endpoint, labels=smk.params.arm_labels,
                     time_unit=smk.params.time_unit, min_cell=smk.params.min_cell, path=smk.output.km_plot,
                     bands=False, medians=False)
    plt.close(figure)
    shareable = plot_km(together, endpoint=smk.params.endpoint, labels=smk.params.arm_labels,
                        time_unit=smk.params.time_unit, min_cell=smk.params.min_cell,
                        path=smk.output.shareable_km_plot, bands=False, rounding=smk.params.rounding, shareable=True,
                        medians=False)
    plt.close(shareable)


run_script(main, snakemake, propagate=False)  # noqa: F821 (pools the estimable imputations)
