"""Overlap weights (Li, Morgan & Zaslavsky 2018; WeightIt's estimand "ATO"): treated 1 - ps,
controls ps. They weight each arm towards the patients whose treatment was least predictable
(ps near 0.5), are bounded by 1 (no extreme weights, no trimming needed) and balance the
propensity model's covariates' means exactly when the score comes from a logistic regression.
"""
from __future__ import annotations

import numpy as np

from pipeline.config.settings import Weighting
from pipeline.design.weighting.common import WeightingScheme


def overlap_weights(ps: np.ndarray, treated: np.ndarray) -> np.ndarray:
    return np.where(treated, 1.0 - ps, ps)


def describe(weighting: Weighting) -> str:
    return ("Patients were weighted by overlap weights for the average treatment effect in the overlap population "
            "(ATO; Li, Morgan & Zaslavsky 2018): treated patients 1 - ps, control patients ps, ps being the "
            "propensity score.")


SCHEME = WeightingScheme(name="overlap", estimand="ATO", label="overlap weights (ATO)", weights_name="overlap weights",
                         weights=overlap_weights, describe=describe)
