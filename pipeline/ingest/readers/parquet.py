"""Parquet columns as raw string cells, each value rendered faithfully as text (in Arrow, vectorized).

* integers (also uint64 beyond the int64 range) and decimals: their exact digits; floats: the
  shortest text that reads back to the same float (``inf``, ``nan`` as such, so harmonize can
  refuse or treat them as missing), with the center's decimal mark (``read.decimal``);
* dates (date32, date64) and timestamps of any unit: ISO ``YYYY-MM-DD`` when every value of the
  column is at midnight, else ``YYYY-MM-DD HH:MM:SS`` with the fraction of a second when one is
  present. A timestamp with a time zone is shown in the wall-clock time of that zone (a registry
  date is a calendar date where it was recorded: converting to UTC would move a local midnight
  to the previous day);
* booleans ``true``/``false``; dictionary columns their values; nulls "".

A string cell holding a control character is a ``control_character`` problem. A column whose type
has no faithful text form (lists, structs, durations, whose unit a number would drop; binary that
is not UTF-8) stops the read, naming the column.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipeline.errors import DataError
from pipeline.ingest.readers.table import (
    CONTROL_CHARACTERS,
    RawTable,
    clean_header,
    control_pattern,
    control_problems,
    first_line_of,
)

CONTROLS = control_pattern()


def read_parquet(path: Path, decimal: str, header_only: bool = False) -> RawTable:
    if header_only:
        return RawTable(clean_header(path, pq.read_schema(path).names))
    table = pq.read_table(path)
    header = clean_header(path, table.column_names)
    columns = {}
    for i, (name, column) in enumerate(zip(header, table.columns)):
        kind = column.type
        try:
            if pa.types.is_nested(kind) or pa.types.is_duration(kind) or pa.types.is_interval(kind):
                raise pa.ArrowNotImplementedError("no text form a registry cell could hold")
            columns[i] = _arrow_text(column, decimal)
        except (pa.ArrowNotImplementedError, pa.ArrowInvalid) as exc:
            raise DataError(f"{path}: column '{name}' has type {kind}, which cannot be read as text "
                            f"({first_line_of(exc)}); store it as text or numbers") from exc
    body = pd.DataFrame(columns, index=pd.RangeIndex(table.num_rows))
    return RawTable(header, body, problems=_control_problems(table, body, header))


def _arrow_text(column: pa.ChunkedArray, decimal: str) -> np.ndarray:
    """A Parquet column as strings ("" for null)."""
    kind = column.type
    if pa.types.is_dictionary(kind):
        column = column.cast(kind.value_type)
        kind = column.type
    if pa.types.is_timestamp(kind):
        text = _timestamp_text(pc.local_timestamp(column) if kind.tz is not None else column)
    elif pa.types.is_date(kind):
        text = pc.cast(column.cast(pa.date32()), pa.string())
    elif pa.types.is_floating(kind) or pa.types.is_decimal(kind):
        text = pc.cast(column, pa.string())
        if decimal != ".":
            text = pc.replace_substring(text, ".", decimal)
    else:
        text = pc.cast(column, pa.string())
    return _to_objects(pc.fill_null(text, ""))


def _timestamp_text(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """Dates when every value is at midnight; else date and time, with the fraction only when there is one."""
    if _all_whole(column, pa.date32()):
        return pc.cast(column.cast(pa.date32()), pa.string())
    if _all_whole(column, pa.timestamp("s")):
        return pc.strftime(column.cast(pa.timestamp("s")), format="%Y-%m-%d %H:%M:%S")
    return pc.strftime(column, format="%Y-%m-%d %H:%M:%S")


def _all_whole(column: pa.ChunkedArray, coarser: pa.DataType) -> bool:
    """Every value is a whole number of the coarser unit (a date, a second)."""
    rounded = column.cast(coarser, safe=False).cast(column.type)
    return bool(pc.all(pc.equal(column, rounded), skip_nulls=True).as_py() in (True, None))


def _to_objects(text: pa.ChunkedArray) -> np.ndarray:
    """Arrow strings -> numpy object array, building each distinct Python string once."""
    encoded = pc.dictionary_encode(text).combine_chunks()
    words = encoded.dictionary.to_numpy(zero_copy_only=False)
    return words[encoded.indices.to_numpy(zero_copy_only=False)]


def _control_problems(table: pa.Table, body: pd.DataFrame, header: list[str]) -> dict:
    """Rows whose string cells hold a control character."""
    rows = np.zeros(table.num_rows, bool)
    for column in table.columns:
        if pa.types.is_dictionary(column.type):
            column = column.cast(column.type.value_type)
        if (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)) and _may_hold_controls(column):
            hit = pc.match_substring_regex(column, CONTROL_CHARACTERS)
            rows |= pc.fill_null(hit, False).to_numpy(zero_copy_only=False)
    return {int(pos): control_problems(body.iloc[pos].tolist(), header, CONTROLS) for pos in np.flatnonzero(rows)}


def _may_hold_controls(column: pa.ChunkedArray) -> bool:
    """A quick look at the raw character bytes (the regex per value is slow for a million ids)."""
    for chunk in column.chunks:
        data = chunk.buffers()[2]
        if data is None:
            continue
        low = np.frombuffer(data, np.uint8)
        low = low[(low < 32) | (low == 127)]
        if ((low != 9) & (low != 10) & (low != 13)).any():
            return True
    return False
