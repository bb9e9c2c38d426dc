"""CSV writing: pipeline.io.write_csv (Arrow formatting, pipeline/csv_text.py) against pandas' to_csv
of the same spreadsheet-safe frame, on a synthetic matched sample laid out as matched.csv (text ids,
center, group, nullable subclass, weight, ps, distance). Checks that both files are byte-identical.
Prints a markdown table of CPU seconds (the minimum over --repeat runs).

    python benchmarks/bench_csv.py [--rows 1000000 5000000] [--repeat 2]
"""
from __future__ import annotations

import argparse
import filecmp
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from pipeline.io import ARROW_STRING, _spreadsheet_safe, write_csv  # noqa: E402


def matched_like(rows: int, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    ps = rng.beta(2, 3, rows)
    return pd.DataFrame({
        "patient_id": pd.array([f"NET-{i:08d}" for i in range(rows)], dtype=ARROW_STRING),
        "center": pd.Categorical.from_codes(rng.integers(0, 9, rows), [f"center_{c}" for c in "abcdefghi"]),
        "group": np.where(rng.random(rows) < 0.5, "treated", "control"),
        "subclass": pd.array(rng.integers(1, rows // 2 + 1, rows), dtype="Int64"),
        "weight": np.where(rng.random(rows) < 0.9, 1.0, rng.random(rows)),
        "ps": ps,
        "distance": np.log(ps / (1 - ps)),
    })


def cpu_seconds(write, repeat: int) -> float:
    best = np.inf
    for _ in range(repeat):
        start = time.process_time()
        write()
        best = min(best, time.process_time() - start)
    return best


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 5_000_000])
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args(argv)
    print("| rows | write_csv CPU s | pandas to_csv CPU s | pandas / write_csv | byte-identical |")
    print("|---:|---:|---:|---:|---|")
    with tempfile.TemporaryDirectory() as scratch:
        ours, theirs = Path(scratch) / "ours.csv", Path(scratch) / "pandas.csv"
        for rows in args.rows:
            frame = matched_like(rows)
            fast = cpu_seconds(lambda: write_csv(frame, ours), args.repeat)
            slow = cpu_seconds(lambda: _spreadsheet_safe(frame).to_csv(theirs, index=False, lineterminator="\n"),
                               args.repeat)
            same = filecmp.cmp(ours, theirs, shallow=False)
            row = f"| {rows:,} | {fast:.2f} | {slow:.2f} | {slow / fast:.1f}× | {'yes' if same else 'NO'} |"
            print(row, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
