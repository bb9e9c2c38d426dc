"""Matching methods, registered by the name the config's ``matching.method`` uses.

Each method is one module exposing a MatchingMethod (pipeline.design.matching.common): ``match``
returns the MatchResult every method shares, ``describe`` words the method for the report. Adding
a method takes that module, one line in METHODS and its tests; the config schema takes its
``matching.method`` choices from METHODS.
"""
from __future__ import annotations

import numpy as np

from pipeline.config.settings import Matching
from pipeline.design.matching import nearest
from pipeline.design.matching.common import MatchingMethod, MatchResult

METHODS: dict[str, MatchingMethod] = {
    "nearest": nearest.METHOD,
}


def match(distance: np.ndarray, treated: np.ndarray, exact: np.ndarray | None, discarded: np.ndarray,
          matching: Matching, seed: int) -> MatchResult:
    """Match with the analysis's method (see MatchingMethod for the arguments)."""
    return METHODS[matching.method].match(distance, treated, exact, discarded, matching, seed)


def describe(matching: Matching, caliper_raw: float | None) -> str:
    """One sentence for the report's methods paragraph: how the patients were matched."""
    return METHODS[matching.method].describe(matching, caliper_raw)
