# Regenerate with:  Rscript make_r_weighted.R   (run inside tests/reference/r_extra; R 4.2.2, survival 3.5-3)
# Tests that use the weights (issue 14) and samples with zero follow-up times (issue 13).
suppressMessages(library(survival))
source("gbsg_matched.R")

# Matched sets of one treated and 1 to 3 controls, control weights 1/k rescaled to average 1.
matched_sets <- function(nset, max_k) {
  k <- sample(seq_len(max_k), nset, replace = TRUE)
  treat <- c(rep(1, nset), rep(0, sum(k)))
  w <- c(rep(1, nset), rep(1 / k, k))
  w[treat == 0] <- w[treat == 0] / mean(w[treat == 0])
  data.frame(treat = treat, w = w, subclass = c(seq_len(nset), rep(seq_len(nset), k)))
}

# Zero follow-up is data: deaths on the day of treatment (time 0) and a few patients censored
# at 0, in both arms; otherwise days expressed in months.
make_zero_times <- function() {
  set.seed(20240613)
  d <- matched_sets(120, 3)
  n <- nrow(d)
  t_event <- rexp(n, ifelse(d$treat == 1, 0.03, 0.045))
  t_cens <- runif(n, 3, 48)
  d$time <- round(pmin(t_event, t_cens) * 30.4375) / 30.4375
  d$event <- as.integer(t_event <= t_cens)
  zero <- sample(n, 14)
  d$time[zero] <- 0
  d$event[zero] <- rep(c(1, 1, 0), length.out = 14)
  d[, c("time", "event", "treat", "w", "subclass")]
}

# Heavily tied: every time is one of 0, 1, 2, 3 or 4 months.
make_heavy_ties <- function() {
  set.seed(20240614)
  d <- matched_sets(100, 2)
  n <- nrow(d)
  d$time <- sample(0:4, n, replace = TRUE, prob = c(0.1, 0.3, 0.25, 0.2, 0.15))
  d$event <- rbinom(n, 1, ifelse(d$treat == 1, 0.45, 0.6))
  d[, c("time", "event", "treat", "w", "subclass")]
}

# Events in the treated arm only: the HR is infinite (coxph warns and stops at a huge
# coefficient), but the log-rank and both score tests of HR = 1 are defined.
make_one_arm_events <- function() {
  set.seed(20240615)
  d <- matched_sets(40, 2)
  n <- nrow(d)
  d$time <- round(runif(n, 0, 24), 1)
  d$event <- ifelse(d$treat == 1, rbinom(n, 1, 0.5), 0)
  d[, c("time", "event", "treat", "w", "subclass")]
}

rows <- list()
add <- function(case, arm, quantity, value) {
  rows[[length(rows) + 1]] <<- data.frame(case = case, arm = arm, quantity = quantity, value = num(value))
}

score_tests <- function(case, d, cluster, suffix) {
  m <- suppressWarnings(coxph(Surv(time, event) ~ treat, data = d, weights = w, cluster = cluster,
                              ties = "efron"))
  s <- summary(m)
  add(case, "both", paste0("robscore", suffix), s$robscore[["test"]])
  add(case, "both", paste0("robscore_p", suffix), s$robscore[["pvalue"]])
  m
}

describe <- function(case, d, cluster_on_set = TRUE, hr = TRUE, landmarks = c(0, 1, 12, 24, 36)) {
  tau <- min(max(d$time[d$treat == 1]), max(d$time[d$treat == 0]))
  add(case, "both", "tau", tau)
  for (arm in c("treated", "control")) {
    a <- d[d$treat == (arm == "treated"), ]
    fit <- survfit(Surv(time, event) ~ 1, data = a, weights = w, conf.type = "log-log")
    add(case, arm, "events_weighted", sum(fit$n.event))
    add(case, arm, "ess", sum(a$w)^2 / sum(a$w^2))
    add(case, arm, "last_followup", max(a$time))
    tab <- summary(fit, rmean = tau)$table
    add(case, arm, "rmst", tab[["rmean"]]); add(case, arm, "rmst_se", tab[["se(rmean)"]])
    q <- quantile(fit, 0.5)
    add(case, arm, "median", q$quantile); add(case, arm, "median_lower", q$lower)
    add(case, arm, "median_upper", q$upper)
    lm <- landmarks[landmarks <= max(a$time)]
    s <- summary(fit, times = lm)
    for (i in seq_along(lm)) {
      add(case, arm, sprintf("surv_%g", lm[i]), s$surv[i])
      add(case, arm, sprintf("lower_%g", lm[i]), s$lower[i])
      add(case, arm, sprintf("upper_%g", lm[i]), s$upper[i])
    }
  }
  add(case, "both", "logrank_chisq", survdiff(Surv(time, event) ~ treat, data = d)$chisq)
  m <- score_tests(case, d, d$subclass, "")
  score_tests(case, d, seq_len(nrow(d)), "_patient")
  s <- summary(m)
  add(case, "both", "sctest", s$sctest[["test"]]); add(case, "both", "sctest_p", s$sctest[["pvalue"]])
  if (!hr) return(invisible())
  add(case, "both", "hr", exp(coef(m))); add(case, "both", "hr_robust_se", sqrt(m$var[1, 1]))
  add(case, "both", "hr_naive_se", sqrt(m$naive.var[1, 1]))
  add(case, "both", "hr_p", s$coefficients[1, "Pr(>|z|)"])
  if (!cluster_on_set) return(invisible())
  ms <- coxph(Surv(time, event) ~ treat + strata(subclass), data = d, weights = w,
              cluster = subclass, ties = "efron")
  add(case, "both", "conditional_hr", exp(coef(ms)))
  add(case, "both", "conditional_robust_se", sqrt(ms$var[1, 1]))
}

# Written with 17 significant digits and read back, so R and the tests see the same numbers.
written <- function(d, path) {
  out <- d
  for (col in c("time", "w")) out[[col]] <- num(d[[col]])
  write.csv(out, path, row.names = FALSE, quote = FALSE)
  read.csv(path)
}
zero_times <- written(make_zero_times(), "zero_times_matched.csv")
heavy_ties <- written(make_heavy_ties(), "heavy_ties_matched.csv")
one_arm_events <- written(make_one_arm_events(), "one_arm_events_matched.csv")
describe("gbsg_r1", load_gbsg("r1"))
describe("gbsg_r2_cal_logit", load_gbsg("r2_cal_logit"))
describe("gbsg_r3_cal_ps", load_gbsg("r3_cal_ps"))
describe("gbsg_r1_replace", load_gbsg_replace(), cluster_on_set = FALSE)
describe("tied", read.csv("tied_matched.csv"))
describe("zero_times", zero_times)
describe("heavy_ties", heavy_ties, landmarks = c(0, 1, 2, 3))
describe("one_arm_events", one_arm_events, hr = FALSE)
write.csv(do.call(rbind, rows), "r_weighted_expected.csv", row.names = FALSE, quote = TRUE)
