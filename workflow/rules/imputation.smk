# Multiple imputation (missing: multiple_imputation). Imputation <i> of analysis <a> is the internal
# analysis "<a>/imputations/<i>" (common.smk: IMPUTATIONS): rule impute completes <a>'s cohort, and
# the usual rules (propensity, match or weight, balance, survival) analyse it in
# results/<a>/imputations/<i>/. The rules below make <a>'s own results from its imputations'.


def _names_pattern(names):
    """A wildcard constraint matching exactly these names ("(?!)" matches nothing)."""
    return "|".join(map(re.escape, names)) or "(?!)"


IMPUTED = {name: analysis for name, analysis in STUDY.analyses.items() if analysis.imputed}
IMPUTED_ANALYSES = _names_pattern(IMPUTED)
WITHIN_ANALYSES = _names_pattern(n for n, a in IMPUTED.items() if a.imputation.approach == "within")
IMPUTATION_ANALYSES = _names_pattern(IMPUTATIONS)
ACROSS_IMPUTATIONS = _names_pattern(n for n, (parent, _) in IMPUTATIONS.items()
                                    if IMPUTED[parent].imputation.approach == "across")


def imputation_files(name):
    """Every imputation's file `name` of the job's (imputed) analysis."""
    return lambda wc: [f"results/{wc.analysis}/imputations/{i}/{name}"
                       for i in range(1, IMPUTED[wc.analysis].imputation.m + 1)]


def parent_file(name):
    """The file `name` of the analysis the job's imputation belongs to."""
    return lambda wc: f"results/{IMPUTATIONS[wc.analysis][0]}/{name}"


def imputation_setting(name):
    return lambda wc: getattr(IMPUTED[wc.analysis].imputation, name)


# A copy: on a cluster it runs on the submitting node.
localrules:
    shared_match,


ruleorder: impute > cohort
ruleorder: pool_propensity > propensity
ruleorder: stack_matches > weight
ruleorder: stack_matches > match
ruleorder: shared_match > weight
ruleorder: shared_match > match
ruleorder: pool_balance > balance
ruleorder: pool_survival > survival


rule impute:
    """One imputation of the analysis cohort's missing covariates (chained equations, seeded by the
    study seed and the imputation's number)."""
    input:
        cohort=parent_file("cohort.parquet"),
        attrition=parent_file("cohort.json"),
    output:
        cohort="results/{analysis}/cohort.parquet",
        attrition="results/{analysis}/cohort.json",
    wildcard_constraints:
        analysis=IMPUTATION_ANALYSES,
    params:
        covariates=analysis_setting("covariates"),
        variables=analysis_variables,
        imputation=analysis_setting("imputation"),
        seed=STUDY.seed,
        index=lambda wc: IMPUTATIONS[wc.analysis][1],
    log:
        "results/logs/{analysis}/impute.log",
    benchmark:
        "results/benchmarks/{analysis}/impute.tsv"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    conda:
        "../../envs/pipeline.yaml"
    script:
        "../scripts/impute.py"


rule pool_propensity:
    """The imputed analysis's propensity scores: each patient's averaged over the imputations."""
    input:
        cohort="results/{analysis}/cohort.parquet",
        scores=imputation_files("propensity.parquet"),
        summaries=imputation_files("propensity.json"),
    output:
        scores="results/{analysis}/propensity.parquet",
        summary="results/{analysis}/propensity.json",
    wildcard_constraints:
        analysis=IMPUTED_ANALYSES,
    params:
        design=analysis_setting("propensity_design"),
        approach=imputation_setting("approach"),
    log:
        "results/logs/{analysis}/pool_propensity.log",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../../envs/pipeline.yaml"
    script:
        "../scripts/pool_propensity.py"


rule stack_matches:
    """Approach within: the imputations' matched (or weighted) samples, stacked."""
    input:
        cohort="results/{analysis}/cohort.parquet",
        matched=imputation_files("matched.parquet"),
        pairs=imputation_files("pairs.parquet"),
        summaries=imputation_files("matching.json"),
    output:
        matched="results/{analysis}/matched.parquet",
        pairs="results/{analysis}/pairs.parquet",
        matched_csv="results/{analysis}/matched.csv",
        pairs_csv="results/{analysis}/pairs.csv",
        summary="results/{analysis}/matching.json",
    wildcard_constraints:
        analysis=WITHIN_ANALYSES,
    log:
        "results/logs/{analysis}/stack_matches.log",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../../envs/pipeline.yaml"
    script:
        "../scripts/stack_matches.py"


rule shared_match:
    """Approach across: every imputation uses the analysis's one matched (or weighted) sample, made
    from the averaged propensity scores."""
    input:
        matched=parent_file("matched.parquet"),
        pairs=parent_file("pairs.parquet"),
        matched_csv=parent_file("matched.csv"),
        pairs_csv=parent_file("pairs.csv"),
        summary=parent_file("matching.json"),
    output:
        matched="results/{analysis}/matched.parquet",
        pairs="results/{analysis}/pairs.parquet",
        matched_csv="results/{analysis}/matched.csv",
        pairs_csv="results/{analysis}/pairs.csv",
        summary="results/{analysis}/matching.json",
    wildcard_constraints:
        analysis=ACROSS_IMPUTATIONS,
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    run:
        import shutil

        for key in ("matched", "pairs", "matched_csv", "pairs_csv", "summary"):
            shutil.copyfile(input[key], output[key])


rule pool_balance:
    """The imputed analysis's balance: averaged over the imputations, with each SMD's range."""
    input:
        cohort="results/{analysis}/cohort.parquet",
        scores="results/{analysis}/propensity.parquet",
        balance=imputation_files("balance.csv"),
        summaries=imputation_files("balance.json"),
        matched=imputation_files("matched.parquet"),
    output:
        balance="results/{analysis}/balance.csv",
        table1="results/{analysis}/table1.csv",
        summary="results/{analysis}/balance.json",
        love_plot=report("results/{analysis}/love_plot.png", category="Balance", subcategory="{analysis}",
                         labels={"analysis": "{analysis}", "figure": "Love plot"}),
        overlap_plot=report("results/{analysis}/ps_overlap.png", category="Balance", subcategory="{analysis}",
                            labels={"analysis": "{analysis}", "figure": "propensity-score overlap"}),
        shareable_overlap_plot="results/shareable/{analysis}/ps_overlap.png",
    wildcard_constraints:
        analysis=IMPUTED_ANALYSES,
    params:
        covariates=analysis_setting("covariates"),
        variables=analysis_variables,
        arm_labels=arm_labels,
        min_cell=STUDY.report.min_cell,
        design=analysis_setting("design"),
        estimand=analysis_setting("estimand"),
    log:
        "results/logs/{analysis}/pool_balance.log",
    threads: 1
    resources:
        mem_mb=4000,
        runtime=15,
    conda:
        "../../envs/pipeline.yaml"
    script:
        "../scripts/pool_balance.py"


rule pool_survival:
    """The imputed analysis's survival comparison: the imputations' pooled (Rubin's rules)."""
    input:
        cohort="results/{analysis}/cohort.parquet",
        survival=imputation_files("survival.json"),
        matched=imputation_files("matched.parquet"),
    output:
        survival="results/{analysis}/survival.json",
        km_plot=report("results/{analysis}/km.png", category="Survival", subcategory="{analysis}",
                       labels={"analysis": "{analysis}", "figure": "Kaplan-Meier"}),
        shareable_km_plot="results/shareable/{analysis}/km.png",
    wildcard_constraints:
        analysis=IMPUTED_ANALYSES,
    params:
        survival=analysis_setting("survival"),
        approach=imputation_setting("approach"),
        time_unit=STUDY.time_unit,
        min_cell=STUDY.report.min_cell,
        rounding=STUDY.report.rounding,
        relevant_hr=STUDY.report.relevant_hr,
        arm_labels=arm_labels,
        endpoint=STUDY.outcome.name,
    log:
        "results/logs/{analysis}/pool_survival.log",
    threads: 1
    resources:
        mem_mb=4000,
        runtime=15,
    conda:
        "../../envs/pipeline.yaml"
    script:
        "../scripts/pool_survival.py"
