import copy
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
