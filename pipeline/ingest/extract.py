"""Read one center's registry extract into a frame of raw strings.

Every cell comes back exactly as the extract holds it (no type guessing, no NA
conversion: "n/a" stays "n/a"), so harmonize.py can explain every rejection in
terms of what the center actually wrote. Typed sources (XLSX cells, Parquet
columns) are rendered as text the same way a CSV export would hold them:
numbers with the center's decimal mark (``read.decimal``), dates as ISO
``YYYY-MM-DD`` (with `` HH:MM:SS`` only when a time is present), booleans as
``true``/``false``, empty cells as "". One reader per format lives in
``pipeline/ingest/readers/`` (each documents its rules).

Every input row ends up in the frame, also a malformed one: a problem in a row
never stops the read. Only file-level problems do (a missing file or a
directory, a file that is not of its format, no header, an encoding that fails
for the whole file, duplicate column names), with a one-line message naming the
file. Besides the source columns the frame has:

* ``source_row``: where the record starts, numbered as a spreadsheet does (the
  header is row 1). For delimited text this is the physical line: a record
  holding a line break inside quotes takes several lines, so a later record's
  number can exceed its position + 1.
* ``source_row_end``: where the record ends (equal unless it spans lines).
* ``read_problems``: None, or a tuple of the problems the reader found, each a
  (reason code, reason, column) triple (column None: the record as a whole);
  harmonize quarantines such a row with exactly these reasons (a problem of one
  cell only if its column is mapped to a variable). The codes:
  ``too_many_fields``, ``too_few_fields``, ``stray_quote``, ``encoding_error``
  (delimited text), ``formula_without_value`` (XLSX), ``control_character``
  (all formats).

``frame.attrs["warnings"]`` holds the reader's warnings about the file (e.g. a
declared encoding that the bytes contradict); they are also logged, and
harmonize copies them into the center's summary.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from pipeline.config.settings import Center
from pipeline.errors import DataError
from pipeline.ingest.readers.delimited import read_delimited
from pipeline.ingest.readers.parquet import read_parquet
from pipeline.ingest.readers.table import RawTable, first_line_of, without_gc
from pipeline.ingest.readers.xlsx import read_xlsx

SOURCE_ROW = "source_row"
SOURCE_ROW_END = "source_row_end"
READ_PROBLEMS = "read_problems"
RESERVED_COLUMNS = (SOURCE_ROW, SOURCE_ROW_END, READ_PROBLEMS)
SUFFIX_FORMATS = {
    ".csv": "csv",
    ".txt": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".xlsx": "xlsx",
    ".xlsm": "xlsx",
    ".parquet": "parquet",
    ".pq": "parquet",
}
SEPARATORS = {"csv": ",", "tsv": "\t"}  # a delimited format's separator unless read.sep is given
log = logging.getLogger(__name__)


def extract_format(path: Path, center: Center) -> str:
    """The reader to use: ``format:`` if given, else the file suffix."""
    if center.format is not None:
        return center.format
    fmt = SUFFIX_FORMATS.get(Path(path).suffix.lower())
    if fmt is None:
        raise DataError(
            f"{path}: cannot tell the file format from the suffix '{Path(path).suffix}'; set format: to one "
            f"of {', '.join(dict.fromkeys(SUFFIX_FORMATS.values()))}"
        )
    return fmt


def read_extract(path: Path, center: Center) -> pd.DataFrame:
    """All cells of an extract as raw strings, plus ``source_row``, ``source_row_end`` and
    ``read_problems`` (see the module docstring).

    Raises DataError naming the file when it is missing or cannot be read as configured.
    """
    table = _read(Path(path), center, header_only=False)
    for warning in table.warnings:
        log.warning(warning)
    return _frame(Path(path), table)


def read_header(path: Path, center: Center) -> list[str]:
    """The column names of an extract, reading as little of it as possible."""
    return _read(Path(path), center, header_only=True).header


def check_path(path: Path) -> None:
    """DataError unless ``path`` is an existing file."""
    if path.is_dir():
        raise DataError(f"{path}: is a directory, not a file; give the path of the extract file itself")
    if not path.is_file():
        raise DataError(f"{path}: file not found")


def _read(path: Path, center: Center, header_only: bool) -> RawTable:
    check_path(path)
    fmt = extract_format(path, center)
    read = center.read
    try:
        if fmt in SEPARATORS:
            sep = SEPARATORS[fmt] if read.sep is None else read.sep
            return read_delimited(path, sep, read.quotechar, read.encoding, header_only=header_only)
        if fmt == "xlsx":
            return read_xlsx(path, read.sheet, read.decimal, header_only=header_only)
        return read_parquet(path, read.decimal, header_only=header_only)
    except DataError:
        raise
    except (OSError, ValueError, LookupError, pa.ArrowException, UnicodeError) as exc:
        raise DataError(f"{path}: cannot be read as {fmt} ({first_line_of(exc)})") from exc


def _frame(path: Path, table: RawTable) -> pd.DataFrame:
    clash = [name for name in table.header if name in RESERVED_COLUMNS]
    if clash:
        raise DataError(f"{path}: a source column may not be called '{clash[0]}' (reserved: "
                        f"{', '.join(RESERVED_COLUMNS)}); rename it")
    body = table.body
    body.columns = table.header
    body[SOURCE_ROW] = np.asarray(table.first_row, dtype=np.int64)
    body[SOURCE_ROW_END] = np.asarray(table.last_row, dtype=np.int64)
    problems = np.full(len(body), None, dtype=object)
    with without_gc():
        for pos, items in table.problems.items():
            problems[pos] = tuple(items)
    body[READ_PROBLEMS] = problems
    body.attrs["warnings"] = list(table.warnings)
    return body
