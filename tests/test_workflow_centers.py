"""Extracts as consortium centers send them, run end to end: two centers that both number their
patients 1..N (registry.id_scope: center), one sending dates and one days of follow-up (its own
outcome form), a 0/1 treatment column, and hostile text that must not reach a spreadsheet as a
formula (every CSV written is checked)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from pipeline.io import read_result_csv
from pipeline.synth import simulate_patients
from tests.conftest import run_snakemake
from tests.test_csv_safety import formula_cells

pytestmark = pytest.mark.slow

FORMULAS = ["=HYPERLINK(\"http://x\",\"click\")", "+cmd|' /C calc'!A0", "-2+3", "@SUM(A1:A9)"]


def two_centers(seed: int = 21) -> pd.DataFrame:
    """Patients of two centers, each numbered 1..N, with the truth of their follow-up in days."""
    data = simulate_patients(n=500, seed=seed)
    data["site"] = np.where(np.arange(len(data)) % 2 == 0, "north", "south")
    data["local_id"] = data.groupby("site").cumcount() + 1
    data["surgery"] = data["treatment"].eq("resection").astype(int)
    data["fu_days"] = (data["last_followup_date"] - data["treatment_date"]).dt.days
    data["receptor"] = np.where(data["ki67"].fillna(0) > 5, "+", "-")    # levels a spreadsheet would run
    data["note"] = ""
    return data


def write_study(folder: Path) -> tuple[Path, pd.DataFrame]:
    data = two_centers()
    (folder / "data").mkdir(parents=True)
    north = data[data["site"] == "north"].copy()
    north["start"] = north["treatment_date"].dt.strftime("%d.%m.%Y")
    north["stop"] = north["last_followup_date"].dt.strftime("%d.%m.%Y")
    north.loc[north.index[:len(FORMULAS)], "age"] = np.nan            # quarantined rows carrying formulas
    north.loc[north.index[:len(FORMULAS)], "note"] = FORMULAS
    columns = ["local_id", "surgery", "start", "stop", "age", "ecog", "functional", "receptor", "death", "note"]
    north[columns].to_csv(folder / "data/north.csv", sep=";", index=False)
    south = data[data["site"] == "south"].copy()
    south.loc[south.index[0], "fu_days"] = -3                            # quarantined: negative follow-up
    south.loc[south.index[1], ["fu_days", "death"]] = (0, 1)             # kept: death on the day of treatment
    south["surgery"] = south["surgery"].map({1: "yes", 0: "no"})
    south[["local_id", "surgery", "fu_days", "age", "ecog", "functional", "receptor", "death"]].to_parquet(
        folder / "data/south.parquet", index=False)
    config = {
        "seed": 5,
        "registry": {
            "id_scope": "center",
            "variables": {
                "pid": {"type": "id"}, "surgery": {"type": "binary"},
                "start": {"type": "date"}, "stop": {"type": "date"}, "fu_days": {"type": "integer"},
                "age": {"type": "numeric", "min": 18, "max": 100, "required": True},
                "ecog": {"type": "integer", "min": 0, "max": 4}, "functional": {"type": "binary"},
                "receptor": {"type": "category", "levels": ["+", "-"]}, "death": {"type": "binary"},
            },
            "centers": {
                "north": {"path": "data/north.csv", "read": {"sep": ";", "date_format": "%d.%m.%Y"},
                          "columns": {"local_id": "pid"}},
                "south": {"path": "data/south.parquet", "columns": {"local_id": "pid"},
                          "outcome": {"time": "fu_days", "event": "death", "time_unit": "days"}},
            },
        },
        "outcome": {"time_zero": "start", "end": "stop", "event": "death"},
        "analyses": {
            "surgery": {"treatment": {"column": "surgery", "treated": 1, "control": 0},
                        "covariates": ["age", "ecog", "functional", "receptor"], "survival": {"bootstrap": 20}},
        },
    }
    (folder / "study.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return folder / "study.yaml", data


@pytest.fixture(scope="module")
def centers(tmp_path_factory) -> tuple[Path, pd.DataFrame]:
    folder = tmp_path_factory.mktemp("centers") / "study"
    configfile, truth = write_study(folder)
    result = run_snakemake(folder, configfile)
    assert result.returncode == 0, result.stderr[-4000:]
    assert "Traceback" not in result.stderr
    return folder / "results", truth


def test_both_centers_numbering_1_to_n_are_accepted(centers):
    results, truth = centers
    summary = json.loads((results / "registry/ingest_summary.json").read_text())
    assert summary["centers"]["north"]["reasons"] == {"missing_required": len(FORMULAS)}
    assert summary["centers"]["south"]["reasons"] == {"negative_followup": 1}
    assert summary["total"]["rows_read"] == len(truth) and summary["total"]["accepted"] == len(truth) - 5
    harmonized = pd.read_parquet(results / "registry/harmonized.parquet")
    quarantined = [0, 2, 4, 6, 1]     # the first four north rows (formulas, no age) and the first south row
    expected = (truth["site"] + ":" + truth["local_id"].astype(str)).drop(index=quarantined)
    assert sorted(harmonized["pid"]) == sorted(expected)


def test_follow_up_in_days_and_from_dates_are_one_time_in_months(centers):
    results, truth = centers
    cohort = pd.read_parquet(results / "surgery/cohort.parquet").set_index("patient_id")
    days = truth.set_index(truth["site"] + ":" + truth["local_id"].astype(str))["fu_days"].copy()
    days["south:2"] = 0
    assert len(cohort) == len(truth) - 5
    assert cohort["time"].tolist() == (days[cohort.index] / 30.4375).tolist()
    assert cohort.loc["south:2", ["time", "event"]].tolist() == [0.0, 1]


def test_a_0_1_treatment_column_defines_the_arms(centers):
    results, truth = centers
    attrition = json.loads((results / "surgery/cohort.json").read_text())
    assert (attrition["treated_level"], attrition["control_level"]) == (1, 0)
    cohort = pd.read_parquet(results / "surgery/cohort.parquet")
    surgery = truth.set_index(truth["site"] + ":" + truth["local_id"].astype(str))["surgery"]
    assert cohort["treated"].tolist() == (surgery[cohort["patient_id"]] == 1).tolist()
    assert "surgery = 1" in (results / "surgery/report.html").read_text()


def test_matched_csv_names_each_patients_center(centers):
    results, _ = centers
    matched = read_result_csv(results / "surgery/matched.csv")
    assert list(matched.columns[:3]) == ["patient_id", "center", "group"]
    assert (matched["patient_id"].str.split(":").str[0] == matched["center"]).all()
    assert set(matched["center"]) == {"north", "south"}


def test_no_csv_written_holds_a_formula_and_each_reads_back(centers):
    results, _ = centers
    written = sorted(results.rglob("*.csv"))
    assert {p.name for p in written} >= {"quarantine.csv", "matched.csv", "pairs.csv", "balance.csv", "table1.csv",
                                         "forest.csv", "interaction.csv"}
    assert {p.relative_to(results).as_posix(): formula_cells(p) for p in written} == {
        p.relative_to(results).as_posix(): [] for p in written}
    quarantine = read_result_csv(results / "registry/quarantine.csv", dtype=str, keep_default_na=False)
    assert quarantine.loc[quarantine["center"] == "north", "note"].tolist() == FORMULAS
    table1 = read_result_csv(results / "surgery/table1.csv", dtype={"level": str}, keep_default_na=False)
    assert {"+", "-"} <= set(table1["level"])
