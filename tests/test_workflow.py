"""End-to-end: real Snakemake runs on the demo study and on a second, differently shaped study.

The demo runs once per test session (the `demo` fixture in conftest.py) in a temporary study
folder, so the checks below read real result files written by the real workflow.
"""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from pipeline.config.validate import prepare_config
from pipeline.report.manifest import build_manifest, compare
from pipeline.synth import simulate_patients
from tests.conftest import REPO, copy_demo, run_snakemake

pytestmark = pytest.mark.slow


def analyses() -> list[str]:
    """The demo's analyses, subgroups included."""
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    return list(prepare_config(config, REPO)["analyses"])


def declared_outputs(study: Path) -> dict[str, str]:
    """Every output file the workflow declares for a study -> its status (`snakemake --summary`)."""
    result = run_snakemake(study, study / "config.yaml", "--summary")
    assert result.returncode == 0, result.stderr[-4000:]
    return {row["output_file"]: row["status"] for row in csv.DictReader(io.StringIO(result.stdout), delimiter="\t")}


def test_every_declared_output_is_written(demo):
    kept = [path for path, status in declared_outputs(demo.parent).items() if status != "removed temp file"]
    assert [path for path in kept if not (demo.parent / path).is_file()] == []
    # every analysis, subgroups included, has the same files: results/<analysis>/<name>
    per_analysis = [{Path(path).name for path in kept if Path(path).parent == Path("results", analysis)}
                    for analysis in analyses()]
    assert per_analysis[0] and all(files == per_analysis[0] for files in per_analysis), per_analysis


def test_ingest_counts_add_up(demo):
    summary = json.loads((demo / "registry/ingest_summary.json").read_text())
    harmonized = pd.read_parquet(demo / "registry/harmonized.parquet")
    quarantine = pd.read_csv(demo / "registry/quarantine.csv", dtype=str)
    for center, counts in summary["centers"].items():
        assert counts["rows_read"] == counts["accepted"] + counts["quarantined"], center
        assert (harmonized["center"] == center).sum() == counts["accepted"], center
        assert (quarantine["center"] == center).sum() == counts["quarantined"], center
    assert len(quarantine) > 0, "the demo's defects should exercise quarantine"
    assert set(quarantine.columns) >= {"center", "source_file", "source_row", "reason_code", "reason"}


def test_attrition_steps_chain(demo):
    n_registry = len(pd.read_parquet(demo / "registry/harmonized.parquet"))
    for analysis in analyses():
        attrition = json.loads((demo / analysis / "cohort.json").read_text())
        assert attrition["n_registry"] == n_registry
        before = n_registry
        for step in attrition["steps"]:
            assert step["before"] == before and step["after"] == before - step["excluded"]
            before = step["after"]
        assert attrition["n_final"] == before == attrition["n_treated"] + attrition["n_control"]


def matched_samples(folder: Path):
    """(matched.csv, pairs.csv) of an analysis; of each imputation for an imputed analysis (approach
    within: matched.csv and pairs.csv hold every imputation's, numbered in column imputation)."""
    matched = pd.read_csv(folder / "matched.csv", dtype={"patient_id": str})
    pairs = pd.read_csv(folder / "pairs.csv", dtype={"treated_id": str, "control_id": str})
    if "imputation" not in matched:
        return [(matched, pairs)]
    return [(m, pairs[pairs["imputation"] == i]) for i, m in matched.groupby("imputation")]


def test_matched_sample_is_consistent_with_pairs(demo):
    for analysis in analyses():
        weighting = json.loads((demo / analysis / "matching.json").read_text()).get("design") == "weighting"
        for matched, pairs in matched_samples(demo / analysis):
            _check_matched_sample(matched, pairs, weighting)


def _check_matched_sample(matched, pairs, weighting):
    if weighting:
        assert pairs.empty and matched["subclass"].isna().all() and (matched["weight"] > 0).all()
        return
    assert set(pairs["control_id"]) <= set(matched.loc[matched["group"] == "control", "patient_id"])
    assert set(pairs["treated_id"]) == set(matched.loc[matched["group"] == "treated", "patient_id"])
    assert not pairs["control_id"].duplicated().any(), "1:1 without replacement reuses no control"
    assert (matched["weight"] > 0).all()
    # a matched set is one treated patient and its control(s)
    sets = matched.groupby("subclass")["group"].agg(lambda g: (g == "treated").sum())
    assert (sets == 1).all()


def test_medians_are_null_only_when_not_reached(demo):
    """Of every analysis, and of each imputation of an imputed one (its pooled median is theirs)."""
    folders = [demo / analysis for analysis in analyses()]
    folders += sorted(demo.glob("*/imputations/*"))
    assert any("imputations" in folder.parts for folder in folders), "the demo has an imputed analysis"
    for analysis in folders:
        if (analysis / "imputations").is_dir():
            continue
        survival = json.loads((analysis / "survival.json").read_text())
        cohort = pd.read_parquet(analysis / "cohort.parquet")
        matched = pd.read_csv(analysis / "matched.csv", dtype={"patient_id": str})
        sample = cohort.merge(matched[["patient_id"]], on="patient_id")
        for arm, is_treated in (("treated", True), ("control", False)):
            rows = sample[sample["treated"] == is_treated]
            lowest = _km_lowest_survival(rows["time"].to_numpy(), rows["event"].to_numpy())
            assert (survival[arm]["median"] is None) == (lowest > 0.5), (analysis, arm)
            assert survival[arm]["n"] == len(rows)


def _km_lowest_survival(time: np.ndarray, event: np.ndarray) -> float:
    """Unweighted KM at the last event time, written out plainly (1:1 matching: weights are 1)."""
    surv = 1.0
    for t in np.unique(time[event == 1]):
        at_risk = (time >= t).sum()
        surv *= 1 - ((time == t) & (event == 1)).sum() / at_risk
    return surv


def test_report_has_the_headline_and_no_patient_ids(demo):
    for analysis in analyses():
        page = (demo / analysis / "report.html").read_text()
        assert "Median overall survival: resection" in page and " vs IAT " in page
        ids = pd.read_parquet(demo / analysis / "cohort.parquet")["patient_id"]
        assert not [i for i in ids if not i.isdigit() and i in page]
        assert "http://" not in page.replace("http://www.w3.org", "") and "<script src" not in page
    index = (demo / "report.html").read_text()
    for analysis in analyses():
        assert f'href="{analysis}/report.html"' in index


def test_config_error_stops_before_any_job_without_traceback(tmp_path):
    study = copy_demo(tmp_path / "study")
    config = yaml.safe_load((study / "config.yaml").read_text())
    config["analyses"]["all_patients"]["covariates"].append("tumour_size")
    config["registry"]["centers"][next(iter(config["registry"]["centers"]))]["path"] = "resources/missing.csv"
    (study / "bad.yaml").write_text(yaml.safe_dump(config))
    result = run_snakemake(study, study / "bad.yaml")
    assert result.returncode != 0
    assert "'tumour_size' is not a registry variable" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (study / "results").exists()


def test_same_inputs_give_byte_identical_results(demo, tmp_path):
    study = copy_demo(tmp_path / "again")
    result = run_snakemake(study, study / "config.yaml")
    assert result.returncode == 0, result.stderr[-4000:]
    first, second = build_manifest(demo), build_manifest(study / "results")
    assert len(first["files"]) > 50
    assert compare(first, second) == []  # every file, byte for byte (the report's timestamp excepted)
    shared = [json.loads((results / "shareable/manifest.json").read_text()) for results in (demo, study / "results")]
    assert len(shared[0]["files"]) > 50 and compare(*shared) == []     # and so the shareable tier


def test_snakemake_report_bundle(demo):
    study = demo.parent
    result = run_snakemake(study, study / "config.yaml", "--report", "report.zip")
    assert result.returncode == 0, result.stderr[-4000:]
    assert (study / "report.zip").stat().st_size > 10_000


# --- a second study: other file shapes, a ready time outcome, 2:1 exact and with-replacement matching

def write_second_study(folder: Path) -> Path:
    truth = simulate_patients(n=600, seed=7)
    truth["os_months"] = (truth["last_followup_date"] - truth["treatment_date"]).dt.days / 30.4375
    columns = {"patient_id": "PID", "treatment": "Therapy", "age": "Age", "ecog": "ECOG",
               "liver_burden_gt25": "Burden25", "functional": "Functional", "os_months": "OS",
               "death": "Dead"}
    data = truth[list(columns)].rename(columns=columns)
    data["Therapy"] = data["Therapy"].map({"resection": "SURG", "iat": "EMBO"})
    data["Hospital"] = truth["center"].isin(["center_a", "center_b", "center_c", "center_d"]).map(
        {True: "north", False: "south"})
    (folder / "data").mkdir(parents=True)
    north = data[data["Hospital"] == "north"]
    north.to_csv(folder / "data/north.csv", sep=";", decimal=",", index=False)
    data[data["Hospital"] == "south"].to_parquet(folder / "data/south.parquet", index=False)
    mapping = {source: variable for variable, source in columns.items()} | {"Hospital": "hospital"}
    codes = {"treatment": {"SURG": "resection", "EMBO": "iat"}}
    config = {
        "seed": 11,
        "registry": {
            "variables": {
                "patient_id": {"type": "id"}, "treatment": {"type": "category", "levels": ["resection", "iat"]},
                "age": {"type": "numeric", "min": 0, "max": 110}, "ecog": {"type": "integer", "min": 0, "max": 4},
                "liver_burden_gt25": {"type": "binary"}, "functional": {"type": "binary"},
                "hospital": {"type": "category", "levels": ["north", "south"]},
                "os_months": {"type": "numeric", "min": 0}, "death": {"type": "binary"},
            },
            "centers": {
                "north": {"path": "data/north.csv", "read": {"sep": ";", "decimal": ","}, "columns": mapping,
                          "codes": codes},
                "south": {"path": "data/south.parquet", "columns": mapping, "codes": codes},
            },
        },
        "outcome": {"time": "os_months", "event": "death"},
        "analyses": {
            "two_to_one_exact": {
                "treatment": {"column": "treatment", "treated": "resection", "control": "iat"},
                "covariates": ["age", "ecog", "liver_burden_gt25", "functional"],
                "matching": {"ratio": 2, "caliper": 0.25, "caliper_scale": "ps", "order": "smallest",
                             "exact": ["hospital"]},
                "survival": {"bootstrap": 50, "rmst_tau": 36, "landmarks": [12, 24]},
            },
            "two_to_one_exact_split": {   # the same analysis, its bootstrap split over three jobs
                "treatment": {"column": "treatment", "treated": "resection", "control": "iat"},
                "covariates": ["age", "ecog", "liver_burden_gt25", "functional"],
                "matching": {"ratio": 2, "caliper": 0.25, "caliper_scale": "ps", "order": "smallest",
                             "exact": ["hospital"]},
                "survival": {"bootstrap": 50, "bootstrap_jobs": 3, "rmst_tau": 36, "landmarks": [12, 24]},
            },
            "with_replacement": {
                "treatment": {"column": "treatment", "treated": "resection", "control": "iat"},
                "covariates": ["age", "ecog", "liver_burden_gt25", "functional", "hospital"],
                "matching": {"replace": True, "caliper": None},
                "survival": {"bootstrap": 50},
            },
        },
        "report": {"min_cell": 10},
    }
    (folder / "study.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return folder / "study.yaml"


@pytest.fixture(scope="module")
def second_study(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("second") / "study"
    configfile = write_second_study(folder)
    result = run_snakemake(folder, configfile)
    assert result.returncode == 0, result.stderr[-4000:]
    return folder / "results"


def test_second_study_exact_two_to_one(second_study):
    matched = pd.read_csv(second_study / "two_to_one_exact/matched.csv", dtype={"patient_id": str})
    pairs = pd.read_csv(second_study / "two_to_one_exact/pairs.csv", dtype={"treated_id": str, "control_id": str})
    cohort = pd.read_parquet(second_study / "two_to_one_exact/cohort.parquet")
    hospital = dict(zip(cohort["patient_id"], cohort["hospital"]))
    assert (pairs["treated_id"].map(hospital) == pairs["control_id"].map(hospital)).all()
    assert set(pairs["slot"]) <= {1, 2} and not pairs["control_id"].duplicated().any()
    assert (pairs["distance_diff"] <= json.loads((second_study / "two_to_one_exact/matching.json").read_text())[
        "caliper_raw"] + 1e-12).all()
    controls = matched[matched["group"] == "control"]
    assert controls["weight"].mean() == pytest.approx(1.0)


def test_second_study_with_replacement(second_study):
    matched = pd.read_csv(second_study / "with_replacement/matched.csv", dtype={"patient_id": str})
    pairs = pd.read_csv(second_study / "with_replacement/pairs.csv", dtype={"treated_id": str, "control_id": str})
    assert matched["subclass"].isna().all(), "with replacement a control may sit in several sets"
    assert not matched["patient_id"].duplicated().any()
    reused = pairs["control_id"].value_counts()
    assert reused.max() > 1
    survival = json.loads((second_study / "with_replacement/survival.json").read_text())
    assert survival["treated"]["n"] == (matched["group"] == "treated").sum()
    assert survival["test"]["method"] == "robust_score" and survival["test"]["cluster"] == "patient"
    assert survival["hr_cluster"] == "patient"
    summary = json.loads((second_study / "registry/ingest_summary.json").read_text())
    assert summary["total"]["rows_read"] == 600 == summary["total"]["accepted"]


def test_no_quarantined_row_reaches_an_analysis(demo):
    quarantine = pd.read_csv(demo / "registry/quarantine.csv", dtype=str)
    centers = yaml.safe_load((REPO / "config.yaml").read_text())["registry"]["centers"]
    rejected = set()
    for center, spec in centers.items():
        id_column = next(source for source, variable in spec["columns"].items() if variable == "patient_id")
        rejected |= set(quarantine.loc[quarantine["center"] == center, id_column].dropna().str.strip())
    assert len(rejected) >= 4, "the demo quarantines rows with ids (duplicates, bad dates)"
    for analysis in analyses():
        cohort = pd.read_parquet(demo / analysis / "cohort.parquet")
        assert not rejected & set(cohort["patient_id"]), analysis


def test_subgroups_are_matched_within_their_level_and_add_up(demo):
    study = prepare_config(yaml.safe_load((REPO / "config.yaml").read_text()), REPO)
    parent = json.loads((demo / "all_patients/cohort.json").read_text())
    registry = pd.read_parquet(demo / "registry/harmonized.parquet").set_index("patient_id")
    for variable in study["analyses"]["all_patients"]["subgroups"]:
        children = {name: a["derived_from"]["subgroup"]["level"] for name, a in study["analyses"].items()
                    if a.get("derived_from", {}).get("subgroup", {}).get("variable") == variable}
        assert len(children) >= 2
        total = 0
        for name, level in children.items():
            matched = pd.read_csv(demo / name / "matched.csv", dtype={"patient_id": str})
            levels = set(registry.loc[matched["patient_id"], variable].astype(str))
            assert levels == {str(level)}, (name, levels)
            total += json.loads((demo / name / "cohort.json").read_text())["n_final"]
        assert total == parent["n_final"], variable


def test_forest_table_is_the_analyses_survival_results(demo):
    forest = pd.read_csv(demo / "forest.csv", dtype={"n_treated": str, "events_treated": str})
    assert forest["analysis"].tolist() == analyses()
    for row in forest.to_dict("records"):
        survival = json.loads((demo / row["analysis"] / "survival.json").read_text())
        assert row["hr"] == pytest.approx(survival["hr"], rel=1e-12)
        assert (row["hr_lower"], row["hr_upper"]) == pytest.approx((survival["hr_lower"], survival["hr_upper"]))
        assert row["mdrr"] == pytest.approx(survival["power"]["mdrr"])
        n = survival["treated"]["n"]
        assert row["n_treated"] == (str(n) if n >= 5 else "<5")


def test_bootstrap_split_over_jobs_gives_the_same_result(second_study):
    whole = json.loads((second_study / "two_to_one_exact/survival.json").read_text())
    split = json.loads((second_study / "two_to_one_exact_split/survival.json").read_text())
    assert split["median_difference"] == whole["median_difference"]
    assert split["rmst_difference"] == whole["rmst_difference"]
    assert split["median_difference"]["lower"] is not None
    assert split["rmst_difference"]["n_bootstrap"] == 50
    log = second_study / "logs/two_to_one_exact_split"
    assert sorted(p.name for p in log.glob("bootstrap_*.log")) == ["bootstrap_0.log", "bootstrap_1.log",
                                                                   "bootstrap_2.log"]
