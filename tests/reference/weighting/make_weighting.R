# Regenerate with:  Rscript make_weighting.R   (run inside tests/reference/weighting; R 4.2.2, survival 3.5-3)
# Reference numbers for the weighting designs (issue 17), from base-R formulas: WeightIt and cobalt
# are not installed here, so their conventions are written out (see README.md beside this file).
suppressMessages(library(survival))
num <- function(x) ifelse(is.na(x), "NA", sprintf("%.17g", x))

# The designs: estimand, stabilisation, trimming quantile (NA = none).
specs <- data.frame(
  spec = c("att", "ate", "ato", "ate_stabilized", "att_trim05", "ate_stabilized_trim025", "ato_trim10"),
  estimand = c("ATT", "ATE", "ATO", "ATE", "ATT", "ATE", "ATO"),
  stabilize = c(FALSE, FALSE, FALSE, TRUE, FALSE, TRUE, FALSE),
  trim = c(NA, NA, NA, NA, 0.05, 0.025, 0.10))

# WeightIt's get_w_from_ps() formulas for a binary treatment.
ps_weights <- function(ps, treat, estimand) {
  switch(estimand,
         ATT = ifelse(treat == 1, 1, ps / (1 - ps)),
         ATE = ifelse(treat == 1, 1 / ps, 1 / (1 - ps)),
         ATO = ifelse(treat == 1, 1 - ps, ps))
}

# Stürmer et al. (2010): keep scores within [q quantile of the treated, 1 - q quantile of the controls].
trim_bounds <- function(ps, treat, q) {
  c(unname(quantile(ps[treat == 1], q, type = 7)), unname(quantile(ps[treat == 0], 1 - q, type = 7)))
}

design_weights <- function(ps, treat, spec) {
  kept <- rep(TRUE, length(ps))
  bounds <- c(NA, NA)
  if (!is.na(spec$trim)) {
    bounds <- trim_bounds(ps, treat, spec$trim)
    kept <- ps >= bounds[1] & ps <= bounds[2]
  }
  w <- ifelse(kept, ps_weights(ps, treat, spec$estimand), 0)
  if (spec$stabilize) {   # WeightIt's stabilize: times the arm's share (of the weighted patients)
    share <- mean(treat[kept] == 1)
    w <- w * ifelse(treat == 1, share, 1 - share)
  }
  list(w = w, bounds = bounds, kept = kept)
}

# Variance with reliability weights (cobalt's col.w.v, R's cov.wt); p(1 - p) for a 0/1 variable.
wvar <- function(x, w, binary) {
  w <- w / sum(w)
  m <- sum(w * x)
  if (binary) m * (1 - m) else sum(w * (x - m)^2) / (1 - sum(w^2))
}

# cobalt's s.d.denom for the estimand: ATT "treated", ATE "pooled", ATO "weighted" (its
# .s.d.denom_from_estimand), each on the full sample before weighting except "weighted".
denominator <- function(x, treat, w, estimand, binary) {
  ones <- function(n) rep(1, n)
  switch(estimand,
         ATT = sqrt(wvar(x[treat == 1], ones(sum(treat == 1)), binary)),
         ATE = sqrt((wvar(x[treat == 1], ones(sum(treat == 1)), binary) +
                       wvar(x[treat == 0], ones(sum(treat == 0)), binary)) / 2),
         ATO = sqrt(wvar(x, w, binary)))
}

# A difference below sqrt(machine epsilon) stays unstandardized (cobalt's check_if_zero, MatchIt).
smd <- function(diff, den) if (abs(diff) < sqrt(.Machine$double.eps)) diff else diff / den

wmean_diff <- function(x, treat, w) {
  sum(w[treat == 1] * x[treat == 1]) / sum(w[treat == 1]) - sum(w[treat == 0] * x[treat == 0]) / sum(w[treat == 0])
}

# Largest |weighted eCDF difference| over the distinct values (cobalt's col_w_ks).
ks <- function(x, treat, w) {
  v <- sort(unique(x))
  f1 <- sapply(v, function(a) sum(w[treat == 1 & x <= a])) / sum(w[treat == 1])
  f0 <- sapply(v, function(a) sum(w[treat == 0 & x <= a])) / sum(w[treat == 0])
  max(abs(f1 - f0))
}

ess <- function(w) sum(w)^2 / sum(w^2)

describe_set <- function(set, treat_col, covariates, outcome) {
  u <- read.csv(file.path("..", sprintf("%s_units.csv", set)))
  treat <- u[[treat_col]]
  weights <- data.frame(row_id = u$row_id)
  balance <- list(); summary <- list(); surv_rows <- list()
  add_summary <- function(spec, quantity, value) {
    summary[[length(summary) + 1]] <<- data.frame(spec = spec, quantity = quantity, value = num(value))
  }
  add_surv <- function(spec, arm, quantity, value) {
    surv_rows[[length(surv_rows) + 1]] <<- data.frame(spec = spec, arm = arm, quantity = quantity, value = num(value))
  }
  for (i in seq_len(nrow(specs))) {
    spec <- specs[i, ]
    d <- design_weights(u$ps, treat, spec)
    w <- d$w
    weights[[spec$spec]] <- num(w)
    for (v in covariates) {
      x <- u[[v]]
      binary <- all(x %in% c(0, 1))
      den <- denominator(x, treat, w, spec$estimand, binary)
      balance[[length(balance) + 1]] <- data.frame(
        spec = spec$spec, variable = v,
        smd_before = num(smd(wmean_diff(x, treat, rep(1, length(x))), den)),
        smd_after = num(smd(wmean_diff(x, treat, w), den)),
        var_ratio_after = num(if (binary) NA else wvar(x[treat == 1], w[treat == 1], FALSE) /
                                                    wvar(x[treat == 0], w[treat == 0], FALSE)),
        ecdf_max_after = num(ks(x, treat, w)))
    }
    add_summary(spec$spec, "ess_treated", ess(w[treat == 1 & w > 0]))
    add_summary(spec$spec, "ess_control", ess(w[treat == 0 & w > 0]))
    add_summary(spec$spec, "trim_lower", d$bounds[1]); add_summary(spec$spec, "trim_upper", d$bounds[2])
    add_summary(spec$spec, "n_trimmed_treated", sum(!d$kept & treat == 1))
    add_summary(spec$spec, "n_trimmed_control", sum(!d$kept & treat == 0))
    if (outcome) {
      s <- data.frame(time = u$time_months, event = u$status, treat = treat, w = w, id = u$row_id)[w > 0, ]
      tau <- min(max(s$time[s$treat == 1]), max(s$time[s$treat == 0]))
      add_surv(spec$spec, "both", "tau", tau)
      for (arm in c("treated", "control")) {
        a <- s[s$treat == (arm == "treated"), ]
        fit <- survfit(Surv(time, event) ~ 1, data = a, weights = w, conf.type = "log-log")
        add_surv(spec$spec, arm, "events_weighted", sum(fit$n.event))
        add_surv(spec$spec, arm, "ess", ess(a$w))
        tab <- summary(fit, rmean = tau)$table
        add_surv(spec$spec, arm, "rmst", tab[["rmean"]]); add_surv(spec$spec, arm, "rmst_se", tab[["se(rmean)"]])
        q <- quantile(fit, 0.5)
        add_surv(spec$spec, arm, "median", q$quantile)
        add_surv(spec$spec, arm, "median_lower", q$lower); add_surv(spec$spec, arm, "median_upper", q$upper)
        lm <- c(12, 36, 60)
        sm <- summary(fit, times = lm)
        for (j in seq_along(lm)) {
          add_surv(spec$spec, arm, sprintf("surv_%g", lm[j]), sm$surv[j])
          add_surv(spec$spec, arm, sprintf("lower_%g", lm[j]), sm$lower[j])
          add_surv(spec$spec, arm, sprintf("upper_%g", lm[j]), sm$upper[j])
        }
      }
      add_surv(spec$spec, "both", "logrank_chisq", survdiff(Surv(time, event) ~ treat, data = s)$chisq)
      m <- coxph(Surv(time, event) ~ treat, data = s, weights = w, cluster = id, ties = "efron")
      sm <- summary(m)
      add_surv(spec$spec, "both", "hr", exp(coef(m)))
      add_surv(spec$spec, "both", "hr_robust_se", sqrt(m$var[1, 1]))
      add_surv(spec$spec, "both", "hr_p", sm$coefficients[1, "Pr(>|z|)"])
      add_surv(spec$spec, "both", "hr_lower", sm$conf.int[1, "lower .95"])
      add_surv(spec$spec, "both", "hr_upper", sm$conf.int[1, "upper .95"])
      add_surv(spec$spec, "both", "robscore", sm$robscore[["test"]])
      add_surv(spec$spec, "both", "robscore_p", sm$robscore[["pvalue"]])
      add_surv(spec$spec, "both", "sctest", sm$sctest[["test"]])
    }
  }
  write.csv(weights, sprintf("%s_weights.csv", set), row.names = FALSE, quote = FALSE)
  write.csv(do.call(rbind, balance), sprintf("%s_balance.csv", set), row.names = FALSE, quote = FALSE)
  write.csv(do.call(rbind, summary), sprintf("%s_summary.csv", set), row.names = FALSE, quote = FALSE)
  if (outcome) write.csv(do.call(rbind, surv_rows), sprintf("%s_survival.csv", set), row.names = FALSE, quote = FALSE)
}

write.csv(specs, "specs.csv", row.names = FALSE, quote = FALSE)
describe_set("gbsg", "hormon", c("age", "meno", "size", "grade", "nodes", "pgr", "er"), outcome = TRUE)
describe_set("lalonde", "treat", c("age", "educ", "black", "hispan", "married", "nodegree", "re74", "re75"),
             outcome = FALSE)
