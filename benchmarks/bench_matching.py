"""Benchmark: pipeline.design.matching.nearest.match_nearest against causalml's NearestNeighborMatch,
and optimal matching (pipeline.design.matching.optimal) on the same problems.

    .venv/bin/python benchmarks/bench_matching.py [--sizes 10000 100000 1000000] [--optimal-max 100000]

Synthetic registries with 40% treated units and a logit-PS distance (treated ~ N(0.5, 1), controls
~ N(0, 1)); matching 1:1 and 3:1 without replacement, caliper 0.2 SD of the logit PS. Every case
runs in a fresh subprocess, so the peak memory reported is the growth of the process's peak RSS
over its RSS with the inputs loaded and the code warmed up (numba JIT; the first call's compile or
cache-load time is reported separately). Times are the best of ``--repeats`` runs.

causalml runs 1:1 and 3:1 with its ``ratio`` argument (k controls per treated unit at once, not
round-robin), caliper 0.2 SD of the same distance (its SD uses n, not n - 1) and ``random_state``
= the seed (it is unseeded otherwise). It is O(n_treated x n_control), so it only runs up to
``--causalml-max`` patients, and once per case above 10k.

Optimal matching (same caliper, without replacement) runs once per case up to ``--optimal-max``
patients; its table gives wall and CPU time (the machine is shared: CPU time is the steadier
figure), the total distance of its pairs beside the greedy match's (same caliper) and the bound on
how far its total may lie above the exact optimum (integer costs). Up to ``--reference-max``
patients, 1:1, the independent optimum is scipy's ``linear_sum_assignment`` on the dense problem
(pairs outside the caliper priced far above any total, so it first matches as many treated
patients as possible, as optimal matching does); the table gives its time and the difference of
the totals. Full matching (same caliper) runs once per size up to ``--optimal-max`` too; beyond
``full.MAX_PAIRS`` admissible pairs it reports the analysis as not estimable.
optmatch, which MatchIt's method "optimal" calls, is not installable here; by default it refuses
a problem of more than 1e7 arcs (pairs + treated + 2 x controls), which 1:1 matching without a
caliper reaches at about 6,500 patients of this mix and with this caliper at about 20,000.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CALIPER_SD = 0.2


def make_data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    treated = np.zeros(n, dtype=bool)
    treated[rng.permutation(n)[: int(round(0.4 * n))]] = True
    logit_ps = rng.normal(size=n) + 0.5 * treated
    return 1.0 / (1.0 + np.exp(-logit_ps)), treated


def current_rss_mb() -> float:
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * resource.getpagesize() / 2**20


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_pipeline(ps, treated, ratio, repeats):
    sys.path.insert(0, str(ROOT))
    from pipeline.design.matching.common import distance_from_ps
    from pipeline.design.matching.nearest import match_nearest

    distance = distance_from_ps(ps, "logit")
    t0 = time.perf_counter()
    match_nearest(distance[:2000], treated[:2000], ratio=ratio, caliper=CALIPER_SD)
    match_nearest(distance[:2000], treated[:2000], ratio=ratio, caliper=CALIPER_SD, replace=True)
    compile_s = time.perf_counter() - t0
    baseline = current_rss_mb()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = match_nearest(distance, treated, ratio=ratio, caliper=CALIPER_SD)
        times.append(time.perf_counter() - t0)
    return {"seconds": min(times), "peak_mb": peak_rss_mb() - baseline, "compile_s": compile_s,
            "treated_matched": result.counts["n_treated_matched"], "pairs": len(result.pairs)}


def run_optimal(ps, treated, ratio):
    sys.path.insert(0, str(ROOT))
    from pipeline.design.matching.common import distance_from_ps
    from pipeline.design.matching.nearest import match_nearest
    from pipeline.design.matching.optimal import match_optimal

    distance = distance_from_ps(ps, "logit")
    match_optimal(distance[:2000], treated[:2000], ratio=ratio, caliper=CALIPER_SD)     # JIT warm-up
    greedy = match_nearest(distance, treated, ratio=ratio, caliper=CALIPER_SD)
    baseline = current_rss_mb()
    t0, cpu0 = time.perf_counter(), time.process_time()
    result = match_optimal(distance, treated, ratio=ratio, caliper=CALIPER_SD)
    return {"seconds": time.perf_counter() - t0, "cpu_s": time.process_time() - cpu0,
            "peak_mb": peak_rss_mb() - baseline,
            "treated_matched": result.counts["n_treated_matched"], "pairs": len(result.pairs),
            "total": result.details["total_distance"], "tolerance": result.details["total_distance_tolerance"],
            "greedy_treated_matched": greedy.counts["n_treated_matched"], "greedy_pairs": len(greedy.pairs),
            "greedy_total": float(greedy.pairs["distance_diff"].sum())}


def run_reference(ps, treated):
    from scipy.optimize import linear_sum_assignment

    sys.path.insert(0, str(ROOT))
    from pipeline.design.matching.common import caliper_in_distance_units, distance_from_ps

    distance = distance_from_ps(ps, "logit")
    caliper = caliper_in_distance_units(distance, np.zeros(len(ps), dtype=bool), CALIPER_SD, True)
    t0 = time.perf_counter()
    costs = np.abs(distance[treated][:, None] - distance[~treated][None, :])
    costs[costs > caliper] = 1e9
    rows, cols = linear_sum_assignment(costs)
    kept = costs[rows, cols] < 1e9
    return {"seconds": time.perf_counter() - t0, "pairs": int(kept.sum()), "total": float(costs[rows, cols][kept].sum())}


def run_full(ps, treated):
    sys.path.insert(0, str(ROOT))
    from pipeline.design.matching.common import distance_from_ps
    from pipeline.design.matching.full import match_full
    from pipeline.errors import NotEstimable

    distance = distance_from_ps(ps, "logit")
    match_full(distance[:500], treated[:500], caliper=CALIPER_SD)     # JIT warm-up
    t0, cpu0 = time.perf_counter(), time.process_time()
    try:
        result = match_full(distance, treated, caliper=CALIPER_SD)
    except NotEstimable as reason:
        return {"seconds": time.perf_counter() - t0, "not_estimable": str(reason)}
    return {"seconds": time.perf_counter() - t0, "cpu_s": time.process_time() - cpu0,
            "treated_matched": result.counts["n_treated_matched"], "total": result.details["total_distance"]}


def run_causalml(ps, treated, ratio, repeats, seed):
    import pandas as pd
    from causalml.match import NearestNeighborMatch

    data = pd.DataFrame({"treated": treated.astype(int), "distance": np.log(ps / (1 - ps))})
    baseline = current_rss_mb()
    times = []
    for _ in range(repeats):
        matcher = NearestNeighborMatch(caliper=CALIPER_SD, replace=False, ratio=ratio,
                                       random_state=seed)
        t0 = time.perf_counter()
        matched = matcher.match(data, "treated", ["distance"])
        times.append(time.perf_counter() - t0)
    return {"seconds": min(times), "peak_mb": peak_rss_mb() - baseline,
            "treated_matched": int(matched["treated"].sum()), "pairs": len(matcher.matched_indexes_)}


def child(args) -> None:
    inputs = np.load(args.data)
    ps, treated = inputs["ps"], inputs["treated"]
    if args.child == "pipeline":
        out = run_pipeline(ps, treated, args.ratio, args.repeats)
    elif args.child == "optimal":
        out = run_optimal(ps, treated, args.ratio)
    elif args.child == "reference":
        out = run_reference(ps, treated)
    elif args.child == "full":
        out = run_full(ps, treated)
    else:
        out = run_causalml(ps, treated, args.ratio, args.repeats, args.seed)
    print(json.dumps(out))


def run_case(tool: str, data: Path, ratio: int, repeats: int, seed: int) -> dict:
    """One case in a fresh process; numba caches in a private folder next to the data, so the
    first pipeline case compiles from scratch and the later ones load the cache."""
    cmd = [sys.executable, __file__, "--child", tool, "--data", str(data), "--ratio", str(ratio),
           "--repeats", str(repeats), "--seed", str(seed)]
    env = {**os.environ, "NUMBA_CACHE_DIR": str(data.parent / "numba_cache")}
    done = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env)
    return json.loads(done.stdout.strip().splitlines()[-1])


def table(rows) -> str:
    lines = ["| patients | ratio | pipeline s (best of 3) | pipeline peak MB | treated matched "
             "| causalml s | causalml peak MB | causalml treated matched | speed-up |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        ours, peer = r["pipeline"], r.get("causalml")
        peer_cells = ("—", "—", "—", "—") if peer is None else (
            f"{peer['seconds']:.2f} ({r['causalml_repeats']}×)", f"{peer['peak_mb']:.0f}",
            f"{peer['treated_matched']:,}", f"{peer['seconds'] / ours['seconds']:,.0f}×")
        lines.append(f"| {r['n']:,} | {r['ratio']}:1 | {ours['seconds']:.3f} | {ours['peak_mb']:.0f} "
                     f"| {ours['treated_matched']:,} | " + " | ".join(peer_cells) + " |")
    return "\n".join(lines)


def optimal_table(rows) -> str:
    lines = ["| patients | ratio | optimal s (once) | CPU s | peak MB | treated matched | pairs | total distance "
             "| tolerance | linear_sum_assignment s | its total - ours | greedy treated matched | greedy total distance |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        o, ref = r["optimal"], r.get("reference")
        ref_cells = ("—", "—") if ref is None else (f"{ref['seconds']:.1f}", f"{ref['total'] - o['total']:.1e}")
        lines.append(f"| {r['n']:,} | {r['ratio']}:1 | {o['seconds']:.1f} | {o['cpu_s']:.1f} | {o['peak_mb']:.0f} "
                     f"| {o['treated_matched']:,} | {o['pairs']:,} | {o['total']:.4f} | {o['tolerance']:.1e} | "
                     + " | ".join(ref_cells) + f" | {o['greedy_treated_matched']:,} | {o['greedy_total']:.4f} |")
    return "\n".join(lines)


def full_table(rows) -> str:
    lines = ["| patients | full matching s (once) | CPU s | treated matched | total distance |", "|---:|---:|---:|---:|---:|"]
    for r in rows:
        f = r["full"]
        cells = (f"{f['seconds']:.1f} | — | not estimable: {f['not_estimable']} | —" if "not_estimable" in f else
                 f"{f['seconds']:.1f} | {f['cpu_s']:.1f} | {f['treated_matched']:,} | {f['total']:.4f}")
        lines.append(f"| {r['n']:,} | {cells} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--ratios", type=int, nargs="+", default=[1, 3])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--causalml-max", type=int, default=100_000)
    parser.add_argument("--optimal-max", type=int, default=100_000)
    parser.add_argument("--reference-max", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=20110801)
    parser.add_argument("--child", choices=["pipeline", "causalml", "optimal", "reference", "full"])
    parser.add_argument("--data")
    parser.add_argument("--ratio", type=int)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    rows, compile_s = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.sizes:
            data = Path(tmp) / f"data_{n}.npz"
            ps, treated = make_data(n, args.seed)
            np.savez(data, ps=ps, treated=treated)
            for ratio in args.ratios:
                row = {"n": n, "ratio": ratio,
                       "pipeline": run_case("pipeline", data, ratio, args.repeats, args.seed)}
                compile_s.append(row["pipeline"]["compile_s"])
                if n <= args.causalml_max:
                    row["causalml_repeats"] = args.repeats if n <= 10_000 else 1
                    row["causalml"] = run_case("causalml", data, ratio, row["causalml_repeats"], args.seed)
                if n <= args.optimal_max:
                    row["optimal"] = run_case("optimal", data, ratio, 1, args.seed)
                if n <= args.reference_max and ratio == 1:
                    row["reference"] = run_case("reference", data, ratio, 1, args.seed)
                if n <= args.optimal_max and ratio == args.ratios[0]:
                    row["full"] = run_case("full", data, ratio, 1, args.seed)
                rows.append(row)
                print(f"done: n={n:,} ratio={ratio}", file=sys.stderr, flush=True)
    print(table(rows))
    optimal_rows = [r for r in rows if "optimal" in r]
    if optimal_rows:
        print("\nOptimal matching (caliper 0.2 SD of the logit, without replacement) beside the greedy match:\n")
        print(optimal_table(optimal_rows))
        print("\nFull matching (caliper 0.2 SD of the logit):\n")
        print(full_table([r for r in rows if "full" in r]))
    print(f"\nFirst call in a fresh process (numba, both kernels), not included above: "
          f"{compile_s[0]:.1f} s compiling with an empty cache, "
          f"{max(compile_s[1:], default=float('nan')):.1f} s at most loading the cache.")


if __name__ == "__main__":
    main()
