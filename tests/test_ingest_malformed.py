"""Hostile extracts, one class of problem at a time: every physical line ends up accepted or
quarantined with a reason, no value changes on the way, and only file-level problems stop a read."""

import datetime as dt
import decimal
import logging
import re
import zipfile

import openpyxl
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.errors import DataError
from pipeline.ingest.harmonize import harmonize_center, merge_centers
from pipeline.ingest.extract import read_extract
from tests.ingest_settings import as_center, as_outcome, as_variables

VARIABLES = {"pid": {"type": "id"}, "months": {"type": "numeric"}, "dead": {"type": "binary"}}
OUTCOME = {"time": "months", "event": "dead"}
HEADER = "pid,note,months,dead"


def write(path, content, encoding="utf-8"):
    path.write_bytes(content if isinstance(content, bytes) else content.encode(encoding))
    return path


def ingest(path, center=None):
    """Reader and harmonize as the workflow runs them: (raw frame, accepted, quarantine, summary)."""
    center = as_center(center)
    raw = read_extract(path, center)
    accepted, quarantine, summary = harmonize_center(raw, "c", center, as_variables(VARIABLES), as_outcome(OUTCOME),
                                                     str(path), "months", today=dt.date(2026, 1, 1))
    assert summary["rows_read"] == summary["accepted"] + summary["quarantined"] == len(raw)
    return raw, accepted, quarantine, summary


def problems(raw, row):
    """The reader's (code, reason) pairs of the record starting on physical line ``row``."""
    found = raw.loc[raw["source_row"] == row, "read_problems"]
    assert len(found) == 1, f"no record starts on line {row}"
    return [(code, reason) for code, reason, _ in found.iloc[0] or ()]


def codes_by_row(quarantine):
    return dict(zip(quarantine["source_row"], quarantine["reason_code"]))


# ---------------------------------------------------------------- 1. field counts


def test_rows_with_too_many_or_too_few_fields_are_quarantined_and_the_rest_is_read(tmp_path):
    header = ",".join(f"c{i}" for i in range(1, 22))
    good = ",".join(f"v{i}" for i in range(1, 22))
    long = ",".join(f"v{i}" for i in range(1, 24))
    short = ",".join(f"v{i}" for i in range(1, 20))
    path = write(tmp_path / "wide.csv", "\n".join([header, good, long, short, good]) + "\n")
    raw = read_extract(path, as_center())
    assert raw["source_row"].tolist() == [2, 3, 4, 5]
    assert problems(raw, 3) == [("too_many_fields",
                                 "row has 23 fields, the header has 21 (beyond the last column: 'v22,v23')")]
    assert problems(raw, 4) == [("too_few_fields", "row has 19 fields, the header has 21: short row")]
    assert problems(raw, 2) == problems(raw, 5) == []
    assert raw.loc[1, "c21"] == "v21" and raw.loc[2, "c19"] == "v19" and raw.loc[2, "c20"] == ""


def test_malformed_rows_reach_the_quarantine_with_only_the_readers_reason(tmp_path):
    text = f"{HEADER}\nA,ok,12,1\nB,too,many,3,0\nC,short\nD,,7,0\n"
    _, accepted, quarantine, summary = ingest(write(tmp_path / "c.csv", text))
    assert accepted["pid"].tolist() == ["A", "D"]
    assert codes_by_row(quarantine) == {3: "too_many_fields", 4: "too_few_fields"}
    assert quarantine.loc[quarantine["source_row"] == 4, "reason"].item() == \
        "row has 2 fields, the header has 4: short row"
    assert summary["reasons"] == {"too_few_fields": 1, "too_many_fields": 1}


@pytest.mark.parametrize("blank", ["", "   ", ",,,", ",,,,,,,", " , ,"])
def test_a_blank_line_is_an_empty_row_whatever_its_field_count(tmp_path, blank):
    _, accepted, quarantine, _ = ingest(write(tmp_path / "c.csv", f"{HEADER}\nA,,1,1\n{blank}\nB,,2,0\n"))
    assert accepted["pid"].tolist() == ["A", "B"]
    assert codes_by_row(quarantine) == {3: "empty_row"}


def test_a_trailing_delimiter_on_every_data_line_quarantines_them_all_without_stopping(tmp_path):
    text = f"{HEADER}\n" + "".join(f"P{i},,1,0,\n" for i in range(5))
    _, accepted, quarantine, _ = ingest(write(tmp_path / "c.csv", text))
    assert accepted.empty and set(quarantine["reason_code"]) == {"too_many_fields"}
    assert quarantine["source_row"].tolist() == [2, 3, 4, 5, 6]


# ---------------------------------------------------------------- 2. quotes and line breaks


def test_a_stray_quote_swallows_no_patient(tmp_path):
    lines = [HEADER, "P1,ok,10,1", 'P2,"stray note,11,0', "P3,a,12,1", "P4,b,13,0", 'P5,"closing,14,1', "P6,c,15,0"]
    raw, accepted, quarantine, _ = ingest(write(tmp_path / "c.csv", "\n".join(lines) + "\n"))
    assert accepted["pid"].tolist() == ["P1", "P3", "P4", "P6"]
    assert accepted["months"].tolist() == [10, 12, 13, 15]
    assert codes_by_row(quarantine) == {3: "stray_quote", 6: "stray_quote"}
    reason = quarantine.loc[quarantine["source_row"] == 3, "reason"].item()
    assert "column 'note'" in reason and "lines 3-6" in reason and "delimiter ','" in reason
    # line 6 read on its own opens a quote too: line by line and reading on agree again after it
    assert "the stray quote on line 3" in quarantine.loc[quarantine["source_row"] == 6, "reason"].item()
    assert raw["source_row"].tolist() == raw["source_row_end"].tolist() == [2, 3, 4, 5, 6, 7]


@pytest.mark.parametrize("tail, rows", [("", [2, 3, 4, 5]), ("\n", [2, 3, 4, 5]), ("\n\n", [2, 3, 4, 5, 6])])
def test_a_quote_that_never_closes_quarantines_its_line_only(tmp_path, tail, rows):
    text = f'{HEADER}\nP1,ok,1,1\nP2,x,2,"1\nP3,y,3,0\nP4,z,4,1' + tail
    raw, accepted, quarantine, _ = ingest(write(tmp_path / "c.csv", text))
    assert accepted["pid"].tolist() == ["P1", "P3", "P4"]
    assert codes_by_row(quarantine) == {3: "stray_quote", **({6: "empty_row"} if len(rows) == 5 else {})}
    assert "it never closes" in quarantine.loc[0, "reason"]
    assert raw["source_row"].tolist() == raw["source_row_end"].tolist() == rows


def test_a_quote_open_on_the_last_line_is_quarantined(tmp_path):
    raw, accepted, quarantine, _ = ingest(write(tmp_path / "c.csv", f'{HEADER}\nP1,ok,1,1\nP2,"x,2,0'))
    assert accepted["pid"].tolist() == ["P1"]
    assert problems(raw, 3)[0][0] == "stray_quote" and "last line" in problems(raw, 3)[0][1]


@pytest.mark.parametrize("eol", ["\n", "\r\n", "\r"])
def test_a_multi_line_note_without_delimiter_is_one_record(tmp_path, eol):
    lines = [HEADER, 'P1,"first line', "second line", '""quoted"" third",10,1', "P2,plain,11,0"]
    raw, accepted, quarantine, _ = ingest(write(tmp_path / "c.csv", eol.join(lines) + eol))
    assert quarantine.empty and accepted["pid"].tolist() == ["P1", "P2"]
    assert raw["note"].tolist() == [f'first line{eol}second line{eol}"quoted" third', "plain"]
    assert raw["source_row"].tolist() == [2, 5] and raw["source_row_end"].tolist() == [4, 5]
    assert accepted["source_row"].tolist() == [2, 5]


def test_a_quarantined_multi_line_record_names_its_lines(tmp_path):
    text = f'{HEADER}\nP1,"two\nlines",abc,1\nP2,x,3,0\n'
    _, accepted, quarantine, _ = ingest(write(tmp_path / "c.csv", text))
    assert accepted["pid"].tolist() == ["P2"]
    assert quarantine.loc[0, "reason"] == "lines 2-3: months: 'abc' is not a number"


@pytest.mark.parametrize("note, why", [
    ('"line one, with comma\nline two"', "delimiter ','"),        # the documented price of the rule
    ('"one\ntwo",x', "5 fields (the header has 4)"),
])
def test_a_multi_line_cell_that_is_no_valid_record_is_read_line_by_line(tmp_path, note, why):
    text = f"{HEADER}\nP1,{note},1,1\nP2,x,2,0\n"
    raw, accepted, quarantine, _ = ingest(write(tmp_path / "c.csv", text))
    assert accepted["pid"].tolist() == ["P2"]
    assert problems(raw, 2)[0][0] == "stray_quote" and why in problems(raw, 2)[0][1]
    assert set(quarantine["source_row"]) == {2, 3}  # the continuation line is not taken for a patient


def test_quotes_inside_unquoted_and_doubled_inside_quoted_fields(tmp_path):
    text = f'{HEADER}\nP1,5" tall,1,1\nP2,"say ""hi"", twice",2,0\n"P3","",3,1\nP4,a"b"c,4,0\n'
    raw, accepted, quarantine, _ = ingest(write(tmp_path / "c.csv", text))
    assert quarantine.empty
    assert raw["note"].tolist() == ['5" tall', 'say "hi", twice', "", 'a"b"c']


def test_a_custom_quote_character(tmp_path):
    text = "pid;note;months;dead\nP1;'a;b';1;1\nP2;'stray;2;0\nP3;x;3;1\n"
    raw = read_extract(write(tmp_path / "c.csv", text), as_center({"read": {"sep": ";", "quotechar": "'"}}))
    assert raw["note"].tolist()[0] == "a;b"
    assert problems(raw, 3)[0][0] == "stray_quote" and problems(raw, 4) == []


# ---------------------------------------------------------------- 3. control characters, line ends


@pytest.mark.parametrize("cell, column", [("P00\x00 3", "pid"), ("1\x00 2", "months"), ("P\x1by", "pid"),
                                          ("1\x7f", "dead"), ("a\x0cb", "pid"), ("\x1f", "months")])
def test_a_control_character_quarantines_its_row_naming_column_and_cell(tmp_path, cell, column):
    row = {"pid": "P1", "note": "n", "months": "5", "dead": "1"} | {column: cell}
    text = f"{HEADER}\n" + ",".join(row.values()) + "\nP2,ok,6,0\n"
    raw, accepted, quarantine, _ = ingest(write(tmp_path / "c.csv", text))
    assert accepted["pid"].tolist() == ["P2"]
    assert quarantine["reason_code"].tolist() == ["control_character"]
    assert quarantine.loc[0, "reason"].startswith(f"column '{column}': {cell!r} holds the control character")
    assert quarantine.loc[0, column] == cell  # the cell whole, not cut at the NUL


def test_a_control_character_in_an_unused_column_changes_nothing_the_study_uses(tmp_path):
    raw, accepted, quarantine, _ = ingest(write(tmp_path / "c.csv", f"{HEADER}\nP1,a\x00b,5,1\n"))
    assert problems(raw, 2)[0][0] == "control_character"  # the reader says so,
    assert quarantine.empty and accepted["months"].tolist() == [5]  # harmonize needs none of the column
    assert raw.loc[0, "note"] == "a\x00b"


def test_a_tab_in_a_csv_cell_is_text_and_in_a_tsv_the_delimiter(tmp_path):
    raw = read_extract(write(tmp_path / "c.csv", f"{HEADER}\nP1,a\tb,1,1\n"), as_center())
    assert raw.loc[0, "note"] == "a\tb" and raw.loc[0, "read_problems"] is None
    raw = read_extract(write(tmp_path / "c.tsv", "pid\tnote\nP1\ta b\n"), as_center())
    assert raw.loc[0, "note"] == "a b"


def test_a_control_character_as_delimiter(tmp_path):
    raw = read_extract(write(tmp_path / "c.csv", "pid\x1fnote\nP1\x1fa\n"), as_center({"read": {"sep": "\x1f"}}))
    assert raw["note"].tolist() == ["a"] and raw["read_problems"].isna().all()


@pytest.mark.parametrize("eol", ["\r\n", "\r", "mixed"])
def test_crlf_and_lone_cr_line_ends_read_like_lf(tmp_path, eol):
    rows = [HEADER, "P1,a,1,1", "P2,b,2,0", "", "P3,c,3,1"]
    ends = ["\r\n", "\r", "\n", "\r"] if eol == "mixed" else [eol] * 4
    text = "".join(row + end for row, end in zip(rows, ends)) + rows[-1]
    lf = read_extract(write(tmp_path / "lf.csv", "\n".join(rows)), as_center())
    other = read_extract(write(tmp_path / "other.csv", text), as_center())
    pd.testing.assert_frame_equal(lf, other)
    assert other["source_row"].tolist() == [2, 3, 4, 5]


# ---------------------------------------------------------------- 5. XLSX formulas


def xlsx_with_formulas(path, cached: dict | None = None):
    """A sheet whose column 'months' holds formulas; ``cached`` cell -> value written as computed values."""
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["pid", "years", "months", "dead"])
    sheet.append(["P1", 5, "=B2*12", 1])
    sheet.append(["P2", 6, 72, 0])
    sheet.append(["P3", 7, "=B4*12", 1])
    book.save(path)
    if cached:
        _rewrite_sheet(path, lambda xml: _cache(xml, cached))
    return path


def _cache(xml: str, cached: dict) -> str:
    for cell, value in cached.items():
        xml = re.sub(rf'(<c r="{cell}"[^>]*>(?:<f>[^<]*</f>))<v\s*/>', rf"\g<1><v>{value}</v>", xml)
    return xml


def _rewrite_sheet(path, edit):
    with zipfile.ZipFile(path) as archive:
        items = {name: archive.read(name) for name in archive.namelist()}
    items["xl/worksheets/sheet1.xml"] = edit(items["xl/worksheets/sheet1.xml"].decode()).encode()
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in items.items():
            archive.writestr(name, data)


def test_formula_cells_without_a_computed_value_are_quarantined(tmp_path):
    raw, accepted, quarantine, _ = ingest(xlsx_with_formulas(tmp_path / "c.xlsx"))
    assert accepted["pid"].tolist() == ["P2"] and accepted["months"].tolist() == [72]
    assert quarantine["reason_code"].tolist() == ["formula_without_value"] * 2
    assert quarantine.loc[0, "reason"].startswith("column 'months' (cell C2): the formula =B2*12 has no computed value")
    assert quarantine["source_row"].tolist() == [2, 4]


def test_a_formula_without_value_in_an_unused_column_keeps_the_row(tmp_path):
    path = xlsx_with_formulas(tmp_path / "c.xlsx")
    center = {"columns": {"years": "months", "months": None}}
    _, accepted, quarantine, _ = ingest(path, center)
    assert quarantine.empty and accepted["months"].tolist() == [5, 6, 7]


def test_formula_cells_with_a_computed_value_read_that_value(tmp_path):
    path = xlsx_with_formulas(tmp_path / "c.xlsx", cached={"C2": 60, "C4": 84})
    raw = read_extract(path, as_center())
    assert raw["months"].tolist() == ["60", "72", "84"] and raw["read_problems"].isna().all()


def test_a_formula_computing_empty_text_is_a_value(tmp_path):
    path = xlsx_with_formulas(tmp_path / "c.xlsx")
    _rewrite_sheet(path, lambda xml: xml.replace('<c r="C2"><f>B2*12</f><v /></c>',
                                                 '<c r="C2" t="str"><f>""</f><v></v></c>'))
    raw = read_extract(path, as_center())
    assert raw.loc[0, "months"] == "" and raw.loc[0, "read_problems"] is None
    assert raw.loc[2, "read_problems"][0][0] == "formula_without_value"


def test_a_stale_sheet_dimension_loses_no_row_or_column(tmp_path):
    book = openpyxl.Workbook()
    for row in (["pid", "months", "dead"], ["P1", 1, 1], ["P2", 2, 0], ["P3", 3, 1, "note"]):
        book.active.append(row)
    path = tmp_path / "c.xlsx"
    book.save(path)
    _rewrite_sheet(path, lambda xml: re.sub(r'<dimension ref="[^"]*"', '<dimension ref="A1:B2"', xml))
    raw = read_extract(path, as_center())
    assert raw["pid"].tolist() == ["P1", "P2", "P3"]
    assert raw["dead"].tolist() == ["1", "0", "1"] and raw["Unnamed: 3"].tolist() == ["", "", "note"]


def test_an_escaped_control_character_in_an_xlsx_cell(tmp_path):
    book = openpyxl.Workbook()
    for row in (["pid", "months", "dead"], ["P1", 1, 1], ["P2", 2, 0]):
        book.active.append(row)
    path = tmp_path / "c.xlsx"
    book.save(path)
    # XML cannot hold a NUL: Excel writes it as _x0000_ (and any character as such an escape)
    _rewrite_sheet(path, lambda xml: xml.replace("<t>P1</t>", "<t>P_x0000_1</t>")
                   .replace("<t>P2</t>", "<t>P_x0041_2</t>"))
    _, accepted, quarantine, _ = ingest(path)
    assert quarantine["reason_code"].tolist() == ["control_character"] and quarantine.loc[0, "pid"] == "P_x0000_1"
    assert accepted["pid"].tolist() == ["P_x0041_2"]


# ---------------------------------------------------------------- 6. Parquet types


def parquet(tmp_path, **columns):
    path = tmp_path / "c.parquet"
    pq.write_table(pa.table(columns), path)
    return path


def test_time_zone_aware_timestamps_keep_their_wall_clock_date(tmp_path):
    utc = [dt.datetime(2003, 1, 31, 23, 0), dt.datetime(2003, 6, 30, 22, 0)]  # midnight in Berlin
    berlin = pa.array(utc, pa.timestamp("us", tz="UTC")).cast(pa.timestamp("us", tz="Europe/Berlin"))
    india = pa.array([dt.datetime(2003, 1, 31, 20, 0), None], pa.timestamp("s", tz="UTC")).cast(
        pa.timestamp("s", tz="+05:30"))
    raw = read_extract(parquet(tmp_path, op=berlin, seen=india), as_center())
    assert raw["op"].tolist() == ["2003-02-01", "2003-07-01"]
    assert raw["seen"].tolist() == ["2003-02-01 01:30:00", ""]


def test_dates_and_timestamps_of_every_unit(tmp_path):
    stamp = dt.datetime(2003, 2, 1, 8, 5, 1)
    raw = read_extract(parquet(
        tmp_path,
        d32=pa.array([dt.date(2001, 1, 2)], pa.date32()),
        d64=pa.array([dt.date(2001, 1, 2)], pa.date64()),
        s=pa.array([stamp], pa.timestamp("s")),
        ms=pa.array([stamp.replace(microsecond=500_000)], pa.timestamp("ms")),
        us=pa.array([stamp.replace(microsecond=250)], pa.timestamp("us")),
        ns=pa.array([stamp], pa.timestamp("ns")),
    ), as_center())
    assert raw.loc[0, ["d32", "d64", "s", "ns"]].tolist() == ["2001-01-02", "2001-01-02", "2003-02-01 08:05:01",
                                                              "2003-02-01 08:05:01"]
    assert raw.loc[0, "ms"] == "2003-02-01 08:05:01.500"
    assert raw.loc[0, "us"] == "2003-02-01 08:05:01.000250"


def test_numbers_of_every_type_are_rendered_exactly(tmp_path):
    floats = [0.1, 1 / 3, 1e20, 5e-324, 2.0**53 + 2, -0.0, 61.5]
    raw = read_extract(parquet(
        tmp_path,
        u64=pa.array([2**64 - 1] + [0] * 6, pa.uint64()),
        i64=pa.array([-2**63] + [1] * 6, pa.int64()),
        f64=pa.array(floats, pa.float64()),
        dec=pa.array([decimal.Decimal("61.50"), decimal.Decimal("-0.000000000000000000000000000001")] + [None] * 5,
                     pa.decimal128(38, 30)),
        flag=pa.array([True, False] + [None] * 5),
        cat=pa.array(["a", "b", "a", None, "a", "a", "a"]).dictionary_encode(),
        nothing=pa.array([None] * 7, pa.null()),
        big_text=pa.array(["x", "", None, "y", "z", "z", "z"], pa.large_string()),
    ), as_center())
    assert raw.loc[0, "u64"] == "18446744073709551615" and raw.loc[0, "i64"] == "-9223372036854775808"
    assert [float(v) for v in raw["f64"]] == floats
    assert [decimal.Decimal(v) for v in raw.loc[:1, "dec"]] == [decimal.Decimal("61.5"), decimal.Decimal("-1e-30")]
    assert raw["flag"].tolist()[:3] == ["true", "false", ""]
    assert raw["cat"].tolist()[:4] == ["a", "b", "a", ""] and set(raw["nothing"]) == {""}
    assert raw["big_text"].tolist()[:3] == ["x", "", ""]


def test_inf_and_nan_in_a_parquet_float_column_are_not_silently_numbers(tmp_path):
    path = parquet(tmp_path, pid=["A", "B", "C"], months=pa.array([1.5, float("inf"), float("nan")]),
                   dead=pa.array([1, 0, 1], pa.int8()))
    _, accepted, quarantine, _ = ingest(path)
    assert accepted["pid"].tolist() == ["A"]
    assert quarantine["reason_code"].tolist() == ["not_a_number", "missing_required"]  # NaN: missing, as "nan"
    assert quarantine.loc[0, "reason"] == "months: 'inf' is not a number"


def test_a_control_character_in_a_parquet_string(tmp_path):
    path = parquet(tmp_path, pid=["P\x001", "P2"], months=[1.0, 2.0], dead=[1, 0])
    _, accepted, quarantine, _ = ingest(path)
    assert accepted["pid"].tolist() == ["P2"] and quarantine["reason_code"].tolist() == ["control_character"]


@pytest.mark.parametrize("column, kind", [(pa.array([[1, 2]]), "list"),
                                          (pa.array([dt.timedelta(days=3)], pa.duration("s")), "duration"),
                                          (pa.array([b"\xff"], pa.binary()), "binary")])
def test_a_column_without_text_form_stops_the_read_naming_it(tmp_path, column, kind):
    path = parquet(tmp_path, pid=["A"], visits=column)
    with pytest.raises(DataError, match=rf"c\.parquet: column 'visits' has type {kind}"):
        read_extract(path, as_center())


# ---------------------------------------------------------------- 7. encodings


def test_utf8_declared_latin1_is_read_as_declared_with_a_warning(tmp_path, caplog):
    path = write(tmp_path / "c.csv", f"{HEADER}\nJürgen,ä,1,1\n")
    center = {"read": {"encoding": "latin-1"}}
    with caplog.at_level(logging.WARNING, logger="pipeline.ingest"):
        raw, accepted, _, summary = ingest(path, center)
    assert accepted["pid"].tolist() == ["JÃ¼rgen"]  # as declared, but not silently:
    [warning] = summary["warnings"]
    assert "c.csv" in warning and "valid UTF-8" in warning and "set read.encoding: utf-8" in warning
    assert warning in caplog.text
    part = (pa.Table.from_pandas(accepted), pd.DataFrame(columns=["center", "source_row"]), summary)
    _, _, merged = merge_centers([part], "pid", "global")
    assert merged["centers"]["c"]["warnings"] == [warning]


def test_cp1252_bytes_declared_latin1_warn(tmp_path):
    path = write(tmp_path / "c.csv", f"{HEADER}\nP1,5 €,1,1\n", "cp1252")
    [warning] = read_extract(path, as_center({"read": {"encoding": "latin-1"}})).attrs["warnings"]
    assert "cp1252" in warning


def test_a_clean_file_has_no_warnings(tmp_path):
    _, _, _, summary = ingest(write(tmp_path / "c.csv", f"{HEADER}\nJürgen,ä,1,1\n"))
    assert summary["warnings"] == []


def test_latin1_declared_utf8_names_line_and_byte(tmp_path):
    path = write(tmp_path / "c.csv", f"{HEADER}\nP1,ok,1,1\nJürgen,x,2,0\nMüller,y,3,1\n", "latin-1")
    with pytest.raises(DataError, match=r"c\.csv: not valid UTF-8 text: line 3 holds byte 0xfc .*read\.encoding"):
        read_extract(path, as_center())


def test_a_utf8_file_with_a_pasted_latin1_line_quarantines_that_line(tmp_path):
    text = f"{HEADER}\nJürgen,ä,1,1\n".encode() + "Müller,x,2,0\n".encode("latin-1") + b"P3,y,3,1\n"
    raw, accepted, quarantine, _ = ingest(write(tmp_path / "c.csv", text))
    assert accepted["pid"].tolist() == ["Jürgen", "P3"]
    assert quarantine.loc[0, "reason_code"] == "encoding_error"
    assert quarantine.loc[0, "pid"] == "M\\xfcller" and "0xfc" in quarantine.loc[0, "reason"]


def test_an_undefined_cp1252_byte_stops_the_read_with_a_hint(tmp_path):
    path = write(tmp_path / "c.csv", f"{HEADER}\nÁrpád,x,1,1\n")  # Á is C3 81 in UTF-8; cp1252 lacks 0x81
    with pytest.raises(DataError, match=r"line 2 holds byte 0x81.*valid UTF-8: set read\.encoding: utf-8"):
        read_extract(path, as_center({"read": {"encoding": "cp1252"}}))


# ---------------------------------------------------------------- property: every physical line accounted for

CELL_TEXT = st.text(alphabet="abcXYZ019 .-é'", max_size=6)
CONTROLS = ["\x00", "\x01", "\x0b", "\x0c", "\x1b", "\x7f"]


@st.composite
def cells(draw, width, sep):
    """A clean record's cells; some hold the delimiter, a quote or a line break (then quoted)."""
    values = []
    for _ in range(width):
        text = draw(CELL_TEXT)
        extra = draw(st.sampled_from(["", "", "", sep, '"', "\n", "\r\n"]))
        if extra and text:
            cut = draw(st.integers(0, len(text)))
            text = text[:cut] + extra + text[cut:]
        values.append(text)
    breaks = [v for v in values if "\n" in v]
    if breaks and any(sep in v for v in breaks):  # a multi-line cell with the delimiter is refused by design
        values = [v.replace(sep, "") for v in values]
    return values


def encoded(values, sep, force_quotes):
    out = []
    for v, force in zip(values, force_quotes):
        needs = any(c in v for c in (sep, '"', "\n", "\r")) or v.strip() != v
        out.append('"' + v.replace('"', '""') + '"' if needs or force else v)
    return sep.join(out)


@st.composite
def units(draw, width, sep):
    """One source record as (kind, text, intended cells)."""
    kind = draw(st.sampled_from(["clean", "clean", "clean", "blank", "count", "stray", "control"]))
    if kind == "clean":
        values = draw(cells(width, sep))
        values[0] = "id" + values[0]  # never blank
        force = draw(st.lists(st.booleans(), min_size=width, max_size=width))
        return kind, encoded(values, sep, force), values
    plain = [draw(st.text(alphabet="abc019", min_size=1, max_size=4)) for _ in range(width)]
    if kind == "blank":
        return kind, draw(st.sampled_from(["", " ", sep * draw(st.integers(1, width + 2))])), None
    if kind == "count":
        n = draw(st.integers(1, width + 3).filter(lambda k: k != width))
        return kind, sep.join((plain * 3)[:n]), None
    j = draw(st.integers(0, width - 1))
    if kind == "stray":
        plain[j] = '"' + plain[j]
    else:
        plain[j] = plain[j][:1] + draw(st.sampled_from(CONTROLS)) + plain[j][1:]
    return kind, sep.join(plain), None


@st.composite
def extracts(draw):
    width = draw(st.integers(2, 5))
    sep = draw(st.sampled_from([",", ";", "\t", "|"]))
    records = draw(st.lists(units(width, sep), max_size=12))
    ends = draw(st.lists(st.sampled_from(["\n", "\r\n", "\r"]), min_size=len(records) + 1,
                         max_size=len(records) + 1))
    last_end = draw(st.booleans())
    bom = draw(st.booleans())
    return width, sep, records, ends, last_end, bom


PHYSICAL_LINE_END = re.compile(r"\r\n|\r|\n")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(extracts())
def test_every_physical_line_is_accounted_for_and_no_accepted_value_changes(tmp_path_factory, case):
    width, sep, records, ends, last_end, bom = case
    for i, (_, text, _) in enumerate(records):
        if not text and ends[i] == "\r":
            ends[i] = "\n"  # "\r" + "" + "\n" would be one CRLF: the empty line would not exist
    header = sep.join(f"c{i}" for i in range(width))
    texts = [header] + [text for _, text, _ in records]
    body = "".join(t + e for t, e in zip(texts, ends))
    if not last_end and records and records[-1][1]:
        body = body[:-len(ends[len(records)])]
    path = tmp_path_factory.mktemp("prop") / "x.csv"
    path.write_bytes((("\ufeff" if bom else "") + body).encode("utf-8"))
    content = body
    parts = PHYSICAL_LINE_END.split(body)
    n_lines = len(parts) - (parts[-1] == "")

    raw = read_extract(path, as_center({"read": {"sep": sep}}))

    # every physical line after the header belongs to exactly one record
    spans = sorted(zip(raw["source_row"], raw["source_row_end"]))
    covered = [line for first, last in spans for line in range(first, last + 1)]
    assert covered == list(range(2, n_lines + 1))

    # where each generated record starts and how many lines it takes
    starts, line = {}, 2
    for kind, text, values in records:
        starts[line] = (kind, len(PHYSICAL_LINE_END.findall(text)) + 1, values)
        line += starts[line][1]
    by_row = {row: (end, rec) for row, end, rec in
              zip(raw["source_row"], raw["source_row_end"], raw.drop(columns=["source_row", "source_row_end"])
                  .to_dict("records"))}
    names = [f"c{i}" for i in range(width)]
    for row, (end, record) in by_row.items():
        cells_read = [record[n] for n in names]
        blank = all(not c.strip() for c in cells_read)
        if record["read_problems"] is None and not blank:  # accepted by the reader: a clean record, unchanged
            assert row in starts and starts[row][0] == "clean", (row, cells_read, content)
            assert end == row + starts[row][1] - 1
            assert cells_read == starts[row][2]
    for row, (kind, n, values) in starts.items():
        if kind in ("stray", "count", "control"):
            assert by_row[row][1]["read_problems"], (kind, row, content)
        elif kind == "clean" and n == 1:  # a clean single-line record is read as itself, whatever surrounds it
            assert row in by_row and by_row[row][0] == row and by_row[row][1]["read_problems"] is None, (row, content)

    if width >= 3:  # through harmonize: the counts add up (harmonize asserts it) and rows keep their numbers
        variables = {"c0": {"type": "id"}, "c1": {"type": "numeric"}, "c2": {"type": "binary"}}
        accepted, quarantine, summary = harmonize_center(raw, "x", as_center({"read": {"sep": sep}}),
                                                         as_variables(variables),
                                                         as_outcome({"time": "c1", "event": "c2"}), "x.csv", "months")
        assert sorted([*accepted["source_row"], *quarantine["source_row"]]) == sorted(raw["source_row"])
