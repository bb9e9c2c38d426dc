"""Cluster execution: the workflow under the SLURM profile (profiles/slurm).

The planning test needs only snakemake-executor-plugin-slurm (a dry run never calls sbatch). The
end-to-end test starts a single-node SLURM on this machine (tests/slurm/local_cluster.sh: Debian's
slurm-wlm and munge, run as root) and runs a small study through it, so every job is really
submitted with sbatch and run by slurmd; it skips, saying why, where that is impossible.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO, copy_demo

PROFILE = REPO / "profiles" / "slurm"
CLUSTER_SCRIPT = REPO / "tests" / "slurm" / "local_cluster.sh"


def snakemake_under_profile(study: Path, *extra: str, env: dict | None = None, timeout: int = 600):
    cmd = [sys.executable, "-m", "snakemake", "--profile", str(PROFILE), "-s", str(REPO / "Snakefile"),
           "-d", str(study), "--configfile", str(study / "config.yaml"), *extra]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)


def workflow_rules(study: Path) -> set[str]:
    """Every rule the workflow defines (`snakemake --list-rules`: one rule a line, its docstring after it,
    continued on indented lines)."""
    result = snakemake_under_profile(study, "--list-rules")
    assert result.returncode == 0, result.stderr[-4000:]
    return {line.split()[0] for line in result.stdout.splitlines() if line.strip() and not line[0].isspace()}


def job_blocks(output: str) -> list[dict]:
    """The jobs Snakemake printed (a dry run's plan or a real run's log): each job's rule, whether it
    runs on the submitting node ("localrule"), and its indented fields (input, output, resources, ...)."""
    jobs, job = [], None
    for line in output.splitlines():
        if match := re.match(r"^(local)?rule (\w+):$", line):
            job = {"rule": match.group(2), "local": bool(match.group(1))}
            jobs.append(job)
        elif job is not None and (match := re.match(r"^    (\w[\w ]*): (.*)$", line)):
            job[match.group(1)] = match.group(2)
        elif not line.startswith(" "):
            job = None
    return jobs


def test_profile_selects_the_slurm_executor():
    profile = yaml.safe_load((PROFILE / "config.yaml").read_text())
    assert profile["executor"] == "slurm"
    assert {"mem_mb", "runtime"} <= set(profile["default-resources"])


@pytest.mark.slow   # two Snakemake processes: the rule list and the dry run
def test_workflow_plans_under_the_slurm_profile(tmp_path):
    pytest.importorskip("snakemake_executor_plugin_slurm", reason="snakemake-executor-plugin-slurm not installed")
    study = copy_demo(tmp_path / "study")
    config = yaml.safe_load((study / "config.yaml").read_text())
    config["analyses"]["all_patients"]["survival"]["bootstrap_jobs"] = 2   # so that every rule has a job
    imputed = config["analyses"]["imputed_all_patients"]
    config["analyses"]["imputed_across"] = {**imputed, "imputation": {"m": 2, "approach": "across"}}
    config["federated"] = {"analyses": ["asymptomatic_high_burden"],     # a site bundle, pooled at this site
                           "pool": {"consortium": ["results/federated/asymptomatic_high_burden.json"]}}
    (study / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False, allow_unicode=True))
    result = snakemake_under_profile(study, "--dry-run")
    assert result.returncode == 0, result.stderr[-4000:]
    output = result.stdout + result.stderr
    assert "This was a dry-run" in output
    jobs = job_blocks(output)
    assert {job["rule"] for job in jobs} == workflow_rules(study)
    for job in jobs:
        if "output" in job:   # a job without output (the default target) runs nothing
            # each job must tell SLURM its memory (--mem) and time limit (-t)
            assert re.search(r"\bmem_mb=\d+", job["resources"]) and re.search(r"\bruntime=\d+", job["resources"]), \
                f"{job['rule']}: {job['resources']}"


# ------------------------------------------------------------------------- a real single-node SLURM


@pytest.fixture(scope="session")
def local_slurm(tmp_path_factory):
    """SLURM_CONF of a single-node cluster running on this machine for the session."""
    missing = [tool for tool in ("sbatch", "slurmctld", "slurmd", "munged") if not shutil.which(tool)]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed (Debian: apt-get install -y slurm-wlm munge)")
    if os.geteuid() != 0:
        pytest.skip("starting slurmctld, slurmd and munged needs root")
    state = tmp_path_factory.mktemp("slurm")
    started = subprocess.run(["bash", str(CLUSTER_SCRIPT), "start", str(state)],
                             capture_output=True, text=True, timeout=120)
    if started.returncode != 0:
        subprocess.run(["bash", str(CLUSTER_SCRIPT), "stop", str(state)], capture_output=True, timeout=60)
        pytest.fail(f"could not start the local SLURM cluster:\n{started.stdout}\n{started.stderr}")
    yield state / "slurm.conf"
    subprocess.run(["bash", str(CLUSTER_SCRIPT), "stop", str(state)], capture_output=True, timeout=60)


def small_study(target: Path) -> Path:
    """The demo's extracts with one analysis, no subgroups and 50 bootstrap replicates."""
    study = copy_demo(target)
    config = yaml.safe_load((study / "config.yaml").read_text())
    analysis = config["analyses"]["all_patients"]
    analysis["subgroups"] = []
    analysis["survival"]["bootstrap"] = 50
    config["analyses"] = {"all_patients": analysis}
    (study / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False, allow_unicode=True))
    return study


@pytest.mark.slow
def test_jobs_are_submitted_to_slurm_and_complete(local_slurm, tmp_path):
    study = small_study(tmp_path / "study")
    env = os.environ | {"SLURM_CONF": str(local_slurm)}
    result = snakemake_under_profile(
        study,
        "--slurm-no-account",                            # no accounting database on the test cluster
        "--slurm-status-command", "squeue",              # (sacct needs one)
        "--slurm-init-seconds-before-status-checks", "1",
        "--slurm-keep-successful-logs",
        "--latency-wait", "5",
        env=env, timeout=1200)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    jobs = job_blocks(output)
    submitted_rules = {job["rule"] for job in jobs if not job["local"]}
    local_rules = {job["rule"] for job in jobs if job["local"]}
    submitted = re.findall(r"has been submitted with SLURM jobid (\d+)", output)
    assert submitted and len(submitted) == len(set(submitted)) == sum(not job["local"] for job in jobs), \
        output[-3000:]
    rule_logs = {p.name.removeprefix("rule_") for p in (study / ".snakemake" / "slurm_logs").iterdir()}
    assert rule_logs == submitted_rules, f"SLURM job logs {rule_logs}, submitted rules {submitted_rules}"
    # the workflow's `localrules:` (sub-second report jobs) run on the submitting node, not in the queue
    assert any("output" in job for job in jobs if job["local"]), "no job with output ran on the submitting node"
    assert not local_rules & rule_logs
    for name in ["registry/harmonized.parquet", "all_patients/survival.json", "all_patients/report.html",
                 "report.html", "manifest.json"]:
        assert (study / "results" / name).is_file(), name
