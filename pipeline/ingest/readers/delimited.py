"""Delimited text (CSV, TSV): every physical line accounted for, no value changed on the way.

Lines end at LF, CRLF or a lone CR. Line 1 is the header; every later line belongs to exactly one
record, whose ``first_row``/``last_row`` are physical line numbers, so a record holding a line
break inside quotes spans several lines. Quoting is standard CSV, as Excel, pandas and Python's
csv module read it: a field that starts with the quote character runs to the closing quote (``""``
inside is one quote character); a quote inside an unquoted field is an ordinary character.

What is not a clean record still becomes a record, with a problem (harmonize quarantines it):

* ``too_many_fields`` / ``too_few_fields``: another number of fields than the header ("row has
  23 fields, the header has 21"; "row has 19 fields, the header has 21: short row"). A line of
  nothing but blanks and delimiters is an empty row whatever its field count (harmonize reports
  ``empty_row``).
* ``control_character``: a cell holding a control character (C0 except tab, LF and CR; DEL),
  e.g. a NUL; the reason names the column and shows the cell escaped. The C parser would end
  the cell at a NUL, so lines holding one are never given to it.
* ``stray_quote``: a quoted cell may hold line breaks (a multi-line note is valid CSV and reads
  as one record) when (a) the cell holds no delimiter, (b) its quote closes before the end of the
  file, followed by a delimiter or the line end, and (c) the record has the header's number of
  fields. Otherwise the quote is taken for a stray one that swallowed the lines after it: its
  line is quarantined, the reason naming the lines it would have swallowed, and the following
  lines are read one by one as rows of their own, so their patients are kept: up to the line
  where the quote closes, and on while such a line, read on its own, leaves a quote open (until
  then reading line by line and reading on disagree about where cells begin). In that stretch a
  line that holds a quote and is not a plain single-line record is quarantined (``stray_quote``)
  too: its cells cannot be told apart reliably. The price: a legitimate multi-line cell that
  holds the delimiter is quarantined; its reason says why.
* ``encoding_error``: in a UTF-8 file, a line with bytes that are not UTF-8 (e.g. pasted from a
  latin-1 source), as long as some other non-ASCII line is valid UTF-8; otherwise the file as a
  whole is in another encoding and reading it stops with a message naming line and byte.

Warnings (ingest_summary.json and the rule log) for an encoding that is cheap to suspect: a file
declared in a single-byte encoding (latin-1, cp1252, ...) whose bytes are valid UTF-8 with
non-ASCII characters (its text would turn into mojibake such as "JÃ¼rgen"), and a latin-1 file
with bytes 0x80-0x9F (control codes in latin-1, characters such as € in cp1252).

Speed: numpy classifies the lines on the raw bytes (field count with quotes taken into account,
control bytes, invalid UTF-8). The plain lines, usually all of them, go to pandas' C parser in
one call; lines with another field count but no quote are split at the delimiter; the rest go
one by one through Python's csv module.
"""

from __future__ import annotations

import codecs
import csv
import io
import itertools
import re
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.errors import DataError
from pipeline.ingest.readers.table import Problem, RawTable, clean_header, control_pattern, control_problems, without_gc

UTF8_BOM = b"\xef\xbb\xbf"
UTF8_CODECS = ("utf-8", "utf-8-sig")
NOT_UTF8 = re.compile("[\udc80-\udcff]")  # bytes that failed to decode, kept by surrogateescape
LF, CR, DEL = 10, 13, 127
PLAIN, RAGGED, HARD = 0, 1, 2  # how a line is read (see _Reader._classify)


def read_delimited(path: Path, sep: str, quote: str, encoding: str, header_only: bool = False) -> RawTable:
    if header_only:
        return RawTable(clean_header(path, _header_fields(path, _first_line(path, encoding), sep, quote)))
    raw = path.read_bytes()
    data, warnings = _as_utf8(path, raw, encoding)
    if not data or data.isspace():
        raise DataError(f"{path}: the file is empty (no header row)")
    lines = Lines.of(data)
    header = clean_header(path, _header_fields(path, _header_text(path, data[:lines.ends[0]], encoding), sep, quote))
    reader = _Reader(path, data, lines, header, sep, quote)
    return reader.table(warnings)


# ---------------------------------------------------------------- encoding


def _first_line(path: Path, encoding: str) -> str:
    """Line 1 decoded, reading no further than needed."""
    codec = codecs.lookup(encoding).name
    try:
        with open(path, encoding="utf-8-sig" if codec in UTF8_CODECS else codec, newline="") as handle:
            return handle.readline().rstrip("\r\n")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: line 1 (the header) is not valid {encoding} text (byte "
                        f"0x{exc.object[exc.start]:02x}); set read.encoding (e.g. latin-1 or cp1252)") from exc


def _as_utf8(path: Path, raw: bytes, encoding: str) -> tuple[bytes, list[str]]:
    """The file's bytes as UTF-8 without a byte-order mark, and warnings about the declared encoding.

    A UTF-8 file is returned as it is (lines with invalid bytes are handled line by line later);
    any other encoding is decoded (a byte it cannot decode stops the read) and re-encoded.
    """
    codec = codecs.lookup(encoding).name
    if codec in UTF8_CODECS:
        return (raw[len(UTF8_BOM):] if raw.startswith(UTF8_BOM) else raw), []
    warnings = _declared_encoding_warnings(path, raw, codec, encoding)
    try:
        text = raw.decode(codec)
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].decode(codec, "replace").count("\n") + 1
        hint = " (the file is valid UTF-8: set read.encoding: utf-8)" if _is_utf8(raw) else ""
        raise DataError(f"{path}: not valid {encoding} text: line {line} holds byte 0x{raw[exc.start]:02x}, "
                        f"which {encoding} does not define{hint}") from exc
    return text.removeprefix("\ufeff").encode("utf-8"), warnings


def _header_text(path: Path, line: bytes, encoding: str) -> str:
    try:
        return line.decode("utf-8")
    except UnicodeDecodeError as exc:
        utf16 = ": it starts with a UTF-16 byte-order mark; set read.encoding: utf-16" \
            if line.startswith((b"\xff\xfe", b"\xfe\xff")) else "; set read.encoding (e.g. latin-1 or cp1252)"
        raise DataError(f"{path}: line 1 (the header) is not valid {encoding} text (byte "
                        f"0x{line[exc.start]:02x}){utf16}") from exc


def _is_utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _declared_encoding_warnings(path: Path, raw: bytes, codec: str, encoding: str) -> list[str]:
    """Cheap signs that a single-byte encoding was declared for text in another one."""
    if raw.isascii() or codec.startswith("utf"):
        return []
    arr = np.frombuffer(raw, np.uint8)
    if _is_utf8(raw):
        number, line = _first_non_ascii_line(raw, int(np.argmax(arr >= 0x80)))
        return [f"{path}: read.encoding is {encoding}, but the file is valid UTF-8 with non-ASCII text "
                f"(line {number} reads {line.decode(codec, 'replace')[:60]!r} as {encoding}, "
                f"{line.decode('utf-8', 'replace')[:60]!r} as UTF-8); if values look garbled, "
                f"set read.encoding: utf-8"]
    if codec == "iso8859-1" and ((arr >= 0x80) & (arr <= 0x9f)).any():
        return [f"{path}: read.encoding is {encoding}, but the file holds bytes 0x80-0x9f, which are "
                f"control codes in latin-1 and characters such as € and “ ” in cp1252; if values look "
                f"garbled, set read.encoding: cp1252"]
    return []


def _first_non_ascii_line(raw: bytes, at: int) -> tuple[int, bytes]:
    """The number and bytes of the line holding byte ``at``."""
    start = max(raw.rfind(b"\n", 0, at), raw.rfind(b"\r", 0, at)) + 1
    ends = [p for p in (raw.find(b"\n", at), raw.find(b"\r", at)) if p >= 0]
    return len(re.findall(rb"\r\n|\r|\n", raw[:start])) + 1, raw[start:min(ends, default=len(raw))]


# ---------------------------------------------------------------- physical lines


@dataclass
class Lines:
    """Byte offsets of the physical lines: where each starts, where its text ends (terminator
    excluded) and where the next one starts."""

    data: bytes
    starts: np.ndarray
    ends: np.ndarray
    nexts: np.ndarray

    @classmethod
    def of(cls, data: bytes) -> "Lines":
        arr = np.frombuffer(data, np.uint8)
        n = len(arr)
        lf = np.flatnonzero(arr == LF)
        ends, nexts = lf, lf + 1
        if b"\r" in data:
            cr = np.flatnonzero(arr == CR)
            lone_cr = cr[(cr + 1 >= n) | (arr[np.minimum(cr + 1, n - 1)] != LF)]
            after_cr = (lf > 0) & (arr[np.maximum(lf - 1, 0)] == CR)
            ends = np.sort(np.concatenate([np.where(after_cr, lf - 1, lf), lone_cr]))
            nexts = np.sort(np.concatenate([lf + 1, lone_cr + 1]))
        if not len(nexts) or nexts[-1] < n:  # a last line without a terminator
            ends, nexts = np.append(ends, n), np.append(nexts, n)
        return cls(data, np.concatenate([[0], nexts[:-1]]), ends, nexts)

    def __len__(self) -> int:
        return len(self.starts)

    def text(self, i: int) -> str:
        """Line i with its terminator; bytes that are not UTF-8 become lone surrogates."""
        return self.data[self.starts[i]:self.nexts[i]].decode("utf-8", "surrogateescape")

    def bounds(self, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per line, the index range of the sorted byte positions that lie in its text (positions of
        bytes other than LF and CR: none lies in a terminator, so a line's range starts where the
        previous one's stops)."""
        stop = np.searchsorted(positions, self.ends)
        return np.concatenate([[0], stop[:-1]]), stop

    def count(self, positions: np.ndarray) -> np.ndarray:
        """Per line, how many of the sorted byte positions lie in its text."""
        first, stop = self.bounds(positions)
        return stop - first

    def line_of(self, positions: np.ndarray) -> np.ndarray:
        return np.searchsorted(self.starts, positions, side="right") - 1


def _header_fields(path: Path, text: str, sep: str, quote: str) -> list[str]:
    if not text.strip():
        raise DataError(f"{path}: the first line, which must hold the column names, is blank")
    fields, _, closed = _parse([text], 1, sep, quote)
    if not closed:
        raise DataError(f"{path}: the header (line 1) has a quote that does not close on that line")
    controls = control_pattern(sep)
    for j, name in enumerate(fields):
        if controls.search(name):
            raise DataError(f"{path}: the header (line 1) is corrupted: column {j + 1} is {name!r}, "
                            "which holds a control character")
    return fields


def _parse(lines, available: int, sep: str, quote: str, strict: bool = False) -> tuple[list[str], int, bool]:
    """The first record in ``lines`` (``available`` of them), how many lines it took, and whether
    it closed before they ran out (False: a quote is still open at the end). ``strict``: a closing
    quote followed by anything but a delimiter or the line end raises csv.Error.

    ``reader.line_num`` counts the lines the reader took; the empty line chained after the last
    one is taken only when a quoted field is still open there.
    """
    reader = csv.reader(itertools.chain(lines, [""]), delimiter=sep, quotechar=quote, doublequote=True,
                        skipinitialspace=False, strict=strict)
    fields = next(reader, [])
    return fields, min(reader.line_num, available), reader.line_num <= available


def _parse_line(text: str, sep: str, quote: str) -> list[str]:
    """The fields of one line read on its own (an open quote runs to the line's end)."""
    return _parse([text.rstrip("\r\n")], 1, sep, quote)[0]


def _lines(first: int, last: int) -> str:
    """Line numbers for a reason, from line indices (the header is index 0, line 1)."""
    return f"line {first + 1}" if first == last else f"lines {first + 1}-{last + 1}"


# ---------------------------------------------------------------- records


@dataclass
class _Record:
    first: int              # line index (0 = header)
    last: int
    fields: list[str]
    problems: list[Problem]


class _Reader:
    """Reads the body of one delimited file: plain lines in bulk, the others one by one."""

    def __init__(self, path: Path, data: bytes, lines: Lines, header: list[str], sep: str, quote: str):
        self.path, self.data, self.lines, self.header = path, data, lines, header
        self.sep, self.quote, self.width = sep, quote, len(header)
        self.controls = control_pattern(sep)
        self.sep_count = self.quotes = None  # per line; byte positions
        self._odd_quote_runs = None

    def table(self, warnings: list[str]) -> RawTable:
        kind = self._classify()
        with _csv_field_limit(len(self.data) + 1), without_gc():
            slow, taken = self._slow_records(np.flatnonzero(kind == HARD))
            slow += self._ragged_records(np.flatnonzero((kind == RAGGED) & ~taken))
        plain = np.flatnonzero((kind == PLAIN) & ~taken)
        body = self._parse_plain(plain)
        first = np.concatenate([plain, np.array([r.first for r in slow], dtype=np.int64)])
        last = np.concatenate([plain, np.array([r.last for r in slow], dtype=np.int64)])
        problems = {}
        if slow:
            with without_gc():
                body = self._merged(body, slow, first)
            order = np.argsort(first, kind="stable")
            first, last = first[order], last[order]
            flagged = [r for r in slow if r.problems]
            at = np.searchsorted(first, np.array([r.first for r in flagged], dtype=np.int64))
            problems = {int(pos): r.problems for pos, r in zip(at, flagged)}
        _check_every_line_once(first, last, len(self.lines))
        return RawTable(self.header, body, first + 1, last + 1, problems, warnings)

    def _merged(self, body: pd.DataFrame, slow: list[_Record], first: np.ndarray) -> pd.DataFrame:
        """The records read in bulk and the others, in file order."""
        position = np.empty(len(first), np.int64)
        position[np.argsort(first, kind="stable")] = np.arange(len(first))
        padding = [""] * self.width
        cells = np.array([(r.fields + padding)[:self.width] for r in slow], dtype=object)
        cells = cells.reshape(len(slow), self.width)
        columns = {}
        for j in range(self.width):
            column = np.empty(len(first), dtype=object)
            column[position[:len(body)]] = body[j].to_numpy(dtype=object)
            column[position[len(body):]] = cells[:, j]
            columns[j] = column
        return pd.DataFrame(columns)

    # -- classification (numpy, on the bytes)

    def _classify(self) -> np.ndarray:
        """PLAIN: one complete record with the header's field count and nothing odd, which the C
        parser reads exactly as the csv module would; RAGGED: another field count, no quote and
        nothing odd (a plain split); HARD: the rest, read one by one. The header line is HARD."""
        lines, data = self.lines, self.data
        kind = np.full(len(lines), HARD, np.int8)
        if not (self.sep.isascii() and self.quote.isascii()):
            return kind
        arr = np.frombuffer(data, np.uint8)
        seps = np.flatnonzero(arr == ord(self.sep))
        self.sep_count = lines.count(seps)
        self.quotes = np.flatnonzero(arr == ord(self.quote)) if self.quote.encode() in data else np.empty(0, np.int64)
        fields = self.sep_count + 1
        odd = self._odd_bytes(arr)
        unquoted = lines.count(self.quotes) == 0 if len(self.quotes) else True
        kind[~odd & unquoted & (fields != self.width)] = RAGGED
        plain = ~odd & (fields == self.width)
        if len(self.quotes):
            fields, quoted_ok = self._quoted_field_counts(arr, self.quotes, seps, fields)
            plain = ~odd & quoted_ok & (fields == self.width)
        kind[plain] = PLAIN
        kind[0] = HARD
        return kind

    def _odd_bytes(self, arr: np.ndarray) -> np.ndarray:
        """Lines holding a control byte (the delimiter excepted) or bytes that are not UTF-8."""
        lines = self.lines
        low = np.flatnonzero(arr < 32)
        kinds = arr[low]
        odd = low[(kinds != 9) & (kinds != LF) & (kinds != CR) & (kinds != ord(self.sep))]
        if b"\x7f" in self.data:
            odd = np.union1d(odd, np.flatnonzero(arr == DEL))
        flagged = lines.count(odd) > 0
        if not self.data.isascii() and not _is_utf8(self.data):
            flagged[self._invalid_utf8_lines(arr)] = True
        return flagged

    def _invalid_utf8_lines(self, arr: np.ndarray) -> list[int]:
        """Lines that are not valid UTF-8; all of them, when no non-ASCII line is, is a file-level error."""
        lines = self.lines
        high = np.flatnonzero(self.lines.count(np.flatnonzero(arr >= 0x80)) > 0)
        bad = []
        for i in high:
            try:
                self.data[lines.starts[i]:lines.ends[i]].decode("utf-8")
            except UnicodeDecodeError as exc:
                bad.append((int(i), exc))
        if bad and (len(bad) == len(high) or bad[0][0] == 0):
            i, exc = bad[0]
            which = "the header" if i == 0 else "as every line with non-ASCII characters does"
            raise DataError(f"{self.path}: not valid UTF-8 text: line {i + 1} holds byte 0x{exc.object[exc.start]:02x} "
                            f"(position {exc.start + 1} in the line; {which}); the file is in another encoding: "
                            "set read.encoding (e.g. latin-1 or cp1252)")
        return [i for i, _ in bad]

    def _quoted_field_counts(self, arr: np.ndarray, q: np.ndarray, seps: np.ndarray, fields: np.ndarray):
        """Field counts not counting delimiters inside quotes, and which lines quote canonically.

        Canonically, every quote opens a field (right after a delimiter or the line start), closes
        one (right before a delimiter or the line end) or is half of a doubled quote, and a line
        holds an even number of them. For such lines "inside quotes" is the parity of the quotes
        before a position, which numpy computes for the whole file at once; all other lines with
        quotes go the slow way. A quote's rank within its line (even: it opens) is its rank in the
        file corrected by the parity of the quotes before its line.
        """
        lines = self.lines
        boundary = np.zeros(256, bool)
        boundary[[ord(self.sep), LF, CR, ord(self.quote)]] = True
        before = boundary[np.take(arr, q - 1, mode="clip")] | (q == 0)
        after = boundary[np.take(arr, q + 1, mode="clip")] | (q + 1 == len(arr))
        first, stop = lines.bounds(q)
        odd_start = (first & 1).astype(bool)  # an odd number of quotes before the line
        rank_odd = (np.arange(len(q)) & 1).astype(bool) ^ np.repeat(odd_start, stop - first)
        misplaced = (~before & ~after) | ((before ^ after) & (rank_odd != (after & ~before)))
        ok = (stop - first) % 2 == 0
        ok[lines.line_of(q[misplaced])] = False
        sep_first, sep_stop = lines.bounds(seps)
        inside = np.bitwise_xor.accumulate(arr == ord(self.quote))[seps]  # odd number of quotes before
        inside ^= np.repeat(odd_start, sep_stop - sep_first)
        running = np.concatenate([[0], np.cumsum(inside, dtype=np.int64)])
        return fields - (running[sep_stop] - running[sep_first]), ok

    # -- the plain lines, in bulk

    def _parse_plain(self, plain: np.ndarray) -> pd.DataFrame:
        """The PLAIN lines, in one call of the C parser."""
        if not len(plain):
            return pd.DataFrame(columns=range(self.width), dtype=object)
        frame = pd.read_csv(
            io.BytesIO(self._plain_bytes(plain)), sep=self.sep, header=None, names=range(self.width), dtype=str,
            keep_default_na=False, na_filter=False, skip_blank_lines=False, quotechar=self.quote,
            doublequote=True, quoting=csv.QUOTE_MINIMAL, encoding="utf-8", engine="c",
        )
        if len(frame) != len(plain):
            raise RuntimeError(f"{self.path}: the C parser read {len(frame)} records from {len(plain)} lines")
        return frame

    def _ragged_records(self, ragged: np.ndarray) -> list[_Record]:
        """The RAGGED lines: split at the delimiter, a field-count problem unless blank (an empty row)."""
        data, sep, blanks = self.data, self.sep, " \t" + self.sep
        records = []
        for i, start, end in zip(ragged.tolist(), self.lines.starts[ragged].tolist(), self.lines.ends[ragged].tolist()):
            text = data[start:end].decode("utf-8")
            fields = text.split(sep)
            records.append(_Record(i, i, fields, self._count_problems(fields) if text.strip(blanks) else []))
        return records

    def _plain_bytes(self, plain: np.ndarray) -> bytes:
        """The plain lines, each with its own terminator (a lone CR becomes LF, so that it cannot
        pair with an LF that now follows it)."""
        lines = self.lines
        breaks = np.flatnonzero(np.diff(plain) != 1)
        run_first = plain[np.r_[0, breaks + 1]]
        run_last = plain[np.r_[breaks, len(plain) - 1]]
        pieces = [self.data[lines.starts[a]:lines.nexts[b]] for a, b in zip(run_first, run_last)]
        if len(pieces) == 1:
            return pieces[0]
        return b"".join(p[:-1] + b"\n" if p.endswith(b"\r") else p for p in pieces)

    # -- the other lines, one by one

    def _slow_records(self, candidates: np.ndarray) -> tuple[list[_Record], np.ndarray]:
        """Records for the HARD lines, in file order, and the lines that legitimate multi-line
        records take (away from the bulk read); a stray quote's stretch is read line by line (its
        plain lines stay in the bulk read)."""
        taken = np.zeros(len(self.lines), bool)
        records: list[_Record] = []
        taken_until, stray = 0, None  # stray: (first, last) line of the current stray quote's stretch
        for i in map(int, candidates[candidates > 0]):
            if i <= taken_until:
                continue
            if stray and i <= stray[1]:
                records.append(self._line_in_stretch(i, stray))
                continue
            record, stretch_end = self._record_from(i)
            records.append(record)
            if stretch_end is not None:
                stray, taken_until = (i, stretch_end), i
            else:
                taken_until = record.last
                taken[i:record.last + 1] = True
        for record in records:  # bytes that are not UTF-8 can only be on these lines
            record.fields = [_escaped(f) for f in record.fields]
        return records, taken

    def _record_from(self, i: int) -> tuple[_Record, int | None]:
        """The record that starts on line i, read as far as its quotes go; for a stray quote, its
        line's record and the last line of the stretch to read line by line after it."""
        text = self.lines.text(i)
        if self._blank(text) or self.quote not in text:
            return self._single_line(i, text), None
        own, _, closed = _parse([text.rstrip("\r\n")], 1, self.sep, self.quote)
        if closed:
            return self._checked(i, i, own), None
        end = self._quote_end(i)
        if end is None:
            end = len(self.lines) - 1
            why = f"it never closes, so {_lines(i, end)} (to the end of the file) would be one record"
        else:
            why = self._swallows_delimiters(i, end)
        if why is None:
            fields, used, closed = _parse(self._lines_from(i, end), end - i + 1, self.sep, self.quote)
            why = self._not_one_record(fields, closed, i, i + used - 1)
            if why is None:
                return self._checked(i, i + used - 1, fields), None
        opens = f"a quote opens in column '{self._column_name(len(own) - 1)}' and does not close on line {i + 1}"
        if end == i:
            return _Record(i, i, own, [Problem("stray_quote", f"{opens}, the last line of the file")]), None
        end = self._back_in_step(end)
        reason = (f"{opens}: {why}; taking it for a stray quote, the lines after it up to line {end + 1} are read "
                  "one by one")
        return _Record(i, i, own, [Problem("stray_quote", reason)]), end

    def _lines_from(self, i: int, end: int):
        return (self.lines.text(j) for j in range(i, end + 1))

    def _quote_end(self, i: int) -> int | None:
        """The line on which a quoted field left open at the end of line i closes (None: it never
        does): the first odd run of quote characters after it (an even run is escaped quotes)."""
        if self.quotes is None:  # no byte-level view (a non-ASCII delimiter or quote): read on
            return len(self.lines) - 1
        if self._odd_quote_runs is None:
            self._odd_quote_runs = _odd_runs(self.quotes)
        runs = self._odd_quote_runs
        k = np.searchsorted(runs, self.lines.nexts[i])
        return int(self.lines.line_of(runs[k:k + 1])[0]) if k < len(runs) else None

    def _back_in_step(self, end: int) -> int:
        """The first line, from ``end`` (where a stray quote closes) on, that read on its own ends
        outside quotes: up to there, reading line by line and reading on from the stray quote
        disagree about where cells begin, so no line there may start a multi-line record."""
        while end is not None and end < len(self.lines) - 1 and \
                not _parse([self.lines.text(end).rstrip("\r\n")], 1, self.sep, self.quote)[2]:
            end = self._quote_end(end)
        return len(self.lines) - 1 if end is None else end

    def _swallows_delimiters(self, i: int, end: int) -> str | None:
        """The cheap verdict: a whole line inside the quoted cell holds the delimiter."""
        if self.sep_count is not None and self.sep_count[i + 1:end].any():
            return (f"read on, {_lines(i, end)} would be one record whose quoted cell holds line breaks "
                    f"and the delimiter {self.sep!r}")
        return None

    def _not_one_record(self, fields: list[str], closed: bool, i: int, last: int) -> str | None:
        """Why lines i..last cannot be one record (None: they are a valid multi-line record)."""
        span = _lines(i, last)
        if not closed and last == len(self.lines) - 1:
            return f"it never closes, so {span} (to the end of the file) would be one record"
        if not closed:
            return f"read on, the record would go on past line {last + 1}"
        if any(self.sep in f for f in fields if "\n" in f or "\r" in f):
            return (f"read on, {span} would be one record whose quoted cell holds line breaks and the "
                    f"delimiter {self.sep!r}")
        if len(fields) != self.width:
            return f"read on, {span} would be one record with {len(fields)} fields (the header has {self.width})"
        try:
            _parse(self._lines_from(i, last), last - i + 1, self.sep, self.quote, strict=True)
        except csv.Error:
            return f"read on, a quote closing a cell of {span} is followed by more text, which no multi-line cell has"
        return None

    def _line_in_stretch(self, i: int, stray: tuple[int, int]) -> _Record:
        """A line that a stray quote would have swallowed, read on its own."""
        text = self.lines.text(i)
        if self._blank(text) or self.quote not in text:
            return self._single_line(i, text)
        reason = (f"line {i + 1} holds a quote and lies within {_lines(*stray)}, which the stray "
                  f"quote on line {stray[0] + 1} would have made one record; where its cells begin and end "
                  "cannot be told")
        return _Record(i, i, _parse_line(text, self.sep, self.quote), [Problem("stray_quote", reason)])

    def _single_line(self, i: int, text: str) -> _Record:
        """A line without quotes or holding a complete record: its fields and their problems."""
        if self._blank(text):
            return _Record(i, i, text.rstrip("\r\n").split(self.sep), [])
        return self._checked(i, i, _parse_line(text, self.sep, self.quote))

    def _blank(self, text: str) -> bool:
        return not text.rstrip("\r\n").strip(" \t" + self.sep)

    def _checked(self, first: int, last: int, fields: list[str]) -> _Record:
        """A record with the problems of its cells and its field count."""
        names = [self._column_name(j) for j in range(len(fields))]
        problems = []
        for name, cell in zip(names, fields):
            found = NOT_UTF8.search(cell)
            if found:
                problems.append(Problem("encoding_error", f"column '{name}': {_escaped(cell)!r} holds byte "
                                        f"0x{ord(found.group()) - 0xdc00:02x}, which is not UTF-8 (the rest of the "
                                        "file is)", name))
        problems += control_problems(fields, names, self.controls) + self._count_problems(fields)
        return _Record(first, last, fields, problems)

    def _count_problems(self, fields: list[str]) -> list[Problem]:
        n, width = len(fields), self.width
        if n > width:
            extra = self.sep.join(fields[width:])
            shown = repr(extra if len(extra) <= 60 else extra[:57] + "...")
            return [Problem("too_many_fields",
                            f"row has {n} fields, the header has {width} (beyond the last column: {shown})")]
        if n < width:
            noun = "field" if n == 1 else "fields"
            return [Problem("too_few_fields", f"row has {n} {noun}, the header has {width}: short row")]
        return []

    def _column_name(self, j: int) -> str:
        return self.header[j] if j < self.width else f"field {j + 1}"


def _odd_runs(quotes: np.ndarray) -> np.ndarray:
    """Where the runs of consecutive quote characters of odd length start: inside a quoted field
    such a run closes it (a pair is an escaped quote)."""
    if not len(quotes):
        return quotes
    breaks = np.flatnonzero(np.diff(quotes) != 1)
    starts, ends = quotes[np.r_[0, breaks + 1]], quotes[np.r_[breaks, len(quotes) - 1]]
    return starts[(ends - starts) % 2 == 0]


def _escaped(cell: str) -> str:
    """Bytes that are not UTF-8 written as escapes ('J\\xfcrgen'): no text output could hold them as they are."""
    if not NOT_UTF8.search(cell):
        return cell
    return cell.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _check_every_line_once(first: np.ndarray, last: np.ndarray, n_lines: int) -> None:
    """The reader's own invariant: the records cover lines 2..n, each exactly once, in order."""
    expected_first = np.r_[1, last[:-1] + 1] if len(last) else np.zeros(0, np.int64)
    covered = (not len(first) and n_lines == 1) or (
        len(first) and (first == expected_first).all() and (last >= first).all() and last[-1] == n_lines - 1)
    if not covered:
        raise RuntimeError(f"records do not cover the {n_lines - 1} data lines exactly once")


@contextmanager
def _csv_field_limit(limit: int):
    """A stray quote can make one cell as long as the file; the csv module refuses cells over 128 KiB."""
    old = csv.field_size_limit()
    csv.field_size_limit(max(old, min(limit, sys.maxsize)))
    try:
        yield
    finally:
        csv.field_size_limit(old)
