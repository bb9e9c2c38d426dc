"""Map one center's raw extract onto the harmonized schema, validate every row, quarantine the rest.

Rules (the contract's defaults plus the decisions this module documents):

* Mapping: ``columns`` maps source column -> variable; a source column already named like a
  variable maps to it unless it is itself listed in ``columns`` (map it to ``null`` to ignore it).
  Other columns are ignored (but kept in quarantine.csv as the row's raw values).
* Missing values: a cell whose stripped, case-folded text is a missing-value token or a code
  mapped to ``null`` is missing. The tokens are ``"", "na", "n/a", "nan", "null", "none", ".",
  "missing"`` plus the center's ``read.na_values`` (as in pandas: ``read.keep_default_na: false``
  keeps only ``read.na_values``). A missing required value quarantines the row
  (``missing_required``); a missing optional value becomes NA. Anything else that fails to parse quarantines the row: a bad value
  is never turned into NA.
* ``required`` defaults to true for the id variable and the outcome variables (time_zero, end,
  event, time), false otherwise (outcome.event_date is optional).
* Codes (``codes: {variable: {source code: target}}``) are looked up after stripping and
  case-folding the cell; a value equal to a level (case-insensitive) needs no code. Binary cells
  accept 1/0, 1.0/0.0, yes/no, y/n, true/false, ja/nein (any case); codes may map to 0/1.
* Numbers use ``read.decimal``; with decimal "," a "." in a number is an error (it could be a
  thousands separator). A number is a plain decimal: optional sign, digits with an optional
  decimal mark, optional exponent (``1e3``); anything else (``inf``, hex, ``1_000``, ``1.000,5``)
  is ``not_a_number`` (``not_an_integer`` for an integer variable; "nan" is a missing-value
  token). A number is never changed silently: one beyond the float range (``1e400``) is
  ``number_too_large``, a non-zero one too close to zero to be stored at full precision (below
  2.2e-308, e.g. ``1e-400``, which would become 0) is ``number_too_small``. Integers must be
  whole numbers, judged on the exact decimal text ("3.0" is 3, "3.0000000000000001" is
  ``not_an_integer``), and lie within ±2^53 = 9007199254740992, beyond which whole numbers
  cannot all be stored exactly (``number_too_large``, e.g. ``1e20``).
  A center's ``scale: {variable: factor}`` converts its unit to the harmonized one (e.g. Ki-67
  given as a fraction: ``scale: {ki67: 100}``); min/max apply after scaling.
* Dates use ``read.date_formats[variable]``, else ``read.date_format`` (strptime syntax); ISO
  ``YYYY-MM-DD`` (optionally with a time) is always accepted as well, so typed XLSX/Parquet date
  cells work next to text cells. Dates before 1900-01-01 or after today are rejected.
* Date logic: end before time zero -> ``followup_before_index``; a negative time column ->
  ``negative_followup``. Zero follow-up (end on the day of time zero, e.g. death on the day of
  the operation) is data and is accepted, as R's survfit and coxph accept time 0; an analysis
  that wants a minimum time at risk says so with its cohort key ``min_days_at_risk``. With ``outcome.event_date``: a date given while the event flag is 0 ->
  ``event_date_without_event``; event 1 with an event date different from the end date ->
  ``event_date_mismatch`` (follow-up of a patient who died ends at death).
* Duplicate ids within a center: all copies are quarantined (``duplicate_id``): which copy is right
  cannot be known. Across centers (merge_centers), with ``registry.id_scope: global`` (the
  default): accepted rows sharing an id in two or more centers are all moved to quarantine
  (``duplicate_id_across_centers``); ids must then be unique across the consortium. With
  ``id_scope: center`` each center numbers its own patients (1..N): the harmonized id is
  ``<center>:<id>`` (center ids hold no colon, so it is unique), and quarantine.csv keeps the raw id.
* Outcome: each center's rows are checked against the outcome form that center sends (its
  ``registry.centers.<id>.outcome``, else the study's ``outcome``), and every accepted row gets
  the harmonized ``time`` (in the study's time_unit) and ``event`` (pipeline.ingest.followup).
* A row whose cells are all blank is quarantined with the single reason ``empty_row``.
* A row the reader found malformed (``read_problems``: ``too_many_fields``, ``too_few_fields``,
  ``stray_quote``, ``encoding_error``, ``formula_without_value``, ``control_character``; see
  pipeline/ingest/extract.py and pipeline/ingest/readers/) is quarantined with exactly the reader's reasons: its
  cells cannot be trusted as read, so they are not judged one by one. A problem of one cell
  (the last three codes) counts only in a column mapped to a variable: a NUL in an unused comment
  column changes no value the study uses.
* A quarantined record that spans several physical lines (a line break inside quotes) has them
  in front of its reason: "lines 7-9: ...". The reader's warnings about the file (e.g. a
  declared encoding the bytes contradict) are the summary's ``warnings``.
* A row with several problems lists them all: ``reason_code`` and ``reason`` are aligned,
  ``;``-separated lists in the order of the variables, then the cross-variable checks.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from decimal import Decimal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from pipeline.config.settings import Center, Outcome, ReadOptions, Variable
from pipeline.errors import ConfigError
from pipeline.ingest.extract import READ_PROBLEMS, RESERVED_COLUMNS, SOURCE_ROW, SOURCE_ROW_END
from pipeline.ingest.followup import OUTCOME_COLUMNS, center_outcome, followup_columns
from pipeline.io import DECIMAL_NUMBER

DTYPES = {"id": "string", "numeric": "float64", "integer": "Int64", "binary": "Int8", "category": "string",
          "date": "datetime64[ns]"}
"""The harmonized column's dtype per variable type."""
OUTCOME_ROLES = ("time_zero", "end", "event", "time", "event_date")
DEFAULT_NA_VALUES = ("", "na", "n/a", "nan", "null", "none", ".", "missing")
BINARY_TOKENS = {
    "1": 1, "0": 0, "1.0": 1, "0.0": 0, "1,0": 1, "0,0": 0,
    "yes": 1, "no": 0, "y": 1, "n": 0, "true": 1, "false": 0, "ja": 1, "nein": 0,
}
YAML_BOOL_SPELLINGS = {True: ("true", "yes", "y", "on"), False: ("false", "no", "n", "off")}
ISO_DATE = r"\d{4}-\d{2}-\d{2}([ T]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?"
EARLIEST_DATE = pd.Timestamp("1900-01-01")
SHORT_INTEGER = r"[+-]?[0-9]{1,15}"  # exact as a float and far inside ±2^53
MAX_EXACT_INTEGER = 2**53
SMALLEST_NORMAL = np.finfo(np.float64).tiny
QUARANTINE_COLUMNS = ["center", "source_file", "source_row", "reason_code", "reason"]
OK, MISSING, ERROR = 0, 1, 2
log = logging.getLogger(__name__)


# ---------------------------------------------------------------- config helpers


def outcome_roles(outcome: Outcome) -> dict[str, str]:
    """Outcome role -> variable for the roles the outcome uses (of time_zero, end, event, time, event_date)."""
    return {role: getattr(outcome, role) for role in OUTCOME_ROLES if getattr(outcome, role) is not None}


def required_variables(variables: dict[str, Variable], outcome: Outcome) -> list[str]:
    """Variables whose missing value quarantines a row, in config order. ``required`` unset means
    required for the id and the outcome variables (outcome.event_date excepted)."""
    defaults = {v for role, v in outcome_roles(outcome).items() if role != "event_date"}
    return [name for name, spec in variables.items()
            if spec.required or (spec.required is None and (spec.type == "id" or name in defaults))]


def map_columns(header: list[str], center: Center, variables: dict) -> tuple[dict[str, str], list[str]]:
    """Variable -> source column for one center, and the mapping problems found.

    Problems are plain sentences naming the column; callers add the center and file.
    """
    explicit = center.columns
    present = set(header)
    sources: dict[str, list[str]] = {}
    problems = []
    for src, var in explicit.items():
        if src not in present:
            problems.append(f"mapped column '{src}' is not in the file's header")
            continue
        if var is None:
            continue
        if var not in variables:
            problems.append(f"column '{src}' is mapped to '{var}', which is not a variable in registry.variables")
            continue
        sources.setdefault(var, []).append(src)
    for src in header:
        if src in variables and src not in explicit:
            sources.setdefault(src, []).append(src)
    mapping = {}
    for var, srcs in sources.items():
        if len(srcs) > 1:
            problems.append(
                f"variable '{var}' is provided by several columns ({', '.join(repr(s) for s in srcs)}); "
                "keep one (map a column to null to ignore it)"
            )
        mapping[var] = srcs[0]
    ordered = {var: mapping[var] for var in variables if var in mapping}
    return ordered, problems


def normalized_codes(codes: dict | None) -> dict[str, object]:
    """Source code (stripped, case-folded) -> target; YAML 1.1 booleans (yes/no read as True/False) expanded."""
    table: dict[str, object] = {}
    for key, target in (codes or {}).items():
        spellings = YAML_BOOL_SPELLINGS[key] if isinstance(key, bool) else (str(key),)
        for spelling in spellings:
            table[spelling.strip().casefold()] = target
    return table


# ---------------------------------------------------------------- parsing one column


@dataclass
class ParsedUniques:
    """Parse result for the distinct cell values of a column (row values come by take)."""

    values: object          # typed array aligned with the uniques; NA where missing or error
    status: np.ndarray      # OK / MISSING / ERROR per unique
    code: np.ndarray        # reason code per unique ("" unless ERROR)
    message: np.ndarray     # reason text per unique ("" unless ERROR)
    blank: np.ndarray       # the raw text is empty or whitespace
    trimmed: bool           # stripping surrounding whitespace changed some value


def _label(var: str, src: str) -> str:
    return var if var == src else f"{var} (column '{src}')"


def _quoted(raw: pd.Series) -> pd.Series:
    return raw.map(repr)


def _na_tokens(read: ReadOptions) -> set[str]:
    defaults = DEFAULT_NA_VALUES if read.keep_default_na else ()
    return {str(v).strip().casefold() for v in (*defaults, *read.na_values)}


def parse_uniques(uniques: pd.Series, var: str, src: str, spec: Variable, read: ReadOptions, codes: dict,
                  today: pd.Timestamp, scale: float = 1) -> ParsedUniques:
    """Type the distinct raw values of one column; errors carry a code and a message naming the column."""
    stripped = uniques.str.strip()
    folded = stripped.str.casefold()
    na_values = _na_tokens(read)
    has_code = folded.isin(codes.keys()) if codes else pd.Series(False, index=uniques.index)
    missing = folded.isin(na_values) & ~has_code
    text = stripped
    if has_code.any():
        targets = folded[has_code].map(codes)
        missing |= targets.isna().reindex(uniques.index, fill_value=False)  # a code mapped to null
        text = stripped.copy()
        text[has_code] = targets.map(lambda t: _target_text(t, read.decimal))
    kind = spec.type
    if kind == "id":
        values, bad, why, code = pd.array(text, dtype="string"), np.zeros(len(text), bool), "", ""
    elif kind in ("numeric", "integer"):
        values, bad, why, code = _parse_number(text, kind, read.decimal, scale)
    elif kind == "binary":
        values, bad, why, code = _parse_binary(text)
    elif kind == "category":
        values, bad, why, code = _parse_category(text, spec.levels)
    else:  # date
        values, bad, why, code = _parse_date(text, read.date_formats.get(var, read.date_format))
    missing = missing.to_numpy()
    bad = bad & ~missing
    status = np.where(missing, MISSING, np.where(bad, ERROR, OK)).astype(np.int8)
    codes_out = np.where(bad, code, "").astype(object)
    label = _label(var, src)
    messages = np.full(len(uniques), "", dtype=object)
    why = np.broadcast_to(np.asarray(why, dtype=object), bad.shape)  # one text, or one per unique
    messages[bad] = (label + ": " + _quoted(uniques[bad]) + " " + why[bad]).to_numpy(dtype=object)
    parsed = ParsedUniques(values, status, codes_out, messages, (stripped == "").to_numpy(),
                           bool((stripped != uniques).any()))
    _check_range(parsed, uniques, label, spec, kind, today, scale)
    parsed.values[parsed.status != OK] = {"numeric": np.nan, "date": np.datetime64("NaT")}.get(kind, pd.NA)
    return parsed


def _target_text(target, decimal: str) -> str:
    """A code's target as the cell text it stands for (numbers written with the center's decimal mark)."""
    if target is None:
        return ""
    return str(target).replace(".", decimal) if isinstance(target, float) else str(target)


def _parse_number(text: pd.Series, kind: str, decimal: str, scale: float):
    """Numbers in the center's unit times ``scale`` (the declared conversion to the harmonized unit).

    Returns the values, which are bad, and per value the reason code and text (see the module
    docstring). Text is converted by Python's correctly rounded float parser, not pandas'.
    """
    wrong_mark = np.zeros(len(text), bool)
    if decimal != ".":
        wrong_mark = text.str.contains(".", regex=False).to_numpy()
        text = text.str.replace(decimal, ".", regex=False)
    valid = text.str.fullmatch(DECIMAL_NUMBER).to_numpy(dtype=bool) & ~wrong_mark
    numbers = np.full(len(text), np.nan)
    with np.errstate(over="ignore"):  # beyond the float range: inf, refused below
        numbers[valid] = text.to_numpy(dtype=object)[valid].astype(np.float64) * scale
    code = np.where(valid, "", "not_a_number").astype(object)
    why = np.where(valid, "", "is not a number" + (f" (decimal mark '{decimal}')" if decimal != "." else "")
                   ).astype(object)
    scaled = "" if scale == 1 else f" after scaling by {scale}"
    too_large = valid & ~np.isfinite(numbers)
    code[too_large], why[too_large] = "number_too_large", f"is too large to be stored as a number{scaled}"
    if kind == "numeric":
        too_small = valid & (np.abs(numbers) < SMALLEST_NORMAL) & _nonzero_mantissa(text, valid)
        code[too_small] = "number_too_small"
        why[too_small] = f"is too close to zero to be stored as a number{scaled} (it would become 0 or lose digits)"
        return numbers, code != "", why, code
    not_number = code == "not_a_number"
    code[not_number], why[not_number] = "not_an_integer", "is not a whole number"
    _check_integers(text, numbers, code, why, code == "", scale)
    bad = code != ""
    whole = pd.array(np.where(bad, 0, numbers).astype("int64"), dtype="Int64")
    whole[bad] = pd.NA
    return whole, bad, why, code


def _nonzero_mantissa(text: pd.Series, candidates: np.ndarray) -> np.ndarray:
    """Whether the digits before the exponent hold anything but zeros (only where ``candidates``)."""
    out = np.zeros(len(text), bool)
    if candidates.any():
        mantissa = text[candidates].str.replace(r"[eE].*$", "", regex=True)
        out[candidates] = mantissa.str.contains("[1-9]").to_numpy()
    return out


def _check_integers(text: pd.Series, numbers: np.ndarray, code: np.ndarray, why: np.ndarray, ok: np.ndarray,
                    scale: float) -> None:
    """Flag, in place, parsed numbers that are not whole or lie beyond ±2^53. Unscaled values are
    judged on their exact decimal text: the float has already rounded "3.0000000000000001" to 3 and
    2^53 + 1 to 2^53."""
    whole = ok & (numbers == np.floor(np.where(ok, numbers, 0)))
    beyond = np.abs(numbers) > MAX_EXACT_INTEGER
    if scale == 1:
        for i in np.flatnonzero(ok & ~text.str.fullmatch(SHORT_INTEGER).to_numpy(dtype=bool)):
            value = Decimal(text.iat[i])
            whole[i] = value == value.to_integral_value()
            beyond[i] = abs(value) > MAX_EXACT_INTEGER
    fractional = ok & ~whole
    code[fractional], why[fractional] = "not_an_integer", "is not a whole number"
    too_large = whole & beyond
    code[too_large] = "number_too_large"
    why[too_large] = (f"is too large for an integer (whole numbers beyond ±{MAX_EXACT_INTEGER}, 2^53, "
                      "cannot all be stored exactly)")


def _parse_binary(text: pd.Series):
    flags = text.str.casefold().map(BINARY_TOKENS)
    bad = flags.isna().to_numpy()
    values = pd.array(flags.fillna(0).astype("int8").to_numpy(), dtype="Int8")
    why = "is not a yes/no value (expected 1/0, yes/no, y/n, true/false, ja/nein or a configured code)"
    return values, bad, why, "unknown_code"


def _parse_category(text: pd.Series, levels: list) -> tuple:
    by_fold = {str(level).casefold(): str(level) for level in levels}
    matched = text.str.casefold().map(by_fold)
    bad = matched.isna().to_numpy()
    why = f"is not a known code (levels: {', '.join(map(str, levels))}, or map it in codes)"
    return pd.array(matched, dtype="string"), bad, why, "unknown_code"


def _parse_date(text: pd.Series, fmt: str | None):
    parsed = pd.Series(pd.NaT, index=text.index, dtype="datetime64[ns]")
    if fmt:
        parsed = pd.to_datetime(text, format=fmt, errors="coerce")
    iso = parsed.isna() & text.str.fullmatch(ISO_DATE)
    if iso.any():
        parsed[iso] = pd.to_datetime(text[iso], format="ISO8601", errors="coerce")
    bad = parsed.isna().to_numpy()
    expected = f"format {fmt} or ISO YYYY-MM-DD" if fmt else "ISO format YYYY-MM-DD"
    values = parsed.to_numpy(dtype="datetime64[ns]").copy()
    return values, bad, f"is not a date ({expected})", "not_a_date"


def _check_range(parsed: ParsedUniques, uniques: pd.Series, label: str, spec: Variable, kind: str,
                 today: pd.Timestamp, scale: float) -> None:
    """Flag parsed values outside [min, max] (numbers) or [1900-01-01, today] (dates), in place."""
    ok = parsed.status == OK
    if kind in ("numeric", "integer"):
        values = pd.Series(parsed.values).to_numpy(dtype="float64", na_value=np.nan)
        scaled = "" if scale == 1 else f" after scaling by {scale}"
        bounds = ((spec.min, np.less, "below the minimum"), (spec.max, np.greater, "above the maximum"))
        for bound, outside, word in bounds:
            if bound is not None:
                _flag(parsed, ok & outside(values, bound), "out_of_range", label, uniques, f"is {word} {bound}{scaled}")
    elif kind == "date":
        values = parsed.values
        _flag(parsed, ok & (values < EARLIEST_DATE.to_datetime64()), "date_before_1900", label, uniques,
              "is before 1900-01-01")
        _flag(parsed, ok & (values > today.to_datetime64()), "date_in_future", label, uniques,
              f"is after today ({today.date().isoformat()})")


def _flag(parsed: ParsedUniques, mask: np.ndarray, code: str, label: str, uniques: pd.Series, why: str) -> None:
    if not mask.any():
        return
    parsed.status[mask] = ERROR
    parsed.code[mask] = code
    parsed.message[mask] = label + ": " + _quoted(uniques[mask]).to_numpy(dtype=object) + " " + why


# ---------------------------------------------------------------- one center


@dataclass
class Problems:
    """Row problems collected column by column: row positions, code and message per problem."""

    rows: list = field(default_factory=list)
    codes: list = field(default_factory=list)
    messages: list = field(default_factory=list)

    def add(self, rows: np.ndarray, code, messages) -> None:
        if len(rows):
            self.rows.append(rows)
            self.codes.append(np.broadcast_to(np.asarray(code, dtype=object), rows.shape))
            self.messages.append(np.asarray(messages, dtype=object))

    def table(self) -> pd.DataFrame:
        if not self.rows:
            return pd.DataFrame({"pos": np.array([], np.int64), "seq": np.array([], np.int64),
                                 "code": np.array([], object), "message": np.array([], object)})
        return pd.DataFrame({
            "pos": np.concatenate(self.rows),
            "seq": np.concatenate([np.full(len(r), i) for i, r in enumerate(self.rows)]),
            "code": np.concatenate(self.codes),
            "message": np.concatenate(self.messages),
        }).sort_values(["pos", "seq"], kind="stable")


def harmonize_center(raw: pd.DataFrame, center_id: str, center: Center, variables: dict[str, Variable],
                     outcome: Outcome, source_file: str, time_unit: str, today: dt.date | None = None
                     ) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Harmonize one center: (accepted frame, quarantine frame, summary). See the module docstring.

    ``outcome`` is the study's; the center's own form (center.outcome) takes its place. The
    accepted frame holds the variables and the harmonized ``time`` (in ``time_unit``) and ``event``.
    The config check (pipeline.config.checks) has seen this extract's header; a mapping problem
    here means the file changed since, and stops the job naming the center and file.
    """
    today = pd.Timestamp(today or dt.date.today())
    outcome = center_outcome(center, outcome)
    header = [c for c in raw.columns if c not in RESERVED_COLUMNS]
    mapping, problems_cfg = map_columns(header, center, variables)
    required = required_variables(variables, outcome)
    absent = [v for v in required if v not in mapping]
    problems_cfg += [f"required variable '{v}' is not provided by any column" for v in absent]
    if problems_cfg:
        raise ConfigError(f"registry.centers.{center_id} ({source_file}): " + "; ".join(problems_cfg))
    n = len(raw)
    problems = Problems()
    id_var = next(name for name, spec in variables.items() if spec.type == "id")
    typed, blank_id = {}, None
    for var, spec in variables.items():
        if var not in mapping:
            typed[var] = _all_missing(spec.type, n)
            continue
        src = mapping[var]
        positions, uniques = pd.factorize(raw[src].astype(object).to_numpy(), use_na_sentinel=False)
        parsed = parse_uniques(pd.Series(uniques, dtype=object).fillna(""), var, src, spec, center.read,
                               normalized_codes(center.codes.get(var)), today, center.scale.get(var, 1))
        status = parsed.status[positions]
        typed[var] = pd.Series(parsed.values[positions])
        errors = np.flatnonzero(status == ERROR)
        problems.add(errors, parsed.code[positions[errors]], parsed.message[positions[errors]])
        if var in required:
            _add_missing_required(problems, status == MISSING, raw[src], _label(var, src))
        if var == id_var:
            blank_id = np.flatnonzero(parsed.blank[positions])
            id_key = _canonical_key(parsed)[positions]
            id_ok = status == OK
    labels = {var: _label(var, src) for var, src in mapping.items()}
    _add_followup_problems(problems, typed, raw, mapping, labels, outcome)
    _add_duplicate_ids(problems, typed[id_var], id_key, id_ok, raw, labels[id_var])
    table = _with_empty_rows(problems.table(), raw, header, blank_id)
    table = _with_read_problems(table, raw, set(mapping.values()))
    outcome_columns = followup_columns(typed, outcome, time_unit)
    accepted, quarantine, summary = _assemble(raw, header, typed | outcome_columns, table, center_id, source_file)
    _log_summary(summary)
    return accepted, quarantine, summary


def _log_summary(summary: dict) -> None:
    """One line per center: the counts, the quarantine's reasons and how many warnings the reader
    gave (read_extract logs them)."""
    reasons = ", ".join(f"{code} {n}" for code, n in summary["reasons"].items())
    log.info("%s (%s): %d rows read, %d accepted, %d quarantined%s; %d warnings", summary["center"],
             summary["source_file"], summary["rows_read"], summary["accepted"], summary["quarantined"],
             f" ({reasons})" if reasons else "", len(summary["warnings"]))


def _all_missing(kind: str, n: int) -> pd.Series:
    return pd.Series(index=pd.RangeIndex(n), dtype=DTYPES[kind])


def _add_missing_required(problems: Problems, missing: np.ndarray, raw: pd.Series, label: str) -> None:
    rows = np.flatnonzero(missing)
    if not len(rows):
        return
    cells = raw.to_numpy(dtype=object)[rows]
    shown = pd.Series(cells, dtype=object).str.strip()
    suffix = np.where(shown == "", "", " (" + shown.map(repr) + ")")
    problems.add(rows, "missing_required", (label + ": required value is missing" + pd.Series(suffix)).to_numpy(object))


def _raw_text(raw: pd.DataFrame, mapping: dict, var: str, rows: np.ndarray) -> np.ndarray:
    return raw[mapping[var]].to_numpy(dtype=object)[rows]


def _add_followup_problems(problems: Problems, typed: dict, raw: pd.DataFrame, mapping: dict, labels: dict,
                           outcome: Outcome) -> None:
    roles = {role: var for role, var in outcome_roles(outcome).items() if var in mapping}
    if "time_zero" in roles and "end" in roles:
        start, end = typed[roles["time_zero"]].to_numpy(), typed[roles["end"]].to_numpy()
        _add_pair_problem(problems, "followup_before_index", end < start, raw, mapping, labels, roles["end"],
                          roles["time_zero"], "is before")
    if "time" in roles:
        time = typed[roles["time"]].to_numpy(dtype="float64", na_value=np.nan)
        rows = np.flatnonzero(time < 0)
        cells = pd.Series(_raw_text(raw, mapping, roles["time"], rows), dtype=object).map(repr)
        problems.add(rows, "negative_followup",
                     (labels[roles["time"]] + ": follow-up time " + cells + " is negative").to_numpy(object))
    if "event" in roles and "event_date" in roles:
        event = typed[roles["event"]].to_numpy(dtype="float64", na_value=np.nan)
        event_date = typed[roles["event_date"]].to_numpy()
        has_date = ~np.isnat(event_date)
        _add_pair_problem(problems, "event_date_without_event", has_date & (event == 0), raw, mapping, labels,
                          roles["event_date"], roles["event"], "is given although")
        if "end" in roles:
            end = typed[roles["end"]].to_numpy()
            mismatch = has_date & (event == 1) & ~np.isnat(end) & (event_date != end)
            _add_pair_problem(problems, "event_date_mismatch", mismatch, raw, mapping, labels,
                              roles["event_date"], roles["end"], "differs from")


def _add_pair_problem(problems: Problems, code: str, mask: np.ndarray, raw: pd.DataFrame, mapping: dict,
                      labels: dict, first: str, second: str, relation: str) -> None:
    rows = np.flatnonzero(mask)
    if not len(rows):
        return
    a = pd.Series(_raw_text(raw, mapping, first, rows), dtype=object).map(repr)
    b = pd.Series(_raw_text(raw, mapping, second, rows), dtype=object).map(repr)
    text = labels[first] + " " + a + " " + relation + " " + labels[second] + " " + b
    problems.add(rows, code, text.to_numpy(object))


def _canonical_key(parsed: ParsedUniques) -> np.ndarray:
    """Per unique raw value, an integer that is equal exactly when the parsed values are equal.

    Two raw uniques parse to the same id only if they differ by surrounding whitespace, so the
    identity key suffices unless stripping changed something.
    """
    if not parsed.trimmed:
        return np.arange(len(parsed.values))
    return pd.factorize(pd.Series(parsed.values, dtype=object), use_na_sentinel=True)[0]


def _add_duplicate_ids(problems: Problems, ids: pd.Series, key: np.ndarray, present: np.ndarray, raw: pd.DataFrame,
                       label: str) -> None:
    """Every row whose id occurs more than once in the extract (rows with a missing id excluded)."""
    counts = np.bincount(key[present], minlength=int(key.max(initial=0)) + 1)
    rows = np.flatnonzero(present & (counts[key] > 1))
    if not len(rows):
        return
    dup_ids = pd.Series(ids.to_numpy(object)[rows], dtype=object)
    count, where = _occurrences(dup_ids, pd.Series(raw[SOURCE_ROW].to_numpy()[rows].astype(str), dtype=object))
    text = (label + ": " + dup_ids.map(repr) + " appears " + count.astype(str)
            + " times in this extract (rows " + where + ")")
    problems.add(rows, "duplicate_id", text.to_numpy(object))


def _occurrences(keys: pd.Series, places: pd.Series, shown: int = 5) -> tuple[pd.Series, pd.Series]:
    """Per row: how many rows share its key, and the first ``shown`` of their places joined (", ..." if more)."""
    groups = keys.groupby(keys, sort=False)
    count = groups.transform("size")
    listed = places[(groups.cumcount() < shown).to_numpy()]
    joined = listed.groupby(keys[listed.index], sort=False).agg(", ".join)
    where = keys.map(joined) + np.where(count > shown, ", ...", "")
    return count, where


def _with_empty_rows(table: pd.DataFrame, raw: pd.DataFrame, header: list[str], rows: np.ndarray) -> pd.DataFrame:
    """Rows with every cell blank get the single reason empty_row instead of their other problems.

    ``rows`` are the candidates: the rows whose id cell is blank.
    """
    for col in header:
        cells = pd.Series(raw[col].to_numpy(dtype=object)[rows], dtype=object)
        rows = rows[(cells.str.strip() == "").to_numpy()]
    if not len(rows):
        return table
    empty = pd.DataFrame({"pos": rows, "seq": -1, "code": "empty_row", "message": "row is empty (every cell blank)"})
    kept = table[~table["pos"].isin(rows)]
    return pd.concat([kept, empty], ignore_index=True).sort_values(["pos", "seq"], kind="stable")


def _with_read_problems(table: pd.DataFrame, raw: pd.DataFrame, used: set[str]) -> pd.DataFrame:
    """Rows the reader found malformed get exactly the reader's reasons instead of their other
    problems; a reader problem of a single cell counts only in a ``used`` (mapped) column."""
    found = raw[READ_PROBLEMS].to_numpy(dtype=object) if READ_PROBLEMS in raw else np.empty(0, object)
    items = [(pos, seq, code, reason) for pos in np.flatnonzero(pd.notna(found))
             for seq, (code, reason, column) in enumerate(found[pos]) if column is None or column in used]
    if not items:
        return table
    reader = pd.DataFrame(items, columns=["pos", "seq", "code", "message"])
    kept = table[~table["pos"].isin(reader["pos"])]
    return pd.concat([kept, reader], ignore_index=True).sort_values(["pos", "seq"], kind="stable")


def _spans(raw: pd.DataFrame, rows: np.ndarray, reasons: np.ndarray) -> np.ndarray:
    """Reasons of records spanning several physical lines, prefixed by those lines."""
    if SOURCE_ROW_END not in raw:
        return reasons
    first = raw[SOURCE_ROW].to_numpy(dtype=np.int64)[rows]
    last = raw[SOURCE_ROW_END].to_numpy(dtype=np.int64)[rows]
    several = np.flatnonzero(last > first)
    out = reasons.copy()
    for i in several:
        out[i] = f"lines {first[i]}-{last[i]}: {reasons[i]}"
    return out


def _assemble(raw: pd.DataFrame, header: list[str], typed: dict, table: pd.DataFrame, center_id: str,
              source_file: str) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    n = len(raw)
    bad_rows = np.unique(table["pos"].to_numpy())
    good = np.ones(n, bool)
    good[bad_rows] = False
    keep = np.flatnonzero(good)
    accepted = pd.DataFrame({
        "center": pd.array(np.full(len(keep), center_id, dtype=object), dtype="string"),
        SOURCE_ROW: raw[SOURCE_ROW].to_numpy(dtype=np.int64)[keep],
        **{var: values.array[keep] for var, values in typed.items()},
    })
    quarantine = pd.DataFrame({
        "center": center_id,
        "source_file": source_file,
        SOURCE_ROW: raw[SOURCE_ROW].to_numpy(dtype=np.int64)[bad_rows],
        "reason_code": _joined(table, "code", ";"),
        "reason": _spans(raw, bad_rows, _joined(table, "message", "; ")),
    }, columns=QUARANTINE_COLUMNS)
    for col in header:
        name = f"raw_{col}" if col in QUARANTINE_COLUMNS else col
        quarantine[name] = raw[col].to_numpy(dtype=object)[bad_rows]
    per_row = table.drop_duplicates(["pos", "code"])["code"].value_counts()
    summary = {
        "center": center_id,
        "source_file": source_file,
        "rows_read": n,
        "accepted": len(accepted),
        "quarantined": len(quarantine),
        "reasons": {code: int(per_row[code]) for code in sorted(per_row.index)},
        "missing": count_missing(accepted),
        "warnings": list(raw.attrs.get("warnings", [])),
    }
    check_accounting(summary, center_id)
    return accepted, quarantine, summary


def _joined(table: pd.DataFrame, column: str, sep: str) -> np.ndarray:
    """One string per row position (sorted), joining that row's problems; the join only where a row has several."""
    pos = table["pos"].to_numpy()
    first = np.r_[True, pos[1:] != pos[:-1]] if len(pos) else np.zeros(0, bool)
    out = table[column].to_numpy(dtype=object)[first].copy()
    several = np.unique(pos[~first])
    if len(several):
        multi = table[table["pos"].isin(several)]
        out[np.searchsorted(pos[first], several)] = multi.groupby("pos", sort=True)[column].agg(sep.join).to_numpy()
    return out


def count_missing(accepted: pd.DataFrame) -> dict[str, int]:
    """Missing values per harmonized variable among accepted rows."""
    return {col: int(accepted[col].isna().sum()) for col in counted_columns(accepted.columns)}


def counted_columns(columns) -> list[str]:
    """The columns whose missing values the summary counts: the variables."""
    return [col for col in columns if col not in ("center", SOURCE_ROW, *OUTCOME_COLUMNS)]


def check_accounting(summary: dict, where: str) -> None:
    """The stage's own invariant: every row read is either accepted or quarantined."""
    if summary["rows_read"] != summary["accepted"] + summary["quarantined"]:
        raise AssertionError(
            f"{where}: rows_read {summary['rows_read']} != accepted {summary['accepted']} "
            f"+ quarantined {summary['quarantined']}"
        )


# ---------------------------------------------------------------- all centers


def merge_centers(parts: list[tuple[pa.Table, pd.DataFrame, dict]], id_column: str, id_scope: str
                  ) -> tuple[pa.Table, pd.DataFrame, dict]:
    """Concatenate centers (in the given order) and quarantine ids accepted in more than one center
    (``id_column`` names the id variable; ``id_scope``: registry.id_scope).

    With id_scope center, ids become ``<center>:<id>`` and cannot repeat across centers. Otherwise
    every accepted copy of an id accepted in several centers moves to quarantine with
    ``duplicate_id_across_centers``; its raw values there are the harmonized values as text (the
    accepted frame keeps no raw cells).

    The accepted rows stay an Arrow table (each center's part as it was read, not copied into one
    frame): only the moved rows become a pandas frame.
    """
    order = {summary["center"]: i for i, (_, _, summary) in enumerate(parts)}
    accepted = pa.concat_tables([p[0] for p in parts])
    if id_scope == "center":
        ids = pc.binary_join_element_wise(accepted["center"], accepted[id_column], ":")
        accepted = accepted.set_column(accepted.schema.get_field_index(id_column), id_column, ids)
    quarantine = pd.concat([p[1] for p in parts], ignore_index=True)
    quarantine[SOURCE_ROW] = quarantine[SOURCE_ROW].astype("int64")  # parts may come back from text storage
    summaries = {s["center"]: {k: v for k, v in s.items() if k != "center"} for _, _, s in parts}
    for summary in summaries.values():
        summary["reasons"] = dict(summary["reasons"])
    shared = _ids_in_several_centers(accepted, id_column)
    moved = accepted.filter(shared).to_pandas() if shared.any() else None
    if moved is not None:
        moved_rows = _as_quarantine(moved, id_column, summaries)
        quarantine = pd.concat([quarantine, moved_rows], ignore_index=True)
        for center, n in moved_rows["center"].value_counts().items():
            s = summaries[center]
            s["accepted"] -= int(n)
            s["quarantined"] += int(n)
            s["reasons"]["duplicate_id_across_centers"] = s["reasons"].get("duplicate_id_across_centers", 0) + int(n)
            s["reasons"] = dict(sorted(s["reasons"].items()))
            log.info("%s: %d accepted rows moved to quarantine (duplicate_id_across_centers)", center, n)
        accepted = accepted.filter(~shared)
    quarantine = _sorted_by_center(quarantine, order)
    for (part, _, _), (center, s) in zip(parts, summaries.items()):
        s["missing"] = _missing_after_move(part, moved, center)
        check_accounting(s, center)
    total = _total(summaries)
    log.info("%d centers: %d rows read, %d accepted, %d quarantined", len(summaries), total["rows_read"],
             total["accepted"], total["quarantined"])
    return accepted, quarantine, {"centers": summaries, "total": total}


def _ids_in_several_centers(accepted: pa.Table, id_column: str) -> np.ndarray:
    """Per accepted row, whether its id is accepted in two or more centers. Only the rows whose id
    occurs more than once (usually none: a center's accepted ids are unique) are looked at in pandas."""
    ids = accepted[id_column]
    counts = pc.value_counts(ids)
    repeated = counts.field("values").filter(pc.greater(counts.field("counts"), 1))
    shared = np.zeros(len(accepted), bool)
    if not len(repeated):
        return shared
    candidates = np.flatnonzero(pc.is_in(ids, value_set=repeated).to_numpy(zero_copy_only=False))
    rows = accepted.take(candidates).select([id_column, "center"]).to_pandas()
    pairs = rows.drop_duplicates()
    several = pairs[id_column][pairs[id_column].duplicated(keep=False)]
    shared[candidates] = rows[id_column].isin(several).to_numpy()
    return shared


def _missing_after_move(part: pa.Table, moved: pd.DataFrame | None, center: str) -> dict[str, int]:
    """count_missing of a center's accepted rows once its rows in ``moved`` have left: the part's
    missing values (Arrow holds pandas' NaN and NA alike as nulls) less those of its moved rows."""
    missing = {name: part[name].null_count for name in counted_columns(part.column_names)}
    if moved is not None:
        for name, n in count_missing(moved[moved["center"] == center]).items():
            missing[name] -= n
    return missing


def _as_quarantine(rows: pd.DataFrame, id_column: str, summaries: dict) -> pd.DataFrame:
    keys = rows[id_column].astype(str).reset_index(drop=True)
    places = (rows["center"].astype(str) + " row " + rows[SOURCE_ROW].astype(str)).astype(object)
    _, seen = _occurrences(keys.astype(object), places.reset_index(drop=True))
    data = rows.drop(columns=["center", SOURCE_ROW, *OUTCOME_COLUMNS])
    values = data.astype(object).where(data.notna(), "").map(_as_text)
    moved = pd.DataFrame({
        "center": rows["center"].astype(object).to_numpy(),
        "source_file": rows["center"].map(lambda c: summaries[c]["source_file"]).to_numpy(object),
        SOURCE_ROW: rows[SOURCE_ROW].to_numpy(np.int64),
        "reason_code": "duplicate_id_across_centers",
        "reason": (id_column + ": " + keys.map(repr) + " is accepted in several centers (" + seen + ")"
                   ).to_numpy(object),
    })
    return pd.concat([moved, values.reset_index(drop=True)], axis=1)


def _as_text(value) -> str:
    if isinstance(value, pd.Timestamp):
        return value.strftime("%Y-%m-%d") if value == value.normalize() else value.isoformat(sep=" ")
    return "" if value is pd.NA else str(value)


def _sorted_by_center(quarantine: pd.DataFrame, order: dict) -> pd.DataFrame:
    rank = quarantine["center"].map(order)
    keys = pd.DataFrame({"rank": rank.to_numpy(), "row": quarantine[SOURCE_ROW].to_numpy()})
    index = keys.sort_values(["rank", "row"], kind="stable").index
    return quarantine.loc[index].reset_index(drop=True)


def _total(summaries: dict) -> dict:
    total = {"rows_read": 0, "accepted": 0, "quarantined": 0, "reasons": {}, "missing": {}}
    for s in summaries.values():
        for key in ("rows_read", "accepted", "quarantined"):
            total[key] += s[key]
        for group in ("reasons", "missing"):
            for name, n in s[group].items():
                total[group][name] = total[group].get(name, 0) + n
    total["reasons"] = dict(sorted(total["reasons"].items()))
    check_accounting(total, "all centers")
    return total
