"""Rule federated_bundle: the site's aggregate bundle of one analysis (results/federated/<analysis>.json)."""
from pathlib import Path

from pipeline.config.settings import Analysis, Variable
from pipeline.federated.bundle import site_bundle
from pipeline.io import read_json, read_parquet, run_script, upstream_not_estimable, write_json
from pipeline.provenance import git_commit


def main(smk):
    upstream = upstream_not_estimable(smk.input)
    frames = {}
    if upstream is None:
        frames = {"cohort": read_parquet(smk.input.cohort), "matched": read_parquet(smk.input.matched),
                  "pairs": read_parquet(smk.input.pairs)}
    bundle = site_bundle(
        settings=smk.params.settings, site=smk.params.site, seed=smk.params.seed, min_cell=smk.params.min_cell,
        cohort=frames.get("cohort"), matched=frames.get("matched"), pairs=frames.get("pairs"),
        cohort_summary=read_json(smk.input.attrition), matching_summary=read_json(smk.input.matching),
        survival=read_json(smk.input.survival),
        variables={name: Variable.from_dict(spec) for name, spec in smk.params.variables.items()},
        analysis=Analysis.from_dict(smk.params.analysis), code_version=git_commit(Path(smk.scriptdir).parents[1]),
        not_estimable=upstream)
    write_json(bundle, smk.output[0])


run_script(main, snakemake, propagate=False)  # noqa: F821 (writes a not-estimable site's bundle itself)
