"""Deterministic result writers and the harness the workflow's scripts run in.

Result files must be byte-identical for the same inputs, config and seed, so every writer here
fixes what would otherwise vary: key order, float formatting, line endings, file metadata.
"""
from __future__ import annotations

import json
import logging
import math
import sys
import traceback
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.errors import PipelineError


def to_jsonable(value):
    """Plain Python types for json: numpy scalars unwrapped, NaN/inf -> None."""
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        value = float(value)
        return value if math.isfinite(value) else None
    if isinstance(value, np.bool_):
        return bool(value)
    if value is pd.NA or value is pd.NaT:
        return None
    return value


def write_json(obj, path) -> None:
    Path(path).write_text(json.dumps(to_jsonable(obj), indent=2, allow_nan=False) + "\n")


def read_json(path):
    return json.loads(Path(path).read_text())


def write_csv(frame: pd.DataFrame, path) -> None:
    """CSV with full float precision (repr round-trips) and '\\n' line endings."""
    frame.to_csv(path, index=False, lineterminator="\n")


def read_result_csv(path, **kwargs) -> pd.DataFrame:
    """Read a CSV this workflow wrote: ids as text, floats exactly as written (round-trip parser)."""
    dtype = {"patient_id": str, "treated_id": str, "control_id": str} | kwargs.pop("dtype", {})
    return pd.read_csv(path, dtype=dtype, float_precision="round_trip", **kwargs)


def write_parquet(frame: pd.DataFrame, path) -> None:
    table = pa.Table.from_pandas(frame.reset_index(drop=True), preserve_index=False)
    pq.write_table(table, path, compression="zstd")


def run_script(main: Callable, smk) -> None:
    """Run a rule's `main(snakemake)` with stderr and logging sent to the rule's log.

    A PipelineError (a problem with the user's data or config) is written as one message without
    a traceback; anything else is a bug and keeps its traceback in the log.
    """
    log_path = smk.log[0] if smk.log else None
    log_file = open(log_path, "w") if log_path else sys.stderr
    logging.basicConfig(stream=log_file, level=logging.INFO, format="%(levelname)s %(message)s", force=True)
    sys.stderr = log_file
    try:
        main(smk)
    except PipelineError as err:
        message = f"psm-pipeline: {err}"
        print(message, file=log_file)
        print(message, file=sys.__stderr__)
        sys.exit(1)
    except Exception:
        traceback.print_exc(file=log_file)
        raise
    finally:
        log_file.flush()
