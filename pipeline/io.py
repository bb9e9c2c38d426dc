"""Deterministic result writers and the harness the workflow's scripts run in.

Result files must be byte-identical for the same inputs, config and seed, so every writer here
fixes what would otherwise vary: key order, float formatting, line endings, file metadata.
"""
from __future__ import annotations

import json
import logging
import math
import sys
import textwrap
import time
import traceback
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.errors import DataError, NotEstimable, PipelineError


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
    with _readable(path):
        return json.loads(Path(path).read_text())


def write_csv(frame: pd.DataFrame, path) -> None:
    """CSV with full float precision (repr round-trips) and '\\n' line endings."""
    frame.to_csv(path, index=False, lineterminator="\n")


def read_result_csv(path, **kwargs) -> pd.DataFrame:
    """Read a CSV this workflow wrote: ids as text, floats exactly as written (round-trip parser)."""
    dtype = {"patient_id": str, "treated_id": str, "control_id": str} | kwargs.pop("dtype", {})
    with _readable(path):
        return pd.read_csv(path, dtype=dtype, float_precision="round_trip", **kwargs)


def write_parquet(frame: pd.DataFrame, path) -> None:
    table = pa.Table.from_pandas(frame.reset_index(drop=True), preserve_index=False)
    pq.write_table(table, path, compression="zstd")


def read_parquet(path, columns: list[str] | None = None) -> pd.DataFrame:
    """Read a Parquet file this workflow wrote (only ``columns``, when given)."""
    with _readable(path):
        return pd.read_parquet(path, columns=columns)


@contextmanager
def _readable(path):
    """Turn a damaged intermediate file into one line that names it and says how to rebuild it."""
    try:
        yield
    except (OSError, ValueError, pa.ArrowException, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"{path}: cannot be read ({detail}); it is a result of an earlier step: delete it "
                        "and run snakemake again to rebuild it") from None


# --- analyses the data cannot answer ------------------------------------------------------------

def estimable_record(reason: str, stage: str) -> dict:
    """What a not-estimable stage writes in place of its results (and what later stages pass on)."""
    return {"estimable": False, "reason": reason, "stage": stage}


def upstream_not_estimable(paths) -> dict | None:
    """The not-estimable record of the first JSON input that carries one, else None."""
    for path in paths:
        if str(path).endswith(".json"):
            record = read_json(path)
            if isinstance(record, dict) and record.get("estimable") is False:
                return estimable_record(record["reason"], record["stage"])
    return None


def write_not_estimable(paths, record: dict) -> None:
    """Every output of a stage as a not-estimable result: JSON the record, tables one row
    (estimable, reason), figures a picture of the sentence, arrays empty."""
    table = pd.DataFrame({"estimable": [False], "reason": [record["reason"]]})
    for path in map(str, paths):
        if path.endswith(".json"):
            write_json(record, path)
        elif path.endswith(".csv"):
            write_csv(table, path)
        elif path.endswith(".parquet"):
            write_parquet(table, path)
        elif path.endswith(".png"):
            _reason_figure(record["reason"], path)
        elif path.endswith(".npy"):
            np.save(path, np.empty(0), allow_pickle=False)
        else:
            raise ValueError(f"no not-estimable form for {path}")


def _reason_figure(reason: str, path) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 1.6))
    fig.text(0.5, 0.5, textwrap.fill(f"Not estimable: {reason}", 80), ha="center", va="center",
             fontsize=9, wrap=True, usetex=False, parse_math=False)
    fig.savefig(path, format="png", dpi=100, metadata={"Software": None})


def run_script(main: Callable, smk, propagate: bool = True) -> None:
    """Run a rule's `main(snakemake)` with stderr and logging sent to the rule's log.

    An analysis that is not estimable is a result, not a failure: when ``propagate`` and an input
    JSON says its stage was not estimable, or when `main` raises NotEstimable, every output is
    written as a not-estimable result (write_not_estimable) and the job succeeds. Any other
    PipelineError (a problem with the user's data or config) is written as one message without a
    traceback; anything else is a bug and keeps its traceback in the log.
    """
    log_path = smk.log[0] if smk.log else None
    log_file = open(log_path, "w") if log_path else sys.stderr
    logging.basicConfig(stream=log_file, level=logging.INFO, format="%(levelname)s %(message)s", force=True)
    sys.stderr = log_file
    started = time.perf_counter()
    try:
        upstream = upstream_not_estimable(smk.input) if propagate else None
        if upstream:
            logging.info("not estimable (stage %s): %s", upstream["stage"], upstream["reason"])
            write_not_estimable(smk.output, upstream)
        else:
            main(smk)
        logging.info("%s: wrote %s in %.2f s", smk.rule, ", ".join(map(str, smk.output)),
                     time.perf_counter() - started)
    except NotEstimable as err:
        logging.info("not estimable: %s", err.reason)
        write_not_estimable(smk.output, estimable_record(err.reason, smk.rule))
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
