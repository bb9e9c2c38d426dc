"""Whole-workflow benchmark: the demo study's analyses on a 100,000- and a 1,000,000-patient registry.

For each size it writes a synthetic registry (pipeline.synth, the XLSX center as CSV) and a config
derived from the demo's config.yaml (same variables, outcome and analyses; only registry.centers
replaced) into benchmarks/out/<size>/, runs `snakemake --cores 2` on it, and reports

* per rule: jobs, summed and longest wall time, summed CPU time, peak RSS of one job. Wall times
  come from the rules' `benchmark:` files (results/benchmarks/**.tsv) where a rule has one,
  otherwise from the lifetime of the job's process; CPU time and peak RSS from polling the
  processes every 0.1 s (the job server runs a job in a worker named `psm:<rule>`; a job in its own
  process runs `python .../.snakemake/scripts/tmpXXXX.<script>.py`, which names the rule), peak RSS
  also from the benchmark files (a worker's RSS counts the imported modules it shares with the
  server, as a job's own process would hold them);
* end to end: wall time, the peak RSS of any one process, and the peak summed RSS of the whole
  process tree (Snakemake plus the jobs running at the same time).

The survival rule is also reported on its own, because its cost scales with `bootstrap`, which is
kept at the demo config's value. ``--until match`` runs only the data path up to a rule (Snakemake's
``--until``): ingest, merge, cohort, propensity and match, e.g. for a registry too large for the
later rules on this machine.

    python benchmarks/bench_workflow.py [--sizes 100000 1000000] [--cores 2] [--out benchmarks/out]
                                        [--only ANALYSIS] [--until RULE] [--reuse]
                                        [--without ANALYSIS ...] [--no-sensitivity]
"""
from __future__ import annotations

import argparse
import csv
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path

import psutil
import yaml

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = Path(sys.executable).with_name("snakemake")
TARGET_SECONDS = {1_000_000: 60, 10_000_000: 150}
"""Issue 19's targets: the demo's analyses on 1,000,000 patients; one analysis on 10,000,000."""
TARGET_MB = 4096
# Each rule runs workflow/scripts/<rule>.py.
RULES = ("ingest_center", "merge_registry", "cohort", "impute", "propensity", "pool_propensity", "match",
         "stack_matches", "weight", "balance", "pool_balance", "survival", "pool_survival", "bootstrap",
         "analysis_report", "disclose", "shareable_analysis_report", "index_report", "shareable_index", "manifest",
         "shareable_manifest")


def write_study(directory: Path, n: int, only: str | None = None, reuse: bool = False, without=(),
                sensitivity: bool = True) -> Path:
    """Synthetic extracts for n patients and a config.yaml for them; returns the config path. With
    ``only``, the config keeps that one analysis, without its subgroups and sensitivity variants.
    With ``reuse``, extracts written by an earlier call for the same n are kept (writing 10,000,000
    patients takes minutes); the workflow's results are always removed. ``without``: analyses left out;
    ``sensitivity=False`` drops the analyses' sensitivity designs (the demo had none when issue 19
    asked for its nine analyses: all patients, seven subgroup levels, asymptomatic high burden)."""
    centers_file = directory / "registry" / f"centers-{n}.yaml"
    if reuse and centers_file.exists():
        shutil.rmtree(directory / "results", ignore_errors=True)
        shutil.rmtree(directory / ".snakemake", ignore_errors=True)
        printed = centers_file.read_text()
    else:
        if directory.exists():
            shutil.rmtree(directory)
        directory.mkdir(parents=True)
        printed = subprocess.run(
            [sys.executable, "-m", "pipeline.synth", "--out", str(directory / "registry"), "--n", str(n),
             "--xlsx-as-csv", "--print-config", "registry"],
            cwd=REPO, check=True, capture_output=True, text=True).stdout
        centers_file.write_text(printed)
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config["registry"]["centers"] = yaml.safe_load(printed)["centers"]
    if only:
        analysis = {key: value for key, value in config["analyses"][only].items()
                    if key not in ("subgroups", "sensitivity")}
        config["analyses"] = {only: analysis}
    for name in without:
        config["analyses"].pop(name)
    if not sensitivity:
        for analysis in config["analyses"].values():
            analysis.pop("sensitivity", None)
    path = directory / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False, allow_unicode=True))
    return path


class ProcessSampler(threading.Thread):
    """Polls a process tree: each rule job's lifetime and peak RSS, the peak RSS of any one process
    and of the whole tree."""

    def __init__(self, root: psutil.Process, interval: float = 0.1):
        super().__init__(daemon=True)
        self.root, self.interval = root, interval
        self.jobs: dict[int, dict] = {}
        self.process_peak_mb = 0.0
        self.tree_peak_mb = 0.0
        self.root_cpu = 0.0
        self._done = threading.Event()

    def run(self):
        while not self._done.is_set():
            self._sample()
            time.sleep(self.interval)

    def stop(self):
        self._done.set()
        self.join()

    def _sample(self):
        try:
            processes = [self.root, *self.root.children(recursive=True)]
        except psutil.Error:
            return
        now, total = time.time(), 0.0
        try:
            self.root_cpu = sum(self.root.cpu_times()[:2])
        except psutil.Error:
            pass
        for process in processes:
            try:
                rss = process.memory_info().rss / 2**20
                rule = _rule_of(process.cmdline()) or _rule_of_worker(process.name())
                started = process.create_time()
                cpu = sum(process.cpu_times()[:2])
            except psutil.Error:
                continue
            total += rss
            self.process_peak_mb = max(self.process_peak_mb, rss)
            if rule:
                job = self.jobs.setdefault(process.pid, {"rule": rule, "start": started, "peak_mb": 0.0})
                job["end"], job["cpu"], job["peak_mb"] = now, cpu, max(job["peak_mb"], rss)
        self.tree_peak_mb = max(self.tree_peak_mb, total)

    def rule_jobs(self) -> dict[str, list[dict]]:
        """Rule -> its processes' wall seconds (lifetime), CPU seconds and peak RSS."""
        jobs = defaultdict(list)
        for job in self.jobs.values():
            jobs[job["rule"]].append({"seconds": job["end"] - job["start"], "cpu": job["cpu"],
                                      "peak_mb": job["peak_mb"]})
        return jobs


def _rule_of(cmdline: list[str]) -> str | None:
    for arg in cmdline:
        match = re.search(r"\.snakemake/scripts/tmp[^/]*\.(\w+)\.py$", arg)
        if match:
            return match.group(1) if match.group(1) in RULES else None
    return None


def _rule_of_worker(name: str) -> str | None:
    """A job run by the job server: its worker is named psm:<rule> (15 characters at most)."""
    if name.startswith("psm:"):
        return next((rule for rule in RULES if rule.startswith(name[4:])), None)
    return None


def run_workflow(config: Path, cores: int, until: str | None = None) -> dict:
    study = config.parent
    command = [str(SNAKEMAKE), "-s", str(REPO / "Snakefile"), "-d", str(study), "--configfile", str(config),
               "--cores", str(cores), *(["--until", until] if until else [])]
    start = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    sampler = ProcessSampler(psutil.Process(child.pid))
    sampler.start()
    output, _ = child.communicate()
    wall = time.perf_counter() - start
    sampler.stop()
    if child.returncode:
        sys.exit(f"snakemake failed on {study}:\n{output[-4000:]}")
    load = (os.getloadavg()[0] if wall < 90 else os.getloadavg()[1])
    return {"wall": wall, "load": load, "snakemake_cpu": sampler.root_cpu,
            "process_peak_mb": sampler.process_peak_mb, "tree_peak_mb": sampler.tree_peak_mb,
            "jobs": sampler.rule_jobs()}


def benchmark_file_jobs(study: Path) -> dict[str, list[dict]]:
    """Rule -> its jobs' wall seconds and max RSS, from results/benchmarks/**.tsv (their cpu_time
    column is sampled too rarely to count short jobs, so CPU time comes from the sampler)."""
    jobs = defaultdict(list)
    root = study / "results" / "benchmarks"
    for path in sorted(root.rglob("*.tsv")):
        with path.open() as handle:
            row = next(csv.DictReader(handle, delimiter="\t"))
        jobs[_rule_of_benchmark(path.relative_to(root))].append(
            {"seconds": float(row["s"]), "peak_mb": float(row["max_rss"])})
    return jobs


def _rule_of_benchmark(relative: Path) -> str:
    """results/benchmarks/ingest/<center>.tsv, merge_registry.tsv, <analysis>/<rule>.tsv."""
    if relative.parts[0] == "ingest":
        return "ingest_center"
    return relative.stem


def rule_rows(study: Path, sampled: dict[str, list[dict]]) -> list[dict]:
    """Per rule: jobs, summed and longest wall time, summed CPU time, the largest peak RSS of one job.
    Wall time from the rule's benchmark files where it has them, else from the sampled processes."""
    from_files = benchmark_file_jobs(study)
    rows = []
    for rule in RULES:
        sampled_jobs = sampled.get(rule, [])
        jobs = from_files.get(rule) or sampled_jobs
        if jobs:
            rows.append({"rule": rule, "jobs": len(jobs), "sum_s": sum(j["seconds"] for j in jobs),
                         "max_s": max(j["seconds"] for j in jobs),
                         "cpu_s": sum(j["cpu"] for j in sampled_jobs),
                         "peak_mb": max(j["peak_mb"] for j in jobs + sampled_jobs),
                         "source": "benchmark file" if rule in from_files else "sampled"})
    return rows


def print_report(label: str, n: int, run: dict, rows: list[dict], bootstrap: int, cores: int) -> None:
    print(f"\n### {label}: {n:,} patients, bootstrap {bootstrap}, --cores {cores}\n")
    print("| rule | jobs | wall, sum of jobs (s) | wall, longest job (s) | CPU, sum of jobs (s) "
          "| peak RSS of one job (MB) | measured by |")
    print("|---|---:|---:|---:|---:|---:|---|")
    for row in rows:
        print(f"| {row['rule']} | {row['jobs']} | {row['sum_s']:.1f} | {row['max_s']:.1f} | {row['cpu_s']:.1f} | "
              f"{row['peak_mb']:.0f} | {row['source']} |")
    target = TARGET_SECONDS.get(n)
    ok_time = "" if target is None else f" ({'meets' if run['wall'] < target else 'misses'} the {target} s target)"
    ok_mem = "meets" if run["process_peak_mb"] < TARGET_MB else "misses"
    cpu = sum(row["cpu_s"] for row in rows)
    print(f"| **end to end** | | **{run['wall']:.1f}**{ok_time} | | {cpu:.1f} | "
          f"**{run['process_peak_mb']:.0f}** one process ({ok_mem} the {TARGET_MB} MB target), "
          f"**{run['tree_peak_mb']:.0f}** all processes at once | |")
    survival = next((r for r in rows if r["rule"] == "survival"), None)
    if survival:
        print(f"\nsurvival alone (bootstrap {bootstrap}): {survival['jobs']} jobs, {survival['sum_s']:.1f} s wall "
              f"summed, {survival['max_s']:.1f} s the longest, {survival['cpu_s']:.1f} s CPU "
              f"({100 * survival['cpu_s'] / max(cpu, 1e-9):.0f}% of the jobs' CPU time)")
    print(f"\nSnakemake's own process: {run['snakemake_cpu']:.1f} s CPU. Load average during the run "
          f"(other users of the machine slow it down): {run['load']:.1f}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "out")
    parser.add_argument("--only", metavar="ANALYSIS", help="run only this analysis of the demo config "
                        "(without its subgroups and sensitivity variants)")
    parser.add_argument("--until", metavar="RULE", help="run the workflow only up to this rule (e.g. match)")
    parser.add_argument("--reuse", action="store_true", help="keep the extracts of an earlier run of the same size")
    parser.add_argument("--without", metavar="ANALYSIS", nargs="+", default=[],
                        help="leave these analyses of the demo config out (e.g. imputed_all_patients)")
    parser.add_argument("--no-sensitivity", action="store_true",
                        help="leave the analyses' sensitivity designs out (with --without imputed_all_patients: "
                        "the nine analyses the demo had when issue 19 set the 1M target)")
    args = parser.parse_args(argv)
    for n in args.sizes:
        label = f"{n // 1000}k" if n < 1_000_000 else f"{n // 1_000_000}M"
        t0 = time.perf_counter()
        config = write_study(args.out / f"workflow_{label}", n, args.only, args.reuse, args.without,
                             not args.no_sensitivity)
        print(f"{label}: registry written in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
        run = run_workflow(config, args.cores, args.until)
        bootstrap = max(a["survival"]["bootstrap"] for a in yaml.safe_load(config.read_text())["analyses"].values())
        print_report(label, n, run, rule_rows(config.parent, run["jobs"]), bootstrap, args.cores)
    return 0


if __name__ == "__main__":
    sys.exit(main())
