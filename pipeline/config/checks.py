"""Semantic checks of the config's registry part, run before any job starts.

The JSON schema has already checked shapes, types, enums and bounds of every key; these checks
need the meaning of the keys and a look at the extracts' headers (only the header: a CSV's first
line, an XLSX sheet's first row, a Parquet schema). Each message names the config key, and for a
center its file and column.
"""

from __future__ import annotations

import codecs
import dataclasses
import datetime as dt
import os
from pathlib import Path

from pipeline.config.settings import Center, Outcome, ReadOptions, Registry, Variable
from pipeline.errors import DataError
from pipeline.ingest.harmonize import (
    BINARY_TOKENS,
    map_columns,
    normalized_codes,
    outcome_roles,
    required_variables,
)
from pipeline.ingest.extract import SEPARATORS, SOURCE_ROW, extract_format, read_header
from pipeline.ingest.followup import center_outcome

RESERVED_NAMES = ("center", SOURCE_ROW, "patient_id", "index_year", "time", "event", "treated", "group")
"""Columns the workflow adds to the harmonized registry or to an analysis cohort (patient_id is
what the id variable becomes, so only the id variable may have that name)."""
ROLE_TYPES = {"time_zero": ("date",), "end": ("date",), "event_date": ("date",), "event": ("binary",),
              "time": ("numeric", "integer")}


def registry_problems(registry: Registry, outcome: Outcome, workdir: Path) -> list[str]:
    """Every problem found in registry.variables, registry.centers and outcome (empty list: all fine)."""
    variables = registry.variables
    messages = check_variables(variables) + check_outcome(outcome, variables)
    provided: set[str] = set()
    all_read = True
    for center_id, center in registry.centers.items():
        if center.outcome is not None:
            messages += check_outcome(center.outcome, variables, f"registry.centers.{center_id}.outcome")
        required = required_variables(variables, center_outcome(center, outcome))
        found, header_read = _check_center(center_id, center, variables, required, Path(workdir), messages)
        provided |= found
        all_read &= header_read
    if all_read:
        messages += [
            f"registry.variables.{name}: no center provides this variable (map a source column to it in "
            "registry.centers.<center>.columns, or remove it)"
            for name in variables if name not in provided
        ]
    return messages


def check_variables(variables: dict[str, Variable]) -> list[str]:
    """Reserved names, levels and bounds that fit the type, exactly one id."""
    messages = []
    for name, spec in variables.items():
        key = f"registry.variables.{name}"
        if name in RESERVED_NAMES and not (name == "patient_id" and spec.type == "id"):
            messages.append(f"{key}: '{name}' is reserved for a column the pipeline adds; rename the variable "
                            f"(reserved: {', '.join(RESERVED_NAMES)}; patient_id only for the id variable)")
        messages += _check_levels(key, spec) + _check_bounds(key, spec)
    ids = [name for name, spec in variables.items() if spec.type == "id"]
    if len(ids) != 1:
        messages.append(f"registry.variables: exactly one variable must have type id, found {len(ids)}"
                        + (f" ({', '.join(ids)})" if ids else ""))
    return messages


def _check_levels(key: str, spec: Variable) -> list[str]:
    if spec.type != "category":
        return [f"{key}.levels: only a category variable has levels (type is {spec.type})"] if spec.levels else []
    if spec.levels is None:
        return [f"{key}.levels: a category variable needs a list of levels"]
    folded = [level.casefold() for level in spec.levels]
    if len(set(folded)) != len(folded):
        return [f"{key}.levels: levels must differ (ignoring case): {list(spec.levels)}"]
    return []


def _check_bounds(key: str, spec: Variable) -> list[str]:
    if spec.min is None and spec.max is None:
        return []
    if spec.type not in ("numeric", "integer"):
        return [f"{key}: min/max apply to numeric and integer variables only (type is {spec.type})"]
    if spec.min is not None and spec.max is not None and spec.min > spec.max:
        return [f"{key}: min {spec.min} is greater than max {spec.max}"]
    return []


def check_outcome(outcome: Outcome, variables: dict[str, Variable], key: str = "outcome") -> list[str]:
    """The outcome's roles (``key``: the study's outcome or a center's) name declared variables of
    the right types, and follow-up and event cannot be optional: every row needs them."""
    messages = []
    for role, var in outcome_roles(outcome).items():
        if var not in variables:
            messages.append(f"{key}.{role}: '{var}' is not a variable in registry.variables")
        elif variables[var].type not in ROLE_TYPES[role]:
            messages.append(f"{key}.{role}: '{var}' has type {variables[var].type}; expected "
                            f"{' or '.join(ROLE_TYPES[role])}")
        elif role != "event_date" and variables[var].required is False:
            messages.append(f"{key}.{role}: '{var}' has required: false, but every row needs its follow-up "
                            "and event (remove required: false)")
    return messages


def _check_center(center_id: str, center: Center, variables: dict[str, Variable], required: list[str],
                  workdir: Path, messages: list[str]) -> tuple[set[str], bool]:
    """Append this center's problems; return the variables it provides and whether its header was read."""
    path = Path(center.path)
    path = path if path.is_absolute() else workdir / path
    where = f"registry.centers.{center_id} ({center.path})"
    messages += _check_read_options(where, center.read, variables)
    header = _header_or_message(path, center, where, messages)
    if header is None:
        return set(), False
    mapping, problems = map_columns(header, center, variables)
    messages += [f"{where}: {problem}" for problem in problems]
    messages += _encoding_hint(path, center, header, where)
    messages += [f"{where}: required variable '{var}' is provided by no column (add a columns entry "
                 f"'<source column>: {var}')" for var in required if var not in mapping]
    messages += _check_codes(where, center.codes, variables, mapping)
    messages += _check_scale(where, center.scale, variables)
    return set(mapping), True


def _header_or_message(path: Path, center: Center, where: str, messages: list[str]) -> list[str] | None:
    try:
        if path.is_dir():
            messages.append(f"{where}: is a directory, not a file (looked at {path}); give the extract file's path")
            return None
        extract_format(path, center)
        if not path.is_file():
            messages.append(f"{where}: file not found (looked for {path})")
            return None
        if not os.access(path, os.R_OK):
            messages.append(f"{where}: file is not readable (permissions)")
            return None
        return read_header(path, center)
    except DataError as exc:
        messages.append(f"{where}: {exc}")
        return None


def _encoding_hint(path: Path, center: Center, header: list[str], where: str) -> list[str]:
    """A mapped column missing from a header that, read as UTF-8 instead of the declared
    single-byte encoding, holds it: the declared encoding is wrong (the values would be mojibake)."""
    encoding = center.read.encoding
    missing = [src for src in center.columns if src not in header]
    try:
        if not missing or codecs.lookup(encoding).name.startswith("utf") or \
                extract_format(path, center) not in SEPARATORS:
            return []
        as_utf8 = read_header(path, dataclasses.replace(center, read=dataclasses.replace(center.read,
                                                                                          encoding="utf-8")))
    except (DataError, LookupError):  # not UTF-8 either; an unknown encoding is reported by the read options
        return []
    found = [src for src in missing if src in as_utf8]
    if not found:
        return []
    return [f"{where}: read.encoding is {encoding}, but the file is UTF-8: read as UTF-8 its header holds the "
            f"mapped column{'s' if len(found) > 1 else ''} {', '.join(repr(c) for c in found)}; set "
            "read.encoding: utf-8"]


def _check_read_options(where: str, read: ReadOptions, variables: dict[str, Variable]) -> list[str]:
    messages = []
    try:
        codecs.lookup(read.encoding)
    except LookupError:
        messages.append(f"{where}: read.encoding '{read.encoding}' is not a known encoding")
    formats = dict(read.date_formats)
    if read.date_format is not None:
        formats["<date_format>"] = read.date_format
    for var, fmt in formats.items():
        if var != "<date_format>" and (var not in variables or variables[var].type != "date"):
            messages.append(f"{where}: read.date_formats.{var}: '{var}' is not a date variable")
        if not _round_trips(fmt):
            messages.append(f"{where}: date format {fmt!r} cannot read back a date it writes "
                            "(use strptime codes such as %d.%m.%Y)")
    return messages


def _round_trips(fmt: str) -> bool:
    sample = dt.datetime(2003, 11, 24)
    try:
        return dt.datetime.strptime(sample.strftime(fmt), fmt) == sample
    except ValueError:
        return False


def _check_codes(where: str, codes: dict[str, dict], variables: dict[str, Variable], mapping: dict) -> list[str]:
    messages = []
    for var, table in codes.items():
        if var not in variables:
            messages.append(f"{where}: codes.{var}: '{var}' is not a variable in registry.variables")
            continue
        if var not in mapping:
            messages.append(f"{where}: codes.{var}: no column of this extract provides '{var}'")
        spec = variables[var]
        for code, target in normalized_codes(table).items():
            if target is not None and not _valid_target(target, spec):
                messages.append(f"{where}: codes.{var}: code '{code}' maps to {target!r}, which is not "
                                + (f"a level ({', '.join(spec.levels or ())})"
                                   if spec.type == "category" else "0/1 (or yes/no)"))
    return messages


def _check_scale(where: str, scale: dict[str, float], variables: dict[str, Variable]) -> list[str]:
    return [f"{where}: scale.{var}: only numeric and integer variables can be scaled"
            for var in scale if var not in variables or variables[var].type not in ("numeric", "integer")]


def _valid_target(target, spec: Variable) -> bool:
    if spec.type == "category":
        return str(target).casefold() in {level.casefold() for level in spec.levels or ()}
    if spec.type == "binary":
        return str(target).strip().casefold() in BINARY_TOKENS
    return True
