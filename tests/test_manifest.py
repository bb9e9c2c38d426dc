"""The manifest/compare tool: readable differences, report timestamps ignored."""
import json

import pytest

from pipeline.report.manifest import build_manifest, compare, main, write_shareable_manifest


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


@pytest.fixture
def shareable(tmp_path):
    """A shareable tier as rule shareable_manifest reads it: the disclosed registry and analysis, and
    one shareable file."""
    disclosure, shared = tmp_path / "disclosure", tmp_path / "shareable"
    disclosure.mkdir()
    (shared / "sub").mkdir(parents=True)
    (disclosure / "registry.json").write_text(json.dumps(
        {"centers": {"a": {"rows_read": 10, "accepted": "suppressed", "quarantined": "<5"}}}))
    (disclosure / "sub.json").write_text(json.dumps({
        "attrition": {"estimable": True, "n_treated": "<5", "n_control": 40},
        "matching": {"estimable": True, "n_treated_matched": "<5"},
        "survival": {"estimable": True, "treated": {"n": "<5", "median": "suppressed",
                                                    "survival_at_ci": {"12": ["suppressed", "suppressed"]}},
                     "hr": 0.8},
        "balance": [{"variable": "age", "smd_before": "suppressed", "smd_after": 0.05, "flag": ""}]}))
    (shared / "sub/table1.csv").write_text("variable,suppressed\nn,<5\n")
    return disclosure, shared


def write_shareable(shareable, output):
    disclosure, shared = shareable
    write_shareable_manifest(disclosure / "registry.json", [disclosure / "sub.json"], shared,
                             [shared / "sub/table1.csv"], output)
    return output


def test_shareable_manifest_keeps_the_markers_under_the_exact_keys(shareable, tmp_path):
    manifest = json.loads(write_shareable(shareable, tmp_path / "m.json").read_text())
    numbers = manifest["numbers"]
    assert numbers["registry/centers/a/quarantined"] == "<5" and numbers["registry/centers/a/rows_read"] == 10
    assert numbers["sub/cohort/n_treated"] == "<5" and numbers["sub/survival/treated/median"] == "suppressed"
    assert numbers["sub/survival/treated/survival_at_ci/12/1"] == "suppressed"
    assert numbers["sub/balance/age/smd_before"] == "suppressed" and numbers["sub/balance/age/smd_after"] == 0.05
    assert list(manifest["files"]) == ["sub/table1.csv"]


def test_a_suppressed_number_agrees_only_with_a_suppressed_one(shareable, tmp_path, capsys):
    reference = write_shareable(shareable, tmp_path / "reference.json")
    site = json.loads(reference.read_text())
    assert compare(json.loads(reference.read_text()), site) == []
    site["numbers"]["sub/cohort/n_treated"] = 3
    site["numbers"]["sub/survival/hr"] = "suppressed"
    site["numbers"]["registry/centers/a/quarantined"] = "suppressed"
    (tmp_path / "site.json").write_text(json.dumps(site))
    assert main(["compare", str(reference), str(tmp_path / "site.json"), "--numbers-only"]) == 1
    out = capsys.readouterr().out
    assert "sub/cohort/n_treated: <5 -> 3 (suppressed on one side only)" in out
    assert "sub/survival/hr: 0.8 -> suppressed (suppressed on one side only)" in out
    assert "registry/centers/a/quarantined: <5 -> suppressed\n" in out
    assert "3 difference(s)" in out


def test_a_shareable_folder_compares_by_its_manifest(shareable, tmp_path):
    disclosure, shared = shareable
    write_shareable(shareable, shared / "manifest.json")
    assert main(["compare", str(shared), str(shared / "manifest.json")]) == 0


@pytest.mark.parametrize("content", [None, "{not json", b"\xff\xfe"])
def test_compare_names_a_missing_or_unreadable_manifest_without_a_traceback(tmp_path, capsys, content):
    good = tmp_path / "good.json"
    good.write_text(json.dumps({"numbers": {}, "files": {}}))
    bad = tmp_path / "bad.json"
    if isinstance(content, str):
        bad.write_text(content)
    elif content is not None:
        bad.write_bytes(content)
    assert main(["compare", str(good), str(bad)]) == 2
    error = capsys.readouterr().err
    assert str(bad) in error and "Traceback" not in error
