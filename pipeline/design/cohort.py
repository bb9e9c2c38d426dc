"""Analysis cohort: the inclusion steps with their attrition, the outcome in time_unit, and the
treatment groups. Every excluded patient is counted at the step that excluded them."""
from __future__ import annotations

import logging
import re

import numpy as np
import pandas as pd

from pipeline.config.settings import Outcome, Selection, Treatment
from pipeline.ingest.followup import DAYS_PER_UNIT
from pipeline.io import text_column

log = logging.getLogger(__name__)


def build_cohort(harmonized: pd.DataFrame, selection: Selection, outcome: Outcome, time_unit: str,
                 id_column: str = "patient_id") -> tuple[pd.DataFrame, dict]:
    """Apply an analysis's inclusion steps to the harmonized registry.

    The registry holds every row's follow-up ``time`` in ``time_unit`` and its ``event``, however
    its center sent them (pipeline.ingest.followup); ``time_unit`` here converts min_days_at_risk.
    Returns the analytic frame (patient_id, center, treated, covariates, time, event, and any
    column the propensity model or exact matching needs) and the attrition record written to
    cohort.json.

    The steps narrow a row mask; the registry's rows are copied once, at the end, and only the
    columns the cohort keeps (a million-row registry has millions of string cells).
    """
    data = add_derived_columns(harmonized, outcome, id_column)
    treatment = selection.treatment
    steps = []
    keep = _step(steps, np.ones(len(data), dtype=bool), _treatment_mask(data, treatment),
                 f"{treatment.column} is {treatment.treated} or {treatment.control}", "other treatment or missing")
    for query in selection.cohort:
        keep = _step(steps, keep, _query_mask(data, keep, query), query, "does not meet the inclusion criterion")
    if selection.min_days_at_risk > 0:
        keep = _step(steps, keep, _at_risk_mask(data["time"], time_unit, selection.min_days_at_risk),
                     f"at least {selection.min_days_at_risk:g} days at risk",
                     "follow-up shorter than the minimum time at risk")
    keep, missing_step = _handle_missing(data, keep, selection)
    if missing_step:
        steps.append(missing_step)
    cohort = _cohort_frame(data, np.flatnonzero(keep), selection)
    attrition = {
        "n_registry": int(len(harmonized)),
        "steps": steps,
        "n_final": int(len(cohort)),
        "n_treated": int(cohort["treated"].sum()),
        "n_control": int((~cohort["treated"]).sum()),
        "treated_level": treatment.treated,
        "control_level": treatment.control,
    }
    log.info("cohort: %d of %d registry rows in %d steps", attrition["n_final"], attrition["n_registry"], len(steps))
    return cohort, {**cohort_estimability(attrition, treatment), **attrition}


def registry_columns(columns, selection: Selection, outcome: Outcome, id_column: str = "patient_id") -> list[str]:
    """The registry columns (of ``columns``, in their order) that build_cohort reads for ``selection``:
    the id, center, arm, covariates, needed columns, the columns the inclusion criteria name and the
    outcome (with time_zero, which index_year derives from). Reading only these keeps the other
    variables of a large registry out of memory."""
    criteria = [name for query in selection.cohort for name in _query_columns(query, columns)]
    wanted = {id_column, "center", selection.treatment.column, *selection.covariates, *selection.needed, *criteria,
              "time", "event", *([outcome.time_zero] if outcome.from_dates else [])}
    return [name for name in columns if name in wanted]


def carried_columns(columns, selection: Selection, id_column: str = "patient_id") -> list[str]:
    """Of the registry columns build_cohort reads, those it only carries into the cohort or tests
    for equality (the arm): they may come as categoricals (pipeline.io.read_parquet's
    ``categories``), one small code per row. The id and the columns the inclusion criteria
    compare (possibly by order) stay text."""
    criteria = {name for query in selection.cohort for name in _query_columns(query, columns)}
    return [name for name in columns if name != id_column and name not in criteria]


def cohort_estimability(attrition: dict, treatment: Treatment) -> dict:
    """{"estimable": True}, or False with the reason when the cohort lacks an arm."""
    empty = [arm for arm in ("treated", "control") if attrition[f"n_{arm}"] == 0]
    if not empty:
        return {"estimable": True}
    if len(empty) == 2:
        reason = "the cohort is empty: no patient meets every inclusion criterion"
    else:
        arm = empty[0]
        reason = (f"the cohort has no {arm} patients ({treatment.label(arm)}) and "
                  f"{attrition['n_final']} {'control' if arm == 'treated' else 'treated'} patients: "
                  "there is nobody to compare")
    return {"estimable": False, "reason": reason, "stage": "cohort"}


def add_derived_columns(harmonized: pd.DataFrame, outcome: Outcome, id_column: str = "patient_id") -> pd.DataFrame:
    """The registry's columns (id renamed to patient_id, not copied) with `time` as float and
    `event` as 0/1 and, for date outcomes, `index_year` (the year of time_zero; missing for a row
    whose center sent a ready time without it)."""
    columns = {("patient_id" if name == id_column else name): values for name, values in harmonized.items()}
    if outcome.from_dates:
        columns["index_year"] = harmonized[outcome.time_zero].dt.year.astype("Int64")
    columns["time"] = harmonized["time"].astype(float)
    columns["event"] = harmonized["event"].astype(int)
    return pd.DataFrame(columns, index=harmonized.index, copy=False)


def _at_risk_mask(time: pd.Series, time_unit: str, min_days: float) -> np.ndarray:
    """Follow-up of at least ``min_days`` days (OHDSI CohortMethod's minDaysAtRisk); the tolerance
    absorbs the rounding of days converted to ``time_unit`` and back."""
    days = time.to_numpy(dtype=float) * DAYS_PER_UNIT[time_unit]
    return days >= min_days - 1e-9


def _treatment_mask(data: pd.DataFrame, treatment: Treatment) -> np.ndarray:
    arm = data[treatment.column]
    return arm.isin([treatment.treated, treatment.control]).fillna(False).to_numpy(bool)


def _query_mask(data: pd.DataFrame, keep: np.ndarray, query: str) -> np.ndarray:
    """Rows of `data` that pass `query`, evaluated (as DataFrame.query) on the rows kept so far and
    the columns the query names."""
    rows = np.flatnonzero(keep)
    named = _query_columns(query, data.columns)
    subset = (data[named] if named else data).iloc[rows].set_axis(rows)
    passes = np.zeros(len(data), dtype=bool)
    passes[subset.query(query).index.to_numpy(int)] = True
    return passes


def _query_columns(query: str, columns) -> list[str]:
    """Columns a query may refer to: its identifiers and `backticked names` that are columns."""
    words = set(re.findall(r"`([^`]+)`", query)) | set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", query))
    return [c for c in columns if c in words]


def _step(steps: list, keep: np.ndarray, passes: np.ndarray, criterion: str, reason: str) -> np.ndarray:
    kept = keep & passes
    before, after = int(keep.sum()), int(kept.sum())
    steps.append({"criterion": criterion, "before": before, "after": after, "excluded": before - after,
                  "reason": reason})
    return kept


def _handle_missing(data: pd.DataFrame, keep: np.ndarray, selection: Selection) -> tuple[np.ndarray, dict | None]:
    """complete_case drops rows missing any covariate (counted per variable); indicator keeps
    them for the propensity stage's indicators. Exact-matching variables and a precomputed score
    are needed in every row either way."""
    complete_case = selection.missing == "complete_case"
    needed = list(dict.fromkeys([*selection.needed, *(selection.covariates if complete_case else ())]))
    if not needed:
        return keep, None
    missing = np.zeros((len(data), len(needed)), dtype=bool)
    for j, name in enumerate(needed):
        missing[:, j] = data[name].isna().to_numpy(bool) & keep
    by_variable = {c: int(n) for c, n in zip(needed, missing.sum(axis=0)) if n}
    kept = keep & ~missing.any(axis=1)
    before, after = int(keep.sum()), int(kept.sum())
    step = {"criterion": "complete data for " + ("covariates" if complete_case else "matching variables"),
            "before": before, "after": after, "excluded": before - after,
            "reason": "missing value (complete-case analysis)", "missing_by_variable": by_variable}
    return kept, step


def _cohort_frame(data: pd.DataFrame, rows: np.ndarray, selection: Selection) -> pd.DataFrame:
    """The kept rows of the columns the analysis uses, with `treated` (the one arm column); text
    columns read as categoricals (carried_columns) are text again."""
    treatment = selection.treatment
    treated = (data[treatment.column].iloc[rows] == treatment.treated).to_numpy()
    wanted = ["patient_id", "center", "treated", *selection.covariates, *selection.needed, "time", "event"]
    columns = [c for c in dict.fromkeys(wanted) if c in data.columns or c == "treated"]
    return pd.DataFrame({
        name: treated if name == "treated" else text_column(data[name].iloc[rows].reset_index(drop=True))
        for name in columns
    })
