"""Disclosure control: what of a site's results may leave the site (results/shareable/).

A site's results come in two tiers. The site-internal tier (results/) holds patient-level files and
exact aggregates. The shareable tier is made from the exact aggregates here, once, and every
shareable report, table, figure and manifest is rendered from it (the same renderers as the
internal tier), so nothing in it can show more than this module lets through:

- a count of 1 to min_cell - 1 patients is replaced by the marker "<min_cell" (primary suppression;
  0 is shown);
- complementary (secondary) suppression: the counts are cells of linear relations a reader knows
  (rows read = accepted + quarantined, each cohort step's before = after + excluded, an arm = its
  Table 1 levels + missing, a parent analysis's cohort = its subgroup levels', ...). A suppressed
  cell must not follow from the shown ones, so further cells are replaced by "suppressed" until no
  suppressed cell is determined by the relations (checked on the whole linear system); cells not
  shown but implied (a binary variable's "no", the censored patients) count as well;
- with report.rounding, every shown count (and weighted count) is rounded to a multiple of it
  (half up), as OpenSAFELY does;
- statistics of a group smaller than min_cell (an arm's median, survival probabilities, RMST and
  last follow-up; an SMD, variance ratio or eCDF statistic next to a suppressed Table 1 cell) are
  "suppressed";
- numbers derived from counts (the power sentence's events, the MDRR, shares of the treated not
  matched) are recomputed from the shown counts, so they say no more than those.

A suppressed number is the string "<min_cell" or "suppressed" wherever the exact tier has a number
(JSON, CSV, the manifest); formatting passes such a string on as it is.
"""
from __future__ import annotations

import copy
import json
import math
import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.linalg import null_space

from pipeline.design.propensity.design_matrix import MISSING_LEVEL, MISSING_SUFFIX
from pipeline.outcome.power import minimum_detectable_hr

SUPPRESSED = "suppressed"
ARMS = ("treated", "control")
STAGES = ("before", "after")


def small(min_cell: int) -> str:
    """The marker of a count of 1 to min_cell - 1."""
    return f"<{min_cell}"


def is_suppressed(value) -> bool:
    """A disclosed number that is not shown ("<5", "suppressed"): where the results hold a number,
    a string is a marker."""
    return isinstance(value, str)


def is_marker(value) -> bool:
    """``value`` is a suppressed number's marker (among any strings: a manifest's, say)."""
    return isinstance(value, str) and (value == SUPPRESSED or re.fullmatch(r"<[0-9]+", value) is not None)


def rounded(value, rounding: int | None, min_cell: int = 1):
    """A count rounded half up to a multiple of ``rounding`` (None: as it is), and never to below
    ``min_cell`` (a shown count of at least min_cell patients stays at least min_cell: with min_cell
    7 and rounding 5, 7 is shown as 10); a weighted count stays a float."""
    if rounding is None or value is None or is_suppressed(value):
        return value
    multiple = math.floor(value / rounding + 0.5) * rounding
    if value > 0 and multiple < min_cell:
        multiple = math.ceil(min_cell / rounding) * rounding
    return multiple if isinstance(value, (int, np.integer)) else float(multiple)


def sum_counts(*values):
    """The sum of disclosed counts: suppressed when a count is, except that a suppressed count plus
    zeros is that count ("<5")."""
    marked = [v for v in values if is_suppressed(v)]
    shown = sum(v for v in values if not is_suppressed(v))
    if not marked:
        return shown
    return marked[0] if len(marked) == 1 and shown == 0 else SUPPRESSED


# --- the linear system of counts ---------------------------------------------------------------------

@dataclass
class _Cell:
    value: float | None     # None: not known here (a hidden cell of another analysis, say)
    hidden: bool            # never shown, but implied by the relations (a binary variable's "no")
    cost: float             # which cell to suppress first when one more must go
    order: int
    small: bool = False     # known to be small although its value is not given (table1.csv's suppressed cells)

    def is_small(self, min_cell: int) -> bool:
        return self.small or (self.value is not None and 0 < self.value < min_cell)


@dataclass
class CountSystem:
    """Counts (cells, by any hashable key) and the sums relating them, as a reader of the shared
    results could relate them."""
    cells: dict = field(default_factory=dict)
    relations: list = field(default_factory=list)

    def add(self, key, value, *, hidden: bool = False, pinned: bool = False, small: bool = False):
        """A cell; ``pinned`` cells (shown elsewhere too: the numbers at risk at time 0) are suppressed
        for another cell's sake last; ``small``: known to be small without its value. A key added
        again keeps its first value."""
        if key not in self.cells:
            value = None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)
            cost = (value or 0.0) + (1e12 if pinned else 0.0)
            self.cells[key] = _Cell(value, hidden, cost, len(self.cells), small)
        return key

    def relate(self, whole, parts) -> None:
        """whole = sum(parts); keys not added (an analysis that was not estimable) are unknown."""
        members = [whole, *parts]
        for key in members:
            self.add(key, None, hidden=True)
        if len(set(members)) == len(members) and len(members) > 1:
            self.relations.append(members)

    def protect(self, min_cell: int) -> dict:
        """{key: marker} of the shown cells to suppress: "<min_cell" for the small ones, "suppressed"
        for those suppressed so that no small one can be derived."""
        unknown = {k for k, c in self.cells.items() if (c.hidden and c.value != 0) or c.is_small(min_cell)}
        protected = {k for k, c in self.cells.items() if c.is_small(min_cell)}
        secondary: set = set()
        self._holding = {key: [] for key in self.cells}       # per cell, the relations holding it
        for members in self.relations:
            for key in members:
                self._holding[key].append(members)
        while True:
            exposed = self._exposed(unknown, protected)
            if not exposed:
                break
            chosen = [self._complement(key, unknown) for key in exposed]
            chosen = {key for key in chosen if key is not None}
            if not chosen:          # nothing left to suppress in those relations (cannot happen with a total)
                break
            unknown |= chosen
            protected |= chosen
            secondary |= chosen
        return {k: (SUPPRESSED if k in secondary else small(min_cell)) for k in sorted(unknown, key=self._order)
                if not self.cells[k].hidden}

    def _order(self, key) -> int:
        return self.cells[key].order

    def _exposed(self, unknown: set, protected: set) -> list:
        """Protected cells a reader can determine: first those alone in a relation, else those the
        whole system determines (a null-space check)."""
        alone = []
        for members in self.relations:
            missing = [k for k in members if k in unknown]
            if len(missing) == 1 and missing[0] in protected and missing[0] not in alone:
                alone.append(missing[0])
        if alone:
            return alone
        rows = [members for members in self.relations if any(k in unknown for k in members)]
        if not rows:
            return []
        columns = sorted({k for members in rows for k in members if k in unknown}, key=self._order)
        index = {k: i for i, k in enumerate(columns)}
        matrix = np.zeros((len(rows), len(columns)))
        for r, members in enumerate(rows):
            for position, key in enumerate(members):
                if key in index:
                    matrix[r, index[key]] = 1.0 if position == 0 else -1.0
        free = null_space(matrix)
        return [k for k in columns if k in protected and np.all(np.abs(free[index[k]]) < 1e-9)]

    def _complement(self, key, unknown: set):
        """The shown cell to suppress with ``key``: of the relations holding it, the one with the fewest
        unknown cells; there the cell whose suppression leaves the fewest other relations with it as
        their only unknown, then non-zero before zero, then the cheapest."""
        relations = sorted(self._holding[key], key=lambda m: sum(k in unknown for k in m))
        for members in relations:
            shown = [k for k in members if k not in unknown and not self.cells[k].hidden]
            if shown:
                return min(shown, key=lambda k: (self._alone_after(k, unknown), self.cells[k].value == 0,
                                                 self.cells[k].cost, self._order(k)))
        return None

    def _alone_after(self, key, unknown: set) -> int:
        """Relations in which ``key`` would be the only unknown cell."""
        return sum(all(k == key or k not in unknown for k in members) for members in self._holding[key])


# --- the study's results as shared ----------------------------------------------------------------------

@dataclass(frozen=True)
class Policy:
    min_cell: int
    rounding: int | None = None


class _Study:
    """The counts of the registry and of every analysis in one system, with the keys each result's
    numbers have in it."""

    def __init__(self, ingest: dict, analyses: dict, origins: dict):
        self.system = CountSystem()
        self.ingest, self.analyses, self.origins = ingest, analyses, origins
        self.cohort_of = {}          # analysis -> key prefix of its cohort (identical cohorts share cells)
        self.survival_n = {}         # (analysis, arm) -> key of the arm's size in the survival comparison
        self._registry()
        for name, results in analyses.items():
            self._analysis(name, results)
        self._subgroups()

    # registry: per center and in total
    def _registry(self):
        s, centers = self.system, self.ingest["centers"]
        for where, counts in [*centers.items(), ("total", self.ingest["total"])]:
            for metric in ("rows_read", "accepted", "quarantined"):
                s.add(("registry", where, metric), counts[metric])
            for group in ("reasons", "missing"):
                for name, n in counts.get(group, {}).items():
                    s.add(("registry", where, group, name), n)
            s.relate(("registry", where, "rows_read"), [("registry", where, "accepted"),
                                                        ("registry", where, "quarantined")])
        total = self.ingest["total"]
        for metric in ("rows_read", "accepted", "quarantined"):
            s.relate(("registry", "total", metric), [("registry", c, metric) for c in centers])
        for group in ("reasons", "missing"):
            names = sorted({n for c in centers.values() for n in c.get(group, {})})
            for name in names:
                parts = [("registry", c, group, name) for c, counts in centers.items() if name in counts.get(group, {})]
                if name in total.get(group, {}):
                    s.relate(("registry", "total", group, name), parts)

    # one analysis
    def _analysis(self, name: str, results: dict):
        attrition = results["attrition"]
        if not _estimable(attrition):
            return
        cohort = ("cohort", _content_key(attrition))
        self.cohort_of[name] = cohort
        s = self.system
        previous = s.add(("registry", "total", "accepted"), None)
        if s.cells[previous].value != attrition["n_registry"]:
            previous = s.add((cohort, "n_registry"), attrition["n_registry"])
        for i, step in enumerate(attrition["steps"]):
            after = s.add(_step_key(attrition, i, "after"), step["after"])
            excluded = s.add(_step_key(attrition, i, "excluded"), step["excluded"])
            s.relate(previous, [after, excluded])
            missing = [s.add(_step_key(attrition, i, "missing", variable), n)
                       for variable, n in step.get("missing_by_variable", {}).items()]
            if len(missing) == 1:       # one variable missing: its count is the step's
                s.relate(excluded, missing)
            previous = after
        arms = {arm: s.add((cohort, "arm", arm), attrition[f"n_{arm}"]) for arm in ARMS}
        s.relate(previous, list(arms.values()))
        matched = self._matching(name, results["matching"], arms)
        self._survival(name, results["survival"], matched)
        self._table1(name, results.get("table1"), arms, matched)

    def _matching(self, name: str, matching: dict, arms: dict) -> dict:
        if not _estimable(matching):
            return {}
        s = self.system
        def key(field_):
            return s.add(("matching", name, field_), matching.get(field_, 0), pinned="matched" in field_)

        matched = {"treated": key("n_treated_matched"), "control": key("n_controls_matched")}
        trimmed = {arm: key(f"n_trimmed_{arm}") for arm in ARMS}
        treated = [matched["treated"], key("n_treated_unmatched"), key("n_discarded_treated"), trimmed["treated"]]
        s.relate(arms["treated"], treated)
        known = [matching.get(f) or 0 for f in ("n_controls_matched", "n_discarded_control", "n_trimmed_control")]
        n_control = s.cells[arms["control"]].value
        rest = s.add(("matching", name, "controls_not_matched"), None if n_control is None else n_control - sum(known),
                     hidden=True)
        s.relate(arms["control"], [matched["control"], key("n_discarded_control"), trimmed["control"], rest])
        return matched

    def _survival(self, name: str, survival: dict, matched: dict):
        if not _estimable(survival):
            return
        s = self.system
        for arm in ARMS:
            n = matched.get(arm)
            if n is None or s.cells[n].value != survival[arm]["n"]:
                n = s.add(("survival", name, arm, "n"), survival[arm]["n"], pinned=True)
            events = s.add(("survival", name, arm, "events"), survival[arm]["events"])
            censored = s.add(("survival", name, arm, "censored"), survival[arm]["n"] - survival[arm]["events"],
                             hidden=True)
            s.relate(n, [events, censored])
            self.survival_n[name, arm] = n

    def table1_key(self, name: str, stage: str, *rest):
        """A Table 1 cell's key: before matching an analysis shares its cells with those of the same
        cohort (and covariates)."""
        return ("table1", self.cohort_of[name] if stage == "before" else name, stage, *rest)

    def _table1(self, name: str, table1: pd.DataFrame | None, arms: dict, matched: dict):
        if table1 is None or "variable" not in table1:
            return
        s = self.system
        groups = {}             # rows per (variable, arm, stage), in table1's order (one pass: cheaper than groupby)
        for row in table1.itertuples(index=False):
            groups.setdefault((row.variable, row.arm, row.stage), []).append(row)
        for (variable, arm, stage), rows in groups.items():
            key = lambda level, statistic: self.table1_key(name, stage, variable, level, statistic, arm)  # noqa: E731
            cells = {}
            for row in rows:      # a suppressed cell's units are not in table1.csv
                cells[row.level, row.statistic] = s.add(key(row.level, row.statistic),
                                                        None if row.suppressed else row.units, small=row.suppressed)
            if variable == "n":
                whole = arms[arm] if stage == "before" else matched.get(arm)
                if whole is not None:
                    s.relate(whole, [cells["", "n"]])
                continue
            self._table1_variable(name, stage, variable, arm, cells)

    def _table1_variable(self, name, stage, variable, arm, cells):
        s = self.system
        n = self.table1_key(name, stage, "n", "", "n", arm)
        missing = [k for (level, statistic), k in cells.items() if statistic == "n" and level == MISSING_LEVEL]
        levels = {level: k for (level, statistic), k in cells.items() if statistic == "n_percent"}
        present = [k for (level, statistic), k in cells.items() if statistic in ("mean_sd", "median_iqr")]
        if levels:
            values = [s.cells[k].value for k in [n, *missing]]
            p_value = None if None in values else values[0] - sum(values[1:])
            present = [s.add(self.table1_key(name, stage, variable, "P", "P", arm), p_value)]
            parts = list(levels.values())
            if list(levels) == ["1"]:       # a binary variable: its "no" is implied
                one = s.cells[levels["1"]].value
                parts.append(s.add(self.table1_key(name, stage, variable, "0", "hidden", arm),
                                   None if p_value is None or one is None else p_value - one, hidden=True))
            s.relate(present[0], parts)
        s.relate(n, present + missing)

    # subgroup levels: the parent's counts are the sums of its levels'
    def _subgroups(self):
        s = self.system
        levels: dict = {}
        for name, origin in self.origins.items():
            subgroup = (origin or {}).get("subgroup")
            if subgroup:
                levels.setdefault((origin["analysis"], subgroup["variable"]), []).append(name)
        for (parent, _), names in levels.items():
            if parent not in self.cohort_of:
                continue
            parent_cohort = self.cohort_of[parent]
            for arm in ARMS:
                self._sum_over_levels((parent_cohort, "arm", arm),
                                      [(self.cohort_of[n], "arm", arm) if n in self.cohort_of else ("absent", n, arm)
                                       for n in names])
            for key in [k for k in list(s.cells) if k[:3] == ("table1", parent_cohort, "before")]:
                parts = [self.table1_key(n, "before", *key[3:]) if n in self.cohort_of else ("absent", n, key)
                         for n in names]
                if any(part in s.cells for part in parts):
                    self._sum_over_levels(key, parts)

    def _sum_over_levels(self, whole, parts):
        s = self.system
        values = [s.cells[k].value if k in s.cells else None for k in [whole, *parts]]
        rest = None if None in values else values[0] - sum(values[1:])
        s.relate(whole, [*parts, s.add(("rest", whole), rest, hidden=True)])


def _estimable(result) -> bool:
    return result is not None and result.get("estimable", False)


def _step_key(attrition: dict, i: int, *rest) -> tuple:
    """A cohort step's cell: analyses whose cohorts begin with the same steps (a parent and its
    subgroups, sensitivity variants) share them."""
    return ("step", json.dumps(attrition["steps"][:i + 1], sort_keys=True), *rest)


def _content_key(attrition: dict) -> str:
    """Analyses with the same cohort (sensitivity variants) share its cells."""
    return json.dumps(attrition, sort_keys=True)


# --- applying the markers to the results ---------------------------------------------------------------

class _Shown:
    """The disclosed value of every cell: a marker, or the count rounded."""

    def __init__(self, study: _Study, policy: Policy):
        self.study, self.policy = study, policy
        self.markers = study.system.protect(policy.min_cell)

    def count(self, key, value):
        if key in self.markers:
            return self.markers[key]
        return self.round(value)

    def round(self, value):
        return rounded(value, self.policy.rounding, self.policy.min_cell)

    def is_small(self, value) -> bool:
        return value is not None and 0 < value < self.policy.min_cell


def disclose_study(ingest: dict, analyses: dict, origins: dict, policy: Policy) -> tuple[dict, dict]:
    """(the registry summary, {analysis: results}) as shared. ``analyses``: per analysis its exact
    results {attrition, matching, survival, balance_summary, propensity: dicts; balance, table1:
    DataFrames}; ``origins``: per analysis its derived_from (subgroups relate to their parent)."""
    shown = _Shown(_Study(ingest, analyses, origins), policy)
    registry = _disclose_registry(ingest, shown)
    return registry, {name: _disclose_analysis(name, results, shown) for name, results in analyses.items()}


def _disclose_registry(ingest: dict, shown: _Shown) -> dict:
    out = copy.deepcopy(ingest)
    for where, counts in [*out["centers"].items(), ("total", out["total"])]:
        for metric in ("rows_read", "accepted", "quarantined"):
            counts[metric] = shown.count(("registry", where, metric), counts[metric])
        for group in ("reasons", "missing"):
            for name, n in counts.get(group, {}).items():
                counts[group][name] = shown.count(("registry", where, group, name), n)
    return out


def _disclose_analysis(name: str, results: dict, shown: _Shown) -> dict:
    from pipeline.report.checks import estimand_moved     # (checks formats disclosed numbers with this module)

    out = copy.deepcopy({k: v for k, v in results.items() if k not in ("table1", "balance")})
    attrition = out["attrition"]
    if not _estimable(attrition):
        return {**out, "table1": results.get("table1"), "balance": results.get("balance")}
    cohort = shown.study.cohort_of[name]
    system = shown.study.system
    attrition["n_registry"] = shown.count(_registry_key(system, cohort, attrition["n_registry"]),
                                          attrition["n_registry"])
    previous = attrition["n_registry"]
    exact = results["attrition"]
    for i, step in enumerate(attrition["steps"]):
        step["before"] = previous
        step["after"] = shown.count(_step_key(exact, i, "after"), step["after"])
        step["excluded"] = shown.count(_step_key(exact, i, "excluded"), step["excluded"])
        for variable, n in step.get("missing_by_variable", {}).items():
            step["missing_by_variable"][variable] = shown.count(_step_key(exact, i, "missing", variable), n)
        previous = step["after"]
    attrition["n_final"] = previous
    for arm in ARMS:
        attrition[f"n_{arm}"] = shown.count((cohort, "arm", arm), attrition[f"n_{arm}"])
    if _estimable(out["matching"]):      # a flag from the exact counts: more than 5% of the treated lost
        out["matching"]["estimand_moved"] = estimand_moved(results["matching"], results["attrition"])
    _disclose_matching(name, out["matching"], shown)
    _disclose_survival(name, out["survival"], out["matching"], attrition, shown)
    small_arms = _small_table1_cells(name, results.get("table1"), shown)
    out["table1"] = _disclose_table1(name, results.get("table1"), shown)
    out["balance"], out["balance_summary"] = _disclose_balance(results.get("balance"), out["balance_summary"],
                                                               small_arms)
    for diagnostics in (out["propensity"].get("diagnostics_before"), out["balance_summary"].get("diagnostics_after")):
        _disclose_shares(diagnostics, attrition, shown)
    if _estimable(out["propensity"]) and "n_score_0_or_1" in out["propensity"]:
        n = out["propensity"]["n_score_0_or_1"]
        out["propensity"]["n_score_0_or_1"] = small(shown.policy.min_cell) if shown.is_small(n) else shown.round(n)
    return out


def _registry_key(system: CountSystem, cohort, value):
    key = ("registry", "total", "accepted")
    return key if system.cells[key].value == value else (cohort, "n_registry")


def _disclose_matching(name: str, matching: dict, shown: _Shown) -> None:
    if not _estimable(matching):
        return
    for field_ in ("n_treated_matched", "n_controls_matched", "n_treated_unmatched", "n_discarded_treated",
                   "n_discarded_control", "n_trimmed_treated", "n_trimmed_control"):
        if field_ in matching:
            matching[field_] = shown.count(("matching", name, field_), matching[field_])
    for arm in ARMS:
        if isinstance(matching.get(arm), dict) and "ess" in matching[arm]:
            n = matching["n_treated_matched" if arm == "treated" else "n_controls_matched"]
            matching[arm]["ess"] = _weighted(matching[arm]["ess"], n, shown)


def _weighted(value, shown_count, shown: _Shown):
    """A weighted count (events, effective sample size): suppressed with the count it rests on, else
    rounded as counts are."""
    if value is None:
        return None
    if is_suppressed(shown_count):
        return shown_count
    return rounded(value, shown.policy.rounding, shown.policy.min_cell)


ARM_STATISTICS = ("median", "median_lower", "median_upper", "rmst", "rmst_se", "last_followup")


def _disclose_survival(name: str, survival: dict, matching: dict, attrition: dict, shown: _Shown) -> None:
    if not _estimable(survival):
        return
    survival["weights_not_unit"] = any(
        abs(survival[arm]["ess"] - survival[arm]["n"]) > 1e-9
        or abs(survival[arm]["events_weighted"] - survival[arm]["events"]) > 1e-9 for arm in ARMS)
    small_arm = False
    for arm in ARMS:
        a = survival[arm]
        n_key = shown.study.survival_n[name, arm]
        if shown.is_small(a["n"]):
            small_arm = True
            for key in ARM_STATISTICS:
                a[key] = SUPPRESSED
            a["survival_at"] = dict.fromkeys(a["survival_at"], SUPPRESSED)
            a["survival_at_ci"] = {k: [SUPPRESSED, SUPPRESSED] for k in a["survival_at_ci"]}
        n, events = shown.count(n_key, a["n"]), shown.count(("survival", name, arm, "events"), a["events"])
        a["events_weighted"] = _weighted(a["events_weighted"], events, shown)
        a["ess"] = _weighted(a["ess"], n, shown)
        a["n"], a["events"] = n, events
    if small_arm:
        for block in ("rmst_difference", "median_difference"):
            for key in ("estimate", "lower", "upper", "se", "se_independent", "lower_independent",
                        "upper_independent"):
                if key in survival[block]:
                    survival[block][key] = SUPPRESSED
        if survival["tau_rule"] != "configured":
            survival["tau"] = SUPPRESSED
    treated, control = survival["treated"], survival["control"]
    events = sum_counts(treated["events"], control["events"])
    counts = [events, treated["n"], control["n"]]
    survival["power"]["mdrr"] = (SUPPRESSED if any(map(is_suppressed, counts))
                                 else minimum_detectable_hr(*counts, alpha=survival["power"]["alpha"],
                                                            power=survival["power"]["power"]))


def _small_table1_cells(name: str, table1, shown: _Shown) -> dict:
    """Per (variable, level, stage): whether an SMD there would rest on a suppressed cell or an
    implied small one (both arms)."""
    if table1 is None or "variable" not in table1:
        return {}
    study, out = shown.study, {}
    system = study.system
    for row in table1.itertuples(index=False):
        if row.variable == "n":
            continue
        keys = [study.table1_key(name, row.stage, row.variable, row.level, row.statistic, row.arm),
                study.table1_key(name, row.stage, row.variable, "P", "P", row.arm),
                study.table1_key(name, row.stage, row.variable, "0", "hidden", row.arm)]
        if row.statistic in ("mean_sd", "median_iqr"):     # a mean or median rests on its cell's patients only
            bad = bool(row.suppressed)
        else:
            hidden = system.cells.get(keys[2])
            small_implied = hidden is not None and hidden.is_small(shown.policy.min_cell)
            bad = small_implied or any(k in shown.markers for k in keys)
        out[row.variable, row.level, row.stage] = out.get((row.variable, row.level, row.stage), False) or bad
    return out


def _disclose_table1(name: str, table1, shown: _Shown):
    """table1.csv as shared: a suppressed cell's numbers empty and its marker in ``suppressed``;
    counts rounded, percentages from the shown counts; SMDs beside a suppressed cell suppressed."""
    if table1 is None or "variable" not in table1:
        return table1
    small_cells = _small_table1_cells(name, table1, shown)
    rows = [_disclose_table1_row(name, row, shown, small_cells) for row in table1.itertuples(index=False)]
    return pd.DataFrame(rows, columns=table1.columns)


NUMBERS = ("units", "value", "spread", "low", "high", "percent")


def _disclose_table1_row(name: str, row, shown: _Shown, small_cells: dict) -> dict:
    out = row._asdict()
    marker = shown.markers.get(shown.study.table1_key(name, row.stage, row.variable, row.level, row.statistic,
                                                      row.arm))
    out["suppressed"] = ""
    if row.statistic in ("mean_sd", "median_iqr") and marker == SUPPRESSED:    # only its patients' number would tell
        out["units"] = None
    elif marker is not None or row.suppressed:
        out.update(dict.fromkeys(NUMBERS), suppressed=marker or small(shown.policy.min_cell))
    else:
        out["units"] = shown.round(int(row.units))
        if row.statistic in ("n", "n_percent"):
            out["value"] = shown.round(float(row.value))
        if row.statistic == "n_percent":
            out["percent"] = _percent(name, row, shown)
    if row.variable != "n" and small_cells.get((row.variable, row.level, row.stage)):
        out["smd"] = SUPPRESSED
    return out


def _percent(name: str, row, shown: _Shown):
    """A level's share of the arm's patients with a value; suppressed with that denominator, and from
    the rounded counts when counts are rounded."""
    study = shown.study
    p_key = study.table1_key(name, row.stage, row.variable, "P", "P", row.arm)
    if p_key in shown.markers:
        return SUPPRESSED
    if shown.policy.rounding is None or math.isnan(row.percent):
        return row.percent
    denominator = shown.round(row.value * 100 / row.percent) if row.percent else None
    return 100 * shown.round(float(row.value)) / denominator if denominator else row.percent


BALANCE_STAGE_COLUMNS = {"before": ("smd_before", "var_ratio_before", "ecdf_mean_before", "ecdf_max_before"),
                         "after": ("smd_after", "var_ratio_after", "ecdf_mean_after", "ecdf_max_after")}


def _table1_row_of(column: str) -> tuple[str, str]:
    """The Table 1 (variable, level) behind a balance column: 'grade=G2', 'ki67_missing', 'age',
    a binary 'functional' (its level "1")."""
    variable, sep, level = column.partition("=")
    if sep:
        return variable, level
    if column.endswith(MISSING_SUFFIX):
        return column.removesuffix(MISSING_SUFFIX), MISSING_LEVEL
    return column, ""


def _disclose_balance(balance, summary: dict, small_cells: dict):
    """balance.csv and balance.json as shared: a column's statistics at a stage suppressed where its
    Table 1 cells are (in either arm)."""
    if balance is None or "variable" not in balance or not _estimable(summary):
        return balance, summary
    stages = {stage: [c for c in columns if c in balance] for stage, columns in BALANCE_STAGE_COLUMNS.items()}
    out = balance.astype({c: object for columns in stages.values() for c in columns})
    hidden_after = set()
    for i, column in enumerate(balance["variable"]):
        variable, level = _table1_row_of(column)
        for stage, columns in stages.items():
            flagged = small_cells.get((variable, level, stage)) or small_cells.get((variable, "1", stage))
            if flagged:
                out.iloc[i, out.columns.get_indexer(columns)] = SUPPRESSED
                if stage == "after":
                    hidden_after.add(column)
    summary = copy.deepcopy(summary)
    for failed in summary["failed"]:
        if failed["variable"] in hidden_after:
            failed["smd_after"] = failed["var_ratio_after"] = SUPPRESSED
    for stage in STAGES:
        column = f"smd_{stage}"
        values = pd.to_numeric(balance[column], errors="coerce").abs()
        if len(values) and values.notna().any() and is_suppressed(out.loc[values.idxmax(), column]):
            summary[f"max_abs_smd_{stage}"] = SUPPRESSED
    return out, summary


def _disclose_shares(diagnostics: dict | None, attrition: dict, shown: _Shown) -> None:
    """The propensity diagnostics' shares of patients (treated, in equipoise) would give counts
    the shared tables do not: suppressed where an arm is suppressed or counts are rounded."""
    if diagnostics and (any(is_suppressed(attrition[f"n_{arm}"]) for arm in ARMS) or shown.policy.rounding):
        for key in [k for k in diagnostics if k.startswith(("share", "equipoise"))]:
            diagnostics[key] = SUPPRESSED


def records(table: pd.DataFrame | None) -> list[dict] | None:
    """A disclosed table as JSON rows (NaN as null), for results/disclosure/."""
    if table is None:
        return None
    return [{key: None if not isinstance(v, str) and pd.isna(v) else v for key, v in row.items()}
            for row in table.to_dict("records")]


def table(rows: list[dict] | None) -> pd.DataFrame | None:
    """A disclosed table from its JSON rows."""
    return None if rows is None else pd.DataFrame(rows)
