"""A fitted Kaplan-Meier curve with R `survival` 3.5-3 semantics.

``KaplanMeier.fit(time, event, weight, ci)`` is R's ``survfit(Surv(time, event) ~ 1, weights = w,
conf.type = ci)`` for one arm, on the arm's distinct times (events and censorings):
- standard error: Greenwood's when every weight is a whole number, otherwise R's default for
  fractional weights, the infinitesimal-jackknife (robust) one with each row its own cluster;
- the pointwise band (R survfit_confint), NaN where R gives NA or NaN;
- ``median()``: R's ``quantile.survfit`` (first time S(t) <= 0.5, midpoint of a flat stretch at
  exactly 0.5, CI by inverting the band), None when not reached;
- ``survival_at(landmarks)``: R's ``summary(fit, times = landmarks)``;
- ``rmst(tau)``: R's ``print(fit, rmean = tau)``;
- ``at_risk(t)``: the rows (and their weight) still at risk at t, for the numbers-at-risk table.
Vectorized (sort once, cumulative sums).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from scipy import stats

TOLERANCE = np.sqrt(np.finfo(float).eps)   # R: sqrt(.Machine$double.eps), quantile.survfit's
Z95 = float(stats.norm.ppf(0.975))


class Estimate(NamedTuple):
    """A point estimate and its 95% confidence limits; None where the curve does not reach them."""
    value: float | None
    lower: float | None
    upper: float | None


class AtRisk(NamedTuple):
    rows: int
    weighted: float


@dataclass(frozen=True, eq=False)
class RiskTable:
    """One arm's grouped data, one entry per distinct time (ascending): weighted and row counts of
    events and censorings, the sums of the squared weights, and what is at risk just before each
    time. Tables of disjoint samples on the same times add up to the table of their union."""
    time: np.ndarray
    n_event: np.ndarray       # weighted events
    n_censor: np.ndarray      # weighted censorings
    event_rows: np.ndarray    # rows with an event
    censor_rows: np.ndarray   # rows censored
    w2_event: np.ndarray      # sum of squared weights of the events
    w2_censor: np.ndarray     # ... of the censorings

    COUNTS = ("n_event", "n_censor", "event_rows", "censor_rows", "w2_event", "w2_censor")

    @classmethod
    def of_rows(cls, time, event, weight) -> RiskTable:
        time, event, weight = (np.asarray(a, dtype=float) for a in (time, event, weight))
        times, idx = np.unique(time, return_inverse=True)
        k = len(times)
        return cls(times, n_event=np.bincount(idx, weight * event, k),
                   n_censor=np.bincount(idx, weight * (1.0 - event), k),
                   event_rows=np.bincount(idx, event, k), censor_rows=np.bincount(idx, 1.0 - event, k),
                   w2_event=np.bincount(idx, weight ** 2 * event, k),
                   w2_censor=np.bincount(idx, weight ** 2 * (1.0 - event), k))

    @property
    def n_risk(self) -> np.ndarray:
        """Weight at risk just before each time."""
        return _from_here_on(self.n_event + self.n_censor)

    @property
    def n_risk_rows(self) -> np.ndarray:
        return _from_here_on(self.event_rows + self.censor_rows)

    def on_times(self, times) -> RiskTable:
        """The table on a superset of its times (zero counts at the added ones)."""
        at = np.searchsorted(times, self.time)
        counts = {}
        for c in self.COUNTS:
            counts[c] = np.zeros(len(times))
            counts[c][at] = getattr(self, c)
        return RiskTable(np.asarray(times, dtype=float), **counts)

    def to_dict(self) -> dict:
        return {"time": self.time.tolist(), **{c: getattr(self, c).tolist() for c in self.COUNTS}}

    @classmethod
    def from_dict(cls, data: dict) -> RiskTable:
        return cls(np.asarray(data["time"], dtype=float),
                   **{c: np.asarray(data[c], dtype=float) for c in cls.COUNTS})

    @classmethod
    def summed(cls, tables) -> RiskTable:
        """The table of the union of disjoint samples: counts added time by time."""
        tables = list(tables)
        times = np.unique(np.concatenate([t.time for t in tables]))
        aligned = [t.on_times(times) for t in tables]
        return cls(times, **{c: np.sum([getattr(t, c) for t in aligned], axis=0) for c in cls.COUNTS})


def _from_here_on(per_time):
    return np.cumsum(per_time[::-1])[::-1]


@dataclass(frozen=True, eq=False)
class KaplanMeier:
    """One arm's fitted curve; the arrays are per distinct time (as R's survfit object)."""
    time: np.ndarray
    n_risk: np.ndarray        # weight at risk just before each time
    n_risk_rows: np.ndarray   # rows at risk just before each time
    n_event: np.ndarray       # weighted events
    n_censor: np.ndarray      # weighted censorings
    surv: np.ndarray
    std_err: np.ndarray       # se of log S (logse, Greenwood) or of S (robust)
    logse: bool
    lower: np.ndarray         # the pointwise band of type `ci`
    upper: np.ndarray
    ci: str
    n: int                    # rows
    events: int               # rows with an event
    weighted: bool            # some weight is not 1

    @classmethod
    def fit(cls, time, event, weight, ci: str) -> KaplanMeier:
        """The weighted KM of one arm: time finite and >= 0, event 0/1, weight > 0."""
        time, event, weight = (np.asarray(a, dtype=float) for a in (time, event, weight))
        return cls.from_counts(RiskTable.of_rows(time, event, weight), ci,
                               robust=bool(np.any(weight != np.floor(weight))),
                               weighted=bool(np.any(weight != 1)))

    @classmethod
    def from_counts(cls, table: RiskTable, ci: str, *, robust: bool, weighted: bool) -> KaplanMeier:
        """The same curve from grouped data (one row per distinct time), e.g. risk tables summed
        over sites. ``robust``: some weight is fractional (R then uses the jackknife SE, which the
        tables' sums of squared weights give exactly); ``weighted``: some weight is not 1."""
        n_event, n_risk = table.n_event, table.n_risk
        has_event = (table.event_rows > 0) & (n_event > 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            hazard = np.where(has_event, n_event / n_risk, 0.0)
            greenwood_step = np.where(has_event, n_event / (n_risk * (n_risk - n_event)), 0.0)
        surv = np.cumprod(1.0 - hazard)
        greenwood = np.cumsum(greenwood_step)
        if robust:
            std_err = _jackknife_se(table, surv, greenwood, has_event)
        else:
            std_err = np.sqrt(greenwood)
        lower, upper = _band(surv, std_err, not robust, ci)
        return cls(table.time, n_risk, table.n_risk_rows, n_event, table.n_censor, surv, std_err, not robust,
                   lower, upper, ci, n=int(table.n_risk_rows[0]) if len(table.time) else 0,
                   events=int(table.event_rows.sum()), weighted=weighted)

    def median(self) -> Estimate:
        """The median and its CI: the band's limits inverted at 0.5, each None when not reached."""
        return Estimate(_median_time(self.time, self.surv), _median_time(self.time, self.lower),
                        _median_time(self.time, self.upper))

    def survival_at(self, landmarks) -> list[Estimate]:
        """S(t) and its band at each landmark. S(t) is None only beyond the last follow-up time
        (its band may also be None where R gives NA)."""
        out = []
        for t in landmarks:
            if t > self.time[-1]:
                out.append(Estimate(None, None, None))
                continue
            i = np.searchsorted(self.time, t, side="right") - 1
            if i < 0:
                out.append(Estimate(1.0, 1.0, 1.0))
            else:
                out.append(Estimate(float(self.surv[i]), finite_or_none(self.lower[i]),
                                    finite_or_none(self.upper[i])))
        return out

    def rmst(self, tau: float) -> tuple[float, float]:
        """(RMST up to tau, its SE), as R's survmean: the last value carried flat to tau."""
        keep = self.time <= tau
        with np.errstate(divide="ignore", invalid="ignore"):
            hh = np.where(self.n_risk - self.n_event == 0, 0.0,
                          self.n_event / (self.n_risk * (self.n_risk - self.n_event)))
        if not keep.any():
            return float(tau), 0.0
        times = np.append(self.time[keep], tau)
        surv = np.append(self.surv[keep], self.surv[keep][-1])
        hh = np.append(hh[keep], 0.0)
        rectangles = np.diff(np.concatenate(([0.0], times))) * np.concatenate(([1.0], surv[:-1]))
        area_after = np.cumsum(rectangles[::-1])[::-1] - rectangles
        return float(rectangles.sum()), float(np.sqrt(np.sum(area_after ** 2 * hh)))

    def at_risk(self, t: float) -> AtRisk:
        """The rows with time >= t and their weight."""
        i = np.searchsorted(self.time, t, side="left")
        if i >= len(self.time):
            return AtRisk(0, 0.0)
        return AtRisk(int(self.n_risk_rows[i]), float(self.n_risk[i]))


def _jackknife_se(table: RiskTable, surv, greenwood, has_event):
    """se(S(t)) from the infinitesimal jackknife, each row its own cluster (R survfitkm.c).

    Row k's influence on S(t) is S(t) w_k [G(min(t, T_k)) - event_k 1{T_k <= t} / (n - d)(T_k)],
    G the Greenwood sum, so the sum of squares splits into rows still at risk after t
    (w^2 G(t)^2) and rows that left at or before t (a fixed amount each, the same for every row
    of a time and kind: the tables' sums of squared weights suffice). As in R, the value is
    computed at event times and carried over censoring-only times (exactly flat there).
    """
    k = len(surv)
    survivors = table.n_risk - table.n_event
    with np.errstate(divide="ignore", invalid="ignore"):
        left_event = np.where(table.w2_event > 0, table.w2_event * (greenwood - 1.0 / survivors) ** 2, 0.0)
        left_censor = np.where(table.w2_censor > 0, table.w2_censor * greenwood ** 2, 0.0)
    left = np.cumsum(left_event + left_censor)
    w2_at = table.w2_event + table.w2_censor
    w2_later = np.cumsum(w2_at[::-1])[::-1] - w2_at
    with np.errstate(invalid="ignore"):
        var = surv ** 2 * (greenwood ** 2 * w2_later + left)
    var = np.where(surv > 0, var, 0.0)
    last_event = np.maximum.accumulate(np.where(has_event, np.arange(k), -1))
    return np.sqrt(np.where(last_event >= 0, var[np.maximum(last_event, 0)], 0.0))


def _band(p, std_err, logse, ci):
    """Pointwise 95% band of S(t) of type ci (log-log, log or plain; R survfit_confint)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        se = std_err if logse else np.where(std_err == 0, 0.0, std_err / p)
        if ci == "plain":
            half = se * p * Z95
            return np.maximum(p - half, 0.0), np.minimum(p + half, 1.0)
        if ci == "log":
            logp = np.log(np.where(p == 0, np.nan, p))
            return np.exp(logp - Z95 * se), np.minimum(np.exp(logp + Z95 * se), 1.0)
        xx = np.where((p == 0) | (p == 1), np.nan, p)
        shift = Z95 * se / np.log(xx)
        loglog = np.log(-np.log(xx))
        return np.exp(-np.exp(loglog - shift)), np.exp(-np.exp(loglog + shift))


def _median_time(time, surv_like):
    """Time where a survival-type curve (S(t) or a band limit, NaN = NA) crosses 0.5, as R's
    quantile.survfit (findq); None when not reached."""
    p = 0.5
    x = np.concatenate(([0.0], np.asarray(time, dtype=float)))
    y = np.concatenate(([0.0], 1.0 - np.asarray(surv_like, dtype=float)))
    if np.nanmax(y) < p:
        return None
    x_last = x[-1]
    keep = ~_duplicated(y)
    x, y = x[keep], y[keep]
    first = _approx_constant_right(y + TOLERANCE, p)
    second = _approx_constant_right(y - TOLERANCE, p)
    if not np.isnan(y[-1]) and abs(p - y[-1]) < TOLERANCE and first is not None:
        return float((x[first] + x_last) / 2)
    if first is None or second is None:
        return None
    return float((x[first] + x[second]) / 2)


def _duplicated(y):
    """R's duplicated(): NaN counts as a value (repeated NaNs are duplicates)."""
    key = np.where(np.isnan(y), np.inf, y)
    _, first = np.unique(key, return_index=True)
    dup = np.ones(len(y), dtype=bool)
    dup[first] = False
    return dup


def _approx_constant_right(xs, p):
    """Index returned by R's approx(xs, seq_along(xs), p, method = "constant", f = 1)."""
    ok = np.flatnonzero(~np.isnan(xs))
    order = ok[np.argsort(xs[ok], kind="stable")]
    sorted_x = xs[order]
    if p < sorted_x[0] or p > sorted_x[-1]:
        return None
    return int(order[np.searchsorted(sorted_x, p, side="left")])


def finite_or_none(v):
    """A float for JSON: None for a missing, infinite or undefined (NaN) value."""
    return None if v is None or not np.isfinite(v) else float(v)
