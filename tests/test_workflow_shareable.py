"""The shareable tier end to end: a study with tiny subgroups, and every file a site would send
(results/shareable/) scanned for counts below min_cell and for patient-level content."""
import html
import json
import re

import pandas as pd
import pytest
import yaml

from conftest import copy_demo, run_snakemake
from pipeline.report.manifest import compare, main as manifest_main

pytestmark = pytest.mark.slow

MIN_CELL = 5
SMALL = set(range(1, MIN_CELL))
SHAREABLE_FILES = {"report.html", "table1.csv", "balance.csv", "km.png", "love_plot.png", "ps_overlap.png",
                   "forest.csv", "forest.png", "interaction.csv", "design_forest.csv", "design_forest.png",
                   "manifest.json"}
COUNT_KEY = re.compile(r"(^|/)(n|events|n_[a-z_]+|rows_read|accepted|quarantined|before|after|excluded)$"
                       r"|/(reasons|missing|missing_by_variable)/[^/]+$")
NOT_PATIENT_COUNTS = ("/median_difference/", "/settings/", "/e_value/", "/test/")


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """Center A alone, with grade as a subgroup: grade G3 holds 3 treated and 7 control patients
    (one covariate, so that the tiny subgroup is matched and compared)."""
    folder = copy_demo(tmp_path_factory.mktemp("shareable") / "study")
    config = yaml.safe_load((folder / "config.yaml").read_text())
    analysis = config["analyses"]["all_patients"]
    analysis.update(cohort=["center == 'center_a'"], covariates=["age"],
                    subgroups=["grade"], sensitivity={"design": ["ipw_att"]},
                    survival={"landmarks": [12, 36], "ci": "log-log", "bootstrap": 50})
    config["analyses"] = {"center_a": analysis}
    config["report"]["min_cell"] = MIN_CELL
    (folder / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    result = run_snakemake(folder, folder / "config.yaml")
    assert result.returncode == 0, result.stderr[-4000:]
    return folder / "results"


def integers(text: str) -> set[int]:
    """The whole numbers standing alone in a text (not parts of decimals, names or dates)."""
    return {int(n) for n in re.findall(r"(?<![\w.\-/'])(\d+)(?![\w.%/'])", text)}


def page_text(path) -> str:
    page = re.sub(r"<style>.*?</style>|data:image/png;base64,[^\"]*", "", path.read_text(), flags=re.S)
    return html.unescape(re.sub(r"<[^>]+>", " | ", page))


def test_the_tiny_subgroup_is_there(study):
    cohort = json.loads((study / "center_a__grade_G3/cohort.json").read_text())
    assert 0 < cohort["n_treated"] < MIN_CELL


def test_only_shareable_files_are_shared(study):
    shared = [p for p in (study / "shareable").rglob("*") if p.is_file()]
    assert {p.name for p in shared} <= SHAREABLE_FILES
    ids = {i for i in pd.read_parquet(study / "registry/harmonized.parquet")["patient_id"] if not i.isdigit()}
    for path in shared:
        if path.suffix in (".html", ".csv", ".json"):
            text = path.read_text()
            assert not [i for i in ids if i in text], path
    exact = json.loads((study / "manifest.json").read_text())
    assert not [name for name in exact["files"] if name.startswith(("shareable/", "disclosure/"))]


def test_no_count_below_min_cell_in_the_shareable_manifest(study):
    numbers = json.loads((study / "shareable/manifest.json").read_text())["numbers"]
    counts = {key: value for key, value in numbers.items()
              if COUNT_KEY.search(key) and not any(part in key for part in NOT_PATIENT_COUNTS)}
    assert len(counts) > 100
    assert {key: value for key, value in counts.items() if value in SMALL} == {}
    assert "<5" in counts.values() and "suppressed" in counts.values()
    g3 = "center_a__grade_G3/survival/treated/"
    if f"{g3}median" in numbers:                      # survival estimable for the tiny arm
        assert numbers[f"{g3}median"] == "suppressed" and numbers[f"{g3}survival_at/12"] == "suppressed"


def test_no_count_below_min_cell_in_the_shareable_tables(study):
    shared = study / "shareable"
    for path in shared.glob("*/table1.csv"):
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
        if "estimable" in table:          # a not-estimable placeholder
            continue
        counts = table[table["statistic"].isin(["n", "n_percent"])]
        shown = pd.concat([counts["value"], counts["units"]])
        assert not [v for v in shown if v and float(v) in SMALL], path
        for (variable, level, stage), group in counts.groupby(["variable", "level", "stage"]):
            if variable != "n" and (group["suppressed"] != "").any():     # no SMD beside a suppressed cell
                assert (group["smd"] == "suppressed").all(), (path, variable, level, stage)
    for name, columns in (("forest.csv", ["n_treated", "n_control", "events_treated", "events_control"]),
                          ("design_forest.csv", ["n_treated", "n_control"])):
        table = pd.read_csv(shared / name, dtype=str, keep_default_na=False)
        assert not [v for column in columns for v in table[column] if v.isdigit() and int(v) in SMALL], name


def test_no_count_below_min_cell_in_the_shareable_reports(study):
    shared = study / "shareable"
    criteria = {step["criterion"] for path in study.glob("*/cohort.json")
                for step in json.loads(path.read_text()).get("steps", [])}
    for path in shared.glob("*/report.html"):
        text = page_text(path)
        flow = text[text.index("Patient flow"):text.index("Table 1:")]
        for criterion in criteria:
            flow = flow.replace(criterion, "")
        flow = re.sub(r"Rows in \d+ center extracts|Not estimable: .*", "", flow)
        assert not integers(flow) & SMALL, (path, flow)
        if "Survival in the" in text and "| n |" in text:
            survival = text[text.index("| n |"):text.index("| Median")]
            assert not integers(survival) & SMALL, (path, survival)
        power = re.search(r"two-sided alpha [\d.]+, ([^ ]+) events", text)
        assert power is None or power.group(1) in ("<5", "suppressed") or int(power.group(1)) >= MIN_CELL
    index = page_text(shared / "report.html")
    analyses = index[index.index("Review"):index.index("Forest plot")]
    cells = [cell for cell in analyses.split("|") if re.fullmatch(r"\s*\S+ / \S+\s*", cell)]
    assert cells and not integers(" ".join(cells)) & SMALL
    centers = index[index.index("Registry extracts"):index.index("Run timestamp")]
    assert not integers(re.sub(r"center_[a-z]", "", centers)) & SMALL


def test_a_site_compares_its_shareable_results_with_the_reference(study, tmp_path, capsys):
    reference = json.loads((study / "shareable/manifest.json").read_text())
    assert compare(reference, reference) == []
    assert manifest_main(["compare", str(study / "shareable"), str(study / "shareable/manifest.json")]) == 0
    key = next(k for k, v in reference["numbers"].items() if v == "<5")
    site = {**reference, "numbers": {**reference["numbers"], key: 3}}
    (tmp_path / "site.json").write_text(json.dumps(site))
    assert manifest_main(["compare", str(study / "shareable/manifest.json"), str(tmp_path / "site.json")]) == 1
    assert f"{key}: <5 -> 3 (suppressed on one side only)" in capsys.readouterr().out
