rule cohort:
    """Apply the analysis's inclusion steps (with attrition) and derive the outcome."""
    input:
        "results/registry/harmonized.parquet",
    output:
        cohort="results/{analysis}/cohort.parquet",
        attrition="results/{analysis}/cohort.json",
    params:
        selection=analysis_setting("selection"),
        outcome=outcome_roles(),
        time_unit=STUDY.time_unit,
        id_variable=STUDY.registry.id_variable,
    log:
        "results/logs/{analysis}/cohort.log",
    benchmark:
        "results/benchmarks/{analysis}/cohort.tsv"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=15,
    conda:
        "../../envs/pipeline.yaml"
    script:
        "../scripts/cohort.py"


rule propensity:
    """Fit the propensity model; the matching distance and common-support discards."""
    input:
        cohort="results/{analysis}/cohort.parquet",
        attrition="results/{analysis}/cohort.json",
    output:
        scores="results/{analysis}/propensity.parquet",
        summary="results/{analysis}/propensity.json",
    params:
        design=analysis_setting("propensity_design"),
        variables=analysis_variables,
        seed=STUDY.seed,
    log:
        "results/logs/{analysis}/propensity.log",
    benchmark:
        "results/benchmarks/{analysis}/propensity.tsv"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    conda:
        "../../envs/pipeline.yaml"
    script:
        "../scripts/propensity.py"


rule match:
    """Greedy nearest-neighbour matching with MatchIt (>= 4.6) semantics."""
    input:
        cohort="results/{analysis}/cohort.parquet",
        scores="results/{analysis}/propensity.parquet",
        propensity="results/{analysis}/propensity.json",
    output:
        matched="results/{analysis}/matched.parquet",
        pairs="results/{analysis}/pairs.parquet",
        matched_csv="results/{analysis}/matched.csv",
        pairs_csv="results/{analysis}/pairs.csv",
        summary="results/{analysis}/matching.json",
    params:
        matching=analysis_setting("matching"),
        seed=STUDY.seed,
    log:
        "results/logs/{analysis}/match.log",
    benchmark:
        "results/benchmarks/{analysis}/match.tsv"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=15,
    conda:
        "../../envs/pipeline.yaml"
    script:
        "../scripts/match.py"


rule balance:
    """Covariate balance before and after matching, Table 1, Love and overlap plots."""
    input:
        cohort="results/{analysis}/cohort.parquet",
        scores="results/{analysis}/propensity.parquet",
        matched="results/{analysis}/matched.parquet",
        matching="results/{analysis}/matching.json",
    output:
        balance="results/{analysis}/balance.csv",
        table1="results/{analysis}/table1.csv",
        summary="results/{analysis}/balance.json",
        love_plot=report("results/{analysis}/love_plot.png", category="Balance", subcategory="{analysis}",
                         labels={"analysis": "{analysis}", "figure": "Love plot"}),
        overlap_plot=report("results/{analysis}/ps_overlap.png", category="Balance", subcategory="{analysis}",
                            labels={"analysis": "{analysis}", "figure": "propensity-score overlap"}),
    params:
        covariates=analysis_setting("covariates"),
        missing=analysis_setting("missing"),
        variables=analysis_variables,
        arm_labels=arm_labels,
        min_cell=STUDY.report.min_cell,
    log:
        "results/logs/{analysis}/balance.log",
    benchmark:
        "results/benchmarks/{analysis}/balance.tsv"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=15,
    conda:
        "../../envs/pipeline.yaml"
    script:
        "../scripts/balance.py"


rule bootstrap:
    """One share of the median-difference bootstrap (survival.bootstrap_jobs > 1)."""
    input:
        cohort="results/{analysis}/cohort.parquet",
        matched="results/{analysis}/matched.parquet",
        pairs="results/{analysis}/pairs.parquet",
        matching="results/{analysis}/matching.json",
    output:
        temp("results/{analysis}/bootstrap/{job}.npy"),
    params:
        survival=analysis_setting("survival"),
        replace=matching_setting("replace"),
        seed=STUDY.seed,
    log:
        "results/logs/{analysis}/bootstrap_{job}.log",
    benchmark:
        "results/benchmarks/{analysis}/bootstrap_{job}.tsv"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    conda:
        "../../envs/pipeline.yaml"
    script:
        "../scripts/bootstrap.py"


rule survival:
    """KM, log-rank, marginal Cox HR (cluster-robust), RMST, bootstrap median difference, E-value."""
    input:
        cohort="results/{analysis}/cohort.parquet",
        matched="results/{analysis}/matched.parquet",
        pairs="results/{analysis}/pairs.parquet",
        matching="results/{analysis}/matching.json",
        bootstrap=bootstrap_jobs,
    output:
        survival="results/{analysis}/survival.json",
        km_plot=report("results/{analysis}/km.png", category="Survival", subcategory="{analysis}",
                       labels={"analysis": "{analysis}", "figure": "Kaplan-Meier"}),
    params:
        survival=analysis_setting("survival"),
        replace=matching_setting("replace"),
        seed=STUDY.seed,
        time_unit=STUDY.time_unit,
        min_cell=STUDY.report.min_cell,
        relevant_hr=STUDY.report.relevant_hr,
        arm_labels=arm_labels,
        endpoint=STUDY.outcome.name,
    log:
        "results/logs/{analysis}/survival.log",
    benchmark:
        "results/benchmarks/{analysis}/survival.tsv"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    conda:
        "../../envs/pipeline.yaml"
    script:
        "../scripts/survival.py"
