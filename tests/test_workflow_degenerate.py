"""A study of hostile subgroups and designs, run end to end: every analysis ends as a result (an
estimate, or "not estimable" with its reason), no log holds a traceback, and the index, forest table
and manifest cover them all."""
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

SITES = ["only_treated", "ordinary", "constant_ecog", "no_events", "one_event_time"]
LABELS = {"treated": "resection ($x$)", "control": "IAT <b>&"}


def hostile_patients(seed: int = 5) -> pd.DataFrame:
    data = simulate_patients(n=500, seed=seed)
    data["os"] = ((data["last_followup_date"] - data["treatment_date"]).dt.days / 30.4375).round(2)
    data["site"] = np.array(SITES)[np.arange(len(data)) % len(SITES)]
    resected = data["treatment"].eq("resection")
    data.loc[data["site"].eq("only_treated") & ~resected, "site"] = "ordinary"
    data.loc[data["site"].eq("constant_ecog") & ~resected, "ecog"] = 1
    data.loc[data["site"].eq("no_events"), "death"] = 0
    one_time = data["site"].eq("one_event_time") & data["death"].eq(1)
    data.loc[one_time, "os"] = 6.0
    data.loc[data["site"].eq("one_event_time") & data["death"].eq(0), "os"] = 24.0
    same_day = data.index[data["site"].eq("ordinary") & data["death"].eq(1)][:6]
    data.loc[same_day, "os"] = 0.0                                   # deaths on the day of treatment
    data["marker"] = resected.astype(int)                            # separates the arms perfectly
    return data


def write_study(folder: Path) -> Path:
    data = hostile_patients()
    columns = ["patient_id", "treatment", "age", "ecog", "functional", "site", "marker", "os", "death"]
    (folder / "data").mkdir(parents=True)
    data[columns].to_csv(folder / "data/registry.csv", index=False)
    treatment = {"column": "treatment", "treated": "resection", "control": "iat", "labels": LABELS}
    config = {
        "seed": 3,
        "registry": {
            "variables": {
                "patient_id": {"type": "id"}, "treatment": {"type": "category", "levels": ["resection", "iat"]},
                "age": {"type": "numeric"}, "ecog": {"type": "integer"}, "functional": {"type": "binary"},
                "site": {"type": "category", "levels": SITES}, "marker": {"type": "binary"},
                "os": {"type": "numeric", "min": 0}, "death": {"type": "binary"},
            },
            "centers": {"registry": {"path": "data/registry.csv"}},
        },
        "outcome": {"time": "os", "event": "death"},
        "analyses": {
            "by_site": {"treatment": treatment, "covariates": ["age", "ecog", "functional"],
                        "subgroups": ["site"], "survival": {"bootstrap": 20}},
            "nobody": {"treatment": treatment, "covariates": ["age"], "cohort": ["age > 500"],
                       "survival": {"bootstrap": 20}},
            "separated": {"treatment": treatment, "covariates": ["age", "marker"],
                          "survival": {"bootstrap": 20}},
        },
    }
    (folder / "study.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return folder / "study.yaml"


@pytest.fixture(scope="module")
def hostile(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("hostile") / "study"
    result = run_snakemake(folder, write_study(folder))
    assert result.returncode == 0, result.stderr[-4000:]
    assert "Traceback" not in result.stderr
    return folder / "results"


def survival(results: Path, analysis: str) -> dict:
    return json.loads((results / analysis / "survival.json").read_text())


def test_no_log_holds_a_traceback(hostile):
    logs = list((hostile / "logs").rglob("*.log"))
    assert len(logs) > 20
    assert [p for p in logs if "Traceback" in p.read_text()] == []


def test_not_estimable_analyses_say_why(hostile):
    only_treated = survival(hostile, "by_site__site_only_treated")
    assert only_treated["estimable"] is False and only_treated["stage"] == "cohort"
    assert "no control patients (IAT <b>&)" in only_treated["reason"]
    assert "the cohort is empty" in survival(hostile, "nobody")["reason"]
    separated = survival(hostile, "separated")
    assert separated["estimable"] is False and separated["stage"] == "match"
    assert "marker" in separated["reason"] and "separate the arms" in separated["reason"]
    for name in ("by_site__site_only_treated", "nobody", "separated"):
        page = (hostile / name / "report.html").read_text()
        assert "Not estimable" in page or "not estimable" in page, name


def test_degenerate_but_estimable_subgroups_are_results(hostile):
    no_events = survival(hostile, "by_site__site_no_events")
    assert no_events["estimable"] is True and no_events["hr"] is None and no_events["warnings"]
    assert no_events["treated"]["events"] == 0 and no_events["treated"]["median"] is None
    one_time = survival(hostile, "by_site__site_one_event_time")
    assert one_time["estimable"] is True
    assert one_time["treated"]["median"] in (None, 6.0)
    constant = json.loads((hostile / "by_site__site_constant_ecog/balance.json").read_text())
    assert any(w.startswith("ecog is constant among") for w in constant["warnings"])


def test_same_day_deaths_are_analysed(hostile):
    cohort = pd.read_parquet(hostile / "by_site__site_ordinary/cohort.parquet")
    assert ((cohort["time"] == 0) & (cohort["event"] == 1)).sum() == 6
    summary = json.loads((hostile / "registry/ingest_summary.json").read_text())
    assert summary["total"]["quarantined"] == 0


def test_index_forest_and_manifest_cover_every_analysis(hostile):
    analyses = ["by_site", *[f"by_site__site_{s}" for s in SITES], "nobody", "separated"]
    index = (hostile / "report.html").read_text()
    for name in analyses:
        assert f'href="{name}/report.html"' in index
    assert index.count("not estimable") >= 3
    assert "$x$" in index and "IAT &lt;b&gt;&amp;" in index
    forest = pd.read_csv(hostile / "forest.csv")
    assert sorted(forest["analysis"]) == sorted(analyses)
    manifest = json.loads((hostile / "manifest.json").read_text())
    assert manifest["numbers"]["separated/survival/estimable"] is False
    assert manifest["numbers"]["by_site__site_ordinary/survival/estimable"] is True
