"""The bootstrap of the treated minus control median and RMST: resampling the matched sets.

Each resample is a vector of set multiplicities, so the arms' weighted at-risk and event totals per
distinct time for a chunk of resamples are one sparse (time x set) product, and the KM curves, the
medians (R's quantile rule) and the RMSTs (R's survmean) of all of them are column operations.
Chunk c draws from ``default_rng([seed, c])``, so the replicates do not depend on how they are
split over jobs (bootstrap_shard).
"""
from __future__ import annotations

import numba
import numpy as np
from scipy import sparse

from pipeline.errors import DataError
from pipeline.outcome.cox import group_codes
from pipeline.outcome.km import TOLERANCE, finite_or_none

BOOTSTRAP_CHUNK = 32
"""Resamples drawn and summarised together."""

BOOTSTRAP_FIELDS = ("median_difference", "rmst_difference")
"""What each resample records (the fields of bootstrap_differences' structured array)."""


def bootstrap_shard(replicates: int, shards: int, shard: int, chunk: int = BOOTSTRAP_CHUNK) -> range:
    """The chunks one of `shards` jobs computes: whole chunks, so every split draws the same
    resamples and the gathered differences equal an unsplit run's."""
    n_chunks = -(-replicates // chunk)
    return range(shard * n_chunks // shards, (shard + 1) * n_chunks // shards)


def bootstrap_differences(time, event, treated, weight, cluster, *, tau, replicates, seed, sets=None,
                          chunk=BOOTSTRAP_CHUNK, chunks=None) -> np.ndarray:
    """Treated minus control median and RMST (to ``tau``) of each resample in `chunks` (default:
    all of them), as a structured array with the fields BOOTSTRAP_FIELDS.

    The resampled units are the distinct ``cluster`` values, or, with ``sets`` = (row, set_id)
    membership pairs (matching with replacement: a control row may be in several sets), the
    matched sets: a drawn set brings its treated row and its share of each control's weight
    (1/k of the set, relative to the control's total over its sets).
    A resample's median that is not reached counts as +infinity (beyond follow-up), so a
    difference can be infinite or undefined (NaN). Both statistics come from the same curves.
    """
    time, event, weight = (np.asarray(a, dtype=float) for a in (time, event, weight))
    treated = np.asarray(treated, dtype=bool)
    rows, set_codes, share = _set_shares(treated, cluster, sets)
    n_sets = int(set_codes.max()) + 1
    times, t_idx = np.unique(time, return_inverse=True)
    k = len(times)
    block = np.where(treated, 0, 2 * k)[rows] + t_idx[rows]   # treated blocks, then control
    entry_weight = weight[rows] * share
    design = sparse.csc_matrix(
        (np.concatenate([entry_weight, entry_weight * event[rows]]),
         (np.concatenate([block, block + k]), np.concatenate([set_codes, set_codes]))),
        shape=(4 * k, n_sets))
    design.eliminate_zeros()      # the censored rows' event entries: adding 0 changes no sum
    chunks = bootstrap_shard(replicates, 1, 0, chunk) if chunks is None else chunks
    width = min(chunk, replicates)
    tallies = np.empty((width, n_sets), dtype=np.int32)   # reused: no fresh pages per chunk
    totals = np.empty((4 * k, width))
    parts = []
    for c in chunks:
        b = min(chunk, replicates - c * chunk)
        _chunk_totals(design, np.random.default_rng([seed, c]), tallies[:b], totals[:, :b])
        part = np.empty(b, dtype=[(name, float) for name in BOOTSTRAP_FIELDS])
        treated_surv = _km_columns(totals[:k, :b], totals[k:2 * k, :b])
        control_surv = _km_columns(totals[2 * k:3 * k, :b], totals[3 * k:, :b])
        with np.errstate(invalid="ignore"):          # both medians not reached: undefined (NaN)
            part["median_difference"] = (_median_columns(times, totals[:k, :b], treated_surv)
                                         - _median_columns(times, totals[2 * k:3 * k, :b], control_surv))
        part["rmst_difference"] = (_rmst_columns(times, treated_surv, tau)
                                   - _rmst_columns(times, control_surv, tau))
        parts.append(part)
    return np.concatenate(parts) if parts else np.empty(0, dtype=[(n, float) for n in BOOTSTRAP_FIELDS])


def gathered_replicates(gathered, replicates: int) -> np.ndarray:
    """The bootstrap jobs' results, concatenated in job order, checked to be all of them."""
    gathered = np.asarray(gathered)
    if gathered.dtype.names != BOOTSTRAP_FIELDS:
        raise DataError("survival: the gathered bootstrap replicates lack the fields "
                        f"{', '.join(BOOTSTRAP_FIELDS)}; rerun the bootstrap jobs")
    if len(gathered) != replicates:
        raise DataError(f"survival: {len(gathered)} gathered bootstrap replicates, expected {replicates}")
    return gathered


def percentile_interval(diffs: np.ndarray):
    """(lower, upper, n undefined) of bootstrap differences; an infinite limit is None."""
    defined = diffs[~np.isnan(diffs)]
    if len(defined) == 0:
        return None, None, len(diffs)
    with np.errstate(invalid="ignore"):
        lower, upper = np.quantile(defined, [0.025, 0.975])
    return finite_or_none(lower), finite_or_none(upper), int(np.isnan(diffs).sum())


def _chunk_totals(design, rng, tallies, totals):
    """totals = design @ (the multiplicities of the sets in each of the chunk's resamples), one
    column per resample; ``tallies`` (resamples x sets) is scratch space.

    Resample r draws its sets after resample r - 1's from the chunk's generator, the stream of one
    (resamples x sets) draw; drawn as int32, which gives the same values as int64 below 2**31.
    """
    n_sets = tallies.shape[1]
    for r in range(tallies.shape[0]):
        _tally(rng.integers(0, n_sets, size=n_sets, dtype=np.int32), tallies[r])
    _design_times_tallies(design.indptr, design.indices, design.data, tallies, totals)


@numba.njit(cache=True, nogil=True)
def _tally(drawn, tally):
    """tally[s] = how often ``drawn`` holds set s."""
    tally[:] = 0
    for s in drawn:
        tally[s] += 1


_TILE = 64
"""Sets whose tallies _design_times_tallies copies together into a (set x resample) tile."""


@numba.njit(cache=True, nogil=True)
def _design_times_tallies(indptr, indices, data, tallies, totals):
    """totals = design @ tallies.T for a CSC design (indptr, indices, data), in the order of scipy's
    csc_matvecs: the sets in turn, each set's entries as stored, every product added to its row's
    running sum. So the sums equal ``design.dot(tallies.T.astype(float))`` bit for bit. The tallies
    are read a tile of sets at a time and transposed there, so that each entry's products take
    consecutive counts."""
    n_resamples, n_sets = tallies.shape
    totals[:] = 0.0
    tile = np.empty((_TILE, n_resamples))
    for first in range(0, n_sets, _TILE):
        last = min(first + _TILE, n_sets)
        for r in range(n_resamples):
            for s in range(first, last):
                tile[s - first, r] = tallies[r, s]
        for s in range(first, last):
            for entry in range(indptr[s], indptr[s + 1]):
                row, value = indices[entry], data[entry]
                for r in range(n_resamples):
                    totals[row, r] += value * tile[s - first, r]


def _set_shares(treated, cluster, sets):
    """Membership entries (row, set code, share of the row's weight the set carries)."""
    n = len(treated)
    if sets is None:
        return np.arange(n), group_codes(cluster), np.ones(n)
    rows, set_ids = (np.asarray(a) for a in sets)
    if len(rows) != len(set_ids) or not np.array_equal(np.unique(rows), np.arange(n)):
        raise DataError("survival: bootstrap sets must list every matched row (0..n-1) in at "
                        "least one matched set")
    set_codes = group_codes(set_ids)
    controls_in_set = np.bincount(set_codes, ~treated[rows])
    raw = np.where(treated[rows], 1.0, 1.0 / np.maximum(controls_in_set[set_codes], 1))
    return rows, set_codes, raw / np.bincount(rows, raw, n)[rows]


def _km_columns(at_time, events):
    """KM survival per column (resample) on the pooled time grid: flat where the arm has no event."""
    n_risk = np.cumsum(at_time[::-1], axis=0)[::-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        hazard = np.where(events > 0, events / n_risk, 0.0)
    return np.cumprod(1.0 - hazard, axis=0)


def _rmst_columns(times, surv, tau):
    """Area under each column's KM step curve up to tau, as R's survmean: S = 1 before the first
    time, S(t_j) on [t_j, t_j+1), the last value carried flat to tau."""
    ends = np.minimum(np.append(times[1:], np.inf), tau)
    return min(times[0], tau) + np.maximum(ends - times, 0.0) @ surv


def _median_columns(times, at_time, surv):
    """KM median per column (resample) on the pooled time grid, R's quantile rule.

    Weights are positive, so a time with weight at risk is a time the arm was observed at.
    """
    first = _first_true(surv <= 0.5 + TOLERANCE)
    second = _first_true(surv <= 0.5 - TOLERANCE)
    observed = at_time > 0
    last_row = observed.shape[0] - 1 - np.argmax(observed[::-1], axis=0)
    end = surv[last_row, np.arange(surv.shape[1])]
    flat_end = (np.abs(end - 0.5) < TOLERANCE) & (end <= 0.5)
    t_first = np.where(first >= 0, times[np.maximum(first, 0)], np.inf)
    t_second = np.where(second >= 0, times[np.maximum(second, 0)], np.inf)
    return (t_first + np.where(flat_end, times[last_row], t_second)) / 2


def _first_true(mask):
    """Row index of the first True per column, -1 when none."""
    return np.where(mask.any(axis=0), np.argmax(mask, axis=0), -1)
