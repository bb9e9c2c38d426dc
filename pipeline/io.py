"""Deterministic result writers and the harness the workflow's scripts run in.

Result files must be byte-identical for the same inputs, config and seed, so every writer here
fixes what would otherwise vary: key order, float formatting, line endings, file metadata.
"""
from __future__ import annotations

import csv
import io
import json
import logging
import math
import re
import sys
import textwrap
import time
import traceback
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipeline.csv_text import write_minimal_csv
from pipeline.errors import DataError, NotEstimable, PipelineError


def to_jsonable(value):
    """Plain Python types for json: numpy scalars unwrapped, NaN/inf -> None."""
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        value = float(value)
        return value if math.isfinite(value) else None
    if isinstance(value, np.bool_):
        return bool(value)
    if value is pd.NA or value is pd.NaT:
        return None
    return value


def write_json(obj, path) -> None:
    Path(path).write_text(json.dumps(to_jsonable(obj), indent=2, allow_nan=False) + "\n")


def read_json(path):
    with _readable(path):
        return json.loads(Path(path).read_text())


# --- CSV: one writer and one reader for every CSV the workflow writes ------------------------------

DECIMAL_NUMBER = r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?"
"""A plain decimal number: optional sign, digits with an optional decimal point, optional exponent."""
FORMULA_START = "[=+\\-@\t\r']"
"""First characters of a cell that write_csv escapes: those a spreadsheet may run as a formula
(OWASP's CSV-injection list) and the escape character itself."""
ESCAPE = "'"
TEXT_COLUMNS = {"patient_id": str, "center": str, "treated_id": str, "control_id": str}
"""Columns read_result_csv reads as text unless told otherwise (ids such as 007 stay text)."""
_READ_AS_NUMBER = re.compile(rf"{DECIMAL_NUMBER}|[+-]?inf")


def write_csv(frame: pd.DataFrame, path) -> None:
    """CSV with full float precision (repr round-trips), '\\n' line endings, and no cell a
    spreadsheet would run as a formula.

    Spreadsheet safety (OWASP CSV injection), in the header and every cell: a cell that begins with
    ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is written with a single quote in front
    ("'=HYPERLINK(...)"), unless it is a plain decimal number (-1.5 and +2e-3 stay numbers); so is a
    cell that itself begins with a single quote ("'abc" is written "''abc"). The escape is therefore
    unambiguous: every written cell that begins with a quote carries exactly one added quote, which
    read_result_csv removes. A non-finite float is a cell like any other ("-inf" is written "'-inf").

    Python's csv module quotes a cell holding a line feed but not one holding a bare carriage
    return, which a reader then takes for a line break; a frame with such a cell is written with
    every text cell quoted (csv.QUOTE_NONNUMERIC), which reads back the same.
    """
    safe = _spreadsheet_safe(frame)
    if _has_carriage_return(safe):
        safe.to_csv(path, index=False, lineterminator="\n", quoting=csv.QUOTE_NONNUMERIC)
    else:
        write_minimal_csv(safe, path)


def _spreadsheet_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` as write_csv writes it: formula-like cells and header names escaped (see there)."""
    frame = frame.reset_index(drop=True)
    safe = pd.DataFrame({i: _safe_column(frame.iloc[:, i]) for i in range(frame.shape[1])}, index=frame.index)
    safe.columns = _escaped(pd.Series([str(c) for c in frame.columns], dtype=object)).tolist()
    return safe


def _has_carriage_return(frame: pd.DataFrame) -> bool:
    columns = [frame.columns.to_series(), *(frame.iloc[:, i] for i in range(frame.shape[1]))]
    return any(_holds(cells, "\r") for cells in columns if cells.dtype.kind == "O")


def _holds(cells: pd.Series, character: str) -> bool:
    if isinstance(cells.dtype, pd.StringDtype):     # searched where the text is stored
        return bool(cells.str.contains(character, regex=False).any())
    if isinstance(cells.dtype, pd.CategoricalDtype):     # its cells are its categories
        return character in "".join(map(str, cells.cat.categories))
    return character in "".join(map(str, cells.to_numpy(object)))


def _safe_column(values: pd.Series) -> pd.Series:
    """One column with its formula-like cells escaped; booleans, integers and dates are written as
    numbers and dates, floats as numbers except -inf."""
    kind = values.dtype.kind
    if kind in "biuM":
        return values
    if kind == "f":
        negative_infinity = np.isneginf(values.to_numpy(dtype="float64", na_value=np.nan))
        if not negative_infinity.any():
            return values
        return values.astype(object).mask(negative_infinity, ESCAPE + "-inf")
    if isinstance(values.dtype, pd.StringDtype) and not values.str.match(FORMULA_START).any():
        return values       # no cell starts like a formula (a text column of ids, say): nothing to escape
    if isinstance(values.dtype, pd.CategoricalDtype) and _text_categories(values):
        escaped = _escaped(pd.Series(values.cat.categories, dtype=object))   # one-to-one: names stay distinct
        return values.cat.rename_categories(escaped.tolist())
    present = values.notna().to_numpy()
    codes, uniques = pd.factorize(values[present].astype(str))   # the cells as to_csv writes them
    escaped = _escaped(pd.Series(uniques, dtype=object)).to_numpy(object)
    changed = (escaped != uniques)[codes]
    if not changed.any():
        return values
    out = values.astype(object).copy()
    out.iloc[np.flatnonzero(present)[changed]] = escaped[codes[changed]]
    return out


def _text_categories(values: pd.Series) -> bool:
    return pd.api.types.infer_dtype(values.cat.categories, skipna=True) == "string"


def _escaped(text: pd.Series) -> pd.Series:
    formula = text.str.match(FORMULA_START).to_numpy(bool)
    if formula.any():
        formula[formula] = ~text[formula].str.fullmatch(DECIMAL_NUMBER).to_numpy(bool)
    return text.mask(formula, ESCAPE + text)


def _unescaped(cells: pd.Series) -> tuple[pd.Series, np.ndarray]:
    """Cells with the one leading quote write_csv added removed, and which cells had it."""
    if cells.dtype.kind != "O":
        return cells, np.zeros(len(cells), bool)
    codes, uniques = pd.factorize(cells.to_numpy(object))
    marked = np.array([isinstance(cell, str) and cell.startswith(ESCAPE) for cell in uniques], bool)
    escaped = (codes >= 0) & marked[codes]
    if not escaped.any():
        return cells, escaped
    text = cells.to_numpy(object).copy()
    text[escaped] = [cell[1:] for cell in text[escaped]]
    kind = "category" if isinstance(cells.dtype, pd.CategoricalDtype) else cells.dtype
    return pd.Series(text, index=cells.index, name=cells.name).astype(kind), escaped


def _parsed(path, **kwargs) -> pd.DataFrame:
    """read_csv with floats read exactly (the C parser's round_trip). The C parser ends a cell at a
    NUL character, which a raw cell of quarantine.csv may hold (the Python parser keeps it but
    rounds some floats wrongly): a file holding one is parsed with a character it does not hold in
    place of each NUL, put back afterwards."""
    data = Path(path).read_bytes()
    if b"\0" not in data:
        return pd.read_csv(path, float_precision="round_trip", **kwargs)
    text = data.decode("utf-8")
    stand_in = next(chr(code) for code in range(0xE000, 0xF900) if chr(code) not in text)
    frame = pd.read_csv(io.StringIO(text.replace("\0", stand_in)), float_precision="round_trip", **kwargs)

    def restored(cell):
        return cell.replace(stand_in, "\0") if isinstance(cell, str) else cell

    frame.columns = [restored(name) for name in frame.columns]
    for i in np.flatnonzero((frame.dtypes == object).to_numpy()):
        frame.isetitem(i, frame.iloc[:, i].map(restored))
    return frame


def _as_written(per_column):
    """A per-column read option (dtype, na_values) keyed by the header names as written."""
    if not isinstance(per_column, dict):
        return per_column
    names = pd.Series([str(name) for name in per_column], dtype=object)
    return dict(zip(_escaped(names), per_column.values()))


def read_result_csv(path, **kwargs) -> pd.DataFrame:
    """Read a CSV this workflow wrote: ids as text, floats exactly as written (round-trip parser),
    every escaped cell and header name as it was before write_csv escaped it. Options given per
    column (``dtype``, ``na_values``) name the columns as the frame did.

    A column that held escaped cells and, unescaped, holds only numbers (a float column with -inf)
    becomes float again, as read_csv reads it unescaped, unless ``dtype`` names the column's type.
    """
    dtype = kwargs.pop("dtype", {})
    dtype = TEXT_COLUMNS | dtype if isinstance(dtype, dict) else dtype
    per_column = {"dtype": dtype, "na_values": kwargs.pop("na_values", None)}
    by_column = {key: _as_written(value) for key, value in per_column.items() if value is not None}
    with _readable(path):
        frame = _parsed(path, **by_column, **kwargs)
    frame.columns = _unescaped(pd.Series(frame.columns, dtype=object))[0].tolist()
    for i, name in enumerate(frame.columns):
        values, escaped = _unescaped(frame.iloc[:, i])
        if not escaped.any():
            continue
        untyped = isinstance(dtype, dict) and name not in dtype
        if untyped and all(_READ_AS_NUMBER.fullmatch(str(cell)) for cell in values.dropna().unique()):
            values = values.astype("float64")
        frame.isetitem(i, values)
    return frame


def write_parquet(frame: pd.DataFrame, path) -> None:
    write_table(pa.Table.from_pandas(frame.reset_index(drop=True), preserve_index=False), path)


def write_table(table: pa.Table, path) -> None:
    """Write an Arrow table as write_parquet writes a frame (a table made from a frame keeps its
    pandas metadata, so pandas reads back the frame's dtypes)."""
    pq.write_table(table, path, compression="zstd")


ARROW_STRING = pd.StringDtype("pyarrow")
"""How text columns are held between stages: pandas' string dtype stored in Arrow buffers (a
million ids take some 15 MB instead of some 70 MB of Python objects), with the same values, missing
values (pd.NA), comparisons and sort order as the default ``string`` dtype."""


def read_parquet(path, columns: list[str] | None = None, categories=()) -> pd.DataFrame:
    """Read a Parquet file this workflow wrote (only ``columns``, when given), its text columns as
    ARROW_STRING (read without pyarrow's help, e.g. ``pd.read_parquet``, they are the ``string``
    or object columns they were written from), those named in ``categories`` as pandas categoricals
    (one small integer code per row; for columns a stage only carries or codes, as their categories
    are in no particular order). text_column turns such a column back into ARROW_STRING."""
    return arrow_frame(read_table(path, columns, categories))


def read_table(path, columns: list[str] | None = None, categories=()) -> pa.Table:
    """A Parquet file this workflow wrote as an Arrow table (only ``columns``, when given; the text
    columns named in ``categories`` dictionary-encoded)."""
    with _readable(path):
        schema = pq.read_schema(path)
        text = [name for name in categories if name in schema.names
                and (pa.types.is_string(schema.field(name).type) or pa.types.is_large_string(schema.field(name).type))]
        return pq.read_table(path, columns=columns, read_dictionary=text or None)


def text_column(values: pd.Series) -> pd.Series:
    """A categorical text column (read_parquet's ``categories``) as ARROW_STRING, other columns as they are."""
    if not isinstance(values.dtype, pd.CategoricalDtype):
        return values
    text = pa.chunked_array([pa.array(values.array).cast(pa.large_string())])
    return pd.Series(pd.arrays.ArrowStringArray(text), index=values.index, name=values.name)


def id_positions(ids: pd.Series, among: pd.Series) -> np.ndarray:
    """The position of each of ``ids`` in ``among`` (-1 where absent); ``among`` holds each id once
    (a cohort, a matched sample). Arrow hashes the ids as they are stored: no Python string per id,
    as a pandas index would build."""
    ids, among = pa.array(ids), pa.array(among)
    in_order = _positions_in_order(ids, among) if len(ids) < len(among) else None
    if in_order is not None:
        return in_order
    return pc.index_in(ids, value_set=among).fill_null(-1).to_numpy().astype(np.int64)


def _positions_in_order(ids, among) -> np.ndarray | None:
    """The positions of ``ids`` when they are all in ``among`` and in its order (a matched sample's ids
    in its cohort, say), else None. Hashing the fewer ids and looking the others up costs half as
    much as hashing ``among`` (whose table is the slow part)."""
    if ids.null_count or among.null_count:
        return None
    positions = np.flatnonzero(pc.is_in(among, value_set=ids).to_numpy(zero_copy_only=False))
    if len(positions) != len(ids) or not pc.all(pc.equal(among.take(positions), ids)).as_py():
        return None
    return positions.astype(np.int64)


def parquet_columns(path) -> list[str]:
    """The column names of a Parquet file this workflow wrote, read from its footer."""
    with _readable(path):
        return pq.read_schema(path).names


def arrow_frame(table: pa.Table) -> pd.DataFrame:
    """A table as a frame, its text columns as ARROW_STRING (no Python object per cell). The table's
    buffers are handed over as they are converted: do not use ``table`` afterwards."""
    text = {pa.string(): ARROW_STRING, pa.large_string(): ARROW_STRING}
    frame = table.to_pandas(types_mapper=text.get, self_destruct=True, split_blocks=True)
    pa.default_memory_pool().release_unused()      # the converted columns' buffers, back to the system
    return frame


@contextmanager
def _readable(path):
    """Turn a damaged intermediate file into one line that names it and says how to rebuild it."""
    try:
        yield
    except (OSError, ValueError, pa.ArrowException, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"{path}: cannot be read ({detail}); it is a result of an earlier step: delete it "
                        "and run snakemake again to rebuild it") from None


# --- analyses the data cannot answer ------------------------------------------------------------

def estimable_record(reason: str, stage: str) -> dict:
    """What a not-estimable stage writes in place of its results (and what later stages pass on)."""
    return {"estimable": False, "reason": reason, "stage": stage}


def upstream_not_estimable(paths) -> dict | None:
    """The not-estimable record of the first JSON input that carries one, else None."""
    for path in paths:
        if str(path).endswith(".json"):
            record = read_json(path)
            if isinstance(record, dict) and record.get("estimable") is False:
                return estimable_record(record["reason"], record["stage"])
    return None


def write_not_estimable(paths, record: dict) -> None:
    """Every output of a stage as a not-estimable result: JSON the record, tables one row
    (estimable, reason), figures a picture of the sentence, arrays empty."""
    table = pd.DataFrame({"estimable": [False], "reason": [record["reason"]]})
    for path in map(str, paths):
        if path.endswith(".json"):
            write_json(record, path)
        elif path.endswith(".csv"):
            write_csv(table, path)
        elif path.endswith(".parquet"):
            write_parquet(table, path)
        elif path.endswith(".png"):
            _reason_figure(record["reason"], path)
        elif path.endswith(".npy"):
            np.save(path, np.empty(0), allow_pickle=False)
        else:
            raise ValueError(f"no not-estimable form for {path}")


def _reason_figure(reason: str, path) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 1.6))
    fig.text(0.5, 0.5, textwrap.fill(f"Not estimable: {reason}", 80), ha="center", va="center",
             fontsize=9, wrap=True, usetex=False, parse_math=False)
    fig.savefig(path, format="png", dpi=100, metadata={"Software": None})


def run_script(main: Callable, smk, propagate: bool = True) -> None:
    """Run a rule's `main(snakemake)` with stderr and logging sent to the rule's log.

    An analysis that is not estimable is a result, not a failure: when ``propagate`` and an input
    JSON says its stage was not estimable, or when `main` raises NotEstimable, every output is
    written as a not-estimable result (write_not_estimable) and the job succeeds. Any other
    PipelineError (a problem with the user's data or config) is written as one message without a
    traceback; anything else is a bug and keeps its traceback in the log.
    """
    log_path = smk.log[0] if smk.log else None
    log_file = open(log_path, "w") if log_path else sys.stderr
    logging.basicConfig(stream=log_file, level=logging.INFO, format="%(levelname)s %(message)s", force=True)
    sys.stderr = log_file
    started = time.perf_counter()
    try:
        upstream = upstream_not_estimable(smk.input) if propagate else None
        if upstream:
            logging.info("not estimable (stage %s): %s", upstream["stage"], upstream["reason"])
            write_not_estimable(smk.output, upstream)
        else:
            main(smk)
        logging.info("%s: wrote %s in %.2f s", smk.rule, ", ".join(map(str, smk.output)),
                     time.perf_counter() - started)
    except NotEstimable as err:
        logging.info("not estimable: %s", err.reason)
        write_not_estimable(smk.output, estimable_record(err.reason, smk.rule))
    except PipelineError as err:
        message = f"psm-pipeline: {err}"
        print(message, file=log_file)
        print(message, file=sys.__stderr__)
        sys.exit(1)
    except Exception:
        traceback.print_exc(file=log_file)
        raise
    finally:
        log_file.flush()
