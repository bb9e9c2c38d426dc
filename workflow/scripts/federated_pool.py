"""Rule federated_pool: the coordinating site's pooled report of one analysis."""
from pathlib import Path

from pipeline.federated.pool import pool, read_bundles
from pipeline.federated.report import write_pooled
from pipeline.io import run_script


def main(smk):
    bundles = read_bundles(smk.input)
    result, curves = pool(bundles)
    write_pooled(result, curves, bundles, Path(smk.output.pooled).parent)


run_script(main, snakemake, propagate=False)  # noqa: F821 (a not-estimable site is part of the pooled result)
