"""Where the demo's jobs spend their CPU: each job's own work, per rule, without Python's start-up.

Runs the demo study (config.yaml) once in a fresh copy, keeping Snakemake's wrapper scripts
(--skip-script-cleanup); then, in this process, imports the pipeline as the job server does and
runs every job's script again in a fork of it, one at a time, timing each fork's CPU (and, with
--profile, profiling it: the CPU times then include the profiler's overhead). A rerun writes the
same files the first run wrote. Prints a table per rule: jobs, CPU seconds summed and per job; with
--profile, the functions that take the most cumulative time per rule.

    python benchmarks/profile_jobs.py [--study DIR] [--scripts balance survival] [--profile] [--top 25]

--study reuses a study folder already run with --skip-script-cleanup --notemp (its .snakemake/scripts).
"""
from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import runpy
import subprocess
import sys
import tempfile
import traceback
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from pipeline import jobserver  # noqa: E402

os.environ.update(dict.fromkeys(jobserver.THREAD_VARIABLES, "1"))  # as the server's (and one-thread jobs') libraries
from tests.conftest import copy_demo  # noqa: E402

SNAKEMAKE = Path(sys.executable).with_name("snakemake")


def run_demo(study: Path) -> None:
    done = subprocess.run([str(SNAKEMAKE), "-s", str(REPO / "Snakefile"), "-d", str(study), "--configfile",
                           str(study / "config.yaml"), "--cores", "2", "--skip-script-cleanup", "--notemp"],
                          capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"snakemake failed on {study}:\n{done.stderr[-4000:]}")


def workflow_script(script: Path) -> str:
    """The workflow script's name (e.g. analysis_report, run by two rules) of a wrapper script that
    Snakemake named tmp<random>.<name>.py."""
    return script.name.split(".")[1]


def run_job(script: Path, study: Path, profile_to: Path | None) -> tuple[str, float]:
    """The job's rule and the CPU seconds of the fork that ran it."""
    reading, writing = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(reading)
        status = 1
        try:
            os.chdir(study)
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 1)
            profiler = cProfile.Profile() if profile_to else None
            if profiler:
                profiler.enable()
            scope = runpy.run_path(str(script), run_name="__main__")
            if profiler:
                profiler.disable()
                profiler.dump_stats(profile_to)
            os.write(writing, scope["snakemake"].rule.encode())
            status = 0
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(status)
    os.close(writing)
    _, status, usage = os.wait4(pid, 0)
    rule = os.read(reading, 200).decode()
    os.close(reading)
    if status:
        sys.exit(f"{script} failed (status {status})")
    return rule, usage.ru_utime + usage.ru_stime


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--study", type=Path, help="a study folder already run with --skip-script-cleanup")
    parser.add_argument("--scripts", nargs="*", metavar="NAME",
                        help="run only the jobs of these workflow scripts (workflow/scripts/NAME.py; default: all)")
    parser.add_argument("--profile", action="store_true", help="profile the jobs; print the top functions per rule")
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        study = args.study
        if study is None:
            study = copy_demo(Path(tmp) / "study")
            run_demo(study)
        study = study.resolve()
        scripts = sorted((study / ".snakemake" / "scripts").glob("*.py"), key=lambda path: path.stat().st_mtime)
        jobserver._preload()            # what the server imports before it takes jobs
        cpu, profiles = defaultdict(list), defaultdict(list)
        for number, script in enumerate(scripts):
            if args.scripts and workflow_script(script) not in args.scripts:
                continue
            profile_to = Path(tmp) / f"{number}.prof" if args.profile else None
            rule, seconds = run_job(script, study, profile_to)
            cpu[rule].append(seconds)
            if profile_to:
                profiles[rule].append(str(profile_to))
        print_tables(cpu, profiles, args.top)
    return 0


def print_tables(cpu: dict, profiles: dict, top: int) -> None:
    print(f"| rule | jobs | CPU s | CPU s per job |   (load average {os.getloadavg()[0]:.1f})")
    print("|---|---:|---:|---:|")
    for rule, seconds in sorted(cpu.items(), key=lambda item: -sum(item[1])):
        print(f"| {rule} | {len(seconds)} | {sum(seconds):.2f} | {sum(seconds) / len(seconds):.3f} |")
    print(f"| all | {sum(map(len, cpu.values()))} | {sum(map(sum, cpu.values())):.2f} | |")
    for rule, paths in profiles.items():
        print(f"\n## {rule}: cumulative time over {len(paths)} jobs")
        pstats.Stats(*paths, stream=sys.stdout).sort_stats("cumulative").print_stats(top)


if __name__ == "__main__":
    sys.exit(main())
