# Regenerate with:  Rscript make_r_extra.R   (run inside tests/reference/r_extra; R 4.2.2, survival 3.5-3)
suppressMessages(library(survival))
source("gbsg_matched.R")

# A synthetic matched sample with many tied times (whole months) and fractional control
# weights (2:1 and 1:1 sets mixed), so Efron ties and the robust KM variance both matter.
make_tied <- function() {
  set.seed(20240501)
  nset <- 150
  k <- sample(1:2, nset, replace = TRUE)
  treat <- c(rep(1, nset), rep(0, sum(k)))
  subclass <- c(seq_len(nset), rep(seq_len(nset), k))
  w <- c(rep(1, nset), rep(1 / k, k))
  w[treat == 0] <- w[treat == 0] / mean(w[treat == 0])
  rate <- ifelse(treat == 1, 0.025, 0.04)
  t_event <- rexp(length(treat), rate)
  t_cens <- runif(length(treat), 6, 60)
  time <- pmax(1, round(pmin(t_event, t_cens)))
  event <- as.integer(t_event <= t_cens)
  data.frame(time = time, event = event, treat = treat, w = w, subclass = subclass)
}

landmarks <- c(0.5, 12, 36, 60, 120)
rows <- list()
add <- function(case, arm, ci, quantity, value) {
  rows[[length(rows) + 1]] <<- data.frame(case = case, arm = arm, ci = ci, quantity = quantity,
                                          value = num(value))
}

describe <- function(case, d, tau, pair_strata = TRUE) {
  for (ci in c("log-log", "log", "plain")) {
    for (arm in c("treated", "control")) {
      a <- d[d$treat == (arm == "treated"), ]
      fit <- survfit(Surv(time, event) ~ 1, data = a, weights = w, conf.type = ci)
      q <- quantile(fit, 0.5)
      add(case, arm, ci, "median", q$quantile); add(case, arm, ci, "median_lower", q$lower)
      add(case, arm, ci, "median_upper", q$upper)
      tab <- summary(fit, rmean = tau)$table
      add(case, arm, ci, "rmst", tab[["rmean"]]); add(case, arm, ci, "rmst_se", tab[["se(rmean)"]])
      s <- summary(fit, times = landmarks[landmarks <= max(a$time)])
      for (i in seq_along(s$time)) {
        lm <- landmarks[landmarks <= max(a$time)][i]
        add(case, arm, ci, sprintf("surv_%g", lm), s$surv[i])
        add(case, arm, ci, sprintf("lower_%g", lm), s$lower[i])
        add(case, arm, ci, sprintf("upper_%g", lm), s$upper[i])
      }
    }
  }
  lr <- survdiff(Surv(time, event) ~ treat, data = d)
  add(case, "both", "", "logrank_chisq", lr$chisq)
  m <- coxph(Surv(time, event) ~ treat, data = d, weights = w, cluster = subclass, ties = "efron")
  add(case, "both", "", "hr", exp(coef(m))); add(case, "both", "", "hr_robust_se", sqrt(m$var[1, 1]))
  add(case, "both", "", "hr_p", summary(m)$coefficients[1, "Pr(>|z|)"])
  if (!pair_strata) return(invisible())
  ms <- coxph(Surv(time, event) ~ treat + strata(subclass), data = d, weights = w,
              cluster = subclass, ties = "efron")
  add(case, "both", "", "conditional_hr", exp(coef(ms)))
  add(case, "both", "", "conditional_robust_se", sqrt(ms$var[1, 1]))
  add(case, "both", "", "conditional_p", summary(ms)$coefficients[1, "Pr(>|z|)"])
}

tied <- make_tied()
write.csv(tied, "tied_matched.csv", row.names = FALSE)
describe("gbsg_r1", load_gbsg("r1"), 60)
describe("gbsg_r2_cal_logit", load_gbsg("r2_cal_logit"), 60)
describe("gbsg_r3_cal_ps", load_gbsg("r3_cal_ps"), 24)
describe("tied", tied, 36)
describe("gbsg_r1_replace", load_gbsg_replace(), 60, pair_strata = FALSE)
write.csv(do.call(rbind, rows), "r_extra_expected.csv", row.names = FALSE, quote = TRUE)
