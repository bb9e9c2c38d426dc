"""The reports of a real run of a weighted design (matching with replacement), with labels full of
markup and mathtext characters, a named endpoint and a variant that cannot be estimated."""
import csv
import html
import json

import pytest
import yaml

from tests.conftest import copy_demo, run_snakemake
from tests.test_report_pages import table_rows, text_of

pytestmark = pytest.mark.slow
TREATED, CONTROL = "resection $1 <a>", "IAT & $co$"


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    folder = copy_demo(tmp_path_factory.mktemp("labels") / "study")
    config = yaml.safe_load((folder / "config.yaml").read_text())
    config["outcome"]["name"] = "event-free survival"
    config["registry"]["variables"]["age"]["label"] = "Age <years> $ & more"
    analysis = config["analyses"]["asymptomatic_high_burden"]
    analysis["treatment"]["labels"] = {"treated": TREATED, "control": CONTROL}
    analysis["matching"].update(replace=True, ratio=2, caliper=None)
    analysis["survival"].update(bootstrap=50, km_bands=True)
    analysis["sensitivity"] = {"matching": {"caliper": [1e-9]}}
    config["analyses"] = {"weighted": analysis}
    (folder / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    result = run_snakemake(folder, folder / "config.yaml", "results/report.html")   # the reports, not the manifest
    assert result.returncode == 0, result.stderr[-4000:]
    return folder / "results"


def test_weighted_report_reads_as_a_weighted_design(study):
    page = (study / "weighted/report.html").read_text()
    headline = text_of(page, "headline")
    assert headline.startswith(f"Median event-free survival: {TREATED} ")
    assert "robust score test p" in headline and "log-rank" not in headline
    assert "<a>" not in page and "resection $1 &lt;a&gt;" in page
    rows = table_rows(page, "survival")
    assert "Effective sample size (Kish)" in rows and "Events, weighted" in rows
    assert "not all 1" in text_of(page, "weights-note")
    assert any(k.startswith("Robust score test of the Cox model with matching weights, clustered on patients")
               for k in table_rows(page, "effects"))
    assert "Age <years> $ & more" in table_rows(page, "table1")
    assert "event-free survival was estimated by weighted Kaplan-Meier" in text_of(page, "methods")


def test_not_estimable_variant_is_a_result_everywhere(study):
    variant = "weighted__caliper-1e-09"
    page = (study / variant / "report.html").read_text()
    reason = json.loads((study / variant / "survival.json").read_text())["reason"]
    assert text_of(page, "headline").startswith(f"Not estimable: {reason}")
    assert "Not estimable" in text_of(page, "flow")
    index = (study / "report.html").read_text()
    assert html.escape(reason, quote=False) in index
    with open(study / "forest.csv", newline="") as handle:
        forest = {row["analysis"]: row for row in csv.DictReader(handle)}
    assert forest[variant]["estimable"] == "False" and forest[variant]["reason"] == reason
    assert forest["weighted"]["estimable"] == "True" and float(forest["weighted"]["hr"]) > 0
