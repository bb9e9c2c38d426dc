"""Demo benchmark: the bundled demo study (753 patients, config.yaml) end to end, with every job in its
own process (the baseline: PSM_PIPELINE_JOB_SERVER=off) and with the job server (pipeline/jobserver.py,
the default for local runs), alternating, each in a fresh copy of the study.

Per run: wall time, CPU time of Snakemake and every process it started (the job server waits for its
workers, so theirs is included), jobs run, and the load average of the machine (other users slow a
run down). The runs' results must be byte-identical apart from the reports' run timestamp; the last
column says whether they are.

    python benchmarks/bench_demo.py [--repeats 2] [--cores 2] [--server-only] [--against REVISION]
"""
from __future__ import annotations

import argparse
import filecmp
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from tests.conftest import copy_demo  # noqa: E402  (the demo study's files, as the tests copy them)

SNAKEMAKE = Path(sys.executable).with_name("snakemake")
MODES = {"every job its own process (baseline)": "off", "job server": None}
TARGET_SECONDS = 20
UNTIMED = ("logs", "benchmarks")
TIMESTAMP = re.compile(rb'<p class="muted" id="run-timestamp">.*?</p>')


def run_demo(study: Path, server: str | None, cores: int, source: Path = REPO) -> dict:
    """One run of the demo in ``study`` with the workflow and pipeline of ``source`` (a checkout)."""
    env = {key: value for key, value in os.environ.items() if key != "PSM_PIPELINE_JOB_SERVER"}
    env["PYTHONPATH"] = str(source)
    if server:
        env["PSM_PIPELINE_JOB_SERVER"] = server
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run([str(SNAKEMAKE), "-s", str(source / "Snakefile"), "-d", str(study), "--configfile",
                           str(study / "config.yaml"), "--cores", str(cores)],
                          env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode:
        sys.exit(f"snakemake failed on {study}:\n{done.stderr[-4000:]}")
    jobs = re.search(r"^(\d+) of \1 steps \(100%\) done", done.stderr, re.MULTILINE)
    return {"wall": wall, "cpu": (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime),
            "jobs": int(jobs.group(1)) if jobs else None, "load": os.getloadavg()[0 if wall < 90 else 1]}


def export_revision(revision: str, target: Path) -> Path:
    """The repository's files at ``revision`` in ``target`` (git archive)."""
    target.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(REPO), "archive", revision], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
    return target


def same_results(first: Path, second: Path) -> bool:
    """Every result file equal byte for byte, the reports' run timestamp aside (logs and benchmark
    files hold timings)."""
    def files(root):
        return sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file() and p.relative_to(root).parts[0]
                      not in UNTIMED)

    if files(first) != files(second):
        return False
    for relative in files(first):
        a, b = first / relative, second / relative
        if relative.suffix == ".html":
            if TIMESTAMP.sub(b"", a.read_bytes()) != TIMESTAMP.sub(b"", b.read_bytes()):
                return False
        elif not filecmp.cmp(a, b, shallow=False):
            return False
    return True


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--server-only", action="store_true", help="skip the baseline (every job its own process)")
    parser.add_argument("--against", metavar="REVISION", help="also run this git revision of the workflow (as it "
                        "runs by default), alternating with the others: the before of a change")
    args = parser.parse_args(argv)
    modes = {label: (server, REPO) for label, server in MODES.items() if server is None or not args.server_only}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        if args.against:
            modes[f"revision {args.against}"] = (None, export_revision(args.against, Path(tmp) / "revision"))
        references = {}
        for repeat in range(args.repeats):
            for number, (label, (server, source)) in enumerate(modes.items()):
                study = copy_demo(Path(tmp) / f"{repeat}-{number}")
                run = run_demo(study, server, args.cores, source)
                reference = references.setdefault(source, study / "results")
                rows.append({"label": label, **run, "same": same_results(reference, study / "results")})
                print(f"{label}: {run['wall']:.1f} s", file=sys.stderr)
    print(f"| demo (753 patients), --cores {args.cores} | jobs | wall s | CPU s, all processes | load average "
          "| results identical to the first run of the same code |")
    print("|---|---:|---:|---:|---:|---|")
    for row in rows:
        print(f"| {row['label']} | {row['jobs']} | {row['wall']:.1f} | {row['cpu']:.1f} | {row['load']:.1f} "
              f"| {'yes' if row['same'] else 'NO'} |")
    for label in modes:
        best = min(row["wall"] for row in rows if row["label"] == label)
        print(f"\n{label}: best wall {best:.1f} s ({'meets' if best < TARGET_SECONDS else 'misses'} the "
              f"{TARGET_SECONDS} s target)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
