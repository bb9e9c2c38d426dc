"""Report text: the headline sentence and disclosure control."""
from pipeline.report.formatting import count, headline, p_clause, p_value

SURVIVAL = {
    "time_unit": "months",
    "treated": {"median": 16.7, "median_lower": 11.02, "median_upper": 25.0},
    "control": {"median": None, "median_lower": 14.5, "median_upper": None},
    "logrank_p": 0.7812, "hr": 0.9512, "hr_lower": 0.6, "hr_upper": 1.5,
}


def test_headline_reads_like_the_paper():
    text = headline(SURVIVAL, {"treated": "resection", "control": "IAT"})
    assert text == ("Median survival: resection 16.7 months (95% CI 11.0–25.0) vs IAT not reached "
                    "(95% CI 14.5–NR); log-rank p = 0.78; HR 0.95 (0.60–1.50)")


def test_small_counts_are_suppressed_but_zero_is_not():
    assert [count(n, 5) for n in (0, 1, 4, 5, 120)] == ["0", "<5", "<5", "5", "120"]
    assert count(3, 10) == "<10"


def test_p_values():
    assert [p_value(p) for p in (0.0004, 0.0042, 0.049, 0.78)] == ["< 0.001", "0.004", "0.05", "0.78"]


def test_p_clause_in_running_text():
    assert p_clause(0.0001) == "p < 0.001" and p_clause(0.78) == "p = 0.78"
