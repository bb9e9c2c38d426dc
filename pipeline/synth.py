"""Seeded generator of the bundled demo registry: nine heterogeneous center extracts.

`simulate_patients` draws the harmonized truth, one row per patient, calibrated to the multicenter
resection vs intra-arterial therapy (IAT) cohort of Mayo et al. (Ann Surg Oncol 2011): 753 patients
(339 resection, 414 IAT), nine centers, 1985-2010. The data-generating process:

1. Arm first, with exact counts, then covariates conditional on the arm (the published shares by
   arm, functional status, hepatic burden and primary site, are hit exactly). This is confounding by
   indication: resected patients are younger, fitter (ECOG), less often functional, with lower
   hepatic burden, fewer lesions and less bilobar or extrahepatic disease. Covariates are
   (mostly) independent given the arm, so the true propensity score is close to logistic.
2. Survival is Weibull proportional hazards on prognostic covariates. Resection lowers the hazard
   except in asymptomatic patients with > 25% hepatic burden, who do badly with either treatment
   (the published matched medians were 16.7 vs 18.5 months, p = 0.78).
3. Censoring by loss to follow-up and administrative closure of the study (2011-06-30).

`write_extracts` writes each center's rows the way that center exports them (separator, decimal
mark, date format, encoding, XLSX/Parquet, its own column names and code lists, unmapped extra
columns) plus, with defects=True, a few missing covariates and a handful of broken rows that the
ingest must quarantine. `center_config` is the matching `registry.centers` section of config.yaml.
Everything is drawn from numpy.random.default_rng(seed): same n and seed => byte-identical files.
"""
from __future__ import annotations

import argparse
import datetime as dt
import io
import sys
import zipfile
from pathlib import Path

import numpy as np
import openpyxl
from openpyxl.xml.functions import tostring
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from pipeline.errors import ConfigError

N_DEMO = 753
SEED = 20110801
RESECTION_SHARE = 339 / 753
FIRST_YEAR, LAST_YEAR = 1985, 2010
YEAR_TREND = 0.08
"""Treatments per year grow linearly: the weight of year y is 1 + YEAR_TREND * (y - FIRST_YEAR)."""
STUDY_CLOSE = np.datetime64("2011-06-30", "D")
DAYS_PER_MONTH = 30.4375
LOSS_TO_FOLLOWUP_PER_MONTH = 0.0015
XLSX_MAX_ROWS = 1_048_575

# Covariate distributions given the arm, as (resection, iat).
P_FUNCTIONAL = (0.28, 0.48)
P_BURDEN_GT25 = (0.52, 0.76)
P_ASYMPTOMATIC_NONFUNCTIONAL = (0.35, 0.60)
P_ASYMPTOMATIC_FUNCTIONAL = 0.12  # hormonal syndromes make most functional tumours symptomatic
P_MALE = (0.52, 0.50)
P_SYNCHRONOUS = (0.55, 0.62)
P_EXTRAHEPATIC = (0.15, 0.30)
P_PRIMARY_RESECTED = (0.85, 0.50)
P_BILOBAR = ((0.35, 0.65), (0.55, 0.85))  # per arm: (burden <= 25%, burden > 25%)
AGE_MEAN, AGE_SD, AGE_RANGE = (56.0, 61.0), 11.0, (18, 90)
SITE_LEVELS = ("pancreas", "small_bowel", "other")
SITE_PROBS = ((0.35, 0.25, 0.40), (0.295, 0.286, 0.419))
GRADE_LEVELS = ("G1", "G2", "G3")
GRADE_PROBS = ((0.55, 0.37, 0.08), (0.45, 0.42, 0.13))
ECOG_PROBS = ((0.55, 0.33, 0.10, 0.02, 0.00), (0.30, 0.38, 0.21, 0.09, 0.02))
KI67_BY_GRADE = ((1.5, 0.1, 2.9), (7.0, 3.0, 20.0), (35.0, 21.0, 90.0))  # (median, min, max) %
LESIONS_MEAN = (2.0, 4.0)  # extra lesions beyond the first, before the bilobar/burden multipliers
LESIONS_DISPERSION = 1.5   # negative binomial size: many patients have few lesions, some very many

# Weibull proportional-hazards survival in months: S(t) = exp(-(t / SCALE)^SHAPE * exp(lp)).
WEIBULL_SHAPE = 1.52
WEIBULL_SCALE_MONTHS = 175.5
LOG_HR = {
    "age_per_decade_over_60": 0.25,
    "ecog": 0.35,
    "grade_step": 0.50,
    "extrahepatic": 0.40,
    "log_lesions": 0.15,
    "bilobar": 0.20,
    "burden_gt25": 0.30,
    "functional": -0.20,
    "pancreas": 0.20,
    "asymptomatic_high_burden": 1.66,
    "resection_outside_asymptomatic_high_burden": -1.03,
}

VARIABLE_TYPES = {
    "patient_id": "id", "treatment": "category", "treatment_date": "date", "age": "numeric",
    "sex": "category", "primary_site": "category", "grade": "category", "ki67": "numeric",
    "ecog": "integer", "functional": "binary", "symptomatic": "binary", "synchronous": "binary",
    "extrahepatic": "binary", "n_lesions": "integer", "bilobar": "binary",
    "liver_burden_gt25": "binary", "primary_resected": "binary", "last_followup_date": "date",
    "death": "binary", "death_date": "date",
}
"""The harmonized variables of config.yaml (registry.variables), in the truth table's column order."""
DECIMALS = {"age": 0, "ki67": 1}

MISSING_RATES = {"grade": 0.02, "ecog": 0.03, "n_lesions": 0.015, "bilobar": 0.01,
                 "synchronous": 0.01, "primary_resected": 0.02, "ki67": 0.04}
"""Share of optional covariates left blank in the extracts (defects=True)."""
KI67_MISSING_BEFORE_1995 = 0.30  # Ki-67 was rarely reported before the mid-1990s

MODALITIES = ("res_major", "res_minor", "iat_bland", "iat_tace", "iat_deb", "iat_tare")
MODALITY_ARM = {m: ("resection" if m.startswith("res") else "iat") for m in MODALITIES}
RESECTION_MODALITY_PROBS = {"res_major": 0.6, "res_minor": 0.4}
IAT_MODALITY_PROBS_BY_ERA = (  # (first year of the era, probabilities): Y-90 from 2002, DEB from 2006
    (FIRST_YEAR, {"iat_bland": 0.40, "iat_tace": 0.60}),
    (2002, {"iat_bland": 0.30, "iat_tace": 0.50, "iat_tare": 0.20}),
    (2006, {"iat_bland": 0.15, "iat_tace": 0.35, "iat_deb": 0.25, "iat_tare": 0.25}),
)

EXTRA_NOTES = {
    "en": ["", "", "", "tumour board 2x", "octreotide LAR", "lanreotide, stable disease",
           "referred from outside hospital", "carcinoid heart disease, echo pending"],
    "fr": ["", "", "", "récidive hépatique", "bilan pré-opératoire complet", "syndrome carcinoïde",
           "adressé par l'hôpital de Mâcon", "traité par octréotide; contrôle à 3 mois"],
}

CENTER_LAYOUTS = {
    "center_a": {  # US academic center: comma CSV, ISO dates
        "file": "center_a.csv", "share": 0.17, "id": ("NET-{:04d}", 1, 1), "defects": ["duplicate_row"],
        "read": {},
        "columns": {"patient_id": "study_id", "treatment": "procedure", "treatment_date": "procedure_date",
                    "age": "age_at_tx", "sex": "gender", "primary_site": "primary", "grade": "who_grade",
                    "ki67": "ki67_pct", "ecog": "ecog_ps", "functional": "functional", "symptomatic": "symptoms",
                    "synchronous": "synchronous", "extrahepatic": "extrahepatic_mets",
                    "n_lesions": "n_liver_lesions", "bilobar": "bilobar", "liver_burden_gt25": "burden_gt25",
                    "primary_resected": "primary_resected", "last_followup_date": "last_contact",
                    "death": "vital_status", "death_date": "date_of_death"},
        "codes": {"treatment": {"res_major": "hepatectomy", "res_minor": "wedge resection", "iat_bland": "TAE",
                                "iat_tace": "TACE", "iat_deb": "DEB-TACE", "iat_tare": "Y-90"},
                  "sex": {"male": "M", "female": "F"},
                  "primary_site": {"pancreas": "pancreas", "small_bowel": "small bowel",
                                   "other": ["colon", "rectum", "lung", "stomach", "unknown primary"]},
                  "death": {1: "dead", 0: "alive"}},
        "yes_no": ("yes", "no"), "binary_as_01": ["primary_resected"],
        "extras": [("bmi", "bmi"), ("notes", "notes_en")],
    },
    "center_b": {  # German university hospital: semicolon CSV, decimal comma, dd.mm.yyyy, "k.A." = missing
        "file": "center_b.csv", "share": 0.14, "id": ("B{:05d}", 10001, 1),
        "defects": ["followup_before_treatment"],
        "read": {"sep": ";", "decimal": ",", "date_format": "%d.%m.%Y", "na_values": ["k.A."]},
        "na_rep": "k.A.",
        "columns": {"patient_id": "Pat_Nr", "treatment_date": "Therapiedatum", "treatment": "Therapie",
                    "age": "Alter", "sex": "Geschlecht", "primary_site": "Primarius", "grade": "Grading",
                    "ki67": "Ki67", "ecog": "ECOG", "functional": "funktionell", "symptomatic": "symptomatisch",
                    "synchronous": "synchron", "extrahepatic": "extrahepatisch", "n_lesions": "Anzahl_Herde",
                    "bilobar": "bilobaer", "liver_burden_gt25": "Lebervolumen_gt25",
                    "primary_resected": "PT_reseziert", "last_followup_date": "letzter_Kontakt",
                    "death": "verstorben", "death_date": "Todesdatum"},
        "codes": {"treatment": {"res_major": "Hemihepatektomie", "res_minor": "Resektion", "iat_bland": "TAE",
                                "iat_tace": "TACE", "iat_deb": "DEB-TACE", "iat_tare": "SIRT"},
                  "sex": {"male": "m", "female": "w"},
                  "primary_site": {"pancreas": "Pankreas", "small_bowel": ["Dünndarm", "Ileum", "Jejunum"],
                                   "other": ["Kolon", "Rektum", "Lunge", "CUP"]}},
        "yes_no": ("ja", "nein"), "binary_as_01": [],
        "extras": [("BMI", "bmi"), ("CgA_ng_ml", "chromogranin"), ("Station", "ward_de")],
    },
    "center_c": {  # French center: latin-1, semicolon CSV, decimal comma, dd/mm/yyyy, accented codes
        "file": "center_c.csv", "share": 0.12, "id": ("LY{:04d}", 1, 1), "defects": ["unknown_treatment_code"],
        "read": {"sep": ";", "decimal": ",", "encoding": "latin-1", "date_format": "%d/%m/%Y"},
        "columns": {"patient_id": "num_patient", "treatment": "traitement", "treatment_date": "date_traitement",
                    "age": "âge", "sex": "sexe", "primary_site": "site_primitif", "grade": "grade_OMS",
                    "ki67": "ki67", "ecog": "ecog", "functional": "fonctionnel", "symptomatic": "symptomatique",
                    "synchronous": "synchrone", "extrahepatic": "extra_hépatique", "n_lesions": "nb_lésions",
                    "bilobar": "bilobaire", "liver_burden_gt25": "envahissement_sup25",
                    "primary_resected": "primitif_réséqué", "last_followup_date": "date_dernières_nouvelles",
                    "death": "décès", "death_date": "date_décès"},
        "codes": {"treatment": {"res_major": "Hépatectomie majeure", "res_minor": "Résection",
                                "iat_bland": "Embolisation", "iat_tace": "Chimioembolisation",
                                "iat_deb": "Chimioembolisation billes", "iat_tare": "Radioembolisation"},
                  "sex": {"male": "H", "female": "F"},
                  "primary_site": {"pancreas": "pancréas", "small_bowel": "grêle",
                                   "other": ["côlon", "rectum", "poumon", "primitif inconnu"]}},
        "yes_no": ("oui", "non"), "binary_as_01": [],
        "extras": [("commentaire", "notes_fr")],
    },
    "center_d": {  # Excel workbook kept by a research nurse: real date cells, Y/N flags
        "file": "center_d.xlsx", "share": 0.08, "id": ("D-{:03d}", 1, 1), "defects": [],
        "read": {"sheet": "NET registry"},
        "columns": {"patient_id": "ID", "treatment": "Tx", "treatment_date": "TxDate", "age": "Age",
                    "sex": "Sex", "primary_site": "Primary", "grade": "Grade", "ki67": "Ki67", "ecog": "ECOG",
                    "functional": "Functional", "symptomatic": "Symptomatic", "synchronous": "Synchronous",
                    "extrahepatic": "EHD", "n_lesions": "Lesions", "bilobar": "Bilobar",
                    "liver_burden_gt25": "Burden>25%", "primary_resected": "PrimaryResected",
                    "last_followup_date": "LastFU", "death": "Died", "death_date": "DOD"},
        "codes": {"treatment": {"res_major": "RES", "res_minor": "RES", "iat_bland": "bland", "iat_tace": "TACE",
                                "iat_deb": "DEB", "iat_tare": "TARE"},
                  "sex": {"male": "Male", "female": "Female"},
                  "primary_site": {"pancreas": "Pancreatic", "small_bowel": "Small bowel", "other": "Other"},
                  "grade": {"G1": "Grade 1", "G2": "Grade 2", "G3": "Grade 3"}},
        "yes_no": ("Y", "N"), "binary_as_01": [],
        "extras": [("Surgeon", "surgeon"), ("LOS", "length_of_stay")],
    },
    "center_e": {  # data warehouse export: Parquet, typed columns, mostly harmonized names already
        "file": "center_e.parquet", "share": 0.13, "id": ("E{:06d}", 100001, 1), "defects": [],
        "read": {},
        "columns": {"patient_id": "pid", "treatment": "tx", "treatment_date": "tx_date", "age": "age",
                    "sex": "sex", "primary_site": "primary_site", "grade": "grade", "ki67": "ki67",
                    "ecog": "ecog", "functional": "functional", "symptomatic": "symptomatic",
                    "synchronous": "synchronous", "extrahepatic": "extrahepatic", "n_lesions": "n_lesions",
                    "bilobar": "bilobar", "liver_burden_gt25": "liver_burden_gt25",
                    "primary_resected": "primary_resected", "last_followup_date": "last_followup_date",
                    "death": "death", "death_date": "death_date"},
        "codes": {"treatment": {"res_major": "surgery_major", "res_minor": "surgery_minor",
                                "iat_bland": "bland_embo", "iat_tace": "cTACE", "iat_deb": "DEB", "iat_tare": "Y90"}},
        "yes_no": None, "binary_as_01": [],
        "extras": [("etl_batch", "etl_batch")],
    },
    "center_f": {  # tab-separated export, sex coded 1/2, flags 1/0
        "file": "center_f.tsv", "share": 0.10, "id": ("F{:04d}", 1, 1), "defects": [],
        "read": {"sep": "\t"},
        "columns": {"patient_id": "PatientID", "treatment": "Treatment", "treatment_date": "TreatmentDate",
                    "age": "Age", "sex": "Sex", "primary_site": "PrimarySite", "grade": "Grade", "ki67": "Ki67",
                    "ecog": "ECOG", "functional": "Functional", "symptomatic": "Symptomatic",
                    "synchronous": "Synchronous", "extrahepatic": "Extrahepatic", "n_lesions": "NLesions",
                    "bilobar": "Bilobar", "liver_burden_gt25": "BurdenOver25", "primary_resected": "PrimaryResected",
                    "last_followup_date": "LastFollowUp", "death": "Deceased", "death_date": "DeathDate"},
        "codes": {"treatment": {"res_major": "Resection", "res_minor": "Resection", "iat_bland": "TAE",
                                "iat_tace": "TACE", "iat_deb": "DEB-TACE", "iat_tare": "TARE"},
                  "sex": {"male": "1", "female": "2"},
                  "primary_site": {"pancreas": "PNET", "small_bowel": "SBNET", "other": "other"}},
        "yes_no": None, "binary_as_01": [],
        "extras": [("HIAA_24h", "hiaa")],
    },
    "center_g": {  # US community hospital: numeric MRN, mm/dd/yyyy, death dates from an ISO registry linkage
        "file": "center_g.csv", "share": 0.10, "id": ("{:d}", 204117, 7), "defects": ["invalid_date"],
        "read": {"date_format": "%m/%d/%Y", "date_formats": {"death_date": "%Y-%m-%d"}},
        "columns": {"patient_id": "MRN", "treatment_date": "Procedure Date", "treatment": "Procedure",
                    "age": "Age", "sex": "Sex", "primary_site": "Primary Site", "grade": "Grade", "ki67": "Ki-67 (%)",
                    "ecog": "ECOG", "functional": "Functional", "symptomatic": "Symptomatic",
                    "synchronous": "Synchronous", "extrahepatic": "Extrahepatic Disease",
                    "n_lesions": "# Lesions", "bilobar": "Bilobar", "liver_burden_gt25": "Liver Burden >25%",
                    "primary_resected": "Primary Resected", "last_followup_date": "Last Follow-up",
                    "death": "Deceased", "death_date": "Date of Death (NDI)"},
        "codes": {"treatment": {"res_major": "Liver resection", "res_minor": "Liver resection",
                                "iat_bland": "Embolization", "iat_tace": "Chemoembolization",
                                "iat_deb": "Chemoembolization", "iat_tare": "Radioembolization"},
                  "sex": {"male": "Male", "female": "Female"},
                  "primary_site": {"pancreas": "Pancreas", "small_bowel": ["Ileum", "Jejunum", "Small Bowel"],
                                   "other": ["Colon", "Appendix", "Lung", "Unknown"]}},
        "yes_no": ("Y", "N"), "binary_as_01": [],
        "extras": [("Payer", "payer"), ("BMI", "bmi")],
    },
    "center_h": {  # Italian center: a .txt export read as CSV, semicolon, decimal comma, dd-mm-yyyy
        "file": "center_h_export.txt", "format": "csv", "share": 0.09, "id": ("MI-{:04d}", 1, 1),
        "defects": ["missing_followup"],
        "read": {"sep": ";", "decimal": ",", "date_format": "%d-%m-%Y"},
        "columns": {"patient_id": "codice", "treatment": "trattamento", "treatment_date": "data_trattamento",
                    "age": "eta", "sex": "sesso", "primary_site": "sede_primitivo", "grade": "grading",
                    "ki67": "ki67", "ecog": "ecog", "functional": "funzionante", "symptomatic": "sintomatico",
                    "synchronous": "sincrono", "extrahepatic": "extraepatico", "n_lesions": "n_lesioni",
                    "bilobar": "bilobare", "liver_burden_gt25": "carico_epatico_gt25",
                    "primary_resected": "primitivo_resecato", "last_followup_date": "ultimo_followup",
                    "death": "deceduto", "death_date": "data_decesso"},
        "codes": {"treatment": {"res_major": "epatectomia", "res_minor": "resezione", "iat_bland": "TAE",
                                "iat_tace": "TACE", "iat_deb": "DEB-TACE", "iat_tare": "TARE"},
                  "sex": {"male": "M", "female": "F"},
                  "primary_site": {"pancreas": "pancreas", "small_bowel": "intestino tenue", "other": "altro"}},
        "yes_no": ("si", "no"), "binary_as_01": ["death"],
        "extras": [("BMI", "bmi"), ("reparto", "ward_it")],
    },
    "center_i": {  # Dutch center: Excel-saved CSV with a byte-order mark, ISO dates
        "file": "center_i.csv", "share": 0.07, "id": ("NL{:05d}", 501, 1), "defects": [],
        "read": {"encoding": "utf-8-sig"},
        "columns": {"patient_id": "pat_id", "treatment": "behandeling", "treatment_date": "behandeldatum",
                    "age": "leeftijd", "sex": "geslacht", "primary_site": "primaire_tumor", "grade": "graad",
                    "ki67": "ki67", "ecog": "who_ps", "functional": "functioneel", "symptomatic": "symptomatisch",
                    "synchronous": "synchroon", "extrahepatic": "extrahepatisch", "n_lesions": "aantal_laesies",
                    "bilobar": "bilobair", "liver_burden_gt25": "leverbelasting_gt25",
                    "primary_resected": "primaire_tumor_verwijderd", "last_followup_date": "laatste_controle",
                    "death": "overleden", "death_date": "overlijdensdatum"},
        "codes": {"treatment": {"res_major": "hemihepatectomie", "res_minor": "resectie", "iat_bland": "TAE",
                                "iat_tace": "TACE", "iat_deb": "DEB-TACE", "iat_tare": "SIRT"},
                  "sex": {"male": "M", "female": "V"},
                  "primary_site": {"pancreas": "pancreas", "small_bowel": "dunne darm", "other": "overig"}},
        "yes_no": ("ja", "nee"), "binary_as_01": ["death"],
        "extras": [],
    },
}
"""How each center exports its data. `id` is (format, first number, step): patients are numbered in
order of treatment date. `codes` maps harmonized levels (treatment: modalities) to that center's
codes; a list means several codes for one level. Binary variables use `yes_no` unless listed in
`binary_as_01` or coded explicitly. `extras` are columns the config does not map."""


# ----------------------------------------------------------------------------- the truth


def simulate_patients(n: int = N_DEMO, seed: int = SEED) -> pd.DataFrame:
    """The harmonized truth: one row per patient, columns `patient_id, center, <variables>`."""
    if n < len(CENTER_LAYOUTS):
        raise ConfigError(f"n = {n}: the registry needs at least {len(CENTER_LAYOUTS)} patients (one per center)")
    rng = np.random.default_rng(seed)
    resected = _exact_share(rng, n, RESECTION_SHARE)
    center = _assign_centers(rng, n)
    cov = _simulate_covariates(rng, resected)
    treatment_date = _simulate_treatment_dates(rng, n)
    months = _simulate_survival_months(rng, cov, resected)
    last_followup, death = _follow_up(rng, treatment_date, months)
    return _truth_frame(center, resected, treatment_date, cov, last_followup, death)


def _exact_share(rng: np.random.Generator, n: int, share: float) -> np.ndarray:
    flags = np.zeros(n, dtype=bool)
    flags[: round(n * share)] = True
    return rng.permutation(flags)


def _exact_categories(rng: np.random.Generator, n: int, shares) -> np.ndarray:
    """Category index per unit with exact sizes (largest-remainder rounding of the shares), shuffled."""
    shares = np.asarray(shares, dtype=float)
    raw = n * shares / shares.sum()
    sizes = np.floor(raw).astype(int)
    sizes[np.argsort(-(raw - sizes), kind="stable")[: n - sizes.sum()]] += 1
    return rng.permutation(np.repeat(np.arange(len(shares)), sizes))


def _assign_centers(rng: np.random.Generator, n: int) -> np.ndarray:
    return _exact_categories(rng, n, [layout["share"] for layout in CENTER_LAYOUTS.values()])


def _exact_within_arm(rng: np.random.Generator, resected: np.ndarray, probs) -> np.ndarray:
    """Category index with the published per-arm shares hit exactly (up to rounding)."""
    out = np.empty(resected.size, dtype=int)
    for arm, mask in enumerate((resected, ~resected)):
        out[mask] = _exact_categories(rng, int(mask.sum()), probs[arm])
    return out


def _by_arm(resected: np.ndarray, pair) -> np.ndarray:
    return np.where(resected, pair[0], pair[1])


def _draw_binary(rng: np.random.Generator, p: np.ndarray) -> np.ndarray:
    return (rng.random(p.shape) < p).astype(np.int8)


def _draw_category(rng: np.random.Generator, resected: np.ndarray, probs) -> np.ndarray:
    """Index of the category drawn with the arm's probabilities."""
    cum = np.cumsum(np.asarray(probs, dtype=float), axis=1)
    cum[:, -1] = 1.0
    u = rng.random(resected.shape)
    return np.where(resected, np.searchsorted(cum[0], u, side="right"),
                    np.searchsorted(cum[1], u, side="right"))


def _simulate_covariates(rng: np.random.Generator, resected: np.ndarray) -> dict[str, np.ndarray]:
    functional = _exact_within_arm(rng, resected, [(1 - p, p) for p in P_FUNCTIONAL]).astype(np.int8)
    burden = _exact_within_arm(rng, resected, [(1 - p, p) for p in P_BURDEN_GT25]).astype(np.int8)
    p_asymptomatic = np.where(functional == 1, P_ASYMPTOMATIC_FUNCTIONAL,
                              _by_arm(resected, P_ASYMPTOMATIC_NONFUNCTIONAL))
    symptomatic = (1 - _draw_binary(rng, p_asymptomatic)).astype(np.int8)
    age = np.clip(np.round(rng.normal(_by_arm(resected, AGE_MEAN), AGE_SD)), *AGE_RANGE)
    grade = _draw_category(rng, resected, GRADE_PROBS)
    p_bilobar = np.where(resected, np.take(P_BILOBAR[0], burden), np.take(P_BILOBAR[1], burden))
    bilobar = _draw_binary(rng, p_bilobar)
    return {
        "age": age,
        "sex": np.where(_draw_binary(rng, _by_arm(resected, P_MALE)) == 1, "male", "female"),
        "primary_site": np.asarray(SITE_LEVELS)[_exact_within_arm(rng, resected, SITE_PROBS)],
        "grade": np.asarray(GRADE_LEVELS)[grade],
        "ki67": _simulate_ki67(rng, grade),
        "ecog": _draw_category(rng, resected, ECOG_PROBS),
        "functional": functional,
        "symptomatic": symptomatic,
        "synchronous": _draw_binary(rng, _by_arm(resected, P_SYNCHRONOUS)),
        "extrahepatic": _draw_binary(rng, _by_arm(resected, P_EXTRAHEPATIC)),
        "n_lesions": _simulate_lesions(rng, resected, bilobar, burden),
        "bilobar": bilobar,
        "liver_burden_gt25": burden,
        "primary_resected": _draw_binary(rng, _by_arm(resected, P_PRIMARY_RESECTED)),
        "_grade_index": grade,
    }


def _simulate_ki67(rng: np.random.Generator, grade: np.ndarray) -> np.ndarray:
    """Log-normal Ki-67 index within the grade's WHO 2010 range, one decimal."""
    median, low, high = (np.asarray(col)[grade] for col in zip(*KI67_BY_GRADE))
    return np.round(np.clip(median * np.exp(rng.normal(0.0, 0.5, grade.size)), low, high), 1)


def _simulate_lesions(rng, resected, bilobar, burden) -> np.ndarray:
    mean = _by_arm(resected, LESIONS_MEAN) * (1 + 1.5 * bilobar) * (1 + burden)
    extra = rng.negative_binomial(LESIONS_DISPERSION, LESIONS_DISPERSION / (LESIONS_DISPERSION + mean))
    return np.clip(1 + extra, 1, 200)


def _simulate_treatment_dates(rng: np.random.Generator, n: int) -> np.ndarray:
    years = np.arange(FIRST_YEAR, LAST_YEAR + 2)
    starts = years.astype(str).astype("datetime64[D]")  # 1 January of each year
    weights = 1 + YEAR_TREND * (years[:-1] - FIRST_YEAR)
    year = rng.choice(years.size - 1, size=n, p=weights / weights.sum())
    days_in_year = (starts[year + 1] - starts[year]).astype(int)
    return starts[year] + np.floor(rng.random(n) * days_in_year).astype(int)


def _log_hazard(cov: dict[str, np.ndarray], resected: np.ndarray) -> np.ndarray:
    asym_high = (cov["liver_burden_gt25"] == 1) & (cov["symptomatic"] == 0)
    b = LOG_HR
    return (b["age_per_decade_over_60"] * (cov["age"] - 60) / 10
            + b["ecog"] * cov["ecog"]
            + b["grade_step"] * cov["_grade_index"]
            + b["extrahepatic"] * cov["extrahepatic"]
            + b["log_lesions"] * np.log(cov["n_lesions"])
            + b["bilobar"] * cov["bilobar"]
            + b["burden_gt25"] * cov["liver_burden_gt25"]
            + b["functional"] * cov["functional"]
            + b["pancreas"] * (cov["primary_site"] == "pancreas")
            + b["asymptomatic_high_burden"] * asym_high
            + b["resection_outside_asymptomatic_high_burden"] * (resected & ~asym_high))


def _simulate_survival_months(rng, cov, resected) -> np.ndarray:
    """Weibull PH by inversion: T = scale * (E * exp(-lp))^(1/shape), E ~ Exp(1)."""
    e = rng.exponential(1.0, resected.size)
    return WEIBULL_SCALE_MONTHS * (e * np.exp(-_log_hazard(cov, resected))) ** (1 / WEIBULL_SHAPE)


def _follow_up(rng, treatment_date: np.ndarray, months_to_death: np.ndarray):
    """Last follow-up date and death flag under loss to follow-up and closure at STUDY_CLOSE."""
    death_day = np.maximum(1, np.ceil(months_to_death * DAYS_PER_MONTH))
    lost_day = np.ceil(rng.exponential(1 / LOSS_TO_FOLLOWUP_PER_MONTH, treatment_date.size) * DAYS_PER_MONTH)
    censor_day = np.minimum(lost_day, (STUDY_CLOSE - treatment_date).astype(int))
    death = death_day <= censor_day
    followup_days = np.where(death, death_day, censor_day).astype(int)
    return treatment_date + followup_days, death.astype(np.int8)


def _truth_frame(center, resected, treatment_date, cov, last_followup, death) -> pd.DataFrame:
    keys = np.asarray(list(CENTER_LAYOUTS))
    frame = pd.DataFrame({
        "center": keys[center],
        "treatment": np.where(resected, "resection", "iat"),
        "treatment_date": treatment_date.astype("datetime64[ns]"),
        **{k: v for k, v in cov.items() if not k.startswith("_")},
        "last_followup_date": last_followup.astype("datetime64[ns]"),
        "death": death,
        "death_date": np.where(death == 1, last_followup, np.datetime64("NaT")).astype("datetime64[ns]"),
    })
    frame = frame.sort_values(["center", "treatment_date"], kind="stable").reset_index(drop=True)
    frame.insert(0, "patient_id", _patient_ids(frame["center"].to_numpy()))
    return _harmonized_dtypes(frame)


def _patient_ids(center: np.ndarray) -> np.ndarray:
    """Each center's own identifier, numbered in order of treatment date (rows arrive sorted)."""
    ids = np.empty(center.size, dtype=object)
    for key, layout in CENTER_LAYOUTS.items():
        rows = np.flatnonzero(center == key)
        fmt, first, step = layout["id"]
        ids[rows] = [fmt.format(first + step * i) for i in range(rows.size)]
    return ids


def _harmonized_dtypes(frame: pd.DataFrame) -> pd.DataFrame:
    dtype_of = {"id": "string", "category": "string", "numeric": "float64", "integer": "Int64",
                "binary": "Int8", "date": "datetime64[ns]"}
    frame = frame.astype({v: dtype_of[t] for v, t in VARIABLE_TYPES.items()} | {"center": "string"})
    return frame[["patient_id", "center", *[v for v in VARIABLE_TYPES if v != "patient_id"]]]


# ----------------------------------------------------------------------------- the extracts


def write_extracts(patients: pd.DataFrame, outdir: Path, seed: int = SEED, defects: bool = True,
                   xlsx_as_csv: bool = False) -> dict[str, Path]:
    """Write every center's rows of `patients` as that center exports them; return center -> path.

    xlsx_as_csv writes the XLSX center as a plain CSV instead (see `center_layouts`)."""
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng([seed, 1])  # a stream of its own: the truth does not depend on it
    modality = _treatment_modality(rng, patients)
    layouts = center_layouts(xlsx_as_csv)
    paths = {}
    for key in sorted(layouts):
        layout = layouts[key]
        rows = (patients["center"] == key).to_numpy()
        center_rows = patients.loc[rows].reset_index(drop=True)
        if defects:
            center_rows = _blank_covariates(rng, center_rows)
            center_rows = _harmonized_defects(rng, center_rows, layout["defects"])
        fmt = _file_format(layout)
        source = _encode_center(rng, center_rows, modality[rows], layout, as_text=fmt in ("csv", "tsv"))
        if defects:
            source = _source_defects(rng, source, layout)
        paths[key] = outdir / layout["file"]
        _WRITERS[fmt](source, paths[key], layout)
    return paths


def center_layouts(xlsx_as_csv: bool = False) -> dict[str, dict]:
    """CENTER_LAYOUTS, optionally with XLSX centers turned into comma CSV with ISO dates.

    openpyxl writes and reads XLSX at roughly 30,000 cells a second (pure-Python XML: lxml is not
    a dependency), so at a million patients the XLSX center's proportional share (8%, 80,000 rows)
    takes about a minute to write and half a minute to ingest; benchmarks can opt out with this."""
    if not xlsx_as_csv:
        return CENTER_LAYOUTS
    return {key: (layout | {"file": Path(layout["file"]).with_suffix(".csv").name,
                            "read": {k: v for k, v in layout["read"].items() if k != "sheet"}}
                  if _file_format(layout) == "xlsx" else layout)
            for key, layout in CENTER_LAYOUTS.items()}


def _file_format(layout: dict) -> str:
    return layout.get("format") or Path(layout["file"]).suffix.lstrip(".")


def _treatment_modality(rng: np.random.Generator, patients: pd.DataFrame) -> np.ndarray:
    """The specific procedure behind each arm; the IAT techniques available depend on the year."""
    year = patients["treatment_date"].dt.year.to_numpy()
    resected = (patients["treatment"] == "resection").to_numpy()
    modality = _draw_modality(rng, RESECTION_MODALITY_PROBS, resected.size)
    for first_year, probs in IAT_MODALITY_PROBS_BY_ERA:
        era = ~resected & (year >= first_year)
        modality[era] = _draw_modality(rng, probs, resected.size)[era]
    return modality


def _draw_modality(rng, probs: dict[str, float], n: int) -> np.ndarray:
    names = np.asarray(list(probs))
    return names[rng.choice(len(names), size=n, p=np.asarray(list(probs.values())))]


def _blank_covariates(rng, rows: pd.DataFrame) -> pd.DataFrame:
    """Leave a few % of the optional covariates blank (more Ki-67 in early years)."""
    rows = rows.copy()
    for variable in sorted(MISSING_RATES):
        rate = np.full(len(rows), MISSING_RATES[variable])
        if variable == "ki67":
            rate[(rows["treatment_date"].dt.year < 1995).to_numpy()] = KI67_MISSING_BEFORE_1995
        rows.loc[rng.random(len(rows)) < rate, variable] = pd.NA
    return rows


def _harmonized_defects(rng, rows: pd.DataFrame, defects: list[str]) -> pd.DataFrame:
    """Defects that a data manager types in: dates that contradict each other or are missing."""
    rows = rows.copy()
    censored = np.flatnonzero((rows["death"] == 0).to_numpy())
    if "followup_before_treatment" in defects and censored.size:
        i = rows.index[rng.choice(censored)]
        rows.loc[i, "last_followup_date"] = rows.loc[i, "treatment_date"] - pd.Timedelta(days=200)
    if "missing_followup" in defects and censored.size:
        rows.loc[rows.index[rng.choice(censored)], "last_followup_date"] = pd.NaT
    return rows


def _source_defects(rng, source: pd.DataFrame, layout: dict) -> pd.DataFrame:
    """Defects of the export itself: a duplicated row, an unmapped code, an impossible date."""
    if source.empty:
        return source
    columns = layout["columns"]
    if "unknown_treatment_code" in layout["defects"]:
        source.iloc[rng.integers(len(source)), source.columns.get_loc(columns["treatment"])] = "RFA"
    if "invalid_date" in layout["defects"]:
        fmt = layout["read"].get("date_format", "%Y-%m-%d")
        bad = fmt.replace("%Y", "2004").replace("%m", "02").replace("%d", "30")  # 30 February
        source.iloc[rng.integers(len(source)), source.columns.get_loc(columns["treatment_date"])] = bad
    if "duplicate_row" in layout["defects"]:
        i = int(rng.integers(len(source)))
        at = int(rng.integers(i + 1, len(source) + 1))
        source = pd.concat([source.iloc[:at], source.iloc[[i]], source.iloc[at:]], ignore_index=True)
    return source


def _encode_center(rng, rows: pd.DataFrame, modality: np.ndarray, layout: dict, as_text: bool) -> pd.DataFrame:
    """The center's view of its rows: its column names, codes, and (for text files) formatting."""
    columns = {}
    for variable, source_name in layout["columns"].items():
        values = pd.Series(modality) if variable == "treatment" else rows[variable]
        columns[source_name] = _encode_variable(rng, values, variable, layout, as_text)
    for name, kind in layout["extras"]:
        columns[name] = _extra_column(rng, kind, len(rows), layout, as_text)
    return pd.DataFrame(columns)


def _encode_variable(rng, values: pd.Series, variable: str, layout: dict, as_text: bool) -> pd.Series:
    codes = _writer_codes(variable, layout)
    if codes is not None:
        return _apply_codes(rng, values, codes, layout.get("na_rep", "") if as_text else None)
    if not as_text:
        return values.reset_index(drop=True)
    kind = VARIABLE_TYPES[variable]
    if kind == "date":
        fmt = layout["read"].get("date_formats", {}).get(variable, layout["read"].get("date_format", "%Y-%m-%d"))
        return _format_dates(values, fmt, layout.get("na_rep", ""))
    if kind in ("numeric", "integer", "binary"):
        return _format_numbers(values, DECIMALS.get(variable, 0), layout["read"].get("decimal", "."),
                               layout.get("na_rep", ""))
    return values.astype(object).fillna(layout.get("na_rep", "")).reset_index(drop=True)


def _writer_codes(variable: str, layout: dict) -> dict | None:
    """level -> code(s) for this variable at this center, or None when written as is."""
    if variable in layout["codes"]:
        return layout["codes"][variable]
    if VARIABLE_TYPES[variable] == "binary" and layout["yes_no"] and variable not in layout["binary_as_01"]:
        return {1: layout["yes_no"][0], 0: layout["yes_no"][1]}
    return None


def _apply_codes(rng, values: pd.Series, codes: dict, missing) -> pd.Series:
    out = np.full(len(values), missing, dtype=object)
    raw = values.to_numpy(dtype=object)
    for level, code in codes.items():
        hit = np.flatnonzero(pd.Series(raw).eq(level).fillna(False).to_numpy(dtype=bool))
        choices = np.asarray(code if isinstance(code, list) else [code], dtype=object)
        out[hit] = choices[rng.integers(len(choices), size=hit.size)]
    return pd.Series(out)


def _format_dates(values: pd.Series, fmt: str, missing: str) -> pd.Series:
    """strftime for %Y, %m and %d, vectorized through ISO strings (fast at a million rows)."""
    iso = pd.Series(np.datetime_as_string(values.to_numpy(dtype="datetime64[D]"), unit="D"))
    parts = {"%Y": iso.str[0:4], "%m": iso.str[5:7], "%d": iso.str[8:10]}
    out = pd.Series([""] * len(iso), dtype=object)
    rest = fmt
    while rest:
        token = rest[:2] if rest[:2] in parts else rest[0]
        out = out + (parts[token] if token in parts else token)
        rest = rest[len(token):]
    return out.where(values.notna().to_numpy(), missing)


def _format_numbers(values: pd.Series, decimals: int, decimal_mark: str, missing: str) -> pd.Series:
    numbers = values.to_numpy(dtype=float, na_value=np.nan)
    text = np.char.mod(f"%.{decimals}f", numbers).astype(object)
    if decimal_mark != ".":
        text = np.char.replace(text.astype(str), ".", decimal_mark).astype(object)
    text[np.isnan(numbers)] = missing
    return pd.Series(text)


def _extra_column(rng, kind: str, n: int, layout: dict, as_text: bool) -> pd.Series:
    """A column the config does not map (the ingest must ignore it)."""
    lists = {"notes_en": EXTRA_NOTES["en"], "notes_fr": EXTRA_NOTES["fr"],
             "ward_de": ["Chirurgie 1", "Chirurgie 2", "Gastroenterologie", "Radiologie"],
             "ward_it": ["Chirurgia epatobiliare", "Radiologia interventistica", "Oncologia medica"],
             "surgeon": ["AB", "CK", "JMcG", "RS", "TN"], "payer": ["Medicare", "Commercial", "Medicaid", "Self"],
             "etl_batch": ["2011-07-14/run1", "2011-07-14/run2"]}
    if kind in lists:
        choices = np.asarray(lists[kind], dtype=object)
        return pd.Series(choices[rng.integers(len(choices), size=n)])
    numbers = {"bmi": (lambda: np.round(np.clip(rng.normal(26.0, 4.5, n), 15, 50), 1), 1),
               "chromogranin": (lambda: np.round(rng.lognormal(5.0, 1.2, n), 0), 0),
               "hiaa": (lambda: np.round(rng.lognormal(3.0, 1.0, n), 1), 1),
               "length_of_stay": (lambda: 1.0 + rng.poisson(6.0, n), 0)}
    draw, decimals = numbers[kind]
    values = pd.Series(draw())
    if not as_text:
        return values
    return _format_numbers(values, decimals, layout["read"].get("decimal", "."), layout.get("na_rep", ""))


# ----------------------------------------------------------------------------- writers


def _write_text(source: pd.DataFrame, path: Path, layout: dict) -> None:
    read = layout["read"]
    sep = read.get("sep", "\t" if _file_format(layout) == "tsv" else ",")
    source.to_csv(path, sep=sep, index=False, encoding=read.get("encoding", "utf-8"), lineterminator="\n")


FIXED_TIMESTAMP = dt.datetime(2011, 7, 1, 9, 0, 0)
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


def _write_xlsx(source: pd.DataFrame, path: Path, layout: dict) -> None:
    """Write-only openpyxl workbook with real date cells, then re-zipped without timestamps."""
    if len(source) > XLSX_MAX_ROWS:
        raise ConfigError(f"{path.name}: {len(source)} rows exceed the {XLSX_MAX_ROWS} rows of an XLSX sheet")
    workbook = openpyxl.Workbook(write_only=True)
    workbook.properties.created = FIXED_TIMESTAMP
    workbook.properties.modified = FIXED_TIMESTAMP
    workbook.properties.creator = "psm-pipeline synth"
    sheet = workbook.create_sheet(layout["read"].get("sheet", "Sheet1"))
    sheet.append(list(source.columns))
    for row in _excel_rows(source):
        sheet.append(row)
    buffer = io.BytesIO()
    workbook.save(buffer)  # stamps properties.modified with the current time: undone below
    workbook.properties.modified = FIXED_TIMESTAMP
    core = tostring(workbook.properties.to_tree())
    path.write_bytes(_reproducible_zip(buffer.getvalue(), {"docProps/core.xml": core}))


def _excel_rows(source: pd.DataFrame):
    columns = []
    for name in source.columns:
        values = source[name]
        if pd.api.types.is_datetime64_any_dtype(values):
            cells = [None if pd.isna(v) else v.date() for v in values]
        elif pd.api.types.is_float_dtype(values):
            cells = [None if np.isnan(v) else (int(v) if v == int(v) else float(v))  # 53, not 53.0
                     for v in values.to_numpy(dtype=float, na_value=np.nan)]
        else:
            cells = [None if pd.isna(v) else (int(v) if isinstance(v, (int, np.integer)) else v)
                     for v in values.astype(object)]
        columns.append(cells)
    return zip(*columns)


def _reproducible_zip(data: bytes, replace: dict[str, bytes]) -> bytes:
    """The zip archive with fixed member timestamps (zipfile stamps the current time) and the
    members named in `replace` swapped for the given bytes."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            member = zipfile.ZipInfo(info.filename, date_time=ZIP_EPOCH)
            member.compress_type = zipfile.ZIP_DEFLATED
            member.external_attr = info.external_attr
            dst.writestr(member, replace.get(info.filename, src.read(info.filename)))
    return out.getvalue()


def _write_parquet(source: pd.DataFrame, path: Path, layout: dict) -> None:
    arrays = {}
    for name in source.columns:
        values = source[name]
        if pd.api.types.is_datetime64_any_dtype(values):
            arrays[name] = pa.array(values, type=pa.timestamp("ns")).cast(pa.date32())
        elif isinstance(values.dtype, pd.StringDtype) or values.dtype == object:
            arrays[name] = pa.array(values.astype(object).where(values.notna(), None), type=pa.string())
        else:
            arrays[name] = pa.array(values)
    pq.write_table(pa.table(arrays), path)


_WRITERS = {"csv": _write_text, "tsv": _write_text, "xlsx": _write_xlsx, "parquet": _write_parquet}


# ----------------------------------------------------------------------------- config


def center_config(directory: str = "resources/registry", xlsx_as_csv: bool = False) -> dict:
    """The `registry.centers` section of config.yaml that reads what write_extracts writes."""
    return {key: _center_entry(layout, directory) for key, layout in center_layouts(xlsx_as_csv).items()}


def _center_entry(layout: dict, directory: str) -> dict:
    entry = {"path": f"{directory}/{layout['file']}"}
    if "format" in layout:
        entry["format"] = layout["format"]
    if layout["read"]:
        entry["read"] = layout["read"]
    columns = {source: variable for variable, source in layout["columns"].items() if source != variable}
    if columns:
        entry["columns"] = columns
    entry["codes"] = {variable: codes for variable, codes in
                      ((v, _reader_codes(v, layout)) for v in VARIABLE_TYPES) if codes}
    return entry


def _reader_codes(variable: str, layout: dict) -> dict:
    """code -> level: the inverse of the writer's codes (treatment modalities collapse to the arm)."""
    codes = _writer_codes(variable, layout) or {}
    inverse = {}
    for level, code in codes.items():
        for c in (code if isinstance(code, list) else [code]):
            inverse[c] = MODALITY_ARM[level] if variable == "treatment" else level
    return inverse


def centers_yaml(directory: str = "resources/registry", xlsx_as_csv: bool = False) -> str:
    """config.yaml text of `registry.centers`, indented to sit under `registry:`."""
    body = yaml.safe_dump({"centers": center_config(directory, xlsx_as_csv)}, sort_keys=False, allow_unicode=True,
                          default_flow_style=None, width=110)
    return "".join("  " + line if line.strip() else line for line in body.splitlines(keepends=True))


# ----------------------------------------------------------------------------- CLI


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pipeline.synth",
        description="Write the nine center extracts of a synthetic NET liver-metastasis registry.")
    parser.add_argument("--out", required=True, type=Path, help="folder for the extracts")
    parser.add_argument("--n", type=int, default=N_DEMO, help=f"patients (default {N_DEMO})")
    parser.add_argument("--seed", type=int, default=SEED, help=f"random seed (default {SEED})")
    parser.add_argument("--no-defects", action="store_true",
                        help="clean extracts: no missing covariates and no rows to quarantine")
    parser.add_argument("--xlsx-as-csv", action="store_true",
                        help="write the XLSX center as CSV (fast at millions of patients; "
                             "the config then needs --print-config's mapping)")
    parser.add_argument("--print-config", nargs="?", const="resources/registry", metavar="DIR",
                        help="also print the registry.centers section of config.yaml for these files, "
                             "with paths under DIR as the study's working directory sees them "
                             "(default: resources/registry)")
    args = parser.parse_args(argv)
    try:
        patients = simulate_patients(args.n, args.seed)
        paths = write_extracts(patients, args.out, args.seed, defects=not args.no_defects,
                               xlsx_as_csv=args.xlsx_as_csv)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for key, path in paths.items():
        print(f"{key}: {path}", file=sys.stderr)
    if args.print_config:
        print(centers_yaml(args.print_config, args.xlsx_as_csv), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
