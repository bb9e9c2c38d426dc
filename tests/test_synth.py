"""The demo registry generator: reproducibility of the committed extracts, calibration of the truth
to the published cohort (Mayo et al., Ann Surg Oncol 2011), and agreement with config.yaml."""
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from lifelines import KaplanMeierFitter

from pipeline import synth
from pipeline.errors import ConfigError
from tests.ingest_settings import as_center, as_outcome, as_variables

ROOT = Path(__file__).resolve().parents[1]
REGISTRY = ROOT / "resources" / "registry"
DAYS_PER_MONTH = 30.4375


@pytest.fixture(scope="module")
def truth() -> pd.DataFrame:
    return synth.simulate_patients()


@pytest.fixture(scope="module")
def demo_config() -> dict:
    return yaml.safe_load((ROOT / "config.yaml").read_text(encoding="utf-8"))


def _km(frame: pd.DataFrame) -> KaplanMeierFitter:
    months = (frame["last_followup_date"] - frame["treatment_date"]).dt.days / DAYS_PER_MONTH
    return KaplanMeierFitter().fit(months, frame["death"].astype(int))


# ---------------------------------------------------------------- committed files and config


def test_generator_reproduces_the_committed_extracts_byte_for_byte(tmp_path, truth):
    paths = synth.write_extracts(truth, tmp_path, synth.SEED)
    committed = sorted(p.name for p in REGISTRY.iterdir())
    assert sorted(p.name for p in paths.values()) == committed
    for key, path in paths.items():
        assert path.read_bytes() == (REGISTRY / path.name).read_bytes(), f"{key}: {path.name} differs"


def test_cli_writes_the_same_bytes_as_the_functions(tmp_path, truth):
    assert synth.main(["--out", str(tmp_path / "cli")]) == 0
    direct = synth.write_extracts(truth, tmp_path / "direct", synth.SEED)
    for path in direct.values():
        assert (tmp_path / "cli" / path.name).read_bytes() == path.read_bytes()


def test_config_yaml_centers_are_the_generator_mapping(demo_config):
    assert demo_config["registry"]["centers"] == synth.center_config("resources/registry")


def test_generator_variables_are_the_config_variables(demo_config):
    configured = {name: spec["type"] for name, spec in demo_config["registry"]["variables"].items()}
    assert synth.VARIABLE_TYPES == configured


def test_nine_formats_as_promised():
    entries = synth.center_config()
    suffixes = sorted(Path(e["path"]).suffix for e in entries.values())
    assert len(entries) == 9
    assert {".csv", ".tsv", ".xlsx", ".parquet", ".txt"} <= set(suffixes)
    reads = [e.get("read", {}) for e in entries.values()]
    assert any(r.get("sep") == ";" and r.get("decimal") == "," for r in reads)
    assert any(r.get("encoding") == "latin-1" for r in reads)
    assert any(r.get("date_format") == "%d.%m.%Y" for r in reads)
    assert any("date_formats" in r for r in reads)


def test_latin1_extract_is_not_utf8_and_holds_accents():
    raw = (REGISTRY / "center_c.csv").read_bytes()
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")
    text = raw.decode("latin-1")
    assert "Résection" in text and "date_décès" in text


def test_xlsx_has_no_run_dependent_timestamps():
    import zipfile
    with zipfile.ZipFile(REGISTRY / "center_d.xlsx") as archive:
        assert {info.date_time for info in archive.infolist()} == {synth.ZIP_EPOCH}
        core = archive.read("docProps/core.xml").decode()
    assert core.count("2011-07-01T09:00:00Z") == 2  # created and modified


# ---------------------------------------------------------------- calibration of the truth


def test_counts_match_the_published_cohort(truth):
    assert len(truth) == 753
    assert truth["treatment"].value_counts().to_dict() == {"iat": 414, "resection": 339}
    assert truth["patient_id"].is_unique
    assert truth["center"].nunique() == 9


def test_published_shares_by_arm(truth):
    resected = truth["treatment"] == "resection"
    site = truth["primary_site"].value_counts(normalize=True)
    assert site["pancreas"] == pytest.approx(0.32, abs=0.02)
    assert site["small_bowel"] == pytest.approx(0.27, abs=0.02)
    assert truth.loc[resected, "functional"].mean() == pytest.approx(0.28, abs=0.02)
    assert truth.loc[~resected, "functional"].mean() == pytest.approx(0.48, abs=0.02)
    assert truth.loc[resected, "liver_burden_gt25"].mean() == pytest.approx(0.52, abs=0.02)
    assert truth.loc[~resected, "liver_burden_gt25"].mean() == pytest.approx(0.76, abs=0.02)


def test_unadjusted_survival_strongly_favours_resection(truth):
    resected = truth["treatment"] == "resection"
    km_res, km_iat = _km(truth[resected]), _km(truth[~resected])
    assert 100 <= km_res.median_survival_time_ <= 150  # published ~123 months
    assert 27 <= km_iat.median_survival_time_ <= 42    # published ~34 months
    assert float(km_res.predict(60)) == pytest.approx(0.74, abs=0.08)
    assert float(km_iat.predict(60)) == pytest.approx(0.30, abs=0.06)


def test_asymptomatic_high_burden_patients_do_badly_with_either_treatment(truth):
    subgroup = truth[(truth["liver_burden_gt25"] == 1) & (truth["symptomatic"] == 0)]
    resected = subgroup["treatment"] == "resection"
    assert resected.sum() >= 40 and (~resected).sum() >= 80  # enough to match
    for arm in (subgroup[resected], subgroup[~resected]):
        assert 10 <= _km(arm).median_survival_time_ <= 30  # "high teens" in the publication


def test_confounding_by_indication(truth):
    resected = truth["treatment"] == "resection"
    fitter = truth.groupby(resected)[["age", "ecog", "n_lesions", "bilobar", "extrahepatic"]].mean()
    assert (fitter.loc[True] < fitter.loc[False]).all()


def test_dates_are_consistent(truth):
    assert truth["treatment_date"].dt.year.between(1985, 2010).all()
    assert (truth["last_followup_date"] > truth["treatment_date"]).all()
    assert (truth["last_followup_date"] <= pd.Timestamp(str(synth.STUDY_CLOSE))).all()
    died = truth["death"] == 1
    assert (truth.loc[died, "death_date"] == truth.loc[died, "last_followup_date"]).all()
    assert truth.loc[~died, "death_date"].isna().all()
    assert 0.05 < (~died).mean() < 0.6  # censoring happens, but most patients die in follow-up


def test_harmonized_dtypes(truth):
    assert truth.columns.tolist() == ["patient_id", "center", *[v for v in synth.VARIABLE_TYPES if v != "patient_id"]]
    assert str(truth["ecog"].dtype) == "Int64" and str(truth["death"].dtype) == "Int8"
    assert str(truth["age"].dtype) == "float64" and str(truth["treatment_date"].dtype) == "datetime64[ns]"
    assert not truth.drop(columns="death_date").isna().any().any()


def test_same_seed_same_truth_other_seed_other_truth(truth):
    pd.testing.assert_frame_equal(synth.simulate_patients(), truth)
    assert not synth.simulate_patients(seed=1)["treatment_date"].equals(truth["treatment_date"])


def test_scales_to_other_sizes():
    patients = synth.simulate_patients(n=20_000, seed=7)
    assert len(patients) == 20_000
    assert (patients["treatment"] == "resection").sum() == round(20_000 * 339 / 753)
    assert patients["patient_id"].is_unique


def test_too_few_patients_is_a_config_error():
    with pytest.raises(ConfigError, match="at least 9"):
        synth.simulate_patients(n=5)


# ---------------------------------------------------------------- extracts through the ingest


def _harmonize_all(demo_config: dict, folder: Path, xlsx_as_csv: bool = False):
    """Every center through the project's ingest (an integration check of the generated mapping)."""
    from pipeline.ingest import extract as ingest, harmonize
    variables, outcome = as_variables(demo_config["registry"]["variables"]), as_outcome(demo_config["outcome"])
    accepted, quarantined = [], []
    for key, block in synth.center_config(folder.as_posix(), xlsx_as_csv).items():
        center = as_center(block)
        raw = ingest.read_extract(Path(center.path), center)
        ok, bad, _ = harmonize.harmonize_center(raw, key, center, variables, outcome, center.path,
                                               demo_config["time_unit"])
        accepted.append(ok)
        quarantined.append(bad)
    return pd.concat(accepted, ignore_index=True), pd.concat(quarantined, ignore_index=True)


def test_defects_are_few_and_every_accepted_value_is_the_truth(demo_config, truth):
    accepted, quarantined = _harmonize_all(demo_config, REGISTRY)
    assert 0 < len(quarantined) < 10
    assert set(quarantined["reason_code"]) >= {"duplicate_id", "followup_before_index", "unknown_code"}
    assert len(accepted) + len(quarantined) == 753 + 1  # the duplicated row is the only extra row
    assert len(accepted) >= 745
    expected = truth.set_index("patient_id").loc[accepted["patient_id"]]
    got = accepted.set_index("patient_id")
    for variable in synth.VARIABLE_TYPES:
        if variable == "patient_id":
            continue
        both = got[variable].notna().to_numpy() & expected[variable].notna().to_numpy()
        got_values = got[variable][both].astype(str).to_numpy()
        assert (got_values == expected[variable][both].astype(str).to_numpy()).all(), variable
    missing_share = got[["grade", "ecog", "n_lesions", "bilobar"]].isna().mean()
    assert (missing_share > 0).all() and (missing_share < 0.06).all()


def test_no_defects_means_every_row_accepted_and_complete(demo_config, truth, tmp_path):
    synth.write_extracts(truth, tmp_path, synth.SEED, defects=False)
    accepted, quarantined = _harmonize_all(demo_config, tmp_path)
    assert len(quarantined) == 0 and len(accepted) == 753
    assert not accepted.drop(columns=["death_date"]).isna().any().any()


def test_xlsx_as_csv_swaps_only_the_xlsx_center(demo_config, truth, tmp_path):
    paths = synth.write_extracts(truth, tmp_path, synth.SEED, defects=False, xlsx_as_csv=True)
    assert sorted(p.suffix for p in paths.values()).count(".xlsx") == 0
    assert paths["center_d"].name == "center_d.csv"
    accepted, quarantined = _harmonize_all(demo_config, tmp_path, xlsx_as_csv=True)
    assert len(quarantined) == 0 and len(accepted) == 753
