"""The manifest/compare tool: readable differences, report timestamps ignored."""
import json

import pytest

from pipeline.report.manifest import build_manifest, compare, main


@pytest.fixture
def results(tmp_path):
    root = tmp_path / "results"
    (root / "registry").mkdir(parents=True)
    (root / "registry/ingest_summary.json").write_text(json.dumps(
        {"centers": {"a": {"rows_read": 10, "accepted": 9, "quarantined": 1}}}))
    analysis = root / "sub"
    analysis.mkdir()
    (analysis / "survival.json").write_text(json.dumps(
        {"treated": {"median": 16.7, "median_upper": None}, "hr": 0.9, "time_unit": "months"}))
    (analysis / "cohort.json").write_text(json.dumps({"n_final": 88, "steps": [{"criterion": "x", "after": 88}]}))
    (analysis / "balance.csv").write_text("variable,smd_before,smd_after,flag\nage,0.5,0.05,\n")
    (analysis / "report.html").write_text('<p>x</p><p class="muted" id="run-timestamp">2026-01-01</p>')
    return root


def test_identical_results_agree(results):
    assert compare(build_manifest(results), build_manifest(results)) == []


def test_moved_numbers_are_named_old_to_new(results):
    old = build_manifest(results)
    survival = results / "sub/survival.json"
    survival.write_text(survival.read_text().replace("16.7", "18.5"))
    balance = results / "sub/balance.csv"
    balance.write_text(balance.read_text().replace("0.05", "0.12"))
    lines = compare(old, build_manifest(results), numbers_only=True)
    assert lines == ["sub/balance/age/smd_after: 0.05 -> 0.12", "sub/survival/treated/median: 16.7 -> 18.5"]
    assert [line.split(":")[0] for line in compare(old, build_manifest(results))[2:]] == [
        "file sub/balance.csv", "file sub/survival.json"]


def test_tolerance_and_nulls(results):
    old = build_manifest(results)
    new = json.loads(json.dumps(old))
    new["numbers"]["sub/survival/hr"] = 0.9 * (1 + 1e-12)
    assert compare(old, new, rtol=1e-9) == []
    assert compare(old, new) != []
    new["numbers"]["sub/survival/treated/median_upper"] = 30.0
    assert compare(old, new, rtol=1e-9) == ["sub/survival/treated/median_upper: None -> 30.0"]


def test_report_timestamp_does_not_change_the_hash(results):
    old = build_manifest(results)
    report = results / "sub/report.html"
    report.write_text(report.read_text().replace("2026-01-01", "2027-12-31"))
    assert compare(old, build_manifest(results)) == []
    report.write_text(report.read_text().replace("<p>x</p>", "<p>y</p>"))
    assert compare(old, build_manifest(results)) == [f"file sub/report.html: {old['files']['sub/report.html'][:12]} "
                                                      f"-> {build_manifest(results)['files']['sub/report.html'][:12]}"]


def test_cli_exit_codes(results, tmp_path, capsys):
    assert main(["write", str(results), "-o", str(tmp_path / "m.json")]) == 0
    assert main(["compare", str(tmp_path / "m.json"), str(results)]) == 0
    (results / "registry/ingest_summary.json").write_text(json.dumps(
        {"centers": {"a": {"rows_read": 10, "accepted": 8, "quarantined": 2}}}))
    assert main(["compare", str(tmp_path / "m.json"), str(results)]) == 1
    out = capsys.readouterr().out
    assert "registry/centers/a/accepted: 9 -> 8" in out


def test_not_estimable_analysis_gives_its_flags_not_its_placeholder_table(results):
    record = {"estimable": False, "reason": "no treated patient has a control within the caliper", "stage": "match"}
    analysis = results / "sub__narrow"
    analysis.mkdir()
    for stem in ("matching", "survival"):
        (analysis / f"{stem}.json").write_text(json.dumps(record))
    (analysis / "balance.csv").write_text(f"estimable,reason\nFalse,{record['reason']}\n")
    numbers = build_manifest(results)["numbers"]
    assert numbers["sub__narrow/matching/estimable"] is False and numbers["sub__narrow/survival/estimable"] is False
    assert not [key for key in numbers if key.startswith("sub__narrow/balance")]
    assert numbers["sub/balance/age/smd_after"] == 0.05
