# Federated analysis (issue 20): each site writes an aggregate bundle per listed analysis; a
# coordinating site pools the bundles it received (federated.pool). pipeline/federated/ has the logic.


from pipeline.federated.consortium import consortium_settings, site_name


# Sub-second jobs: on a cluster they run on the submitting node.
localrules:
    federated_bundle,
    federated_pool,


def federated_settings(wildcards):
    """What every site's bundle of this analysis must share (the bundle's config hash)."""
    analysis = STUDY.analyses[wildcards.analysis]
    return consortium_settings(wildcards.analysis, analysis, STUDY.variables_of(analysis.variable_names),
                               STUDY.time_unit, STUDY.federated)


rule federated_bundle:
    """The site's aggregate bundle of one analysis: risk tables on the time grid, within-site HR,
    attrition, balance sums (no patient-level row)."""
    input:
        cohort="results/{analysis}/cohort.parquet",
        attrition="results/{analysis}/cohort.json",
        matched="results/{analysis}/matched.parquet",
        pairs="results/{analysis}/pairs.parquet",
        matching="results/{analysis}/matching.json",
        survival="results/{analysis}/survival.json",
    output:
        "results/federated/{analysis}.json",
    params:
        settings=federated_settings,
        analysis=lambda wildcards: STUDY.analyses[wildcards.analysis].to_dict(),
        variables=analysis_variables,
        site=site_name(STUDY.federated, CENTERS),
        seed=STUDY.seed,
        min_cell=STUDY.report.min_cell,
    log:
        "results/logs/{analysis}/federated_bundle.log",
    benchmark:
        "results/benchmarks/{analysis}/federated_bundle.tsv"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../../envs/pipeline.yaml"
    script:
        "../scripts/federated_bundle.py"


rule federated_pool:
    """The coordinating site's pooled report of one analysis from the bundles listed in federated.pool."""
    input:
        lambda wildcards: STUDY.federated.pool[wildcards.pooled],
    output:
        pooled="results/federated/pooled/{pooled}/pooled.json",
        report="results/federated/pooled/{pooled}/report.html",
    wildcard_constraints:
        pooled="|".join(map(re.escape, STUDY.federated.pool)) or "(?!)",
    log:
        "results/logs/federated_pool_{pooled}.log",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../../envs/pipeline.yaml"
    script:
        "../scripts/federated_pool.py"
