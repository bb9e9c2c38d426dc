# The analyses of design weighting (a pattern; "(?!)" matches nothing): rule weight makes their
# weighted sample, rule match the others' matched sample.
WEIGHTED_ANALYSES = "|".join(
    re.escape(name) for name in [*STUDY.analyses, *IMPUTATIONS] if analysis_named(name).design == "weighting") or "(?!)"


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


def mahalanobis_design(wildcards):
    """What Mahalanobis matching reads besides the scores: its covariates, how their missing values
    are handled and their variables; None for matching on the propensity score."""
    analysis = analysis_of(wildcards)
    if analysis.matching.distance != "mahalanobis":
        return None
    names = analysis.matching.mahalanobis_covariates(analysis.covariates)
    return {"covariates": list(names), "missing": analysis.missing,
            "variables": {name: variable.to_dict() for name, variable in STUDY.variables_of(names).items()}}


rule match:
    """Matching with the analysis's method (nearest, optimal, full; MatchIt semantics)."""
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
        mahalanobis=mahalanobis_design,
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


# A weighting design's analyses are weighted instead of matched; both rules write the same files.
ruleorder: weight > match


rule weight:
    """Inverse-probability or overlap weights from the propensity score (design: weighting)."""
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
    wildcard_constraints:
        analysis=WEIGHTED_ANALYSES,
    params:
        weighting=analysis_setting("weighting"),
    log:
        "results/logs/{analysis}/weight.log",
    benchmark:
        "results/benchmarks/{analysis}/weight.tsv"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=15,
    conda:
        "../../envs/pipeline.yaml"
    script:
        "../scripts/weight.py"


rule balance:
    """Covariate balance before and after matching or weighting, Table 1, Love and overlap plots."""
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
        shareable_overlap_plot="results/shareable/{analysis}/ps_overlap.png",
    params:
        covariates=analysis_setting("covariates"),
        missing=analysis_setting("missing"),
        variables=analysis_variables,
        arm_labels=arm_labels,
        min_cell=STUDY.report.min_cell,
        design=analysis_setting("design"),
        estimand=analysis_setting("estimand"),
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
    """One share of the median-difference bootstrap (survival.bootstrap_jobs > 1); it resamples the
    matched sets (or the patients without them) as matched.parquet and pairs.parquet say."""
    input:
        cohort="results/{analysis}/cohort.parquet",
        matched="results/{analysis}/matched.parquet",
        pairs="results/{analysis}/pairs.parquet",
        matching="results/{analysis}/matching.json",
    output:
        temp("results/{analysis}/bootstrap/{job}.npy"),
    params:
        survival=analysis_setting("survival"),
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
        shareable_km_plot="results/shareable/{analysis}/km.png",
    params:
        survival=analysis_setting("survival"),
        seed=STUDY.seed,
        time_unit=STUDY.time_unit,
        min_cell=STUDY.report.min_cell,
        rounding=STUDY.report.rounding,
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
