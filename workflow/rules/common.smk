import re
import sys
from pathlib import Path

# The `pipeline` package is installed in the environment (scripts/setup.sh: pip install -e .);
# this makes the Snakefile parse from a checkout too.
sys.path.insert(0, workflow.basedir)

from pipeline import jobserver
from pipeline.config.settings import Settings, Study
from pipeline.config.validate import prepare_config
from pipeline.design.designs import design_name
from pipeline.errors import PipelineError
from pipeline.imputation import imputation_analyses
from pipeline.provenance import sha256_file

try:
    STUDY = Study.from_config(prepare_config(config, Path.cwd()))
except PipelineError as err:
    sys.stderr.write(f"psm-pipeline: {err}\n")
    sys.exit(1)

CENTERS = list(STUDY.registry.centers)
ANALYSES = list(STUDY.analyses)
# Multiple imputation: imputation <i> of analysis <a> is the internal analysis "<a>/imputations/<i>"
# (workflow/rules/imputation.smk): {name: (a, i)}.
IMPUTATIONS = imputation_analyses(STUDY.analyses)


def analysis_named(name):
    """The settings of an analysis (an imputation's: its parent's, on completed data)."""
    if name in IMPUTATIONS:
        return STUDY.analyses[IMPUTATIONS[name][0]].completed()
    return STUDY.analyses[name]


def analysis_of(wildcards):
    """The settings of the job's analysis."""
    return analysis_named(wildcards.analysis)


# Local runs: one warm process imports the pipeline once and runs the small jobs in forks of itself
# (pipeline/jobserver.py); on SLURM or under conda/containers every job keeps its own process.
JOB_SERVER = []


onstart:
    JOB_SERVER.append(jobserver.start(local=workflow.local_exec and not workflow.remote_exec
                                      and not workflow.deployment_settings.deployment_method))
    if workflow.local_exec and not workflow.remote_exec and hasattr(workflow, "scheduler"):
        # Snakemake's limit on job starts (--max-jobs-per-timespan, 100 a second by default: meant for
        # cluster queues) wakes its scheduler every second once per job finished so far, which cost
        # the demo some 3 s of Snakemake's CPU; here --cores is the limit.
        workflow.scheduler.job_rate_limiter = None


onsuccess:
    jobserver.stop(JOB_SERVER.pop() if JOB_SERVER else None)


onerror:
    jobserver.stop(JOB_SERVER.pop() if JOB_SERVER else None)


wildcard_constraints:
    center="|".join(map(re.escape, CENTERS)),
    analysis="|".join(map(re.escape, [*ANALYSES, *IMPUTATIONS])),
    job=r"\d+",


# --- rule parameters: each rule gets the settings it uses, as plain values (Snakemake reruns a
# job when its parameters change, so a setting reruns exactly the jobs that use it) -----------

def plain(value):
    return value.to_dict() if isinstance(value, Settings) else list(value) if isinstance(value, tuple) else value


def analysis_setting(name):
    """A parameter: one block, view or key of the job's analysis (pipeline.config.settings.Analysis)."""
    return lambda wildcards: plain(getattr(analysis_of(wildcards), name))


def analysis_variables(wildcards):
    """The registry variables the job's analysis uses (types, levels, labels)."""
    names = analysis_of(wildcards).variable_names
    return {name: variable.to_dict() for name, variable in STUDY.variables_of(names).items()}


def ingest_variables():
    """What ingest needs of every variable: type, levels, bounds, required (not display labels)."""
    keep = ("type", "levels", "min", "max", "required")
    return {name: {key: value for key, value in variable.to_dict().items() if key in keep}
            for name, variable in STUDY.registry.variables.items()}


def outcome_roles():
    """The outcome's variables (its display name left out: it changes no number)."""
    return {key: value for key, value in STUDY.outcome.to_dict().items() if key != "name"}


def report_context(wildcards):
    return STUDY.report_context(STUDY.analyses[wildcards.analysis].variable_names).to_dict()


def index_analyses():
    """What the index shows of each analysis: its arms, its design and what it derives from (subgroup,
    variant)."""
    return {name: {"treatment": analysis.treatment.to_dict(), "derived_from": analysis.derived_from,
                   "design": design_name(analysis), "estimand": analysis.estimand}
            for name, analysis in STUDY.analyses.items()}


# The index's design forest (results/design_forest.*) exists when an analysis varies its design.
DESIGN_FOREST = {}
if any("design" in (analysis.derived_from or {}).get("variant", {}) for analysis in STUDY.analyses.values()):
    DESIGN_FOREST = {"design_forest_table": "results/design_forest.csv",
                     "design_forest_plot": report("results/design_forest.png", category="Index",
                                                  caption="../report/design_forest.rst")}


def index_context():
    names = [name for analysis in STUDY.analyses.values() for name in analysis.variable_names]
    return STUDY.report_context(names).to_dict()


def arm_labels(wildcards):
    treatment = analysis_of(wildcards).treatment
    return {arm: treatment.label(arm) for arm in ("treated", "control")}


def center_extract(wildcards):
    return STUDY.registry.centers[wildcards.center].path


def center_extract_sha256(wildcards):
    """The extract's content hash, a parameter of its ingest job: Snakemake reruns a job whose
    parameters changed, so a replaced extract is re-ingested even when its modification time is
    older than the results (cp -p, rsync -a, unzip)."""
    return sha256_file(center_extract(wildcards))


def bootstrap_jobs(wildcards):
    """The bootstrap jobs' results the survival rule gathers; none when it draws them itself."""
    jobs = analysis_of(wildcards).survival.bootstrap_jobs
    if jobs == 1:
        return []
    return [f"results/{wildcards.analysis}/bootstrap/{job}.npy" for job in range(jobs)]


ANALYSIS_FILES = [
    "cohort.json", "propensity.parquet", "matched.csv", "pairs.csv", "balance.csv", "table1.csv",
    "survival.json", "report.html",
]


def site_outputs():
    """The site-internal tier: patient-level files and exact aggregates (results/manifest.json)."""
    registry = expand("results/registry/{name}", name=["harmonized.parquet", "quarantine.csv", "ingest_summary.json"])
    per_analysis = expand("results/{analysis}/{name}", analysis=ANALYSES, name=ANALYSIS_FILES)
    index = ["results/report.html", "results/forest.csv", "results/interaction.csv", "results/manifest.json",
             *DESIGN_FOREST.values()]
    federated = [f"results/federated/{name}.json" for name in STUDY.federated.analyses]
    pooled = [f"results/federated/pooled/{name}/report.html" for name in STUDY.federated.pool]
    return registry + per_analysis + index + federated + pooled


def final_outputs():
    """Both tiers: the site-internal results and what a site sends (results/shareable/, shareable.smk)."""
    return site_outputs() + ["results/shareable/manifest.json"]
