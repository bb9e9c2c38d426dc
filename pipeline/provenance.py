"""What a reader needs to reproduce a result: input file hashes, config hash, code and package versions."""
from __future__ import annotations

import hashlib
import json
import subprocess
from importlib import metadata
from pathlib import Path

PACKAGES = ["numpy", "pandas", "scipy", "statsmodels", "scikit-learn", "lifelines", "causalml", "snakemake",
            "matplotlib", "pyarrow"]


def sha256_file(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def config_hash(config: dict) -> str:
    canonical = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def git_commit(repo: Path) -> str:
    try:
        out = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=10, check=True)
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown (not a git checkout)"


def package_versions() -> dict[str, str]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def study_provenance(study: dict, ingest_summary: dict, repo: Path) -> dict:
    """Inputs as ingest read them (the hash of the bytes read, not of the file as it is now)."""
    centers = ingest_summary["centers"]
    inputs = [{"center": cid, "path": c["path"], "sha256": centers[cid]["sha256"], "rows": centers[cid]["rows_read"]}
              for cid, c in study["registry"]["centers"].items()]
    return {"inputs": inputs, "config_sha256": config_hash(study), "git_commit": git_commit(repo),
            "seed": study["seed"], "packages": package_versions()}
