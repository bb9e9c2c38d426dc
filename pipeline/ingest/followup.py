"""The harmonized outcome: every row's follow-up time in the study's time_unit and its event,
whatever form its center sends.

A center sends the study's outcome form (``outcome``) or its own (``registry.centers.<id>.outcome``):
dates (time_zero, end, event[, event_date]) or a ready time (time, event) in the study's
time_unit or in the center's ``time_unit``. Ingest validates each center's rows against the form
it sends (pipeline.ingest.harmonize) and writes two columns into the harmonized registry for every
accepted row, so the cohort stage reads one follow-up column whatever the center sent:

* ``time``: follow-up in the study's time_unit: (end - time_zero) in days / days per unit for
  dates; a ready time as it is when its unit is the study's, else converted through days
  (days per unit: days 1, weeks 7, months 30.4375, years 365.25).
* ``event``: the event flag (0/1) of the center's event variable.
"""
from __future__ import annotations

import pandas as pd

from pipeline.config.settings import Center, Outcome

DAYS_PER_UNIT = {"days": 1.0, "weeks": 7.0, "months": 30.4375, "years": 365.25}
OUTCOME_COLUMNS = ("time", "event")
"""The harmonized registry's outcome columns (not variables: reserved names)."""


def followup_columns(typed: dict[str, pd.Series], outcome: Outcome, time_unit: str) -> dict[str, pd.Series]:
    """``time`` (float, in ``time_unit``) and ``event`` for every row of one center's typed
    variables; missing where the values they come from are."""
    if outcome.from_dates:
        days = (typed[outcome.end] - typed[outcome.time_zero]).dt.days.astype(float)
        time = days / DAYS_PER_UNIT[time_unit]
    else:
        time = typed[outcome.time].astype("float64")
        given_in = outcome.time_unit or time_unit
        if given_in != time_unit:
            time = time * DAYS_PER_UNIT[given_in] / DAYS_PER_UNIT[time_unit]
    return {"time": time, "event": typed[outcome.event]}


def center_outcome(center: Center, outcome: Outcome) -> Outcome:
    """The outcome form a center sends: its own (registry.centers.<id>.outcome), else the study's."""
    return center.outcome or outcome
