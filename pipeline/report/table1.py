"""Table 1 as the report shows it: table1.csv (numbers, one row per variable, level, arm and stage)
pivoted to one row per variable and level, with the arms before and after matching as columns and
every cell formatted as "n (%)", "mean (SD)" or "median [IQR]" ("<min_cell" where suppressed)."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from pipeline.config.settings import Variable
from pipeline.io import read_result_csv
from pipeline.report.formatting import ARMS, is_suppressed, variable_label

STAGES = ("before", "after")
TEXT_COLUMNS = ("variable", "level", "statistic", "arm", "stage")
NUMBER_COLUMNS = ("units", "value", "spread", "low", "high", "percent", "smd")
STATISTICS = {"n": "n", "n_percent": "n (%)", "mean_sd": "mean (SD)", "median_iqr": "median [IQR]"}
DIGITS = 1


def read_table1(path) -> pd.DataFrame:
    """table1.csv with its levels as written (a level "NA" stays text) and empty numbers as NaN."""
    return read_result_csv(path, dtype=dict.fromkeys(TEXT_COLUMNS, str), keep_default_na=False,
                           na_values={column: [""] for column in NUMBER_COLUMNS})


def table1_display(table1: pd.DataFrame, labels: dict[str, str], variables: dict[str, Variable],
                   min_cell: int) -> pd.DataFrame:
    """One row per variable, level and statistic (in table1.csv's order) with the variables' labels,
    and per stage the arms' cells (headed by the arms' names) and the SMD."""
    by_row = {}             # {(variable, level, statistic): {(arm, stage): cell}} in table1's order
    for cell in table1.itertuples(index=False):
        by_row.setdefault((cell.variable, cell.level, cell.statistic), {})[cell.arm, cell.stage] = cell
    rows = []
    for (variable, level, statistic), cells in by_row.items():
        row = {"Variable": variable_label(variable, variables), "Level": level, "Statistic": STATISTICS[statistic]}
        for stage in STAGES:
            for arm in ARMS:
                row[f"{labels[arm]}, {stage}"] = cell_text(cells[arm, stage], min_cell)
            row[f"SMD {stage}"] = smd_text(cells["treated", stage].smd)
        rows.append(row)
    return pd.DataFrame(rows)


def cell_text(cell, min_cell: int) -> str:
    """One arm's cell at one stage; ``cell`` a row of table1.csv (or of its shareable form, whose
    ``suppressed`` holds the marker and whose percentage may be suppressed)."""
    if cell.suppressed:
        return cell.suppressed if is_suppressed(cell.suppressed) else f"<{min_cell}"
    if cell.statistic == "n":
        return _count(cell.value)
    if cell.statistic == "n_percent":
        if is_suppressed(cell.percent) or pd.isna(cell.percent):
            return _count(cell.value)
        return f"{_count(cell.value)} ({cell.percent:.1f}%)"
    if math.isnan(cell.value):    # no patient with a value: shown as too few to show
        return f"<{min_cell}"
    if cell.statistic == "mean_sd":
        return f"{cell.value:.{DIGITS}f} ({cell.spread:.{DIGITS}f})"
    return f"{cell.value:.{DIGITS}f} [{cell.low:.{DIGITS}f}, {cell.high:.{DIGITS}f}]"


def _count(value: float) -> str:
    """A count; a weighted count (after matching) that is not whole to one decimal."""
    return f"{value:.0f}" if abs(value - round(value)) < 1e-9 else f"{value:.1f}"


def smd_text(smd: float) -> str:
    """The SMD to 3 decimals, without trailing zeros ("0.05", "-0.123"); empty when undefined."""
    if is_suppressed(smd):
        return smd
    if pd.isna(smd):
        return ""
    return str(float(np.round(smd, 3)) + 0.0)    # + 0.0: no "-0.0"
