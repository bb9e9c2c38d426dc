"""Minimum-cost flows between treated and control patients, solved by OR-Tools (optimal and full
matching).

**The graph.** A treated and a control patient (neither discarded) may be paired when they share
the exact-matching stratum and their distances differ by at most the caliper (a difference equal
to the caliper is accepted, as in nearest matching). With the controls sorted by (stratum,
distance, data order), the admissible controls of a treated patient are one contiguous run of
them, so the graph is never stored pair by pair: :class:`Graph` keeps, per treated patient, the
first and last admissible control. The cost of a pair is the absolute difference of the distance
or, with Mahalanobis matching, the Euclidean distance between the patients' transformed covariates
(pipeline.design.matching.mahalanobis).

**Integer costs, exact to a bound.** Min-cost-flow solvers work on integers, so a cost ``d`` becomes
``round(scale * d)``. The solver's flow is optimal for the rounded costs; each rounded cost is
within 1/2 of ``scale * d``, so the true total of the solution exceeds the true optimum (a flow of
the same value) by at most ``flow / scale``, where ``flow`` is the number of pairs (and by
(pairs + nodes) / scale after pricing, below). ``scale`` is as
large as OR-Tools admits: it multiplies every cost by (nodes + 1) internally and rejects a cost
above ``2**63 / (2 (nodes + 1))``; a sixteenth of that leaves head-room for the node potentials.
For 100,000 patients with a caliper of 0.2 SD of the logit (largest cost ~0.2) that is a scale of
~1e13, and the bound (:attr:`Solution.tolerance`) ~1e-8, a few parts in 1e12 of the total distance;
the fixtures' problems to ~1e-11.

**Pricing.** A large cohort with a wide caliper has hundreds of millions of admissible pairs. The
solver is first given a few candidates per treated patient (its ``CANDIDATES`` cheapest admissible
controls, plus pairs that guarantee a feasible flow), then the solution is certified against every
admissible pair: node potentials are shortest-path distances in the solution's residual graph, and
the solution is optimal for the whole graph when no pair left out has a negative reduced cost (LP
duality for network flows). Pairs that do are added and the problem is solved again. The
certificate is in the integer costs; pricing stops when no reduced cost is below -1, i.e. the
flow is 1-optimal, whose cost is within (number of nodes) units of the optimum (Goldberg &
Tarjan's epsilon-optimality), so the tolerance becomes (pairs + nodes) / scale. That saves rounds
that would only settle rounding ties of one unit (~1e-14 of a distance unit).

**Large problems on the distance.** With a caliper of 0.2 SD and 100,000 patients, where treated
patients outnumber the controls the optimum pairs them with controls thousands of places away in
sorted order, far outside their cheapest candidates; pricing alone would take many rounds of ever
larger solves. Optimal matching (pipeline.design.matching.optimal) therefore first solves a thinned
problem (every few treated patients and controls, :meth:`Graph.thinned`, recursively) and gives the
solver a window of controls around the partners that its optimum predicts
(:meth:`Graph.predicted_pairs`); pricing then certifies the result as before. On the distance alone
the check of a round does not visit every admissible pair: :func:`_may_price_below` bounds the least
reduced cost per treated patient within a unit by range-minimum queries in sorted order, and only
the patients it cannot rule out are priced pair by pair, so the certificate stays exact.
"""
from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np
from ortools.graph.python import min_cost_flow

from pipeline.errors import DataError

CANDIDATES = 16
"""Cheapest admissible controls per treated patient given to the solver before pricing."""
HINT_WINDOW = 16
"""Controls on either side of a predicted partner given to the solver before pricing."""
HINTED_CANDIDATES = 4
"""Cheapest admissible controls per treated patient given to the solver with predicted partners
(which then also replace the look-ahead of MARGIN)."""
PRICED = 48
"""Most pairs per treated patient added in one round of pricing (the smallest reduced costs)."""
MARGIN = 0.25
"""Pricing adds the pairs left out whose reduced cost is below this share of the largest cost, not
only the negative ones: pairs that are nearly attractive now tend to become so once others are in,
and adding them early saves rounds. The solution is optimal when no reduced cost is negative."""

_INT64_MAX = 2**63 - 1
_MAX_PRICING_ROUNDS = 100


@dataclass(frozen=True)
class Graph:
    """The admissible pairs of treated and control patients, by node.

    Treated nodes are numbered 0..n_treated-1 (``treated``: their data indices, in data order),
    control nodes 0..n_controls-1 (``control``: data indices sorted by stratum, distance, data
    order). Treated node i may be paired with control nodes ``lo[i]..hi[i]`` (none when hi < lo);
    ``position[i]`` is its place among the sorted controls (the first control node of its stratum
    that sorts after it by distance). ``features`` (one row per patient) replace the distance in
    the costs when not None.
    """

    treated: np.ndarray
    control: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    position: np.ndarray
    distance: np.ndarray
    features: np.ndarray | None

    @property
    def degree(self) -> np.ndarray:
        return np.maximum(self.hi - self.lo + 1, 0)

    def subgraph(self, treated_nodes: np.ndarray, control_range: tuple[int, int] | None = None) -> "Graph":
        """The graph restricted to some treated nodes (and a contiguous run of control nodes)."""
        first, stop = control_range or (0, len(self.control))
        lo = np.maximum(self.lo[treated_nodes], first) - first
        hi = np.minimum(self.hi[treated_nodes], stop - 1) - first
        position = np.clip(self.position[treated_nodes], first, stop) - first
        return Graph(self.treated[treated_nodes], self.control[first:stop], lo, hi, position, self.distance,
                     self.features)

    def thinned(self, step: int) -> tuple["Graph", np.ndarray, np.ndarray]:
        """Every ``step``-th treated node in the order of the sorted controls and every ``step``-th
        control node: a smaller problem of the same shape (its optimum predicts this one's,
        :func:`predicted_pairs`). Returns it and the nodes it keeps (as nodes of this graph)."""
        treated_nodes = np.lexsort((np.arange(len(self.treated)), self.position))[::step]
        control_nodes = np.arange(0, len(self.control), step)
        lo = np.searchsorted(control_nodes, self.lo[treated_nodes], side="left")
        hi = np.searchsorted(control_nodes, self.hi[treated_nodes], side="right") - 1
        position = np.searchsorted(control_nodes, self.position[treated_nodes], side="left")
        return (Graph(self.treated[treated_nodes], self.control[control_nodes], lo, hi, position, self.distance,
                      self.features), treated_nodes, control_nodes)

    def predicted_pairs(self, step: int, thinned_nodes: tuple[np.ndarray, np.ndarray],
                        thinned_solution: "Solution") -> tuple[np.ndarray, np.ndarray]:
        """Pairs of this graph predicted from the optimum of its thinned graph (``thinned(step)``;
        ``thinned_nodes`` the nodes it kept).

        On a line an optimum stays optimal when its matched patients are re-paired in sorted
        order (uncrossing two pairs never lengthens either beyond the longer one), and in that
        form neighbours shift alike: each treated node takes the sorted-order partners of the
        matched kept treated node nearest to it, shifted by the difference of their positions."""
        kept_treated, kept_controls = thinned_nodes
        by_position = np.lexsort((thinned_solution.t_nodes, self.position[kept_treated[thinned_solution.t_nodes]]))
        sub_t = thinned_solution.t_nodes[by_position]
        sub_c = np.sort(thinned_solution.c_nodes)
        by_treated = np.lexsort((sub_c, sub_t))
        sub_t, sub_c = sub_t[by_treated], sub_c[by_treated]
        order = np.lexsort((np.arange(len(self.treated)), self.position))
        rank = np.empty(len(order), dtype=np.int64)
        rank[order] = np.arange(len(order))
        first = np.searchsorted(sub_t, np.arange(len(kept_treated)))
        count = np.diff(np.append(first, len(sub_t)))
        matched = np.flatnonzero(count > 0)            # kept nodes in sorted order (thinned())
        if not len(matched):
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
        place = rank / step                             # where each treated node falls among the kept
        after = np.minimum(np.searchsorted(matched, place), len(matched) - 1)
        before = np.maximum(after - 1, 0)
        nearer = np.where(np.abs(matched[before] - place) <= np.abs(matched[after] - place), before, after)
        representative = matched[nearer]
        count = count[representative]
        t_nodes = np.repeat(np.arange(len(self.treated)), count)
        within = np.arange(count.sum()) - np.repeat(np.cumsum(count) - count, count)
        partner = kept_controls[sub_c[np.repeat(first[representative], count) + within]]
        shift = self.position - self.position[kept_treated[representative]]
        return t_nodes, partner + shift[t_nodes]

    def costs(self, t_nodes: np.ndarray, c_nodes: np.ndarray) -> np.ndarray:
        """The (float) cost of each given pair of nodes."""
        t, c = self.treated[t_nodes], self.control[c_nodes]
        if self.features is None:
            return np.abs(self.distance[t] - self.distance[c])
        return np.sqrt(np.sum((self.features[t] - self.features[c]) ** 2, axis=1))


def admissible_pairs(distance: np.ndarray, treated: np.ndarray, discarded: np.ndarray, exact: np.ndarray | None,
                     caliper_raw: float | None, features: np.ndarray | None = None) -> Graph:
    """The graph of admissible pairs (see the module docstring)."""
    stratum = np.zeros(len(distance), dtype=np.int64) if exact is None else np.unique(exact, return_inverse=True)[1]
    treated_idx = np.flatnonzero(treated & ~discarded)
    controls = np.flatnonzero(~treated & ~discarded)
    controls = controls[np.lexsort((controls, distance[controls], stratum[controls]))]
    c_stratum = stratum[controls]
    first = np.searchsorted(c_stratum, stratum[treated_idx], side="left")
    stop = np.searchsorted(c_stratum, stratum[treated_idx], side="right")
    limit = np.inf if caliper_raw is None else float(caliper_raw)
    lo, hi, position = _caliper_runs(distance[treated_idx], distance[controls], first, stop, limit)
    if features is not None:
        features = np.ascontiguousarray(features, dtype=np.float64)
    return Graph(treated_idx, controls, lo, hi, position, distance, features)


@numba.njit(cache=True, nogil=True)
def _caliper_runs(d_treated, d_controls, first, stop, limit):
    """Per treated patient, the first and last control of its stratum within the caliper, and its
    place among the controls (``|d_t - d_c| <= limit``, evaluated exactly as written: the run is contiguous because the
    rounded difference is monotone in d_c)."""
    n = len(d_treated)
    lo = np.empty(n, dtype=np.int64)
    hi = np.empty(n, dtype=np.int64)
    position = np.empty(n, dtype=np.int64)
    for i in range(n):
        dt = d_treated[i]
        a = first[i] + np.searchsorted(d_controls[first[i]:stop[i]], dt)
        left = a
        while left > first[i] and abs(dt - d_controls[left - 1]) <= limit:
            left -= 1
        right = a - 1
        while right + 1 < stop[i] and abs(dt - d_controls[right + 1]) <= limit:
            right += 1
        lo[i], hi[i], position[i] = left, right, a
    return lo, hi, position


# ---------------------------------------------------------------------------------------------
# the network and its solution


@dataclass(frozen=True)
class Network:
    """A bipartite flow network on a Graph: source -> treated (capacity ``treated_capacity``),
    treated -> control (the pairs, capacity 1), control -> sink (``control_capacity``), and with
    ``circulation`` a sink -> source arc of unbounded capacity. ``supply`` has one entry per node:
    treated nodes, control nodes, source, sink (lower bounds are expressed through supplies).
    ``required``: pairs (treated node, control node) that must be candidates from the start
    (a feasible flow); ``hint``: predicted pairs (treated node, control node, which may lie outside
    the treated node's run) around which the first candidates also include the ``HINT_WINDOW``
    admissible controls on either side; ``all_pairs``: give the solver every admissible pair (no pricing)."""

    graph: Graph
    treated_capacity: np.ndarray
    control_capacity: np.ndarray
    supply: np.ndarray
    circulation: bool = False
    required: tuple[np.ndarray, np.ndarray] | None = None
    hint: tuple[np.ndarray, np.ndarray] | None = None
    all_pairs: bool = False


@dataclass(frozen=True)
class Solution:
    """The pairs with flow (node indices, sorted by treated node then control node), their float
    costs, and ``tolerance``: how far their total may lie above the exact optimum at most."""

    t_nodes: np.ndarray
    c_nodes: np.ndarray
    costs: np.ndarray
    tolerance: float

    @property
    def total(self) -> float:
        return float(np.sum(self.costs))


class Infeasible(Exception):
    """The network has no flow that meets every supply (e.g. full matching's bounds)."""


def solve(network: Network) -> Solution:
    """The minimum-cost flow of ``network`` over all admissible pairs, by pricing (module docstring)."""
    graph = network.graph
    features = graph.features if graph.features is not None else np.empty((0, 0))
    use_features = graph.features is not None
    hinted = network.hint is not None and not network.all_pairs
    window = -1 if network.all_pairs else HINTED_CANDIDATES if hinted else CANDIDATES
    t_cand, c_cand, d_max = _candidates(graph.lo, graph.hi, graph.treated, graph.control, graph.distance,
                                        graph.distance[graph.control], features, use_features, window)
    if network.required is not None:
        t_cand, c_cand = _union(t_cand, c_cand, *network.required)
    if hinted:
        t_cand, c_cand = _union(t_cand, c_cand, *_windows(graph, *network.hint))
    if len(t_cand) == 0:
        empty = np.empty(0, dtype=np.int64)
        return Solution(empty, empty, np.empty(0), 0.0)
    n_nodes = len(graph.treated) + len(graph.control) + 2
    scale = _scale(d_max, n_nodes)
    margin = -1.0 if hinted else MARGIN * d_max * scale
    for _ in range(_MAX_PRICING_ROUNDS):
        flows, costs_int, status_scale = _solve_once(network, t_cand, c_cand, scale)
        if status_scale is not None:            # the potentials overflowed: halve the scale
            scale = status_scale
            continue
        if network.all_pairs:
            break
        potential = _potentials(network, t_cand, c_cand, costs_int, flows)
        scanned = _may_price_below(graph, scale, potential, t_cand, c_cand, np.int64(margin))
        t_new, c_new, least = _price(graph.lo, graph.hi, graph.treated, graph.control, graph.distance, features,
                                     use_features, scale, potential, t_cand, c_cand, PRICED, np.int64(margin),
                                     scanned)
        if least >= -1:                         # 1-optimal: within n_nodes / scale of the optimum
            break
        margin = 0.0                            # the first round looks ahead; later ones fix what is left
        t_cand, c_cand = _union(t_cand, c_cand, t_new, c_new)
    else:
        raise DataError("optimal matching: pricing did not converge")  # a bug, not a user problem
    used = flows[: len(t_cand)] > 0
    t_nodes, c_nodes = t_cand[used], c_cand[used]
    slack = 0 if network.all_pairs else n_nodes
    return Solution(t_nodes, c_nodes, graph.costs(t_nodes, c_nodes), (len(t_nodes) + slack) / scale)


def _windows(graph: Graph, t_nodes: np.ndarray, c_nodes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The admissible pairs within HINT_WINDOW controls of the given pairs (moved into the runs)."""
    lo, hi = graph.lo[t_nodes], graph.hi[t_nodes]
    some = hi >= lo
    t_nodes, lo, hi = t_nodes[some], lo[some], hi[some]
    centre = np.clip(c_nodes[some], lo, hi)
    offsets = np.arange(-HINT_WINDOW, HINT_WINDOW + 1)
    c_window = (centre[:, None] + offsets).ravel()
    t_window = np.repeat(t_nodes, len(offsets))
    inside = (c_window >= np.repeat(lo, len(offsets))) & (c_window <= np.repeat(hi, len(offsets)))
    return t_window[inside], c_window[inside]


def _scale(d_max: float, n_nodes: int) -> float:
    """The largest cost multiplier OR-Tools admits, with head-room (module docstring)."""
    largest_cost = _INT64_MAX // (2 * (n_nodes + 1)) // 16
    return largest_cost / max(d_max, 1e-200)      # all costs 0: any finite scale


def _union(t_a, c_a, t_b, c_b):
    """Distinct pairs of both lists, sorted by treated node then control node."""
    t = np.concatenate([t_a, np.asarray(t_b, dtype=np.int64)])
    c = np.concatenate([c_a, np.asarray(c_b, dtype=np.int64)])
    width = int(c.max(initial=0)) + 1
    keys = np.sort(t * width + c)
    keys = keys[np.r_[True, keys[1:] != keys[:-1]]] if len(keys) else keys
    return keys // width, keys % width


def _solve_once(network: Network, t_cand, c_cand, scale):
    """One OR-Tools solve. Returns the flow per arc (pairs first), the integer pair costs, and a
    smaller scale to retry with when the solver reports a cost-range overflow (else None)."""
    graph = network.graph
    n_t, n_c = len(graph.treated), len(graph.control)
    source, sink = n_t + n_c, n_t + n_c + 1
    costs_int = np.rint(graph.costs(t_cand, c_cand) * scale).astype(np.int64)
    t_arange, c_arange = np.arange(n_t), np.arange(n_c)
    tails = [t_cand, np.full(n_t, source), n_t + c_arange]
    heads = [n_t + c_cand, t_arange, np.full(n_c, sink)]
    caps = [np.ones(len(t_cand), dtype=np.int64), network.treated_capacity, network.control_capacity]
    costs = [costs_int, np.zeros(n_t, dtype=np.int64), np.zeros(n_c, dtype=np.int64)]
    if network.circulation:
        tails.append([sink])
        heads.append([source])
        caps.append([len(t_cand)])
        costs.append([0])
    solver = min_cost_flow.SimpleMinCostFlow()
    solver.add_arcs_with_capacity_and_unit_cost(
        np.concatenate(tails).astype(np.int64), np.concatenate(heads).astype(np.int64),
        np.concatenate(caps).astype(np.int64), np.concatenate(costs).astype(np.int64))
    solver.set_nodes_supplies(np.arange(n_t + n_c + 2), np.asarray(network.supply, dtype=np.int64))
    status = solver.solve()
    if status == solver.BAD_COST_RANGE:
        return None, None, scale / 2
    if status == solver.INFEASIBLE:
        raise Infeasible()
    if status != solver.OPTIMAL:
        raise DataError(f"the min-cost-flow solver failed (status {status})")
    return solver.flows(np.arange(solver.num_arcs())), costs_int, None


def _potentials(network: Network, t_cand, c_cand, costs_int, flows) -> np.ndarray:
    """Shortest-path distances in the residual graph of an optimal flow (node order of the network)."""
    graph = network.graph
    n_t, n_c = len(graph.treated), len(graph.control)
    source, sink = n_t + n_c, n_t + n_c + 1
    tails = np.concatenate([t_cand, np.full(n_t, source), n_t + np.arange(n_c)] + ([[sink]] if network.circulation else []))
    heads = np.concatenate([n_t + c_cand, np.arange(n_t), np.full(n_c, sink)] + ([[source]] if network.circulation else []))
    caps = np.concatenate([np.ones(len(t_cand), dtype=np.int64), network.treated_capacity, network.control_capacity]
                          + ([[len(t_cand)]] if network.circulation else []))
    costs = np.concatenate([costs_int, np.zeros(n_t + n_c + (1 if network.circulation else 0), dtype=np.int64)])
    return _shortest_paths(n_t + n_c + 2, tails.astype(np.int64), heads.astype(np.int64), caps.astype(np.int64),
                           costs.astype(np.int64), np.asarray(flows, dtype=np.int64))


@numba.njit(cache=True, nogil=True)
def _shortest_paths(n_nodes, tails, heads, caps, costs, flows):
    """Bellman-Ford with a queue from a virtual root joined to every node by a 0-cost arc; the
    residual graph of an optimal flow has no negative cycle, so it ends."""
    n_arcs = len(tails)
    out_count = np.zeros(n_nodes + 1, dtype=np.int64)
    for a in range(n_arcs):
        if flows[a] < caps[a]:
            out_count[tails[a] + 1] += 1
        if flows[a] > 0:
            out_count[heads[a] + 1] += 1
    start = np.cumsum(out_count)
    fill = start[:-1].copy()
    to = np.empty(start[-1], dtype=np.int64)
    weight = np.empty(start[-1], dtype=np.int64)
    for a in range(n_arcs):
        if flows[a] < caps[a]:
            to[fill[tails[a]]] = heads[a]
            weight[fill[tails[a]]] = costs[a]
            fill[tails[a]] += 1
        if flows[a] > 0:
            to[fill[heads[a]]] = tails[a]
            weight[fill[heads[a]]] = -costs[a]
            fill[heads[a]] += 1
    dist = np.zeros(n_nodes, dtype=np.int64)
    queue = np.arange(n_nodes + 1) % n_nodes
    head, tail, queued = 0, n_nodes, np.ones(n_nodes, dtype=np.bool_)
    relaxed = np.zeros(n_nodes, dtype=np.int64)
    while head != tail:
        u = queue[head]
        head = (head + 1) % (n_nodes + 1)
        queued[u] = False
        for e in range(start[u], start[u + 1]):
            v = to[e]
            if dist[u] + weight[e] < dist[v]:
                dist[v] = dist[u] + weight[e]
                relaxed[v] += 1
                if relaxed[v] > n_nodes:
                    raise ValueError("negative cycle in the residual graph: the flow is not optimal")
                if not queued[v]:
                    queued[v] = True
                    queue[tail] = v
                    tail = (tail + 1) % (n_nodes + 1)
    return dist


@numba.njit(cache=True, nogil=True)
def _cost(t_unit, c_unit, distance, features, use_features):
    if not use_features:
        return abs(distance[t_unit] - distance[c_unit])
    total = 0.0
    for j in range(features.shape[1]):
        diff = features[t_unit, j] - features[c_unit, j]
        total += diff * diff
    return np.sqrt(total)


@numba.njit(cache=True, nogil=True)
def _candidates(lo, hi, treated, control, distance, c_distance, features, use_features, window):
    """Per treated node its ``window`` cheapest admissible control nodes (all with window < 0),
    and the largest admissible cost. On the distance alone the cheapest lie within ``window``
    controls of the treated patient's place in the sorted controls, so only those are scanned."""
    n_t = len(lo)
    d_max = 0.0
    counts = np.zeros(n_t, dtype=np.int64)
    if window < 0:
        for i in range(n_t):
            counts[i] = max(hi[i] - lo[i] + 1, 0)
    else:
        counts = np.minimum(np.maximum(hi - lo + 1, 0), window)
    t_out = np.empty(counts.sum(), dtype=np.int64)
    c_out = np.empty(counts.sum(), dtype=np.int64)
    k = 0
    heap_cost = np.empty(max(window, 1), dtype=np.float64)
    heap_node = np.empty(max(window, 1), dtype=np.int64)
    for i in range(n_t):
        if hi[i] < lo[i]:
            continue
        t_unit = treated[i]
        for j in (lo[i], hi[i]):
            d_max = max(d_max, _cost(t_unit, control[j], distance, features, use_features))
        if window < 0:
            for j in range(lo[i], hi[i] + 1):
                t_out[k], c_out[k] = i, j
                k += 1
                if use_features:
                    d_max = max(d_max, _cost(t_unit, control[j], distance, features, use_features))
            continue
        a, b = lo[i], hi[i]
        if not use_features:
            middle = lo[i] + np.searchsorted(c_distance[lo[i]:hi[i] + 1], distance[t_unit])
            a, b = max(lo[i], middle - window), min(hi[i], middle + window - 1)
        size = 0
        for j in range(a, b + 1):
            cost = _cost(t_unit, control[j], distance, features, use_features)
            d_max = max(d_max, cost)
            size = _heap_keep(heap_cost, heap_node, size, window, cost, j)
        for m in range(size):
            t_out[k], c_out[k] = i, heap_node[m]
            k += 1
    if use_features and window >= 0:      # the full scan for the largest cost
        for i in range(n_t):
            for j in range(lo[i], hi[i] + 1):
                d_max = max(d_max, _cost(treated[i], control[j], distance, features, use_features))
    return t_out[:k], c_out[:k], d_max


@numba.njit(cache=True, nogil=True)
def _heap_keep(heap_cost, heap_node, size, capacity, cost, node):
    """Keep the ``capacity`` cheapest items (ties: the lower node) in a max-heap; returns its size."""
    if size < capacity:
        pos = size
        while pos > 0 and _above(cost, node, heap_cost[(pos - 1) // 2], heap_node[(pos - 1) // 2]):
            heap_cost[pos], heap_node[pos] = heap_cost[(pos - 1) // 2], heap_node[(pos - 1) // 2]
            pos = (pos - 1) // 2
        heap_cost[pos], heap_node[pos] = cost, node
        return size + 1
    if not _above(heap_cost[0], heap_node[0], cost, node):
        return size
    pos = 0
    while True:
        child = 2 * pos + 1
        if child >= size:
            break
        if child + 1 < size and _above(heap_cost[child + 1], heap_node[child + 1], heap_cost[child], heap_node[child]):
            child += 1
        if not _above(heap_cost[child], heap_node[child], cost, node):
            break
        heap_cost[pos], heap_node[pos] = heap_cost[child], heap_node[child]
        pos = child
    heap_cost[pos], heap_node[pos] = cost, node
    return size


@numba.njit(cache=True, nogil=True)
def _above(cost_a, node_a, cost_b, node_b):
    """Order of the max-heap: higher cost first, on equal cost the higher node."""
    return cost_a > cost_b or (cost_a == cost_b and node_a > node_b)


def _may_price_below(graph: Graph, scale: float, potential: np.ndarray, t_cand, c_cand, threshold) -> np.ndarray:
    """The treated nodes that may have a pair left out whose reduced cost is below ``threshold``
    (costs on the distance alone; all nodes otherwise).

    A pair's integer cost round(scale |d_t - d_c|) is within one unit of round(scale d_c) -
    round(scale d_t) (control to the right) or its negative (to the left) while scale |d| < 2**49,
    so the least reduced cost over a run of sorted controls is known within a unit from one
    range-minimum query on round(scale d_c) - p_c or -round(scale d_c) - p_c: the check costs
    O(candidates) per treated node instead of O(admissible pairs). The nodes it cannot rule out
    are priced pair by pair (:func:`_price`), which keeps the certificate exact."""
    n_t = len(graph.treated)
    if graph.features is not None or scale * np.abs(graph.distance[np.r_[graph.treated, graph.control]]).max() >= 2**49:
        return np.ones(n_t, dtype=np.bool_)
    d_treated = np.rint(graph.distance[graph.treated] * scale).astype(np.int64)
    d_control = np.rint(graph.distance[graph.control] * scale).astype(np.int64)
    c_potential = potential[n_t:n_t + len(graph.control)]
    estimate = _least_reduced_estimate(graph.lo, graph.hi, graph.position, d_treated, potential[:n_t],
                                       _range_minima(d_control - c_potential), _range_minima(-d_control - c_potential),
                                       t_cand, c_cand)
    return estimate < threshold + 1


@numba.njit(cache=True, nogil=True)
def _range_minima(values):
    """Sparse table: row k holds the minimum of values[j..j + 2**k - 1]."""
    n = len(values)
    levels = 1
    while (1 << levels) <= n:
        levels += 1
    table = np.empty((levels, n), dtype=np.int64)
    table[0] = values
    for k in range(1, levels):
        half = 1 << (k - 1)
        for j in range(n - (1 << k) + 1):
            table[k, j] = min(table[k - 1, j], table[k - 1, j + half])
    return table


@numba.njit(cache=True, nogil=True)
def _range_min(table, a, b):
    """min(values[a..b]) for a <= b."""
    k = 0
    while (1 << (k + 1)) <= b - a + 1:
        k += 1
    return min(table[k, a], table[k, b - (1 << k) + 1])


@numba.njit(cache=True, nogil=True)
def _least_reduced_estimate(lo, hi, position, d_treated, t_potential, right_table, left_table, t_cand, c_cand):
    """Per treated node, the least of (d_c - d_t) + p_t - p_c over the controls of its run at or
    after its position and (d_t - d_c) + p_t - p_c before it, over the controls that are not
    candidates (the gaps between its sorted candidates)."""
    n_t = len(lo)
    estimate = np.full(n_t, np.iinfo(np.int64).max)
    r = 0
    for i in range(n_t):
        start = lo[i]
        while True:
            at_candidate = r < len(t_cand) and t_cand[r] == i
            end = c_cand[r] - 1 if at_candidate else hi[i]
            if start <= end:
                split = min(max(position[i], start), end + 1)
                if start < split:
                    estimate[i] = min(estimate[i], _range_min(left_table, start, split - 1) + d_treated[i] + t_potential[i])
                if split <= end:
                    estimate[i] = min(estimate[i], _range_min(right_table, split, end) - d_treated[i] + t_potential[i])
            if not at_candidate:
                break
            start = c_cand[r] + 1
            r += 1
    return estimate


@numba.njit(cache=True, nogil=True)
def _price(lo, hi, treated, control, distance, features, use_features, scale, potential, t_cand, c_cand,
           per_treated, threshold, scanned):
    """Admissible pairs left out whose reduced cost is below ``threshold`` (at most ``per_treated``
    of the smallest per treated node), and the smallest reduced cost of any pair left out, over
    the ``scanned`` treated nodes. Candidates are sorted by treated node, so each node's are a run."""
    n_t = len(lo)
    t_out = np.empty(n_t * per_treated, dtype=np.int64)
    c_out = np.empty(n_t * per_treated, dtype=np.int64)
    k = 0
    least = np.int64(0)
    marked = np.zeros(len(control), dtype=np.bool_)
    heap_cost = np.empty(per_treated, dtype=np.float64)
    heap_node = np.empty(per_treated, dtype=np.int64)
    r = 0
    for i in range(n_t):
        r0 = r
        while r < len(t_cand) and t_cand[r] == i:
            marked[c_cand[r]] = True
            r += 1
        size = 0
        for j in range(lo[i], hi[i] + 1 if scanned[i] else lo[i]):
            if marked[j]:
                continue
            cost = np.int64(np.rint(_cost(treated[i], control[j], distance, features, use_features) * scale))
            reduced = cost + potential[i] - potential[n_t + j]
            least = min(least, reduced)
            if reduced < threshold:
                size = _heap_keep(heap_cost, heap_node, size, per_treated, float(reduced), j)
        for m in range(size):
            t_out[k], c_out[k] = i, heap_node[m]
            k += 1
        for q in range(r0, r):
            marked[c_cand[q]] = False
    return t_out[:k], c_out[:k], least


# ---------------------------------------------------------------------------------------------
# the largest number of pairs (Glover's greedy rule on intervals)


def most_pairs(lo: np.ndarray, hi: np.ndarray, capacity: np.ndarray, n_controls: int) -> tuple[np.ndarray, np.ndarray]:
    """A largest set of pairs in which treated node i has at most ``capacity[i]`` controls and
    each control one treated patient, given each treated node's run of admissible controls
    ``lo..hi``: controls in order each go to the waiting treated node whose run ends first
    (Glover 1967; optimal for graphs whose neighbourhoods are runs). Returns (treated, control) nodes."""
    return _glover(np.asarray(lo, dtype=np.int64), np.asarray(hi, dtype=np.int64),
                   np.asarray(capacity, dtype=np.int64), int(n_controls))


@numba.njit(cache=True, nogil=True)
def _glover(lo, hi, capacity, n_controls):
    n_t = len(lo)
    order = np.argsort(lo, kind="mergesort")
    heap = np.empty(n_t, dtype=np.int64)
    size = 0
    remaining = capacity.copy()
    t_out = np.empty(n_controls, dtype=np.int64)
    c_out = np.empty(n_controls, dtype=np.int64)
    k = 0
    p = 0
    for j in range(n_controls):
        while p < n_t and lo[order[p]] <= j:
            i = order[p]
            p += 1
            if hi[i] >= lo[i] and remaining[i] > 0:
                size = _push(heap, size, hi[i] * n_t + i)
        while size > 0 and heap[0] // n_t < j:
            size = _pop(heap, size)
        if size > 0:
            i = heap[0] % n_t
            t_out[k], c_out[k] = i, j
            k += 1
            remaining[i] -= 1
            if remaining[i] == 0:
                size = _pop(heap, size)
    return t_out[:k], c_out[:k]


@numba.njit(cache=True, nogil=True)
def _push(heap, size, key):
    pos = size
    while pos > 0 and heap[(pos - 1) // 2] > key:
        heap[pos] = heap[(pos - 1) // 2]
        pos = (pos - 1) // 2
    heap[pos] = key
    return size + 1


@numba.njit(cache=True, nogil=True)
def _pop(heap, size):
    size -= 1
    key = heap[size]
    pos = 0
    while True:
        child = 2 * pos + 1
        if child >= size:
            break
        if child + 1 < size and heap[child + 1] < heap[child]:
            child += 1
        if heap[child] < key:
            heap[pos] = heap[child]
            pos = child
        else:
            break
    heap[pos] = key
    return size
