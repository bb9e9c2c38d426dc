"""Config-level checks of the registry part: each mistake gives one message naming center, file and column."""

import copy
import os

import openpyxl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.config import checks
from tests.ingest_settings import as_outcome, as_registry

VARIABLES = {
    "patient_id": {"type": "id"},
    "treatment": {"type": "category", "levels": ["resection", "iat"]},
    "treatment_date": {"type": "date"},
    "age": {"type": "numeric", "min": 18, "max": 100},
    "functional": {"type": "binary"},
    "last_followup_date": {"type": "date"},
    "death": {"type": "binary"},
}
OUTCOME = {"time_zero": "treatment_date", "end": "last_followup_date", "event": "death"}


@pytest.fixture
def study(tmp_path):
    (tmp_path / "a.csv").write_text("pid;tx;op;alter;fu;tod;functional\nP1;RES;01.02.2003;61,5;01.02.2008;0;1\n")
    pq.write_table(pa.table({"patient_id": ["Q1"], "treatment": ["iat"], "treatment_date": ["2003-01-01"],
                             "last_followup_date": ["2004-01-01"], "death": [1]}), tmp_path / "b.parquet")
    book = openpyxl.Workbook()
    book.active.append(["ID", "Therapie", "Start", "Ende", "Tod", "Alter"])
    book.active.append(["X1", "TACE", "2001-01-01", "2002-01-01", 0, 50])
    book.save(tmp_path / "c.xlsx")
    config = {
        "registry": {
            "variables": copy.deepcopy(VARIABLES),
            "centers": {
                "a": {"path": "a.csv", "read": {"sep": ";", "decimal": ",", "date_format": "%d.%m.%Y"},
                      "columns": {"pid": "patient_id", "tx": "treatment", "op": "treatment_date", "alter": "age",
                                  "fu": "last_followup_date", "tod": "death"},
                      "codes": {"treatment": {"RES": "resection"}}},
                "b": {"path": "b.parquet"},
                "c": {"path": "c.xlsx", "columns": {"ID": "patient_id", "Therapie": "treatment", "Start":
                      "treatment_date", "Ende": "last_followup_date", "Tod": "death", "Alter": "age"},
                      "codes": {"treatment": {"TACE": "iat"}}},
            },
        },
        "outcome": dict(OUTCOME),
    }
    return config, tmp_path


def registry_problems(config, workdir):
    """The registry checks on the typed settings of ``config`` (registry and outcome blocks)."""
    return checks.registry_problems(as_registry(config["registry"]), as_outcome(config["outcome"]), workdir)


def test_a_correct_config_has_no_messages(study):
    config, workdir = study
    assert registry_problems(config, workdir) == []


def test_missing_file(study):
    config, workdir = study
    config["registry"]["centers"]["b"]["path"] = "nowhere.parquet"
    assert registry_problems(config, workdir) == [
        f"registry.centers.b (nowhere.parquet): file not found (looked for {workdir / 'nowhere.parquet'})"]


def test_unreadable_file(study, monkeypatch):
    config, workdir = study
    # chmod cannot make a file unreadable for root (CI containers), so deny access the way os.access would
    monkeypatch.setattr(os, "access", lambda path, mode: not str(path).endswith("a.csv"))
    assert registry_problems(config, workdir) == ["registry.centers.a (a.csv): file is not readable (permissions)"]


def test_unreadable_content_names_the_file(study):
    config, workdir = study
    (workdir / "b.parquet").write_text("not parquet")
    [message] = registry_problems(config, workdir)
    assert message.startswith("registry.centers.b (b.parquet): ") and "cannot be read as parquet" in message


def test_mapped_column_missing_from_header(study):
    config, workdir = study
    config["registry"]["centers"]["c"]["columns"]["Geschlecht"] = "functional"
    assert registry_problems(config, workdir) == [
        "registry.centers.c (c.xlsx): mapped column 'Geschlecht' is not in the file's header"]


def test_variable_mapped_twice(study):
    config, workdir = study
    config["registry"]["centers"]["a"]["columns"]["functional"] = "age"
    message, no_longer_provided = registry_problems(config, workdir)
    assert message.startswith("registry.centers.a (a.csv): variable 'age' is provided by several columns")
    assert "'alter', 'functional'" in message
    assert no_longer_provided.startswith("registry.variables.functional: no center provides this variable")


def test_same_named_column_next_to_an_explicit_mapping_is_ambiguous(study):
    config, workdir = study
    config["registry"]["centers"]["c"]["columns"]["Alter"] = "functional"
    (workdir / "x.csv").write_text("pid,age,alter\n")
    config["registry"]["centers"]["a"] = {"path": "x.csv", "columns": {"pid": "patient_id", "alter": "age"}}
    messages = registry_problems(config, workdir)
    assert any("x.csv" in m and "variable 'age' is provided by several columns ('alter', 'age')" in m
               for m in messages)


def test_mapping_to_an_undeclared_variable(study):
    config, workdir = study
    config["registry"]["centers"]["a"]["columns"]["op"] = "therapy"
    messages = registry_problems(config, workdir)
    assert "registry.centers.a (a.csv): column 'op' is mapped to 'therapy', which is not a variable in " \
           "registry.variables" in messages
    assert "registry.centers.a (a.csv): required variable 'treatment_date' is provided by no column (add a columns " \
           "entry '<source column>: treatment_date')" in messages


def test_required_variable_not_provided_by_a_center(study):
    config, workdir = study
    config["registry"]["variables"]["functional"]["required"] = True
    messages = registry_problems(config, workdir)
    assert [m.split(" (")[0] for m in messages] == ["registry.centers.b", "registry.centers.c"]
    assert all("required variable 'functional'" in m for m in messages)


def test_variable_no_center_provides(study):
    config, workdir = study
    config["registry"]["variables"]["ki67"] = {"type": "numeric"}
    assert registry_problems(config, workdir) == [
        "registry.variables.ki67: no center provides this variable (map a source column to it in "
        "registry.centers.<center>.columns, or remove it)"]


def test_levels_bounds_and_names_that_do_not_fit_the_variable(study):
    config, workdir = study
    variables = config["registry"]["variables"]
    variables["sex"] = {"type": "category"}
    variables["grade"] = {"type": "category", "levels": ["G1", "g1"]}
    variables["functional"]["levels"] = ["0", "1"]
    variables["last_followup_date"]["max"] = 3
    variables["age"]["min"] = 200
    variables["center"] = {"type": "category", "levels": ["a"]}
    messages = [m for m in registry_problems(config, workdir) if "no center provides" not in m]
    assert messages == [
        "registry.variables.age: min 200 is greater than max 100",
        "registry.variables.functional.levels: only a category variable has levels (type is binary)",
        "registry.variables.last_followup_date: min/max apply to numeric and integer variables only (type is date)",
        "registry.variables.sex.levels: a category variable needs a list of levels",
        "registry.variables.grade.levels: levels must differ (ignoring case): ['G1', 'g1']",
        "registry.variables.center: 'center' is reserved for a column the pipeline adds; rename the variable "
        "(reserved: center, source_row, patient_id, index_year, time, event, treated, group; patient_id only for "
        "the id variable)",
    ]


def test_code_target_that_is_not_a_level(study):
    config, workdir = study
    config["registry"]["centers"]["c"]["codes"]["treatment"]["DEB"] = "embolization"
    config["registry"]["centers"]["c"]["codes"]["functional"] = {"ja": 2}
    messages = registry_problems(config, workdir)
    assert "registry.centers.c (c.xlsx): codes.treatment: code 'deb' maps to 'embolization', which is not a level " \
           "(resection, iat)" in messages
    assert "registry.centers.c (c.xlsx): codes.functional: no column of this extract provides 'functional'" \
           in messages
    assert "registry.centers.c (c.xlsx): codes.functional: code 'ja' maps to 2, which is not 0/1 (or yes/no)" \
           in messages


def test_outcome_variables_must_exist_with_the_right_types(study):
    config, workdir = study
    config["outcome"] = {"time_zero": "treatment_date", "end": "age", "event": "dead"}
    messages = registry_problems(config, workdir)
    assert "outcome.end: 'age' has type numeric; expected date" in messages
    assert "outcome.event: 'dead' is not a variable in registry.variables" in messages


def test_bad_read_options(study):
    config, workdir = study
    config["registry"]["centers"]["a"]["read"].update({"encoding": "latin-9x", "date_format": "%d.%m.",
                                                        "date_formats": {"age": "%Y"}})
    messages = registry_problems(config, workdir)
    assert "registry.centers.a (a.csv): read.date_formats.age: 'age' is not a date variable" in messages
    assert "registry.centers.a (a.csv): read.encoding 'latin-9x' is not a known encoding" in messages
    assert any("date format '%d.%m.'" in m for m in messages)


def test_exactly_one_id_variable(study):
    config, workdir = study
    config["registry"]["variables"]["patient_id"]["type"] = "category"
    config["registry"]["variables"]["patient_id"]["levels"] = ["x"]
    assert "registry.variables: exactly one variable must have type id, found 0" in \
        registry_problems(config, workdir)
    config["registry"]["variables"]["patient_id"] = {"type": "id"}
    config["registry"]["variables"]["record_no"] = {"type": "id"}
    assert "registry.variables: exactly one variable must have type id, found 2 (patient_id, record_no)" in \
        registry_problems(config, workdir)


def test_scale_only_for_numbers(study):
    config, workdir = study
    config["registry"]["centers"]["a"]["scale"] = {"treatment": 2, "weight": 0.5, "age": 12}
    assert registry_problems(config, workdir) == [
        "registry.centers.a (a.csv): scale.treatment: only numeric and integer variables can be scaled",
        "registry.centers.a (a.csv): scale.weight: only numeric and integer variables can be scaled"]


def test_a_directory_given_as_extract(study):
    config, workdir = study
    (workdir / "extracts").mkdir()
    config["registry"]["centers"]["b"]["path"] = "extracts"
    assert registry_problems(config, workdir) == [
        f"registry.centers.b (extracts): is a directory, not a file (looked at {workdir / 'extracts'}); give the "
        "extract file's path"]


def test_a_utf8_header_declared_latin1_says_which_encoding_holds_the_mapped_column(study):
    config, workdir = study
    (workdir / "a.csv").write_bytes("pid;tx;op;Größe;fu;tod;functional\nP1;RES;01.02.2003;61,5;01.02.2008;0;1\n"
                                    .encode("utf-8"))
    center = config["registry"]["centers"]["a"]
    center["read"]["encoding"] = "latin-1"
    center["columns"] = {**{k: v for k, v in center["columns"].items() if k != "alter"}, "Größe": "age"}
    assert registry_problems(config, workdir) == [
        "registry.centers.a (a.csv): mapped column 'Größe' is not in the file's header",
        "registry.centers.a (a.csv): read.encoding is latin-1, but the file is UTF-8: read as UTF-8 its header "
        "holds the mapped column 'Größe'; set read.encoding: utf-8"]


def test_a_latin1_header_declared_utf8_names_the_byte(study):
    config, workdir = study
    (workdir / "a.csv").write_bytes("pid;tx;op;Größe;fu;tod;functional\n".encode("latin-1"))
    [message] = registry_problems(config, workdir)
    assert message.startswith("registry.centers.a (a.csv): ") and "not valid utf-8 text (byte 0xf6)" in message


# --- a center's own outcome form (registry.centers.<id>.outcome)

def _days_center(config, workdir, outcome):
    (workdir / "d.csv").write_text("pid,tx,fu_days,dead\n1,RES,30,0\n")
    config["registry"]["variables"]["fu_days"] = {"type": "integer"}
    config["registry"]["centers"]["d"] = {"path": "d.csv", "codes": {"treatment": {"RES": "resection"}},
                                          "columns": {"pid": "patient_id", "tx": "treatment", "dead": "death"},
                                          **({"outcome": outcome} if outcome else {})}


def test_a_center_sending_days_needs_no_dates(study):
    config, workdir = study
    _days_center(config, workdir, {"time": "fu_days", "event": "death", "time_unit": "days"})
    assert registry_problems(config, workdir) == []
    _days_center(config, workdir, None)     # the study's outcome: its dates are required of every center
    assert registry_problems(config, workdir) == [
        f"registry.centers.d (d.csv): required variable '{var}' is provided by no column (add a columns entry "
        f"'<source column>: {var}')" for var in ("treatment_date", "last_followup_date")]


def test_a_centers_outcome_names_variables_of_the_right_types(study):
    config, workdir = study
    _days_center(config, workdir, {"time": "fu_weeks", "event": "age"})
    messages = registry_problems(config, workdir)
    assert messages[:2] == ["registry.centers.d.outcome.event: 'age' has type numeric; expected binary",
                            "registry.centers.d.outcome.time: 'fu_weeks' is not a variable in registry.variables"]


def test_follow_up_and_event_cannot_be_optional(study):
    config, workdir = study
    config["registry"]["variables"]["death"]["required"] = False
    config["registry"]["variables"]["treatment_date"]["required"] = False
    assert registry_problems(config, workdir) == [
        f"outcome.{role}: '{var}' has required: false, but every row needs its follow-up and event (remove "
        "required: false)" for role, var in (("time_zero", "treatment_date"), ("event", "death"))]
