"""XLSX sheets as raw string cells, typed cells rendered as a CSV export would hold them.

A record is a sheet row (``first_row`` is the row number Excel shows). Problems, each a
quarantine reason:

* ``formula_without_value``: a formula cell with no computed value stored (the workbook was
  written by a program that does not calculate, e.g. openpyxl, and never opened and saved in a
  spreadsheet program). openpyxl reads such a cell as empty, so without this check a computed
  column would silently become missing. Found by scanning the sheet's XML for formula elements
  (``<f>``) whose cell has no ``<v>`` value, or an empty one; an empty value of a cell typed as a
  string (``t="str"``) is a computed empty text and counts as a value.
* ``control_character``: a text cell holding a control character. XML cannot hold one, so Excel
  writes it as an escape such as ``_x0000_``, which openpyxl leaves as it is: such an escape of a
  control character counts as one.

The sheet is read to its last row and column, whatever its stored dimension says (openpyxl would
otherwise stop at a stale dimension and drop what lies beyond it); columns to the right of the
header's last name are named like pandas names blank header cells ("Unnamed: 7").
"""

from __future__ import annotations

import datetime as dt
import html
import re
import zipfile
from pathlib import Path

import pandas as pd

from pipeline.errors import DataError
from pipeline.ingest.readers.table import (
    CONTROL_CHARACTERS,
    Problem,
    RawTable,
    clean_header,
    control_problems,
    first_line_of,
)

SHEET_DATA = re.compile(rb"<(?:\w+:)?sheetData[\s>].*?</(?:\w+:)?sheetData>", re.DOTALL)
FORMULA = re.compile(rb"<(?:\w+:)?f[\s/>]")
CELL_TAG = re.compile(rb"<(?:\w+:)?c[\s>]")
CELL_REF = re.compile(rb'\sr="([A-Z]+)([0-9]+)"')
TEXT_TYPE = re.compile(rb'\st="str"')
VALUE = re.compile(rb"<(?:\w+:)?v(?:\s[^>]*)?>[^<]+</(?:\w+:)?v>")
ANY_VALUE = re.compile(rb"<(?:\w+:)?v[\s/>]")
FORMULA_TEXT = re.compile(rb">([^<]+)</(?:\w+:)?f>")
CELL_END = re.compile(rb"</(?:\w+:)?c>")
CONTROLS = re.compile(CONTROL_CHARACTERS + r"|_x00(?:0[0-8]|0[bBcCeEfF]|1[0-9a-fA-F]|7[fF])_")


def read_xlsx(path: Path, which_sheet: int | str, decimal: str, header_only: bool = False) -> RawTable:
    """The sheet ``which_sheet`` (an index or a name) of the workbook; numbers with ``decimal``."""
    import openpyxl

    try:
        book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many unrelated types for a broken archive
        raise DataError(f"{path}: cannot be opened as an XLSX workbook ({first_line_of(exc)})") from exc
    try:
        sheet = book[_sheet_name(path, book.sheetnames, which_sheet)]
        sheet.reset_dimensions()
        rows = sheet.iter_rows(values_only=True)
        first = next(rows, None)
        if first is None:
            raise DataError(f"{path}: sheet '{sheet.title}' is empty (no header row)")
        if header_only:
            return RawTable(clean_header(path, [_cell_text(v, ".") for v in first]))
        records = [[_cell_text(v, decimal) for v in row] for row in rows]
        # openpyxl keeps the sheet's path in the archive only in a private attribute
        formulas = _formulas_without_value(path, sheet._worksheet_path)
    finally:
        book.close()
    width = max([len(first), *map(len, records)])
    header = clean_header(path, [_cell_text(v, ".") for v in first] + [""] * (width - len(first)))
    records = [cells + [""] * (width - len(cells)) for cells in records]
    problems = _problems(records, header, formulas)
    keep = len(records)
    while keep and not any(records[keep - 1]) and keep - 1 not in problems:
        keep -= 1  # formatting-only rows Excel keeps after the data
    body = pd.DataFrame(records[:keep], columns=range(width), dtype=object)
    return RawTable(header, body, problems=problems)


def _sheet_name(path: Path, names: list[str], sheet) -> str:
    if isinstance(sheet, int):
        if not 0 <= sheet < len(names):
            raise DataError(f"{path}: sheet index {sheet} does not exist (sheets: {', '.join(names)})")
        return names[sheet]
    if sheet not in names:
        raise DataError(f"{path}: sheet '{sheet}' does not exist (sheets: {', '.join(names)})")
    return sheet


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


def _formulas_without_value(path: Path, sheet_path: str) -> dict[int, list[tuple[str, str]]]:
    """Sheet row -> (column letter, formula) of the formula cells that hold no computed value."""
    with zipfile.ZipFile(path) as archive:
        data = SHEET_DATA.search(archive.read(sheet_path))
    xml = data.group() if data else b""
    found: dict[int, list[tuple[str, str]]] = {}
    for match in FORMULA.finditer(xml):
        tag = xml[xml.rfind(b"<", 0, match.start()):match.start()]  # a formula is its cell's first child
        if not CELL_TAG.match(tag):
            continue
        end = CELL_END.search(xml, match.start())
        content = xml[match.start():end.start() if end else len(xml)]
        if VALUE.search(content) or (TEXT_TYPE.search(tag) and ANY_VALUE.search(content)):
            continue  # a computed value (an empty one counts for a cell typed as text: a computed "")
        ref = CELL_REF.search(tag)
        if ref is None:
            raise DataError(f"{path}: a formula cell without a computed value has no cell reference")
        formula = FORMULA_TEXT.search(content)
        text = "=" + html.unescape(formula.group(1).decode("utf-8", "replace")) if formula else "(a shared formula)"
        found.setdefault(int(ref.group(2)), []).append((ref.group(1).decode(), text))
    return found


def _problems(records: list[list[str]], header: list[str], formulas: dict) -> dict:
    """Record position -> problems of the sheet's rows."""
    problems: dict[int, list[Problem]] = {}
    for row, cells in sorted(formulas.items()):
        if row < 2:
            continue  # a formula in the header row: its name is then empty, the mapping will say so
        while len(records) <= row - 2:  # openpyxl yields no row for formula cells at the very end
            records.append([""] * len(header))
        problems[row - 2] = [
            Problem("formula_without_value",
                    f"column '{_column_header(header, letter)}' (cell {letter}{row}): the formula {text} has no "
                    "computed value (the workbook was saved without calculating; open and save it in a spreadsheet "
                    "program, or export the sheet to CSV)", _column_header(header, letter))
            for letter, text in cells]
    for pos, cells in enumerate(records):
        if CONTROLS.search("\n".join(cells)):
            problems.setdefault(pos, []).extend(control_problems(cells, header, CONTROLS))
    return problems


def _column_header(header: list[str], letter: str) -> str:
    index = 0
    for char in letter:
        index = index * 26 + ord(char) - ord("A") + 1
    return header[index - 1] if index <= len(header) else f"column {letter}"
