"""End-to-end: real Snakemake runs on the demo study and on a second, differently shaped study.

The demo runs once per test session (module fixture) in a temporary study folder, so the checks
below read real result files written by the real workflow.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from tests.conftest import REPO

pytestmark = pytest.mark.slow
SNAKEMAKE = [sys.executable, "-m", "snakemake"]


def run_snakemake(study: Path, configfile: Path, *extra: str) -> subprocess.CompletedProcess:
    cmd = [*SNAKEMAKE, "-s", str(REPO / "Snakefile"), "-d", str(study), "--configfile", str(configfile),
           "--cores", "2", *extra]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=1200)


def copy_demo(target: Path) -> Path:
    target.mkdir(parents=True)
    shutil.copytree(REPO / "resources", target / "resources")
    shutil.copy(REPO / "config.yaml", target / "config.yaml")
    return target


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    study = copy_demo(tmp_path_factory.mktemp("demo") / "study")
    result = run_snakemake(study, study / "config.yaml")
    assert result.returncode == 0, result.stderr[-4000:]
    return study / "results"


def analyses() -> list[str]:
    return list(yaml.safe_load((REPO / "config.yaml").read_text())["analyses"])


CONTRACT_FILES = ["cohort.json", "propensity.parquet", "matched.csv", "pairs.csv", "balance.csv",
                  "survival.json", "report.html"]


def test_every_contract_file_is_written(demo):
    for name in ["registry/harmonized.parquet", "registry/quarantine.csv", "registry/ingest_summary.json",
                 "report.html"]:
        assert (demo / name).is_file(), name
    for analysis in analyses():
        for name in CONTRACT_FILES:
            assert (demo / analysis / name).is_file(), f"{analysis}/{name}"


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


def test_matched_sample_is_consistent_with_pairs(demo):
    for analysis in analyses():
        matched = pd.read_csv(demo / analysis / "matched.csv", dtype={"patient_id": str})
        pairs = pd.read_csv(demo / analysis / "pairs.csv", dtype={"treated_id": str, "control_id": str})
        assert set(pairs["control_id"]) <= set(matched.loc[matched["group"] == "control", "patient_id"])
        assert set(pairs["treated_id"]) == set(matched.loc[matched["group"] == "treated", "patient_id"])
        assert not pairs["control_id"].duplicated().any(), "1:1 without replacement reuses no control"
        assert (matched["weight"] > 0).all()
        # a matched set is one treated patient and its control(s)
        sets = matched.groupby("subclass")["group"].agg(lambda g: (g == "treated").sum())
        assert (sets == 1).all()


def test_medians_are_null_only_when_not_reached(demo):
    for analysis in analyses():
        survival = json.loads((demo / analysis / "survival.json").read_text())
        cohort = pd.read_parquet(demo / analysis / "cohort.parquet")
        matched = pd.read_csv(demo / analysis / "matched.csv", dtype={"patient_id": str})
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


def test_report_has_the_headline(demo):
    for analysis in analyses():
        page = (demo / analysis / "report.html").read_text()
        assert "Median survival: resection" in page and " vs IAT " in page
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
