"""Matching methods, registered by the name the config's ``matching.method`` uses.

Each method is one module exposing a MatchingMethod (pipeline.design.matching.common): ``match``
returns the MatchResult every method shares, ``describe`` words the method for the report. Adding
a method takes that module, one line in METHODS and its tests; the config schema takes its
``matching.method`` choices from METHODS. METHODS imports a method's module when the method is
first looked up (pipeline.design.registry), so the names cost no import.
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from pipeline.config.settings import Matching
from pipeline.design.matching.common import MatchingMethod, MatchResult
from pipeline.design.matching.mahalanobis import mahalanobis_features
from pipeline.design.registry import LazyRegistry

METHODS: Mapping[str, MatchingMethod] = LazyRegistry(__name__, {
    "nearest": "nearest.METHOD",
    "optimal": "optimal.METHOD",
    "full": "full.METHOD",
})


def match(distance: np.ndarray, treated: np.ndarray, exact: np.ndarray | None, discarded: np.ndarray,
          matching: Matching, seed: int, covariates: np.ndarray | None = None) -> MatchResult:
    """Match with the analysis's method (see MatchingMethod for the arguments). ``covariates``:
    the design matrix of the Mahalanobis covariates (only read with ``distance: mahalanobis``)."""
    method = METHODS[matching.method].match
    if matching.distance == "mahalanobis":
        features = mahalanobis_features(covariates, np.asarray(treated, dtype=bool), np.asarray(discarded, dtype=bool))
        return method(distance, treated, exact, discarded, matching, seed, features=features)
    return method(distance, treated, exact, discarded, matching, seed)


def describe(matching: Matching, caliper_raw: float | None) -> str:
    """One sentence for the report's methods paragraph: how the patients were matched."""
    return METHODS[matching.method].describe(matching, caliper_raw)
