"""Every CSV the workflow writes is safe to open in a spreadsheet (OWASP CSV injection: no cell
begins with =, +, -, @, a tab or a carriage return unless it is a number) and reads back exactly
(pipeline.io.write_csv / read_result_csv)."""
from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from pipeline.config.settings import Variable
from pipeline.design.stages import published_matched
from pipeline.design.table_one import table_one
from pipeline.ingest.harmonize import harmonize_center, merge_centers
from pipeline.io import read_result_csv, write_csv, write_not_estimable
from pipeline.report.table1 import read_table1
from tests.conftest import REPO
from tests.ingest_settings import as_center, as_outcome, as_variables

DANGEROUS = ("=", "+", "-", "@", "\t", "\r")
PLAIN_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")


def written_cells(path: Path) -> list[str]:
    """Every cell of a CSV file as a spreadsheet sees it (the header included)."""
    with open(path, newline="", encoding="utf-8") as handle:
        return [cell for row in csv.reader(handle) for cell in row]


def formula_cells(path: Path) -> list[str]:
    """Cells a spreadsheet could run: those beginning with a dangerous character that are not numbers."""
    return [cell for cell in written_cells(path) if cell.startswith(DANGEROUS) and not PLAIN_NUMBER.fullmatch(cell)]


def read_text(path: Path, columns, numbers=()) -> pd.DataFrame:
    """A CSV's text ``columns`` exactly as written (empty text stays empty; an empty cell of a
    ``numbers`` column is missing)."""
    return read_result_csv(path, dtype=dict.fromkeys(columns, str), keep_default_na=False,
                           na_values={column: [""] for column in numbers})


# --- the rule, cell by cell --------------------------------------------------------------------

@pytest.mark.parametrize("cell, written", [
    ("=1+1", "'=1+1"), ("+cmd|' /C calc'!A0", "'+cmd|' /C calc'!A0"), ("-abc", "'-abc"), ("@SUM(A1)", "'@SUM(A1)"),
    ("\tx", "'\tx"), ("\rx", "'\rx"), ("-", "'-"), ("'quoted", "''quoted"), ("''", "'''"),
    ("-1.5", "-1.5"), ("+2e-3", "+2e-3"), ("-7", "-7"), ("abc", "abc"), ("a=b", "a=b"), (" =1", " =1"),
])
def test_a_cell_is_escaped_exactly_when_a_spreadsheet_could_run_it(tmp_path, cell, written):
    write_csv(pd.DataFrame({"text": [cell]}), tmp_path / "t.csv")
    assert written_cells(tmp_path / "t.csv") == ["text", written]
    assert read_text(tmp_path / "t.csv", ["text"])["text"].tolist() == [cell]


def test_numbers_stay_numbers_and_minus_infinity_is_escaped(tmp_path):
    frame = pd.DataFrame({"x": [-1.5, -1e-300, np.inf, -np.inf, np.nan], "n": [-3, 0, 1, 2, -2**53],
                          "flag": [True, False, True, False, True]})
    write_csv(frame, tmp_path / "n.csv")
    assert written_cells(tmp_path / "n.csv")[3:] == ["-1.5", "-3", "True", "-1e-300", "0", "False", "inf", "1",
                                                     "True", "'-inf", "2", "False", "", "-9007199254740992", "True"]
    back = read_result_csv(tmp_path / "n.csv")
    pd.testing.assert_frame_equal(back, frame)


def test_header_names_are_escaped_and_read_back(tmp_path):
    frame = pd.DataFrame({"=HYPERLINK(\"x\")": ["a"], "-1": ["b"], "'id": ["c"]})
    write_csv(frame, tmp_path / "h.csv")
    assert written_cells(tmp_path / "h.csv")[:3] == ["'=HYPERLINK(\"x\")", "-1", "''id"]
    assert list(read_result_csv(tmp_path / "h.csv").columns) == list(frame.columns)


def test_string_and_category_columns_and_empty_frames(tmp_path):
    frame = pd.DataFrame({"id": pd.array(["-x", "y", None], dtype="string"),
                          "level": pd.Categorical(["+", "-", "+"]), "n": pd.array([1, None, -3], dtype="Int64")})
    write_csv(frame, tmp_path / "s.csv")
    assert written_cells(tmp_path / "s.csv") == ["id", "level", "n", "'-x", "'+", "1", "y", "'-", "", "", "'+", "-3"]
    back = read_result_csv(tmp_path / "s.csv", dtype={"id": "string", "level": "category", "n": "Int64"})
    pd.testing.assert_frame_equal(back, frame)
    empty = pd.DataFrame({"center": pd.array([], dtype="string"), "=reason": pd.array([], dtype="string")})
    write_csv(empty, tmp_path / "empty.csv")
    assert written_cells(tmp_path / "empty.csv") == ["center", "'=reason"]
    assert list(read_result_csv(tmp_path / "empty.csv").columns) == ["center", "=reason"]


# --- any text round-trips, and nothing written can run ------------------------------------------

HOSTILE_TEXT = st.one_of(
    st.text(min_size=1),
    st.builds(lambda start, rest: start + rest, st.sampled_from([*DANGEROUS, "'", "''", '"', ",", "\n", "\r\n"]),
              st.text(alphabet=st.sampled_from("=+-@'\"\t\r\n,;1.eé€ 漢a"), max_size=8)),
    st.sampled_from(["-abc", "-1", "-1.5e3", "+3", "-inf", "-nan", "NA", "", "'", "-", "=", "@", "1_0", "-1_0"]),
)
NUMBER = st.one_of(st.floats(allow_nan=True), st.floats(max_value=-1e-300, allow_infinity=False))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.lists(st.tuples(HOSTILE_TEXT, HOSTILE_TEXT, NUMBER, st.integers(-10**15, 10**15)), min_size=1,
                     max_size=8),
       header=st.lists(st.text(alphabet=st.sampled_from("=+-@'\"\t\r\n,ab1 "), min_size=1, max_size=5),
                       min_size=2, max_size=2, unique=True))
def test_hostile_text_round_trips_and_no_written_cell_can_run(tmp_path, text, header):
    first, second = header
    assume(first.strip() and second.strip())   # pandas names a blank header cell "Unnamed: 0"
    frame = pd.DataFrame(text, columns=[first, second, "number", "count"])
    frame[second] = frame[second].astype("category")     # escaped through its categories
    path = tmp_path / "hostile.csv"
    write_csv(frame, path)
    assert formula_cells(path) == []
    back = read_text(path, [first, second], numbers=["number"])
    assert list(back.columns) == list(frame.columns)
    assert back[first].tolist() == frame[first].tolist() and back[second].tolist() == frame[second].tolist()
    np.testing.assert_array_equal(back["number"].to_numpy(float), frame["number"].to_numpy(float))
    assert back["count"].tolist() == frame["count"].tolist()


# --- through the writers the workflow uses -----------------------------------------------------

HOSTILE_CELLS = ["=cmd|' /C calc'!A0", "+1+1", "-abc", "@SUM(1)", "\t=1", "\r=1", "'=1", "-1.5", "x\ry", "a\nb"]


def test_only_pipeline_io_writes_csv_files():
    """One writer: every CSV the workflow writes goes through pipeline.io.write_csv (pipeline.csv_text
    formats it, or hands it to pandas); the synthetic demo extracts of pipeline/synth.py are inputs,
    written as a center would."""
    sources = [*REPO.glob("pipeline/**/*.py"), *REPO.glob("workflow/**/*.py"), *REPO.glob("workflow/**/*.smk")]
    writers = [p.relative_to(REPO).as_posix() for p in sources if ".to_csv(" in p.read_text()]
    assert sorted(writers) == ["pipeline/csv_text.py", "pipeline/io.py", "pipeline/synth.py"]


def test_quarantine_keeps_hostile_raw_cells_exactly(tmp_path):
    variables = as_variables({"pid": {"type": "id"}, "age": {"type": "numeric"}, "dead": {"type": "binary"},
                              "fu": {"type": "numeric"}})
    header = ["pid", "age", "dead", "fu", "=note"]
    rows = [*([f"P{i}", "oops", "1", "3", cell] for i, cell in enumerate(HOSTILE_CELLS)),
            ["=1+1", "-5", "0", "-2", "-"]]
    raw = pd.DataFrame(rows, columns=header, dtype=object).assign(source_row=range(2, len(rows) + 2))
    part = harmonize_center(raw, "c", as_center(), variables, as_outcome({"time": "fu", "event": "dead"}), "c.csv",
                            "months")
    _, quarantine, _ = merge_centers([(pa.Table.from_pandas(part[0]), *part[1:])], "pid", "global")
    assert len(quarantine) == len(rows)
    write_csv(quarantine, tmp_path / "quarantine.csv")
    assert formula_cells(tmp_path / "quarantine.csv") == []
    back = read_text(tmp_path / "quarantine.csv", quarantine.columns)
    pd.testing.assert_frame_equal(back, quarantine.astype(str))
    assert back["=note"].tolist() == [*HOSTILE_CELLS, "-"]


def test_matched_and_pairs_keep_hostile_ids_exactly(tmp_path):
    ids = ["=1+1", "-7", "'x", "@y"]
    matched = pd.DataFrame({"patient_id": ids, "treated": [True, False, True, False],
                            "subclass": pd.array([1, 1, 2, 2], dtype="Int64"), "weight": 1.0,
                            "ps": [0.5, 0.4, 0.3, 0.2], "distance": [-0.1, -0.4, -0.8, -1.4]})
    cohort = pd.DataFrame({"patient_id": ids, "center": ["-a", "b", "-a", "b"]})
    published = published_matched(matched, cohort)
    write_csv(published, tmp_path / "matched.csv")
    pairs = pd.DataFrame({"treated_id": ids[0::2], "control_id": ids[1::2], "slot": 1, "distance_diff": [0.3, 0.6]})
    write_csv(pairs, tmp_path / "pairs.csv")
    for name in ("matched.csv", "pairs.csv"):
        assert formula_cells(tmp_path / name) == [], name
    back = read_result_csv(tmp_path / "matched.csv")
    pd.testing.assert_frame_equal(back, published.astype({"subclass": "int64", "group": object}))
    pd.testing.assert_frame_equal(read_result_csv(tmp_path / "pairs.csv"), pairs)


def test_table1_with_hostile_levels_reads_back_as_written(tmp_path):
    variables = {"status": Variable.from_dict({"type": "category", "levels": ["+", "-", "=x"]})}
    data = pd.DataFrame({"status": ["+", "-", "=x", "+", "-", "=x"]})
    table = table_one(data, ["status"], variables, np.array([1, 0, 1, 0, 1, 0], bool), np.ones(6), min_cell=1)
    write_csv(table, tmp_path / "table1.csv")
    assert formula_cells(tmp_path / "table1.csv") == []
    back = read_table1(tmp_path / "table1.csv")
    assert back["level"].tolist() == table["level"].tolist()
    assert {"+", "-", "=x"} <= set(back["level"])


def test_a_not_estimable_table_reads_back(tmp_path):
    write_not_estimable([tmp_path / "balance.csv"], {"estimable": False, "reason": "=cmd: no", "stage": "x"})
    assert formula_cells(tmp_path / "balance.csv") == []
    assert read_result_csv(tmp_path / "balance.csv").to_dict("records") == [{"estimable": False, "reason": "=cmd: no"}]
