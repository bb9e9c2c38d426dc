"""Ingest benchmark: a 1,000,000-row extract as CSV (semicolon, decimal comma, dd.mm.yyyy) and as Parquet.

Times read_extract and harmonize_center separately and reports each case's peak memory (max RSS of a
fresh child process, so the cases do not see each other's allocations). Prints a markdown table.
Besides the clean CSV: the same with every field quoted (as R's write.csv quotes text), and with
one line in 5,000 malformed (a field too many, a stray quote, a NUL byte), the slower reading paths.

    python benchmarks/bench_ingest.py [--rows 1000000]
"""

from __future__ import annotations

import argparse
import csv
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

VARIABLES = {
    "patient_id": {"type": "id"},
    "treatment": {"type": "category", "levels": ["resection", "iat"]},
    "treatment_date": {"type": "date"},
    "age": {"type": "numeric", "min": 18, "max": 100},
    "sex": {"type": "category", "levels": ["female", "male"]},
    "primary_site": {"type": "category", "levels": ["pancreas", "small_bowel", "other"]},
    "grade": {"type": "category", "levels": ["G1", "G2", "G3"]},
    "ki67": {"type": "numeric", "min": 0, "max": 100},
    "ecog": {"type": "integer", "min": 0, "max": 4},
    "functional": {"type": "binary"},
    "symptomatic": {"type": "binary"},
    "n_lesions": {"type": "integer", "min": 1, "max": 200},
    "last_followup_date": {"type": "date"},
    "death": {"type": "binary"},
    "death_date": {"type": "date"},
}
OUTCOME = {"time_zero": "treatment_date", "end": "last_followup_date", "event": "death", "event_date": "death_date"}
COLUMNS = {"pid": "patient_id", "therapie": "treatment", "op_datum": "treatment_date", "alter": "age",
           "geschlecht": "sex", "primaer": "primary_site", "fu_datum": "last_followup_date", "tod": "death",
           "tod_datum": "death_date"}
CODES = {"treatment": {"RES": "resection", "TACE": "iat", "TARE": "iat", "DEB": "iat"},
         "sex": {"m": "male", "w": "female"}, "primary_site": {"pank": "pancreas", "dd": "small_bowel", "x": "other"}}
CSV_CENTER = {"path": "bench.csv", "read": {"sep": ";", "decimal": ",", "date_format": "%d.%m.%Y"},
              "columns": COLUMNS, "codes": CODES}
PARQUET_CENTER = {"path": "bench.parquet", "columns": COLUMNS, "codes": CODES}
CASES = {"csv": CSV_CENTER, "csv-quoted": {**CSV_CENTER, "path": "bench_quoted.csv"},
         "csv-malformed": {**CSV_CENTER, "path": "bench_malformed.csv"}, "parquet": PARQUET_CENTER}


def typed_extract(n: int, seed: int = 1) -> pd.DataFrame:
    """A realistic extract with typed columns; about 1% of rows carry a defect."""
    rng = np.random.default_rng(seed)
    start = pd.Timestamp("1985-01-01") + pd.to_timedelta(rng.integers(0, 9000, n), unit="D")
    end = start + pd.to_timedelta(rng.integers(1, 5000, n), unit="D")
    dead = rng.random(n) < 0.6
    frame = pd.DataFrame({
        "pid": np.char.add("P", np.arange(n).astype(str)),
        "therapie": rng.choice(["RES", "TACE", "TARE", "DEB"], n),
        "op_datum": start,
        "alter": np.round(rng.normal(58, 11, n).clip(18, 95), 1),
        "geschlecht": rng.choice(["m", "w"], n),
        "primaer": rng.choice(["pank", "dd", "x"], n),
        "grade": rng.choice(["G1", "G2", "G3", ""], n),
        "ki67": np.round(rng.uniform(0, 40, n), 1),
        "ecog": rng.integers(0, 4, n).astype(float),
        "functional": rng.choice(["0", "1", "ja", "nein"], n),
        "symptomatic": rng.choice(["0", "1"], n),
        "n_lesions": rng.integers(1, 30, n),
        "fu_datum": end,
        "tod": dead.astype(int),
        "tod_datum": end.where(dead),
        "kommentar": rng.choice(["", "ok", "siehe Akte"], n),
    })
    bad = rng.random(n) < 0.01
    frame["ecog"] = frame["ecog"].where(~bad, 9.0)
    return frame


def write_extracts(frame: pd.DataFrame, folder: Path) -> None:
    text = frame.copy()
    for col in ("op_datum", "fu_datum", "tod_datum"):
        text[col] = text[col].dt.strftime("%d.%m.%Y").fillna("")
    text["ecog"] = text["ecog"].astype(int).astype(str)
    text.to_csv(folder / "bench.csv", sep=";", decimal=",", index=False)
    text.to_csv(folder / "bench_quoted.csv", sep=";", decimal=",", index=False, quoting=csv.QUOTE_ALL)
    (folder / "bench_malformed.csv").write_bytes(malformed((folder / "bench.csv").read_bytes()))
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), folder / "bench.parquet")


def malformed(data: bytes, every: int = 5000) -> bytes:
    """Every ``every``-th data line broken, in turn: a field too many, a stray quote, a NUL byte."""
    lines = data.split(b"\n")
    for k, i in enumerate(range(every, len(lines) - 1, every)):
        line = lines[i]
        lines[i] = [line + b";extra", line.replace(b";", b';"', 1), line.replace(b";", b"\x00;", 1)][k % 3]
    return b"\n".join(lines)


def run_case(folder: Path, fmt: str) -> dict:
    """One case in this process: read + harmonize timings, rows accepted."""
    from pipeline.config.settings import Center, Outcome, Variable
    from pipeline.config.validate import block_with_defaults
    from pipeline.ingest.harmonize import harmonize_center
    from pipeline.ingest.extract import read_extract

    center = Center.from_dict(block_with_defaults(CASES[fmt], "center"))
    variables = {name: Variable.from_dict(spec) for name, spec in VARIABLES.items()}
    t0 = time.perf_counter()
    raw = read_extract(folder / center.path, center)
    t1 = time.perf_counter()
    accepted, quarantine, summary = harmonize_center(raw, "bench", center, variables, Outcome.from_dict(OUTCOME),
                                                     center.path, "months")
    t2 = time.perf_counter()
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"format": fmt, "rows": len(raw), "read_s": t1 - t0, "harmonize_s": t2 - t1,
            "accepted": summary["accepted"], "quarantined": summary["quarantined"], "peak_mb": peak_mb}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--case", help=argparse.SUPPRESS)
    parser.add_argument("--write", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        print(json.dumps(run_case(Path(args.folder), args.case)))
        return
    if args.write:
        write_extracts(typed_extract(args.rows), Path(args.folder))
        return
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        # written by a child too: a process keeps its peak RSS across exec, so the cases' children
        # must not be forked from a parent that held the whole extract
        subprocess.run([sys.executable, __file__, "--write", "--rows", str(args.rows), "--folder", tmp], check=True)
        sizes = {fmt: (folder / center["path"]).stat().st_size / 2**20 for fmt, center in CASES.items()}
        results = []
        for fmt in CASES:
            out = subprocess.run([sys.executable, __file__, "--case", fmt, "--folder", tmp],
                                 check=True, capture_output=True, text=True)
            results.append(json.loads(out.stdout))
    print("| extract | rows | file MB | read s | harmonize s | total s | accepted | quarantined | peak RSS MB |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        print(f"| {r['format']} | {r['rows']:,} | {sizes[r['format']]:.0f} | {r['read_s']:.2f} | "
              f"{r['harmonize_s']:.2f} | {r['read_s'] + r['harmonize_s']:.2f} | {r['accepted']:,} | "
              f"{r['quarantined']:,} | {r['peak_mb']:.0f} |")


if __name__ == "__main__":
    main()
