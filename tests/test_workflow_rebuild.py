"""What a rerun does: content (not modification time) decides what is rebuilt, only the named config
counts, and a damaged intermediate file is one line that says how to rebuild it."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import pytest
import yaml

from pipeline.provenance import sha256_file
from tests.conftest import copy_demo, run_snakemake

ONE_ANALYSIS = "asymptomatic_high_burden"


def one_analysis_config(study: Path) -> Path:
    """The demo's config reduced to one quick analysis, written beside the demo's config.yaml."""
    config = yaml.safe_load((study / "config.yaml").read_text())
    analysis = config["analyses"][ONE_ANALYSIS]
    analysis["survival"]["bootstrap"] = 20
    config["analyses"] = {ONE_ANALYSIS: analysis}
    path = study / "one.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def planned_jobs(result) -> dict[str, int]:
    """Rule -> job count from a dry run's job table."""
    lines = result.stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("job ")) + 2
    counts = {}
    for line in lines[start:]:
        parts = line.split()
        if len(parts) != 2 or parts[0] == "total":
            break
        counts[parts[0]] = int(parts[1])
    return counts


def test_only_the_named_config_is_used(tmp_path):
    study = copy_demo(tmp_path / "study")            # holds the demo's config.yaml with nine analyses
    result = run_snakemake(study, one_analysis_config(study), "-n")
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = planned_jobs(result)
    assert jobs["cohort"] == 1 and jobs["survival"] == 1, jobs


@pytest.mark.slow
def test_replaced_extract_with_older_mtime_is_reingested_and_provenance_follows(tmp_path):
    study = copy_demo(tmp_path / "study")
    configfile = one_analysis_config(study)
    assert run_snakemake(study, configfile).returncode == 0
    extract = study / "resources/registry/center_a.csv"
    old_summary = json.loads((study / "results/registry/ingest_summary.json").read_text())
    lines = extract.read_text().splitlines(keepends=True)
    replacement = tmp_path / "center_a.csv"
    replacement.write_text("".join(lines[:-5]))        # the center resends its extract with fewer rows
    past = extract.stat().st_mtime - 86400 * 30
    os.utime(replacement, (past, past))                # as `cp -p` of an older file would leave it
    replacement.replace(extract)

    result = run_snakemake(study, configfile)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((study / "results/registry/ingest_summary.json").read_text())
    assert summary["centers"]["center_a"]["rows_read"] == old_summary["centers"]["center_a"]["rows_read"] - 5
    assert summary["centers"]["center_a"]["sha256"] == sha256_file(extract)
    page = (study / "results" / ONE_ANALYSIS / "report.html").read_text()
    assert sha256_file(extract) in page and old_summary["centers"]["center_a"]["sha256"] not in page


@pytest.mark.slow
def test_damaged_intermediate_is_one_line_naming_it(tmp_path):
    study = copy_demo(tmp_path / "study")
    configfile = one_analysis_config(study)
    assert run_snakemake(study, configfile).returncode == 0
    cohort = study / "results" / ONE_ANALYSIS / "cohort.parquet"
    cohort.write_bytes(cohort.read_bytes()[:100])       # truncated, e.g. by a full disk
    (study / "results" / ONE_ANALYSIS / "propensity.json").unlink()
    result = run_snakemake(study, configfile)
    assert result.returncode != 0
    message = f"{ONE_ANALYSIS}/cohort.parquet: cannot be read"
    assert message in result.stderr and "delete it and run snakemake again" in result.stderr
    log = (study / "results/logs" / ONE_ANALYSIS / "propensity.log").read_text()
    assert "Traceback" not in log and message in log


def test_reserved_variable_names_are_listed_in_the_message(demo_config, tmp_path):
    from pipeline.config.validate import prepare_config
    from pipeline.errors import ConfigError

    demo_config["registry"]["variables"]["time"] = {"type": "numeric"}
    with pytest.raises(ConfigError) as caught:
        prepare_config(demo_config, Path(__file__).parents[1])
    assert "registry.variables.time: 'time' is reserved" in str(caught.value)
    assert "reserved: center, source_row, patient_id, index_year, time, event, treated, group" in str(caught.value)


@pytest.mark.slow
def test_a_survival_setting_reruns_only_what_depends_on_it(tmp_path):
    study = copy_demo(tmp_path / "study")
    config = yaml.safe_load((study / "config.yaml").read_text())
    for analysis in config["analyses"].values():
        analysis["survival"]["bootstrap"] = 20
        analysis["subgroups"] = []
        analysis["sensitivity"] = {}
    configfile = study / "two.yaml"
    configfile.write_text(yaml.safe_dump(config, sort_keys=False))
    assert run_snakemake(study, configfile).returncode == 0

    config["analyses"][ONE_ANALYSIS]["survival"]["bootstrap"] = 30
    configfile.write_text(yaml.safe_dump(config, sort_keys=False))
    jobs = planned_jobs(run_snakemake(study, configfile, "-n"))
    # the shareable tier is disclosed study-wide at once (suppression across analyses): its reports all follow
    assert jobs == {"survival": 1, "analysis_report": 1, "index_report": 1, "manifest": 1, "disclose": 1,
                    "shareable_analysis_report": len(config["analyses"]), "shareable_index": 1, "shareable_manifest": 1, "all": 1}, jobs

    config["report"]["min_cell"] = 10              # a reporting setting: every report, no numbers
    configfile.write_text(yaml.safe_dump(config, sort_keys=False))
    jobs = planned_jobs(run_snakemake(study, configfile, "-n"))
    assert "cohort" not in jobs and "match" not in jobs and jobs["analysis_report"] == len(config["analyses"]), jobs
