# Regenerate with:  Rscript make_pool.R   (inside tests/reference/imputation; R 4.2.2, survival 3.5-3, mice 3.15.0)
# Rubin's rules as mice pools them, for tests/test_imputation.py:
# - pooled_cox.csv: per imputation of samples.csv (written by make_samples.py), the marginal Cox model
#   coxph(Surv(time, event) ~ treated, weights, cluster = matched set, ties = efron); then mice::pool()
#   of the five fits (dfcom from the fits: mice's get.dfcom takes the first fit's events minus one).
# - pooled_scalar.csv: mice::pool.scalar() of the estimates and variances in scalars.csv.
suppressMessages({library(survival); library(mice)})
num <- function(x) ifelse(is.na(x), "NA", sprintf("%.17g", x))
keys <- c("estimate", "ubar", "b", "t", "dfcom", "df", "riv", "lambda", "fmi")

samples <- read.csv("samples.csv")
fits <- lapply(split(samples, samples$imputation), function(d)
  coxph(Surv(time, event) ~ treated, data = d, weights = weight, cluster = subclass, ties = "efron"))
pooled <- pool(as.mira(fits))
row <- pooled$pooled
ci <- summary(pooled, conf.int = TRUE)
cox <- data.frame(key = c(keys, "std.error", "conf.low", "conf.high", "p.value", paste0("estimate_", 1:5),
                          paste0("se_", 1:5)),
                  value = num(c(unlist(row[keys]), ci$std.error, ci[["2.5 %"]], ci[["97.5 %"]], ci$p.value,
                                sapply(fits, coef), sqrt(sapply(fits, vcov)))))
write.csv(cox, "pooled_cox.csv", row.names = FALSE, quote = FALSE)

scalars <- read.csv("scalars.csv")
out <- do.call(rbind, lapply(split(scalars, scalars$scenario), function(s) {
  n <- if (is.na(s$n[1])) Inf else s$n[1]
  p <- pool.scalar(s$estimate, s$variance, n = n, k = 1)
  data.frame(scenario = s$scenario[1], qbar = num(p$qbar), ubar = num(p$ubar), b = num(p$b), t = num(p$t),
             df = num(p$df), r = num(p$r), fmi = num(p$fmi))
}))
write.csv(out, "pooled_scalar.csv", row.names = FALSE, quote = FALSE)
