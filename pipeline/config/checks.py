"""Semantic checks of the config's registry part, run before any job starts.

The JSON schema checks shapes and types of keys; these checks need the meaning of the keys and
a look at the extracts' headers (only the header: a CSV's first line, an XLSX sheet's first row,
a Parquet schema). Each message names the config key, and for a center its file and column.
"""

from __future__ import annotations

import codecs
import datetime as dt
import os
from numbers import Real
from pathlib import Path

from pipeline.errors import DataError
from pipeline.ingest.harmonize import (
    BINARY_TOKENS,
    TYPES,
    map_columns,
    normalized_codes,
    outcome_roles,
    required_variables,
)
from pipeline.ingest.extract import SOURCE_ROW, extract_format, read_header

RESERVED_NAMES = ("center", SOURCE_ROW, "patient_id", "index_year", "time", "event", "treated", "group")
"""Columns the workflow adds to the harmonized registry or to an analysis cohort (patient_id is
what the id variable becomes, so only the id variable may have that name)."""
ROLE_TYPES = {"time_zero": ("date",), "end": ("date",), "event_date": ("date",), "event": ("binary",),
              "time": ("numeric", "integer")}


def check_registry_config(config: dict, workdir: Path) -> list[str]:
    """Every problem found in registry.variables, registry.centers and outcome (empty list: all fine)."""
    registry = config.get("registry") or {}
    variables = registry.get("variables") or {}
    centers = registry.get("centers") or {}
    outcome = config.get("outcome") or {}
    messages = check_variables(variables) + check_outcome(outcome, variables)
    if not centers:
        messages.append("registry.centers: no center is configured")
    valid = {name: spec for name, spec in variables.items() if isinstance(spec, dict) and spec.get("type") in TYPES}
    required = required_variables(valid, outcome)
    provided: set[str] = set()
    all_read = True
    for center_id, center_cfg in centers.items():
        found, header_read = _check_center(center_id, center_cfg or {}, valid, required, Path(workdir), messages)
        provided |= found
        all_read &= header_read
    if centers and all_read:
        messages += [
            f"registry.variables.{name}: no center provides this variable (map a source column to it in "
            "registry.centers.<center>.columns, or remove it)"
            for name in variables if name not in provided
        ]
    return messages


def check_variables(variables: dict) -> list[str]:
    """Types, levels, bounds and reserved names of the harmonized schema."""
    if not variables:
        return ["registry.variables: no variable is declared"]
    messages = []
    for name, spec in variables.items():
        key = f"registry.variables.{name}"
        if name in RESERVED_NAMES and not (name == "patient_id" and isinstance(spec, dict) and spec.get("type") == "id"):
            messages.append(f"{key}: '{name}' is reserved for a column the pipeline adds; rename the variable "
                            f"(reserved: {', '.join(RESERVED_NAMES)}; patient_id only for the id variable)")
        if not isinstance(spec, dict):
            messages.append(f"{key}: expected a mapping like {{type: numeric}}")
            continue
        kind = spec.get("type")
        if kind not in TYPES:
            messages.append(f"{key}: unknown type '{kind}'; expected one of {', '.join(TYPES)}")
            continue
        messages += _check_levels(key, kind, spec) + _check_bounds(key, kind, spec)
        if "required" in spec and not isinstance(spec["required"], bool):
            messages.append(f"{key}.required: expected true or false, got {spec['required']!r}")
    ids = [name for name, spec in variables.items() if isinstance(spec, dict) and spec.get("type") == "id"]
    if len(ids) != 1:
        messages.append(f"registry.variables: exactly one variable must have type id, found {len(ids)}"
                        + (f" ({', '.join(ids)})" if ids else ""))
    return messages


def _check_levels(key: str, kind: str, spec: dict) -> list[str]:
    levels = spec.get("levels")
    if kind != "category":
        return [f"{key}.levels: only a category variable has levels (type is {kind})"] if levels is not None else []
    if not isinstance(levels, list) or not levels:
        return [f"{key}.levels: a category variable needs a non-empty list of levels"]
    folded = [str(level).casefold() for level in levels]
    if len(set(folded)) != len(folded):
        return [f"{key}.levels: levels must differ (ignoring case): {levels}"]
    return []


def _check_bounds(key: str, kind: str, spec: dict) -> list[str]:
    bounds = {b: spec[b] for b in ("min", "max") if spec.get(b) is not None}
    if not bounds:
        return []
    if kind not in ("numeric", "integer"):
        return [f"{key}: min/max apply to numeric and integer variables only (type is {kind})"]
    bad = [f"{key}.{b}: expected a number, got {v!r}" for b, v in bounds.items()
           if not isinstance(v, Real) or isinstance(v, bool)]
    if not bad and len(bounds) == 2 and bounds["min"] > bounds["max"]:
        bad.append(f"{key}: min {bounds['min']} is greater than max {bounds['max']}")
    return bad


def check_outcome(outcome: dict, variables: dict) -> list[str]:
    """The outcome names declared variables of the right types, in one of the two forms."""
    roles = outcome_roles(outcome)
    messages = []
    if "event" not in roles:
        messages.append("outcome.event: missing; name the binary event variable (e.g. death)")
    has_dates = "time_zero" in roles or "end" in roles
    if has_dates and "time" in roles:
        messages.append("outcome: give either time_zero and end (dates) or time (a ready follow-up time), not both")
    elif "time" not in roles and not ("time_zero" in roles and "end" in roles):
        messages.append("outcome: give time_zero and end (date variables), or time (a numeric follow-up variable)")
    for role, var in roles.items():
        spec = variables.get(var)
        if not isinstance(spec, dict):
            messages.append(f"outcome.{role}: '{var}' is not a variable in registry.variables")
        elif spec.get("type") not in ROLE_TYPES[role]:
            messages.append(f"outcome.{role}: '{var}' has type {spec.get('type')}; expected "
                            f"{' or '.join(ROLE_TYPES[role])}")
    return messages


def _check_center(center_id: str, center_cfg: dict, variables: dict, required: list[str], workdir: Path,
                  messages: list[str]) -> tuple[set[str], bool]:
    """Append this center's problems; return the variables it provides and whether its header was read."""
    key = f"registry.centers.{center_id}"
    if not center_cfg.get("path"):
        messages.append(f"{key}.path: missing; give the extract's file path")
        return set(), False
    path = Path(center_cfg["path"])
    path = path if path.is_absolute() else workdir / path
    where = f"{key} ({center_cfg['path']})"
    messages += _check_read_options(where, center_cfg.get("read") or {}, variables)
    header = _header_or_message(path, center_cfg, where, messages)
    if header is None:
        return set(), False
    mapping, problems = map_columns(header, center_cfg, variables)
    messages += [f"{where}: {problem}" for problem in problems]
    messages += _encoding_hint(path, center_cfg, header, where)
    messages += [f"{where}: required variable '{var}' is provided by no column (add a columns entry "
                 f"'<source column>: {var}')" for var in required if var not in mapping]
    messages += _check_codes(where, center_cfg.get("codes") or {}, variables, mapping)
    messages += _check_scale(where, center_cfg.get("scale") or {}, variables)
    return set(mapping), True


def _header_or_message(path: Path, center_cfg: dict, where: str, messages: list[str]) -> list[str] | None:
    try:
        if path.is_dir():
            messages.append(f"{where}: is a directory, not a file (looked at {path}); give the extract file's path")
            return None
        extract_format(path, center_cfg)
        if not path.is_file():
            messages.append(f"{where}: file not found (looked for {path})")
            return None
        if not os.access(path, os.R_OK):
            messages.append(f"{where}: file is not readable (permissions)")
            return None
        return read_header(path, center_cfg)
    except DataError as exc:
        messages.append(f"{where}: {exc}")
        return None


def _encoding_hint(path: Path, center_cfg: dict, header: list[str], where: str) -> list[str]:
    """A mapped column missing from a header that, read as UTF-8 instead of the declared
    single-byte encoding, holds it: the declared encoding is wrong (the values would be mojibake)."""
    read = center_cfg.get("read") or {}
    encoding = read.get("encoding", "utf-8")
    missing = [src for src in (center_cfg.get("columns") or {}) if src not in header]
    try:
        if not missing or codecs.lookup(encoding).name.startswith("utf") or \
                extract_format(path, center_cfg) not in ("csv", "tsv"):
            return []
        as_utf8 = read_header(path, {**center_cfg, "read": {**read, "encoding": "utf-8"}})
    except (DataError, LookupError):  # not UTF-8 either; an unknown encoding is reported by the read options
        return []
    found = [src for src in missing if src in as_utf8]
    if not found:
        return []
    return [f"{where}: read.encoding is {encoding}, but the file is UTF-8: read as UTF-8 its header holds the "
            f"mapped column{'s' if len(found) > 1 else ''} {', '.join(repr(c) for c in found)}; set "
            "read.encoding: utf-8"]


def _check_read_options(where: str, read: dict, variables: dict) -> list[str]:
    messages = []
    for option in ("sep", "decimal", "quotechar"):
        value = read.get(option)
        if value is not None and (not isinstance(value, str) or len(value) != 1):
            messages.append(f"{where}: read.{option} must be a single character, got {value!r}")
    if read.get("encoding") is not None:
        try:
            codecs.lookup(str(read["encoding"]))
        except LookupError:
            messages.append(f"{where}: read.encoding '{read['encoding']}' is not a known encoding")
    formats = dict(read.get("date_formats") or {})
    if read.get("date_format") is not None:
        formats["<date_format>"] = read["date_format"]
    for var, fmt in formats.items():
        if var != "<date_format>" and variables.get(var, {}).get("type") != "date":
            messages.append(f"{where}: read.date_formats.{var}: '{var}' is not a date variable")
        if not _round_trips(fmt):
            messages.append(f"{where}: date format {fmt!r} cannot read back a date it writes "
                            "(use strptime codes such as %d.%m.%Y)")
    return messages


def _round_trips(fmt) -> bool:
    sample = dt.datetime(2003, 11, 24)
    try:
        return isinstance(fmt, str) and dt.datetime.strptime(sample.strftime(fmt), fmt) == sample
    except ValueError:
        return False


def _check_codes(where: str, codes: dict, variables: dict, mapping: dict) -> list[str]:
    messages = []
    for var, table in codes.items():
        if var not in variables:
            messages.append(f"{where}: codes.{var}: '{var}' is not a variable in registry.variables")
            continue
        if var not in mapping:
            messages.append(f"{where}: codes.{var}: no column of this extract provides '{var}'")
        kind = variables[var]["type"]
        if not isinstance(table, dict):
            messages.append(f"{where}: codes.{var}: expected a mapping source code -> value")
            continue
        for code, target in normalized_codes(table).items():
            if target is not None and not _valid_target(target, kind, variables[var]):
                messages.append(f"{where}: codes.{var}: code '{code}' maps to {target!r}, which is not "
                                + (f"a level ({', '.join(map(str, variables[var]['levels']))})"
                                   if kind == "category" else "0/1 (or yes/no)"))
    return messages


def _check_scale(where: str, scale: dict, variables: dict) -> list[str]:
    messages = []
    for var, factor in scale.items():
        if variables.get(var, {}).get("type") not in ("numeric", "integer"):
            messages.append(f"{where}: scale.{var}: only numeric and integer variables can be scaled")
        elif not isinstance(factor, Real) or isinstance(factor, bool) or factor <= 0:
            messages.append(f"{where}: scale.{var}: expected a positive number, got {factor!r}")
    return messages


def _valid_target(target, kind: str, spec: dict) -> bool:
    if kind == "category":
        return str(target).casefold() in {str(level).casefold() for level in spec["levels"]}
    if kind == "binary":
        return str(target).strip().casefold() in BINARY_TOKENS
    return True
