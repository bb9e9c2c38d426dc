"""The job server (pipeline/jobserver.py): a job's script runs in a fork of a warm process with the
job's directory, environment, stdout, stderr and exit status; or in the job's own process when
there is no server, when it is turned off, or when its inputs are large."""
from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline import jobserver
from tests.conftest import REPO

SCRIPT = """\
import json, os, sys
from pipeline.jobserver import delegate

delegate(snakemake, __file__)
print("stdout of", snakemake.rule)
print("stderr of", snakemake.rule, file=sys.stderr)
with open(snakemake.output[0], "w") as handle:
    json.dump({"pid": os.getpid(), "cwd": os.getcwd(), "marker": os.environ.get("MARKER"),
               "file": __file__, "name": open("/proc/self/comm").read().strip()}, handle)
if snakemake.rule == "fails":
    raise RuntimeError("a bug in the script")
sys.exit(snakemake.params["status"])
"""

# What Snakemake's preamble does before the script: a `snakemake` object, then the script's code.
CLIENT = """\
import json, os, runpy, sys, types
snakemake = types.SimpleNamespace(rule=sys.argv[2], input=sys.argv[4:], output=[sys.argv[3]],
                                  params={"status": 3}, threads=int(os.environ.get("THREADS", 1)))
print(json.dumps({"client": os.getpid()}), flush=True)
runpy.run_path(sys.argv[1], init_globals={"snakemake": snakemake}, run_name="__main__")
"""


def run_job(study: Path, rule: str, inputs=(), env=None):
    (study / "script.py").write_text(SCRIPT)
    (study / "client.py").write_text(CLIENT)
    output = study / f"{rule}.json"
    done = subprocess.run([sys.executable, "client.py", "script.py", rule, str(output), *map(str, inputs)],
                          cwd=study, capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(REPO), "MARKER": rule, **(env or {})})
    client = json.loads(done.stdout.splitlines()[0])["client"]
    return done, client, json.loads(output.read_text())


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A server whose parent is this test process (it stops when its parent is gone, or here)."""
    name = f"psm-pipeline-test-{os.getpid()}"
    process = subprocess.Popen([sys.executable, "-m", "pipeline.jobserver", name, str(os.getpid())],
                               env={**os.environ, "PYTHONPATH": str(REPO)})
    study = tmp_path_factory.mktemp("probe")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:           # listening once the pipeline is imported
        _, client, record = run_job(study, "probe", env={jobserver.ADDRESS: name})
        if record["pid"] != client:
            break
        time.sleep(0.5)
    else:
        pytest.fail("the job server did not start listening")
    yield name
    process.terminate()
    process.wait()


@pytest.mark.slow   # the server imports the whole pipeline first
def test_a_job_runs_in_a_fork_of_the_server_with_its_directory_environment_and_streams(server, tmp_path):
    done, client, record = run_job(tmp_path, "ok", env={jobserver.ADDRESS: server})
    assert done.returncode == 3                          # the script's exit status is the job's
    assert record["pid"] != client                       # it ran elsewhere ...
    assert record["cwd"] == str(tmp_path)                # ... in the job's directory ...
    assert record["marker"] == "ok"                      # ... with the job's environment
    assert record["file"] == str(tmp_path / "script.py")
    assert record["name"] == "psm:ok"                    # named after its rule in ps and top
    assert "stdout of ok" in done.stdout                 # into the job's own stdout and stderr
    assert "stderr of ok" in done.stderr


@pytest.mark.slow   # the server imports the whole pipeline first
def test_a_failing_script_fails_the_job_with_its_traceback(server, tmp_path):
    done, client, record = run_job(tmp_path, "fails", env={jobserver.ADDRESS: server})
    assert done.returncode == 1
    assert record["pid"] != client
    assert "RuntimeError: a bug in the script" in done.stderr


@pytest.mark.parametrize("address", ["", jobserver.OFF, "psm-pipeline-nobody-listens"])
def test_without_a_server_the_job_runs_in_its_own_process(address, tmp_path):
    done, client, record = run_job(tmp_path, "alone", env={jobserver.ADDRESS: address})
    assert done.returncode == 3
    assert record["pid"] == client
    assert "stdout of alone" in done.stdout


@pytest.mark.slow   # the server imports the whole pipeline first
def test_a_job_with_large_inputs_runs_in_its_own_process(server, tmp_path):
    large = tmp_path / "large.parquet"
    with large.open("wb") as handle:
        handle.truncate(jobserver.LARGE_INPUT_BYTES + 1)
    done, client, record = run_job(tmp_path, "large", inputs=[large], env={jobserver.ADDRESS: server})
    assert done.returncode == 3
    assert record["pid"] == client


@pytest.mark.slow   # the server imports the whole pipeline first
def test_a_job_with_several_threads_runs_in_its_own_process(server, tmp_path):
    done, client, record = run_job(tmp_path, "threads", env={jobserver.ADDRESS: server, "THREADS": "2"})
    assert done.returncode == 3
    assert record["pid"] == client


def test_no_server_for_jobs_run_elsewhere_or_turned_off(monkeypatch):
    monkeypatch.setenv(jobserver.ADDRESS, "psm-pipeline-inherited")   # e.g. exported to a SLURM job
    assert jobserver.start(local=False) is None
    assert jobserver.ADDRESS not in os.environ
    monkeypatch.setenv(jobserver.ADDRESS, jobserver.OFF)
    assert jobserver.start(local=True) is None
    assert os.environ[jobserver.ADDRESS] == jobserver.OFF


def test_every_workflow_script_hands_its_job_to_the_server_before_anything_else():
    """A script without the hand-over still works, in its own slow process; this keeps new rules fast."""
    scripts = sorted((REPO / "workflow" / "scripts").glob("*.py"))
    assert scripts
    for script in scripts:
        statements = [ast.unparse(node) for node in ast.parse(script.read_text()).body[1:3]]
        assert statements == ["from pipeline.jobserver import delegate", "delegate(snakemake, __file__)"], script.name
