"""Benchmark of the survival stage: this package vs lifelines vs R survival, one run.

    python benchmarks/bench_survival.py [--sizes 100000 1000000] [--bootstrap 200]

Synthetic matched samples: matched sets of one treated and 1 or 2 controls (fractional control
weights), exponential times censored uniformly, rounded to whole days and expressed in months
(heavy ties). Timed per size:
- ours: the whole ``compare_survival`` stage (bootstrap replicates as given) and the robust Cox alone;
- lifelines 0.30: ``KaplanMeierFitter`` per arm (weights), and ``CoxPHFitter(robust=True)`` with
  ``cluster_col`` at sizes <= 100k only (its sandwich is O(n^2));
- R (when ``Rscript`` exists): survfit per arm + quantile + rmean + survdiff + coxph(cluster) as the
  stage without bootstrap, and coxph alone; timed inside R (``system.time``), data loading excluded;
  stopped after ``--r-timeout`` seconds (R's robust KM variance and coxph's Efron score residuals
  loop over the whole risk set at every event time, so they grow like n x distinct times).
Prints a markdown table row by row; HR and robust SE are shown to compare the answers.
"""
import argparse
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.outcome.cox import fit_cox  # noqa: E402
from pipeline.outcome.survival import compare_survival  # noqa: E402

LIFELINES_COX_MAX = 100_000
R_SCRIPT = r"""
suppressMessages(library(survival))
d <- read.csv(commandArgs(TRUE)[1])
stage <- system.time({
  for (g in 0:1) {
    f <- survfit(Surv(time, event) ~ 1, data = d[d$treat == g, ], weights = w, conf.type = "log-log")
    q <- quantile(f, 0.5); s <- summary(f, rmean = 60)$table
  }
  lr <- survdiff(Surv(time, event) ~ treat, data = d)
  m <- coxph(Surv(time, event) ~ treat, data = d, weights = w, cluster = subclass, ties = "efron")
})[["elapsed"]]
cox <- system.time(m <- coxph(Surv(time, event) ~ treat, data = d, weights = w,
                              cluster = subclass, ties = "efron"))[["elapsed"]]
cat(sprintf("%.6f %.6f %.17g %.17g\n", stage, cox, exp(coef(m)), sqrt(m$var[1, 1])))
"""


def matched_sample(n_rows, seed=1):
    rng = np.random.default_rng(seed)
    n_sets = int(n_rows / 2.5)
    k = rng.integers(1, 3, n_sets)
    treat = np.r_[np.ones(n_sets, int), np.zeros(k.sum(), int)]
    subclass = np.r_[np.arange(n_sets), np.repeat(np.arange(n_sets), k)]
    w = np.r_[np.ones(n_sets), np.repeat(1.0 / k, k)]
    w[treat == 0] /= w[treat == 0].mean()
    t_event = rng.exponential(np.where(treat == 1, 50.0, 33.0))
    t_censor = rng.uniform(1, 120, len(treat))
    days = np.maximum(1, np.round(np.minimum(t_event, t_censor) * 30.4375))
    return pd.DataFrame({"time": days / 30.4375, "event": (t_event <= t_censor).astype(int),
                         "treat": treat, "w": w, "subclass": subclass})


def timed(fn):
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


def bench_ours(d, bootstrap):
    stage_s, out = timed(lambda: compare_survival(
        d.time, d.event, d.treat, d.w, d.subclass, tau=60, landmarks=[12, 36, 60], ci="log-log",
        bootstrap=bootstrap, seed=1, time_unit="months").result)
    cox_s, cox = timed(lambda: fit_cox(d.time, d.event, d.treat, d.w, cluster=d.subclass))
    return [("ours", f"stage (bootstrap {bootstrap})", stage_s, out["hr"], out["hr_robust_se"]),
            ("ours", "robust Cox", cox_s, cox.hr, cox.robust_se)]


def bench_lifelines(d):
    from lifelines import CoxPHFitter, KaplanMeierFitter

    rows = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        def km_both_arms():
            for g in (0, 1):
                a = d[d.treat == g]
                KaplanMeierFitter().fit(a.time, a.event, weights=a.w).median_survival_time_
        km_s, _ = timed(km_both_arms)
        rows.append(("lifelines", "KM both arms + median", km_s, None, None))
        if len(d) <= LIFELINES_COX_MAX:
            cph = CoxPHFitter()
            cox_s, _ = timed(lambda: cph.fit(d[["time", "event", "treat", "w", "subclass"]],
                                             "time", "event", weights_col="w",
                                             cluster_col="subclass", robust=True))
            rows.append(("lifelines", "robust Cox (cluster_col)", cox_s,
                         float(np.exp(cph.params_["treat"])),
                         float(cph.standard_errors_["treat"])))
        else:
            rows.append(("lifelines", "robust Cox (cluster_col)", None, None, None))
    return rows


def bench_r(d, timeout):
    if shutil.which("Rscript") is None:
        return [("R survival", "not run (no Rscript)", None, None, None)]
    tool = f"R survival {_r_version()}"
    with tempfile.TemporaryDirectory() as tmp:
        csv, script = Path(tmp) / "d.csv", Path(tmp) / "bench.R"
        d.to_csv(csv, index=False, float_format="%.17g")
        script.write_text(R_SCRIPT)
        try:
            out = subprocess.run(["Rscript", str(script), str(csv)], capture_output=True,
                                 text=True, check=True, timeout=timeout).stdout.split()
        except subprocess.TimeoutExpired:
            return [(tool, f"stage (no bootstrap): stopped after {timeout:.0f} s", None, None,
                     None)]
    stage_s, cox_s, hr, se = map(float, out)
    return [(tool, "stage (no bootstrap)", stage_s, hr, se), (tool, "robust Cox", cox_s, hr, se)]


def _r_version():
    res = subprocess.run(["Rscript", "-e", 'cat(as.character(packageVersion("survival")))'],
                         capture_output=True, text=True)
    return res.stdout.strip()


def fmt(v, spec):
    return "—" if v is None else format(v, spec)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--bootstrap", type=int, default=200)
    parser.add_argument("--r-timeout", type=float, default=900)
    args = parser.parse_args()
    print("| rows | tool | task | seconds | HR | robust SE |")
    print("|---:|---|---|---:|---:|---:|")
    for n in args.sizes:
        d = matched_sample(n)
        for bench in (lambda: bench_ours(d, args.bootstrap), lambda: bench_lifelines(d),
                      lambda: bench_r(d, args.r_timeout)):
            for tool, task, secs, hr, se in bench():
                print(f"| {len(d):,} | {tool} | {task} | {fmt(secs, '.2f')} | {fmt(hr, '.10g')} "
                      f"| {fmt(se, '.10g')} |", flush=True)


if __name__ == "__main__":
    main()
