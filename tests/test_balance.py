"""Balance (MatchIt summary() conventions; cobalt's SMD denominators for weighting), Table 1 and the
diagnostic figures."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline.config.settings import Variable
from pipeline.design.balance import balance_failed, balance_table, ecdf_differences, weighted_variance
from pipeline.design.table_one import COLUMNS, table_one, weighted_quantiles
from pipeline.errors import DataError
from pipeline.report.diagnostic_plots import love_plot, overlap_plot

REFERENCE = Path(__file__).parent / "reference"
FIXTURES = {
    "lalonde": ("treat", ["age", "educ", "black", "hispan", "married", "nodegree", "re74", "re75"]),
    "gbsg": ("hormon", ["age", "meno", "size", "grade", "nodes", "pgr", "er"]),
}
BALANCE_FILES = sorted(REFERENCE.glob("*_balance.csv"))


def reference_case(path: Path):
    dataset, spec = path.name.removesuffix("_balance.csv").split("_", 1)
    treatment, covariates = FIXTURES[dataset]
    units = pd.read_csv(REFERENCE / f"{dataset}_units.csv")
    weights = pd.read_csv(REFERENCE / f"{dataset}_{spec}_weights.csv")
    assert weights["row_id"].tolist() == units["row_id"].tolist()
    return units[covariates].astype(float), units[treatment].to_numpy(), weights["weight"].to_numpy(float)


# ---------------------------------------------------------------- R references

def test_every_fixture_is_covered():
    assert len(BALANCE_FILES) == 14


@pytest.mark.parametrize("path", BALANCE_FILES, ids=lambda p: p.stem)
def test_smd_equals_matchit_reference(path):
    X, treated, weights = reference_case(path)
    expected = pd.read_csv(path)
    result = balance_table(X, treated, weights)
    assert result["variable"].tolist() == expected["variable"].tolist()
    np.testing.assert_allclose(result["smd_before"], expected["smd_before"], rtol=0, atol=1e-9)
    np.testing.assert_allclose(result["smd_after"], expected["smd_after"], rtol=0, atol=1e-9)


def test_variance_ratio_and_ecdf_equal_matchit_readme_output():
    """MatchIt's README prints summary() 'Balance for All Data' on lalonde (4 decimals)."""
    units = pd.read_csv(REFERENCE / "lalonde_units.csv")
    units["white"] = 1 - units["black"] - units["hispan"]
    columns = ["age", "educ", "black", "hispan", "white", "married", "nodegree", "re74", "re75"]
    result = balance_table(units[columns].astype(float), units["treat"].to_numpy(), np.ones(len(units)))
    published = pd.DataFrame({        # Std. Mean Diff., Var. Ratio, eCDF Mean, eCDF Max
        "age": [-0.3094, 0.4400, 0.0813, 0.1577], "educ": [0.0550, 0.4959, 0.0347, 0.1114],
        "black": [1.7615, np.nan, 0.6404, 0.6404], "hispan": [-0.3498, np.nan, 0.0827, 0.0827],
        "white": [-1.8819, np.nan, 0.5577, 0.5577], "married": [-0.8263, np.nan, 0.3236, 0.3236],
        "nodegree": [0.2450, np.nan, 0.1114, 0.1114], "re74": [-0.7211, 0.5181, 0.2248, 0.4470],
        "re75": [-0.2903, 0.9563, 0.1342, 0.2876]}).T
    ours = result.set_index("variable")[["smd_before", "var_ratio_before", "ecdf_mean_before", "ecdf_max_before"]]
    np.testing.assert_allclose(ours.to_numpy(), published.loc[ours.index].to_numpy(), rtol=0, atol=5.1e-5)


# ---------------------------------------------------------------- hand calculations

def test_weighted_variance_is_cov_wt_reliability_formula():
    x = np.array([1.0, 2.0, 3.0])
    assert weighted_variance(x, np.ones(3), binary=False) == pytest.approx(1.0)      # n - 1 sample variance
    # w = (1, 1, 2) / 4: mean 2.25; sum w (x - m)^2 = (1.5625 + 0.0625 + 2 * 0.5625) / 4 = 0.6875
    # 1 - sum w^2 = 1 - 6/16 = 0.625 -> 1.1
    assert weighted_variance(x, np.array([1.0, 1.0, 2.0]), binary=False) == pytest.approx(1.1)
    assert weighted_variance(np.array([0.0, 1.0, 1.0, 1.0]), np.ones(4), binary=True) == pytest.approx(0.1875)


def test_ecdf_by_hand():
    # treated {1, 2}, control {2, 3}: at 1, 2, 3 F_t = .5, 1, 1 and F_c = 0, .5, 1 -> |diff| .5, .5, 0
    x = np.array([1.0, 2.0, 2.0, 3.0])
    treated = np.array([True, True, False, False])
    mean, maximum = ecdf_differences(x, treated, np.ones(4))
    assert mean == pytest.approx(1 / 3) and maximum == pytest.approx(0.5)


def test_continuous_statistics_by_hand_before_and_after():
    # treated 1, 2, 3 (mean 2, SD 1); controls 1.5, 3, 6, 8 (mean 4.625); after: controls 1.5 and 3 only
    X = pd.DataFrame({"x": [1.0, 2.0, 3.0, 1.5, 3.0, 6.0, 8.0]})
    treated = np.array([1, 1, 1, 0, 0, 0, 0])
    weights = np.array([1.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0])
    row = balance_table(X, treated, weights).iloc[0]
    assert row["smd_before"] == pytest.approx(-2.625)          # (2 - 4.625) / 1
    assert row["smd_after"] == pytest.approx(-0.25)            # (2 - 2.25) / 1: same denominator
    assert row["var_ratio_before"] == pytest.approx(1.0 / 8.5625)   # control SS 25.6875 / 3
    assert row["var_ratio_after"] == pytest.approx(1.0 / 1.125)
    # after: distinct values 1, 1.5, 2, 3, 6, 8 (unmatched units' values still count, with zero weight)
    # F_t = 1/3, 1/3, 2/3, 1, 1, 1 ; F_c = 0, 1/2, 1/2, 1, 1, 1
    assert row["ecdf_max_after"] == pytest.approx(1 / 3)
    assert row["ecdf_mean_after"] == pytest.approx((1 / 3 + 1 / 6 + 1 / 6) / 6)
    assert row["flag"] == "|SMD|>=0.1"


def test_binary_variable_uses_proportion_sd_and_no_variance_ratio():
    # treated p = 3/4 -> SD sqrt(3/16); control p = 1/4
    X = pd.DataFrame({"b": [1.0, 1.0, 1.0, 0.0, 1.0, 0.0, 0.0, 0.0]})
    treated = np.array([1, 1, 1, 1, 0, 0, 0, 0])
    row = balance_table(X, treated, np.ones(8)).iloc[0]
    assert row["smd_before"] == pytest.approx(0.5 / np.sqrt(3 / 16))
    assert np.isnan(row["var_ratio_before"]) and np.isnan(row["var_ratio_after"])
    assert row["ecdf_mean_before"] == pytest.approx(0.5) and row["ecdf_max_before"] == pytest.approx(0.5)
    # declared not binary: n - 1 variances (3/16 * 4/3 = 1/4 in both arms) and a variance ratio
    as_numeric = balance_table(X, treated, np.ones(8), binary=set()).iloc[0]
    assert as_numeric["smd_before"] == pytest.approx(0.5 / 0.5)
    assert as_numeric["var_ratio_before"] == pytest.approx(1.0)


def test_constant_in_treated_falls_back_to_pooled_sd():
    # treated all 5 (SD 0); controls 1, 3: pooled within-arm SS = 2, / (n - 1) = 2/4 -> SD sqrt(0.5)
    X = pd.DataFrame({"x": [5.0, 5.0, 5.0, 1.0, 3.0]})
    row = balance_table(X, np.array([1, 1, 1, 0, 0]), np.ones(5)).iloc[0]
    assert row["smd_before"] == pytest.approx(3.0 / np.sqrt(0.5))


def test_smd_denominator_per_estimand_by_hand():
    """cobalt's s.d.denom: ATT the treated SD; ATE "pooled", sqrt of the mean of the arms' variances;
    ATO "weighted", the SD of both arms together under the (overlap) weights; the same before and after."""
    X = pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0, 2.0, 4.0, 6.0, 8.0]})
    treated = np.array([1, 1, 1, 1, 0, 0, 0, 0])
    w = np.array([1.0, 1.0, 2.0, 2.0, 1.0, 1.0, 1.0, 3.0])
    diff_before = 2.5 - 5.0
    diff_after = (1 + 2 + 6 + 8) / 6 - (2 + 4 + 6 + 24) / 6
    sd = {"ATT": np.sqrt(5 / 3), "ATE": np.sqrt((5 / 3 + 20 / 3) / 2)}
    wn = w / w.sum()                                # reliability-weights variance of all eight
    mean = np.sum(wn * X.x)
    sd["ATO"] = np.sqrt(np.sum(wn * (X.x - mean) ** 2) / (1 - np.sum(wn ** 2)))
    for estimand, denominator in sd.items():
        row = balance_table(X, treated, w, estimand=estimand).iloc[0]
        assert row["smd_before"] == pytest.approx(diff_before / denominator), estimand
        assert row["smd_after"] == pytest.approx(diff_after / denominator), estimand


def test_binary_denominators_per_estimand_use_proportions():
    X = pd.DataFrame({"b": [1.0, 1.0, 1.0, 0.0, 1.0, 0.0, 0.0, 0.0]})
    treated = np.array([1, 1, 1, 1, 0, 0, 0, 0])
    w = np.array([1.0, 1.0, 1.0, 1.0, 3.0, 1.0, 1.0, 1.0])
    ate = balance_table(X, treated, w, estimand="ATE").iloc[0]
    assert ate["smd_before"] == pytest.approx(0.5 / np.sqrt(3 / 16))     # both arms p(1-p) = 3/16
    p = (3 + 3) / 10                                                     # weighted share of 1s overall
    ato = balance_table(X, treated, w, estimand="ATO").iloc[0]
    assert ato["smd_after"] == pytest.approx((0.75 - 0.5) / np.sqrt(p * (1 - p)))


def test_variance_ratio_flag_and_failures_as_data():
    rng = np.random.default_rng(2)
    treated = np.repeat([1, 0], 200)
    X = pd.DataFrame({"wide": np.concatenate([rng.normal(0, 3, 200), rng.normal(0, 1, 200)]),
                      "same": rng.normal(0, 1, 400)})
    X["same"] -= np.where(treated == 1, X["same"][:200].mean(), X["same"][200:].mean())   # equal means
    table = balance_table(X, treated, np.ones(400)).set_index("variable")
    assert "VR outside [0.5,2]" in table.loc["wide", "flag"]
    assert table.loc["same", "flag"] == ""
    failed = balance_failed(table.reset_index())
    assert failed == [{"variable": "wide", "smd_after": table.loc["wide", "smd_after"],
                       "var_ratio_after": table.loc["wide", "var_ratio_after"]}]
    assert table.loc["wide", "var_ratio_after"] > 2


def test_balanced_table_has_no_failures():
    X = pd.DataFrame({"x": [1.0, 2.0, 1.0, 2.0]})
    table = balance_table(X, np.array([1, 1, 0, 0]), np.ones(4))
    assert table["flag"].tolist() == [""]
    assert balance_failed(table) == []


def test_smd_failures_are_listed_in_table_order_with_their_numbers():
    X = pd.DataFrame({"age": [1.0, 2.0, 3.0, 3.0, 4.0, 5.0],      # SMD -2, variance ratio 1
                      "male": [1.0, 0.0, 1.0, 0.0, 1.0, 0.0],     # SMD 1/3 / sqrt(2/9), no variance ratio
                      "ok": [1.0, 2.0, 3.0, 1.0, 2.0, 3.0]})
    failed = balance_failed(balance_table(X, np.array([1, 1, 1, 0, 0, 0]), np.ones(6)))
    assert [f["variable"] for f in failed] == ["age", "male"]
    assert failed[0]["smd_after"] == pytest.approx(-2.0) and failed[0]["var_ratio_after"] == pytest.approx(1.0)
    assert failed[1]["smd_after"] == pytest.approx((1 / 3) / np.sqrt(2 / 9)) and np.isnan(failed[1]["var_ratio_after"])


def test_bad_inputs_are_data_errors():
    X = pd.DataFrame({"x": [1.0, 2.0, 3.0]})
    with pytest.raises(DataError, match="weights"):
        balance_table(X, np.array([1, 0, 1]), np.ones(2))
    with pytest.raises(DataError, match="missing"):
        balance_table(X.assign(x=[1.0, np.nan, 2.0]), np.array([1, 0, 1]), np.ones(3))
    with pytest.raises(DataError, match="declared binary"):
        balance_table(X, np.array([1, 0, 1]), np.ones(3), binary={"x"})
    with pytest.raises(DataError, match="weight is 0"):
        balance_table(X, np.array([1, 0, 1]), np.array([1.0, 0.0, 1.0]))


# ---------------------------------------------------------------- Table 1

T1_VARIABLES = {name: Variable.from_dict(spec) for name, spec in {
    "age": {"type": "numeric"},
    "n_lesions": {"type": "integer"},
    "functional": {"type": "binary"},
    "grade": {"type": "category", "levels": ["G1", "G2", "G3"]},
}.items()}


def t1_frame():
    """6 treated then 8 controls."""
    return pd.DataFrame({
        "age": [50.0, 52, 54, 56, 58, 60] + [40.0, 50, 60, 70, 80, 90, 100, np.nan],
        "n_lesions": pd.array([1, 2, 3, 4, 5, 6] + [1, 1, 2, 2, 3, 3, 4, 4], dtype="Int64"),
        "functional": pd.array([1, 1, 1, 1, 1, 0] + [0, 0, 0, 0, 0, 0, 1, 1], dtype="Int8"),
        "grade": pd.array(["G1"] * 5 + ["G3"] + ["G1", "G2"] * 4, dtype="string"),
    })


T1_TREATED = np.array([True] * 6 + [False] * 8)


def cell(table, variable, level, arm, stage):
    rows = table[(table["variable"] == variable) & (table["level"] == level) & (table["arm"] == arm)
                 & (table["stage"] == stage)]
    assert len(rows) == 1, (variable, level, arm, stage)
    return rows.iloc[0]


def shown(row) -> bool:
    return not row["suppressed"] and not pd.isna(row["units"])


def test_table_one_is_long_with_four_cells_per_row():
    table = table_one(t1_frame(), list(T1_VARIABLES), T1_VARIABLES, T1_TREATED, np.ones(14), min_cell=5)
    assert list(table.columns) == COLUMNS
    sizes = table.groupby(["variable", "level", "statistic"], sort=False).size()
    assert (sizes == 4).all()
    assert list(sizes.index.get_level_values("variable").unique()) == ["n", "age", "n_lesions", "functional", "grade"]
    cells = {(arm, stage) for arm in ("treated", "control") for stage in ("before", "after")}
    assert set(zip(table["arm"], table["stage"])) == cells
    suppressed = table[table["suppressed"]]
    assert len(suppressed) and suppressed[["units", "value", "spread", "low", "high", "percent"]].isna().all(axis=None)


def test_table_one_before_matching_by_hand():
    table = table_one(t1_frame(), list(T1_VARIABLES), T1_VARIABLES, T1_TREATED, np.ones(14), min_cell=5)
    n_treated, n_control = cell(table, "n", "", "treated", "before"), cell(table, "n", "", "control", "before")
    assert (n_treated["statistic"], n_treated["value"], n_treated["units"]) == ("n", 6, 6)
    assert n_control["value"] == 8
    age = cell(table, "age", "", "treated", "before")
    assert age["statistic"] == "mean_sd"
    assert age["value"] == pytest.approx(55.0) and age["spread"] == pytest.approx(np.sqrt(14))   # 50..60 step 2
    age = cell(table, "age", "", "control", "before")                                          # 7 non-missing
    assert age["value"] == pytest.approx(70.0) and age["spread"] == pytest.approx(np.sqrt(2800 / 6))
    assert age["units"] == 7
    missing = cell(table, "age", "(missing)", "control", "before")                             # 1 missing
    assert missing["statistic"] == "n" and missing["suppressed"] and pd.isna(missing["value"])
    missing = cell(table, "age", "(missing)", "treated", "before")
    assert not missing["suppressed"] and missing["value"] == 0 and missing["units"] == 0
    # type-5 quartiles of 1..6: positions (i - .5)/6 -> q25 = 2, median 3.5, q75 = 5
    lesions = cell(table, "n_lesions", "", "treated", "before")
    assert lesions["statistic"] == "median_iqr"
    assert (lesions["value"], lesions["low"], lesions["high"]) == (3.5, 2.0, 5.0)
    functional = cell(table, "functional", "1", "treated", "before")
    assert functional["statistic"] == "n_percent"
    assert (functional["value"], functional["units"]) == (5, 5) and functional["percent"] == pytest.approx(500 / 6)
    assert cell(table, "functional", "1", "control", "before")["suppressed"]                    # 2 of 8
    g1, g2, g3 = (cell(table, "grade", level, "treated", "before") for level in ("G1", "G2", "G3"))
    assert g1["value"] == 5 and g1["percent"] == pytest.approx(500 / 6)
    assert (g2["value"], g2["percent"], g2["suppressed"]) == (0, 0, False)
    assert g3["suppressed"]
    # SMD with MatchIt's denominator: treated SD of age sqrt(14); (55 - 70) / sqrt(14), on both arms' rows
    for arm in ("treated", "control"):
        assert cell(table, "age", "", arm, "before")["smd"] == pytest.approx(-15 / np.sqrt(14), rel=1e-12)
    assert pd.isna(cell(table, "n", "", "treated", "before")["smd"])


def test_table_one_after_matching_is_weighted_and_suppressed():
    weights = np.array([1.0] * 6 + [1, 1, 1, 1, 1, 1, 0, 0])       # controls 7 and 8 unmatched
    table = table_one(t1_frame(), ["age", "functional"], T1_VARIABLES, T1_TREATED, weights, min_cell=5)
    assert cell(table, "n", "", "control", "after")["value"] == 6
    age = cell(table, "age", "", "control", "after")                                           # 40..90 step 10
    assert age["value"] == pytest.approx(65.0) and age["spread"] == pytest.approx(np.sqrt(350))
    functional = cell(table, "functional", "1", "control", "after")
    assert (functional["value"], functional["percent"], functional["suppressed"]) == (0, 0, False)
    assert cell(table, "age", "(missing)", "control", "after")["value"] == 0
    small = table_one(t1_frame(), ["age"], T1_VARIABLES, T1_TREATED, weights, min_cell=7)
    assert cell(small, "n", "", "treated", "after")["suppressed"]
    assert cell(small, "age", "", "treated", "after")["suppressed"]
    assert not cell(small, "age", "", "control", "before")["suppressed"]                       # 7 patients


def test_suppression_counts_patients_not_weights():
    """A weighted count can exceed the patients behind it (a control of several sets), or fall below."""
    frame = pd.DataFrame({"functional": pd.array([1] * 6 + [1, 1, 1] + [0] * 9, dtype="Int8")})
    treated = np.array([True] * 6 + [False] * 12)
    heavy = np.r_[np.ones(6), [2.0, 2.0, 2.0], np.ones(9)]           # 3 patients, weighted count 6
    table = table_one(frame, ["functional"], T1_VARIABLES, treated, heavy, min_cell=5)
    assert cell(table, "functional", "1", "control", "after")["suppressed"]
    light = np.r_[np.ones(6), np.full(12, 0.5)]                       # 6 treated; controls weigh 1/2
    table = table_one(frame.assign(functional=pd.array([1] * 12 + [0] * 6, dtype="Int8")), ["functional"],
                      T1_VARIABLES, treated, light, min_cell=5)
    row = cell(table, "functional", "1", "control", "after")          # 6 patients, weighted count 3
    assert not row["suppressed"] and row["value"] == 3 and row["units"] == 6
    assert row["percent"] == pytest.approx(50.0)


def test_weighted_quantiles_reduce_to_type5_and_respect_weights():
    assert weighted_quantiles(np.array([4.0, 1.0, 3.0, 2.0]), np.ones(4), (0.25, 0.5, 0.75)) == [1.5, 2.5, 3.5]
    # unmatched units (weight 0) drop out; only relative weights matter
    x = np.array([1.0, 2.0, 3.0, 100.0])
    assert weighted_quantiles(x[x < 100], np.ones(3), (0.5,)) == [2.0]
    assert weighted_quantiles(x, np.array([0.5, 0.5, 0.5, 0.0]), (0.5,)) == [2.0]
    assert weighted_quantiles(np.array([1.0, 2.0, 4.0]), np.array([1.0, 0.0, 1.0]), (0.5,)) == [2.5]
    # midpoints of the weighted eCDF: (1 - .5) / 3 = 1/6 for x = 1, (3 - 1) / 3 = 2/3 for x = 2 -> median 5/3
    assert weighted_quantiles(np.array([1.0, 2.0]), np.array([1.0, 2.0]), (0.5,))[0] == pytest.approx(5 / 3)


# ---------------------------------------------------------------- figures

def test_figures_are_deterministic_png_without_software_stamp(tmp_path):
    X, treated, weights = reference_case(REFERENCE / "gbsg_r1_cal_logit_balance.csv")
    ps = pd.read_csv(REFERENCE / "gbsg_units.csv")["ps"].to_numpy()
    balance = balance_table(X, treated, weights)
    labels = {"treated": "hormon", "control": "no hormon"}
    for name, draw in (("love", lambda p: love_plot(balance, p, {})),
                       ("overlap", lambda p: overlap_plot(ps, treated, weights, p, labels))):
        first, second = tmp_path / f"{name}1.png", tmp_path / f"{name}2.png"
        draw(first)
        draw(second)
        content = first.read_bytes()
        assert content.startswith(b"\x89PNG") and content == second.read_bytes()
        assert b"matplotlib" not in content.lower()


# ---------------------------------------------------------------- properties

@pytest.mark.parametrize("seed", range(5))
def test_unit_weights_reproduce_before_and_scaling_weights_changes_nothing(seed):
    rng = np.random.default_rng(seed)
    X = pd.DataFrame({"x": rng.normal(size=50).round(1), "b": (rng.random(50) < 0.3).astype(float)})
    treated = rng.random(50) < 0.4
    treated[:2] = [True, False]
    plain = balance_table(X, treated, np.ones(50))
    for stat in ("smd", "var_ratio", "ecdf_mean", "ecdf_max"):
        np.testing.assert_allclose(plain[f"{stat}_after"], plain[f"{stat}_before"], rtol=1e-12)
    weights = rng.integers(0, 4, 50).astype(float)
    weights[:2] = 1.0
    numeric = ["smd_after", "var_ratio_after", "ecdf_mean_after", "ecdf_max_after"]
    np.testing.assert_allclose(balance_table(X, treated, 2.5 * weights)[numeric],
                               balance_table(X, treated, weights)[numeric], rtol=1e-12)


def test_swapping_arms_changes_the_sign_of_the_raw_difference():
    # with the same denominator the SMD is antisymmetric: check on a variable with equal arm SDs
    X = pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]})
    treated = np.array([1, 1, 1, 0, 0, 0], dtype=bool)
    forward = balance_table(X, treated, np.ones(6)).iloc[0]
    backward = balance_table(X, ~treated, np.ones(6)).iloc[0]
    assert forward["smd_before"] == pytest.approx(-backward["smd_before"])
    assert forward["var_ratio_before"] == pytest.approx(1 / backward["var_ratio_before"])
    assert forward["ecdf_max_before"] == pytest.approx(backward["ecdf_max_before"])


@pytest.mark.parametrize("seed", range(3))
def test_shared_arm_weights_equal_the_per_column_formulas_exactly(seed):
    """balance_table computes the weights' parts once for all columns; each statistic must still be
    the documented formula on that column alone, to the last bit."""
    rng = np.random.default_rng(seed)
    n = 300
    X = pd.DataFrame({"x": rng.normal(size=n).round(2), "y": rng.integers(0, 5, n).astype(float)})
    treated = rng.random(n) < 0.4
    weights = rng.integers(0, 3, n) / 3.0
    table = balance_table(X, treated, weights)
    for i, name in enumerate(X.columns):
        x = X[name].to_numpy()
        for stage, w in (("before", np.ones(n)), ("after", weights)):
            ratio = (weighted_variance(x[treated], w[treated], False)
                     / weighted_variance(x[~treated], w[~treated], False))
            assert table[f"var_ratio_{stage}"][i] == ratio
            assert (table[f"ecdf_mean_{stage}"][i], table[f"ecdf_max_{stage}"][i]) == ecdf_differences(x, treated, w)
