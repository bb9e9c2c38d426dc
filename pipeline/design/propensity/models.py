"""Propensity-score models: the design matrix, the fitted score, and the diagnostics of its overlap.

The default model is unpenalized logistic regression fitted by maximum likelihood, so that
coefficients and scores equal R's ``glm(treat ~ ., family = binomial)`` (what MatchIt uses).
Penalized / machine-learning alternatives come from causalml, seeded for reproducibility.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.special import expit

from pipeline.errors import ConfigError, DataError

MISSING_LEVEL = "(missing)"
MISSING_SUFFIX = "_missing"
MODELS = ("logistic", "elastic_net", "gradient_boosting", "precomputed")
EQUIPOISE_BOUNDS = (0.3, 0.7)
# R's glm.fit flags fitted probabilities within 10 * machine epsilon of 0 or 1.
_R_GLM_EPS = 10 * np.finfo(float).eps
_NUMERIC_TYPES = ("numeric", "integer", "binary")
_MAX_ITERATIONS = 50


# --------------------------------------------------------------------------- design matrix

def _variable_type(name: str, variables: dict) -> str:
    """Type of a covariate; ``<var>_missing`` indicator columns (see add_missing_indicators) are binary."""
    if name in variables:
        return variables[name]["type"]
    base = name[: -len(MISSING_SUFFIX)] if name.endswith(MISSING_SUFFIX) else None
    if base in variables:
        return "binary"
    raise ConfigError(f"covariate '{name}' is not a variable in registry.variables")


def _as_float(column: pd.Series) -> np.ndarray:
    try:
        return pd.to_numeric(column, errors="raise").astype("Float64").to_numpy(dtype=float, na_value=np.nan)
    except (TypeError, ValueError) as exc:
        raise DataError(f"covariate '{column.name}' is not numeric: {exc}") from None


def category_codes(name: str, column: pd.Series, levels: list[str]) -> np.ndarray:
    """Index of each value in ``levels`` (-1 where missing); a value outside ``levels`` is a DataError."""
    values = column.astype("string")
    codes = pd.Categorical(values, categories=list(levels)).codes.astype(np.int64)
    unknown = (codes < 0) & values.notna().to_numpy()
    if unknown.any():
        raise DataError(f"covariate '{name}' has values not among its configured levels {list(levels)}: "
                        f"{sorted(set(values[unknown]))}")
    return codes


def _one_hot(name: str, column: pd.Series, spec: dict) -> pd.DataFrame:
    """Indicator columns "<var>=<level>" for every present level except the reference (the first present one).

    Levels are the configured ones plus "(missing)", the fill level of add_missing_indicators.
    """
    allowed = list(spec.get("levels", [])) + [MISSING_LEVEL]
    codes = category_codes(name, column, allowed)
    present = np.flatnonzero(np.bincount(codes[codes >= 0], minlength=len(allowed)))
    missing = codes < 0
    dummies = {}
    for index in present[1:]:
        indicator = (codes == index).astype(float)
        indicator[missing] = np.nan
        dummies[f"{name}={allowed[index]}"] = indicator
    return pd.DataFrame(dummies, index=column.index)


def design_matrix(df: pd.DataFrame, covariates: list[str], variables: dict) -> pd.DataFrame:
    """Float model matrix (no intercept): numeric/integer/binary as is, categories one-hot with a reference level.

    The reference level of a category is the first configured level present in the data; levels that no
    row has get no column (it would be constant zero). Missing values stay NaN: the caller chooses
    complete-case analysis or add_missing_indicators() beforehand.
    """
    absent = [c for c in covariates if c not in df.columns]
    if absent:
        raise DataError(f"covariates missing from the data: {absent}")
    blocks = []
    for name in covariates:
        kind = _variable_type(name, variables)
        if kind in _NUMERIC_TYPES:
            blocks.append(pd.DataFrame({name: _as_float(df[name])}, index=df.index))
        elif kind == "category":
            blocks.append(_one_hot(name, df[name], variables.get(name, {})))
        else:
            raise ConfigError(f"covariate '{name}' has type '{kind}'; a propensity covariate must be "
                              f"numeric, integer, binary or category")
    if not blocks:
        return pd.DataFrame(index=df.index)
    return pd.concat(blocks, axis=1)


def add_missing_indicators(df: pd.DataFrame, covariates: list[str], variables: dict) -> tuple[pd.DataFrame, list[str]]:
    """The missing-indicator method: keep every row, model missingness explicitly.

    For a numeric/integer covariate with missing values: a 0/1 column "<var>_missing" and the gaps filled
    with the observed mean; for a binary one: the indicator and the gaps filled with 0 (any constant gives
    the same fitted scores once the indicator is in the model; 0 keeps the variable 0/1 for balance).
    A category's gaps become the level "(missing)", whose one-hot column already is the indicator, so no
    extra column is added (it would be collinear with it). Covariates without missing values are untouched.
    Returns the new frame and the covariate list with the indicator names inserted after their variable.
    """
    out = df.copy()
    names: list[str] = []
    for name in covariates:
        names.append(name)
        gaps = out[name].isna()
        if not gaps.any():
            continue
        kind = _variable_type(name, variables)
        if kind == "category":
            out[name] = out[name].astype("string").fillna(MISSING_LEVEL)
            continue
        if kind not in _NUMERIC_TYPES:
            raise ConfigError(f"covariate '{name}' has type '{kind}' and cannot get a missing indicator")
        values = _as_float(out[name])
        fill = 0.0 if kind == "binary" else float(np.nanmean(values))
        indicator = f"{name}{MISSING_SUFFIX}"
        if indicator in out.columns:
            raise DataError(f"cannot add missing indicator '{indicator}': a column of that name exists")
        out[name] = np.where(np.isnan(values), fill, values)
        out[indicator] = gaps.to_numpy().astype(np.int8)
        names.append(indicator)
    return out, names


# --------------------------------------------------------------------------- splines

# Harrell's default knot quantiles (Regression Modeling Strategies, 2nd ed., table 2.3).
RCS_KNOT_QUANTILES = {3: (0.10, 0.50, 0.90), 4: (0.05, 0.35, 0.65, 0.95), 5: (0.05, 0.275, 0.50, 0.725, 0.95),
                      6: (0.05, 0.23, 0.41, 0.59, 0.77, 0.95), 7: (0.025, 0.1833, 0.3417, 0.50, 0.6583, 0.8167, 0.975)}


def restricted_cubic_spline(x: np.ndarray, knots: np.ndarray) -> np.ndarray:
    """Nonlinear terms of a restricted (natural) cubic spline, Harrell's parametrization (k knots -> k - 2 columns).

    Together with x itself they span the cubic splines that are linear beyond the outer knots. Each term
    is divided by (t_k - t_1)^2 so its scale is that of x (Hmisc rcspline.eval, norm = 2).
    """
    t = np.asarray(knots, dtype=float)
    k = len(t)

    def cube(u):
        return np.maximum(u, 0.0) ** 3

    tail = t[-1] - t[-2]
    terms = [cube(x - t[j]) - cube(x - t[-2]) * (t[-1] - t[j]) / tail + cube(x - t[-1]) * (t[-2] - t[j]) / tail
             for j in range(k - 2)]
    return np.column_stack(terms) / (t[-1] - t[0]) ** 2


def add_spline_terms(X: pd.DataFrame, splines: dict[str, int]) -> pd.DataFrame:
    """X with restricted cubic spline terms "<var>'", "<var>''", ... after each named continuous column.

    Knots sit at Harrell's default quantiles of the column; ``splines`` maps a column to its number of
    knots (3 to 7). Balance is still assessed on the original covariates.
    """
    out = X.copy()
    for name, n_knots in splines.items():
        if name not in X.columns:
            raise ConfigError(f"propensity.splines names '{name}', which is not a continuous covariate of the analysis")
        if n_knots not in RCS_KNOT_QUANTILES:
            raise ConfigError(f"propensity.splines.{name}: {n_knots} knots; expected 3 to 7")
        x = X[name].to_numpy(dtype=float)
        knots = np.quantile(x, RCS_KNOT_QUANTILES[n_knots])
        if len(np.unique(knots)) < n_knots:
            raise DataError(f"propensity.splines.{name}: too few distinct values for {n_knots} knots "
                            f"(knots at {np.unique(knots).tolist()})")
        terms = restricted_cubic_spline(x, knots)
        position = out.columns.get_loc(name) + 1
        for j in range(terms.shape[1]):
            out.insert(position + j, name + "'" * (j + 1), terms[:, j])
    return out


# --------------------------------------------------------------------------- models

@dataclass
class PropensityFit:
    ps: np.ndarray
    model: str
    coefficients: dict[str, float] | None
    converged: bool
    warnings: list[str] = field(default_factory=list)


def _check_inputs(X: pd.DataFrame, treated: np.ndarray) -> np.ndarray:
    treated = np.asarray(treated).astype(bool)
    if len(treated) != len(X):
        raise DataError(f"treatment vector has {len(treated)} entries but the design matrix {len(X)} rows")
    if treated.all() or not treated.any():
        raise DataError("the propensity model needs both treated and control patients; one arm is empty")
    nan_columns = X.columns[X.isna().any().to_numpy()].tolist()
    if nan_columns:
        raise DataError(f"covariates with missing values reached the propensity model: {nan_columns} "
                        f"(use missing: complete_case or indicator)")
    return treated


def _separation_warning(ps: np.ndarray, X: pd.DataFrame, treated: np.ndarray, converged: bool) -> list[str]:
    """A sentence when the covariates (quasi-)separate the arms, naming the covariates that do.

    R's glm warns when fitted probabilities are numerically 0 or 1; a fit that did not converge is
    checked too, as separation is its usual cause (the likelihood has no maximum)."""
    extreme = int(np.sum((ps < _R_GLM_EPS) | (ps > 1 - _R_GLM_EPS)))
    culprits = separating_covariates(X, treated) if extreme or not converged else []
    if not extreme and not culprits:
        return []
    named = ("; ".join(culprits) if culprits
             else "no single covariate separates them on its own: a combination of covariates does")
    found = "fitted propensity scores numerically 0 or 1" if extreme else "the model did not converge"
    return [f"{found}: the covariates (quasi-)perfectly separate the arms ({named}); coefficients are not "
            f"identified and the patients concerned have no comparable counterpart"]


def separating_covariates(X: pd.DataFrame, treated: np.ndarray) -> list[str]:
    """Sentences naming the design columns that on their own (quasi-)separate the arms: an indicator
    whose patients are all in one arm, or a continuous covariate whose ranges in the arms do not overlap."""
    sentences = []
    for name in X.columns:
        x = X[name].to_numpy(dtype=float)
        if np.all((x == 0) | (x == 1)):
            sentences += _indicator_separation(name, x == 1, treated)
        else:
            sentences += _range_separation(name, x, treated)
    return sentences


def _indicator_separation(name: str, has: np.ndarray, treated: np.ndarray) -> list[str]:
    sentences = []
    for value, rows in ((1, has), (0, ~has)):
        arms = treated[rows]
        if rows.any() and (arms.all() or not arms.any()):
            sentences.append(f"every patient with {name} = {value} is {'treated' if arms.all() else 'a control'}")
    return sentences


def _range_separation(name: str, x: np.ndarray, treated: np.ndarray) -> list[str]:
    t, c = x[treated], x[~treated]
    if t.min() > c.max() or t.max() < c.min():
        return [f"{name} ranges {t.min():g} to {t.max():g} in the treated and {c.min():g} to {c.max():g} in "
                f"the controls: the ranges do not overlap"]
    return []


def _design_rank(design: np.ndarray) -> int:
    """Rank of the design from its column-normalized Gram matrix (p x p: cheap for a million rows)."""
    gram = design.T @ design
    norms = np.sqrt(np.diag(gram))
    norms[norms == 0] = 1.0
    return int(np.linalg.matrix_rank(gram / np.outer(norms, norms), hermitian=True))


def _rank_warning(design: np.ndarray, names: list[str]) -> list[str]:
    rank = _design_rank(design)
    if rank == design.shape[1]:
        return []
    constant = [n for n, col in zip(names, design.T) if n != "(Intercept)" and np.ptp(col) == 0]
    detail = f"; constant columns: {constant}" if constant else ""
    return [f"design matrix is rank deficient ({rank} independent of {design.shape[1]} columns): some covariates "
            f"are collinear and their coefficients not identified (R's glm reports NA for them){detail}"]


def _maximum_likelihood(design: np.ndarray, y: np.ndarray, full_rank: bool):
    """Coefficients, convergence flag and caught warnings of the logistic MLE.

    Newton-Raphson on the exact Hessian (statsmodels Logit) when the design has full rank: fast on large
    registries. Otherwise, or if the Hessian turns singular, IRLS with a pseudo-inverse (statsmodels
    GLM), which still yields usable fitted scores.
    """
    import statsmodels.api as sm

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if full_rank:
            try:
                model = sm.Logit(y, design, check_rank=False)     # the rank was checked above
                result = model.fit(method="newton", tol=1e-10, maxiter=_MAX_ITERATIONS, disp=False)
                return result.params, bool(result.mle_retvals["converged"]), caught
            except np.linalg.LinAlgError:
                pass
        result = sm.GLM(y, design, family=sm.families.Binomial()).fit(tol=1e-10, maxiter=_MAX_ITERATIONS)
        return result.params, bool(result.converged), caught


def _fit_logistic(X: pd.DataFrame, treated: np.ndarray) -> PropensityFit:
    """Unpenalized ML logistic regression with an intercept: the estimates of R's glm(family = binomial)."""
    from statsmodels.tools import sm_exceptions

    # The problems these warnings signal are reported in words by the checks below; library
    # deprecations are not the analyst's concern.
    ignored = (sm_exceptions.PerfectSeparationWarning, sm_exceptions.SingularMatrixWarning,
               sm_exceptions.ConvergenceWarning, RuntimeWarning, DeprecationWarning, FutureWarning)
    names = ["(Intercept)"] + list(X.columns)
    design = np.ones((len(X), X.shape[1] + 1))
    design[:, 1:] = X.to_numpy(dtype=float)
    notes = _rank_warning(design, names)
    params, converged, caught = _maximum_likelihood(design, treated.astype(float), full_rank=not notes)
    notes += sorted({f"logistic: {w.message}" for w in caught if not issubclass(w.category, ignored)})
    converged = converged and bool(np.all(np.isfinite(params)))
    if not converged:
        notes.append(f"logistic propensity model did not converge in {_MAX_ITERATIONS} iterations; "
                     f"scores may be unreliable")
    ps = expit(design @ params)
    notes += _separation_warning(ps, X, treated, converged)
    coefficients = {name: float(value) for name, value in zip(names, params)}
    return PropensityFit(ps=ps, model="logistic", coefficients=coefficients, converged=converged, warnings=notes)


def _standardized(X: pd.DataFrame) -> np.ndarray:
    """Columns centred and scaled to unit SD (constant columns only centred): penalties need a common scale."""
    values = X.to_numpy(dtype=float)
    sd = values.std(axis=0, ddof=1) if len(values) > 1 else np.ones(values.shape[1])
    sd[~(sd > 0)] = 1.0
    return (values - values.mean(axis=0)) / sd


def _fit_causalml(X: pd.DataFrame, treated: np.ndarray, model: str, seed: int) -> PropensityFit:
    """causalml's ElasticNet / GradientBoosted propensity models, seeded; their warnings are kept, not printed.

    xgboost runs single-threaded so the scores are bit-identical across machines and runs.
    """
    from causalml.propensity import ElasticNetPropensityModel, GradientBoostedPropensityModel

    if model == "elastic_net":
        estimator = ElasticNetPropensityModel(random_state=seed)
        features = _standardized(X)
    else:
        estimator = GradientBoostedPropensityModel(random_state=seed, nthread=1)
        features = X.to_numpy(dtype=float)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ps = np.asarray(estimator.fit_predict(features, treated.astype(int)), dtype=float)
    notes = sorted({f"{model}: {w.category.__name__}: {w.message}" for w in caught
                    if not issubclass(w.category, (DeprecationWarning, FutureWarning))})
    converged = not any("ConvergenceWarning" in note for note in notes)
    return PropensityFit(ps=ps, model=model, coefficients=None, converged=converged, warnings=notes)


def _precomputed(precomputed: np.ndarray | None, n: int, column: str | None) -> PropensityFit:
    if precomputed is None:
        raise ConfigError(f"propensity model 'precomputed' needs the score column (propensity.column: {column!r})")
    ps = np.asarray(precomputed, dtype=float)
    if ps.shape != (n,):
        raise DataError(f"precomputed propensity column {column!r} has {ps.size} values for {n} patients")
    bad = int(np.sum(~((ps > 0) & (ps < 1))))
    if bad:
        raise DataError(f"precomputed propensity column {column!r} has {bad} values missing or outside (0, 1)")
    return PropensityFit(ps=ps, model="precomputed", coefficients=None, converged=True, warnings=[])


def fit_propensity(X: pd.DataFrame, treated: np.ndarray, spec: dict, seed: int,
                   precomputed: np.ndarray | None = None) -> PropensityFit:
    """Propensity score P(treated | X) with the model named in the analysis' ``propensity:`` block.

    ``spec["splines"]`` ({column: knots}, optional) adds restricted cubic spline terms for those columns.
    """
    model = spec.get("model", "logistic")
    if model not in MODELS:
        raise ConfigError(f"propensity.model is '{model}'; expected one of {', '.join(MODELS)}")
    if model == "precomputed":
        return _precomputed(precomputed, len(X), spec.get("column"))
    treated = _check_inputs(X, treated)
    X = add_spline_terms(X, spec.get("splines") or {})
    if model == "logistic":
        return _fit_logistic(X, treated)
    return _fit_causalml(X, treated, model, seed)


# --------------------------------------------------------------------------- diagnostics

def weighted_auc(score: np.ndarray, treated: np.ndarray, weights: np.ndarray | None = None) -> float:
    """c-statistic: P(score of a treated > score of a control), ties counting one half, pairs weighted w_t * w_c."""
    score = np.asarray(score, dtype=float)
    treated = np.asarray(treated).astype(bool)
    w = np.ones(len(score)) if weights is None else np.asarray(weights, dtype=float)
    values, codes = np.unique(score, return_inverse=True)
    w_treated = np.bincount(codes, weights=w * treated, minlength=len(values))
    w_control = np.bincount(codes, weights=w * ~treated, minlength=len(values))
    control_below = np.cumsum(w_control) - w_control
    concordant = np.sum(w_treated * (control_below + 0.5 * w_control))
    return float(concordant / (w_treated.sum() * w_control.sum()))


def preference_score(ps: np.ndarray, share_treated: float) -> np.ndarray:
    """Walker et al. 2013: logit(F) = logit(ps) - logit(P), P the share treated; removes prevalence from the ps."""
    ps = np.clip(np.asarray(ps, dtype=float), _R_GLM_EPS, 1 - _R_GLM_EPS)
    logit_f = np.log(ps / (1 - ps)) - np.log(share_treated / (1 - share_treated))
    return 1.0 / (1.0 + np.exp(-logit_f))


def ps_diagnostics(ps: np.ndarray, treated: np.ndarray, weights: np.ndarray | None = None) -> dict:
    """Overlap diagnostics of a propensity score, in the full sample (weights None) or weighted (after matching).

    Returns the (weighted) arm sizes, c-statistic, share treated, the share of patients in equipoise
    (preference score in [0.3, 0.7], Walker 2013) overall and per arm, and ps quantiles per arm.
    Units with weight 0 (unmatched) do not count.
    """
    ps = np.asarray(ps, dtype=float)
    treated = np.asarray(treated).astype(bool)
    w = np.ones(len(ps)) if weights is None else np.asarray(weights, dtype=float)
    keep = w > 0
    ps, treated, w = ps[keep], treated[keep], w[keep]
    n_treated, n_control = int(treated.sum()), int((~treated).sum())
    result = {"n_treated": n_treated, "n_control": n_control,
              "weighted_treated": float(w[treated].sum()), "weighted_control": float(w[~treated].sum())}
    if n_treated == 0 or n_control == 0:
        return {**result, "c_statistic": None, "share_treated": None, "equipoise_share": None,
                "equipoise_share_treated": None, "equipoise_share_control": None}
    share = result["weighted_treated"] / (result["weighted_treated"] + result["weighted_control"])
    pref = preference_score(ps, share)
    inside = (pref >= EQUIPOISE_BOUNDS[0]) & (pref <= EQUIPOISE_BOUNDS[1])
    return {**result,
            "c_statistic": weighted_auc(ps, treated, w),
            "share_treated": share,
            "equipoise_share": float(np.sum(w * inside) / np.sum(w)),
            "equipoise_share_treated": float(np.sum((w * inside)[treated]) / np.sum(w[treated])),
            "equipoise_share_control": float(np.sum((w * inside)[~treated]) / np.sum(w[~treated])),
            "ps_quantiles_treated": _quantiles(ps[treated]),
            "ps_quantiles_control": _quantiles(ps[~treated])}


def _quantiles(values: np.ndarray) -> dict[str, float]:
    probs = {"min": 0.0, "q25": 0.25, "median": 0.5, "q75": 0.75, "max": 1.0}
    return {name: float(np.quantile(values, p)) for name, p in probs.items()}
