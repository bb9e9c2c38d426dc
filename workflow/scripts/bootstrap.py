"""Rule bootstrap: one job's share of the bootstrap replicates (median and RMST differences,
a structured array saved as .npy)."""
import numpy as np

from pipeline.config.settings import Survival
from pipeline.io import read_parquet, run_script
from pipeline.outcome.stage import bootstrap_stage


def main(smk):
    cohort = read_parquet(smk.input.cohort, columns=["patient_id", "treated", "time", "event"])
    matched = read_parquet(smk.input.matched, columns=["patient_id", "subclass", "weight"])
    pairs = read_parquet(smk.input.pairs, columns=["treated_id", "control_id"])
    replicates = bootstrap_stage(cohort, matched, pairs, Survival.from_dict(smk.params.survival),
                                 smk.params.seed, int(smk.wildcards.job))
    np.save(smk.output[0], replicates, allow_pickle=False)


run_script(main, snakemake)  # noqa: F821
