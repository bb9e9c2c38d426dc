# Sub-second jobs: on a cluster they run on the submitting node instead of waiting in the queue.
localrules:
    analysis_report,
    index_report,
    manifest,


rule analysis_report:
    """Self-contained HTML report of one analysis."""
    input:
        attrition="results/{analysis}/cohort.json",
        propensity="results/{analysis}/propensity.json",
        matching="results/{analysis}/matching.json",
        balance="results/{analysis}/balance.csv",
        balance_summary="results/{analysis}/balance.json",
        table1="results/{analysis}/table1.csv",
        survival="results/{analysis}/survival.json",
        km_plot="results/{analysis}/km.png",
        love_plot="results/{analysis}/love_plot.png",
        overlap_plot="results/{analysis}/ps_overlap.png",
        ingest="results/registry/ingest_summary.json",
    output:
        report(
            "results/{analysis}/report.html",
            category="Analyses",
            labels={"analysis": "{analysis}", "file": "report"},
        ),
    params:
        name=lambda wc: wc.analysis,
        analysis=lambda wc: STUDY.analyses[wc.analysis].to_dict(),
        context=report_context,
    log:
        "results/logs/{analysis}/report.log",
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    conda:
        "../../envs/pipeline.yaml"
    script:
        "../scripts/analysis_report.py"


rule index_report:
    """Index of every analysis with its headline comparison."""
    input:
        survival=expand("results/{analysis}/survival.json", analysis=ANALYSES),
        attrition=expand("results/{analysis}/cohort.json", analysis=ANALYSES),
        matching=expand("results/{analysis}/matching.json", analysis=ANALYSES),
        balance_summary=expand("results/{analysis}/balance.json", analysis=ANALYSES),
        reports=expand("results/{analysis}/report.html", analysis=ANALYSES),
        ingest="results/registry/ingest_summary.json",
    output:
        index=report("results/report.html", category="Index"),
        forest_table="results/forest.csv",
        interaction_table="results/interaction.csv",
        forest_plot=report("results/forest.png", category="Index", caption="../report/forest.rst"),
        **DESIGN_FOREST,
    params:
        analyses=index_analyses(),
        context=index_context(),
    log:
        "results/logs/index_report.log",
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    conda:
        "../../envs/pipeline.yaml"
    script:
        "../scripts/index_report.py"


rule manifest:
    """SHA-256 of every result file and every published number, for comparing sites and runs."""
    input:
        [f for f in site_outputs() if f != "results/manifest.json"],
    output:
        "results/manifest.json",
    log:
        "results/logs/manifest.log",
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    conda:
        "../../envs/pipeline.yaml"
    script:
        "../scripts/manifest.py"
