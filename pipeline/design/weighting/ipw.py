"""Inverse-probability-of-treatment weights (WeightIt's ``get_w_from_ps`` formulas, Austin 2011):

- ATT: treated 1, controls ps / (1 - ps): the controls are weighted to resemble the treated;
- ATE: treated 1 / ps, controls 1 / (1 - ps): both arms are weighted to resemble the whole cohort.
"""
from __future__ import annotations

import numpy as np

from pipeline.config.settings import Weighting
from pipeline.design.weighting.common import WeightingScheme


def att_weights(ps: np.ndarray, treated: np.ndarray) -> np.ndarray:
    return np.where(treated, 1.0, ps / (1.0 - ps))


def ate_weights(ps: np.ndarray, treated: np.ndarray) -> np.ndarray:
    return np.where(treated, 1.0 / ps, 1.0 / (1.0 - ps))


def describe_att(weighting: Weighting) -> str:
    return ("Patients were weighted by inverse-probability-of-treatment weights for the average treatment effect "
            "in the treated (ATT): treated patients 1, control patients ps / (1 - ps), ps being the propensity "
            "score.")


def describe_ate(weighting: Weighting) -> str:
    return ("Patients were weighted by inverse-probability-of-treatment weights for the average treatment effect "
            "in the whole cohort (ATE): treated patients 1 / ps, control patients 1 / (1 - ps), ps being the "
            "propensity score.")


ATT = WeightingScheme(name="ipw_att", estimand="ATT", label="IPW (ATT)", weights_name="inverse-probability weights",
                      weights=att_weights, describe=describe_att)
ATE = WeightingScheme(name="ipw_ate", estimand="ATE", label="IPW (ATE)", weights_name="inverse-probability weights",
                      weights=ate_weights, describe=describe_ate)
