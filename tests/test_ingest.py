"""Readers: every cell back as the raw text the center wrote, rows numbered like a spreadsheet."""

import datetime as dt

import openpyxl
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.errors import DataError
from pipeline.ingest.extract import RESERVED_COLUMNS, read_extract, read_header
from tests.ingest_settings import as_center


def write_bytes(path, text, encoding):
    path.write_bytes(text.encode(encoding))
    return path


def test_semicolon_decimal_comma_latin1_keeps_raw_text(tmp_path):
    text = "Pat-Nr;Größe;Geschlecht;Datum\nA1;61,5;männlich;01.02.2003\nA2;n/a;weiblich;NA\n"
    path = write_bytes(tmp_path / "center.csv", text, "latin-1")
    raw = read_extract(path, as_center({"read": {"sep": ";", "decimal": ",", "encoding": "latin-1"}}))
    assert list(raw.columns) == ["Pat-Nr", "Größe", "Geschlecht", "Datum", *RESERVED_COLUMNS]
    assert raw["Größe"].tolist() == ["61,5", "n/a"]
    assert raw["Geschlecht"].tolist() == ["männlich", "weiblich"]
    assert raw["Datum"].tolist() == ["01.02.2003", "NA"]
    assert raw["source_row"].tolist() == [2, 3]


def test_utf8_bom_is_not_part_of_the_first_column_name(tmp_path):
    path = write_bytes(tmp_path / "bom.csv", "\ufeffpid,age\nP1,70\n", "utf-8")
    raw = read_extract(path, as_center())
    assert list(raw.columns) == ["pid", "age", *RESERVED_COLUMNS]
    assert raw.loc[0, "pid"] == "P1"


def test_cp1252_characters(tmp_path):
    path = write_bytes(tmp_path / "w.csv", "pid,note\nP1,“quoted” – 5 €\n", "cp1252")
    raw = read_extract(path, as_center({"read": {"encoding": "cp1252"}}))
    assert raw.loc[0, "note"] == "“quoted” – 5 €"


def test_latin1_file_read_as_utf8_names_file_and_encoding(tmp_path):
    path = write_bytes(tmp_path / "latin.csv", "pid,name\nP1,Jürgen\n", "latin-1")
    with pytest.raises(DataError, match=r"latin\.csv.*read\.encoding"):
        read_extract(path, as_center())


def test_records_are_numbered_by_their_first_physical_line(tmp_path):
    text = 'pid,note\nP1,"multi\nline note"\n\nP3,plain\n'
    path = write_bytes(tmp_path / "q.csv", text, "utf-8")
    raw = read_extract(path, as_center())
    # record 1 spans lines 2-3; the blank line 4 is kept (all blank, harmonize quarantines it)
    assert raw["source_row"].tolist() == [2, 4, 5]
    assert raw["source_row_end"].tolist() == [3, 4, 5]
    assert raw["note"].tolist() == ["multi\nline note", "", "plain"]
    assert raw["pid"].tolist() == ["P1", "", "P3"]
    assert raw["read_problems"].isna().all()


def test_custom_quotechar(tmp_path):
    path = write_bytes(tmp_path / "q.csv", "pid;note\nP1;'a;b'\n", "utf-8")
    raw = read_extract(path, as_center({"read": {"sep": ";", "quotechar": "'"}}))
    assert raw.loc[0, "note"] == "a;b"


def test_tsv_by_suffix_and_format_key(tmp_path):
    tsv = write_bytes(tmp_path / "c.tsv", "pid\tage\nP1\t7\n", "utf-8")
    assert read_extract(tsv, as_center())["age"].tolist() == ["7"]
    txt = write_bytes(tmp_path / "c.dat", "pid\tage\nP1\t8\n", "utf-8")
    assert read_extract(txt, as_center({"format": "tsv"}))["age"].tolist() == ["8"]


def test_unknown_suffix_without_format_is_a_data_error(tmp_path):
    path = write_bytes(tmp_path / "c.dat", "pid\nP1\n", "utf-8")
    with pytest.raises(DataError, match=r"c\.dat.*format"):
        read_extract(path, as_center())


def test_missing_file_names_the_file(tmp_path):
    with pytest.raises(DataError, match=r"nowhere\.csv.*not found"):
        read_extract(tmp_path / "nowhere.csv", as_center())


def test_a_directory_is_named_as_such(tmp_path):
    (tmp_path / "extract.csv").mkdir()
    for path in (tmp_path / "extract.csv", tmp_path):
        with pytest.raises(DataError, match=r"is a directory, not a file"):
            read_extract(path, as_center())


@pytest.mark.parametrize("text, problem", [
    ("", "empty"), ("\n\n", "empty"), ("\npid,age\nP1,7\n", "first line.*is blank"),
    ('"pid,age\nP1,7\n', "header.*quote"), ("pid,a\x00ge\nP1,7\n", "header.*control character"),
])
def test_file_level_problems_stop_the_read_naming_the_file(tmp_path, text, problem):
    path = write_bytes(tmp_path / "bad.csv", text, "utf-8")
    with pytest.raises(DataError, match=rf"bad\.csv: .*{problem}"):
        read_extract(path, as_center())


def test_duplicate_header_names_are_refused(tmp_path):
    path = write_bytes(tmp_path / "dup.csv", "pid,age,age\nP1,7,8\n", "utf-8")
    with pytest.raises(DataError, match=r"dup\.csv.*'age' appears twice"):
        read_extract(path, as_center())


def test_header_only_read_ignores_a_broken_body(tmp_path):
    path = write_bytes(tmp_path / "c.csv", " pid , age\nP1,1,2,3,4\n", "utf-8")
    assert read_header(path, as_center()) == ["pid", "age"]


def make_xlsx(path, rows, sheet="data"):
    book = openpyxl.Workbook()
    book.active.title = "notes"
    sheet_ = book.create_sheet(sheet)
    for row in rows:
        sheet_.append(row)
    book.save(path)
    return path


def test_xlsx_typed_cells_become_csv_like_text(tmp_path):
    rows = [["pid", "age", "n", "date", "when", "text_date", "flag"],
            ["P1", 61.5, 3, dt.datetime(2003, 2, 1), dt.datetime(2003, 2, 1, 10, 30), "01.02.2003", True],
            ["P2", None, 4.0, None, None, "", False]]
    path = make_xlsx(tmp_path / "c.xlsx", rows)
    raw = read_extract(path, as_center({"read": {"sheet": "data", "decimal": ","}}))
    assert raw["age"].tolist() == ["61,5", ""]
    assert raw["n"].tolist() == ["3", "4"]
    assert raw["date"].tolist() == ["2003-02-01", ""]
    assert raw["when"].tolist() == ["2003-02-01 10:30:00", ""]
    assert raw["text_date"].tolist() == ["01.02.2003", ""]
    assert raw["flag"].tolist() == ["true", "false"]
    assert raw["source_row"].tolist() == [2, 3]
    assert read_header(path, as_center({"read": {"sheet": 1}})) == rows[0]


def test_xlsx_missing_sheet_names_the_sheets(tmp_path):
    path = make_xlsx(tmp_path / "c.xlsx", [["pid"], ["P1"]])
    with pytest.raises(DataError, match=r"c\.xlsx.*'other'.*notes, data"):
        read_extract(path, as_center({"read": {"sheet": "other"}}))


def test_corrupt_xlsx_is_a_data_error(tmp_path):
    path = write_bytes(tmp_path / "c.xlsx", "not a zip", "utf-8")
    with pytest.raises(DataError, match=r"c\.xlsx"):
        read_extract(path, as_center())


def test_parquet_values_become_faithful_strings(tmp_path):
    table = pa.table({
        "pid": pa.array(["P1", None, "P3"]),
        "n": pa.array([1, None, 3], pa.int64()),
        "age": pa.array([61.5, 70.0, None]),
        "day": pa.array([dt.datetime(2003, 2, 1), None, dt.datetime(1999, 12, 31)], pa.timestamp("ns")),
        "stamp": pa.array([dt.datetime(2003, 2, 1, 8, 5, 1), None, None], pa.timestamp("us")),
        "date": pa.array([dt.date(2001, 1, 2), None, None], pa.date32()),
        "flag": pa.array([True, False, None]),
        "cat": pa.array(["a", "b", "a"]).dictionary_encode(),
    })
    path = tmp_path / "c.parquet"
    pq.write_table(table, path)
    raw = read_extract(path, as_center())
    assert raw["pid"].tolist() == ["P1", "", "P3"]
    assert raw["n"].tolist() == ["1", "", "3"]
    assert raw["day"].tolist() == ["2003-02-01", "", "1999-12-31"]
    assert raw["stamp"].tolist() == ["2003-02-01 08:05:01", "", ""]
    assert raw["date"].tolist() == ["2001-01-02", "", ""]
    assert raw["flag"].tolist() == ["true", "false", ""]
    assert raw["cat"].tolist() == ["a", "b", "a"]
    assert pd.to_numeric(raw["age"].replace("", None)).tolist()[:2] == [61.5, 70.0]
    assert raw["source_row"].tolist() == [2, 3, 4]
    assert read_header(path, as_center()) == list(table.column_names)


def test_parquet_floats_use_the_configured_decimal_mark(tmp_path):
    path = tmp_path / "c.parquet"
    pq.write_table(pa.table({"age": [61.5]}), path)
    assert read_extract(path, as_center({"read": {"decimal": ","}}))["age"].tolist() == ["61,5"]


def test_corrupt_parquet_is_a_data_error(tmp_path):
    path = write_bytes(tmp_path / "c.parquet", "garbage", "utf-8")
    with pytest.raises(DataError, match=r"c\.parquet"):
        read_extract(path, as_center())
