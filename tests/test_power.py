"""MDRR against hand calculations (Schoenfeld 1983; OHDSI CohortMethod's computeMdrr)."""
import math

import pytest

from pipeline.outcome.power import minimum_detectable_hr, power_summary


def test_balanced_arms_hand_calculation():
    # z = 1.959964 + 0.841621 = 2.801585; z^2 = 7.848879; / (100 * 0.25) = 0.313955; sqrt = 0.560317
    assert minimum_detectable_hr(100, 50, 50) == pytest.approx(math.exp(0.560317), rel=1e-6)
    assert minimum_detectable_hr(100, 50, 50) == pytest.approx(1.7512, abs=1e-4)


def test_unbalanced_arms_and_edge_cases():
    # 2:1 matching: p = 1/3, p(1-p) = 2/9; D = 90: 7.848879 / 20 = 0.392444; sqrt = 0.626453
    assert minimum_detectable_hr(90, 30, 60) == pytest.approx(math.exp(0.626453), rel=1e-6)
    assert minimum_detectable_hr(0, 30, 60) is None
    assert minimum_detectable_hr(10, 0, 60) is None


def test_more_events_detect_smaller_effects():
    assert minimum_detectable_hr(1000, 500, 500) < minimum_detectable_hr(100, 50, 50)


def test_power_summary_flags_small_samples():
    small = {"treated": {"events": 20, "n": 37}, "control": {"events": 22, "n": 37}}
    summary = power_summary(small, relevant_hr=1.5)
    assert summary["underpowered"] and summary["mdrr"] > 2
    big = {"treated": {"events": 400, "n": 600}, "control": {"events": 420, "n": 600}}
    assert not power_summary(big, relevant_hr=1.5)["underpowered"]
