"""What every weighting scheme shares: the weighted sample as a MatchResult, trimming by percentile
of the propensity score, stabilisation and the estimands' words.

A scheme (one module, registered in pipeline.design.weighting.SCHEMES by its estimand) is a formula
from the propensity score to each patient's weight; ``weigh`` applies it to the patients who can be
weighted and returns the MatchResult every design returns: a weight per patient (0 = not in the
weighted sample), no matched sets (subclass 0 for everyone) and no pairs.

Who is left out, in this order:
1. ``excluded``: patients discarded by the propensity stage (common support, ``matching.discard``)
   and those with a score of exactly 0 or 1, whose inverse-probability weight would be infinite;
2. with ``weighting.trim`` = q, Stürmer et al.'s (2010) asymmetric trimming: patients whose score is
   below the q quantile of the treated patients' scores or above the 1 - q quantile of the control
   patients' scores (quantiles of the patients left after step 1, R's default type 7; a score equal
   to a bound is kept). Trimming excludes patients (weight 0); it does not cap weights, unlike
   WeightIt's ``trim()``, which sets the weights above a quantile of the weights to that quantile.
Stabilisation (WeightIt's ``stabilize``) multiplies each weight by the share of the weighted
sample's patients in the patient's arm.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd

from pipeline.config.settings import Weighting
from pipeline.design.matching.common import MatchResult

ESTIMANDS = {
    "ATT": "average treatment effect in the treated",
    "ATE": "average treatment effect in the whole cohort",
    "ATO": "average treatment effect in the overlap population",
}
"""The estimands in words, as the reports name them."""


@dataclass(frozen=True)
class WeightingScheme:
    """A weighting scheme as the registry holds it.

    ``name``: the design's name in sensitivity grids and the design forest (ipw_att, overlap, ...);
    ``label``: that name for a reader; ``weights_name``: the weights in running text ("overlap
    weights"); ``weights(ps, treated)``: each patient's weight from the score (before trimming and
    stabilisation; finite for 0 < ps < 1); ``describe(weighting)``: the formula in words for the
    report's methods paragraph.
    """

    name: str
    estimand: str
    label: str
    weights_name: str
    weights: Callable[[np.ndarray, np.ndarray], np.ndarray]
    describe: Callable[[Weighting], str]


@dataclass(frozen=True)
class WeightingResult(MatchResult):
    """A MatchResult of a weighting design; ``trim_bounds`` = (lower, upper) propensity-score bounds
    of the trimming (None without trimming)."""

    trim_bounds: tuple[float, float] | None = None


PAIRS_COLUMNS = {"treated_index": np.int64, "control_index": np.int64, "slot": np.int64, "distance_diff": float}


def unweighable(ps: np.ndarray, discarded: np.ndarray) -> np.ndarray:
    """Patients who cannot be weighted: discarded (common support) or scored exactly 0 or 1."""
    return discarded | (ps <= 0) | (ps >= 1)


def trim_bounds(ps: np.ndarray, treated: np.ndarray, kept: np.ndarray, q: float) -> tuple[float, float]:
    """Stürmer's bounds: the q quantile of the kept treated patients' scores and the 1 - q quantile
    of the kept controls' scores (R's quantile type 7 = numpy's linear)."""
    return (float(np.quantile(ps[treated & kept], q)), float(np.quantile(ps[~treated & kept], 1 - q)))


def weigh(scheme: WeightingScheme, ps: np.ndarray, treated: np.ndarray, excluded: np.ndarray,
          weighting: Weighting) -> WeightingResult:
    """The weighted sample: ``scheme``'s weights for the patients not ``excluded`` nor trimmed."""
    kept = ~excluded
    bounds = None
    if weighting.trim is not None and (treated & kept).any() and (~treated & kept).any():
        bounds = trim_bounds(ps, treated, kept, weighting.trim)
        kept = kept & (ps >= bounds[0]) & (ps <= bounds[1])
    weights = np.zeros(len(ps))
    weights[kept] = scheme.weights(ps[kept], treated[kept])
    if weighting.stabilize and kept.any():
        share_treated = treated[kept].mean()
        weights[kept] *= np.where(treated[kept], share_treated, 1.0 - share_treated)
    trimmed = ~excluded & ~kept
    weighted = weights > 0
    counts = {
        "n_treated_matched": int((treated & weighted).sum()),
        "n_treated_unmatched": 0,
        "n_controls_matched": int((~treated & weighted).sum()),
        "n_discarded_treated": int((treated & excluded).sum()),
        "n_discarded_control": int((~treated & excluded).sum()),
        "n_trimmed_treated": int((treated & trimmed).sum()),
        "n_trimmed_control": int((~treated & trimmed).sum()),
    }
    pairs = pd.DataFrame({column: pd.Series(dtype=dtype) for column, dtype in PAIRS_COLUMNS.items()})
    return WeightingResult(pairs=pairs, weights=weights, subclass=np.zeros(len(ps), dtype=np.int64),
                           caliper_raw=None, counts=counts, trim_bounds=bounds)


def kish_ess(weights: np.ndarray) -> float:
    """Kish's effective sample size (sum w)^2 / sum w^2 (MatchIt's and WeightIt's "ESS")."""
    return float(np.sum(weights)) ** 2 / float(np.sum(weights ** 2))


def adjustment_sentence(weighting: Weighting, bounds: tuple[float, float] | None) -> str:
    """Stabilisation and trimming in words (empty when neither is used)."""
    parts = []
    if weighting.stabilize:
        parts.append("The weights were stabilised (multiplied by the share of the weighted patients in the "
                     "patient's arm).")
    if weighting.trim is not None:
        where = "" if bounds is None else f" ({bounds[0]:.4f} and {bounds[1]:.4f})"
        parts.append(f"Before weighting, patients with a propensity score below the {_percentile(weighting.trim)} "
                     f"percentile of the treated patients' scores or above the "
                     f"{_percentile(1 - weighting.trim)} percentile of the control patients' scores{where} were "
                     "excluded (asymmetric trimming, Stürmer et al. 2010).")
    return " ".join(parts)


def _percentile(q: float) -> str:
    value = f"{100 * q:.4g}"
    suffix = "th" if value.endswith(("11", "12", "13")) else {"1": "st", "2": "nd", "3": "rd"}.get(value[-1], "th")
    return f"{value}{suffix}"
