"""A non-editable install: the wheel holds every file of the package, its templates and config schema
included, and the installed package renders the same report as the checkout."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from pipeline.config.validate import load_schema
from tests.conftest import REPO
from tests.test_report_pages import images, render, results, settings  # noqa: F401 (images is a fixture)

pytestmark = pytest.mark.slow

# Runs with the unpacked wheel first on sys.path, so `pipeline` is imported from it, not from the
# checkout (which is on sys.path too, for the test inputs in tests/).
RENDER_FROM_WHEEL = """
import json, sys
wheel, repo, images = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
sys.path[:0] = [wheel, repo]
import pipeline
from pipeline.config.validate import load_schema
from tests.test_report_pages import render, results, settings
print(json.dumps({"package": pipeline.__file__, "schema": load_schema(),
                  "page": render(settings(), results(), images)}))
"""


def build_wheel(tmp_path: Path) -> Path:
    """`pip wheel` of a clean copy of the package (building in the checkout would leave build/ there,
    whose stale files could end up in a later wheel), offline, with the environment's setuptools."""
    source = tmp_path / "source"
    source.mkdir()
    shutil.copy(REPO / "pyproject.toml", source)
    shutil.copytree(REPO / "pipeline", source / "pipeline", ignore=shutil.ignore_patterns("__pycache__"))
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                             "--disable-pip-version-check", "--quiet", "--wheel-dir", str(tmp_path / "dist"),
                             str(source)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-4000:]
    (wheel,) = (tmp_path / "dist").glob("*.whl")
    return wheel


def package_files() -> set[str]:
    return {path.relative_to(REPO).as_posix() for path in (REPO / "pipeline").rglob("*")
            if path.is_file() and "__pycache__" not in path.parts}


def without_timestamp(page: str) -> str:
    return re.sub(r'<p [^>]*id="run-timestamp">.*?</p>', "", page)


def test_wheel_holds_the_package_data_and_renders_a_report(tmp_path, images):  # noqa: F811
    wheel = build_wheel(tmp_path)
    unpacked = tmp_path / "unpacked"
    with zipfile.ZipFile(wheel) as archive:
        contents = set(archive.namelist())
        archive.extractall(unpacked)
    files = package_files()
    assert [name for name in files if not name.endswith(".py")], "the package has data files: templates, schema"
    assert files - contents == set()

    result = subprocess.run([sys.executable, "-P", "-c", RENDER_FROM_WHEEL, str(unpacked), str(REPO),
                             json.dumps({key: str(path) for key, path in images.items()})],
                            capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-4000:]
    installed = json.loads(result.stdout)
    assert Path(installed["package"]).is_relative_to(unpacked)
    assert installed["schema"] == load_schema()
    page = installed["page"]
    assert 'id="headline"' in page
    assert without_timestamp(page) == without_timestamp(render(settings(), results(), images))
