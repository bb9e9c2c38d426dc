# The stratified log-rank fixture of tests/test_federated.py: R survival 3.5-3 survdiff on the lung
# data (arm = sex, strata = institution; rows without an institution left out), unstratified and
# stratified, with the rows. Run: Rscript make_logrank_fixture.R
suppressPackageStartupMessages({library(survival); library(jsonlite)})
d <- lung[!is.na(lung$inst), c("time", "status", "sex", "inst")]
d$event <- as.integer(d$status == 2)
plain <- survdiff(Surv(time, event) ~ sex, data = d)
strat <- survdiff(Surv(time, event) ~ sex + strata(inst), data = d)
out <- list(time = d$time, event = d$event, treated = as.integer(d$sex == 1), strata = d$inst,
            chisq = plain$chisq, chisq_stratified = strat$chisq)
writeLines(toJSON(out, digits = NA, auto_unbox = TRUE), "lung_survdiff.json")
