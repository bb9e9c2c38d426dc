"""What every reader returns, and the checks all formats share (header names, control characters)."""

from __future__ import annotations

import gc
import re
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from pipeline.errors import DataError

CONTROL_CHARACTERS = r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]"
"""C0 controls except tab, LF and CR, and DEL (as a regex class, for Python and Arrow): never part
of a registry value (a NUL or an escape in a cell means a corrupted export); line breaks and tabs
can be text."""


class Problem(NamedTuple):
    """What is wrong with a record: reason code, reason, and the column it concerns (None: the
    record as a whole, e.g. its field count)."""

    code: str
    reason: str
    column: str | None = None


@dataclass
class RawTable:
    """One extract as read: cleaned header names, every record's cells as raw strings, where each
    record lies in the file and what is wrong with it.

    ``first_row``/``last_row`` number records as a spreadsheet does (the header is row 1); for
    delimited text they are physical lines, so a record with a line break inside quotes spans
    several. ``problems`` maps a record's position to its problems.
    """

    header: list[str]
    body: pd.DataFrame | None = None
    first_row: np.ndarray | None = None
    last_row: np.ndarray | None = None
    problems: dict[int, list[Problem]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def __post_init__(self):
        if self.body is not None and self.first_row is None:  # one record per spreadsheet row
            self.first_row = np.arange(2, len(self.body) + 2, dtype=np.int64)
        if self.last_row is None:
            self.last_row = self.first_row


def control_pattern(allowed: str = "") -> re.Pattern:
    """Matches a control character, except those in ``allowed`` (e.g. a control used as delimiter)."""
    if not allowed:
        return re.compile(CONTROL_CHARACTERS)
    chars = "".join(c for c in map(chr, [*range(0, 9), 11, 12, *range(14, 32), 127]) if c not in allowed)
    return re.compile("[" + re.escape(chars) + "]")


def control_problems(cells, names, pattern: re.Pattern) -> list[Problem]:
    """One ``control_character`` problem per cell holding a control character, the cell shown escaped."""
    problems = []
    for name, cell in zip(names, cells):
        found = pattern.search(cell) if isinstance(cell, str) else None
        if found:
            what = " (NUL)" if found.group() == "\x00" else ""
            problems.append(Problem("control_character",
                                    f"column '{name}': {cell!r} holds the control character {found.group()!r}{what}",
                                    name))
    return problems


def first_line_of(exc: Exception) -> str:
    """An exception's message, short enough for a one-line error."""
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def clean_header(path: Path, header: list) -> list[str]:
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


@contextmanager
def without_gc():
    """Python's cycle collector, set off again and again by the millions of (acyclic) cells and
    problems built for a file in which every line is malformed, would take most of the time."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
