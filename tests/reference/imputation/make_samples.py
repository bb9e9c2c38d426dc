"""Writes samples.csv: the matched samples of the five imputations of a simulated cohort, as the
workflow makes them (tests/imputation_data.py), for make_pool.R to fit and pool in R.

Run from the repository root:  PYTHONPATH=.:tests .venv/bin/python tests/reference/imputation/make_samples.py
"""
from pathlib import Path

import pandas as pd

from imputation_data import imputation_results, simulated_cohort

SEED = 18


def main():
    cohort = simulated_cohort(400, SEED)
    frames = []
    for index, (_, matched) in enumerate(imputation_results(cohort, seed=SEED), start=1):
        sample = cohort[["patient_id", "time", "event"]].merge(matched[["patient_id", "treated", "weight", "subclass"]])
        frames.append(sample.assign(imputation=index, treated=sample["treated"].astype(int)))
    out = pd.concat(frames, ignore_index=True)
    out[["imputation", "patient_id", "time", "event", "treated", "weight", "subclass"]].to_csv(
        Path(__file__).with_name("samples.csv"), index=False, float_format="%.17g")


if __name__ == "__main__":
    main()
