"""Multiple imputation run end to end: both approaches, a weighting design, analyses the data cannot
answer, and one imputation's job rerun on its own."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from pipeline.synth import simulate_patients
from tests.conftest import run_snakemake

pytestmark = pytest.mark.slow


def write_study(folder: Path) -> Path:
    data = simulate_patients(n=400, seed=9)
    data["os"] = ((data["last_followup_date"] - data["treatment_date"]).dt.days / 30.4375).round(2)
    rng = np.random.default_rng(9)
    died_resected = data["treatment"].eq("resection") & data["death"].eq(1)
    data.loc[rng.random(len(data)) < np.where(died_resected, 0.4, 0.1), "age"] = np.nan
    data.loc[rng.random(len(data)) < 0.15, "grade"] = None
    data.loc[rng.random(len(data)) < 0.1, "ecog"] = pd.NA
    data["marker"] = data["treatment"].eq("resection").astype(int)     # separates the arms perfectly
    columns = ["patient_id", "treatment", "age", "grade", "ecog", "functional", "marker", "os", "death"]
    (folder / "data").mkdir(parents=True)
    data[columns].to_csv(folder / "data/registry.csv", index=False)
    treatment = {"column": "treatment", "treated": "resection", "control": "iat"}
    imputed = {"treatment": treatment, "covariates": ["age", "grade", "ecog", "functional"],
               "missing": "multiple_imputation", "survival": {"bootstrap": 20, "rmst_tau": 36}}
    config = {
        "seed": 5,
        "registry": {
            "variables": {
                "patient_id": {"type": "id"}, "treatment": {"type": "category", "levels": ["resection", "iat"]},
                "age": {"type": "numeric", "min": 18, "max": 100},
                "grade": {"type": "category", "levels": ["G1", "G2", "G3"]},
                "ecog": {"type": "integer", "min": 0, "max": 4}, "functional": {"type": "binary"},
                "marker": {"type": "binary"}, "os": {"type": "numeric", "min": 0}, "death": {"type": "binary"},
            },
            "centers": {"registry": {"path": "data/registry.csv"}},
        },
        "outcome": {"time": "os", "event": "death"},
        "analyses": {
            "within_overlap": {**imputed, "imputation": {"m": 3, "iterations": 3}, "design": "weighting",
                               "weighting": {"estimand": "ATO"}},
            "across": {**imputed, "imputation": {"m": 3, "iterations": 3, "approach": "across"}},
            "nobody": {**imputed, "imputation": {"m": 2}, "cohort": ["os > 10000"]},
            "separated": {**imputed, "covariates": ["age", "marker"], "imputation": {"m": 2, "iterations": 2}},
        },
    }
    (folder / "study.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return folder / "study.yaml"


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("imputation") / "study"
    result = run_snakemake(folder, write_study(folder))
    assert result.returncode == 0, result.stderr[-4000:]
    return folder


def read(results: Path, path: str) -> dict:
    return json.loads((results / path).read_text())


def test_within_pools_each_imputations_weighted_comparison(study):
    results = study / "results"
    pooled = read(results, "within_overlap/survival.json")
    details = pooled["imputation"]
    assert details["m"] == 3 and details["approach"] == "within" and details["pooled"] == [1, 2, 3]
    own = [read(results, f"within_overlap/imputations/{i}/survival.json") for i in (1, 2, 3)]
    assert details["log_hr"] == [np.log(r["hr"]) for r in own]
    assert len(set(details["log_hr"])) == 3 and 0 < details["fmi"] < 1
    assert pooled["test"]["method"] == "pooled_wald" and pooled["logrank_p"] is None
    matched = pd.read_csv(results / "within_overlap/matched.csv")
    assert sorted(matched["imputation"].unique()) == [1, 2, 3]
    balance = pd.read_csv(results / "within_overlap/balance.csv")
    assert (balance["smd_after_min"] <= balance["smd_after"] + 1e-12).all()
    assert (balance["smd_after"] <= balance["smd_after_max"] + 1e-12).all()
    page = (results / "within_overlap/report.html").read_text()
    assert "Multiple imputation" in page and 'id="imputation-estimates"' in page and "pooled Wald test" in page


def test_across_matches_once_on_the_averaged_scores(study):
    results = study / "results"
    scores = [pd.read_parquet(results / f"across/imputations/{i}/propensity.parquet")["ps"] for i in (1, 2, 3)]
    averaged = pd.read_parquet(results / "across/propensity.parquet")["ps"]
    assert np.allclose(averaged, np.mean(scores, axis=0), rtol=1e-15, atol=0)
    for i in (1, 2, 3):
        assert (results / f"across/imputations/{i}/matched.parquet").read_bytes() == \
            (results / "across/matched.parquet").read_bytes()
    details = read(results, "across/survival.json")["imputation"]
    assert len(set(details["log_hr"])) == 1          # one matched sample: the survival comparison is the same
    cohort = pd.read_parquet(results / "across/imputations/2/cohort.parquet")
    assert not cohort[["age", "grade", "ecog"]].isna().any().any()
    assert cohort["age"].between(18, 100).all() and cohort["ecog"].isin([0, 1, 2, 3, 4]).all()


def test_analyses_the_data_cannot_answer_say_why_and_others_go_on(study):
    results = study / "results"
    assert "the cohort is empty" in read(results, "nobody/survival.json")["reason"]
    separated = read(results, "separated/survival.json")
    assert separated["estimable"] is False and "separate the arms" in separated["reason"]
    assert "(in every imputation, stage match)" in separated["reason"]
    logs = list((results / "logs").rglob("*.log"))
    assert [p for p in logs if "Traceback" in p.read_text()] == []
    forest = pd.read_csv(results / "forest.csv")
    assert sorted(forest["analysis"]) == ["across", "nobody", "separated", "within_overlap"]
    assert "Not estimable: no treated patient could be matched" in (results / "separated/report.html").read_text()


def test_one_imputation_reruns_identically(study):
    completed = study / "results/within_overlap/imputations/2/cohort.parquet"
    before = completed.read_bytes()
    completed.unlink()
    result = run_snakemake(study, study / "study.yaml", "results/within_overlap/imputations/2/cohort.parquet")
    assert result.returncode == 0, result.stderr[-4000:]
    assert "impute" in result.stderr and completed.read_bytes() == before
