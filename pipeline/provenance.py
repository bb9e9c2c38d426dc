"""What a reader needs to reproduce a result: input file hashes, the hash of the settings it used, code and
package versions."""
from __future__ import annotations

import functools
import hashlib
import json
import subprocess
from importlib import metadata
from pathlib import Path

from pipeline.config.settings import ReportContext

PACKAGES = ["numpy", "pandas", "scipy", "statsmodels", "scikit-learn", "causalml", "snakemake", "matplotlib",
            "pyarrow"]


def sha256_file(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def settings_hash(settings: dict) -> str:
    """SHA-256 of settings (plain values) as canonical JSON: sorted keys, no whitespace."""
    canonical = json.dumps(settings, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def git_commit(repo: Path) -> str:
    try:
        out = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=10, check=True)
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown (not a git checkout)"


def package_versions() -> dict[str, str]:
    return dict(_installed_versions())


@functools.cache
def _installed_versions() -> tuple[tuple[str, str], ...]:
    """Looked up once per process (the job server's forks inherit them)."""
    versions = []
    for name in PACKAGES:
        try:
            versions.append((name, metadata.version(name)))
        except metadata.PackageNotFoundError:
            versions.append((name, "not installed"))
    return tuple(versions)


def analysis_provenance(settings: dict, context: ReportContext, ingest_summary: dict, repo: Path) -> dict:
    """What one analysis's report gives to reproduce it. ``settings``: the settings it used, as its
    report rule's parameters give them ({"analysis": ..., "context": ...}), so their hash changes with
    this analysis's settings only. The inputs are the extracts as ingest read them (the hash of the
    bytes read, not of the file as it is now)."""
    centers = ingest_summary["centers"]
    inputs = [{"center": center, "path": path, "sha256": centers[center]["sha256"],
               "rows": centers[center]["rows_read"]} for center, path in context.centers.items()]
    return {"inputs": inputs, "settings_sha256": settings_hash(settings), "git_commit": git_commit(repo),
            "seed": context.seed, "packages": package_versions()}
