"""Optimal full matching, as MatchIt's ``method = "full"`` (optmatch's ``fullmatch``), solved as a
minimum-cost flow by OR-Tools (pipeline.design.matching.flow).

Full matching puts every patient into a matched set with at least one treated and one control
patient: one treated patient with one or more controls, or one control with several treated
patients, and minimises the total distance between the treated and control patients of each set.
``min_controls`` and ``max_controls`` bound the controls per treated patient in a set as optmatch's
``min.controls`` / ``max.controls``: a whole number, or 1/n for "up to n treated patients per
control" (other values are rounded as optmatch does: min_controls down, max_controls up, to a
whole number or the reciprocal of one); 0 / null mean no bound.

Such a partition is an edge cover of the admissible pairs: every patient in at least one pair,
a treated patient in ``a_t..b_t`` pairs and a control in ``a_c..b_c`` (from the bounds), at the
smallest total distance. That is a minimum-cost circulation with lower bounds (as supplies); in
an optimal cover a pair whose two patients both have several partners can be dropped at no cost
(its distance is at least 0, it is 0 only then), and doing so until none is left leaves stars:
the matched sets.

As in optmatch, a patient without any admissible partner (other arm, same exact stratum, within
the caliper) is left out, and each exact-matching stratum is its own problem: a stratum whose
bounds cannot be met leaves its patients unmatched (optmatch: "matching failed"). Every pair of
the solution is a row of ``pairs``; weights are MatchIt's for subclasses (ATT).
"""
from __future__ import annotations

import math

import numpy as np

from pipeline.config.settings import Matching
from pipeline.design.matching.common import (MatchingMethod, MatchResult, caliper_in_distance_units, caliper_phrase,
                                             distance_phrase, exact_phrase, result_from_sets, validated_inputs)
from pipeline.design.matching.flow import Graph, Infeasible, Network, admissible_pairs, solve
from pipeline.errors import NotEstimable

MAX_PAIRS = 20_000_000
"""Admissible pairs full matching will hand to the solver (memory); beyond it the analysis is not
estimable, with the remedy (optmatch refuses problems beyond 1e7 arcs by default)."""


def match(distance: np.ndarray, treated: np.ndarray, exact: np.ndarray | None, discarded: np.ndarray,
          matching: Matching, seed: int, features: np.ndarray | None = None) -> MatchResult:
    """The registry's entry point (``ratio``, ``replace``, ``order`` and the seed do not apply)."""
    return match_full(distance, treated, min_controls=matching.min_controls, max_controls=matching.max_controls,
                      caliper=matching.caliper, std_caliper=matching.std_caliper, exact=exact, discarded=discarded,
                      features=features)


def describe(matching: Matching, caliper_raw: float | None) -> str:
    bounds = []
    if matching.min_controls:
        bounds.append(f"at least {_ratio_words(_round_down(matching.min_controls))}")
    if matching.max_controls is not None:
        bounds.append(f"at most {_ratio_words(_round_up(matching.max_controls))}")
    bounds_text = f" ({' and '.join(bounds)} per treated patient in a set)" if bounds else ""
    exact = exact_phrase(matching)
    return (f"Patients were matched by optimal full matching{distance_phrase(matching)} (every patient with a "
            f"possible match in a set with one treated and one or more controls, or one control and several "
            f"treated patients, at the smallest total distance, as MatchIt's method \"full\"; OR-Tools "
            f"minimum-cost flow){bounds_text}{exact}, with {caliper_phrase(matching, caliper_raw)}; controls "
            f"weighted by treated / controls of their set (ATT); common-support discard: {matching.discard}.")


METHOD = MatchingMethod(match=match, describe=describe)


def match_full(distance: np.ndarray, treated: np.ndarray, *, min_controls: float | None = None,
               max_controls: float | None = None, caliper: float | None = None, std_caliper: bool = True,
               exact: np.ndarray | None = None, discarded: np.ndarray | None = None,
               features: np.ndarray | None = None) -> MatchResult:
    """Optimal full matching (module docstring); the other arguments as in optimal matching."""
    distance, treated, exact, discarded = validated_inputs(distance, treated, exact, discarded)
    caliper_raw = caliper_in_distance_units(distance, discarded, caliper, std_caliper)
    graph = admissible_pairs(distance, treated, discarded, exact, caliper_raw, features)
    if graph.degree.sum() > MAX_PAIRS:
        raise NotEstimable(f"full matching would weigh {graph.degree.sum():,} possible pairs of patients (more than "
                           f"{MAX_PAIRS:,}); narrow the caliper or match exactly on more variables")
    bounds = degree_bounds(min_controls, max_controls)
    stratum = np.zeros(len(distance), dtype=np.int64) if exact is None else np.unique(exact, return_inverse=True)[1]
    t_parts, c_parts, totals, tolerances, failed = [], [], [], [], 0
    for t_nodes, controls in _strata(graph, stratum):
        try:
            t, c, total, tolerance = _cover(graph.subgraph(t_nodes, controls), bounds)
        except Infeasible:
            failed += 1
            continue
        t_parts.append(t)
        c_parts.append(c)
        totals.append(total)
        tolerances.append(tolerance)
    if failed and not t_parts:
        raise NotEstimable("full matching: the bounds on controls per treated patient (min_controls "
                           f"{min_controls}, max_controls {max_controls}) cannot be met by the patients who can be "
                           "matched; relax them")
    t_index = np.concatenate(t_parts) if t_parts else np.empty(0, dtype=np.int64)
    c_index = np.concatenate(c_parts) if c_parts else np.empty(0, dtype=np.int64)
    t_index, c_index, set_key = _stars(t_index, c_index)
    details = {"total_distance": float(sum(totals)), "total_distance_tolerance": float(sum(tolerances)),
               "n_strata_failed": failed}
    return result_from_sets(t_index, c_index, set_key, treated, discarded, distance, caliper_raw, details)


def _round_down(value: float) -> float:
    """optmatch's rounding of min.controls: down to a whole number or the reciprocal of one."""
    if value >= 1 or value == 0:
        return float(math.floor(value))
    return 1.0 / math.ceil(1.0 / value - 1e-9)


def _round_up(value: float) -> float:
    """optmatch's rounding of max.controls: up to a whole number or the reciprocal of one."""
    if value >= 1:
        return float(math.ceil(value - 1e-9))
    return 1.0 / math.floor(1.0 / value + 1e-9)


def _ratio_words(value: float) -> str:
    if value >= 1:
        return f"{value:g} control{'s' if value > 1 else ''}"
    return f"1 control per {round(1 / value)} treated patients"


def degree_bounds(min_controls: float | None, max_controls: float | None) -> tuple[int, float, int, float]:
    """(a_t, b_t, a_c, b_c): pairs per treated patient and per control in a cover whose stars
    meet the bounds (b = inf: no bound). A set with one treated patient and m controls needs
    min <= m <= max; one with one control and m treated patients needs min <= 1/m <= max."""
    low = _round_down(min_controls or 0.0)
    high = math.inf if max_controls is None else _round_up(max_controls)
    a_t = int(low) if low >= 1 else 1
    b_t = high if high >= 1 else 1
    a_c = round(1 / high) if high < 1 else 1
    b_c = 1 if low >= 1 else (round(1 / low) if low > 0 else math.inf)
    return a_t, b_t, a_c, b_c


def _strata(graph: Graph, stratum: np.ndarray):
    """Per exact stratum: its treated nodes and its run of control nodes."""
    c_stratum = stratum[graph.control]
    t_stratum = stratum[graph.treated]
    for s in np.unique(t_stratum):
        first, stop = np.searchsorted(c_stratum, s, side="left"), np.searchsorted(c_stratum, s, side="right")
        yield np.flatnonzero(t_stratum == s), (int(first), int(stop))


def _cover(graph: Graph, bounds) -> tuple[np.ndarray, np.ndarray, float, float]:
    """The cheapest cover of one stratum's graph (pairs as data indices, total, tolerance)."""
    a_t, b_t, a_c, b_c = bounds
    n_c = len(graph.control)
    t_degree = graph.degree
    covering = np.zeros(n_c + 1, dtype=np.int64)          # treated runs covering each control
    np.add.at(covering, graph.lo[t_degree > 0], 1)
    np.add.at(covering, graph.hi[t_degree > 0] + 1, -1)
    c_degree = np.cumsum(covering)[:n_c]
    t_low = np.where(t_degree > 0, a_t, 0)
    c_low = np.where(c_degree > 0, a_c, 0)
    t_high = np.minimum(t_degree, b_t).astype(np.int64)
    c_high = np.minimum(c_degree, b_c).astype(np.int64)
    if (t_high < t_low).any() or (c_high < c_low).any():
        raise Infeasible()
    supply = np.concatenate([t_low, -c_low, [-t_low.sum(), c_low.sum()]]).astype(np.int64)
    solution = solve(Network(graph, (t_high - t_low).astype(np.int64), (c_high - c_low).astype(np.int64), supply,
                             circulation=True, all_pairs=True))
    return (graph.treated[solution.t_nodes], graph.control[solution.c_nodes], solution.total, solution.tolerance)


def _stars(t_index: np.ndarray, c_index: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Drop pairs whose two patients both have other partners, then key each pair by its star's
    centre (a patient with several partners; a lone pair by its treated patient)."""
    order = np.lexsort((c_index, t_index))
    t_index, c_index = t_index[order], c_index[order]
    size = int(max(t_index.max(initial=-1), c_index.max(initial=-1))) + 1
    degree = np.bincount(t_index, minlength=size) + np.bincount(c_index, minlength=size)
    keep = np.ones(len(t_index), dtype=bool)
    for p, (t, c) in enumerate(zip(t_index, c_index)):
        if degree[t] >= 2 and degree[c] >= 2:
            keep[p] = False
            degree[t] -= 1
            degree[c] -= 1
    t_index, c_index = t_index[keep], c_index[keep]
    set_key = np.where(degree[c_index] >= 2, c_index, t_index)
    return t_index, c_index, set_key
