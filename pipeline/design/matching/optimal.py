"""Optimal k:1 matching: the smallest total distance, as MatchIt's ``method = "optimal"``
(optmatch's ``pairmatch``/``fullmatch`` with ``min.controls = max.controls = k``), solved as a
minimum-cost flow by OR-Tools (pipeline.design.matching.flow).

When every treated patient can get k controls this is optmatch's optimum exactly: the k:1 match
of smallest total distance. Restrictions can make that impossible, and the packages differ there:
MatchIt ignores a caliper for optimal matching (with a warning) and, where a stratum has too few
controls, asks optmatch for fewer controls on average; optmatch fails on a problem it cannot
solve whole, or drops treated units without any eligible control (``remove.unmatchables``). Here
the rule is one that always has a solution and is exact:

1. a treated patient without any control in its stratum within the caliper stays unmatched;
2. as many treated patients as possible get a control, with the smallest total distance among
   those 1:1 matches (the optimal 1:1 match; with k = 1 this is the result);
3. with k > 1 these patients keep at least one control each and get up to k: as many pairs as
   possible, with the smallest total distance.

Controls are used once (no replacement); ``order`` does not apply. Weights and subclasses are
MatchIt's for matched sets (pipeline.design.matching.common.match_result); slots are ordered by
distance.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from pipeline.config.settings import Matching
from pipeline.design.matching.common import (NO_MATCH, MatchingMethod, MatchResult, caliper_in_distance_units,
                                             caliper_phrase, distance_phrase, exact_phrase, match_result,
                                             validated_inputs)
from pipeline.design.matching.flow import Graph, Network, Solution, admissible_pairs, most_pairs, solve


THINNED_ABOVE = 1000
"""Problems with more treated patients than this start from the optimum of a thinned problem."""
THINNING = 4
"""The thinned problem keeps every THINNING-th treated patient and control."""


def match(distance: np.ndarray, treated: np.ndarray, exact: np.ndarray | None, discarded: np.ndarray,
          matching: Matching, seed: int, features: np.ndarray | None = None) -> MatchResult:
    """The registry's entry point (the seed is not used: the optimum does not depend on it)."""
    return match_optimal(distance, treated, ratio=matching.ratio, caliper=matching.caliper,
                         std_caliper=matching.std_caliper, exact=exact, discarded=discarded, features=features)


def describe(matching: Matching, caliper_raw: float | None) -> str:
    exact = exact_phrase(matching)
    return (f"Patients were matched {matching.ratio}:1 by optimal matching{distance_phrase(matching)} without "
            f"replacement (the smallest total distance, as MatchIt's method \"optimal\"; OR-Tools minimum-cost "
            f"flow){exact}, with {caliper_phrase(matching, caliper_raw)}; treated patients without a control "
            f"within the restrictions stay unmatched, and where controls are too few as many treated patients "
            f"as possible are matched first; common-support discard: {matching.discard}.")


METHOD = MatchingMethod(match=match, describe=describe)


def match_optimal(distance: np.ndarray, treated: np.ndarray, *, ratio: int = 1, caliper: float | None = None,
                  std_caliper: bool = True, exact: np.ndarray | None = None, discarded: np.ndarray | None = None,
                  features: np.ndarray | None = None) -> MatchResult:
    """Optimal k:1 matching (module docstring). ``caliper``, ``std_caliper``, ``exact`` and
    ``discarded`` as in nearest matching; ``features``: match on their Euclidean distance
    (Mahalanobis matching) instead of the distance, the caliper still on the distance."""
    distance, treated, exact, discarded = validated_inputs(distance, treated, exact, discarded)
    caliper_raw = caliper_in_distance_units(distance, discarded, caliper, std_caliper)
    graph = admissible_pairs(distance, treated, discarded, exact, caliper_raw, features)
    solution = _optimum(graph, int(ratio))[-1]
    mm = _match_matrix(graph, solution, treated, int(ratio))
    result = match_result(mm, treated, discarded, distance, replace=False, caliper_raw=caliper_raw)
    return dataclasses.replace(result, details={"total_distance": solution.total,
                                                "total_distance_tolerance": solution.tolerance})


def _optimum(graph: Graph, ratio: int) -> tuple[Solution, Solution]:
    """The solutions of steps 1-2 and of step 3 (the same with ratio 1)."""
    hints = _hints(graph, ratio)
    first = _most_treated_then_least_distance(graph, hints[0])
    if ratio == 1 or not len(first.t_nodes):
        return first, first
    return first, _up_to_k_controls(graph, first, ratio, hints[1])


def _hints(graph: Graph, ratio: int) -> tuple:
    """Predicted pairs of both steps from the optimum of the thinned problem (pipeline.design.
    matching.flow.Graph.thinned), which starts the solver near the optimum of a large problem on
    the distance; pricing still certifies it. None for small problems and Mahalanobis distances."""
    if graph.features is not None or len(graph.treated) < THINNED_ABOVE:
        return None, None
    thinned, *kept = graph.thinned(THINNING)
    return tuple(graph.predicted_pairs(THINNING, kept, solution) for solution in _optimum(thinned, ratio))


def _most_treated_then_least_distance(graph: Graph, hint=None) -> Solution:
    """Steps 1-2: the 1:1 match with the most pairs, of smallest total distance."""
    n_t, n_c = len(graph.treated), len(graph.control)
    feasible = most_pairs(graph.lo, graph.hi, np.ones(n_t), n_c)
    supply = np.zeros(n_t + n_c + 2, dtype=np.int64)
    supply[-2], supply[-1] = len(feasible[0]), -len(feasible[0])
    return solve(Network(graph, np.ones(n_t, dtype=np.int64), np.ones(n_c, dtype=np.int64), supply,
                         required=feasible, hint=hint))


def _up_to_k_controls(graph: Graph, first: Solution, ratio: int, hint=None) -> Solution:
    """Step 3: the matched treated patients keep one control each (their unit of supply) and may
    take ratio - 1 more from the source; the flow is the largest possible. A largest flow that
    keeps every one of them matched exists (augmenting paths from the 1:1 match never unmatch a
    treated patient), so the pairs of the 1:1 match and of a largest k:1 match are feasible."""
    covered = np.unique(first.t_nodes)
    sub = graph.subgraph(covered)
    n_t, n_c = len(covered), len(sub.control)
    largest = most_pairs(sub.lo, sub.hi, np.full(n_t, ratio), n_c)
    n_pairs = len(largest[0])
    supply = np.zeros(n_t + n_c + 2, dtype=np.int64)
    supply[:n_t] = 1
    supply[-2], supply[-1] = n_pairs - n_t, -n_pairs
    required = (np.concatenate([np.searchsorted(covered, first.t_nodes), largest[0]]),
                np.concatenate([first.c_nodes, largest[1]]))
    if hint is not None:
        on_covered = np.isin(hint[0], covered)
        hint = (np.searchsorted(covered, hint[0][on_covered]), hint[1][on_covered])
    second = solve(Network(sub, np.full(n_t, ratio - 1, dtype=np.int64), np.ones(n_c, dtype=np.int64), supply,
                           required=required, hint=hint))
    return dataclasses.replace(second, t_nodes=covered[second.t_nodes])


def _match_matrix(graph: Graph, solution: Solution, treated: np.ndarray, ratio: int) -> np.ndarray:
    """One row per treated unit (data order), its controls by distance (ties: data order)."""
    treated_idx = np.flatnonzero(treated)
    rows = np.searchsorted(treated_idx, graph.treated[solution.t_nodes])
    controls = graph.control[solution.c_nodes]
    order = np.lexsort((controls, solution.costs, rows))
    rows, controls = rows[order], controls[order]
    slot = np.arange(len(rows)) - np.searchsorted(rows, rows, side="left")
    mm = np.full((len(treated_idx), ratio), NO_MATCH, dtype=np.int64)
    mm[rows, slot] = controls
    return mm
