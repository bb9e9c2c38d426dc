"""Federated analysis (issue 20): grouped-data KM and log-rank, the meta-analysis against metafor and a
published worked example, the bundle and the pooling's checks. The end-to-end exactness check (real
site and central runs) is tests/test_federated_workflow.py."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml

from pipeline.config.settings import Federated, Propensity, PropensityDesign, Study, Variable
from pipeline.config.validate import prepare_config
from pipeline.design.stages import propensity_stage
from pipeline.errors import ConfigError, DataError
from pipeline.federated import meta
from pipeline.federated.__main__ import main as federated_cli
from pipeline.federated.bundle import balance_sums, on_grid, site_bundle
from pipeline.federated.consortium import consortium_settings
from pipeline.federated.pool import _combined, pool, read_bundles
from pipeline.outcome.hazard_ratio import logrank, logrank_terms, logrank_test
from pipeline.outcome.km import KaplanMeier, RiskTable
from pipeline.provenance import settings_hash
from tests.conftest import REFERENCE, REPO

META = REFERENCE / "meta"
CURVE_ARRAYS = ("time", "n_risk", "n_risk_rows", "n_event", "n_censor", "surv", "std_err", "lower", "upper")


def _rows(seed: int, n: int = 300, weights: str = "one"):
    rng = np.random.default_rng(seed)
    time = np.round(rng.exponential(20, n), 1)
    time[:5] = 0.0                                    # deaths on the day of treatment
    event = (rng.random(n) < 0.6).astype(float)
    weight = {"one": np.ones(n), "whole": rng.integers(1, 4, n).astype(float),
              "fractional": rng.choice([1.0, 0.5, 1 / 3, 2.0], n)}[weights]
    return time, event, weight


# --- grouped data -----------------------------------------------------------------------------------

@pytest.mark.parametrize("weights", ["one", "whole", "fractional"])
@pytest.mark.parametrize("ci", ["log-log", "log", "plain"])
def test_km_of_summed_site_tables_is_the_km_of_the_union(weights, ci):
    time, event, weight = _rows(1, weights=weights)
    site = np.random.default_rng(2).integers(0, 3, len(time))
    union = KaplanMeier.fit(time, event, weight, ci)
    tables = [RiskTable.of_rows(time[site == s], event[site == s], weight[site == s]) for s in range(3)]
    pooled = KaplanMeier.from_counts(RiskTable.summed(tables), ci, robust=weights == "fractional",
                                     weighted=weights != "one")
    for name in CURVE_ARRAYS:
        np.testing.assert_allclose(getattr(pooled, name), getattr(union, name), rtol=1e-12, atol=1e-14,
                                   equal_nan=True, err_msg=name)
    assert pooled.median() == pytest.approx(union.median(), rel=1e-12)
    assert (pooled.n, pooled.events, pooled.weighted, pooled.logse) == (union.n, union.events, union.weighted,
                                                                         union.logse)


def test_risk_table_round_trips_through_json():
    table = RiskTable.of_rows(*_rows(3, weights="fractional"))
    back = RiskTable.from_dict(json.loads(json.dumps(table.to_dict())))
    for name in ("time", *RiskTable.COUNTS):
        np.testing.assert_array_equal(getattr(back, name), getattr(table, name))


def test_grouped_log_rank_equals_rows_and_r_survdiff_stratified():
    """R survival 3.5-3 survdiff on lung (tests/reference/meta/make_logrank_fixture.R)."""
    ref = json.loads((META / "lung_survdiff.json").read_text())
    time, event = np.array(ref["time"], float), np.array(ref["event"], float)
    treated, strata = np.array(ref["treated"], bool), np.array(ref["strata"])
    assert logrank(time, event, treated)[0] == pytest.approx(ref["chisq"], rel=1e-10)
    assert logrank(time, event, treated, strata=strata)[0] == pytest.approx(ref["chisq_stratified"], rel=1e-10)

    def table(rows):
        return RiskTable.of_rows(time[rows], event[rows], np.ones(rows.sum()))

    per_site = [logrank_terms(table((strata == s) & treated), table((strata == s) & ~treated))
                for s in np.unique(strata)]
    assert logrank_test(per_site)[0] == pytest.approx(ref["chisq_stratified"], rel=1e-10)
    summed = [RiskTable.summed([table((strata == s) & arm) for s in np.unique(strata)]) for arm in (treated, ~treated)]
    assert logrank_test([logrank_terms(*summed)])[0] == logrank(time, event, treated)[0]


def test_grid_rounds_up_and_keeps_zero():
    assert on_grid([0, 0.2, 1, 1.5, 11.99], 1).tolist() == [0, 1, 1, 2, 12]
    assert on_grid([0.1, 0.5, 0.51], 0.5).tolist() == [0.5, 0.5, 1.0]


# --- meta-analysis ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def bcg():
    """metafor 3.8-1 on dat.bcg (tests/reference/meta/make_fixture.R)."""
    return json.loads((META / "bcg_metafor.json").read_text())


@pytest.mark.parametrize("key, method, hk", [("reml", "reml", False), ("dl", "dl", False),
                                             ("reml_knha", "reml", True), ("dl_knha", "dl", True)])
def test_random_effects_equal_metafor(bcg, key, method, hk):
    result = meta.random_effects(bcg["yi"], bcg["sei"], method, hk)
    heterogeneity = meta.heterogeneity(bcg["yi"], bcg["sei"], result["tau2"])
    expected = bcg[key]
    for name in ("estimate", "se", "lower", "upper", "p", "tau2", "prediction_lower", "prediction_upper"):
        assert result[name] == pytest.approx(expected[name], rel=1e-9), name
    for name in ("i2", "h2", "q", "q_p"):
        assert heterogeneity[name] == pytest.approx(expected[name], rel=1e-9), name


def test_fixed_effect_equals_metafor(bcg):
    result = meta.fixed_effect(bcg["yi"], bcg["sei"])
    for name in ("estimate", "se", "lower", "upper", "p"):
        assert result[name] == pytest.approx(bcg["fixed"][name], rel=1e-9), name


def test_reml_matches_the_published_worked_example(bcg):
    """Viechtbauer (2010), J Stat Softw 36(3), section 3 (the BCG example's REML model): tau^2 =
    0.3132, I^2 = 92.22%, H^2 = 12.86, Q(df = 12) = 152.2330, estimate -0.7145 (SE 0.1798), 95% CI
    -1.0669 to -0.3622 (as printed, rounded)."""
    result = meta.random_effects(bcg["yi"], bcg["sei"], "reml", hartung_knapp=False)
    heterogeneity = meta.heterogeneity(bcg["yi"], bcg["sei"], result["tau2"])
    assert round(result["tau2"], 4) == 0.3132 and round(heterogeneity["i2"], 2) == 92.22
    assert round(heterogeneity["h2"], 2) == 12.86 and round(heterogeneity["q"], 4) == 152.2330
    assert heterogeneity["df"] == 12
    assert (round(result["estimate"], 4), round(result["se"], 4)) == (-0.7145, 0.1798)
    assert (round(result["lower"], 4), round(result["upper"], 4)) == (-1.0669, -0.3622)


def test_no_heterogeneity_gives_tau2_zero_and_the_fixed_effect():
    y, se = [0.1, 0.1, 0.1], [0.2, 0.3, 0.25]
    assert meta.tau2_reml(y, se) == 0 and meta.tau2_dl(y, se) == 0
    assert meta.random_effects(y, se, "reml", False)["estimate"] == pytest.approx(meta.fixed_effect(y, se)["estimate"])
    hartung_knapp = meta.random_effects(y, se, "reml", True)
    assert hartung_knapp["se"] == 0 and hartung_knapp["p"] is None


# --- the bundle -------------------------------------------------------------------------------------

VARIABLES = {"age": Variable("numeric", None, None, None, None, None, None),
             "grade": Variable("category", ("G1", "G2", "G3"), None, None, None, None, None)}


def _site_frames(seed: int, center: str, n: int = 120):
    rng = np.random.default_rng(seed)
    treated = rng.random(n) < 0.45
    cohort = pd.DataFrame({"patient_id": [f"{center}-{i}" for i in range(n)], "center": center, "treated": treated,
                           "age": rng.normal(60, 10, n).round(), "grade": rng.choice(["G1", "G2", "G3"], n),
                           "time": rng.exponential(30, n), "event": (rng.random(n) < 0.6).astype(int)})
    ids = cohort["patient_id"].to_numpy()
    t_ids, c_ids = ids[treated][:30], ids[~treated][:30]
    matched = pd.DataFrame({"patient_id": np.concatenate([t_ids, c_ids]), "treated": [True] * 30 + [False] * 30,
                            "subclass": pd.array(list(range(30)) * 2, dtype="Int64"), "weight": 1.0,
                            "ps": 0.5, "distance": 0.0})
    pairs = pd.DataFrame({"treated_id": t_ids, "control_id": c_ids, "slot": 0, "distance_diff": 0.0})
    return cohort, matched, pairs


def _study():
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config["analyses"] = {"all_patients": config["analyses"]["all_patients"]}
    config["analyses"]["all_patients"].pop("subgroups")
    config["analyses"]["all_patients"].pop("sensitivity")
    return Study.from_config(prepare_config(config, REPO))


def _bundle(seed: int, center: str, settings: dict | None = None, hr=(0.7, 0.2)) -> dict:
    study = _study()
    analysis = study.analyses["all_patients"]
    settings = settings or consortium_settings("all_patients", analysis, VARIABLES, "months", study.federated)
    cohort, matched, pairs = _site_frames(seed, center)
    survival = {"estimable": True, "hr": hr[0], "hr_robust_se": hr[1], "hr_lower": 0.5, "hr_upper": 1.0,
                "hr_cluster": "matched set", "hr_method": "coxph", "warnings": []}
    cohort_summary = {"n_registry": len(cohort) + 3, "steps": [{"criterion": "x", "before": len(cohort) + 3,
                                                                "after": len(cohort), "excluded": 3}],
                      "n_final": len(cohort), "n_treated": int(cohort["treated"].sum()),
                      "n_control": int((~cohort["treated"]).sum())}
    bundle = site_bundle(settings=settings, site=center, seed=1, min_cell=5, cohort=cohort, matched=matched, pairs=pairs,
                         cohort_summary=cohort_summary, matching_summary={"n_treated_matched": 30, "caliper_raw": 0.1},
                         survival=survival, variables=VARIABLES, analysis=analysis.__class__.from_dict(
                             {**analysis.to_dict(), "covariates": ["age", "grade"]}),
                         code_version="test")
    return json.loads(json.dumps(bundle))


def test_bundle_holds_no_patient_row():
    bundle = _bundle(1, "site_a")
    text = json.dumps(bundle)
    assert "site_a-" not in text and "patient_id" not in text
    assert bundle["weights"] == {"all_one": True, "whole_numbers": True}
    assert bundle["risk_tables"]["treated"]["n_risk_rows"][0] == 30
    assert bundle["disclosure"]["small_attrition_counts"] == ["attrition.steps[0].excluded"]


def test_config_hash_ignores_what_each_site_sets_for_itself():
    study = _study()
    analysis = study.analyses["all_patients"]
    federated = study.federated

    def digest(analysis=analysis, federated=federated, variables=VARIABLES):
        return settings_hash(consortium_settings("all_patients", analysis, variables, "months", federated))

    relabelled = {**VARIABLES, "age": Variable("numeric", None, None, None, None, "Age (years)", None)}
    split = analysis.from_dict({**analysis.to_dict(), "survival": {**analysis.survival.to_dict(), "bootstrap_jobs": 8}})
    own_site = Federated.from_dict({**federated.to_dict(), "site": "x", "analyses": ["all_patients"],
                                    "pool": {"p": ["a.json"]}})
    assert digest() == digest(variables=relabelled) == digest(analysis=split) == digest(federated=own_site)
    caliper = analysis.from_dict({**analysis.to_dict(), "matching": {**analysis.matching.to_dict(), "caliper": 0.1}})
    grid = Federated.from_dict({**federated.to_dict(), "time_grid": 3})
    assert len({digest(), digest(analysis=caliper), digest(federated=grid)}) == 3


def _written(tmp_path, bundles: dict) -> list:
    paths = []
    for name, bundle in bundles.items():
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(bundle))
        paths.append(path)
    return paths


def test_pool_refuses_bundles_of_different_settings_naming_them(tmp_path, capsys):
    a = _bundle(1, "site_a")
    b = {**_bundle(2, "site_b"), "config_hash": "0" * 64}
    paths = _written(tmp_path, {"a": a, "b": b})
    with pytest.raises(DataError, match="config hashes") as err:
        read_bundles(paths)
    assert str(paths[0]) in str(err.value) and str(paths[1]) in str(err.value)
    assert federated_cli(["pool", *map(str, paths), "-o", str(tmp_path / "out")]) == 2
    assert "refusing to pool" in capsys.readouterr().err and not (tmp_path / "out").exists()


def test_pool_refuses_a_site_twice_and_a_file_that_is_no_bundle(tmp_path):
    a = _bundle(1, "site_a")
    with pytest.raises(DataError, match="site_a appears in more than one bundle"):
        read_bundles(_written(tmp_path, {"a": a, "a2": a}))
    (tmp_path / "other.json").write_text("{}")
    with pytest.raises(DataError, match="not a federated bundle"):
        read_bundles([tmp_path / "other.json"])


def test_pooled_curves_and_balance_are_those_of_the_union(tmp_path):
    bundles = read_bundles(_written(tmp_path, {"a": _bundle(1, "site_a", hr=(0.7, 0.2)),
                                               "b": _bundle(2, "site_b", hr=(0.9, 0.3)),
                                               "c": _bundle(3, "site_c", hr=(0.5, 0.25))}))
    result, curves = pool(bundles)
    frames = [_site_frames(seed, center) for seed, center in ((1, "site_a"), (2, "site_b"), (3, "site_c"))]
    cohort = pd.concat([f[0] for f in frames], ignore_index=True)
    matched = pd.concat([f[1] for f in frames], ignore_index=True)
    rows = cohort.set_index("patient_id").loc[matched["patient_id"]]
    time = on_grid(rows["time"].to_numpy(), 1)
    for arm, mask in (("treated", rows["treated"].to_numpy()), ("control", ~rows["treated"].to_numpy())):
        union = KaplanMeier.fit(time[mask], rows["event"].to_numpy()[mask], np.ones(mask.sum()), "log-log")
        assert (result[arm]["median"], result[arm]["median_lower"], result[arm]["median_upper"]) == tuple(union.median())
        np.testing.assert_array_equal(curves[arm].surv, union.surv)
    assert result["logrank"]["chisq"] == logrank(time, rows["event"].to_numpy(), rows["treated"].to_numpy())[0]
    expected_re = meta.random_effects(np.log([0.7, 0.9, 0.5]), [0.2, 0.3, 0.25], "reml", True)
    assert result["hazard_ratio"]["random"]["estimate"] == pytest.approx(expected_re["estimate"], rel=1e-12)
    whole = balance_sums(cohort, matched, ["age", "grade"], VARIABLES)
    for when in ("before", "after"):
        for arm in ("treated", "control"):
            combined = _combined([b["balance"][when][arm] for b in bundles])
            np.testing.assert_allclose(combined["mean"], whole[when][arm]["mean"], rtol=1e-12)
            np.testing.assert_allclose(combined["sum_sq_dev"], whole[when][arm]["sum_sq_dev"], rtol=1e-10)
    assert result["sites"][0]["n_treated"] == 30


def test_a_site_that_could_not_estimate_is_listed_and_left_out(tmp_path):
    study = _study()
    settings = _bundle(1, "site_a")["settings"]
    failed = site_bundle(settings=settings, site="site_c", seed=1, min_cell=5, cohort=None, matched=None, pairs=None,
                         cohort_summary={}, matching_summary={}, survival={}, variables=VARIABLES,
                         analysis=study.analyses["all_patients"], code_version="test",
                         not_estimable={"reason": "the matched sample has no treated patients", "stage": "match"})
    bundles = read_bundles(_written(tmp_path, {"a": _bundle(1, "site_a"), "b": _bundle(2, "site_b"),
                                               "c": json.loads(json.dumps(failed))}))
    result, _ = pool(bundles)
    two_sites, _ = pool(bundles[:2])
    assert result["sites"][2]["reason"] == "the matched sample has no treated patients"
    assert result["treated"] == two_sites["treated"] and result["logrank"] == two_sites["logrank"]
    assert result["hazard_ratio"]["sites"] == ["site_a", "site_b"]


def test_config_names_unknown_federated_analyses_and_within_variables():
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config["federated"] = {"analyses": ["all_patients", "nope"]}
    config["analyses"]["all_patients"]["propensity"]["within"] = ["centre"]
    with pytest.raises(ConfigError) as err:
        prepare_config(config, REPO)
    assert "federated.analyses: 'nope' is not an analysis" in str(err.value)
    assert "propensity.within: 'centre' is not a registry variable" in str(err.value)


def test_cli_writes_the_pooled_report(tmp_path):
    paths = _written(tmp_path, {"a": _bundle(1, "site_a"), "b": _bundle(2, "site_b", hr=(1.1, 0.3))})
    assert federated_cli(["pool", *map(str, paths), "-o", str(tmp_path / "out")]) == 0
    written = {p.name for p in (tmp_path / "out").iterdir()}
    assert written == {"pooled.json", "km.png", "forest.png", "report.html"}
    html = (tmp_path / "out" / "report.html").read_text()
    assert "site_a" in html and "site_b" in html and "random effects" in html
    assert "stratified by site" in html and "site_a-" not in html


# --- propensity.within ------------------------------------------------------------------------------

def test_propensity_within_center_is_each_center_fitted_alone():
    cohort = pd.concat([_site_frames(seed, c)[0] for seed, c in ((1, "a"), (2, "b"))], ignore_index=True)
    design = PropensityDesign(("age", "grade"), "complete_case", Propensity("logistic", None, {}, ("center",)),
                              "logit", "none")
    scores, summary = propensity_stage(cohort, design, VARIABLES, seed=1)
    alone = PropensityDesign(("age", "grade"), "complete_case", Propensity("logistic", None, {}, ()), "logit", "none")
    for center in ("a", "b"):
        rows = cohort["center"] == center
        own, _ = propensity_stage(cohort[rows].reset_index(drop=True), alone, VARIABLES, seed=1)
        np.testing.assert_array_equal(scores.loc[rows, "ps"].to_numpy(), own["ps"].to_numpy())
    assert set(summary["coefficients"]) == {"center=a", "center=b"}
