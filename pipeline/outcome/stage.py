"""The survival stage of an analysis: the matched sample's arrays from the cohort and the matching,
the comparison (survival.json) and the bootstrap jobs' shares."""
from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline.design.stages import matched_rows
from pipeline.outcome.power import power_summary
from pipeline.outcome.survival import bootstrap_differences, bootstrap_shard, compare_survival, rmst_horizon


def matched_sample(cohort: pd.DataFrame, matched: pd.DataFrame) -> pd.DataFrame:
    """The matched rows with their outcome, in cohort order."""
    rows = matched_rows(cohort, matched)
    in_sample = np.flatnonzero(rows >= 0)
    outcome = cohort[["treated", "time", "event"]].iloc[in_sample].reset_index(drop=True)
    sets = matched[["patient_id", "subclass", "weight"]].iloc[rows[in_sample]].reset_index(drop=True)
    return pd.concat([sets[["patient_id"]], outcome, sets[["subclass", "weight"]]], axis=1)


def replacement_sets(sample: pd.DataFrame, pairs: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(row in `sample`, matched-set id) memberships: each treated patient's set holds the treated
    row and its controls' rows; a reused control belongs to several sets."""
    position = pd.Index(sample["patient_id"])
    treated_ids = pd.unique(pairs["treated_id"])
    set_of = pd.Index(treated_ids)
    rows = np.concatenate([position.get_indexer(treated_ids), position.get_indexer(pairs["control_id"])])
    sets = np.concatenate([np.arange(len(treated_ids)), set_of.get_indexer(pairs["treated_id"])])
    return rows, sets


def survival_inputs(cohort: pd.DataFrame, matched: pd.DataFrame, pairs: pd.DataFrame, analysis: dict) -> dict:
    """The matched sample's arrays as compare_survival takes them.

    Without replacement the matched set is the cluster (Austin 2014); with replacement a control
    can be in several sets, so MatchIt's vignette clusters on the patient and the bootstrap
    resamples the sets from pairs.csv. ``cluster_kind`` names the cluster.
    """
    sample = matched_sample(cohort, matched)
    replace = analysis["matching"]["replace"]
    subclass = None if replace else sample["subclass"].to_numpy(np.int64)
    return {
        "time": sample["time"].to_numpy(float), "event": sample["event"].to_numpy(int),
        "treated": sample["treated"].to_numpy(bool), "weight": sample["weight"].to_numpy(float),
        "cluster": pd.factorize(sample["patient_id"])[0] if replace else subclass,
        "cluster_kind": "patient" if replace else "matched set",
        "bootstrap_sets": replacement_sets(sample, pairs) if replace else None,
        "pair_strata": subclass,
    }


def bootstrap_stage(cohort: pd.DataFrame, matched: pd.DataFrame, pairs: pd.DataFrame, analysis: dict,
                    seed: int, job: int) -> np.ndarray:
    """One bootstrap job's median and RMST differences (survival.bootstrap_jobs splits the
    replicates), to the RMST horizon survival_stage uses."""
    arrays = survival_inputs(cohort, matched, pairs, analysis)
    survival = analysis["survival"]
    tau, _ = rmst_horizon(arrays["time"], arrays["treated"], survival["rmst_tau"])
    chunks = bootstrap_shard(survival["bootstrap"], survival["bootstrap_jobs"], job)
    return bootstrap_differences(arrays["time"], arrays["event"], arrays["treated"], arrays["weight"],
                                 arrays["cluster"], tau=tau, replicates=survival["bootstrap"], seed=seed,
                                 sets=arrays["bootstrap_sets"], chunks=chunks)


def survival_stage(cohort: pd.DataFrame, matched: pd.DataFrame, pairs: pd.DataFrame, analysis: dict,
                   seed: int, time_unit: str, relevant_hr: float = 1.5, bootstrap_replicates=None):
    """survival.json's content; `bootstrap_replicates` are the gathered bootstrap jobs' results."""
    arrays = survival_inputs(cohort, matched, pairs, analysis)
    survival = analysis["survival"]
    result = compare_survival(
        arrays["time"], arrays["event"], arrays["treated"], arrays["weight"], arrays["cluster"],
        tau=survival["rmst_tau"], landmarks=survival["landmarks"], ci=survival["ci"],
        bootstrap=survival["bootstrap"], seed=seed, time_unit=time_unit, cluster_kind=arrays["cluster_kind"],
        pair_strata=arrays["pair_strata"], bootstrap_sets=arrays["bootstrap_sets"],
        bootstrap_replicates=bootstrap_replicates,
    )
    result["power"] = power_summary(result, relevant_hr)
    return result
