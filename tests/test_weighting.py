"""Weighting designs (design: weighting): weights, trimming and stabilisation against base-R formulas,
balance with cobalt's SMD denominators, and the survival comparison of the weighted sample against
R survival 3.5-3 (tests/reference/weighting, made by make_weighting.R)."""
import dataclasses
import json
import logging

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from pipeline.config.settings import Survival, Weighting
from pipeline.config.validate import ConfigError, expand_analyses, fill_defaults, load_schema, prepare_config
from pipeline.design import weighting as weighting_schemes
from pipeline.design.balance import balance_table
from pipeline.design.designs import design_label, design_name, design_names
from pipeline.design.stages import balance_stage, matching_weights, weighting_stage
from pipeline.design.table_one import table_one
from pipeline.design.weighting.common import WeightingScheme, trim_bounds
from pipeline.errors import NotEstimable
from pipeline.outcome.bootstrap import bootstrap_differences
from pipeline.outcome.stage import bootstrap_stage, survival_stage
from tests.conftest import REFERENCE
from tests.test_report_pages import settings as analysis_settings
from tests.test_report_formatting import variables

WEIGHTING = REFERENCE / "weighting"
SPECS = pd.read_csv(WEIGHTING / "specs.csv", keep_default_na=False)
SETS = {"gbsg": ("hormon", ["age", "meno", "size", "grade", "nodes", "pgr", "er"]),
        "lalonde": ("treat", ["age", "educ", "black", "hispan", "married", "nodegree", "re74", "re75"])}
CASES = [(data_set, spec) for data_set in SETS for spec in SPECS.spec]


def weighting_of(spec: str) -> Weighting:
    row = SPECS.set_index("spec").loc[spec]
    return Weighting(estimand=row.estimand, stabilize=bool(row.stabilize),
                     trim=None if row.trim == "NA" else float(row.trim))


def frames(data_set: str):
    """The stages' cohort and propensity scores of a data set (every patient within support)."""
    treatment, covariates = SETS[data_set]
    units = pd.read_csv(REFERENCE / f"{data_set}_units.csv")
    ids = "P" + units.row_id.astype(str)
    cohort = pd.DataFrame({"patient_id": ids, "treated": units[treatment] == 1, **units[covariates]})
    if "time_months" in units:
        cohort = cohort.assign(time=units.time_months, event=units.status)
    scores = pd.DataFrame({"patient_id": ids, "group": np.where(cohort.treated, "treated", "control"),
                           "ps": units.ps, "distance": np.log(units.ps / (1 - units.ps)), "discarded": False})
    return cohort, scores


def r_weights(data_set: str, spec: str) -> np.ndarray:
    return pd.read_csv(WEIGHTING / f"{data_set}_weights.csv")[spec].to_numpy(float)


def r_table(data_set: str, kind: str, spec: str) -> pd.DataFrame:
    table = pd.read_csv(WEIGHTING / f"{data_set}_{kind}.csv")
    return table[table.spec == spec]


def r_summary(data_set: str, spec: str) -> dict:
    rows = r_table(data_set, "summary", spec)
    return dict(zip(rows.quantity, rows.value))


# --- the weights ---------------------------------------------------------------------------------

@pytest.mark.parametrize("data_set, spec", CASES)
def test_weights_equal_the_base_r_formulas(data_set, spec):
    cohort, scores = frames(data_set)
    matched, pairs, summary = weighting_stage(cohort, scores, weighting_of(spec))
    expected = r_weights(data_set, spec)
    ours = pd.Series(matched.weight.to_numpy(), index=matched.patient_id).reindex(scores.patient_id, fill_value=0.0)
    np.testing.assert_allclose(ours.to_numpy(), expected, rtol=1e-13, atol=0)
    assert (ours.to_numpy() == 0).sum() == (expected == 0).sum()
    reference = r_summary(data_set, spec)
    for arm in ("treated", "control"):
        assert summary[arm]["ess"] == pytest.approx(reference[f"ess_{arm}"], rel=1e-12)
        assert summary[f"n_trimmed_{arm}"] == reference[f"n_trimmed_{arm}"]
    if weighting_of(spec).trim is None:
        assert summary["trim_bounds"] is None and np.isnan(reference["trim_lower"])
    else:
        np.testing.assert_allclose(summary["trim_bounds"], [reference["trim_lower"], reference["trim_upper"]],
                                   rtol=1e-13)
    assert len(pairs) == 0 and matched.subclass.isna().all()


def test_fixtures_cover_every_estimand_with_and_without_stabilisation_and_trimming():
    covered = {(w.estimand, w.stabilize, w.trim is not None) for w in map(weighting_of, SPECS.spec)}
    assert {estimand for estimand, _, _ in covered} == set(weighting_schemes.SCHEMES)
    assert {(s, t) for _, s, t in covered} == {(False, False), (True, False), (False, True), (True, True)}


def test_trim_bounds_are_r_type_7_quantiles_of_each_arm():
    ps = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8])
    treated = np.array([True, True, True, True, False, False, False, False])
    # treated 0.1..0.4: 0.25 quantile = 0.1 + 0.75 * 0.1; controls 0.5..0.8: 0.75 quantile = 0.7 + 0.25 * 0.1
    assert trim_bounds(ps, treated, np.ones(8, bool), 0.25) == pytest.approx((0.175, 0.725))


def test_discarded_and_zero_one_scores_get_no_weight_and_are_counted():
    cohort, scores = frames("gbsg")
    scores.loc[0, "discarded"] = True
    scores.loc[1, "ps"] = 1.0            # a control (row 2 of gbsg is not treated) with a score of 1
    assert not cohort.treated[1] and not cohort.treated[0]
    matched, _, summary = weighting_stage(cohort, scores, Weighting("ATE", False, None))
    assert {"P1", "P2"}.isdisjoint(matched.patient_id)
    assert summary["n_discarded_control"] == 2 and summary["n_discarded_treated"] == 0
    assert summary["n_controls_matched"] == (~cohort.treated).sum() - 2
    assert np.isfinite(matched.weight).all()


def test_stabilised_weights_are_the_plain_ones_times_the_arm_share():
    cohort, scores = frames("lalonde")
    plain = weighting_stage(cohort, scores, Weighting("ATE", False, None))[0].weight.to_numpy()
    stable = weighting_stage(cohort, scores, Weighting("ATE", True, None))[0].weight.to_numpy()
    share = cohort.treated.mean()
    np.testing.assert_allclose(stable, plain * np.where(cohort.treated, share, 1 - share), rtol=1e-15)


def test_an_arm_trimmed_away_is_not_estimable():
    cohort, scores = frames("gbsg")
    scores["discarded"] = ~cohort.treated | (scores.ps < scores.ps[cohort.treated].median())
    with pytest.raises(NotEstimable, match="no control patient is left to weight"):
        weighting_stage(cohort, scores, Weighting("ATT", False, 0.1))


def test_the_stage_logs_what_it_weighted(caplog):
    cohort, scores = frames("gbsg")
    with caplog.at_level(logging.INFO, logger="pipeline.design.stages"):
        weighting_stage(cohort, scores, Weighting("ATO", False, 0.1))
    assert any(r.getMessage().startswith("weighting (overlap): ") and "trimmed" in r.getMessage()
               for r in caplog.records)


# --- balance: cobalt's denominators per estimand ---------------------------------------------------

@pytest.mark.parametrize("data_set, spec", CASES)
def test_balance_matches_cobalt_conventions(data_set, spec):
    treatment, covariates = SETS[data_set]
    units = pd.read_csv(REFERENCE / f"{data_set}_units.csv")
    expected = r_table(data_set, "balance", spec)
    result = balance_table(units[covariates].astype(float), units[treatment].to_numpy(), r_weights(data_set, spec),
                           estimand=weighting_of(spec).estimand)
    assert result.variable.tolist() == expected.variable.tolist()
    for column in ("smd_before", "smd_after", "var_ratio_after", "ecdf_max_after"):
        np.testing.assert_allclose(result[column].to_numpy(float), expected[column].to_numpy(float),
                                   rtol=1e-10, atol=1e-12, err_msg=column)


@pytest.mark.parametrize("data_set", list(SETS))
def test_overlap_weights_balance_the_logistic_models_covariates_exactly(data_set):
    """Li, Morgan & Zaslavsky (2018): with the logistic regression's own scores, the overlap-weighted
    means of its covariates are equal in the arms (up to glm's convergence)."""
    treatment, covariates = SETS[data_set]
    units = pd.read_csv(REFERENCE / f"{data_set}_units.csv")
    cohort, scores = frames(data_set)
    matched, _, _ = weighting_stage(cohort, scores, Weighting("ATO", False, None))
    result = balance_table(units[covariates].astype(float), units[treatment].to_numpy(),
                           matched.weight.to_numpy(), estimand="ATO")
    assert result.smd_after.abs().max() < 1e-7
    assert result.smd_before.abs().max() > 0.5


def test_table_one_smds_use_the_estimands_denominator():
    cohort, scores = frames("lalonde")
    weights = r_weights("lalonde", "ate")
    spec = variables(age={"type": "numeric"}, black={"type": "binary"})
    table = table_one(cohort, ["age", "black"], spec, cohort.treated.to_numpy(), weights, 5, estimand="ATE")
    expected = r_table("lalonde", "balance", "ate").set_index("variable")
    treated_cells = table[(table.arm == "treated") & (table.variable.isin(["age", "black"]))]
    for stage in ("before", "after"):
        smds = treated_cells[treated_cells.stage == stage].set_index("variable").smd
        np.testing.assert_allclose(smds[["age", "black"]], expected.loc[["age", "black"], f"smd_{stage}"], rtol=1e-9)


def test_balance_stage_passes_the_estimand():
    cohort, scores = frames("gbsg")
    matched, _, _ = weighting_stage(cohort, scores, Weighting("ATE", False, None))
    spec = variables(age={"type": "numeric"}, meno={"type": "binary"})
    balance, _, summary = balance_stage(cohort, scores, matching_weights(cohort, matched), ["age", "meno"], "complete_case", spec, 5, "ATE")
    expected = r_table("gbsg", "balance", "ate").set_index("variable")
    np.testing.assert_allclose(balance.set_index("variable").smd_after, expected.loc[["age", "meno"], "smd_after"],
                               rtol=1e-9)
    att = balance_stage(cohort, scores, matching_weights(cohort, matched), ["age", "meno"], "complete_case", spec, 5, "ATT")[0]
    assert not np.allclose(att.smd_before, balance.smd_before), "the denominator depends on the estimand"


# --- survival of the weighted sample: weighted KM, Cox clustered on the patient, robust score test

SURVIVAL = pd.read_csv(WEIGHTING / "gbsg_survival.csv", keep_default_na=False)


def weighted_survival(spec, bootstrap=0, jobs=1):
    cohort, scores = frames("gbsg")
    matched, pairs, _ = weighting_stage(cohort, scores, weighting_of(spec))
    survival = Survival(rmst_tau=None, landmarks=(12.0, 36.0, 60.0), ci="log-log", bootstrap=bootstrap,
                        bootstrap_jobs=jobs, km_bands=False)
    return cohort, matched, pairs, survival


@pytest.mark.parametrize("spec", list(SPECS.spec))
def test_weighted_survival_matches_r_coxph_clustered_on_the_patient(spec):
    cohort, matched, pairs, survival = weighted_survival(spec)
    result, curves = survival_stage(cohort, matched, pairs, survival, seed=1, time_unit="months", relevant_hr=1.5)
    rows = SURVIVAL[SURVIVAL.spec == spec]
    both = {"tau": result["tau"], "logrank_chisq": result["logrank_chisq"], "hr": result["hr"],
            "hr_robust_se": result["hr_robust_se"], "hr_p": result["hr_p"], "hr_lower": result["hr_lower"],
            "hr_upper": result["hr_upper"], "robscore": result["test"]["chisq"], "robscore_p": result["test"]["p"],
            "sctest": result["score_tests"]["naive_chisq"]}
    assert len(rows) > 40
    for arm, quantity, value in zip(rows.arm, rows.quantity, rows.value):
        if arm == "both":
            actual = both[quantity]
        elif quantity.startswith(("surv_", "lower_", "upper_")):
            kind, landmark = quantity.split("_")
            actual = (result[arm]["survival_at"][landmark] if kind == "surv"
                      else result[arm]["survival_at_ci"][landmark][kind == "upper"])
        else:
            actual = result[arm][quantity]
        if value == "NA":
            assert actual is None, f"{spec}/{arm}/{quantity}"
        else:
            assert actual == pytest.approx(float(value), rel=1e-11), f"{spec}/{arm}/{quantity}"
    assert result["test"]["method"] == "robust_score" and result["test"]["cluster"] == "patient"
    assert result["hr_cluster"] == "patient" and "cluster = patient," in result["hr_method"]
    assert "conditional_hr" not in result
    assert result["test"]["p"] == pytest.approx(stats.chi2.sf(result["test"]["chisq"], 1), rel=1e-12)


def test_the_bootstrap_resamples_patients_with_the_weights_fixed():
    cohort, matched, pairs, survival = weighted_survival("ate_stabilized", bootstrap=64)
    result, _ = survival_stage(cohort, matched, pairs, survival, seed=3, time_unit="months", relevant_hr=1.5)
    assert result["median_difference"]["resampled"] == "patients"
    assert "bootstrap resamples of the patients" in result["rmst_difference"]["method"]
    rows = pd.Index(matched.patient_id).get_indexer(cohort.patient_id)
    sample = cohort[rows >= 0]
    weight = matched.weight.to_numpy()[rows[rows >= 0]]
    direct = bootstrap_differences(sample.time, sample.event, sample.treated, weight, np.arange(len(sample)),
                                   tau=result["tau"], replicates=64, seed=3)
    lower, upper = np.quantile(direct["rmst_difference"], [0.025, 0.975])
    assert (result["rmst_difference"]["lower"], result["rmst_difference"]["upper"]) == (lower, upper)
    split = dataclasses.replace(survival, bootstrap_jobs=2)
    gathered = np.concatenate([bootstrap_stage(cohort, matched, pairs, split, 3, job) for job in range(2)])
    np.testing.assert_array_equal(gathered, direct)


# --- registry, designs and the config --------------------------------------------------------------

def test_a_weighting_scheme_added_to_the_registry_is_an_estimand_and_a_design(monkeypatch):
    half = WeightingScheme(name="halved", estimand="ATH", label="halved (ATH)", weights_name="halved weights",
                           weights=lambda ps, treated: np.full(len(ps), 0.5), describe=lambda w: "Halved.")
    monkeypatch.setitem(weighting_schemes.SCHEMES, "ATH", half)
    schema = load_schema()
    analysis = schema["$defs"]["analysis"]["properties"]
    assert "ATH" in analysis["weighting"]["properties"]["estimand"]["enum"]
    assert "halved" in analysis["sensitivity"]["properties"]["design"]["items"]["enum"]
    assert design_label("halved") == "halved (ATH)" and "halved" in design_names()
    cohort, scores = frames("gbsg")
    matched, _, summary = weighting_stage(cohort, scores, Weighting("ATH", False, None))
    assert (matched.weight == 0.5).all() and summary["scheme"] == "halved"
    assert weighting_schemes.describe(Weighting("ATH", True, None), None).startswith("Halved. The weights were stab")


def test_design_names_come_from_both_registries():
    assert design_names()[:1] == ["nearest"]
    assert design_names()[-3:] == ["ipw_att", "ipw_ate", "overlap"]
    assert design_name(analysis_settings()) == "nearest"
    assert design_name(analysis_settings(design="weighting", weighting={"estimand": "ATO"})) == "overlap"
    assert analysis_settings(design="weighting", weighting={"estimand": "ATE"}).estimand == "ATE"
    assert analysis_settings(weighting={"estimand": "ATE"}).estimand == "ATT", "a matching design targets the ATT"


def test_weighting_defaults_and_bounds(demo_config):
    analysis = analysis_settings(design="weighting")
    assert analysis.weighting == Weighting(estimand="ATT", stabilize=False, trim=None)
    assert analysis_settings().design == "matching"
    demo_config["analyses"]["all_patients"].update(design="weighting", weighting={"trim": 0.5})
    with pytest.raises(ConfigError, match="weighting.trim"):
        prepare_config(demo_config, REFERENCE.parents[1])


def test_exact_matching_variables_are_not_needed_by_a_weighting_design():
    matched = analysis_settings(matching={"exact": ["functional"]})
    weighted = analysis_settings(design="weighting", matching={"exact": ["functional"]})
    assert matched.selection.needed == ("functional",) and weighted.selection.needed == ()


def expanded(demo_config, sensitivity):
    demo_config["analyses"]["all_patients"]["sensitivity"] = sensitivity
    schema = load_schema()
    config = fill_defaults(demo_config, schema, schema)
    return expand_analyses(config["analyses"], config["registry"]["variables"])


def test_design_sensitivity_fans_out_into_full_analyses(demo_config):
    analyses = expanded(demo_config, {"design": ["nearest", "ipw_att", "ipw_ate", "overlap"]})
    names = [n for n in analyses if n.startswith("all_patients__design")]
    assert names == ["all_patients__design-ipw_att", "all_patients__design-ipw_ate", "all_patients__design-overlap"]
    ate = analyses["all_patients__design-ipw_ate"]
    assert ate["design"] == "weighting" and ate["weighting"]["estimand"] == "ATE"
    assert ate["derived_from"] == {"analysis": "all_patients", "variant": {"design": "ipw_ate"}}
    assert ate["subgroups"] == [] and ate["sensitivity"] == {}
    assert analyses["all_patients"]["design"] == "matching", "the parent keeps its design"
    assert ate["covariates"] == analyses["all_patients"]["covariates"]


def test_design_grid_with_matching_settings_runs_each_distinct_analysis_once(demo_config):
    analyses = expanded(demo_config, {"design": ["nearest", "overlap"], "matching": {"caliper": [0.2, 0.1]}})
    names = [n for n in analyses if n.startswith("all_patients__")]
    # nearest with caliper 0.2 is the analysis itself; overlap weights do not use the caliper
    assert names[:2] == ["all_patients__design-nearest_caliper-0.1", "all_patients__design-overlap_caliper-0.2"]
    assert not any("overlap_caliper-0.1" in n for n in names)


def test_a_weighting_parent_can_vary_into_matching(demo_config):
    demo_config["analyses"]["all_patients"].update(design="weighting", weighting={"estimand": "ATO"})
    analyses = expanded(demo_config, {"design": ["nearest", "overlap"]})
    assert [n for n in analyses if n.startswith("all_patients__design")] == ["all_patients__design-nearest"]
    assert analyses["all_patients__design-nearest"]["design"] == "matching"


def test_an_unknown_design_is_a_config_error(demo_config):
    demo_config["analyses"]["all_patients"]["sensitivity"] = {"design": ["ipw"]}
    with pytest.raises(ConfigError, match="sensitivity.design.0"):
        prepare_config(demo_config, REFERENCE.parents[1])


def test_matching_json_of_a_weighting_design_is_json_ready():
    cohort, scores = frames("gbsg")
    summary = weighting_stage(cohort, scores, Weighting("ATT", True, 0.05))[2]
    assert json.loads(json.dumps(summary)) == summary
    assert summary["design"] == "weighting" and summary["settings"] == {"estimand": "ATT", "stabilize": True,
                                                                         "trim": 0.05}


def test_a_weighting_grid_crosses_the_weighting_designs_only(demo_config):
    analyses = expanded(demo_config, {"design": ["nearest", "overlap"], "weighting": {"trim": [None, 0.05]}})
    names = [n for n in analyses if n.startswith("all_patients__")][:2]
    # nearest ignores the weighting block: both of its combinations are the analysis itself
    assert names == ["all_patients__design-overlap_trim-None", "all_patients__design-overlap_trim-0.05"]
    assert analyses[names[1]]["weighting"] == {"estimand": "ATO", "stabilize": False, "trim": 0.05}
