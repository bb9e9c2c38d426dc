"""The survival stage of an analysis: the matched (or weighted) sample from the cohort and the design, the
comparison (survival.json's content and the arms' fitted Kaplan-Meier curves) and the bootstrap
jobs' shares."""
from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from pipeline.config.settings import Survival
from pipeline.io import id_positions
from pipeline.outcome.bootstrap import bootstrap_differences, bootstrap_shard
from pipeline.outcome.power import power_summary
from pipeline.outcome.survival import Comparison, compare_survival, rmst_horizon

log = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class MatchedSample:
    """The matched or weighted patients (in cohort order) as the comparison takes them.

    The cluster is the matched set where the patients belong to one each (matching without
    replacement, full matching: Austin 2014), which is also the pair stratum; otherwise the
    patient: with replacement a control can be in several sets (MatchIt's vignette clusters on the
    patient, the bootstrap resamples the pairs' sets), and a weighting design has no sets (the
    bootstrap resamples patients). ``cluster_kind`` names the cluster.
    """
    time: np.ndarray
    event: np.ndarray
    treated: np.ndarray
    weight: np.ndarray
    cluster: np.ndarray
    cluster_kind: str
    bootstrap_sets: tuple[np.ndarray, np.ndarray] | None   # (row, set id) memberships, with replacement
    pair_strata: np.ndarray | None                          # matched-set ids, where each patient has one

    @classmethod
    def from_frames(cls, cohort: pd.DataFrame, matched: pd.DataFrame, pairs: pd.DataFrame) -> MatchedSample:
        """cohort: patient_id, treated, time, event; matched: patient_id, subclass (null without
        matched sets), weight; pairs: treated_id, control_id (none for a weighting design)."""
        rows = id_positions(cohort["patient_id"], matched["patient_id"])   # -1: not matched
        in_sample = np.flatnonzero(rows >= 0)
        rows = rows[in_sample]
        subclass = matched["subclass"].iloc[rows]
        has_sets = len(rows) > 0 and bool(subclass.notna().all())
        subclass = subclass.to_numpy(np.int64) if has_sets else None
        patient_id = None if has_sets else matched["patient_id"].to_numpy()[rows]
        return cls(time=cohort["time"].to_numpy(float)[in_sample], event=cohort["event"].to_numpy(int)[in_sample],
                   treated=cohort["treated"].to_numpy(bool)[in_sample],
                   weight=matched["weight"].to_numpy(float)[rows],
                   cluster=subclass if has_sets else pd.factorize(patient_id)[0],
                   cluster_kind="matched set" if has_sets else "patient",
                   bootstrap_sets=_replacement_sets(patient_id, pairs) if not has_sets and len(pairs) else None,
                   pair_strata=subclass)


def _replacement_sets(patient_id: np.ndarray, pairs: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(row, matched-set id) memberships: each treated patient's set holds the treated row and
    its controls' rows; a reused control belongs to several sets."""
    position = pd.Index(patient_id)
    treated_ids = pd.unique(pairs["treated_id"])
    set_of = pd.Index(treated_ids)
    rows = np.concatenate([position.get_indexer(treated_ids), position.get_indexer(pairs["control_id"])])
    sets = np.concatenate([np.arange(len(treated_ids)), set_of.get_indexer(pairs["treated_id"])])
    return rows, sets


def bootstrap_stage(cohort: pd.DataFrame, matched: pd.DataFrame, pairs: pd.DataFrame, survival: Survival,
                    seed: int, job: int) -> np.ndarray:
    """One bootstrap job's median and RMST differences (survival.bootstrap_jobs splits the
    replicates), to the RMST horizon survival_stage uses."""
    sample = MatchedSample.from_frames(cohort, matched, pairs)
    tau, _ = rmst_horizon(sample.time, sample.treated, survival.rmst_tau)
    chunks = bootstrap_shard(survival.bootstrap, survival.bootstrap_jobs, job)
    replicates = bootstrap_differences(sample.time, sample.event, sample.treated, sample.weight, sample.cluster,
                                       tau=tau, replicates=survival.bootstrap, seed=seed,
                                       sets=sample.bootstrap_sets, chunks=chunks)
    log.info("bootstrap job %d of %d: %d of %d resamples, RMST horizon %s", job + 1, survival.bootstrap_jobs,
             len(replicates), survival.bootstrap, tau)
    return replicates


def survival_stage(cohort: pd.DataFrame, matched: pd.DataFrame, pairs: pd.DataFrame, survival: Survival,
                   seed: int, time_unit: str, relevant_hr: float, bootstrap_replicates=None) -> Comparison:
    """survival.json's content (with the power) and the arms' fitted curves;
    `bootstrap_replicates` are the gathered bootstrap jobs' results (None: drawn here)."""
    sample = MatchedSample.from_frames(cohort, matched, pairs)
    log.info("matched or weighted sample: %d of the cohort's %d patients, clustered on the %s",
             len(sample.time), len(cohort), sample.cluster_kind)
    result, curves = compare_survival(
        sample.time, sample.event, sample.treated, sample.weight, sample.cluster,
        tau=survival.rmst_tau, landmarks=survival.landmarks, ci=survival.ci, bootstrap=survival.bootstrap,
        seed=seed, time_unit=time_unit, cluster_kind=sample.cluster_kind, pair_strata=sample.pair_strata,
        bootstrap_sets=sample.bootstrap_sets, bootstrap_replicates=bootstrap_replicates)
    result["power"] = power_summary(result, relevant_hr)
    _log_result(result, gathered=bootstrap_replicates is not None)
    return Comparison(result, curves)


def _log_result(result: dict, gathered: bool) -> None:
    for arm in ("treated", "control"):
        summary = result[arm]
        log.info("%s: %d patients, %d events (weighted %.6g), median %s", arm, summary["n"], summary["events"],
                 summary["events_weighted"], summary["median"])
    test = result["test"]
    log.info("headline test %s: chisq %s, p %s", test["method"], test["chisq"], test["p"])
    log.info("hazard ratio %s (%s to %s); RMST horizon %s (%s)", result["hr"], result["hr_lower"],
             result["hr_upper"], result["tau"], result["tau_rule"])
    log.info("bootstrap: %d resamples (%s)", result["median_difference"]["n_bootstrap"],
             "gathered from the bootstrap jobs" if gathered else "drawn here")
    for warning in result["warnings"]:
        log.warning(warning)
