"""End-to-end federated round on the demo (issue 20): the demo registry split into site studies by
center (scripts/federated_demo.py), each site run as the README says, the bundles pooled with the
command line and by the coordinating site's rule, and the pooled curves, medians and log-rank tests
compared with a central run of the same centers that matches exactly on center (one propensity
model per center, as the sites fit theirs) with its times rounded to the grid."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import yaml

from pipeline.federated.bundle import on_grid
from pipeline.outcome.hazard_ratio import logrank
from pipeline.outcome.km import KaplanMeier, RiskTable
from pipeline.outcome.stage import MatchedSample
from pipeline.provenance import settings_hash
from tests.conftest import REPO, run_snakemake

pytestmark = pytest.mark.slow

ANALYSIS = "nets_federated"
SITES = ["center_a", "center_b"]
CURVE_ARRAYS = ("time", "n_risk", "n_risk_rows", "n_event", "n_censor", "surv", "std_err", "lower", "upper")


def _python(*args, cwd):
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=cwd, timeout=600)


@pytest.fixture(scope="module")
def federated_round(tmp_path_factory):
    """The README's round in a scratch folder: build the studies, run each site, pool; and the central run."""
    root = tmp_path_factory.mktemp("federated")
    made = _python(str(REPO / "scripts/federated_demo.py"), "federated_demo", cwd=root)
    assert made.returncode == 0, made.stderr
    demo = root / "federated_demo"
    for site in SITES:
        ran = run_snakemake(demo / site, demo / site / "config.yaml")
        assert ran.returncode == 0, ran.stderr[-4000:]
    bundles = [str(demo / site / "results/federated" / f"{ANALYSIS}.json") for site in SITES]
    pooled = _python("-m", "pipeline.federated", "pool", *bundles, "-o", str(demo / "pooled"), cwd=root)
    assert pooled.returncode == 0, pooled.stderr
    central = demo / "central"
    targets = [f"results/{ANALYSIS}/{name}" for name in ("cohort.parquet", "matched.parquet", "pairs.parquet")]
    ran = run_snakemake(central, central / "config.yaml", *targets)
    assert ran.returncode == 0, ran.stderr[-4000:]
    return demo


def _central_sample(demo):
    folder = demo / "central/results" / ANALYSIS
    frames = [pd.read_parquet(folder / f"{name}.parquet") for name in ("cohort", "matched", "pairs")]
    return MatchedSample.from_frames(*frames), frames[0], frames[1]


def test_central_matched_sample_is_the_union_of_the_sites(federated_round):
    _, _, central = _central_sample(federated_round)
    sites = pd.concat([pd.read_parquet(federated_round / site / "results" / ANALYSIS / "matched.parquet")
                       for site in SITES])
    key = ["patient_id", "treated", "weight"]
    assert len(central) > 50
    pd.testing.assert_frame_equal(central[key].sort_values("patient_id").reset_index(drop=True),
                                  sites[key].sort_values("patient_id").reset_index(drop=True))


def test_pooled_curves_medians_and_log_rank_equal_the_central_run(federated_round):
    pooled = json.loads((federated_round / "pooled/pooled.json").read_text())
    sample, cohort, matched = _central_sample(federated_round)
    time = on_grid(sample.time, pooled["time_grid"]["width"])
    assert pooled["estimable"] and pooled["sites"][0]["site"] == SITES[0]
    for arm, rows in (("treated", sample.treated), ("control", ~sample.treated)):
        central = KaplanMeier.fit(time[rows], sample.event[rows], sample.weight[rows], pooled["ci"])
        table = RiskTable.from_dict(pooled["risk_tables"][arm])
        curve = KaplanMeier.from_counts(table, pooled["ci"], robust=False, weighted=pooled["weighted"])
        for name in CURVE_ARRAYS:
            np.testing.assert_allclose(getattr(curve, name), getattr(central, name), rtol=1e-12, atol=1e-12,
                                       equal_nan=True, err_msg=f"{arm} {name}")
        medians = [pooled[arm][key] for key in ("median", "median_lower", "median_upper")]
        assert [m is None for m in medians] == [m is None for m in central.median()]
        assert [m for m in medians if m is not None] == pytest.approx(
            [m for m in central.median() if m is not None], rel=1e-12, abs=1e-12)
        assert pooled[arm]["n"] == central.n and pooled[arm]["events"] == central.events
    center = cohort.set_index("patient_id").loc[matched["patient_id"], "center"].to_numpy()
    in_sample = pd.Index(matched["patient_id"]).get_indexer(cohort["patient_id"])
    strata = center[in_sample[in_sample >= 0]]
    plain = logrank(time, sample.event, sample.treated)
    stratified = logrank(time, sample.event, sample.treated, strata=strata)
    assert pooled["logrank"]["chisq"] == pytest.approx(plain[0], rel=1e-12)
    assert pooled["logrank"]["p"] == pytest.approx(plain[1], rel=1e-12)
    assert pooled["logrank_stratified"]["chisq"] == pytest.approx(stratified[0], rel=1e-12)
    assert pooled["logrank_stratified"]["strata"] == len(SITES)


def test_bundles_share_the_config_hash_and_hold_the_site_hr(federated_round):
    bundles = [json.loads((federated_round / site / "results/federated" / f"{ANALYSIS}.json").read_text())
               for site in SITES]
    assert len({b["config_hash"] for b in bundles}) == 1 and [b["site"] for b in bundles] == SITES
    for site, bundle in zip(SITES, bundles):
        survival = json.loads((federated_round / site / "results" / ANALYSIS / "survival.json").read_text())
        assert bundle["hazard_ratio"]["log_hr"] == pytest.approx(np.log(survival["hr"]), rel=1e-12)
        assert bundle["hazard_ratio"]["se"] == survival["hr_robust_se"]
        patient_ids = pd.read_parquet(federated_round / site / "results" / ANALYSIS / "cohort.parquet")["patient_id"]
        text = json.dumps(bundle)
        assert not any(f'"{pid}"' in text for pid in patient_ids)


def test_coordinating_site_rule_writes_the_same_pooled_report(federated_round):
    site = federated_round / SITES[0]
    config = yaml.safe_load((site / "config.yaml").read_text())
    config["federated"]["pool"] = {ANALYSIS: [f"../{s}/results/federated/{ANALYSIS}.json" for s in SITES]}
    (site / "coordinator.yaml").write_text(yaml.safe_dump(config))
    ran = run_snakemake(site, site / "coordinator.yaml")
    assert ran.returncode == 0, ran.stderr[-4000:]
    by_rule = json.loads((site / "results/federated/pooled" / ANALYSIS / "pooled.json").read_text())
    by_cli = json.loads((federated_round / "pooled/pooled.json").read_text())
    for result in (by_rule, by_cli):
        for row in result["sites"]:
            row.pop("path")
    assert by_rule == by_cli


def test_pool_refuses_a_site_with_other_settings(federated_round, tmp_path):
    other = json.loads((federated_round / SITES[1] / "results/federated" / f"{ANALYSIS}.json").read_text())
    other["settings"]["settings"]["matching"]["caliper"] = 0.1
    other["config_hash"] = settings_hash(other["settings"])
    (tmp_path / "other.json").write_text(json.dumps(other))
    first = federated_round / SITES[0] / "results/federated" / f"{ANALYSIS}.json"
    ran = _python("-m", "pipeline.federated", "pool", str(first), str(tmp_path / "other.json"), "-o",
                  str(tmp_path / "out"), cwd=tmp_path)
    assert ran.returncode == 2 and "Traceback" not in ran.stderr
    assert "refusing to pool" in ran.stderr and str(first) in ran.stderr and "other.json" in ran.stderr
