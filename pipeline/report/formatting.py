"""Number formatting, disclosure control and the sentences every report shares (headline, labels)."""
from __future__ import annotations

import math

from pipeline.config.settings import Treatment, Variable
from pipeline.design.propensity.design_matrix import MISSING_SUFFIX
from pipeline.report.disclosure import is_suppressed   # a number the shareable tier does not show: passed on

ARMS = ("treated", "control")
TEST_NAMES = {"logrank": "log-rank", "robust_score": "robust score test",   # as in "log-rank p = 0.78"
              "pooled_wald": "pooled Wald test"}
TEST_FULL_NAMES = {"logrank": "log-rank test", "robust_score": "robust score test",
                   "pooled_wald": "pooled Wald test"}
BINARY_LEVELS = {"1": "yes", "0": "no", "1.0": "yes", "0.0": "no", "True": "yes", "False": "no"}
CLUSTER_PLURAL = {"matched set": "matched sets", "patient": "patients"}


def count(n, min_cell: int) -> str:
    """A count, or "<min_cell" when it is small enough to identify patients (0 is shown)."""
    if n is None:
        return "–"
    if is_suppressed(n):
        return n
    n = int(n)
    return f"<{min_cell}" if 0 < n < min_cell else str(n)


def weighted_count(value, rows, min_cell: int) -> str:
    """A weighted count to one decimal; "<min_cell" when it rests on 1 to min_cell - 1 rows."""
    if value is None or rows is None:
        return "–"
    if is_suppressed(value) or is_suppressed(rows):
        return value if is_suppressed(value) else rows
    return f"<{min_cell}" if 0 < rows < min_cell else f"{value:.1f}"


def number(x, digits: int = 1) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "NR"
    if is_suppressed(x):
        return x
    return f"{x:.{digits}f}"


def time_value(t) -> str:
    """A time point as a reader writes it: 60, 48.2."""
    if is_suppressed(t):
        return t
    return f"{t:.0f}" if float(t).is_integer() else f"{t:.1f}"


def percent(share, digits: int = 1) -> str:
    """A share as a percentage without the sign: '61.6'."""
    return number(share if share is None or is_suppressed(share) else 100 * share, digits)


def signed(x, digits: int = 3) -> str:
    """'+0.143', '-0.168'."""
    return x if is_suppressed(x) else f"{x:+.{digits}f}"


def p_value(p) -> str:
    if p is None:
        return "–"
    return "< 0.001" if p < 0.001 else f"{p:.3f}" if p < 0.01 else f"{p:.2f}"


def p_clause(p) -> str:
    """'p = 0.78' or 'p < 0.001', for running text."""
    text = p_value(p)
    return f"p {text}" if text.startswith("<") else f"p = {text}"


def ci_range(lower, upper, digits: int = 1) -> str:
    """'10.1–15.0'; with a negative bound '-2.0 to 7.4' (a dash would read as a minus sign)."""
    negative = any(isinstance(b, (int, float)) and b < 0 for b in (lower, upper))
    return f"{number(lower, digits)}{' to ' if negative else '–'}{number(upper, digits)}"


def estimate_ci(est, lower, upper, digits: int = 1) -> str:
    """'12.3 (95% CI 10.1–15.0)'; a bound that is not reached reads NR."""
    return f"{number(est, digits)} (95% CI {ci_range(lower, upper, digits)})"


def arm_median(arm: dict, time_unit: str) -> str:
    if is_suppressed(arm["median"]):
        return f"{arm['median']} (fewer patients than may be shown)"
    ci = ci_range(arm["median_lower"], arm["median_upper"])
    if arm["median"] is None:
        return f"not reached (95% CI {ci})"
    return f"{number(arm['median'])} {time_unit} (95% CI {ci})"


def is_estimable(result: dict | None) -> bool:
    """A stage's JSON result could be estimated (None: the result is not at hand)."""
    return result is not None and result["estimable"]


def not_estimable_text(result: dict) -> str:
    """'Not estimable: <reason> (stage: match)'."""
    return f"Not estimable: {result['reason']} (stage: {result['stage']})"


def test_clause(survival: dict) -> str:
    """The test the headline uses, in running text: 'log-rank p = 0.78', 'robust score test p = 0.03',
    'log-rank test not estimable'."""
    test = survival["test"]
    if test["p"] is None:
        return f"{TEST_FULL_NAMES[test['method']]} not estimable"
    return f"{TEST_NAMES[test['method']]} {p_clause(test['p'])}"


def hr_clause(survival: dict) -> str:
    if survival["hr"] is None:
        return "HR not estimable"
    return f"HR {number(survival['hr'], 2)} ({ci_range(survival['hr_lower'], survival['hr_upper'], 2)})"


def hr_cluster(survival: dict) -> str:
    """What the HR's robust SE is clustered on, in the plural ('matched sets', 'patients')."""
    return CLUSTER_PLURAL[survival["hr_cluster"]]


def landmark_both_arms(survival: dict):
    """The last landmark (key) at which both arms' survival is estimable, or None."""
    def shown(value):
        return value is not None and not is_suppressed(value)

    both = [k for k, v in survival["treated"]["survival_at"].items()
            if shown(v) and shown(survival["control"]["survival_at"][k])]
    return max(both, key=float, default=None)


def restricted_clauses(survival: dict, labels: dict) -> list[str]:
    """What the headline says instead of a median difference when a median is not reached."""
    unit = survival["time_unit"]
    rmst = survival["rmst_difference"]
    clauses = [f"RMST difference to {time_value(survival['tau'])} {unit}: "
               f"{number(rmst['estimate'])} {unit} (95% CI {ci_range(rmst['lower'], rmst['upper'])})"]
    landmark = landmark_both_arms(survival)
    if landmark is not None:
        at = {arm: survival[arm]["survival_at"][landmark] for arm in ("treated", "control")}
        shares = [f"{labels[arm]} {100 * share:.1f}%" for arm, share in at.items()]
        clauses.append(f"survival at {time_value(float(landmark))} {unit}: {shares[0]} vs {shares[1]}")
    return clauses


def headline(survival: dict, labels: dict, endpoint: str) -> str:
    """The analysis's one-sentence result, as a reader would quote it."""
    if not is_estimable(survival):
        return not_estimable_text(survival)
    unit = survival["time_unit"]
    clauses = [f"Median {endpoint}: {labels['treated']} {arm_median(survival['treated'], unit)} vs "
               f"{labels['control']} {arm_median(survival['control'], unit)}"]
    if any(survival[arm]["median"] is None or is_suppressed(survival[arm]["median"]) for arm in ARMS):
        clauses += restricted_clauses(survival, labels)
    return "; ".join(clauses + [test_clause(survival), hr_clause(survival)])


def median_difference_text(median: dict) -> str:
    """The bootstrap median difference; a CI limit past every resample's follow-up reads 'unbounded'."""
    ci = _bootstrap_ci(median)
    if median["estimate"] is None:
        return f"no estimate (a median is not reached); {ci}"
    return f"{number(median['estimate'])} ({ci})"


def _bootstrap_ci(median: dict) -> str:
    if not median["n_bootstrap"]:
        return "no bootstrap"
    lower, upper = median["lower"], median["upper"]
    if lower is not None and upper is not None:
        return f"95% CI {ci_range(lower, upper)}"
    without = 100 * median["n_bootstrap_without_median"] / median["n_bootstrap"]
    share = f" ({without:.0f}% of resamples without a median)"
    if lower is None and upper is None:
        return f"95% CI unbounded{share}"
    if lower is None:
        return f"95% CI unbounded below to {number(upper)}{share}"
    return f"95% CI {number(lower)} to unbounded{share}"


def arm_labels(treatment: Treatment) -> dict[str, str]:
    """{"treated": ..., "control": ...}: the arms' display names."""
    return {arm: treatment.label(arm) for arm in ARMS}


def variable_label(name: str, variables: dict[str, Variable]) -> str:
    """A variable's display label (registry.variables.<v>.label, default its name); center and
    index_year, which are not registry variables, by their names."""
    return variables[name].display(name) if name in variables else name


def column_label(column: str, variables: dict[str, Variable]) -> str:
    """A balance-table column ('grade=G2', 'ki67_missing', 'age') with its variable's label."""
    if column in variables:
        return variable_label(column, variables)
    variable, sep, level = column.partition("=")
    if sep and variable in variables:
        return f"{variable_label(variable, variables)} = {level}"
    stem = column.removesuffix(MISSING_SUFFIX)
    if stem != column and stem in variables:
        return f"{variable_label(stem, variables)} missing"
    return column


def level_name(variable: str, level, variables: dict[str, Variable]) -> str:
    """A subgroup level as a reader names it: binary 1/0 as yes/no, a number without '.0', a
    category level as configured."""
    binary = variable in variables and variables[variable].type == "binary"
    if binary and str(level) in BINARY_LEVELS:
        return BINARY_LEVELS[str(level)]
    if isinstance(level, float) and level.is_integer():
        return str(int(level))
    return str(level)


def subgroup_label(variable: str, level, variables: dict[str, Variable]) -> str:
    """'functional = yes'."""
    return f"{variable_label(variable, variables)} = {level_name(variable, level, variables)}"
