"""Analysis cohort: the inclusion steps with their attrition, the outcome in time_unit, and the
treatment groups. Every excluded patient is counted at the step that excluded them."""
from __future__ import annotations

import numpy as np
import pandas as pd

DAYS_PER_UNIT = {"days": 1.0, "weeks": 7.0, "months": 30.4375, "years": 365.25}


def build_cohort(harmonized: pd.DataFrame, analysis: dict, outcome: dict, time_unit: str,
                 id_column: str = "patient_id") -> tuple[pd.DataFrame, dict]:
    """Apply an analysis's inclusion steps to the harmonized registry.

    Returns the analytic frame (patient_id, center, group, treated, covariates, time, event, and
    any column the propensity model or exact matching needs) and the attrition record written to
    cohort.json.
    """
    data = add_derived_columns(harmonized, outcome, time_unit).rename(columns={id_column: "patient_id"})
    steps = []
    data = _step(steps, data, _treatment_mask(data, analysis["treatment"]),
                 f"treatment is {analysis['treatment']['treated']} or {analysis['treatment']['control']}",
                 "other treatment or missing")
    for query in analysis["cohort"]:
        keep = data.index.isin(data.query(query).index)
        data = _step(steps, data, keep, query, "does not meet the inclusion criterion")
    data, missing_step = _handle_missing(data, analysis)
    if missing_step:
        steps.append(missing_step)
    treatment = analysis["treatment"]
    data = data.assign(treated=(data[treatment["column"]] == treatment["treated"]).to_numpy())
    data["group"] = np.where(data["treated"], "treated", "control")
    columns = analysis_frame_columns(analysis, data.columns)
    cohort = data[columns].reset_index(drop=True)
    attrition = {
        "n_registry": int(len(harmonized)),
        "steps": steps,
        "n_final": int(len(cohort)),
        "n_treated": int(cohort["treated"].sum()),
        "n_control": int((~cohort["treated"]).sum()),
        "treated_level": treatment["treated"],
        "control_level": treatment["control"],
    }
    return cohort, attrition


def add_derived_columns(harmonized: pd.DataFrame, outcome: dict, time_unit: str) -> pd.DataFrame:
    """`time` (in time_unit), `event` (0/1) and, for date outcomes, `index_year`."""
    data = harmonized.copy()
    if "time_zero" in outcome:
        start, end = data[outcome["time_zero"]], data[outcome["end"]]
        data["time"] = (end - start).dt.days.astype(float) / DAYS_PER_UNIT[time_unit]
        data["index_year"] = start.dt.year.astype("Int64")
    else:
        data["time"] = data[outcome["time"]].astype(float)
    data["event"] = data[outcome["event"]].astype(int)
    return data


def _treatment_mask(data: pd.DataFrame, treatment: dict) -> np.ndarray:
    arm = data[treatment["column"]]
    return arm.isin([treatment["treated"], treatment["control"]]).fillna(False).to_numpy(bool)


def _step(steps: list, data: pd.DataFrame, keep: np.ndarray, criterion: str, reason: str) -> pd.DataFrame:
    kept = data[keep]
    steps.append({"criterion": criterion, "before": int(len(data)), "after": int(len(kept)),
                  "excluded": int(len(data) - len(kept)), "reason": reason})
    return kept


def _handle_missing(data: pd.DataFrame, analysis: dict) -> tuple[pd.DataFrame, dict | None]:
    """complete_case drops rows missing any covariate (counted per variable); indicator keeps
    them for the propensity stage's indicators. Exact-matching variables and a precomputed score
    are needed in every row either way."""
    needed = [*analysis["matching"]["exact"]]
    if analysis["propensity"]["model"] == "precomputed":
        needed.append(analysis["propensity"]["column"])
    if analysis["missing"] == "complete_case":
        needed += analysis["covariates"]
    needed = list(dict.fromkeys(needed))
    if not needed:
        return data, None
    missing = data[needed].isna()
    by_variable = {c: int(n) for c, n in missing.sum().items() if n}
    keep = ~missing.any(axis=1).to_numpy()
    kept = data[keep]
    step = {"criterion": "complete data for " + ("covariates" if analysis["missing"] == "complete_case"
                                                 else "matching variables"),
            "before": int(len(data)), "after": int(len(kept)), "excluded": int(len(data) - len(kept)),
            "reason": "missing value (complete-case analysis)", "missing_by_variable": by_variable}
    return kept, step


def analysis_frame_columns(analysis: dict, available) -> list[str]:
    extra = list(analysis["matching"]["exact"])
    if analysis["propensity"]["model"] == "precomputed":
        extra.append(analysis["propensity"]["column"])
    wanted = ["patient_id", "center", "group", "treated", *analysis["covariates"], *extra, "time", "event"]
    return list(dict.fromkeys(c for c in wanted if c in available))
