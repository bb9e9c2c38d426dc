"""Greedy nearest-neighbour matching on a scalar distance with MatchIt (>= 4.6) semantics.

Reproduces ``matchit(method = "nearest")`` with a vector distance (MatchIt's ``nn_matchC_vec``):

* All units are sorted by distance (ties by data order, as R's ``order``). For each treated unit the
  scan looks at the nearest available control on its left and on its right in that sorted order;
  the closer one wins, a difference equal to the caliper is accepted. On equal distance the control
  reached in fewer steps of MatchIt's alternating scan wins (left first on equal steps). Steps are
  counted in positions of the full sorted array (treated, discarded and used units included), from
  the edges of the unit's current window (itself plus the controls it already holds).
* Without replacement controls are given out round-robin: every treated unit (in ``order``) gets
  its first control before any gets its second. A treated unit without a first control drops out.
* With replacement MatchIt matches in data order (``order`` is ignored) and takes the ``ratio``
  nearest controls at once; the chosen set and its slot order follow MatchIt's use of
  ``std::partial_sort`` (libstdc++), which this module reproduces.

"Available" controls are found in O(log n) amortised with two union-find structures ("next alive
to the left/right") over the controls sorted by (exact stratum, distance), so a whole match is
O(n log n): one sort plus linear passes. The loops run under numba.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

from pipeline.config.settings import Matching
from pipeline.design.matching.common import (NO_MATCH, MatchingMethod, MatchResult, caliper_in_distance_units,
                                             distance_phrase, exact_phrase, match_result, validated_inputs)
from pipeline.design.matching.flow import admissible_pairs


def match(distance: np.ndarray, treated: np.ndarray, exact: np.ndarray | None, discarded: np.ndarray,
          matching: Matching, seed: int, features: np.ndarray | None = None) -> MatchResult:
    """The registry's entry point: :func:`match_nearest` with an analysis's Matching settings."""
    return match_nearest(distance, treated, ratio=matching.ratio, caliper=matching.caliper,
                         std_caliper=matching.std_caliper, replace=matching.replace, order=matching.order,
                         exact=exact, discarded=discarded, seed=seed, features=features)


def describe(matching: Matching, caliper_raw: float | None) -> str:
    """The methods paragraph's sentence on the matching (``caliper_raw``: the caliper in distance
    units that matching.json records, None without a caliper)."""
    if matching.caliper is None:
        caliper = "no caliper"
    elif matching.std_caliper:
        caliper = f"a caliper of {matching.caliper} SD of the {matching.caliper_scale} of the propensity score"
    else:
        caliper = f"a caliper of {matching.caliper} on the {matching.caliper_scale} scale"
    raw_width = "" if caliper_raw is None else f" (raw width {caliper_raw:.4f})"
    exact = exact_phrase(matching)
    order = "data" if matching.replace else matching.order     # with replacement MatchIt uses the data order
    return (f"Patients were matched {matching.ratio}:1 by greedy nearest-neighbour matching{distance_phrase(matching)} "
            f"{'with' if matching.replace else 'without'} replacement in {order} order of the distance{exact}, "
            f"with {caliper}{raw_width}, with MatchIt (>= 4.6) semantics; common-support discard: "
            f"{matching.discard}.")


METHOD = MatchingMethod(match=match, describe=describe)


def match_nearest(distance: np.ndarray, treated: np.ndarray, *, ratio: int = 1,
                  caliper: float | None = None, std_caliper: bool = True, replace: bool = False,
                  order: str = "largest", exact: np.ndarray | None = None,
                  discarded: np.ndarray | None = None, seed: int = 0,
                  features: np.ndarray | None = None) -> MatchResult:
    """Nearest-neighbour matching of treated to control units as ``MatchIt::matchit(method =
    "nearest", distance = <distance>, estimand = "ATT")``.

    With ``features`` (Mahalanobis matching, MatchIt's ``mahvars``) each treated unit, in the same
    order, takes the available control nearest in the features' Euclidean distance among those
    of its stratum within the caliper on ``distance``; equally near controls go by data order
    (MatchIt takes the one its scan meets last, which this does not reproduce).

    ``caliper`` is in SDs of the distance when ``std_caliper`` (SD over non-discarded units) else
    in distance units. ``exact`` holds one integer stratum code per unit. ``discarded`` units
    (common support) are never matched. ``order`` (largest, smallest, data, random): the order in
    which the treated units choose; ``random`` permutes the non-discarded treated units with
    ``numpy.random.default_rng(seed)`` (R's ``sample`` cannot be reproduced; the other orders give
    MatchIt's pairs exactly). With ``replace`` MatchIt always uses the data order.
    """
    distance, treated, exact, discarded = validated_inputs(distance, treated, exact, discarded)
    caliper_raw = caliper_in_distance_units(distance, discarded, caliper, std_caliper)
    limit = np.inf if caliper_raw is None else caliper_raw

    order_by_distance = _stable_argsort(distance)
    treated_idx = np.flatnonzero(treated)
    layout = _layout(order_by_distance, treated, discarded, *_strata(exact))
    if features is not None:
        queue = np.flatnonzero(~discarded[treated_idx]) if replace else _treated_order(
            layout.treated_ascending, distance[treated_idx], discarded[treated_idx], order, seed)
        mm = _match_on_features(queue, distance, treated, discarded, exact, caliper_raw, features, int(ratio), replace)
        return match_result(mm, treated, discarded, distance, replace, caliper_raw)
    if replace:
        queue = np.flatnonzero(~discarded[treated_idx])
        kernel = _match_with_replacement
    else:
        queue = _treated_order(layout.treated_ascending, distance[treated_idx],
                               discarded[treated_idx], order, seed)
        kernel = _match_round_robin
    mm = kernel(queue, treated_idx, layout.first, layout.last, layout.start, layout.control,
                layout.control_position, layout.position, distance, int(ratio), limit)
    return match_result(mm, treated, discarded, distance, replace, caliper_raw)


def _match_on_features(queue, distance, treated, discarded, exact, caliper_raw, features, ratio, replace):
    """The match matrix of nearest matching on the features' distance (see match_nearest)."""
    graph = admissible_pairs(distance, treated, discarded, exact, caliper_raw, features)
    treated_idx = np.flatnonzero(treated)
    node_of_row = np.full(len(treated_idx), -1)
    node_of_row[np.searchsorted(treated_idx, graph.treated)] = np.arange(len(graph.treated))
    return _nearest_by_features(node_of_row[queue], queue, graph.lo, graph.hi, graph.treated, graph.control,
                                graph.features, len(treated_idx), ratio, replace)


@numba.njit(cache=True, nogil=True)
def _nearest_by_features(nodes, rows, lo, hi, t_units, c_units, features, n_rows, ratio, replace):
    mm = np.full((n_rows, ratio), NO_MATCH, dtype=np.int64)
    used = np.zeros(len(c_units), dtype=np.bool_)
    active = np.ones(len(nodes), dtype=np.bool_)
    chosen = np.empty(ratio, dtype=np.int64)
    chosen_d = np.empty(ratio, dtype=np.float64)
    for r in range(1 if replace else ratio):
        for q in range(len(nodes)):
            i = nodes[q]
            if not active[q]:
                continue
            n_chosen = 0
            want = ratio if replace else 1
            for j in range(lo[i], hi[i] + 1):
                if used[j]:
                    continue
                d = 0.0
                for m in range(features.shape[1]):
                    diff = features[t_units[i], m] - features[c_units[j], m]
                    d += diff * diff
                # insert (d, j) into the sorted list of the `want` nearest (ties: lower data index)
                pos = n_chosen
                while pos > 0 and (chosen_d[pos - 1] > d or (chosen_d[pos - 1] == d and c_units[chosen[pos - 1]] > c_units[j])):
                    pos -= 1
                if pos >= want:
                    continue
                last = min(n_chosen, want - 1)
                for s in range(last, pos, -1):
                    chosen[s], chosen_d[s] = chosen[s - 1], chosen_d[s - 1]
                chosen[pos], chosen_d[pos] = j, d
                n_chosen = min(n_chosen + 1, want)
            if n_chosen == 0:
                active[q] = False
                continue
            for s in range(n_chosen):
                mm[rows[q], s if replace else r] = c_units[chosen[s]]
                if not replace:
                    used[chosen[s]] = True
    return mm


def _stable_argsort(values: np.ndarray) -> np.ndarray:
    """``np.argsort(kind="stable")`` (R's ``order``: ties in data order), via the faster
    unstable sort and a pass that puts the indices of each run of equal values in order."""
    order = np.argsort(values)
    _sort_tie_runs(order, values)
    return order


@numba.njit(cache=True, nogil=True)
def _sort_tie_runs(order, values):
    a = 0
    n = len(order)
    while a < n:
        b = a + 1
        while b < n and values[order[b]] == values[order[a]]:
            b += 1
        if b - a > 1:
            order[a:b] = np.sort(order[a:b])
        a = b


def _treated_order(ascending: np.ndarray, distance_t: np.ndarray, discarded_t: np.ndarray,
                   order: str, seed: int) -> np.ndarray:
    """Non-discarded treated units (indices among treated) in matching order.

    ``ascending`` is the treated units sorted by distance, ties in data order; ``largest`` keeps
    ties in data order too, as R's ``order(decreasing = TRUE)`` does.
    """
    if order == "largest":
        queue = ascending[::-1].copy()
        _sort_tie_runs(queue, distance_t)
    elif order == "smallest":
        queue = ascending
    elif order == "data":
        queue = np.arange(len(distance_t))
    else:
        queue = np.random.default_rng(seed).permutation(np.flatnonzero(~discarded_t))
    return queue[~discarded_t[queue]]


def _strata(exact: np.ndarray) -> tuple[np.ndarray, int]:
    """Exact-matching codes as 0..n_strata-1."""
    if len(exact) == 0 or (exact == exact[0]).all():
        return np.zeros(len(exact), dtype=np.int64), 1
    codes, stratum = np.unique(exact, return_inverse=True)
    return stratum.astype(np.int64), len(codes)


@dataclass(frozen=True)
class _Layout:
    """The sorted structure the kernels scan.

    Controls that may be matched (not discarded) sit in "slots" sorted by (stratum, distance
    position); per treated unit (in data order) the slot range of its stratum and the first slot
    sorted after it.
    """

    position: np.ndarray            # per unit: position in the global distance order
    control: np.ndarray             # per slot: data index of the control
    control_position: np.ndarray    # per slot: its global position
    first: np.ndarray               # per treated: first slot of its stratum (first > last: none)
    last: np.ndarray                # per treated: last slot of its stratum
    start: np.ndarray               # per treated: first slot of its stratum sorted after it
    treated_ascending: np.ndarray   # treated units (indices among treated) by distance


def _layout(order_by_distance, treated, discarded, stratum, n_strata) -> _Layout:
    return _Layout(*_layout_arrays(order_by_distance, treated, discarded, stratum, n_strata))


@numba.njit(cache=True, nogil=True)
def _layout_arrays(order_by_distance, treated, discarded, stratum, n_strata):
    n = len(order_by_distance)
    offsets = np.zeros(n_strata + 1, dtype=np.int64)
    treated_rank = np.empty(n, dtype=np.int64)
    n_treated = 0
    for u in range(n):
        if treated[u]:
            treated_rank[u] = n_treated
            n_treated += 1
        elif not discarded[u]:
            offsets[stratum[u] + 1] += 1
    offsets = np.cumsum(offsets)
    fill = offsets[:-1].copy()
    position = np.empty(n, dtype=np.int64)
    control = np.empty(offsets[-1], dtype=np.int64)
    control_position = np.empty(offsets[-1], dtype=np.int64)
    first = np.empty(n_treated, dtype=np.int64)
    last = np.empty(n_treated, dtype=np.int64)
    start = np.empty(n_treated, dtype=np.int64)
    treated_ascending = np.empty(n_treated, dtype=np.int64)
    k = 0
    for p in range(n):
        u = order_by_distance[p]
        s = stratum[u]
        position[u] = p
        if treated[u]:
            t = treated_rank[u]
            first[t], last[t], start[t] = offsets[s], offsets[s + 1] - 1, fill[s]
            treated_ascending[k] = t
            k += 1
        elif not discarded[u]:
            control[fill[s]] = u
            control_position[fill[s]] = p
            fill[s] += 1
    return position, control, control_position, first, last, start, treated_ascending


@numba.njit(cache=True, nogil=True)
def _find_alive(parent, i):
    """Root of ``i`` in a "next alive" union-find (path halving)."""
    while parent[i] != i:
        parent[i] = parent[parent[i]]
        i = parent[i]
    return i


@numba.njit(cache=True, nogil=True)
def _match_round_robin(queue, treated_idx, first, last, start, cidx, cpos, position, distance,
                       ratio, limit):
    """Without replacement: ``ratio`` rounds over ``queue``, one control per treated unit per round."""
    n_slots = len(cidx)
    left_parent = np.arange(n_slots + 1)    # entry s + 1 stands for slot s; 0 = "none left"
    right_parent = np.arange(n_slots + 1)   # entry s for slot s; n_slots = "none right"
    mm = np.full((len(treated_idx), ratio), NO_MATCH, dtype=np.int64)
    lo_slot = start.copy()                  # left candidates lie below this slot
    hi_slot = start - 1                     # right candidates lie above this slot
    lo_pos = position[treated_idx]          # window edges in the global order (MatchIt's iil/iir)
    hi_pos = lo_pos.copy()
    active = np.ones(len(treated_idx), dtype=np.bool_)
    for r in range(ratio):
        for q in queue:
            if not active[q]:
                continue
            dt = distance[treated_idx[q]]
            left = _find_alive(left_parent, lo_slot[q]) - 1
            if left < first[q]:
                left = -1
            elif abs(dt - distance[cidx[left]]) > limit:
                left = -1
            right = _find_alive(right_parent, hi_slot[q] + 1)
            if right > last[q]:
                right = -1
            elif abs(dt - distance[cidx[right]]) > limit:
                right = -1
            if left < 0 and right < 0:
                active[q] = False
                continue
            if left < 0:
                take = right
            elif right < 0:
                take = left
            else:
                d_left = abs(dt - distance[cidx[left]])
                d_right = abs(dt - distance[cidx[right]])
                if d_left < d_right:
                    take = left
                elif d_right < d_left:
                    take = right
                elif lo_pos[q] - cpos[left] <= cpos[right] - hi_pos[q]:
                    take = left
                else:
                    take = right
            mm[q, r] = cidx[take]
            left_parent[take + 1] = take
            right_parent[take] = take + 1
            if take < lo_slot[q]:
                lo_slot[q] = take
                lo_pos[q] = cpos[take]
            else:
                hi_slot[q] = take
                hi_pos[q] = cpos[take]
    return mm


@numba.njit(cache=True, nogil=True)
def _match_with_replacement(queue, treated_idx, first, last, start, cidx, cpos, position, distance,
                            ratio, limit):
    """With replacement: each treated unit takes its ``ratio`` nearest controls at once.

    Replays MatchIt's alternating scan (candidates pushed in step order, a side stops at ``ratio``
    candidates, beyond the caliper, or at a control farther than ``ratio`` already found) and its
    selection among the candidates, so ties resolve as in MatchIt.
    """
    mm = np.full((len(treated_idx), ratio), NO_MATCH, dtype=np.int64)
    cand = np.empty(2 * ratio, dtype=np.int64)
    cand_d = np.empty(2 * ratio, dtype=np.float64)
    for q in queue:
        dt = distance[treated_idx[q]]
        pos_t = position[treated_idx[q]]
        n_cand = 0
        s_left, s_right = start[q] - 1, start[q]
        n_left = n_right = 0
        left_open, right_open = s_left >= first[q], s_right <= last[q]
        while left_open or right_open:
            go_left = left_open and (not right_open or pos_t - cpos[s_left] <= cpos[s_right] - pos_t)
            s = s_left if go_left else s_right
            d = abs(dt - distance[cidx[s]])
            keep = d <= limit and _n_closer(cand_d, n_cand, d, ratio) < ratio
            if keep:
                cand[n_cand] = cidx[s]
                cand_d[n_cand] = d
                n_cand += 1
            if go_left:
                n_left += 1 if keep else 0
                s_left -= 1
                left_open = keep and n_left < ratio and s_left >= first[q]
            else:
                n_right += 1 if keep else 0
                s_right += 1
                right_open = keep and n_right < ratio and s_right <= last[q]
        chosen = _select_as_matchit(cand_d[:n_cand], ratio)
        for j in range(len(chosen)):
            mm[q, j] = cand[chosen[j]]
    return mm


@numba.njit(cache=True, nogil=True)
def _n_closer(cand_d, n_cand, d, ratio):
    """How many candidates are strictly closer than ``d`` (0 while fewer than ``ratio`` exist)."""
    if n_cand < ratio:
        return 0
    count = 0
    for j in range(n_cand):
        if cand_d[j] < d:
            count += 1
    return count


@numba.njit(cache=True, nogil=True)
def _select_as_matchit(cand_d, ratio):
    """Indices of the chosen candidates, in MatchIt's slot order.

    MatchIt returns the candidates as found when they are at most ``ratio`` and already sorted,
    else ``std::partial_sort`` (more than ``ratio``) or ``std::sort``; both are emulated as
    libstdc++ runs them (heap select + heap sort; insertion sort up to 16 elements), because
    neither is stable and the order of tied candidates decides the pairs. (Beyond 16 elements,
    i.e. ratio > 16, libstdc++'s introsort may order tied candidates differently.)
    """
    n = len(cand_d)
    ind = np.arange(n)
    if n <= 1:
        return ind
    if n <= ratio:
        ordered = True
        for j in range(1, n):
            if cand_d[j] < cand_d[j - 1]:
                ordered = False
        if not ordered:
            _insertion_sort(ind, cand_d)
        return ind
    _heap_select(ind, ratio, cand_d)
    _sort_heap(ind, ratio, cand_d)
    return ind[:ratio]


@numba.njit(cache=True, nogil=True)
def _insertion_sort(ind, key):
    for i in range(1, len(ind)):
        value = ind[i]
        j = i
        while j > 0 and key[value] < key[ind[j - 1]]:
            ind[j] = ind[j - 1]
            j -= 1
        ind[j] = value


@numba.njit(cache=True, nogil=True)
def _adjust_heap(ind, hole, length, value, key):
    """libstdc++ ``std::__adjust_heap`` (max-heap on ``key``) followed by ``__push_heap``."""
    top = hole
    child = hole
    while child < (length - 1) // 2:
        child = 2 * (child + 1)
        if key[ind[child]] < key[ind[child - 1]]:
            child -= 1
        ind[hole] = ind[child]
        hole = child
    if length % 2 == 0 and child == (length - 2) // 2:
        child = 2 * (child + 1)
        ind[hole] = ind[child - 1]
        hole = child - 1
    parent = (hole - 1) // 2
    while hole > top and key[ind[parent]] < key[value]:
        ind[hole] = ind[parent]
        hole = parent
        parent = (hole - 1) // 2
    ind[hole] = value


@numba.njit(cache=True, nogil=True)
def _heap_select(ind, middle, key):
    """libstdc++ ``std::__heap_select``: the ``middle`` smallest into a max-heap at the front."""
    if middle > 1:
        parent = (middle - 2) // 2
        while True:
            _adjust_heap(ind, parent, middle, ind[parent], key)
            if parent == 0:
                break
            parent -= 1
    for i in range(middle, len(ind)):
        if key[ind[i]] < key[ind[0]]:
            value = ind[i]
            ind[i] = ind[0]
            _adjust_heap(ind, 0, middle, value, key)


@numba.njit(cache=True, nogil=True)
def _sort_heap(ind, length, key):
    """libstdc++ ``std::__sort_heap`` on the first ``length`` entries."""
    while length > 1:
        length -= 1
        value = ind[length]
        ind[length] = ind[0]
        _adjust_heap(ind, 0, length, value, key)
