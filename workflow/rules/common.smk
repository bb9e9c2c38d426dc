import re
import sys
from pathlib import Path

# The `pipeline` package is installed in the environment (scripts/setup.sh: pip install -e .);
# this makes the Snakefile parse from a checkout too.
sys.path.insert(0, workflow.basedir)

from pipeline.config.validate import prepare_config
from pipeline.errors import PipelineError
from pipeline.provenance import sha256_file

try:
    STUDY = prepare_config(config, Path.cwd())
except PipelineError as err:
    sys.stderr.write(f"psm-pipeline: {err}\n")
    sys.exit(1)

CENTERS = list(STUDY["registry"]["centers"])
ANALYSES = list(STUDY["analyses"])


wildcard_constraints:
    center="|".join(map(re.escape, CENTERS)),
    analysis="|".join(map(re.escape, ANALYSES)),
    job=r"\d+",


def center_extract(wildcards):
    return STUDY["registry"]["centers"][wildcards.center]["path"]


def center_extract_sha256(wildcards):
    """The extract's content hash, a parameter of its ingest job: Snakemake reruns a job whose
    parameters changed, so a replaced extract is re-ingested even when its modification time is
    older than the results (cp -p, rsync -a, unzip)."""
    return sha256_file(center_extract(wildcards))


def analysis_config(wildcards):
    return STUDY["analyses"][wildcards.analysis]


def bootstrap_jobs(wildcards):
    """The bootstrap jobs' results the survival rule gathers; none when it draws them itself."""
    jobs = STUDY["analyses"][wildcards.analysis]["survival"]["bootstrap_jobs"]
    if jobs == 1:
        return []
    return [f"results/{wildcards.analysis}/bootstrap/{job}.npy" for job in range(jobs)]


ANALYSIS_FILES = [
    "cohort.json", "propensity.parquet", "matched.csv", "pairs.csv", "balance.csv", "table1.csv",
    "survival.json", "report.html",
]


def final_outputs():
    registry = expand("results/registry/{name}", name=["harmonized.parquet", "quarantine.csv", "ingest_summary.json"])
    per_analysis = expand("results/{analysis}/{name}", analysis=ANALYSES, name=ANALYSIS_FILES)
    index = ["results/report.html", "results/forest.csv", "results/interaction.csv", "results/manifest.json"]
    return registry + per_analysis + index
