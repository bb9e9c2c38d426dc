"""Rule bootstrap: one job's share of the median-difference bootstrap replicates."""
import numpy as np
import pandas as pd

from pipeline.analysis import bootstrap_stage
from pipeline.io import read_result_csv, run_script


def main(smk):
    cohort = pd.read_parquet(smk.input.cohort, columns=["patient_id", "treated", "time", "event"])
    differences = bootstrap_stage(cohort, read_result_csv(smk.input.matched), read_result_csv(smk.input.pairs),
                                  smk.params.analysis, smk.params.seed, int(smk.wildcards.job))
    np.save(smk.output[0], differences, allow_pickle=False)


run_script(main, snakemake)  # noqa: F821
