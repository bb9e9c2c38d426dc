"""Table 1: shared sorts and arm weights give the same cells as computing each cell on its own rows."""
import numpy as np
import pandas as pd
import pytest

from pipeline.config.settings import Variable
from pipeline.design.table_one import _stable_order, table_one, weighted_quantiles

VARIABLES = {name: Variable.from_dict(spec) for name, spec in {
    "age": {"type": "numeric"},
    "ecog": {"type": "integer"},
    "functional": {"type": "binary"},
    "grade": {"type": "category", "levels": ["G1", "G2", "G3"]},
}.items()}


@pytest.mark.parametrize("x", [
    [3.0, 1.0, 3.0, 0.0, 1.0, 2.0, 0.0],             # small whole numbers: sorted as int16
    [0.0, -0.0, 1.0, -0.0, 0.0],                      # signed zeros tie, keep data order
    [40000.0, 3.0, -40000.0, 3.0, 1.0],               # outside int16: float sort
    [2.5, 1.0, 2.5, 0.5],                             # not whole
    [],
])
def test_stable_order_is_the_stable_argsort(x):
    x = np.array(x, dtype=float)
    np.testing.assert_array_equal(_stable_order(x), np.argsort(x, kind="stable"))


@pytest.mark.parametrize("seed", range(4))
def test_quantiles_with_a_shared_order_equal_those_sorted_per_weighting(seed):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 6, 300).astype(float)
    order = _stable_order(x)
    for w in (np.ones(300), rng.integers(0, 3, 300) / 2.0, (rng.random(300) < 0.3) * rng.random(300)):
        assert weighted_quantiles(x, w, (0.25, 0.5, 0.75), order) == weighted_quantiles(x, w, (0.25, 0.5, 0.75))


def frame(rng, n):
    df = pd.DataFrame({
        "age": rng.normal(60, 10, n).round(1),
        "ecog": pd.array(rng.integers(0, 4, n), dtype="Int64"),
        "functional": pd.array((rng.random(n) < 0.4).astype(int), dtype="Int8"),
        "grade": pd.array(rng.choice(["G1", "G2", "G3"], n), dtype="string"),
    })
    return df


@pytest.mark.parametrize("seed", range(3))
def test_smd_of_a_variable_with_missing_values_is_that_of_its_complete_rows(seed):
    """Whole-sample arm weights (complete variables) and per-variable ones (missing values) agree exactly."""
    rng = np.random.default_rng(seed)
    n = 400
    df = frame(rng, n)
    treated = rng.random(n) < 0.4
    weights = rng.integers(0, 3, n) / 2.0
    gaps = rng.random(n) < 0.1
    df.loc[gaps, "age"] = np.nan
    df.loc[gaps, "functional"] = pd.NA
    df.loc[gaps, "grade"] = pd.NA
    full = table_one(df, list(VARIABLES), VARIABLES, treated, weights, min_cell=0)
    complete = table_one(df[~gaps], list(VARIABLES), VARIABLES, treated[~gaps], weights[~gaps], min_cell=0)
    for variable, level in [("age", ""), ("functional", "1"), ("grade", "G2")]:
        with_gaps = full[(full.variable == variable) & (full.level == level)]["smd"].to_numpy()
        without = complete[(complete.variable == variable) & (complete.level == level)]["smd"].to_numpy()
        assert len(with_gaps) == 4
        np.testing.assert_array_equal(with_gaps, without)
    assert full[full.variable == "ecog"]["smd"].notna().all()


def test_missing_level_of_a_category_is_its_own_row_only_when_present():
    df = pd.DataFrame({"grade": pd.array(["G1", "(missing)", "G2", "G1", "(missing)", "G3"], dtype="string")})
    treated = np.array([True, True, True, False, False, False])
    table = table_one(df, ["grade"], VARIABLES, treated, np.ones(6), min_cell=0)
    missing = table[(table.variable == "grade") & (table.level == "(missing)") & (table.stage == "before")]
    assert missing["statistic"].tolist() == ["n_percent"] * 2 and missing["arm"].tolist() == ["treated", "control"]
    assert missing["value"].tolist() == [1, 1] and missing["percent"].to_numpy() == pytest.approx([100 / 3] * 2)
    without = table_one(df[df.grade != "(missing)"], ["grade"], VARIABLES, treated[[0, 2, 3, 5]], np.ones(4),
                        min_cell=0)
    assert list(without[without.variable == "grade"].level.unique()) == ["G1", "G2", "G3"]


def test_smd_is_nan_when_an_arm_is_empty_or_unweighted():
    rng = np.random.default_rng(5)
    df = frame(rng, 20)
    treated = np.arange(20) < 8
    no_control_weight = np.where(treated, 1.0, 0.0)
    table = table_one(df, list(VARIABLES), VARIABLES, treated, no_control_weight, min_cell=0)
    covariates = table[table.variable != "n"]
    assert covariates[covariates.stage == "before"].smd.notna().all()
    assert covariates[covariates.stage == "after"].smd.isna().all()
    one_arm = table_one(df, list(VARIABLES), VARIABLES, np.ones(20, bool), np.ones(20), min_cell=0)
    assert one_arm.smd.isna().all()
