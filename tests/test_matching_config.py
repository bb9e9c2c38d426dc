"""The matching block's new keys (method optimal/full, Mahalanobis distance, full matching's bounds):
schema defaults, the checks the schema cannot express, the sensitivity grid over methods, and one
real Snakemake run of a small study with optimal, full and Mahalanobis matching."""
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from pipeline.config.settings import Study
from pipeline.config.validate import (analysis_columns, analysis_problems, expand_analyses, fill_defaults,
                                      load_schema)
from pipeline.synth import simulate_patients
from tests.conftest import run_snakemake


def _filled(config):
    schema = load_schema()
    return fill_defaults(config, schema, schema)


def _problems(config, **matching):
    config["analyses"]["all_patients"]["matching"] = matching
    study = Study.from_config(_filled(config))
    return analysis_problems(study.analyses["all_patients"], study, analysis_columns(study))


def test_new_keys_have_defaults_that_change_nothing(demo_config):
    matching = Study.from_config(_filled(demo_config)).analyses["all_patients"].matching
    assert (matching.distance, matching.mahalanobis, matching.min_controls, matching.max_controls) == (
        "propensity", (), None, None)


def test_matching_problems_the_schema_cannot_express(demo_config):
    covariates = demo_config["analyses"]["all_patients"]["covariates"]
    assert _problems(demo_config, method="optimal", distance="mahalanobis", mahalanobis=[covariates[0]]) == []
    assert _problems(demo_config, method="full", min_controls=0.5, max_controls=3) == []
    assert _problems(demo_config, distance="mahalanobis", mahalanobis=["center", "nonsense"]) == [
        "matching.mahalanobis: 'center' is not a covariate of the analysis",
        "matching.mahalanobis: 'nonsense' is not a covariate of the analysis",
        "matching.distance: mahalanobis needs covariates"]
    assert _problems(demo_config, method="optimal", replace=True) == [
        "matching.replace: optimal matching is without replacement"]
    assert _problems(demo_config, method="nearest", max_controls=2) == [
        "matching.max_controls: applies to method full only"]
    assert _problems(demo_config, method="full", min_controls=3, max_controls=2) == [
        "matching.min_controls: must not exceed max_controls"]


def test_a_sensitivity_grid_over_matching_methods(demo_config):
    demo_config["analyses"]["all_patients"]["sensitivity"] = {"matching": {"method": ["optimal", "full"]}}
    config = _filled(demo_config)
    expanded = expand_analyses(config["analyses"], config["registry"]["variables"])
    assert expanded["all_patients__method-optimal"]["matching"]["method"] == "optimal"
    assert expanded["all_patients__method-full"]["matching"]["method"] == "full"
    assert expanded["all_patients__method-full"]["matching"]["caliper"] == 0.2


# ---------------------------------------------------------------------------------------------
# end to end


def write_study(folder: Path) -> Path:
    truth = simulate_patients(n=400, seed=5)
    truth["os_months"] = (truth["last_followup_date"] - truth["treatment_date"]).dt.days / 30.4375
    columns = ["patient_id", "treatment", "age", "ecog", "liver_burden_gt25", "functional", "os_months", "death"]
    (folder / "data").mkdir(parents=True)
    truth[columns].to_csv(folder / "data/registry.csv", index=False)
    analysis = {
        "treatment": {"column": "treatment", "treated": "resection", "control": "iat"},
        "covariates": ["age", "ecog", "liver_burden_gt25", "functional"],
        "matching": {"method": "optimal", "ratio": 2},
        "survival": {"bootstrap": 20, "landmarks": [12, 24]},
        "sensitivity": {"matching": {"method": ["full", "nearest"]}},
    }
    config = {
        "seed": 3,
        "registry": {
            "variables": {
                "patient_id": {"type": "id"}, "treatment": {"type": "category", "levels": ["resection", "iat"]},
                "age": {"type": "numeric", "min": 0, "max": 110}, "ecog": {"type": "integer", "min": 0, "max": 4},
                "liver_burden_gt25": {"type": "binary"}, "functional": {"type": "binary"},
                "os_months": {"type": "numeric", "min": 0}, "death": {"type": "binary"},
            },
            "centers": {"one": {"path": "data/registry.csv", "columns": {c: c for c in columns}}},
        },
        "outcome": {"time": "os_months", "event": "death"},
        "analyses": {
            "designs": analysis,
            "mahalanobis": {**analysis, "sensitivity": {},
                            "matching": {"method": "nearest", "distance": "mahalanobis", "mahalanobis": ["age", "ecog"]}},
        },
        "report": {"min_cell": 5},
    }
    (folder / "study.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return folder / "study.yaml"


@pytest.mark.slow
def test_optimal_full_and_mahalanobis_matching_run_end_to_end(tmp_path):
    folder = tmp_path / "study"
    result = run_snakemake(folder, write_study(folder))
    assert result.returncode == 0, result.stderr[-4000:]
    results = folder / "results"
    for name, method in (("designs", "optimal"), ("designs__method-full", "full"),
                         ("designs__method-nearest", "nearest"), ("mahalanobis", "nearest")):
        summary = json.loads((results / name / "matching.json").read_text())
        assert summary["estimable"] and summary["settings"]["method"] == method
        survival = json.loads((results / name / "survival.json").read_text())
        assert survival["estimable"], survival.get("reason")
        matched = pd.read_csv(results / name / "matched.csv")
        assert matched.groupby("subclass")["group"].nunique().eq(2).all()   # both arms in every set
    optimal = json.loads((results / "designs/matching.json").read_text())
    nearest_pairs = pd.read_csv(results / "designs__method-nearest/pairs.csv")
    optimal_pairs = pd.read_csv(results / "designs/pairs.csv")
    assert optimal["total_distance"] == pytest.approx(optimal_pairs["distance_diff"].sum(), abs=1e-9)
    if len(optimal_pairs) == len(nearest_pairs):
        assert optimal_pairs["distance_diff"].sum() <= nearest_pairs["distance_diff"].sum() + 1e-9
    full = pd.read_csv(results / "designs__method-full/matched.csv")
    assert not np.allclose(full["weight"], 1.0)            # full matching weighs the controls
    assert json.loads((results / "designs__method-full/survival.json").read_text())["test"]["method"] == "robust_score"
    assert "optimal matching" in (results / "designs/report.html").read_text()
    assert "Mahalanobis distance of age, ecog" in (results / "mahalanobis/report.html").read_text()
