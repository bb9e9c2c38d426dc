"""Rules manifest and shareable_manifest: results/manifest.json (file hashes and published numbers), and
results/shareable/manifest.json (the shareable numbers and files)."""
from pathlib import Path

from pipeline.io import run_script
from pipeline.report.manifest import write_manifest, write_shareable_manifest


def main(smk):
    if "disclosed" in smk.input.keys():
        output = Path(smk.output[0])
        write_shareable_manifest(smk.input.registry, smk.input.disclosed, output.parent, smk.input.files, output)
    else:
        write_manifest(Path("results"), Path(smk.output[0]), [Path(f) for f in smk.input])


run_script(main, snakemake, propagate=False)  # noqa: F821 (reads not-estimable inputs itself)
