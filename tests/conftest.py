import copy
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
REFERENCE = REPO / "tests" / "reference"


@pytest.fixture(scope="session")
def demo_config_raw() -> dict:
    return yaml.safe_load((REPO / "config.yaml").read_text())


@pytest.fixture
def demo_config(demo_config_raw) -> dict:
    return copy.deepcopy(demo_config_raw)


def run_snakemake(study: Path, configfile: Path, *extra: str) -> subprocess.CompletedProcess:
    """The workflow as a user runs it: this repository's Snakefile on a study folder."""
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(study),
           "--configfile", str(configfile), "--cores", "2", *extra]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=1800)


def copy_demo(target: Path) -> Path:
    """A study folder holding the demo's config and extracts."""
    target.mkdir(parents=True)
    shutil.copytree(REPO / "resources", target / "resources")
    shutil.copy(REPO / "config.yaml", target / "config.yaml")
    return target


@pytest.fixture(scope="session")
def demo(tmp_path_factory) -> Path:
    """The demo study run once per session; returns its results folder."""
    study = copy_demo(tmp_path_factory.mktemp("demo") / "study")
    result = run_snakemake(study, study / "config.yaml")
    assert result.returncode == 0, result.stderr[-4000:]
    return study / "results"
