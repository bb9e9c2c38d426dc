"""The job server (pipeline/jobserver.py): Snakemake hands a script job to a fork of a warm process,
which runs it with the job's directory, environment, stdout, stderr and exit status; a job with
several threads, or every job when the server is turned off, runs in its own process."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline import jobserver
from tests.conftest import REPO

SCRIPT = """\
import json, os, sys, time

deadline = time.process_time() + (2 if snakemake.rule == "ok" else 0)
while time.process_time() < deadline:         # work for the benchmark file to measure (it samples
    pass                                       # every 0.5 s)
print("stdout of", snakemake.rule)
print("stderr of", snakemake.rule, file=sys.stderr)
with open(snakemake.output[0], "w") as handle:
    json.dump({"cwd": os.getcwd(), "marker": os.environ.get("MARKER"), "threads": os.environ.get("OMP_NUM_THREADS"),
               "file": __file__, "path0": sys.path[0], "name": open("/proc/self/comm").read().strip()}, handle)
if snakemake.rule == "fails":
    raise RuntimeError("a bug in the script")
if snakemake.rule == "killed":
    os.kill(os.getpid(), 9)
"""

WORKFLOW = """\
from pipeline import jobserver

JOB_SERVER = []

onstart:
    JOB_SERVER.append(jobserver.start(local=True))

onsuccess:
    jobserver.stop(JOB_SERVER.pop())

onerror:
    jobserver.stop(JOB_SERVER.pop())

rule all:
    input: "ok.json", "threads.json"

rule ok:
    output: "ok.json"
    benchmark: "ok.tsv"
    script: "script.py"

rule threads:
    output: "threads.json"
    threads: 2
    script: "script.py"

rule fails:
    output: "fails.json"
    script: "script.py"

rule killed:
    output: "killed.json"
    script: "script.py"
"""


def run_workflow(study: Path, *targets: str, env=None) -> subprocess.CompletedProcess:
    (study / "Snakefile").write_text(WORKFLOW)
    (study / "script.py").write_text(SCRIPT)
    return subprocess.run([sys.executable, "-m", "snakemake", "--cores", "2", *targets], cwd=study,
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(REPO), "MARKER": "workflow", **(env or {})})


def record(study: Path, rule: str) -> dict:
    return json.loads((study / f"{rule}.json").read_text())


def ran_in_server(job: dict) -> bool:
    return job["name"].startswith("psm:")


@pytest.mark.slow   # the server imports the whole pipeline first
def test_snakemake_hands_one_thread_jobs_to_the_server(tmp_path):
    done = run_workflow(tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    ok = record(tmp_path, "ok")
    assert ok["name"] == "psm:ok"                    # a worker of the server, named after the rule in ps/top
    assert ok["cwd"] == str(tmp_path) and ok["marker"] == "workflow" and ok["threads"] == "1"
    assert ok["file"] == str(tmp_path / "script.py")
    assert ok["path0"] == str(tmp_path)              # the script itself ran, not a copy behind a preamble
    assert "stdout of ok" in done.stdout and "stderr of ok" in done.stderr
    with (tmp_path / "ok.tsv").open() as handle:     # the benchmark measured the worker's work
        benchmark = dict(zip(*[line.rstrip("\n").split("\t") for line in handle]))
    assert float(benchmark["cpu_time"]) >= 0.5
    threads = record(tmp_path, "threads")           # the server's libraries were set up for one thread
    assert not ran_in_server(threads) and threads["path0"].endswith(".snakemake/scripts")
    assert threads["threads"] == "2"


@pytest.mark.slow   # the server imports the whole pipeline first
def test_a_served_script_that_fails_or_is_killed_fails_its_job_and_says_why(tmp_path):
    done = run_workflow(tmp_path, "fails.json", "killed.json", "--keep-going")
    assert done.returncode != 0
    assert "RuntimeError: a bug in the script" in done.stderr
    assert "psm:fails" in done.stderr                # the failed command: the server's worker for the rule
    assert "the process of job killed ended without an exit status" in done.stderr
    assert "psm:killed" in done.stderr


def test_turned_off_every_job_runs_in_its_own_process(tmp_path):
    done = run_workflow(tmp_path, "ok.json", env={jobserver.SWITCH: jobserver.OFF})
    assert done.returncode == 0, done.stderr[-3000:]
    assert not ran_in_server(record(tmp_path, "ok"))


def test_no_server_for_jobs_run_elsewhere_or_turned_off(monkeypatch):
    assert jobserver.start(local=False) is None
    monkeypatch.setenv(jobserver.SWITCH, jobserver.OFF)
    assert jobserver.start(local=True) is None
