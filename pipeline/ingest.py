"""Read one center's registry extract into a frame of raw strings.

Every cell comes back exactly as the extract holds it (no type guessing, no NA
conversion: "n/a" stays "n/a"), so harmonize.py can explain every rejection in
terms of what the center actually wrote. Typed sources (XLSX cells, Parquet
columns) are rendered as text the same way a CSV export would hold them:
numbers with the center's decimal mark (``read.decimal``), dates as ISO
``YYYY-MM-DD`` (with `` HH:MM:SS`` only when a time is present), booleans as
``true``/``false``, empty cells as "".

A column ``source_row`` numbers the records as a spreadsheet does: the header
is row 1, the first data row is row 2.
"""

from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipeline.errors import DataError

SOURCE_ROW = "source_row"
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
FORMATS = ("csv", "tsv", "xlsx", "parquet")


def extract_format(path: Path, center_cfg: dict) -> str:
    """The reader to use: ``format:`` if given, else the file suffix."""
    fmt = center_cfg.get("format")
    if fmt is None:
        fmt = SUFFIX_FORMATS.get(Path(path).suffix.lower())
        if fmt is None:
            raise DataError(
                f"{path}: cannot tell the file format from the suffix "
                f"'{Path(path).suffix}'; set format: to one of {', '.join(FORMATS)}"
            )
    if fmt not in FORMATS:
        raise DataError(f"{path}: unknown format '{fmt}'; expected one of {', '.join(FORMATS)}")
    return fmt


def read_options(center_cfg: dict) -> dict:
    """The center's ``read:`` block with defaults filled in."""
    read = dict(center_cfg.get("read") or {})
    read.setdefault("decimal", ".")
    read.setdefault("quotechar", '"')
    read.setdefault("encoding", "utf-8")
    read.setdefault("sheet", 0)
    return read


def read_extract(path: Path, center_cfg: dict) -> pd.DataFrame:
    """All cells of an extract as raw strings, plus an int column ``source_row``.

    Raises DataError naming the file when it is missing or cannot be read as configured.
    """
    header, body = _read(Path(path), center_cfg, header_only=False)
    return _frame(Path(path), header, body)


def read_header(path: Path, center_cfg: dict) -> list[str]:
    """The column names of an extract, reading as little of it as possible."""
    header, _ = _read(Path(path), center_cfg, header_only=True)
    return _clean_header(Path(path), header)


def _read(path: Path, center_cfg: dict, header_only: bool):
    """(header, body) of an extract; with header_only the body is empty or None."""
    fmt = extract_format(path, center_cfg)
    read = read_options(center_cfg)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        if fmt in ("csv", "tsv"):
            return _read_delimited(path, read, default_sep="," if fmt == "csv" else "\t",
                                   nrows=0 if header_only else None)
        if fmt == "xlsx":
            return _read_xlsx(path, read, header_only=header_only)
        if header_only:
            return pq.read_schema(path).names, None
        return _read_parquet(path, read)
    except DataError:
        raise
    except (OSError, ValueError, KeyError, IndexError, pa.ArrowException, UnicodeError) as exc:
        raise DataError(f"{path}: cannot be read as {fmt} ({_short(exc)})") from exc


def _short(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _python_encoding(encoding: str) -> str:
    """utf-8 reads a leading byte-order mark as part of the first column name; utf-8-sig drops it."""
    return "utf-8-sig" if encoding.lower().replace("_", "-") in ("utf-8", "utf8") else encoding


def _read_delimited(path: Path, read: dict, default_sep: str, nrows: int | None = None):
    sep = read.get("sep", default_sep)
    try:
        raw = pd.read_csv(
            path,
            sep=sep,
            header=None,
            dtype=str,
            keep_default_na=False,
            na_filter=False,
            skip_blank_lines=False,
            quotechar=read["quotechar"],
            encoding=_python_encoding(read["encoding"]),
            nrows=None if nrows is None else nrows + 1,
            engine="c",
            quoting=csv.QUOTE_MINIMAL,
        )
    except pd.errors.EmptyDataError as exc:
        raise DataError(f"{path}: the file is empty (no header row)") from exc
    except pd.errors.ParserError as exc:
        kind = "TSV" if sep == "\t" else "CSV"
        raise DataError(f"{path}: malformed {kind} with sep {sep!r}: {_short(exc)}") from exc
    except UnicodeDecodeError as exc:
        raise DataError(
            f"{path}: not valid {read['encoding']} text (byte {exc.start}); "
            "set read.encoding (e.g. latin-1 or cp1252)"
        ) from exc
    header = raw.iloc[0].tolist()
    body = raw.iloc[1:].reset_index(drop=True)
    return header, body


def _read_xlsx(path: Path, read: dict, header_only: bool = False):
    import openpyxl

    try:
        book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many unrelated types for a broken archive
        raise DataError(f"{path}: cannot be opened as an XLSX workbook ({_short(exc)})") from exc
    try:
        sheet = read["sheet"]
        names = book.sheetnames
        if isinstance(sheet, int):
            if not 0 <= sheet < len(names):
                raise DataError(f"{path}: sheet index {sheet} does not exist (sheets: {', '.join(names)})")
            sheet = names[sheet]
        elif sheet not in names:
            raise DataError(f"{path}: sheet '{sheet}' does not exist (sheets: {', '.join(names)})")
        rows = book[sheet].iter_rows(values_only=True)
        first = next(rows, None)
        if first is None:
            raise DataError(f"{path}: sheet '{sheet}' is empty (no header row)")
        header = [_cell_text(v, ".") for v in first]
        if header_only:
            return header, None
        decimal = read["decimal"]
        width = len(header)
        records = [_row_text(r, width, decimal) for r in rows]
    finally:
        book.close()
    while records and not any(records[-1]):  # formatting-only rows Excel keeps after the data
        records.pop()
    body = pd.DataFrame(records, columns=range(width), dtype=object)
    return header, body


def _row_text(row: tuple, width: int, decimal: str) -> list[str]:
    cells = [_cell_text(v, decimal) for v in row[:width]]
    return cells + [""] * (width - len(cells))


def _cell_text(value, decimal: str) -> str:
    """One XLSX cell as the text a CSV export would hold."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d") if value.time() == dt.time(0) else value.isoformat(sep=" ")
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, float):
        text = str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)
        return text.replace(".", decimal)
    return str(value)


def _read_parquet(path: Path, read: dict):
    table = pq.read_table(path)
    decimal = read["decimal"]
    body = pd.DataFrame({i: _arrow_text(col, decimal) for i, col in enumerate(table.columns)})
    body.index = pd.RangeIndex(table.num_rows)
    return table.column_names, body


def _arrow_text(column: pa.ChunkedArray, decimal: str) -> np.ndarray:
    """A Parquet column as strings, vectorized in Arrow."""
    kind = column.type
    if pa.types.is_dictionary(kind):
        column = column.cast(kind.value_type)
        kind = column.type
    if pa.types.is_timestamp(kind):
        if kind.tz is not None:
            column = column.cast(pa.timestamp(kind.unit))
        if _all_midnight(column):
            column = column.cast(pa.date32())
            text = pc.cast(column, pa.string())
        else:
            seconds = column.cast(pa.timestamp("s"), safe=False)  # registry times: to the second
            text = pc.strftime(seconds, format="%Y-%m-%d %H:%M:%S")
    elif pa.types.is_floating(kind) or pa.types.is_decimal(kind):
        text = pc.cast(column, pa.string())
        if decimal != ".":
            text = pc.replace_substring(text, ".", decimal)
    else:
        text = pc.cast(column, pa.string())
    return _to_objects(pc.fill_null(text, ""))


def _to_objects(text: pa.ChunkedArray) -> np.ndarray:
    """Arrow strings -> numpy object array, building each distinct Python string once."""
    encoded = pc.dictionary_encode(text).combine_chunks()
    words = encoded.dictionary.to_numpy(zero_copy_only=False)
    return words[encoded.indices.to_numpy(zero_copy_only=False)]


def _all_midnight(column: pa.ChunkedArray) -> bool:
    as_date = column.cast(pa.date32()).cast(column.type)
    same = pc.equal(column, as_date)
    return bool(pc.all(same, skip_nulls=True).as_py() in (True, None))


def _clean_header(path: Path, header: list) -> list[str]:
    """Strip names, name blank header cells like pandas does, refuse duplicate names."""
    names = []
    for i, name in enumerate(header):
        name = ("" if name is None else str(name)).replace("\ufeff", "").strip()
        names.append(name if name else f"Unnamed: {i}")
    seen: dict[str, int] = {}
    for i, name in enumerate(names):
        if name in seen:
            raise DataError(
                f"{path}: column '{name}' appears twice in the header "
                f"(columns {seen[name] + 1} and {i + 1}); rename one"
            )
        seen[name] = i
    return names


def _frame(path: Path, header: list, body: pd.DataFrame) -> pd.DataFrame:
    names = _clean_header(path, header)
    if SOURCE_ROW in names:
        raise DataError(f"{path}: a source column may not be called '{SOURCE_ROW}'; rename it")
    body.columns = names
    body[SOURCE_ROW] = np.arange(2, len(body) + 2, dtype=np.int64)
    return body
