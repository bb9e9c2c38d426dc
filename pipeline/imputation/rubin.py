"""Rubin's rules for a scalar estimate with Barnard & Rubin's (1999) small-sample degrees of
freedom, as R mice 3.15's ``pool.scalar(Q, U, n, k)`` and ``pool()`` compute them.

With m estimates Q_i and their variances U_i: the pooled estimate is their mean, the within
variance ubar the mean of U_i, the between variance b the variance of Q_i, and the total variance
t = ubar + (1 + 1/m) b. ``dfcom`` is the complete-data model's degrees of freedom: mice uses the
number of events minus the coefficients for a Cox model (``get.dfcom``), and infinity when it
cannot tell (then the df are Rubin's original (m - 1) / lambda^2).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

LAMBDA_FLOOR = 1e-4      # mice's barnard.rubin: lambda below it is set to it


@dataclass(frozen=True)
class Pooled:
    m: int
    estimate: float      # qbar
    within: float        # ubar
    between: float       # b
    total: float         # t
    df: float
    riv: float           # relative increase in variance r
    lambda_: float       # proportion of the variance due to missingness, (1 + 1/m) b / t
    fmi: float           # fraction of missing information
    dfcom: float

    @property
    def se(self) -> float:
        return math.sqrt(self.total)

    def interval(self, level: float = 0.95) -> tuple[float, float]:
        half = stats.t.ppf(0.5 + level / 2, self.df) * self.se
        return self.estimate - half, self.estimate + half

    @property
    def p(self) -> float:
        """Two-sided p-value of estimate = 0 (t with df degrees of freedom)."""
        return float(2 * stats.t.sf(abs(self.estimate) / self.se, self.df))

    def to_dict(self) -> dict:
        lower, upper = self.interval()
        return {"m": self.m, "estimate": self.estimate, "se": self.se, "lower": lower, "upper": upper,
                "p": self.p, "df": self.df, "dfcom": None if math.isinf(self.dfcom) else self.dfcom,
                "ubar": self.within, "b": self.between, "t": self.total, "riv": self.riv,
                "lambda": self.lambda_, "fmi": self.fmi}


def barnard_rubin_df(m: int, between: float, total: float, dfcom: float = math.inf) -> float:
    lam = max((1 + 1 / m) * between / total, LAMBDA_FLOOR)
    df_old = (m - 1) / lam ** 2
    if math.isinf(dfcom):
        return df_old
    df_obs = (dfcom + 1) / (dfcom + 3) * dfcom * (1 - lam)
    return df_old * df_obs / (df_old + df_obs)


def pool_scalar(estimates, variances, dfcom: float = math.inf) -> Pooled:
    """Rubin's rules for m >= 2 estimates and their (within-imputation) variances."""
    q = np.asarray(estimates, dtype=float)
    u = np.asarray(variances, dtype=float)
    m = len(q)
    if m < 2 or len(u) != m:
        raise ValueError("Rubin's rules need at least two estimates, each with its variance")
    qbar, ubar, b = float(q.mean()), float(u.mean()), float(q.var(ddof=1))
    t = ubar + (1 + 1 / m) * b
    df = barnard_rubin_df(m, b, t, dfcom)
    riv = (1 + 1 / m) * b / ubar
    return Pooled(m=m, estimate=qbar, within=ubar, between=b, total=t, df=df, riv=riv,
                  lambda_=(1 + 1 / m) * b / t, fmi=(riv + 2 / (df + 3)) / (riv + 1), dfcom=dfcom)
