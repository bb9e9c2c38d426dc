"""CPU time of the balance and survival stages, analysis by analysis, of a finished workflow run
(e.g. bench_workflow.py's benchmarks/out/workflow_1M), optionally against another checkout.

Each stage runs in a fresh process with one BLAS thread (as a workflow job does), its inputs read
and numba's compiler set up first (as the job server does), so only the stage function is timed:
``balance_stage`` (balance table, Table 1, summary) and ``survival_stage`` (KM, tests, Cox, the
bootstrap as configured). With ``--baseline <checkout>`` every stage also runs with that checkout's
``pipeline`` package, alternating with this one, and the table says whether both gave the same
result (the JSON of survival.json, the CSVs of balance.csv and table1.csv, byte for byte).
Prints a markdown table; CPU seconds are the minimum over ``--repeat`` runs (the machine is shared).

    python benchmarks/bench_stages.py benchmarks/out/workflow_1M [--analyses all_patients ...]
        [--stages balance survival] [--baseline /path/to/other/checkout] [--repeat 1] [--profile TOP]
"""
from __future__ import annotations

import argparse
import cProfile
import hashlib
import io
import json
import os
import pstats
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ONE_THREAD = dict.fromkeys(("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"), "1")


def run_stage(study: Path, analysis: str, stage: str, profile: int = 0) -> dict:
    """In this process: the stage's CPU seconds and a digest of its result; with ``profile``, also the
    ``profile`` functions with the most cumulative time (the CPU time then includes the profiler's)."""
    import resource

    import yaml
    from numba.core.registry import cpu_target

    from pipeline.config.settings import Study
    from pipeline.config.validate import prepare_config
    from pipeline.imputation import imputation_analyses
    from pipeline.io import read_parquet

    study_settings = Study.from_config(prepare_config(yaml.safe_load((study / "config.yaml").read_text()), study))
    imputations = imputation_analyses(study_settings.analyses)
    settings = (study_settings.analyses[imputations[analysis][0]].completed() if analysis in imputations
                else study_settings.analyses[analysis])
    results = study / "results" / analysis
    if stage == "balance":
        from pipeline.design.stages import balance_columns, balance_stage, matching_weights
        cohort = read_parquet(results / "cohort.parquet", columns=balance_columns(settings.covariates),
                              categories=settings.covariates)
        weights = matching_weights(cohort, read_parquet(results / "matched.parquet", columns=["patient_id", "weight"]))
        args = (cohort, read_parquet(results / "propensity.parquet", columns=["ps"]), weights,
                settings.covariates, settings.missing,
                study_settings.variables_of(settings.variable_names), study_settings.report.min_cell,
                settings.estimand)
        call = lambda: balance_stage(*args)                                     # noqa: E731
        digest = lambda out: out[0].to_csv().encode() + out[1].to_csv().encode()  # noqa: E731
    else:
        from pipeline.outcome.stage import survival_stage
        args = (read_parquet(results / "cohort.parquet", columns=["patient_id", "treated", "time", "event"]),
                read_parquet(results / "matched.parquet", columns=["patient_id", "subclass", "weight"]),
                read_parquet(results / "pairs.parquet", columns=["treated_id", "control_id"]),
                settings.survival, study_settings.seed, study_settings.time_unit,
                study_settings.report.relevant_hr)
        call = lambda: survival_stage(*args)                                    # noqa: E731
        digest = lambda out: json.dumps(out.result, sort_keys=True).encode()    # noqa: E731
    cpu_target.target_context.refresh()
    before = resource.getrusage(resource.RUSAGE_SELF)
    profiler = cProfile.Profile() if profile else None
    out = profiler.runcall(call) if profiler else call()
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    report = io.StringIO()
    if profiler:
        pstats.Stats(profiler, stream=report).sort_stats("cumulative").print_stats(profile)
    return {"cpu": cpu, "digest": hashlib.sha256(digest(out)).hexdigest(), "rows": len(args[0]),
            "profile": report.getvalue()}


def timed(checkout: Path, study: Path, analysis: str, stage: str, profile: int = 0) -> dict:
    """run_stage in a fresh process importing ``checkout``'s pipeline package."""
    env = {**os.environ, **ONE_THREAD, "PYTHONPATH": str(checkout)}
    code = (f"import json, sys; sys.path.insert(0, {str(REPO / 'benchmarks')!r}); import bench_stages; "
            f"print(json.dumps(bench_stages.run_stage(bench_stages.Path({str(study)!r}), {analysis!r}, {stage!r}, {profile})))")
    done = subprocess.run([sys.executable, "-c", code], env=env, cwd=checkout, capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"{stage} of {analysis} failed with {checkout}:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def analyses_of(study: Path) -> list[str]:
    """Every analysis (and imputation) of the run with a matched sample; not a multiply imputed
    analysis itself (its imputations are; its results are pooled by other rules)."""
    results = study / "results"
    return sorted(str(path.parent.relative_to(results)) for path in results.rglob("matched.parquet")
                  if not (path.parent / "imputations").is_dir())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("study", type=Path, help="a finished workflow directory (config.yaml, results/)")
    parser.add_argument("--analyses", nargs="+", help="default: every analysis with a matched sample")
    parser.add_argument("--stages", nargs="+", default=["balance", "survival"], choices=["balance", "survival"])
    parser.add_argument("--baseline", type=Path, help="another checkout to compare with")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--profile", type=int, default=0, metavar="TOP",
                        help="print each stage's TOP functions by cumulative time (this checkout's first run)")
    args = parser.parse_args(argv)
    study = args.study.resolve()
    checkouts = {"this": REPO, **({"baseline": args.baseline.resolve()} if args.baseline else {})}
    header = "| analysis | stage | rows | CPU s |" + (" CPU s, baseline | baseline / this | same result |"
                                                      if args.baseline else "")
    print(header)
    print("|---|---|---:|---:|" + ("---:|---:|---|" if args.baseline else ""))
    totals = dict.fromkeys(checkouts, 0.0)
    for analysis in args.analyses or analyses_of(study):
        for stage in args.stages:
            runs = {name: [] for name in checkouts}
            for _ in range(args.repeat):
                for name, checkout in checkouts.items():
                    runs[name].append(timed(checkout, study, analysis, stage, args.profile))
            best = {name: min(r["cpu"] for r in rs) for name, rs in runs.items()}
            for name in checkouts:
                totals[name] += best[name]
            row = f"| {analysis} | {stage} | {runs['this'][0]['rows']:,} | {best['this']:.2f} |"
            if args.baseline:
                same = len({r["digest"] for rs in runs.values() for r in rs}) == 1
                row += f" {best['baseline']:.2f} | {best['baseline'] / best['this']:.2f} | {'yes' if same else 'NO'} |"
            print(row, flush=True)
            if args.profile:
                print(f"\n```\n{runs['this'][0]['profile']}```\n", flush=True)
    row = f"| **total** | | | **{totals['this']:.1f}** |"
    if args.baseline:
        row += f" **{totals['baseline']:.1f}** | {totals['baseline'] / totals['this']:.2f} | |"
    print(row)
    print(f"\nLoad average at the end: {os.getloadavg()[0]:.1f} (CPU times inflate on a busy machine)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
