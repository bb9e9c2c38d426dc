"""The Arrow CSV formatter writes exactly the bytes pandas' to_csv writes, for every column kind it
formats, and hands every other frame to pandas."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline import csv_text
from pipeline.csv_text import write_minimal_csv

LAYOUT_EDGES = [0.0, -0.0, 1.0, -3.0, 100.0, 0.1, 0.3, 1e-4, 9.999999999999999e-05, 1.0001e-4, 1e-5, 2.5e-7,
                1e-7, 1e15, 999999999999999.9, 9999999999999998.0, 1e16, 1.2345678901234567e16, 1e21, 1e22,
                5e-324, 2.2250738585072014e-308, 1.7976931348623157e308, 123456.0, 0.000123, np.nan, np.inf,
                -np.inf]


def pandas_bytes(frame: pd.DataFrame, path) -> bytes:
    frame.to_csv(path, index=False, lineterminator="\n")
    return path.read_bytes()


def arrow_bytes(frame: pd.DataFrame, path) -> bytes:
    """write_minimal_csv's bytes, with pandas' writer unavailable (so the frame was formatted here)."""
    def not_pandas(*args, **kwargs):
        raise AssertionError("the frame went to pandas")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(pd.DataFrame, "to_csv", not_pandas)
        write_minimal_csv(frame, path)
    return path.read_bytes()


def assert_same_as_pandas(frame: pd.DataFrame, tmp_path) -> None:
    assert arrow_bytes(frame, tmp_path / "arrow.csv") == pandas_bytes(frame, tmp_path / "pandas.csv")


def test_floats_at_every_layout_edge(tmp_path):
    values = np.array(LAYOUT_EDGES)
    frame = pd.DataFrame({"x": values, "minus_x": -values, "id": [f"p{i}" for i in range(len(values))]})
    assert_same_as_pandas(frame, tmp_path)


@pytest.mark.parametrize("seed", [1, 2])
def test_random_floats_of_every_magnitude_and_bit_pattern(tmp_path, seed):
    rng = np.random.default_rng(seed)
    n = 50_000
    bit_patterns = rng.integers(0, 2**64, n, dtype=np.uint64).view(np.float64)
    frame = pd.DataFrame({
        "bits": bit_patterns,
        "scaled": rng.standard_normal(n) * 10.0 ** rng.integers(-20, 20, n),
        "whole": np.round(rng.standard_normal(n) * 10.0 ** rng.integers(0, 18, n)),
        "probability": rng.random(n),
    })
    assert_same_as_pandas(frame, tmp_path)


def test_every_formatted_kind_with_missing_values(tmp_path):
    frame = pd.DataFrame({
        "int": np.array([1, -2, 3, 2**62], dtype=np.int64),
        "uint": np.array([0, 1, 2, 2**64 - 1], dtype=np.uint64),
        "nullable_int": pd.array([1, None, -7, 0], dtype="Int64"),
        "bool": [True, False, True, False],
        "nullable_bool": pd.array([True, None, False, None], dtype="boolean"),
        "object_text": ["a,b", None, 'say "hi"', np.nan],
        "python_string": pd.array(["line\nbreak", None, "", "plain"], dtype="string[python]"),
        "arrow_string": pd.array(["é", "ü,", None, '"'], dtype="string[pyarrow]"),
        "category": pd.Categorical(["x", None, "y,z", "x"]),
        "float": [np.nan, 1.0, -0.0, 1e-5],
    })
    assert_same_as_pandas(frame, tmp_path)


def test_header_names_that_need_quotes(tmp_path):
    frame = pd.DataFrame({"a,b": [1.5, 2.0], 'say "x"': ["u", "v"], "line\nname": [1, 2]})
    assert_same_as_pandas(frame, tmp_path)


def test_rows_are_written_slice_by_slice(tmp_path, monkeypatch):
    monkeypatch.setattr(csv_text, "SLICE_ROWS", 3)
    frame = pd.DataFrame({"id": pd.array([f"p{i}" for i in range(10)], dtype="string[pyarrow]"),
                          "x": np.arange(10) / 7})
    assert_same_as_pandas(frame, tmp_path)


@pytest.mark.parametrize("frame", [
    pd.DataFrame({"only": ["", None, "a"]}),                                  # a lone empty cell is quoted
    pd.DataFrame({"a": pd.Series([], dtype=float), "b": pd.Series([], dtype=object)}),
    pd.DataFrame({"date": pd.to_datetime(["2020-01-01", None]), "x": [1.0, 2.0]}),
    pd.DataFrame({"mixed": [1, "a"], "x": [1.0, 2.0]}),
    pd.DataFrame({"small": np.array([0.1, 1e-5], dtype=np.float32), "x": [1.0, 2.0]}),
    pd.DataFrame({"codes": pd.Categorical([1, 2]), "x": [1.0, 2.0]}),
    pd.DataFrame({"nullable": pd.array([0.5, None], dtype="Float64"), "x": [1.0, 2.0]}),
], ids=["one column", "empty", "dates", "mixed objects", "float32", "numeric categories", "nullable floats"])
def test_frames_it_does_not_format_are_written_by_pandas(tmp_path, frame):
    write_minimal_csv(frame, tmp_path / "written.csv")
    assert (tmp_path / "written.csv").read_bytes() == pandas_bytes(frame, tmp_path / "pandas.csv")


TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",), exclude_characters="\r"), max_size=8)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(st.tuples(st.none() | TEXT, st.floats(allow_nan=True, allow_infinity=True),
                               st.none() | st.integers(-2**63, 2**63 - 1), st.none() | st.booleans()),
                     min_size=1, max_size=20))
def test_arbitrary_rows(tmp_path, rows):
    text, floats, ints, bools = zip(*rows)
    frame = pd.DataFrame({"text": pd.Series(text, dtype=object), "float": np.array(floats, dtype=np.float64),
                          "int": pd.array(ints, dtype="Int64"), "bool": pd.array(bools, dtype="boolean")})
    assert_same_as_pandas(frame, tmp_path)
