rule cohort:
    """Apply the analysis's inclusion steps (with attrition) and derive the outcome."""
    input:
        "results/registry/harmonized.parquet",
    output:
        cohort="results/{analysis}/cohort.parquet",
        attrition="results/{analysis}/cohort.json",
    params:
        analysis=analysis_config,
        outcome=STUDY["outcome"],
        time_unit=STUDY["time_unit"],
        variables=STUDY["registry"]["variables"],
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
        analysis=analysis_config,
        variables=STUDY["registry"]["variables"],
        seed=STUDY["seed"],
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
        matched="results/{analysis}/matched.csv",
        pairs="results/{analysis}/pairs.csv",
        summary="results/{analysis}/matching.json",
    params:
        analysis=analysis_config,
        seed=STUDY["seed"],
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
        matched="results/{analysis}/matched.csv",
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
        analysis=analysis_config,
        variables=STUDY["registry"]["variables"],
        min_cell=STUDY["report"]["min_cell"],
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
        matched="results/{analysis}/matched.csv",
        pairs="results/{analysis}/pairs.csv",
        matching="results/{analysis}/matching.json",
    output:
        temp("results/{analysis}/bootstrap/{job}.npy"),
    params:
        analysis=analysis_config,
        seed=STUDY["seed"],
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
        matched="results/{analysis}/matched.csv",
        pairs="results/{analysis}/pairs.csv",
        matching="results/{analysis}/matching.json",
        bootstrap=bootstrap_jobs,
    output:
        survival="results/{analysis}/survival.json",
        km_plot=report("results/{analysis}/km.png", category="Survival", subcategory="{analysis}",
                       labels={"analysis": "{analysis}", "figure": "Kaplan-Meier"}),
    params:
        analysis=analysis_config,
        seed=STUDY["seed"],
        time_unit=STUDY["time_unit"],
        min_cell=STUDY["report"]["min_cell"],
        relevant_hr=STUDY["report"]["relevant_hr"],
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
