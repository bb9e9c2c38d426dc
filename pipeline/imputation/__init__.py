"""Multiple imputation of missing covariates (missing: multiple_imputation).

``chained``: one completed cohort per imputation by chained equations; ``rubin``: Rubin's rules
with Barnard-Rubin degrees of freedom (as R mice::pool); ``pooling``: the analysis's results from
its imputations' (propensity scores, matched samples, balance, survival).
"""


def imputation_analyses(analyses) -> dict[str, tuple[str, int]]:
    """The internal analysis of each imputation: {"<analysis>/imputations/<i>": (analysis, i)}, i = 1..m,
    for every analysis with missing: multiple_imputation."""
    return {f"{name}/imputations/{i}": (name, i) for name, analysis in analyses.items() if analysis.imputed
            for i in range(1, analysis.imputation.m + 1)}
