"""Disclosure control of the shareable tier: small counts, complementary suppression, rounding, and
statistics of small groups (pipeline.report.disclosure).

Whether a suppressed count can be derived is checked here by brute force, independently of the
module's linear algebra: every integer assignment of the suppressed cells that agrees with the shown
counts and the sums is enumerated, and a suppressed small count must keep more than one possible value.
"""
import itertools

import numpy as np
import pandas as pd
import pytest

from pipeline.config.settings import Variable
from pipeline.design.table_one import table_one
from pipeline.outcome.power import power_summary
from pipeline.outcome.survival import compare_survival
from pipeline.report.disclosure import SUPPRESSED, CountSystem, Policy, disclose_study, rounded, sum_counts
from pipeline.report.html import flow_items, power_text

MIN_CELL = 5


def possible_values(values: dict, relations: list, hidden: set, markers: dict, key, limit: int) -> set:
    """The values ``key`` can take given the shown cells (those not in ``markers`` nor ``hidden``)."""
    unknown = sorted(set(markers) | hidden, key=str)
    found = set()
    for guess in itertools.product(range(limit + 1), repeat=len(unknown)):
        cells = {**values, **dict(zip(unknown, guess))}
        if all(cells[whole] == sum(cells[p] for p in parts) for whole, *parts in relations):
            found.add(cells[key])
    return found


def protected(values: dict, relations: list, hidden: set = frozenset()) -> dict:
    system = CountSystem()
    for key, value in values.items():
        system.add(key, value, hidden=key in hidden)
    for whole, *parts in relations:
        system.relate(whole, parts)
    return system.protect(MIN_CELL)


def assert_not_derivable(values, relations, markers, hidden=frozenset(), limit=None):
    limit = limit or max(values.values())
    for key, value in values.items():
        if 0 < value < MIN_CELL:
            assert len(possible_values(values, relations, set(hidden), markers, key, limit)) > 1, key


def test_a_small_count_gets_its_marker_and_a_complement_zero_stays_shown():
    values = {"total": 20, "a": 3, "b": 17, "c": 0}
    relations = [("total", "a", "b", "c")]
    markers = protected(values, relations)
    assert markers["a"] == "<5"
    assert "c" not in markers
    assert sorted(markers) == ["a", "b"] or sorted(markers) == ["a", "total"]
    assert set(markers.values()) == {"<5", SUPPRESSED}
    assert_not_derivable(values, relations, markers)


def test_no_suppression_without_small_counts():
    values = {"total": 20, "a": 5, "b": 15}
    assert protected(values, [("total", "a", "b")]) == {}


def table_with_margins(cells: list[list[int]]) -> tuple[dict, list]:
    values, relations = {}, []
    for i, row in enumerate(cells):
        for j, n in enumerate(row):
            values[i, j] = n
        values["row", i] = sum(row)
        relations.append((("row", i), *[(i, j) for j in range(len(row))]))
    for j in range(len(cells[0])):
        values["col", j] = sum(row[j] for row in cells)
        relations.append((("col", j), *[(i, j) for i in range(len(cells))]))
    values["all"] = sum(map(sum, cells))
    relations.append(("all", *[("row", i) for i in range(len(cells))]))
    relations.append(("all", *[("col", j) for j in range(len(cells[0]))]))
    return values, relations


def test_complementary_suppression_in_a_table_with_margins():
    """A '<5' in a two-way table with row, column and grand totals is not recoverable from them."""
    values, relations = table_with_margins([[3, 6, 7], [5, 8, 9]])
    markers = protected(values, relations)
    assert markers[0, 0] == "<5" and len(markers) >= 4      # one cell alone, or two, could be derived
    assert_not_derivable(values, relations, markers, limit=12)


def test_a_small_exclusion_in_the_patient_flow_cannot_be_derived_from_the_boxes():
    """rows 50 -> excluded 2 -> 48 -> excluded 10 -> 38 = 20 treated + 18 control."""
    values = {"registry": 50, "out1": 2, "after1": 48, "out2": 10, "after2": 38, "treated": 20, "control": 18}
    relations = [("registry", "after1", "out1"), ("after1", "after2", "out2"), ("after2", "treated", "control")]
    markers = protected(values, relations)
    assert markers["out1"] == "<5" and "registry" in values and len(markers) >= 2
    assert_not_derivable(values, relations, markers, limit=50)


def test_relations_that_determine_a_count_only_together_are_caught():
    """x and z are never shown; every sum keeps two unknown cells, yet the three sums solve for y."""
    values = {"x": 7, "y": 3, "z": 5, "xy": 10, "xz": 12, "yz": 8}
    relations = [("xy", "x", "y"), ("xz", "x", "z"), ("yz", "y", "z")]
    markers = protected(values, relations, hidden={"x", "z"})
    assert markers["y"] == "<5" and len(markers) == 2
    assert_not_derivable(values, relations, markers, hidden={"x", "z"}, limit=12)


def test_a_small_implied_count_is_protected_like_a_shown_one():
    """A binary variable shows the patients with 1; 3 of 30 with 0 follow unless the 1s are suppressed."""
    values = {"arm": 30, "present": 30, "yes": 27, "no": 3}
    relations = [("arm", "present"), ("present", "yes", "no")]
    markers = protected(values, relations, hidden={"no"})
    assert "no" not in markers                              # never shown
    assert set(markers) & {"yes", "present", "arm"}
    assert_not_derivable(values, relations, markers, hidden={"no"}, limit=30)


@pytest.mark.parametrize("value, rounding, min_cell, expected", [
    (7, 5, 1, 5), (8, 5, 1, 10), (12.5, 5, 1, 15.0), (7, 5, 7, 10), (0, 5, 5, 0), (23, None, 5, 23),
    ("<5", 5, 5, "<5"), (3.2, 5, 5, 5.0),
])
def test_rounding_half_up_and_never_below_min_cell(value, rounding, min_cell, expected):
    result = rounded(value, rounding, min_cell)
    assert result == expected and type(result) is type(expected)


# --- a whole analysis ------------------------------------------------------------------------------

def small_study(n_treated: int, n_control: int, seed: int = 3) -> tuple[dict, dict]:
    """The registry summary and one analysis's exact results, made by the stages' own functions where
    the numbers come from patients (Table 1, the survival comparison)."""
    rng = np.random.default_rng(seed)
    n = n_treated + n_control
    treated = np.r_[np.ones(n_treated, bool), np.zeros(n_control, bool)]
    patients = pd.DataFrame({"sex": rng.choice(["female", "male"], n), "age": rng.normal(60, 10, n).round(),
                             "diabetes": (rng.random(n) < 0.9).astype(float)})
    variables = {"sex": Variable("category", ("female", "male"), None, None, None, None, None),
                 "age": Variable("numeric", None, None, None, None, None, None),
                 "diabetes": Variable("binary", None, None, None, None, None, None)}
    table1 = table_one(patients, list(variables), variables, treated, np.ones(n), MIN_CELL)
    time, event = rng.exponential(30, n).round(1) + 0.1, (rng.random(n) < 0.7).astype(int)
    survival, _ = compare_survival(time, event, treated, np.ones(n), np.arange(n), landmarks=[12], ci="log-log",
                                   bootstrap=20, time_unit="months", cluster_kind="patient")
    survival["power"] = power_summary(survival, 1.5)
    registry = {"centers": {"a": _center(31, 2), "b": _center(22, 0)}, "total": _center(53, 2)}
    attrition = {"estimable": True, "n_registry": 51,
                 "steps": [{"criterion": "age >= 18", "before": 51, "after": n, "excluded": 51 - n, "reason": "r"}],
                 "n_final": n, "n_treated": n_treated, "n_control": n_control}
    matching = {"estimable": True, "n_treated_matched": n_treated, "n_controls_matched": n_control,
                "n_treated_unmatched": 0, "n_discarded_treated": 0, "n_discarded_control": 0}
    balance = pd.DataFrame({"variable": ["sex=male", "age", "diabetes"], "smd_before": [0.1, 0.2, -0.3],
                            "smd_after": [0.1, 0.2, -0.3], "var_ratio_before": [None, 1.1, None],
                            "var_ratio_after": [None, 1.1, None], "flag": ["", "", ""]})
    shares = {"c_statistic": 0.7, "share_treated": n_treated / n, "equipoise_share": 0.4}
    results = {"attrition": attrition, "matching": matching, "survival": survival, "table1": table1,
               "balance": balance, "propensity": {"estimable": True, "diagnostics_before": dict(shares)},
               "balance_summary": {"estimable": True, "failed": [], "max_abs_smd_before": 0.3,
                                   "max_abs_smd_after": 0.3, "diagnostics_after": dict(shares)}}
    return registry, {"small": results}


def _center(rows: int, quarantined: int) -> dict:
    return {"rows_read": rows, "accepted": rows - quarantined, "quarantined": quarantined,
            "reasons": {"duplicate_id": quarantined} if quarantined else {}, "missing": {"age": 0}}


def test_an_arm_of_three_shows_no_count_and_no_statistic():
    registry, analyses = small_study(3, 40)
    shared_registry, shared = disclose_study(registry, analyses, {"small": None}, Policy(MIN_CELL))
    result = shared["small"]
    treated = result["survival"]["treated"]
    assert result["attrition"]["n_treated"] == "<5" and treated["n"] == "<5"
    assert {treated[key] for key in ("median", "rmst", "last_followup")} == {SUPPRESSED}
    assert set(treated["survival_at"].values()) == {SUPPRESSED}
    assert result["survival"]["rmst_difference"]["estimate"] == SUPPRESSED
    assert result["survival"]["power"]["mdrr"] == SUPPRESSED          # it would give the events
    assert result["survival"]["hr"] == analyses["small"]["survival"]["hr"]
    table1 = result["table1"]
    treated_cells = table1[(table1["arm"] == "treated") & (table1["statistic"] != "mean_sd")]
    assert (treated_cells["suppressed"] != "").all()
    assert (table1.loc[table1["variable"] != "n", "smd"] == SUPPRESSED).all()
    assert (result["balance"][["smd_before", "smd_after"]] == SUPPRESSED).all().all()
    assert result["propensity"]["diagnostics_before"]["share_treated"] == SUPPRESSED
    assert shared_registry["total"]["quarantined"] == "<5" and shared_registry["centers"]["a"]["quarantined"] == "<5"
    # the arms add up to the cohort: the control arm or the cohort's size must go with the treated
    attrition = result["attrition"]
    assert SUPPRESSED in (attrition["n_control"], attrition["n_final"])
    # the registry: rows read = accepted + quarantined in each center, and the centers add up
    assert SUPPRESSED in (shared_registry["centers"]["a"]["rows_read"], shared_registry["centers"]["a"]["accepted"])


def test_the_report_text_is_built_from_the_shown_numbers():
    registry, analyses = small_study(3, 40)
    shared_registry, shared = disclose_study(registry, analyses, {"small": None}, Policy(MIN_CELL))
    result = shared["small"]
    labels = {"treated": "surgery", "control": "chemo"}
    text = " ".join(item.get("text", "") for item in flow_items(shared_registry, result["attrition"],
                                                                result["matching"], labels, MIN_CELL))
    text += power_text(result["survival"], MIN_CELL, 1.5)
    counts = text.replace(f"Rows in {len(registry['centers'])} center extracts", "")
    numbers = {int(n) for n in pd.Series(counts).str.findall(r"(?<![\d.])\d+(?![\d.])")[0]}
    exact = analyses["small"]["survival"]
    assert not numbers & set(range(1, MIN_CELL))
    assert str(exact["treated"]["events"] + exact["control"]["events"]) + " events" not in text


def test_rounding_applies_to_every_shown_count():
    registry, analyses = small_study(12, 40)
    shared_registry, shared = disclose_study(registry, analyses, {"small": None}, Policy(MIN_CELL, rounding=5))
    result = shared["small"]
    counts = [result["attrition"][key] for key in ("n_registry", "n_final", "n_treated", "n_control")]
    counts += [result["survival"][arm][key] for arm in ("treated", "control") for key in ("n", "events")]
    counts += [shared_registry["total"][key] for key in ("rows_read", "accepted", "quarantined")]
    shown = [c for c in counts if not isinstance(c, str)]
    assert shown and all(c % 5 == 0 for c in shown)
    table1 = result["table1"]
    values = table1.loc[table1["statistic"].isin(["n", "n_percent"]) & (table1["suppressed"] == ""), "value"]
    assert len(values) and all(v % 5 == 0 for v in values)
    assert result["propensity"]["diagnostics_before"]["equipoise_share"] == SUPPRESSED


def test_sums_of_shown_counts_suppress_with_their_parts():
    assert sum_counts(3, 4) == 7
    assert sum_counts("<5", 0, 0) == "<5"
    assert sum_counts("<5", 12) == SUPPRESSED and sum_counts("<5", "<5") == SUPPRESSED
