"""The documentation stands alone and follows the schema."""
import re

from pipeline.config.validate import load_schema
from pipeline.config.docs import render
from tests.conftest import REPO


def test_config_page_is_generated_from_the_schema():
    assert (REPO / "docs/config.md").read_text() == render(load_schema()), (
        "docs/config.md is stale: python -m pipeline.config.docs > docs/config.md")


def test_every_schema_key_is_documented():
    page = (REPO / "docs/config.md").read_text()
    for key in ("registry.centers.<name>.read.sep", "analyses.<name>.matching.caliper",
                "analyses.<name>.survival.rmst_tau", "analyses.<name>.min_days_at_risk", "report.min_cell"):
        assert f"`{key}`" in page, key


def test_docs_link_only_to_files_in_the_repository():
    for page in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
        for target in re.findall(r"\]\(([^)#]+)", page.read_text()):
            if not target.startswith("http"):
                assert (page.parent / target).exists(), f"{page.name} links to missing {target}"
        assert "CONTRACT.md" not in page.read_text() and "../shared" not in page.read_text()
