"""Weighting schemes, registered by the estimand the config's ``weighting.estimand`` names.

Each scheme is one module exposing a WeightingScheme (pipeline.design.weighting.common): the
weights as a formula of the propensity score and the sentence describing it. ``weigh`` returns the
MatchResult every design returns (weights per patient, no matched sets, no pairs); the config
schema takes its ``weighting.estimand`` choices from SCHEMES and the design names of sensitivity
grids (``sensitivity.design``) from the schemes' names.
"""
from __future__ import annotations

import numpy as np

from pipeline.config.settings import Weighting
from pipeline.design.weighting import ipw, overlap
from pipeline.design.weighting.common import WeightingResult, WeightingScheme, adjustment_sentence
from pipeline.design.weighting.common import weigh as weigh_with

SCHEMES: dict[str, WeightingScheme] = {
    "ATT": ipw.ATT,
    "ATE": ipw.ATE,
    "ATO": overlap.SCHEME,
}


def weigh(ps: np.ndarray, treated: np.ndarray, excluded: np.ndarray, weighting: Weighting) -> WeightingResult:
    """Weights with the analysis's scheme; ``excluded`` patients (and trimmed ones) get weight 0."""
    return weigh_with(SCHEMES[weighting.estimand], ps, treated, excluded, weighting)


def describe(weighting: Weighting, trim_bounds: tuple[float, float] | None) -> str:
    """The methods paragraph's sentences on the weighting (``trim_bounds``: matching.json's)."""
    sentence = SCHEMES[weighting.estimand].describe(weighting)
    adjustment = adjustment_sentence(weighting, trim_bounds)
    return f"{sentence} {adjustment}" if adjustment else sentence
