"""Survival stage against R survival 3.5-3 fixtures, hand calculations and properties."""
import io
import json
import logging
import math
from pathlib import Path

import matplotlib.figure
import numpy as np
import pandas as pd
import pytest
from scipy import sparse, stats

from pipeline.outcome import bootstrap, survival
from pipeline.outcome.bootstrap import (_design_times_tallies, _km_columns, _median_columns, _rmst_columns,
                                        bootstrap_differences, percentile_interval)
from pipeline.outcome.cox import fit_cox, score_tests
from pipeline.config.settings import Survival
from pipeline.config.validate import prepare_config
from pipeline.errors import ConfigError, DataError, NotEstimable
from pipeline.outcome.hazard_ratio import e_value
from pipeline.outcome.km import KaplanMeier
from pipeline.outcome.stage import bootstrap_stage, survival_stage
from pipeline.report.km_plot import plot_km
from pipeline.outcome.survival import compare_survival

REPO = Path(__file__).resolve().parents[1]
REF = REPO / "tests" / "reference"
SPECS = ["r1", "r1_cal_logit", "r2_cal_logit", "r1_cal_ps", "r3_cal_ps", "r1_smallest"]
LANDMARKS = [0.5, 12, 36, 60, 120]


def gbsg_matched(spec):
    """The matched sample of a fixture spec: weight > 0 rows, subclass = the treated unit's set."""
    units = pd.read_csv(REF / "gbsg_units.csv")
    weights = pd.read_csv(REF / f"gbsg_{spec}_weights.csv")
    pairs = pd.read_csv(REF / f"gbsg_{spec}_pairs.csv")
    data = units.merge(weights, on="row_id")
    data = data[data.weight > 0].copy()
    set_of = {row: i for i, row in enumerate(pairs.treated_row.unique())}
    set_of.update({c: set_of[t] for t, c in zip(pairs.treated_row, pairs.control_row)})
    data["subclass"] = data.row_id.map(set_of)
    assert data.subclass.notna().all()
    return pd.DataFrame({"time": data.time_months, "event": data.status, "treat": data.hormon,
                         "w": data.weight, "subclass": data.subclass.astype(int)})


def gbsg_replace():
    """Matching with replacement: one row per patient (summed weight), cluster = the patient,
    plus the (row position, matched set) membership from the pairs."""
    units = pd.read_csv(REF / "gbsg_units.csv")
    weights = pd.read_csv(REF / "gbsg_r1_replace_weights.csv")
    pairs = pd.read_csv(REF / "gbsg_r1_replace_pairs.csv")
    data = units.merge(weights, on="row_id")
    data = data[data.weight > 0].reset_index(drop=True)
    d = pd.DataFrame({"time": data.time_months, "event": data.status, "treat": data.hormon,
                      "w": data.weight, "subclass": data.row_id})
    position = {r: i for i, r in enumerate(data.row_id)}
    rows = [position[t] for t in pairs.treated_row] + [position[c] for c in pairs.control_row]
    sets = list(pairs.treated_row) * 2
    return d, (np.array(rows), np.array(sets))


def compare(d, ci="log-log", bootstrap=0, **kw):
    """compare_survival of a matched sample (columns time, event, treat, w, subclass)."""
    return compare_survival(d.time, d.event, d.treat, d.w, d.subclass, ci=ci, bootstrap=bootstrap,
                            time_unit="months", **kw)


def run(d, tau, ci="log-log", bootstrap=0, **kw):
    return compare(d, tau=tau, landmarks=LANDMARKS, ci=ci, bootstrap=bootstrap, **kw).result


def run_curves(d, tau, ci="log-log"):
    """The arms' fitted curves of a comparison."""
    return compare(d, tau=tau, landmarks=LANDMARKS, ci=ci).curves


def assert_matches(actual, expected, path="", rel=1e-6):
    if isinstance(expected, dict):
        for key, value in expected.items():
            assert_matches(actual[key], value, f"{path}.{key}", rel)
    elif expected is None:
        assert actual is None, f"{path}: expected null, got {actual}"
    else:
        assert actual is not None, f"{path}: expected {expected}, got null"
        assert actual == pytest.approx(expected, rel=rel), path


@pytest.mark.parametrize("spec", SPECS)
def test_matches_r_fixture(spec):
    expected = json.loads((REF / f"gbsg_{spec}_expected.json").read_text())["survival"]
    result = run(gbsg_matched(spec), tau=expected["tau"])
    assert_matches(result, expected)


def r_extra(name="r_extra_expected.csv"):
    table = pd.read_csv(REF / "r_extra" / name, keep_default_na=False)
    table["value"] = pd.Series([None if v == "NA" else float(v) for v in table.value], dtype=object)
    return table


R_EXTRA = r_extra()
CASES = {"gbsg_r1": (lambda: gbsg_matched("r1"), 60),
         "gbsg_r2_cal_logit": (lambda: gbsg_matched("r2_cal_logit"), 60),
         "gbsg_r3_cal_ps": (lambda: gbsg_matched("r3_cal_ps"), 24),
         "tied": (lambda: pd.read_csv(REF / "r_extra" / "tied_matched.csv"), 36),
         "gbsg_r1_replace": (lambda: gbsg_replace()[0], 60)}


@pytest.mark.parametrize("ci", ["log-log", "log", "plain"])
@pytest.mark.parametrize("case", list(CASES))
def test_arms_match_r_extra(case, ci):
    load, tau = CASES[case]
    result = run(load(), tau=tau, ci=ci)
    rows = R_EXTRA[(R_EXTRA.case == case) & (R_EXTRA.ci == ci)]
    assert len(rows) > 0
    for arm, quantity, value in zip(rows.arm, rows.quantity, rows.value):
        summary = result[arm]
        if quantity.startswith(("surv_", "lower_", "upper_")):
            kind, landmark = quantity.split("_")
            actual = (summary["survival_at"][landmark] if kind == "surv"
                      else summary["survival_at_ci"][landmark][kind == "upper"])
        else:
            actual = summary[quantity]
        assert_matches(actual, value, f"{case}/{arm}/{ci}/{quantity}")


@pytest.mark.parametrize("case", list(CASES))
def test_tests_and_cox_match_r_extra(case):
    load, tau = CASES[case]
    d = load()
    with_pairs = case != "gbsg_r1_replace"
    result = run(d, tau=tau, pair_strata=d.subclass if with_pairs else None)
    expected = dict(zip(*R_EXTRA[(R_EXTRA.case == case) & (R_EXTRA.arm == "both")]
                        [["quantity", "value"]].T.values))
    actual = {"logrank_chisq": result["logrank_chisq"], "hr": result["hr"],
              "hr_robust_se": result["hr_robust_se"], "hr_p": result["hr_p"]}
    if with_pairs:
        actual.update({"conditional_hr": result["conditional_hr"]["hr"],
                       "conditional_robust_se": result["conditional_hr"]["robust_se"],
                       "conditional_p": result["conditional_hr"]["p"]})
    assert_matches(actual, expected)


# --- tests that use the weights, weighted counts, the RMST horizon, zero times (R fixtures) ----

R_WEIGHTED = r_extra("r_weighted_expected.csv")
SYNTHETIC = {name: (lambda name=name: pd.read_csv(REF / "r_extra" / f"{name}_matched.csv"))
             for name in ("zero_times", "heavy_ties", "one_arm_events")}
LOADERS = {**{name: load for name, (load, _) in CASES.items()}, **SYNTHETIC}


def weighted_case(case):
    """(data, result) of a case of make_r_weighted.R: default tau, the fixture's landmarks."""
    d = LOADERS[case]()
    rows = R_WEIGHTED[R_WEIGHTED.case == case]
    landmarks = sorted({float(q.split("_")[1]) for q in rows.quantity if q.startswith("surv_")})
    replace = case == "gbsg_r1_replace"
    result = compare(d, landmarks=landmarks, cluster_kind="patient" if replace else "matched set",
                     pair_strata=None if replace else d.subclass).result
    return d, result, rows


@pytest.mark.parametrize("case", list(LOADERS))
def test_weighted_tests_counts_and_default_tau_match_r(case):
    """Robust score (on the set; on the patient), naive score, log-rank, HR (robust and naive SE),
    weighted events, ESS, the default tau and the KM numbers at it, to 1e-10 (R printed 17 digits)."""
    d, result, rows = weighted_case(case)
    patient = score_tests(d.time, d.event, d.treat, d.w)      # each row its own cluster
    scores = result["score_tests"]
    both = {"tau": result["tau"], "logrank_chisq": result["logrank_chisq"],
            "robscore": scores["robust_chisq"], "robscore_p": scores["robust_p"],
            "robscore_patient": patient.robust_chisq,
            "robscore_p_patient": float(stats.chi2.sf(patient.robust_chisq, 1)),
            "sctest": scores["naive_chisq"], "sctest_p": scores["naive_p"],
            "hr": result["hr"], "hr_robust_se": result["hr_robust_se"], "hr_p": result["hr_p"],
            "hr_naive_se": fit_cox(d.time, d.event, d.treat, d.w).naive_se if result["hr"] else None,
            "conditional_hr": result.get("conditional_hr", {}).get("hr"),
            "conditional_robust_se": result.get("conditional_hr", {}).get("robust_se")}
    assert len(rows) > 20
    for arm, quantity, value in zip(rows.arm, rows.quantity, rows.value):
        if arm == "both":
            actual = both[quantity]
        elif quantity.startswith(("surv_", "lower_", "upper_")):
            kind, landmark = quantity.split("_")
            actual = (result[arm]["survival_at"][landmark] if kind == "surv"
                      else result[arm]["survival_at_ci"][landmark][kind == "upper"])
        else:
            actual = result[arm][quantity]
        assert_matches(actual, value, f"{case}/{arm}/{quantity}", rel=1e-10)
    assert result["tau_rule"] == survival.TAU_RULE
    assert (result["warnings"] == []) == (case != "one_arm_events")


@pytest.mark.parametrize("case", list(LOADERS))
def test_headline_test_is_the_log_rank_only_when_every_weight_is_one(case):
    d, result, rows = weighted_case(case)
    expected = dict(zip(rows[rows.arm == "both"].quantity, rows[rows.arm == "both"].value))
    test = result["test"]
    if (d.w == 1).all():
        assert test["method"] == "logrank" and test["cluster"] is None
        assert test["chisq"] == pytest.approx(expected["logrank_chisq"], rel=1e-10)
    else:
        cluster = "patient" if case == "gbsg_r1_replace" else "matched set"
        assert test["method"] == "robust_score" and test["cluster"] == cluster
        assert test["label"] == f"robust score test of the weighted Cox model, clustered on {cluster}"
        assert test["chisq"] == pytest.approx(expected["robscore"], rel=1e-10)
        assert test["p"] == pytest.approx(expected["robscore_p"], rel=1e-10)
    assert test["df"] == 1
    assert result["hr_cluster"] == ("patient" if case == "gbsg_r1_replace" else "matched set")
    assert f"cluster = {result['hr_cluster']}," in result["hr_method"]


def test_fixtures_cover_unit_weights_and_weighted_designs():
    """The fixtures cover both kinds: unit weights (1:1) and unequal sets / replacement."""
    unit = {case for case in LOADERS if (LOADERS[case]().w == 1).all()}
    assert unit == {"gbsg_r1"}


def test_events_in_one_arm_only_null_hr_with_reason_but_tests_defined():
    d, result, rows = weighted_case("one_arm_events")
    assert result["control"]["events"] == 0
    assert result["hr"] is None and result["hr_lower"] is None and result["hr_p"] is None
    assert result["e_value"]["point"] is None
    assert any("hazard ratio is infinite" in w for w in result["warnings"])
    assert result["test"]["chisq"] is not None and result["logrank_chisq"] is not None


@pytest.mark.parametrize("case", list(LOADERS))
def test_survival_at_is_null_exactly_beyond_the_arms_last_follow_up(case):
    d = LOADERS[case]()
    landmarks = [0, 0.5, 1, 4, 12, 24, 36, 48, 60, 120, 200]
    result = compare(d, landmarks=landmarks).result
    for arm, mask in (("treated", d.treat == 1), ("control", d.treat == 0)):
        assert result[arm]["last_followup"] == d.time[mask].max()
        for t in landmarks:
            beyond = t > result[arm]["last_followup"]
            assert (result[arm]["survival_at"][f"{t:g}"] is None) == beyond, (arm, t)


def test_default_tau_is_the_smaller_of_the_arms_last_follow_up():
    d = gbsg_matched("r3_cal_ps")
    result = compare(d, landmarks=[12]).result
    assert result["tau"] == min(d.time[d.treat == 1].max(), d.time[d.treat == 0].max())
    assert result["tau_rule"] == "smaller of the arms' largest follow-up times"
    assert result["warnings"] == []


def test_configured_tau_beyond_an_arms_follow_up_is_computed_with_a_warning():
    d = gbsg_matched("r3_cal_ps")
    last = {arm: d.time[d.treat == (arm == "treated")].max() for arm in ("treated", "control")}
    short_arm = min(last, key=last.get)
    tau = (last["treated"] + last["control"]) / 2          # beyond one arm only
    result = run(d, tau=tau)
    assert result["tau"] == tau and result["tau_rule"] == "configured"
    assert len(result["warnings"]) == 1
    assert f"{short_arm} arm's last follow-up" in result["warnings"][0]
    arm = d[d.treat == (short_arm == "treated")]
    curve = KaplanMeier.fit(arm.time, arm.event, arm.w, ci="log-log")
    assert result[short_arm]["rmst"] == curve.rmst(tau)[0]
    within = run(d, tau=12)
    assert within["tau_rule"] == "configured" and within["warnings"] == []


def test_median_difference_counts_resamples_without_a_median():
    d = gbsg_matched("r1")       # the treated median's upper limit is not reached
    result = run(d, tau=60, bootstrap=300, seed=2)["median_difference"]
    diffs = bootstrap_differences(d.time, d.event, d.treat, d.w, d.subclass, tau=60, replicates=300,
                                  seed=2)["median_difference"]
    assert result["n_bootstrap_without_median"] == int(np.sum(~np.isfinite(diffs))) > 0
    assert result["n_bootstrap_without_median"] >= result["n_bootstrap_undefined"]


# --- degenerate samples: a result with reasons, never a traceback ------------------------------

def sample(time, event, treat, weight=None, cluster=None):
    n = len(time)
    return pd.DataFrame({"time": np.asarray(time, float), "event": event, "treat": treat,
                         "w": np.ones(n) if weight is None else weight,
                         "subclass": np.arange(n) if cluster is None else cluster})


DEGENERATE = {
    "all_die_at_one_time": sample([5] * 6, [1] * 6, [1, 1, 1, 0, 0, 0]),
    "events_at_last_time_one_arm_left": sample([1, 2, 3, 3], [0, 0, 1, 1], [0, 0, 1, 1]),
    "zero_events": sample([1, 2, 3, 4], [0] * 4, [1, 0, 1, 0]),
    "events_in_one_arm": sample([1, 2, 3, 4, 5, 6], [1, 1, 1, 0, 0, 0], [1, 1, 1, 0, 0, 0]),
    "single_row_per_arm": sample([1, 2], [1, 1], [1, 0]),
    "single_row_death_at_zero": sample([0, 2], [1, 0], [1, 0]),
    "identical_arms_paired": sample([1, 2, 3] * 2, [1, 0, 1] * 2, [1] * 3 + [0] * 3,
                                    cluster=[0, 1, 2] * 2),
}


@pytest.mark.parametrize("case", list(DEGENERATE))
def test_degenerate_samples_give_every_estimable_km_number_and_reasons(case):
    d = DEGENERATE[case]
    result = compare(d, landmarks=[0, 1, 2], bootstrap=40, pair_strata=d.subclass).result
    assert json.loads(json.dumps(result, allow_nan=False)) == result
    for arm, mask in (("treated", d.treat == 1), ("control", d.treat == 0)):
        a = d[mask]
        curve = KaplanMeier.fit(a.time, a.event, a.w, ci="log-log")
        assert result[arm]["n"] == len(a) and result[arm]["events"] == a.event.sum()
        assert result[arm]["median"] == curve.median().value
        for t in (0, 1, 2):
            assert (result[arm]["survival_at"][str(t)] is None) == (t > a.time.max())
    nulls = [k for k in ("hr", "hr_lower", "logrank_chisq") if result[k] is None]
    assert bool(nulls) == bool(result["warnings"]), (nulls, result["warnings"])
    if result["hr"] is None or result["hr_lower"] is None:
        assert any("hazard ratio" in w for w in result["warnings"])
    if result["logrank_chisq"] is None:
        assert result["test"]["chisq"] is None and result["score_tests"]["naive_chisq"] is None


def test_degenerate_reasons_name_the_cause():
    def warnings_of(case):
        d = DEGENERATE[case]
        return " ".join(compare(d, landmarks=[]).result["warnings"])
    assert "there are no events" in warnings_of("zero_events")
    assert "nor the log-rank" in warnings_of("all_die_at_one_time")
    assert "infinite" in warnings_of("events_in_one_arm")
    assert "infinite" in warnings_of("single_row_per_arm")
    assert "RMST horizon is 0" in warnings_of("single_row_death_at_zero")
    assert "cluster-robust variance is zero" in warnings_of("identical_arms_paired")


def test_identical_arms_each_row_its_own_cluster_give_hr_one_and_p_one():
    d = DEGENERATE["identical_arms_paired"].assign(subclass=np.arange(6))
    result = compare(d, landmarks=[]).result
    assert result["hr"] == pytest.approx(1.0) and result["hr_p"] == pytest.approx(1.0)
    assert result["logrank_chisq"] == pytest.approx(0.0, abs=1e-12) and result["warnings"] == []


def test_zero_events_keep_km_and_rmst():
    d = DEGENERATE["zero_events"]
    result = compare(d, landmarks=[2], bootstrap=20).result
    assert result["treated"]["survival_at"]["2"] == 1.0 and result["treated"]["median"] is None
    assert result["tau"] == 3.0 and result["treated"]["rmst"] == result["control"]["rmst"] == 3.0
    assert result["rmst_difference"]["estimate"] == 0.0
    assert result["hr"] is None and result["test"]["p"] is None


def test_landmark_beyond_follow_up_is_null():
    result = run(gbsg_matched("r1"), tau=60)
    assert result["treated"]["survival_at"]["120"] is None
    assert result["treated"]["survival_at_ci"]["120"] == [None, None]


def test_median_midpoint_rule_when_curve_sits_at_one_half():
    # S = 3/4, 1/2, 1/4, 0 at t = 1..4: S(t) = 0.5 on [2, 3) -> median (2 + 3) / 2
    curve = KaplanMeier.fit([1, 2, 3, 4], [1, 1, 1, 1], [1, 1, 1, 1], ci="log-log")
    assert curve.median().value == 2.5


def test_median_first_time_at_or_below_one_half():
    # S = 4/5, 3/5, 2/5 -> first time S <= 0.5 is 3
    curve = KaplanMeier.fit([1, 2, 3, 4, 5], [1, 1, 1, 0, 0], [1] * 5, ci="log-log")
    assert curve.median().value == 3.0


def test_median_at_one_half_at_end_of_curve_uses_last_time():
    # S = 1/2 after t = 2 and the curve ends (censored) at 7: R takes (2 + 7) / 2
    curve = KaplanMeier.fit([1, 2, 5, 7], [1, 1, 0, 0], [1] * 4, ci="log-log")
    assert curve.median().value == 4.5


def test_median_not_reached_is_none():
    curve = KaplanMeier.fit(np.arange(1, 41), [1] + [0] * 39, [1] * 40, ci="log-log")
    assert curve.median() == (None, None, None)


def test_greenwood_log_log_band_by_hand():
    # S(1) = 3/4, Greenwood var(log S) = 1 / (4 * 3)
    curve = KaplanMeier.fit([1, 2, 3, 4], [1, 0, 0, 0], [1] * 4, ci="log-log")
    lower, upper = curve.lower, curve.upper
    s, se = 0.75, math.sqrt(1 / 12)
    z = 1.959963984540054
    shift = z * se / math.log(s)
    assert lower[0] == pytest.approx(math.exp(-math.exp(math.log(-math.log(s)) - shift)))
    assert upper[0] == pytest.approx(math.exp(-math.exp(math.log(-math.log(s)) + shift)))


def test_plain_and_log_bands_by_hand_and_undefined_at_zero():
    # S = 3/4, 1/2, 1/4, 0; Greenwood se(log S) at t=1 is sqrt(1/12); the last step has n = d
    time, event, weight = [1, 2, 3, 4], [1, 1, 1, 1], [1, 1, 1, 1]
    z = 1.959963984540054
    curve = KaplanMeier.fit(time, event, weight, ci="plain")
    lower, upper = curve.lower, curve.upper
    assert lower[0] == pytest.approx(0.75 - z * 0.75 * math.sqrt(1 / 12))
    assert upper[0] == 1.0                       # capped, as R
    assert np.isnan(lower[-1]) and np.isnan(upper[-1])
    curve = KaplanMeier.fit(time, event, weight, ci="log")
    lower, upper = curve.lower, curve.upper
    assert lower[0] == pytest.approx(math.exp(math.log(0.75) - z * math.sqrt(1 / 12)))
    assert np.isnan(lower[-1]) and np.isnan(upper[-1])


def test_evalue_rare_outcome_by_hand():
    assert e_value(0.5, 0.3, 0.8, common_outcome=False) == pytest.approx(
        {"point": 2 + math.sqrt(2), "ci": 1.25 + math.sqrt(1.25 * 0.25)})


def test_evalue_common_outcome_converts_hr_to_rr():
    rr = (1 - 0.5 ** math.sqrt(0.5)) / (1 - 0.5 ** math.sqrt(2))     # ~ 0.6201
    inv = 1 / rr
    assert e_value(0.5, 0.3, 0.8, common_outcome=True)["point"] == pytest.approx(
        inv + math.sqrt(inv * (inv - 1)))


def test_evalue_ci_is_one_when_interval_includes_one():
    assert e_value(1.4, 0.9, 2.1, common_outcome=False)["ci"] == 1.0


def test_output_is_plain_json_with_contract_keys():
    result = run(gbsg_matched("r1_cal_logit"), tau=60, bootstrap=20, pair_strata=None)
    text = json.dumps(result, allow_nan=False)
    assert json.loads(text) == result
    for arm in ("treated", "control"):
        assert {"n", "events", "events_weighted", "ess", "last_followup", "median", "median_lower",
                "median_upper", "rmst", "rmst_se", "survival_at", "survival_at_ci"} <= set(result[arm])
    for key in ("logrank_chisq", "logrank_p", "test", "score_tests", "hr", "hr_lower", "hr_upper",
                "hr_p", "hr_robust_se", "hr_cluster", "hr_method", "rmst_difference",
                "median_difference", "e_value", "tau", "tau_rule", "time_unit", "ci", "warnings"):
        assert key in result
    assert set(result["test"]) == {"method", "label", "chisq", "df", "p", "cluster"}
    assert set(result["rmst_difference"]) == {
        "estimate", "lower", "upper", "se", "method", "se_independent", "lower_independent",
        "upper_independent", "n_bootstrap"}
    assert "conditional_hr" not in result

    def plain(v):
        if isinstance(v, dict):
            return all(plain(x) for x in v.values())
        if isinstance(v, list):
            return all(plain(x) for x in v)
        return v is None or type(v) in (float, int, str, bool)
    assert plain(result)


def test_rmst_difference_without_bootstrap_combines_the_arms_as_independent():
    result = run(gbsg_matched("r1"), tau=60)
    t, c, diff = result["treated"], result["control"], result["rmst_difference"]
    assert diff["estimate"] == pytest.approx(t["rmst"] - c["rmst"])
    assert diff["se"] == diff["se_independent"] == pytest.approx(math.hypot(t["rmst_se"], c["rmst_se"]))
    assert diff["lower"] == diff["lower_independent"] == pytest.approx(
        diff["estimate"] - 1.959963984540054 * diff["se"])
    assert diff["n_bootstrap"] == 0 and "independent" in diff["method"]


def test_rmst_difference_with_bootstrap_is_the_percentile_interval_of_the_resamples():
    d = gbsg_matched("r3_cal_ps")
    result = run(d, tau=24, bootstrap=200, seed=9)
    diff = result["rmst_difference"]
    resamples = bootstrap_differences(d.time, d.event, d.treat, d.w, d.subclass, tau=24,
                                      replicates=200, seed=9)["rmst_difference"]
    assert (diff["lower"], diff["upper"]) == tuple(np.quantile(resamples, [0.025, 0.975]))
    assert diff["se"] == np.std(resamples, ddof=1)
    t, c = result["treated"], result["control"]
    assert diff["se_independent"] == pytest.approx(math.hypot(t["rmst_se"], c["rmst_se"]))
    assert diff["n_bootstrap"] == 200 and "percentile" in diff["method"]
    assert diff["lower"] < diff["estimate"] < diff["upper"]
    # the matched-set resamples estimate the SE near the independent one (pairs add little
    # correlation here), not at some other scale
    assert 0.5 < diff["se"] / diff["se_independent"] < 2


def test_bootstrap_is_deterministic_for_a_seed():
    d = CASES["tied"][0]()
    first = run(d, tau=36, bootstrap=60, seed=7)["median_difference"]
    again = run(d, tau=36, bootstrap=60, seed=7)["median_difference"]
    other = run(d, tau=36, bootstrap=60, seed=8)["median_difference"]
    assert first == again
    assert (first["lower"], first["upper"]) != (other["lower"], other["upper"])
    assert first["lower"] <= first["estimate"] <= first["upper"]


def assert_same_replicates(actual, expected):
    assert actual.dtype.names == expected.dtype.names == bootstrap.BOOTSTRAP_FIELDS
    for field in bootstrap.BOOTSTRAP_FIELDS:
        np.testing.assert_array_equal(actual[field], expected[field])


@pytest.mark.parametrize("shards", [1, 2, 3, 7])
def test_bootstrap_split_over_jobs_gathers_to_the_same_replicates(shards, tmp_path):
    """Both statistics, saved and loaded as the bootstrap jobs do, equal an unsplit run's."""
    d = gbsg_matched("r2_cal_logit")
    args = (d.time, d.event, d.treat, d.w, d.subclass)
    whole = bootstrap_differences(*args, tau=60, replicates=100, seed=4)
    for j in range(shards):
        part = bootstrap_differences(*args, tau=60, replicates=100, seed=4,
                                     chunks=bootstrap.bootstrap_shard(100, shards, j))
        np.save(tmp_path / f"{j}.npy", part, allow_pickle=False)
    gathered = np.concatenate([np.load(tmp_path / f"{j}.npy") for j in range(shards)])
    assert_same_replicates(gathered, whole)
    assert np.isfinite(whole["rmst_difference"]).all()
    assert run(d, tau=60, bootstrap=100, seed=4, bootstrap_replicates=gathered) == \
        run(d, tau=60, bootstrap=100, seed=4)


def test_gathered_replicates_must_all_be_there_and_carry_both_statistics():
    d = gbsg_matched("r1")
    short = np.zeros(99, dtype=[(name, float) for name in bootstrap.BOOTSTRAP_FIELDS])
    with pytest.raises(DataError, match="99 gathered bootstrap replicates, expected 100"):
        run(d, tau=60, bootstrap=100, bootstrap_replicates=short)
    with pytest.raises(DataError, match="rerun the bootstrap jobs"):
        run(d, tau=60, bootstrap=100, bootstrap_replicates=np.zeros(100))


def test_bootstrap_sets_one_per_row_equal_resampling_clusters():
    d = gbsg_matched("r2_cal_logit")
    sets = (np.arange(len(d)), d.subclass.to_numpy())
    by_cluster = run(d, tau=60, bootstrap=40, seed=3)["median_difference"]
    by_sets = run(d, tau=60, bootstrap=40, seed=3, bootstrap_sets=sets)["median_difference"]
    assert (by_sets["lower"], by_sets["upper"]) == (by_cluster["lower"], by_cluster["upper"])


def test_bootstrap_over_sets_with_replacement():
    d, sets = gbsg_replace()
    first = run(d, tau=60, bootstrap=40, seed=5, bootstrap_sets=sets)["median_difference"]
    again = run(d, tau=60, bootstrap=40, seed=5, bootstrap_sets=sets)["median_difference"]
    assert first == again and first["resampled"] == "matched sets"
    assert first["lower"] <= first["estimate"]
    with pytest.raises(DataError, match="bootstrap sets"):
        run(d, tau=60, bootstrap=5, bootstrap_sets=(sets[0][1:], sets[1][1:]))


@pytest.mark.parametrize("tau", [0.5, 17.5, 36, 200])
@pytest.mark.parametrize("case", ["tied", "zero_times"])
def test_resample_medians_and_rmst_equal_km_on_the_expanded_sample(case, tau):
    """The sparse multiplicity trick gives the median and RMST of the data with rows repeated
    (on the pooled time grid, tau within, at or beyond the arm's times)."""
    d = LOADERS[case]()
    arm = d[d.treat == 0]
    rng = np.random.default_rng(3)
    copies = rng.integers(0, 3, size=len(arm))
    times, idx = np.unique(d.time.to_numpy(dtype=float), return_inverse=True)
    sel = (d.treat == 0).to_numpy()
    k = len(times)
    at = np.bincount(idx[sel], arm.w * copies, k)[:, None]
    ev = np.bincount(idx[sel], arm.w * arm.event * copies, k)[:, None]
    expanded = arm.loc[arm.index.repeat(copies)]
    curve = KaplanMeier.fit(expanded.time, expanded.event, expanded.w, ci="log-log")
    surv = _km_columns(at, ev)
    assert _median_columns(times, at, surv)[0] == curve.median().value
    assert _rmst_columns(times, surv, tau)[0] == pytest.approx(curve.rmst(tau)[0], rel=1e-13)


def test_cox_beta_maximises_the_hand_written_partial_likelihood():
    # x = 1, 0, 0, 1 dying at t = 1..4 (no ties): the risk sets give
    # log L(b) = b - log(2e^b + 2) - log(e^b + 2) - log(e^b + 1) + (b - b)
    r = fit_cox([1, 2, 3, 4], [1, 1, 1, 1], [1, 0, 0, 1], [1, 1, 1, 1])

    def loglik(b):
        e = math.exp(b)
        return b - math.log(2 * e + 2) - math.log(e + 2) - math.log(e + 1)
    h = 1e-5
    assert (loglik(r.beta + h) - loglik(r.beta - h)) / (2 * h) == pytest.approx(0, abs=1e-7)
    curvature = -(loglik(r.beta + h) - 2 * loglik(r.beta) + loglik(r.beta - h)) / h ** 2
    assert r.naive_se == pytest.approx(1 / math.sqrt(curvature), rel=1e-4)


def test_data_mistakes_raise_pipeline_errors():
    d = gbsg_matched("r1")
    bad = d.assign(w=0.0)
    with pytest.raises(DataError, match="weight"):
        run(bad, tau=60)
    with pytest.raises(NotEstimable, match="no control patients"):
        run(d.assign(treat=1), tau=60)
    with pytest.raises(DataError, match="treated must be"):
        run(d.assign(treat=np.where(d.treat == 1, "treated", "control")), tau=60)
    with pytest.raises(DataError, match="cluster"):
        run(d.assign(subclass=np.where(d.treat == 1, d.subclass, np.nan)), tau=60)


@pytest.mark.parametrize("setting, value, expected", [
    ("ci", "logit", "'logit' is not one of"),
    ("rmst_tau", -1, "survival.rmst_tau"),
    ("landmarks", ["12"], "survival.landmarks"),
    ("landmarks", [-1], "survival.landmarks"),
])
def test_survival_setting_mistakes_are_caught_by_the_schema(demo_config, setting, value, expected):
    """The stage no longer checks its settings: the schema rejects what it cannot use, naming the key."""
    demo_config["analyses"]["all_patients"].setdefault("survival", {})[setting] = value
    with pytest.raises(ConfigError) as err:
        prepare_config(demo_config, REPO)
    assert expected in str(err.value)


def test_plot_is_byte_reproducible_and_suppresses_small_counts(tmp_path):
    d = CASES["tied"][0]()
    curves = run_curves(d, tau=36)
    fig = plot_km(curves, endpoint="overall survival", path=tmp_path / "a.png", min_cell=5)
    plot_km(curves, endpoint="overall survival", path=tmp_path / "b.png", min_cell=5)
    assert isinstance(fig, matplotlib.figure.Figure)
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert "<5" in texts          # the weighted numbers at risk: tests/test_report_figures.py
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    assert buffer.getvalue()[:8] == b"\x89PNG\r\n\x1a\n"


def counts_by_bincount(drawn, n_sets):
    """Resample r's draw of set s lands in bin s * b + r: the (sets x resamples) multiplicities."""
    b = drawn.shape[0]
    flat = drawn * b + np.arange(b)[:, None]
    return np.bincount(flat.ravel(), minlength=n_sets * b).reshape(n_sets, b).astype(float)


def tied_sets_design(rng, n_sets=150):
    """A CSC design as bootstrap_differences builds it, with fractional values and sets holding
    several entries of the same row (controls of one set tied in time), which scipy sums; more sets
    than one tile of _design_times_tallies."""
    k = 7
    sets = np.repeat(np.arange(n_sets), 4)
    rows = rng.integers(0, 2, len(sets)) * 2 * k + rng.integers(0, 3, len(sets))   # few rows: duplicates
    values = rng.choice([1.0, 1 / 3, 0.1, 0.7, 2.0], len(sets))
    return sparse.csc_matrix((values, (rows, sets)), shape=(4 * k, n_sets))


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_design_times_tallies_equals_scipy_product_bit_for_bit(seed):
    rng = np.random.default_rng(seed)
    design = tied_sets_design(rng)
    n_sets, chunk = design.shape[1], 8
    tallies = np.full((chunk, n_sets), 7, dtype=np.int32)
    totals = np.full((design.shape[0], chunk), -1.0)            # stale contents must not leak
    for b in (chunk, 3):                                       # a full chunk, then a partial one
        drawn = rng.integers(0, n_sets, size=(b, n_sets))
        tallies[:b] = counts_by_bincount(drawn, n_sets).T
        _design_times_tallies(design.indptr, design.indices, design.data, tallies[:b], totals[:, :b])
        expected = design.dot(counts_by_bincount(drawn, n_sets))
        assert totals[:, :b].tobytes() == np.ascontiguousarray(expected).tobytes()


def reference_chunk_totals(design, rng, tallies, totals):
    """The straightforward bootstrap step: all of the chunk's draws at once (int64), their counts,
    the sparse product."""
    b, n_sets = tallies.shape
    drawn = rng.integers(0, n_sets, size=(b, n_sets))
    totals[:] = design.dot(counts_by_bincount(drawn, n_sets))


def k_to_one_tied():
    """Matched sets of one treated and three controls with tied times (fractional weights 1/3)."""
    rng = np.random.default_rng(5)
    n_sets = 40
    treat = np.r_[np.ones(n_sets, int), np.zeros(3 * n_sets, int)]
    subclass = np.r_[np.arange(n_sets), np.repeat(np.arange(n_sets), 3)]
    time = np.r_[rng.integers(1, 30, n_sets), np.repeat(rng.integers(1, 30, n_sets), 3)].astype(float)
    return pd.DataFrame({"time": time, "event": rng.integers(0, 2, len(time)), "treat": treat,
                         "w": np.where(treat == 1, 1.0, 1 / 3), "subclass": subclass})


@pytest.mark.parametrize("seed", [1, 7, 11, 2024])
def test_bootstrap_identical_to_the_straightforward_draws_and_product(seed, monkeypatch):
    """Same draws, same sums: int32 draws resample by resample, tallies and the ordered product
    give exactly the replicates of one int64 draw per chunk, bincount counts and scipy's product
    (ties, whole and fractional weights, duplicate rows in a set, matching with replacement, a
    partial last chunk, a shard of the chunks)."""
    d = CASES["tied"][0]()
    g, sets = gbsg_replace()
    k3 = k_to_one_tied()
    runs = [lambda: bootstrap_differences(d.time, d.event, d.treat, d.w, d.subclass, tau=36,
                                          replicates=45, seed=seed, chunk=8),
            lambda: bootstrap_differences(g.time, g.event, g.treat, g.w, g.subclass, tau=60,
                                          replicates=45, seed=seed, sets=sets, chunk=16),
            lambda: bootstrap_differences(k3.time, k3.event, k3.treat, k3.w, k3.subclass, tau=20,
                                          replicates=45, seed=seed, chunk=8, chunks=range(2, 5))]
    fast = [run_once() for run_once in runs]
    monkeypatch.setattr(bootstrap, "_chunk_totals", reference_chunk_totals)
    reference = [run_once() for run_once in runs]
    for a, b in zip(fast, reference):
        assert_same_replicates(a, b)
        assert percentile_interval(a["median_difference"]) == percentile_interval(b["median_difference"])
        assert np.isfinite(a["rmst_difference"]).all()


# --- the fitted Kaplan-Meier object ------------------------------------------------------------

def test_kaplan_meier_attributes_and_methods_by_hand():
    # t = 1: 5 rows (weight 5) at risk, one death -> S = 4/5; t = 2: weight 4 at risk, a death of
    # weight 0.5 and a censoring of weight 0.5 -> S = 0.8 * (1 - 0.5 / 4) = 0.7; t = 3: censored
    # (weight 2); t = 5: the last row dies -> S = 0
    curve = KaplanMeier.fit([1, 2, 2, 3, 5], [1, 0, 1, 0, 1], [1, 0.5, 0.5, 2, 1], ci="log-log")
    assert curve.time.tolist() == [1, 2, 3, 5]
    assert curve.n_risk.tolist() == [5, 4, 3, 1] and curve.n_risk_rows.tolist() == [5, 4, 2, 1]
    assert curve.n_event.tolist() == [1, 0.5, 0, 1] and curve.n_censor.tolist() == [0, 0.5, 2, 0]
    assert curve.surv == pytest.approx([0.8, 0.7, 0.7, 0.0], abs=1e-15)
    assert (curve.n, curve.events, curve.weighted, curve.ci) == (5, 3, True, "log-log")
    assert curve.at_risk(0) == (5, 5.0) and curve.at_risk(2) == (4, 4.0)
    assert curve.at_risk(2.5) == (2, 3.0) and curve.at_risk(6) == (0, 0.0)
    at = curve.survival_at([0.5, 2.5, 5, 6])
    assert [e.value for e in at] == pytest.approx([1.0, 0.7, 0.0, None], abs=1e-15)
    assert at[0] == (1.0, 1.0, 1.0) and at[3] == (None, None, None)
    assert curve.rmst(4)[0] == pytest.approx(1 + 0.8 + 0.7 * 2)        # area of the steps to t = 4
    assert curve.median().value == 5.0                                   # first time S <= 0.5
    assert not KaplanMeier.fit([1, 2], [1, 0], [1, 1], ci="log-log").weighted


@pytest.mark.parametrize("ci", ["log-log", "log", "plain"])
def test_comparison_returns_the_curves_its_numbers_come_from(ci):
    d = gbsg_matched("r2_cal_logit")
    result, curves = compare(d, tau=60, landmarks=LANDMARKS, ci=ci)
    assert list(curves) == ["treated", "control"]
    for arm, mask in (("treated", d.treat == 1), ("control", d.treat == 0)):
        curve = curves[arm]
        assert curve.ci == ci and curve.n == mask.sum() and curve.time[-1] == d.time[mask].max()
        assert tuple(curve.median()) == (result[arm]["median"], result[arm]["median_lower"],
                                         result[arm]["median_upper"])
        assert [e.value for e in curve.survival_at(LANDMARKS)] == list(result[arm]["survival_at"].values())
        assert curve.rmst(60) == (result[arm]["rmst"], result[arm]["rmst_se"])


# --- the stage: frames in, survival.json and the curves out ------------------------------------

def gbsg_frames(spec):
    """The stage's inputs for a fixture spec: the cohort (every unit, the unmatched too),
    matched.parquet's and pairs.parquet's columns (matched rows shuffled, ids as text)."""
    units = pd.read_csv(REF / "gbsg_units.csv")
    data = units.merge(pd.read_csv(REF / f"gbsg_{spec}_weights.csv"), on="row_id")
    pairs = pd.read_csv(REF / f"gbsg_{spec}_pairs.csv")
    ids = "P" + data.row_id.astype(str)
    cohort = pd.DataFrame({"patient_id": ids, "treated": data.hormon == 1, "time": data.time_months,
                           "event": data.status})
    replace = spec.endswith("replace")
    set_of = {row: i + 1 for i, row in enumerate(pairs.treated_row.unique())}
    set_of.update({c: set_of[t] for t, c in zip(pairs.treated_row, pairs.control_row)})
    subclass = pd.Series(pd.NA if replace else data.row_id.map(set_of), index=data.index, dtype="Int64")
    in_sample = data.weight > 0
    matched = pd.DataFrame({"patient_id": ids, "treated": cohort.treated, "subclass": subclass,
                            "weight": data.weight, "ps": data.ps, "distance": data.ps})[in_sample]
    pairs = pd.DataFrame({"treated_id": "P" + pairs.treated_row.astype(str),
                          "control_id": "P" + pairs.control_row.astype(str), "slot": pairs.slot,
                          "distance_diff": 0.0})
    return cohort, matched.sample(frac=1, random_state=1), pairs


def survival_settings(bootstrap=0, jobs=1, rmst_tau=None, ci="log-log"):
    return Survival(rmst_tau=rmst_tau, landmarks=tuple(LANDMARKS), ci=ci, bootstrap=bootstrap,
                    bootstrap_jobs=jobs, km_bands=False)


@pytest.mark.parametrize("spec", ["r1", "r3_cal_ps"])
def test_stage_on_frames_matches_r_and_the_arrays(spec):
    expected = json.loads((REF / f"gbsg_{spec}_expected.json").read_text())["survival"]
    cohort, matched, pairs = gbsg_frames(spec)
    result, curves = survival_stage(cohort, matched, pairs, survival_settings(40, rmst_tau=expected["tau"]),
                                    seed=6, time_unit="months", relevant_hr=1.5)
    assert_matches(result, expected)
    d = gbsg_matched(spec)
    assert result == {**run(d, tau=expected["tau"], bootstrap=40, seed=6, pair_strata=d.subclass),
                      "power": result["power"]}
    assert result["power"]["relevant_hr"] == 1.5 and result["hr_cluster"] == "matched set"
    assert {arm: c.n for arm, c in curves.items()} == {"treated": (d.treat == 1).sum(),
                                                        "control": (d.treat == 0).sum()}


def test_stage_with_replacement_clusters_on_the_patient_and_resamples_the_sets():
    cohort, matched, pairs = gbsg_frames("r1_replace")
    result, _ = survival_stage(cohort, matched, pairs, survival_settings(40), seed=5,
                               time_unit="months", relevant_hr=1.5)
    rows = R_WEIGHTED[(R_WEIGHTED.case == "gbsg_r1_replace") & (R_WEIGHTED.arm == "both")]
    expected = dict(zip(rows.quantity, rows.value))
    assert result["test"]["cluster"] == result["hr_cluster"] == "patient"
    assert result["test"]["chisq"] == pytest.approx(expected["robscore"], rel=1e-10)
    assert result["hr_robust_se"] == pytest.approx(expected["hr_robust_se"], rel=1e-10)
    assert "conditional_hr" not in result
    d, sets = gbsg_replace()
    by_sets = run(d, tau=None, bootstrap=40, seed=5, bootstrap_sets=sets, cluster_kind="patient")
    assert result["median_difference"] == by_sets["median_difference"]
    assert result["median_difference"]["resampled"] == "matched sets"


@pytest.mark.parametrize("replace", [False, True])
def test_bootstrap_jobs_gathered_equal_the_stage_drawing_them(replace):
    cohort, matched, pairs = gbsg_frames("r1_replace" if replace else "r2_cal_logit")
    split = survival_settings(70, jobs=3)
    gathered = np.concatenate([bootstrap_stage(cohort, matched, pairs, split, 11, job)
                               for job in range(3)])
    args = (cohort, matched, pairs)
    whole = survival_stage(*args, survival_settings(70), 11, "months", 1.5).result
    gathered_run = survival_stage(*args, split, 11, "months", 1.5, bootstrap_replicates=gathered)
    assert gathered_run.result == whole
    assert whole["rmst_difference"]["n_bootstrap"] == 70


def test_stage_logs_the_arms_the_headline_test_and_the_warnings(caplog):
    cohort, matched, pairs = gbsg_frames("r1")
    treated_ids = set(matched.patient_id[matched.treated])
    # keep only the treated patients' events: the hazard ratio is infinite (a warning)
    cohort = cohort.assign(event=np.where(cohort.patient_id.isin(treated_ids), cohort.event, 0))
    with caplog.at_level(logging.INFO, logger="pipeline.outcome.stage"):
        result, _ = survival_stage(cohort, matched, pairs, survival_settings(), 1, "months", 1.5)
    info = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    events = cohort.event[cohort.patient_id.isin(treated_ids)].sum()
    assert any(m.startswith(f"treated: {len(treated_ids)} patients, {events} events") for m in info)
    assert any(m.startswith(f"control: {len(matched) - len(treated_ids)} patients, 0 events") for m in info)
    assert any("headline test logrank" in m for m in info)
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warned == result["warnings"] and any("infinite" in w for w in warned)
