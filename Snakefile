# Propensity-score matched survival comparisons on multicenter registry extracts.
#   snakemake --cores all                                        (the bundled demo study)
#   snakemake -s <repo>/Snakefile -d <study> --configfile <study>/config.yaml --cores all
from snakemake.utils import min_version

min_version("9.0")


# The study's config.yaml, unless --configfile names one: then only the named files count (a
# config.yaml lying in the study folder is not merged into them).
if not workflow.overwrite_configfiles:

    configfile: "config.yaml"



include: "workflow/rules/common.smk"
include: "workflow/rules/ingest.smk"
include: "workflow/rules/analysis.smk"
include: "workflow/rules/imputation.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/federated.smk"
include: "workflow/rules/shareable.smk"


rule all:
    input:
        final_outputs(),
    default_target: True
