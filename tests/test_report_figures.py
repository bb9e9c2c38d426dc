"""The report's figures: natural time ticks, censoring marks, weighted numbers at risk, labels drawn
literally (a `$` is text, not mathtext), subgroup level names, byte-reproducible PNGs, and the shareable
forms (a small arm's curve and small bins left out, numbers at risk rounded)."""
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from pipeline.report.diagnostic_plots import love_plot, overlap_plot
from pipeline.report.forest import forest_rows, forest_plot
from pipeline.outcome.km import KaplanMeier
from pipeline.report.km_plot import natural_ticks, plot_km
from tests.test_forest import analyses
from tests.test_report_formatting import variables

# invalid mathtext: matplotlib raises on it unless the label is drawn as plain text
DOLLAR = r"cost $\notacommand$ <5 & co"
rng = np.random.default_rng(3)
N = 60
TIME = np.round(rng.exponential(30, N), 1)
EVENT = (rng.random(N) < 0.6).astype(int)
TREATED = np.arange(N) % 2 == 0


def km_curves(event=EVENT, weight=np.ones(N), ci="log-log"):
    """The arms' fitted curves, as the survival stage hands them to the plot."""
    return {"treated": KaplanMeier.fit(TIME[TREATED], event[TREATED], weight[TREATED], ci),
            "control": KaplanMeier.fit(TIME[~TREATED], event[~TREATED], weight[~TREATED], ci)}


def km(curves, labels=("resection", "IAT"), endpoint="overall survival", **kw):
    return plot_km(curves, endpoint=endpoint, labels=dict(zip(("treated", "control"), labels)), **kw)


def texts(fig) -> list[str]:
    """Every string drawn on a figure (tick labels, legend, titles, free text)."""
    fig.canvas.draw()
    found = [t.get_text() for t in fig.findobj(lambda a: hasattr(a, "get_text") and a.get_visible())]
    return [t for t in found if t]


@pytest.mark.parametrize("t_max, unit, expected", [
    (294, "months", [0, 60, 120, 180, 240]),
    (30, "months", [0, 6, 12, 18, 24, 30]),
    (100, "months", [0, 24, 48, 72, 96]),
    (10.5, "years", [0, 2, 4, 6, 8, 10]),
    (3.2, "years", [0, 0.5, 1, 1.5, 2, 2.5, 3]),
    (3650, "days", [0, 730, 1460, 2190, 2920, 3650]),
    (200, "days", [0, 30, 60, 90, 120, 150, 180]),
    (520, "weeks", [0, 104, 208, 312, 416, 520]),
])
def test_ticks_are_natural_units(t_max, unit, expected):
    assert natural_ticks(t_max, unit).tolist() == expected


def test_km_plot_shows_endpoint_censoring_and_counts_at_risk(tmp_path):
    fig = km(km_curves(), min_cell=5, endpoint="event-free survival", path=tmp_path / "km.png")
    drawn = texts(fig)
    assert "Event-free survival probability" in drawn and "Number at risk" in drawn
    assert str(int(TREATED.sum())) in drawn              # everyone at risk at time 0
    censor_marks = [line for line in fig.axes[0].lines if line.get_marker() == "|"]
    assert sum(len(line.get_xdata()) for line in censor_marks) == \
        len(np.unique(TIME[TREATED & (EVENT == 0)])) + len(np.unique(TIME[~TREATED & (EVENT == 0)]))
    plt.close(fig)


def test_km_weighted_numbers_at_risk_with_suppression():
    weight = np.where(TREATED, 1.0, 0.5)
    fig = km(km_curves(weight=weight), min_cell=5)
    drawn = texts(fig)
    assert "Number at risk (weighted)" in drawn
    assert f"{0.5 * (~TREATED).sum():.1f}" in drawn       # IAT at time 0: 30 patients of weight 0.5
    assert "<5" in drawn                                  # the tail rests on fewer than 5 patients
    plt.close(fig)


def test_shareable_km_plot_hides_a_small_arm_and_rounds_the_numbers_at_risk():
    small = TREATED & (np.arange(N) < 6)                  # 3 treated patients
    curves = {"treated": KaplanMeier.fit(TIME[small], EVENT[small], np.ones(3), "log-log"),
              "control": km_curves()["control"]}
    fig = km(curves, min_cell=5, rounding=5, shareable=True)
    drawn = texts(fig)
    assert "resection (fewer than 5 patients: not shown)" in drawn
    curve_lines = [line for line in fig.axes[0].lines if len(line.get_xdata())]
    assert curve_lines and all(line.get_color() != fig.axes[0].get_legend().legend_handles[0].get_color()
                               for line in curve_lines)
    at_risk = [t.get_text() for t in fig.axes[1].texts if t.get_text().isdigit()]
    assert "30" in at_risk and all(int(t) % 5 == 0 and int(t) not in range(1, 5) for t in at_risk)
    plt.close(fig)


def bar_heights(ax) -> list[float]:
    """The signed heights of the bars drawn on an overlap plot's panel (each bar a polygon from 0)."""
    heights = []
    for collection in ax.collections:
        for path in collection.get_paths():
            y = path.vertices[:, 1]
            heights.append(y[np.argmax(np.abs(y))])
    return heights


def test_shareable_overlap_plot_leaves_out_bins_of_few_patients(tmp_path):
    ps = np.r_[np.full(6, 0.31), np.full(2, 0.71), np.full(8, 0.52)]     # bins of 6 and 2 treated, 8 controls
    treated = np.r_[np.ones(8, bool), np.zeros(8, bool)]
    labels = {"treated": "resection", "control": "IAT"}
    bars = {min_cell: bar_heights(overlap_plot(ps, treated, np.ones(16), tmp_path / "o.png", labels,
                                               min_cell=min_cell).axes[0])
            for min_cell in (None, 5)}
    assert sorted(bars[None]) == pytest.approx([-1.0, 0.25, 0.75])
    assert sorted(bars[5]) == pytest.approx([-1.0, 0.75])
    plt.close("all")


def test_overlap_plot_draws_each_arms_bins_before_and_after_with_their_weights(tmp_path):
    ps = np.r_[0.11, 0.12, 0.33, 0.64, 0.26, 0.27, 0.28, 0.91]
    treated = np.r_[np.ones(4, bool), np.zeros(4, bool)]
    weights = np.r_[1.0, 1.0, 0.0, 2.0, 1.0, 0.0, 0.0, 3.0]
    fig = overlap_plot(ps, treated, weights, tmp_path / "o.png", {"treated": "resection", "control": "IAT"})
    before, after = fig.axes
    for ax in (before, after):
        assert [collection.get_label() for collection in ax.collections] == ["resection", "IAT"]
    # before: shares of the arms' patients; after: of their weights (a weight of 0 leaves its bin empty)
    assert sorted(bar_heights(before)) == pytest.approx([-0.5, -0.25, -0.25, 0.25, 0.25, 0.5])
    assert sorted(bar_heights(after)) == pytest.approx([-0.75, -0.25, 0.5, 0.5])
    assert [t.get_text() for t in after.get_legend().get_texts()] == ["resection", "IAT"]
    plt.close("all")


def test_km_bands_are_optional():
    without = km(km_curves())
    with_bands = km(km_curves(), bands=True)
    assert len(without.axes[0].collections) == 0 and len(with_bands.axes[0].collections) == 2
    plt.close("all")


def test_labels_with_dollar_signs_render_literally_in_every_plot(tmp_path):
    km_figure = km(km_curves(), labels=(DOLLAR, "IAT"), path=tmp_path / "km.png")
    assert any(t.startswith(DOLLAR) for t in texts(km_figure))
    plt.close(km_figure)
    balance = pd.DataFrame({"variable": ["age", "x=b"], "smd_before": [0.3, -0.2], "smd_after": [0.05, 0.01]})
    love = love_plot(balance, tmp_path / "love.png", variables(age={"type": "numeric", "label": DOLLAR},
                                                                x={"type": "category", "levels": ["a", "b"]}))
    assert DOLLAR in texts(love) and "x = b" in texts(love)
    overlap = overlap_plot(rng.random(N), TREATED, np.ones(N), tmp_path / "overlap.png",
                           labels={"treated": DOLLAR, "control": "IAT"})
    assert DOLLAR in texts(overlap) and f"Share of arm ({DOLLAR} up, IAT down)" in texts(overlap)
    subgroup = {"analysis": "main", "subgroup": {"variable": "site", "level": DOLLAR}}
    survival = {"estimable": True, "treated": {"n": 30, "events": 10, "median": None},
                "control": {"n": 30, "events": 12, "median": 9.0}, "hr": 0.8, "hr_lower": 0.5, "hr_upper": 1.3,
                "hr_p": 0.4, "hr_robust_se": 0.25, "power": {"mdrr": 2.9, "alpha": 0.05, "underpowered": False}}
    rows = forest_rows(analyses(main=None, main__site_x=subgroup),
                       [{"name": n, "survival": survival} for n in ("main", "main__site_x")], {})
    forest = forest_plot(rows, {"treated": DOLLAR, "control": "IAT"}, tmp_path / "forest.png", 5)
    drawn = texts(forest)
    assert any(DOLLAR in t for t in drawn) and any(t.startswith(f"   site = {DOLLAR}") for t in drawn)


def test_forest_names_levels_and_lists_not_estimable_rows_as_text(tmp_path):
    origins = {"main": None}
    survival = {"estimable": True, "treated": {"n": 30, "events": 10, "median": None},
                "control": {"n": 30, "events": 12, "median": 9.0}, "hr": 0.8, "hr_lower": 0.5, "hr_upper": 1.3,
                "hr_p": 0.4, "hr_robust_se": 0.25, "power": {"mdrr": 2.9, "alpha": 0.05, "underpowered": True}}
    failed = {"estimable": True, "failed": [{"variable": "age", "smd_after": 0.2, "var_ratio_after": 1.0}]}
    entries = [{"name": "main", "survival": survival, "balance_summary": failed}]
    for level in (0, 1):
        name = f"main__functional_{level}"
        origins[name] = {"analysis": "main", "subgroup": {"variable": "functional", "level": level}}
        entries.append({"name": name, "survival": survival if level else
                        {"estimable": False, "reason": "no control patient in this level", "stage": "cohort"}})
    rows = forest_rows(analyses(**origins), entries,
                       variables(functional={"type": "binary", "label": "Hormonally active"}))
    drawn = texts(forest_plot(rows, {"treated": "resection", "control": "IAT"}, tmp_path / "f.png", 5))
    assert "main †§  (n 30/30, events 10/12)" in drawn
    assert "   Hormonally active = no  (not estimable: no control patient in this level)" in drawn
    assert "   Hormonally active = yes §  (n 30/30, events 10/12)" in drawn
    assert drawn.count("not estimable") == 1 and not any("= 0" in t or "= 1" in t for t in drawn)


def test_pngs_are_byte_reproducible(tmp_path):
    balance = pd.DataFrame({"variable": ["age", "x"], "smd_before": [0.3, -0.2], "smd_after": [0.05, 0.01]})
    ps = rng.random(N)
    for name in ("a", "b"):
        plt.close(km(km_curves(weight=np.where(TREATED, 1.0, 0.5), ci="log"), bands=True,
                     path=tmp_path / f"km_{name}.png"))
        love_plot(balance, tmp_path / f"love_{name}.png", {})
        overlap_plot(ps, TREATED, np.ones(N), tmp_path / f"overlap_{name}.png", {"treated": "a", "control": "b"})
    for figure in ("km", "love", "overlap"):
        assert (tmp_path / f"{figure}_a.png").read_bytes() == (tmp_path / f"{figure}_b.png").read_bytes(), figure


@pytest.mark.parametrize("event", [np.zeros(N, int), np.where(TREATED, EVENT, 0)], ids=["no events", "one arm"])
def test_km_plot_of_degenerate_data_is_drawn(tmp_path, event):
    fig = km(km_curves(event=event), labels=("treated", "control"), bands=True, path=tmp_path / "km.png")
    assert any(t.startswith("control (median not reached)") for t in texts(fig))
    plt.close(fig)


def test_km_figure_without_medians_names_no_median_and_draws_no_median_lines():
    """An imputed analysis reports the median across imputations, not the drawn curves' medians."""
    with_medians, without = km(km_curves()), km(km_curves(), medians=False)
    assert any("median" in text for text in texts(with_medians))
    assert not any("median" in text for text in texts(without))
    dotted = [len([line for line in fig.axes[0].get_lines() if line.get_linestyle() == ":"])
              for fig in (with_medians, without)]
    assert dotted[0] == 2 and dotted[1] == 0
