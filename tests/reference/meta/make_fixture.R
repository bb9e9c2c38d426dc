# The meta-analysis fixture of tests/test_federated.py: BCG vaccine trials (metafor's dat.bcg,
# Colditz et al. 1994), log relative risks as in Viechtbauer (2010), J Stat Softw 36(3), section 3.
# Run: Rscript make_fixture.R  (R 4.2.2, metafor 3.8-1 from Debian's r-cran-metafor)
suppressPackageStartupMessages({library(metafor); library(jsonlite)})
dat <- escalc(measure = "RR", ai = tpos, bi = tneg, ci = cpos, di = cneg, data = dat.bcg)
tight <- list(threshold = 1e-12, maxiter = 10000)
summarise <- function(fit) {
  pred <- predict(fit)
  list(estimate = as.numeric(fit$b), se = fit$se, lower = fit$ci.lb, upper = fit$ci.ub, p = fit$pval,
       tau2 = fit$tau2, i2 = fit$I2, h2 = fit$H2, q = fit$QE, q_p = fit$QEp,
       prediction_lower = if (is.null(pred$pi.lb)) NULL else pred$pi.lb,
       prediction_upper = if (is.null(pred$pi.ub)) NULL else pred$pi.ub)
}
out <- list(
  yi = as.numeric(dat$yi), sei = sqrt(as.numeric(dat$vi)),
  metafor = as.character(packageVersion("metafor")),
  fixed = summarise(rma(yi, vi, data = dat, method = "FE")),
  reml = summarise(rma(yi, vi, data = dat, method = "REML", control = tight)),
  dl = summarise(rma(yi, vi, data = dat, method = "DL")),
  reml_knha = summarise(rma(yi, vi, data = dat, method = "REML", test = "knha", control = tight)),
  dl_knha = summarise(rma(yi, vi, data = dat, method = "DL", test = "knha"))
)
writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, pretty = TRUE), "bcg_metafor.json")
