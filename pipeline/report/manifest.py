"""The results manifest, and the one tool that compares two of them.

`results/manifest.json` holds the SHA-256 of every result file and every published number
(ingest counts, attrition, matching counts, balance, survival) flattened to readable keys such as
`asymptomatic_high_burden/survival/treated/median`. Two uses, one tool:

- a consortium site compares its manifest with a reference site's:
      python -m pipeline.report.manifest compare reference/manifest.json results/manifest.json
- CI compares the demo's manifest with the committed golden record (numbers only):
      python -m pipeline.report.manifest compare tests/golden/manifest.json results/manifest.json --numbers-only

- a site checks its shareable results (results/shareable/manifest.json: the numbers as shared, a
  suppressed one as its marker "<5" or "suppressed") against the reference site's:
      python -m pipeline.report.manifest compare reference/shareable/manifest.json results/shareable/manifest.json

Differences are printed as `quantity: old -> new`, one per line; a number suppressed on both sides
agrees, one suppressed on one side only is a difference.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import re
import sys
from pathlib import Path

import pandas as pd

from pipeline.io import read_json, read_result_csv
from pipeline.provenance import sha256_file
from pipeline.report.disclosure import is_marker

TIMESTAMP = re.compile(rb'(<p class="muted" id="run-timestamp">)[^<]*(</p>)')
SKIPPED_DIRS = {"logs", "benchmarks", "shareable", "disclosure"}   # the shareable tier has its own manifest


def result_files(results: Path) -> list[Path]:
    files = [p for p in results.rglob("*") if p.is_file() and p.name != "manifest.json"]
    return sorted(p for p in files if not SKIPPED_DIRS & set(p.relative_to(results).parts[:-1]))


def file_digest(path: Path) -> str:
    """SHA-256 of the file; for reports, with the one marked run timestamp blanked out."""
    if path.suffix != ".html":
        return sha256_file(path)
    return hashlib.sha256(TIMESTAMP.sub(rb"\1\2", path.read_bytes())).hexdigest()


def _is_number(value) -> bool:
    """A published number: a number, null, or (in the shareable tier) a suppressed one's marker."""
    return isinstance(value, (int, float)) or value is None or is_marker(value)


def flatten(value, prefix: str, out: dict) -> dict:
    if isinstance(value, dict):
        for key, item in value.items():
            flatten(item, f"{prefix}/{key}", out)
    elif isinstance(value, list) and all(map(_is_number, value)):
        for i, item in enumerate(value):
            out[f"{prefix}/{i}"] = item
    elif _is_number(value):
        out[prefix] = value
    return out


def analysis_numbers(folder: Path) -> dict:
    name = folder.name
    results = {stem: json.loads((folder / f"{stem}.json").read_text())
               for stem in ("cohort", "matching", "survival") if (folder / f"{stem}.json").exists()}
    balance = folder / "balance.csv"
    table = read_result_csv(balance) if balance.exists() else None
    return published_numbers(name, results, None if table is None else table.to_dict("records"))


def published_numbers(name: str, results: dict, balance: list[dict] | None) -> dict:
    """An analysis's numbers: ``results`` {cohort, matching, survival} (the JSON results), ``balance``
    the balance table's rows (None: no table)."""
    numbers: dict = {}
    for stem, result in results.items():
        flatten(result, f"{name}/{stem}", numbers)
    if balance and "estimable" not in balance[0]:     # not a not-estimable placeholder
        for row in balance:
            for column, value in row.items():
                if column not in ("variable", "flag"):
                    numbers[f"{name}/balance/{row['variable']}/{column}"] = _balance_number(value)
    return numbers


def _balance_number(value):
    if is_marker(value):
        return value
    return None if value is None or pd.isna(value) else float(value)


def build_manifest(results: Path, files: list[Path] | None = None) -> dict:
    """Numbers from the result files under `results`; hashes of `files` (default: all result files)."""
    results = Path(results)
    numbers = flatten(json.loads((results / "registry/ingest_summary.json").read_text()), "registry", {})
    for folder in sorted(p.parent for p in results.glob("*/survival.json")):
        numbers.update(analysis_numbers(folder))
    files = result_files(results) if files is None else sorted(Path(f) for f in files)
    digests = {str(p.relative_to(results)): file_digest(p) for p in files}
    return {"files": digests, "numbers": numbers}


def write_manifest(results: Path, output: Path, files: list[Path] | None = None) -> None:
    output.write_text(json.dumps(build_manifest(results, files), indent=1, sort_keys=True) + "\n")


def build_shareable_manifest(registry: Path, disclosed: list[Path], shareable: Path, files: list[Path]) -> dict:
    """The shareable tier's manifest: the disclosed numbers (results/disclosure/: the registry
    summary and one file per analysis, as pipeline.report.disclosure made them) under the exact
    manifest's keys, and the hashes of the shareable files (relative to ``shareable``)."""
    numbers = flatten(read_json(registry), "registry", {})
    for path in sorted(map(Path, disclosed)):
        bundle = read_json(path)
        results = {"cohort": bundle["attrition"], "matching": bundle["matching"], "survival": bundle["survival"]}
        numbers.update(published_numbers(path.stem, results, bundle["balance"]))
    digests = {str(Path(p).relative_to(shareable)): file_digest(Path(p)) for p in sorted(map(Path, files))}
    return {"files": digests, "numbers": numbers}


def write_shareable_manifest(registry: Path, disclosed: list[Path], shareable: Path, files: list[Path],
                             output: Path) -> None:
    manifest = build_shareable_manifest(registry, disclosed, shareable, files)
    Path(output).write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")


def _same(old, new, rtol: float) -> bool:
    if old is None or new is None or isinstance(old, (bool, str)) or isinstance(new, (bool, str)):
        return old == new
    return math.isclose(old, new, rel_tol=rtol, abs_tol=0.0)


def _difference(key: str, old, new) -> str:
    line = f"{key}: {old} -> {new}"
    if is_marker(old) != is_marker(new):
        line += " (suppressed on one side only)"
    return line


def compare(old: dict, new: dict, *, rtol: float = 0.0, numbers_only: bool = False) -> list[str]:
    """Readable differences between two manifests (empty when they agree)."""
    lines = []
    for key in sorted(old["numbers"].keys() | new["numbers"].keys()):
        if key not in new["numbers"]:
            lines.append(f"{key}: {old['numbers'][key]} -> (missing)")
        elif key not in old["numbers"]:
            lines.append(f"{key}: (missing) -> {new['numbers'][key]}")
        elif not _same(old["numbers"][key], new["numbers"][key], rtol):
            lines.append(_difference(key, old["numbers"][key], new["numbers"][key]))
    if not numbers_only:
        for name in sorted(old["files"].keys() | new["files"].keys()):
            a, b = old["files"].get(name), new["files"].get(name)
            if a != b:
                lines.append(f"file {name}: {'(missing)' if a is None else a[:12]} -> "
                             f"{'(missing)' if b is None else b[:12]}")
    return lines


class ManifestError(Exception):
    """A file given to compare that is not a manifest (missing, unreadable, not JSON)."""


def _load(path: Path) -> dict:
    path = Path(path)
    if path.is_dir() and not (path / "registry").is_dir():     # a shareable folder: its manifest
        path = path / "manifest.json"
    if path.is_dir():
        return build_manifest(path)
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ManifestError(f"{path}: not a readable manifest ({error})") from None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeline.report.manifest", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    write = sub.add_parser("write", help="write the manifest of a results folder")
    write.add_argument("results", type=Path)
    write.add_argument("-o", "--output", type=Path)
    cmp = sub.add_parser("compare", help="compare two manifests (or results folders)")
    cmp.add_argument("old", type=Path, help="reference manifest.json or results folder")
    cmp.add_argument("new", type=Path, help="manifest.json or results folder to check")
    cmp.add_argument("--rtol", type=float, default=0.0, help="relative tolerance for numbers (default exact)")
    cmp.add_argument("--numbers-only", action="store_true", help="ignore file hashes")
    args = parser.parse_args(argv)
    if args.command == "write":
        write_manifest(args.results, args.output or args.results / "manifest.json")
        return 0
    try:
        differences = compare(_load(args.old), _load(args.new), rtol=args.rtol, numbers_only=args.numbers_only)
    except ManifestError as error:
        print(f"manifest: {error}", file=sys.stderr)
        return 2
    if differences:
        print(f"{len(differences)} difference(s) between {args.old} (old) and {args.new} (new):")
        print("\n".join(f"  {line}" for line in differences))
        return 1
    print(f"{args.new} agrees with {args.old}" + (" (numbers)" if args.numbers_only else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
