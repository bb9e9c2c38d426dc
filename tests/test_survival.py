"""Survival stage against R survival 3.5-3 fixtures, hand calculations and properties."""
import io
import json
import math
from pathlib import Path

import matplotlib.figure
import numpy as np
import pandas as pd
import pytest

from pipeline import survival
from pipeline.cox import fit_cox
from pipeline.errors import ConfigError, DataError
from pipeline.km_plot import plot_km
from pipeline.survival import (_count_draws, _median_columns, bootstrap_median_difference,
                               compare_survival, confidence_band, e_value, kaplan_meier,
                               median_with_ci, r_quantile_time)

REF = Path(__file__).parent / "reference"
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


def run(d, tau, ci="log-log", bootstrap=0, **kw):
    return compare_survival(d.time, d.event, d.treat, d.w, d.subclass, tau=tau,
                            landmarks=LANDMARKS, ci=ci, bootstrap=bootstrap, **kw)


def assert_matches(actual, expected, path=""):
    if isinstance(expected, dict):
        for key, value in expected.items():
            assert_matches(actual[key], value, f"{path}.{key}")
    elif expected is None:
        assert actual is None, f"{path}: expected null, got {actual}"
    else:
        assert actual is not None, f"{path}: expected {expected}, got null"
        assert actual == pytest.approx(expected, rel=1e-6), path


@pytest.mark.parametrize("spec", SPECS)
def test_matches_r_fixture(spec):
    expected = json.loads((REF / f"gbsg_{spec}_expected.json").read_text())["survival"]
    result = run(gbsg_matched(spec), tau=expected["tau"])
    assert_matches(result, expected)


def r_extra():
    table = pd.read_csv(REF / "r_extra" / "r_extra_expected.csv", keep_default_na=False)
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


def test_landmark_beyond_follow_up_is_null():
    result = run(gbsg_matched("r1"), tau=60)
    assert result["treated"]["survival_at"]["120"] is None
    assert result["treated"]["survival_at_ci"]["120"] == [None, None]


def test_median_midpoint_rule_when_curve_sits_at_one_half():
    # S = 3/4, 1/2, 1/4, 0 at t = 1..4: S(t) = 0.5 on [2, 3) -> median (2 + 3) / 2
    curve = kaplan_meier([1, 2, 3, 4], [1, 1, 1, 1], [1, 1, 1, 1])
    assert r_quantile_time(curve.time, curve.surv) == 2.5


def test_median_first_time_at_or_below_one_half():
    # S = 4/5, 3/5, 2/5 -> first time S <= 0.5 is 3
    curve = kaplan_meier([1, 2, 3, 4, 5], [1, 1, 1, 0, 0], [1] * 5)
    assert r_quantile_time(curve.time, curve.surv) == 3.0


def test_median_at_one_half_at_end_of_curve_uses_last_time():
    # S = 1/2 after t = 2 and the curve ends (censored) at 7: R takes (2 + 7) / 2
    curve = kaplan_meier([1, 2, 5, 7], [1, 1, 0, 0], [1] * 4)
    assert r_quantile_time(curve.time, curve.surv) == 4.5


def test_median_not_reached_is_none():
    curve = kaplan_meier(np.arange(1, 41), [1] + [0] * 39, [1] * 40)
    lower, upper = confidence_band(curve, "log-log")
    assert median_with_ci(curve, lower, upper) == (None, None, None)


def test_greenwood_log_log_band_by_hand():
    # S(1) = 3/4, Greenwood var(log S) = 1 / (4 * 3)
    curve = kaplan_meier([1, 2, 3, 4], [1, 0, 0, 0], [1] * 4)
    lower, upper = confidence_band(curve, "log-log")
    s, se = 0.75, math.sqrt(1 / 12)
    z = 1.959963984540054
    shift = z * se / math.log(s)
    assert lower[0] == pytest.approx(math.exp(-math.exp(math.log(-math.log(s)) - shift)))
    assert upper[0] == pytest.approx(math.exp(-math.exp(math.log(-math.log(s)) + shift)))


def test_plain_and_log_bands_by_hand_and_undefined_at_zero():
    # S = 3/4, 1/2, 1/4, 0; Greenwood se(log S) at t=1 is sqrt(1/12); the last step has n = d
    curve = kaplan_meier([1, 2, 3, 4], [1, 1, 1, 1], [1, 1, 1, 1])
    z = 1.959963984540054
    lower, upper = confidence_band(curve, "plain")
    assert lower[0] == pytest.approx(0.75 - z * 0.75 * math.sqrt(1 / 12))
    assert upper[0] == 1.0                       # capped, as R
    assert np.isnan(lower[-1]) and np.isnan(upper[-1])
    lower, upper = confidence_band(curve, "log")
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
        assert {"n", "events", "median", "median_lower", "median_upper", "rmst", "rmst_se",
                "survival_at", "survival_at_ci"} <= set(result[arm])
    for key in ("logrank_chisq", "logrank_p", "hr", "hr_lower", "hr_upper", "hr_p",
                "hr_robust_se", "rmst_difference", "median_difference", "e_value", "tau",
                "time_unit", "ci"):
        assert key in result
    assert "conditional_hr" not in result

    def plain(v):
        if isinstance(v, dict):
            return all(plain(x) for x in v.values())
        if isinstance(v, list):
            return all(plain(x) for x in v)
        return v is None or type(v) in (float, int, str, bool)
    assert plain(result)


def test_rmst_difference_combines_the_arms():
    result = run(gbsg_matched("r1"), tau=60)
    t, c, diff = result["treated"], result["control"], result["rmst_difference"]
    assert diff["estimate"] == pytest.approx(t["rmst"] - c["rmst"])
    assert diff["se"] == pytest.approx(math.hypot(t["rmst_se"], c["rmst_se"]))
    assert diff["lower"] == pytest.approx(diff["estimate"] - 1.959963984540054 * diff["se"])


def test_bootstrap_is_deterministic_for_a_seed():
    d = CASES["tied"][0]()
    first = run(d, tau=36, bootstrap=60, seed=7)["median_difference"]
    again = run(d, tau=36, bootstrap=60, seed=7)["median_difference"]
    other = run(d, tau=36, bootstrap=60, seed=8)["median_difference"]
    assert first == again
    assert (first["lower"], first["upper"]) != (other["lower"], other["upper"])
    assert first["lower"] <= first["estimate"] <= first["upper"]


@pytest.mark.parametrize("shards", [1, 2, 3, 7])
def test_bootstrap_split_over_jobs_gathers_to_the_same_replicates(shards):
    d = gbsg_matched("r2_cal_logit")
    args = (d.time, d.event, d.treat, d.w, d.subclass)
    whole = survival.bootstrap_differences(*args, replicates=100, seed=4)
    parts = [survival.bootstrap_differences(*args, replicates=100, seed=4,
                                            chunks=survival.bootstrap_shard(100, shards, j))
             for j in range(shards)]
    assert sum(len(p) for p in parts) == 100
    np.testing.assert_array_equal(np.concatenate(parts), whole)
    assert run(d, tau=60, bootstrap=100, seed=4, bootstrap_replicates=np.concatenate(parts)) == \
        run(d, tau=60, bootstrap=100, seed=4)


def test_gathered_replicates_must_all_be_there():
    d = gbsg_matched("r1")
    with pytest.raises(DataError, match="99 gathered bootstrap replicates, expected 100"):
        run(d, tau=60, bootstrap=100, bootstrap_replicates=np.zeros(99))


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


def test_resample_medians_equal_km_on_the_expanded_sample():
    """The sparse multiplicity trick gives the median of the data with rows repeated."""
    d = CASES["tied"][0]()
    arm = d[d.treat == 0]
    rng = np.random.default_rng(3)
    copies = rng.integers(0, 3, size=len(arm))
    times, idx = np.unique(d.time.to_numpy(dtype=float), return_inverse=True)
    sel = (d.treat == 0).to_numpy()
    k = len(times)
    at = np.bincount(idx[sel], arm.w * copies, k)[:, None]
    ev = np.bincount(idx[sel], arm.w * arm.event * copies, k)[:, None]
    expanded = arm.loc[arm.index.repeat(copies)]
    curve = kaplan_meier(expanded.time, expanded.event, expanded.w)
    assert _median_columns(times, at, ev)[0] == r_quantile_time(curve.time, curve.surv)


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


def test_user_mistakes_raise_pipeline_errors():
    d = gbsg_matched("r1")
    with pytest.raises(ConfigError, match="ci"):
        run(d, tau=60, ci="logit")
    bad = d.assign(w=0.0)
    with pytest.raises(DataError, match="weight"):
        run(bad, tau=60)
    with pytest.raises(DataError, match="both treated and control"):
        run(d.assign(treat=1), tau=60)
    with pytest.raises(DataError, match="treated must be"):
        run(d.assign(treat=np.where(d.treat == 1, "treated", "control")), tau=60)
    with pytest.raises(DataError, match="cluster"):
        run(d.assign(subclass=np.where(d.treat == 1, d.subclass, np.nan)), tau=60)
    with pytest.raises(ConfigError, match="rmst_tau"):
        run(d, tau=-1)
    with pytest.raises(ConfigError, match="landmarks"):
        compare_survival(d.time, d.event, d.treat, d.w, d.subclass, tau=60, landmarks=["12"])


def test_plot_is_byte_reproducible_and_suppresses_small_counts(tmp_path):
    d = CASES["tied"][0]()
    fig = plot_km(d.time, d.event, d.treat, d.w, path=tmp_path / "a.png", min_cell=5)
    plot_km(d.time, d.event, d.treat, d.w, path=tmp_path / "b.png", min_cell=5)
    assert isinstance(fig, matplotlib.figure.Figure)
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert "<5" in texts
    assert all(t == "<5" or t == "0" or int(t) >= 5 for t in texts)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    assert buffer.getvalue()[:8] == b"\x89PNG\r\n\x1a\n"


def counts_by_bincount(drawn, n_sets):
    """The original numpy counting: resample r's draw of set s lands in bin s * b + r."""
    b = drawn.shape[0]
    flat = drawn * b + np.arange(b)[:, None]
    return np.bincount(flat.ravel(), minlength=n_sets * b).reshape(n_sets, b).astype(float)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_count_kernel_equals_bincount_counting(seed):
    rng = np.random.default_rng(seed)
    n_sets, chunk = 97, 8
    tallies = np.full((chunk, n_sets), 7, dtype=np.int32)     # stale contents must not leak
    counts = np.full((n_sets, chunk), -1.0)
    for b in (chunk, 3):                                       # a full chunk, then a partial one
        drawn = rng.integers(0, n_sets, size=(b, n_sets))
        _count_draws(drawn, tallies[:b], counts[:, :b])
        np.testing.assert_array_equal(counts[:, :b], counts_by_bincount(drawn, n_sets))


def numpy_count_draws(drawn, tallies, counts):
    counts[:] = counts_by_bincount(drawn, counts.shape[0])


@pytest.mark.parametrize("seed", [1, 7, 11, 2024])
def test_bootstrap_ci_identical_to_bincount_counting(seed, monkeypatch):
    """Same draws, same counts: the CI of the numba counting equals the original numpy one exactly."""
    d = CASES["tied"][0]()
    g, sets = gbsg_replace()
    runs = [lambda: bootstrap_median_difference(d.time, d.event, d.treat, d.w, d.subclass,
                                                replicates=45, seed=seed, chunk=8),
            lambda: bootstrap_median_difference(g.time, g.event, g.treat, g.w, g.subclass,
                                                replicates=45, seed=seed, sets=sets, chunk=16)]
    fast = [run_once() for run_once in runs]
    monkeypatch.setattr(survival, "_count_draws", numpy_count_draws)
    reference = [run_once() for run_once in runs]
    assert fast == reference
