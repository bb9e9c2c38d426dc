"""Harmonization: typing, codes, row validation and quarantine, one crafted defect at a time."""

import datetime as dt
import logging

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.errors import ConfigError
from pipeline.ingest.harmonize import count_missing, harmonize_center, merge_centers
from pipeline.ingest.extract import read_extract
from tests.ingest_settings import as_center, as_outcome, as_variables

TODAY = dt.date(2026, 1, 1)
VARIABLES = {
    "patient_id": {"type": "id"},
    "treatment": {"type": "category", "levels": ["resection", "iat"]},
    "treatment_date": {"type": "date"},
    "age": {"type": "numeric", "min": 18, "max": 100},
    "sex": {"type": "category", "levels": ["female", "male"]},
    "ecog": {"type": "integer", "min": 0, "max": 4},
    "functional": {"type": "binary"},
    "last_followup_date": {"type": "date"},
    "death": {"type": "binary"},
    "death_date": {"type": "date"},
}
OUTCOME = {"time_zero": "treatment_date", "end": "last_followup_date", "event": "death", "event_date": "death_date"}
CENTER = {
    "read": {"sep": ";", "decimal": ",", "date_format": "%d.%m.%Y"},
    "columns": {"pid": "patient_id", "tx": "treatment", "op": "treatment_date", "alter": "age",
                "fu": "last_followup_date", "tod": "death", "tod_datum": "death_date"},
    "codes": {"treatment": {"RES": "resection", "TACE": "iat", " tare ": "iat"},
              "sex": {"m": "male", "w": "female"}},
}
HEADER = ["pid", "tx", "op", "alter", "sex", "ecog", "functional", "fu", "tod", "tod_datum", "comment"]
GOOD_ROWS = [
    ["P1", "RES", "01.02.2003", "61,5", "m", "1", "ja", "01.02.2008", "0", "", "first"],
    ["P2", "TACE", "15.06.2004", "70", "W", "0", "0", "20.07.2006", "1", "20.07.2006", ""],
    ["P3", "Tare", "2005-03-01", "55", "female", "", "n/a", "01.03.2009", "0", "", "iso date"],
    ["P4", "resection", "01.01.1999", "80,25", "MALE", "4", "yes", "01.01.2001", "1", "", "dead, date unknown"],
]


def raw_frame(rows, header=HEADER):
    frame = pd.DataFrame([list(r) for r in rows], columns=header, dtype=object)
    frame["source_row"] = np.arange(2, len(frame) + 2)
    return frame


def harmonize_raw(raw, center=CENTER, variables=VARIABLES, outcome=OUTCOME, center_id="c1", source_file="c1.csv",
                  time_unit="months"):
    """harmonize_center on the config blocks written here (as typed settings with the schema's defaults)."""
    return harmonize_center(raw, center_id, as_center(center), as_variables(variables), as_outcome(outcome),
                            source_file, time_unit, today=TODAY)


def harmonize(rows, center=CENTER, variables=VARIABLES, outcome=OUTCOME, header=HEADER):
    return harmonize_raw(raw_frame(rows, header), center, variables, outcome)


def with_cell(column, value, row=0):
    rows = [list(r) for r in GOOD_ROWS]
    rows[row][HEADER.index(column)] = value
    return rows


def test_valid_extract_is_accepted_with_dataflow_dtypes():
    accepted, quarantine, summary = harmonize(GOOD_ROWS)
    assert quarantine.empty and summary["quarantined"] == 0 and summary["accepted"] == 4
    assert list(accepted.columns) == ["center", "source_row", *VARIABLES, "time", "event"]
    expected = {"center": "string", "source_row": "int64", "patient_id": "string", "treatment": "string",
                "treatment_date": "datetime64[ns]", "age": "float64", "sex": "string", "ecog": "Int64",
                "functional": "Int8", "death": "Int8", "time": "float64", "event": "Int8"}
    assert {c: str(accepted[c].dtype) for c in expected} == expected
    assert accepted["treatment"].tolist() == ["resection", "iat", "iat", "resection"]
    assert accepted["sex"].tolist() == ["male", "female", "female", "male"]
    assert accepted["age"].tolist() == [61.5, 70.0, 55.0, 80.25]
    assert accepted["treatment_date"].tolist() == [pd.Timestamp(d) for d in
                                                   ("2003-02-01", "2004-06-15", "2005-03-01", "1999-01-01")]
    assert accepted["functional"].tolist() == [1, 0, pd.NA, 1]
    assert accepted["ecog"].tolist() == [1, 0, pd.NA, 4]
    assert accepted["source_row"].tolist() == [2, 3, 4, 5]
    assert summary["missing"]["functional"] == 1 and summary["missing"]["death_date"] == 3
    # the harmonized outcome: follow-up from the dates (1826, 765, 1461 and 731 days) in months
    assert accepted["time"].tolist() == [days / 30.4375 for days in (1826, 765, 1461, 731)]
    assert accepted["event"].tolist() == accepted["death"].tolist() == [0, 1, 0, 1]
    assert "time" not in summary["missing"] and "event" not in summary["missing"]


DEFECTS = [  # (column, bad value, reason code, text the reason must contain)
    ("alter", "sixty", "not_a_number", "age (column 'alter'): 'sixty' is not a number"),
    ("alter", "61.5", "not_a_number", "'61.5' is not a number (decimal mark ',')"),
    ("alter", "150", "out_of_range", "'150' is above the maximum 100"),
    ("alter", "17,9", "out_of_range", "'17,9' is below the minimum 18"),
    ("ecog", "1,5", "not_an_integer", "ecog: '1,5' is not a whole number"),
    ("ecog", "5", "out_of_range", "ecog: '5' is above the maximum 4"),
    ("tx", "bland", "unknown_code", "treatment (column 'tx'): 'bland' is not a known code"),
    ("sex", "x", "unknown_code", "sex: 'x' is not a known code"),
    ("functional", "maybe", "unknown_code", "functional: 'maybe' is not a yes/no value"),
    ("op", "31.02.2003", "not_a_date", "treatment_date (column 'op'): '31.02.2003' is not a date"),
    ("op", "2003/02/01", "not_a_date", "'2003/02/01' is not a date (format %d.%m.%Y or ISO YYYY-MM-DD)"),
    ("op", "01.01.1890", "date_before_1900", "'01.01.1890' is before 1900-01-01"),
    ("fu", "01.01.2030", "date_in_future", "'01.01.2030' is after today (2026-01-01)"),
    ("op", "n/a", "missing_required", "treatment_date (column 'op'): required value is missing ('n/a')"),
    ("pid", "  ", "missing_required", "patient_id (column 'pid'): required value is missing"),
    ("tod", "", "missing_required", "death (column 'tod'): required value is missing"),
    ("fu", "01.01.2003", "followup_before_index",
     "last_followup_date (column 'fu') '01.01.2003' is before treatment_date (column 'op') '01.02.2003'"),
    ("tod_datum", "01.02.2008", "event_date_without_event",
     "death_date (column 'tod_datum') '01.02.2008' is given although death (column 'tod') '0'"),
]


@pytest.mark.parametrize("column, value, code, text", DEFECTS, ids=[f"{d[2]}-{d[1]}" for d in DEFECTS])
def test_each_defect_class_quarantines_the_row_with_its_reason(column, value, code, text):
    accepted, quarantine, summary = harmonize(with_cell(column, value))
    assert quarantine["source_row"].tolist() == [2]
    assert quarantine.loc[0, "reason_code"] == code
    assert text in quarantine.loc[0, "reason"]
    assert quarantine.loc[0, column] == value  # the raw cell, untouched
    assert accepted["source_row"].tolist() == [3, 4, 5]
    assert summary["reasons"] == {code: 1}
    assert summary["rows_read"] == summary["accepted"] + summary["quarantined"] == 4


def test_death_date_must_equal_end_of_followup_when_dead():
    accepted, quarantine, _ = harmonize(with_cell("tod_datum", "19.07.2006", row=1))
    assert quarantine.loc[0, "reason_code"] == "event_date_mismatch"
    assert "death_date (column 'tod_datum') '19.07.2006' differs from last_followup_date (column 'fu')" \
        in quarantine.loc[0, "reason"]


def test_bad_optional_value_is_never_silently_missing():
    _, quarantine, _ = harmonize(with_cell("ecog", "two"))
    assert quarantine.loc[0, "reason_code"] == "not_an_integer"
    accepted, quarantine, _ = harmonize(with_cell("ecog", " NA "))
    assert quarantine.empty and pd.isna(accepted.loc[0, "ecog"])


def test_configured_na_values_add_to_the_default_tokens():
    center = {**CENTER, "read": {**CENTER["read"], "na_values": ["k.A.", "-9"]}}
    for token in ("-9", " K.a. ", "NA", ""):
        accepted, quarantine, _ = harmonize(with_cell("ecog", token), center=center)
        assert quarantine.empty and pd.isna(accepted.loc[0, "ecog"])


def test_without_default_na_tokens_only_the_configured_ones_are_missing():
    center = {**CENTER, "read": {**CENTER["read"], "keep_default_na": False, "na_values": ["", "n/a", "-9"]}}
    accepted, quarantine, _ = harmonize(with_cell("ecog", "-9"), center=center)
    assert quarantine.empty and pd.isna(accepted.loc[0, "ecog"])
    _, quarantine, _ = harmonize(with_cell("ecog", "NA"), center=center)
    assert quarantine.loc[0, "reason_code"] == "not_an_integer"


def test_all_problems_of_a_row_are_listed_in_order():
    rows = with_cell("alter", "sixty")
    rows[0][HEADER.index("tx")] = "???"
    rows[0][HEADER.index("fu")] = "01.01.2000"
    _, quarantine, summary = harmonize(rows)
    assert quarantine.loc[0, "reason_code"] == "unknown_code;not_a_number;followup_before_index"
    assert len(quarantine.loc[0, "reason"].split("; ")) == 3
    assert summary["reasons"] == {"followup_before_index": 1, "not_a_number": 1, "unknown_code": 1}


def test_duplicate_ids_within_a_center_quarantine_every_copy():
    rows = [*GOOD_ROWS, ["P2", "RES", "01.02.2003", "60", "m", "1", "1", "01.02.2008", "0", "", ""]]
    accepted, quarantine, summary = harmonize(rows)
    assert quarantine["source_row"].tolist() == [3, 6]
    assert set(quarantine["reason_code"]) == {"duplicate_id"}
    assert "'P2' appears 2 times in this extract (rows 3, 6)" in quarantine.loc[0, "reason"]
    assert accepted["patient_id"].tolist() == ["P1", "P3", "P4"]
    assert summary["reasons"] == {"duplicate_id": 2}


def test_ids_differing_only_by_whitespace_are_duplicates_and_missing_ids_are_not():
    rows = valid_rows(5)
    rows[1][0], rows[3][0] = " P0 ", "NA"
    rows[4][0] = "n/a"
    _, quarantine, _ = harmonize(rows)
    assert quarantine["reason_code"].tolist() == ["duplicate_id", "duplicate_id", "missing_required",
                                                  "missing_required"]
    assert quarantine["source_row"].tolist() == [2, 3, 5, 6]
    rows[1][0] = "P1"  # no id needs trimming now: the fast path
    _, quarantine, _ = harmonize(rows)
    assert quarantine["reason_code"].tolist() == ["missing_required", "missing_required"]


def test_many_copies_of_one_id_list_the_first_five_rows():
    rows = valid_rows(8)
    for row in rows:
        row[0] = "SAME"
    _, quarantine, summary = harmonize(rows)
    assert summary["quarantined"] == 8
    assert quarantine.loc[7, "reason"] == ("patient_id (column 'pid'): 'SAME' appears 8 times in this extract "
                                           "(rows 2, 3, 4, 5, 6, ...)")


def test_blank_row_is_quarantined_once_as_empty_row():
    rows = [GOOD_ROWS[0], [" "] * len(HEADER), GOOD_ROWS[1]]
    _, quarantine, summary = harmonize(rows)
    assert quarantine["source_row"].tolist() == [3]
    assert quarantine.loc[0, "reason_code"] == "empty_row"
    assert summary == {**summary, "rows_read": 3, "accepted": 2, "quarantined": 1, "reasons": {"empty_row": 1}}


def test_per_column_date_formats_and_yaml_boolean_codes():
    center = {**CENTER, "read": {"decimal": ",", "date_formats": {"treatment_date": "%d.%m.%Y",
                                                                   "last_followup_date": "%m/%d/%Y"}},
              "codes": {**CENTER["codes"], "functional": {True: 1, False: 0, "ja": 1}}}
    rows = [list(r) for r in GOOD_ROWS[:1]]
    rows[0][HEADER.index("fu")] = "02/01/2008"
    rows[0][HEADER.index("functional")] = "Yes"
    accepted, quarantine, _ = harmonize(rows, center=center)
    assert quarantine.empty
    assert accepted.loc[0, "last_followup_date"] == pd.Timestamp("2008-02-01")
    assert accepted.loc[0, "functional"] == 1


def test_numeric_code_targets_with_decimal_comma():
    center = {**CENTER, "codes": {**CENTER["codes"], "age": {"about sixty": 60.5}}}
    accepted, quarantine, _ = harmonize(with_cell("alter", "About Sixty"), center=center)
    assert quarantine.empty and accepted.loc[0, "age"] == 60.5


def test_code_mapped_to_null_means_missing():
    center = {**CENTER, "codes": {**CENTER["codes"], "sex": {"m": "male", "w": "female", "u": None}}}
    accepted, quarantine, _ = harmonize(with_cell("sex", "U"), center=center)
    assert quarantine.empty and pd.isna(accepted.loc[0, "sex"])


def test_scale_converts_units_before_the_range_check():
    center = {**CENTER, "scale": {"age": 1 / 12}}
    rows = [list(r) for r in GOOD_ROWS]
    for row, months in zip(rows, ["738", "840", "660", "1300"]):
        row[HEADER.index("alter")] = months
    accepted, quarantine, _ = harmonize(rows, center=center)
    assert accepted["age"].tolist() == pytest.approx([61.5, 70, 55])
    assert quarantine["source_row"].tolist() == [5]
    assert "'1300' is above the maximum 100 after scaling by" in quarantine.loc[0, "reason"]


def test_ready_time_outcome_rejects_negative_follow_up_and_keeps_zero():
    variables = {"patient_id": {"type": "id"}, "os_months": {"type": "numeric"}, "death": {"type": "binary"}}
    outcome = {"time": "os_months", "event": "death"}
    rows = [["A", "12,5", "1"], ["B", "0", "1"], ["C", "-3", "1"], ["D", "", "0"]]
    accepted, quarantine, _ = harmonize(rows, center={"read": {"decimal": ","}}, variables=variables,
                                        outcome=outcome, header=["patient_id", "os_months", "death"])
    assert accepted["patient_id"].tolist() == ["A", "B"]
    assert accepted["os_months"].tolist() == [12.5, 0.0]
    assert quarantine["reason_code"].tolist() == ["negative_followup", "missing_required"]


# --- a center sending its own outcome form (registry.centers.<id>.outcome)

DAYS_VARIABLES = {**VARIABLES, "fu_days": {"type": "integer"}}
DAYS_HEADER = ["pid", "tx", "fu_days", "tod"]
DAYS_CENTER = {"columns": {"pid": "patient_id", "tx": "treatment", "tod": "death"},
               "codes": {"treatment": {"RES": "resection", "TACE": "iat"}},
               "outcome": {"time": "fu_days", "event": "death", "time_unit": "days"}}


def test_a_center_sending_days_is_harmonized_to_the_studys_time_unit():
    rows = [["D1", "RES", "1826", "0"], ["D2", "TACE", "765", "1"], ["D3", "TACE", "0", "1"],
            ["D4", "RES", "-2", "0"], ["D5", "RES", "", "1"]]
    accepted, quarantine, summary = harmonize(rows, center=DAYS_CENTER, variables=DAYS_VARIABLES, header=DAYS_HEADER)
    # the dates the study's outcome names are not required of this center; its days are
    assert accepted["patient_id"].tolist() == ["D1", "D2", "D3"]
    assert accepted["treatment_date"].isna().all()
    assert accepted["time"].tolist() == [1826 / 30.4375, 765 / 30.4375, 0.0]   # zero follow-up is kept
    assert accepted["event"].tolist() == [0, 1, 1]
    assert quarantine["reason_code"].tolist() == ["negative_followup", "missing_required"]
    assert "fu_days: follow-up time '-2' is negative" in quarantine.loc[0, "reason"]
    assert summary["rows_read"] == 5


def test_the_same_follow_up_sent_as_dates_or_as_days_gets_the_same_time():
    as_dates = harmonize(GOOD_ROWS)[0]   # 1826, 765, 1461 and 731 days
    days = [["P1", "RES", "1826", "0"], ["P2", "TACE", "765", "1"], ["P3", "TACE", "1461", "0"],
            ["P4", "RES", "731", "1"]]
    as_days = harmonize(days, center=DAYS_CENTER, variables=DAYS_VARIABLES, header=DAYS_HEADER)[0]
    assert as_days["time"].tolist() == as_dates["time"].tolist()        # bit for bit
    assert as_days["event"].tolist() == as_dates["event"].tolist()


@pytest.mark.parametrize("given_in, study_unit, value, expected", [
    ("weeks", "months", "10", 70 / 30.4375),
    ("months", "days", "2", 2 * 30.4375),
    ("years", "years", "0.3", 0.3),          # in the study's unit: the value itself, not via days
    (None, "years", "0.3", 0.3),             # no time_unit: the study's
])
def test_a_ready_time_is_converted_from_the_centers_unit(given_in, study_unit, value, expected):
    variables = {"patient_id": {"type": "id"}, "fu": {"type": "numeric"}, "dead": {"type": "binary"}}
    outcome = {"time": "fu", "event": "dead"} | ({"time_unit": given_in} if given_in else {})
    raw = raw_frame([["A", value, "0"]], header=["patient_id", "fu", "dead"])
    study_outcome = {"time": "fu", "event": "dead"}
    accepted = harmonize_raw(raw, {"outcome": outcome}, variables, study_outcome, time_unit=study_unit)[0]
    assert accepted["time"].tolist() == [expected] and accepted["fu"].tolist() == [float(value)]


def test_a_center_sending_dates_keeps_the_event_date_checks_in_a_study_of_ready_times():
    variables = {**VARIABLES, "os": {"type": "numeric"}}
    center = {**CENTER, "outcome": {"time_zero": "treatment_date", "end": "last_followup_date", "event": "death",
                                    "event_date": "death_date"}}
    rows = [list(r) for r in GOOD_ROWS]
    rows[1][HEADER.index("tod_datum")] = "21.07.2006"   # death after the end of follow-up
    accepted, quarantine, _ = harmonize(rows, center=center, variables=variables,
                                        outcome={"time": "os", "event": "death"})
    assert quarantine["reason_code"].tolist() == ["event_date_mismatch"]
    assert accepted["time"].tolist() == [1826 / 30.4375, 1461 / 30.4375, 731 / 30.4375]


def test_death_on_the_day_of_treatment_is_accepted():
    """Operative mortality is data: dropping it would bias surgery against a non-surgical arm."""
    rows = [list(r) for r in GOOD_ROWS]
    rows[0][HEADER.index("fu")] = rows[0][HEADER.index("op")]
    rows[0][HEADER.index("tod")] = "1"
    rows[0][HEADER.index("tod_datum")] = rows[0][HEADER.index("op")]
    accepted, quarantine, summary = harmonize(rows)
    assert quarantine.empty and summary["accepted"] == len(rows)
    first = accepted.iloc[0]
    assert first["last_followup_date"] == first["treatment_date"] and first["death"] == 1


def test_unprovided_required_variable_is_a_config_error():
    center = {**CENTER, "columns": {k: v for k, v in CENTER["columns"].items() if v != "death"}}
    with pytest.raises(ConfigError, match=r"c1 \(c1.csv\).*required variable 'death'"):
        harmonize(GOOD_ROWS, center=center)


def test_unprovided_optional_variable_is_all_missing():
    header = [h for h in HEADER if h != "ecog"]
    rows = [[v for h, v in zip(HEADER, r) if h != "ecog"] for r in GOOD_ROWS]
    accepted, _, summary = harmonize(rows, header=header)
    assert accepted["ecog"].isna().all() and str(accepted["ecog"].dtype) == "Int64"
    assert summary["missing"]["ecog"] == 4


def test_real_files_semicolon_latin1_and_parquet_give_the_same_harmonized_rows(tmp_path):
    csv = tmp_path / "c.csv"
    lines = [";".join(HEADER)] + [";".join(f'"{v}"' if ";" in v or "," in v and "dead" in v else v for v in r)
                                  for r in GOOD_ROWS]
    csv.write_bytes(("\n".join(lines) + "\n").encode("latin-1"))
    latin1 = as_center({**CENTER, "read": {**CENTER["read"], "encoding": "latin-1"}})
    from_csv = harmonize_raw(read_extract(csv, latin1), source_file="c.csv")[0]
    table = pa.table({h: [r[i] for r in GOOD_ROWS] for i, h in enumerate(HEADER)})
    table = table.set_column(HEADER.index("alter"), "alter", pa.array([61.5, 70.0, 55.0, 80.25]))
    table = table.set_column(HEADER.index("op"), "op", pa.array(
        [dt.datetime(2003, 2, 1), dt.datetime(2004, 6, 15), dt.datetime(2005, 3, 1), dt.datetime(1999, 1, 1)]))
    pq.write_table(table, tmp_path / "c.parquet")
    from_parquet = harmonize_raw(read_extract(tmp_path / "c.parquet", as_center(CENTER)), source_file="c.parquet")[0]
    pd.testing.assert_frame_equal(from_csv, from_parquet)
    assert len(from_csv) == 4


def merged(parts, id_scope="global"):
    """merge_centers on parts as the workflow reads them (accepted rows as an Arrow table), the
    accepted rows back as a frame."""
    accepted, quarantine, summary = merge_centers(
        [(pa.Table.from_pandas(a, preserve_index=False), q, s) for a, q, s in parts], "patient_id", id_scope)
    return accepted.to_pandas(), quarantine, summary


def center_part(center, ids):
    rows = [list(r) for r in GOOD_ROWS[: len(ids)]]
    for row, pid in zip(rows, ids):
        row[0] = pid
    return harmonize_raw(raw_frame(rows), center_id=center, source_file=f"{center}.csv")


def test_merge_moves_ids_shared_across_centers_to_quarantine():
    parts = [center_part("a", ["X1", "X2", "X3"]), center_part("b", ["Y1", "X2"]), center_part("c", ["Z1"])]
    accepted, quarantine, summary = merged(parts)
    assert accepted["patient_id"].tolist() == ["X1", "X3", "Y1", "Z1"]
    assert quarantine[["center", "source_row"]].values.tolist() == [["a", 3], ["b", 3]]
    assert set(quarantine["reason_code"]) == {"duplicate_id_across_centers"}
    assert "a row 3, b row 3" in quarantine.loc[0, "reason"]
    assert quarantine.loc[1, "source_file"] == "b.csv" and quarantine.loc[0, "treatment"] == "iat"
    assert "time" not in quarantine and "event" not in quarantine   # raw values: the variables only
    a, b = summary["centers"]["a"], summary["centers"]["b"]
    assert (a["rows_read"], a["accepted"], a["quarantined"]) == (3, 2, 1)
    assert (b["rows_read"], b["accepted"], b["quarantined"]) == (2, 1, 1)
    assert summary["total"]["rows_read"] == 6 and summary["total"]["accepted"] == 4
    assert summary["total"]["reasons"] == {"duplicate_id_across_centers": 2}


def test_missing_counts_leave_with_the_rows_moved_to_quarantine():
    parts = [center_part("a", ["X1", "X2", "X3"]), center_part("b", ["X3"])]   # a's X3: ecog, functional missing
    assert parts[0][2]["missing"]["ecog"] == 1 and parts[0][2]["missing"]["functional"] == 1
    accepted, _, summary = merged(parts)
    assert accepted["patient_id"].tolist() == ["X1", "X2"]
    for center in ("a", "b"):
        assert summary["centers"][center]["missing"] == count_missing(accepted[accepted["center"] == center])
    assert summary["centers"]["a"]["missing"]["ecog"] == 0 and summary["total"]["missing"]["functional"] == 0


def test_with_center_scope_each_center_numbers_its_own_patients():
    parts = [center_part("a", ["1", "2", "3"]), center_part("b", ["1", "2"])]
    accepted, quarantine, summary = merged(parts, "center")
    assert accepted["patient_id"].tolist() == ["a:1", "a:2", "a:3", "b:1", "b:2"]
    assert quarantine.empty and summary["total"]["accepted"] == 5
    _, shared, _ = merged(parts)       # the same ids, one consortium-wide numbering
    assert shared["reason_code"].tolist() == ["duplicate_id_across_centers"] * 4


def test_with_center_scope_duplicates_within_a_center_are_still_quarantined_with_the_raw_id():
    rows = [list(r) for r in GOOD_ROWS[:3]]
    rows[0][0], rows[1][0], rows[2][0] = "7", "7", "8"
    part = harmonize_raw(raw_frame(rows), center_id="a", source_file="a.csv")
    accepted, quarantine, _ = merged([part, center_part("b", ["7"])], "center")
    assert accepted["patient_id"].tolist() == ["a:8", "b:7"]
    assert quarantine["reason_code"].tolist() == ["duplicate_id", "duplicate_id"]
    assert quarantine["pid"].tolist() == ["7", "7"]


def test_each_center_and_the_merge_log_what_they_did(caplog):
    rows = [*with_cell("alter", "sixty", row=1), [" "] * len(HEADER)]
    with caplog.at_level(logging.INFO, logger="pipeline.ingest"):
        bad = harmonize_raw(raw_frame(rows), center_id="z", source_file="z.csv")
        merged([bad, center_part("a", ["P1"])])
    lines = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert "z (z.csv): 5 rows read, 3 accepted, 2 quarantined (empty_row 1, not_a_number 1); 0 warnings" in lines
    assert "a (a.csv): 1 rows read, 1 accepted, 0 quarantined; 0 warnings" in lines
    assert "z: 1 accepted rows moved to quarantine (duplicate_id_across_centers)" in lines
    assert "2 centers: 6 rows read, 2 accepted, 4 quarantined" in lines


def test_merge_keeps_config_order_and_each_centers_quarantine():
    bad = harmonize_raw(raw_frame(with_cell("alter", "sixty", row=1)), center_id="z", source_file="z.csv")
    accepted, quarantine, summary = merged([bad, center_part("a", ["A1"])])
    assert list(summary["centers"]) == ["z", "a"]
    assert accepted["center"].tolist() == ["z"] * 3 + ["a"]
    assert quarantine["center"].tolist() == ["z"] and quarantine.loc[0, "alter"] == "sixty"
    assert summary["total"]["quarantined"] == 1


def test_merge_orders_quarantine_numerically_after_a_text_round_trip():
    rows = [list(r) for r in valid_rows(12)]
    for i in (7, 10):
        rows[i][HEADER.index("alter")] = "sixty"
    accepted, quarantine, summary = harmonize(rows)
    _, merged_quarantine, _ = merged([(accepted, quarantine.astype("string"), summary)])
    assert merged_quarantine["source_row"].tolist() == [9, 12] and merged_quarantine["source_row"].dtype == "int64"


# --- property: corrupting cells never crashes and quarantines exactly the corrupted rows

CORRUPTIONS = {  # source column -> values invalid for it whatever the rest of the row holds
    "pid": ["", "NA"],
    "tx": ["embolisation", "RESX"],
    "op": ["31.02.2001", "yesterday", "01.01.1850", "01.01.2999", ""],
    "alter": ["sixty", "1.000,5", "17", "101", "-"],
    "sex": ["d", "2"],
    "ecog": ["2,5", "five", "7"],
    "functional": ["maybe", "2"],
    "fu": ["1.1.20001", "01.01.2999", "2001-13-01"],
    "tod": ["", "dead"],
    "tod_datum": ["32.01.2001"],
}


@st.composite
def corrupted_cells(draw):
    n_rows = draw(st.integers(min_value=1, max_value=12))
    cells = draw(st.lists(st.tuples(st.integers(0, n_rows - 1), st.sampled_from(sorted(CORRUPTIONS))),
                          max_size=8, unique=True))
    values = [draw(st.sampled_from(CORRUPTIONS[col])) for _, col in cells]
    return n_rows, [(r, c, v) for (r, c), v in zip(cells, values)]


def valid_rows(n):
    rows = []
    for i in range(n):
        row = list(GOOD_ROWS[i % len(GOOD_ROWS)])
        row[0] = f"P{i}"
        rows.append(row)
    return rows


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(corrupted_cells())
def test_corrupted_cells_quarantine_exactly_their_rows_naming_the_column(case):
    n_rows, cells = case
    rows = valid_rows(n_rows)
    for r, col, value in cells:
        rows[r][HEADER.index(col)] = value
    accepted, quarantine, summary = harmonize(rows)
    assert summary["rows_read"] == summary["accepted"] + summary["quarantined"] == n_rows
    corrupted_rows = {r + 2 for r, _, _ in cells}
    assert set(quarantine["source_row"]) == corrupted_rows
    assert set(accepted["source_row"]).isdisjoint(corrupted_rows)
    reasons = dict(zip(quarantine["source_row"], quarantine["reason"]))
    for r, col, _ in cells:
        named = f"'{col}'" if col in CENTER["columns"] else f"{col}:"
        assert named in reasons[r + 2], (col, reasons[r + 2])
    for codes, reason in zip(quarantine["reason_code"], quarantine["reason"]):
        assert len(codes.split(";")) == len(reason.split("; "))


# --- numbers: never changed silently (the true reason, the value exactly as written)

NUMBERS = [  # (variable kind, cell, reason code or None if accepted, accepted value / text in the reason)
    ("integer", "1e20", "number_too_large", "'1e20' is too large for an integer"),
    ("integer", "9007199254740993", "number_too_large", "beyond ±9007199254740992, 2^53"),
    ("integer", "-9007199254740993", "number_too_large", "too large for an integer"),
    ("integer", "18446744073709551616", "number_too_large", "too large for an integer"),
    ("integer", "9007199254740992", None, 2**53),
    ("integer", "3.0000000000000001", "not_an_integer", "is not a whole number"),
    ("integer", "1e-400", "not_an_integer", "is not a whole number"),
    ("integer", "0x10", "not_an_integer", "is not a whole number"),
    ("integer", "3.0", None, 3),
    ("integer", "1e3", None, 1000),
    ("integer", "+7", None, 7),
    ("numeric", "1e400", "number_too_large", "'1e400' is too large to be stored as a number"),
    ("numeric", "-1e400", "number_too_large", "too large"),
    ("numeric", "1e-400", "number_too_small", "'1e-400' is too close to zero to be stored as a number"),
    ("numeric", "2e-310", "number_too_small", "too close to zero"),
    ("numeric", "0e-999", None, 0.0),
    ("numeric", "inf", "not_a_number", "'inf' is not a number"),
    ("numeric", "-Infinity", "not_a_number", "is not a number"),
    ("numeric", "0x1p3", "not_a_number", "is not a number"),
    ("numeric", "1_000", "not_a_number", "is not a number"),
    ("numeric", "١٢", "not_a_number", "is not a number"),
    ("numeric", "nan", None, None),  # a missing-value token
    ("numeric", "23.79646270918913586", None, float("23.79646270918913586")),  # pandas' parser rounds it off
    ("numeric", ".5", None, 0.5),
    ("numeric", "5.", None, 5.0),
    ("numeric", "-2.5E+3", None, -2500.0),
]


@pytest.mark.parametrize("kind, cell, code, expected", NUMBERS, ids=[f"{n[0]}-{n[1]}" for n in NUMBERS])
def test_numbers_are_parsed_exactly_or_refused_with_the_true_reason(kind, cell, code, expected):
    variables = {"patient_id": {"type": "id"}, "x": {"type": kind}, "os": {"type": "numeric"},
                 "death": {"type": "binary"}}
    header = ["patient_id", "x", "os", "death"]
    accepted, quarantine, _ = harmonize([["A", cell, "1", "1"]], center={"read": {}}, variables=variables,
                                        outcome={"time": "os", "event": "death"}, header=header)
    if code is None:
        assert quarantine.empty
        value = accepted.loc[0, "x"]
        assert (pd.isna(value) and expected is None) or (value == expected and type(expected)(value) == expected)
    else:
        assert quarantine["reason_code"].tolist() == [code]
        assert expected in quarantine.loc[0, "reason"] and f"'{cell}'" in quarantine.loc[0, "reason"]


def test_a_huge_integer_is_refused_with_a_decimal_comma_and_after_scaling():
    variables = {"patient_id": {"type": "id"}, "x": {"type": "numeric"}, "os": {"type": "numeric"},
                 "death": {"type": "binary"}}
    center = {"read": {"decimal": ","}, "scale": {"x": 10}}
    rows = [["A", "1,5e308", "1", "1"], ["B", "1,5", "1", "1"]]
    accepted, quarantine, _ = harmonize(rows, center=center, variables=variables,
                                        outcome={"time": "os", "event": "death"},
                                        header=["patient_id", "x", "os", "death"])
    assert accepted["x"].tolist() == [15.0]
    assert quarantine["reason_code"].tolist() == ["number_too_large"]
    assert "after scaling by 10" in quarantine.loc[0, "reason"]


def test_reader_problems_replace_the_rows_other_reasons():
    raw = raw_frame([GOOD_ROWS[0], ["P2", "??", "", "", "", "", "", "", "", "", ""], GOOD_ROWS[2]])
    raw["source_row_end"] = raw["source_row"]
    raw["read_problems"] = [None, (("too_few_fields", "row has 2 fields, the header has 11: short row", None),), None]
    accepted, quarantine, summary = harmonize_raw(raw)
    assert quarantine["reason_code"].tolist() == ["too_few_fields"]
    assert quarantine.loc[0, "reason"] == "row has 2 fields, the header has 11: short row"
    assert summary["reasons"] == {"too_few_fields": 1} and accepted["source_row"].tolist() == [2, 4]
