rule ingest_center:
    """Read one center's extract, map it onto the harmonized schema, quarantine bad rows."""
    input:
        center_extract,
    output:
        accepted=temp("results/registry/centers/{center}.parquet"),
        quarantine=temp("results/registry/centers/{center}.quarantine.parquet"),
        summary=temp("results/registry/centers/{center}.summary.json"),
    params:
        center=lambda wc: STUDY.registry.centers[wc.center].to_dict(),
        sha256=center_extract_sha256,
        variables=ingest_variables(),
        outcome=outcome_roles(),
        time_unit=STUDY.time_unit,
    log:
        "results/logs/ingest/{center}.log",
    benchmark:
        "results/benchmarks/ingest/{center}.tsv"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    conda:
        "../../envs/pipeline.yaml"
    script:
        "../scripts/ingest_center.py"


rule merge_registry:
    """Concatenate the centers, quarantine cross-center duplicates, write the registry files."""
    input:
        accepted=expand("results/registry/centers/{center}.parquet", center=CENTERS),
        quarantine=expand("results/registry/centers/{center}.quarantine.parquet", center=CENTERS),
        summary=expand("results/registry/centers/{center}.summary.json", center=CENTERS),
    output:
        harmonized="results/registry/harmonized.parquet",
        quarantine="results/registry/quarantine.csv",
        summary="results/registry/ingest_summary.json",
    params:
        id_variable=STUDY.registry.id_variable,
        id_scope=STUDY.registry.id_scope,
    log:
        "results/logs/merge_registry.log",
    benchmark:
        "results/benchmarks/merge_registry.tsv"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    conda:
        "../../envs/pipeline.yaml"
    script:
        "../scripts/merge_registry.py"
