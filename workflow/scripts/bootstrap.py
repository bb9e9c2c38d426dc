"""Rule bootstrap: one job's share of the bootstrap replicates (median and RMST differences,
a structured array saved as .npy)."""
import numpy as np
import pandas as pd

from pipeline.outcome.stage import bootstrap_stage
from pipeline.io import read_result_csv, run_script


def main(smk):
    cohort = pd.read_parquet(smk.input.cohort, columns=["patient_id", "treated", "time", "event"])
    replicates = bootstrap_stage(cohort, read_result_csv(smk.input.matched), read_result_csv(smk.input.pairs),
                                 smk.params.analysis, smk.params.seed, int(smk.wildcards.job))
    np.save(smk.output[0], replicates, allow_pickle=False)


run_script(main, snakemake)  # noqa: F821
