"""python -m pipeline.federated pool BUNDLE... -o OUT: pool the sites' bundles into OUT/ (pooled.json,
km.png, forest.png, report.html)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pipeline.errors import PipelineError
from pipeline.federated.pool import pool, read_bundles
from pipeline.federated.report import write_pooled


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeline.federated", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    pool_command = commands.add_parser("pool", help="pool the sites' bundles (results/federated/<analysis>.json)")
    pool_command.add_argument("bundles", nargs="+", type=Path, help="the sites' bundles of one analysis")
    pool_command.add_argument("-o", "--output", type=Path, required=True, help="folder of the pooled report")
    args = parser.parse_args(argv)
    try:
        bundles = read_bundles(args.bundles)
        result, curves = pool(bundles)
        write_pooled(result, curves, bundles, args.output)
    except PipelineError as err:
        print(f"psm-pipeline federated: {err}", file=sys.stderr)
        return 2
    print(f"pooled {len(bundles)} bundles of {result['analysis']} into {args.output}/ (report.html, pooled.json)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
