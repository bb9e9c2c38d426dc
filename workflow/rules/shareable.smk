# The shareable tier (results/shareable/): what a site sends to the consortium. Rule disclose turns
# every exact aggregate of the study into its shareable form at once (pipeline.report.disclosure:
# small counts, complementary suppression across tables and analyses, rounding); the same renderers
# as the site-internal reports then draw the shareable reports, tables and figures from it. The
# figures drawn from patient-level data (Kaplan-Meier, propensity-score overlap) are written by
# rules survival and balance.
SHARED = "results/shareable"

localrules:
    shareable_analysis_report,
    shareable_index,
    shareable_manifest,


def exact_results(name):
    return expand(f"results/{{analysis}}/{name}", analysis=ANALYSES)


rule disclose:
    """The shareable form of every aggregate result (results/disclosure/)."""
    input:
        ingest="results/registry/ingest_summary.json",
        attrition=exact_results("cohort.json"),
        matching=exact_results("matching.json"),
        survival=exact_results("survival.json"),
        balance_summary=exact_results("balance.json"),
        propensity=exact_results("propensity.json"),
        balance=exact_results("balance.csv"),
        table1=exact_results("table1.csv"),
    output:
        registry="results/disclosure/registry.json",
        analyses=expand("results/disclosure/{analysis}.json", analysis=ANALYSES),
    params:
        names=ANALYSES,
        origins={name: analysis.derived_from for name, analysis in STUDY.analyses.items()},
        min_cell=STUDY.report.min_cell,
        rounding=STUDY.report.rounding,
    log:
        "results/logs/disclose.log",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../../envs/pipeline.yaml"
    script:
        "../scripts/disclose.py"


rule shareable_analysis_report:
    """One analysis's shareable report, Table 1, balance table and Love plot."""
    input:
        disclosed="results/disclosure/{analysis}.json",
        ingest="results/disclosure/registry.json",
        km_plot=f"{SHARED}/{{analysis}}/km.png",
        overlap_plot=f"{SHARED}/{{analysis}}/ps_overlap.png",
    output:
        report=f"{SHARED}/{{analysis}}/report.html",
        table1=f"{SHARED}/{{analysis}}/table1.csv",
        balance=f"{SHARED}/{{analysis}}/balance.csv",
        love_plot=f"{SHARED}/{{analysis}}/love_plot.png",
    params:
        name=lambda wc: wc.analysis,
        analysis=lambda wc: STUDY.analyses[wc.analysis].to_dict(),
        context=report_context,
    log:
        "results/logs/{analysis}/shareable_report.log",
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    conda:
        "../../envs/pipeline.yaml"
    script:
        "../scripts/analysis_report.py"


SHAREABLE_DESIGN_FOREST = {key: f"{SHARED}/{Path(str(path)).name}" for key, path in DESIGN_FOREST.items()}


rule shareable_index:
    """The shareable index, forest plot and tables."""
    input:
        disclosed=expand("results/disclosure/{analysis}.json", analysis=ANALYSES),
        ingest="results/disclosure/registry.json",
        reports=expand(f"{SHARED}/{{analysis}}/report.html", analysis=ANALYSES),
    output:
        index=f"{SHARED}/report.html",
        forest_table=f"{SHARED}/forest.csv",
        interaction_table=f"{SHARED}/interaction.csv",
        forest_plot=f"{SHARED}/forest.png",
        **SHAREABLE_DESIGN_FOREST,
    params:
        analyses=index_analyses(),
        context=index_context(),
    log:
        "results/logs/shareable_index.log",
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    conda:
        "../../envs/pipeline.yaml"
    script:
        "../scripts/index_report.py"


def shareable_files():
    names = ["report.html", "table1.csv", "balance.csv", "km.png", "love_plot.png", "ps_overlap.png"]
    per_analysis = expand(f"{SHARED}/{{analysis}}/{{name}}", analysis=ANALYSES, name=names)
    index = [f"{SHARED}/{name}" for name in ("report.html", "forest.csv", "interaction.csv", "forest.png")]
    return per_analysis + index + list(SHAREABLE_DESIGN_FOREST.values())


rule shareable_manifest:
    """The shareable numbers (a suppressed one as its marker) and the hashes of the shareable files."""
    input:
        registry="results/disclosure/registry.json",
        disclosed=expand("results/disclosure/{analysis}.json", analysis=ANALYSES),
        files=shareable_files(),
    output:
        f"{SHARED}/manifest.json",
    log:
        "results/logs/shareable_manifest.log",
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    conda:
        "../../envs/pipeline.yaml"
    script:
        "../scripts/manifest.py"
