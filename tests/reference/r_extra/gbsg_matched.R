# The gbsg fixtures' matched samples, shared by make_r_extra.R and make_r_weighted.R.
ref <- ".."
num <- function(x) ifelse(is.na(x), "NA", sprintf("%.17g", x))

load_gbsg <- function(spec) {
  u <- read.csv(file.path(ref, "gbsg_units.csv"))
  w <- read.csv(file.path(ref, sprintf("gbsg_%s_weights.csv", spec)))
  p <- read.csv(file.path(ref, sprintf("gbsg_%s_pairs.csv", spec)))
  d <- merge(u, w, by = "row_id")
  d <- d[d$weight > 0, ]
  sets <- unique(p$treated_row)
  sub <- c(setNames(seq_along(sets), sets), setNames(match(p$treated_row, sets), p$control_row))
  data.frame(time = d$time_months, event = d$status, treat = d$hormon, w = d$weight,
             subclass = unname(sub[as.character(d$row_id)]))
}

# Matching with replacement: one row per patient with its summed weight; clustered on the patient.
load_gbsg_replace <- function() {
  u <- read.csv(file.path(ref, "gbsg_units.csv"))
  w <- read.csv(file.path(ref, "gbsg_r1_replace_weights.csv"))
  d <- merge(u, w, by = "row_id")
  d <- d[d$weight > 0, ]
  data.frame(time = d$time_months, event = d$status, treat = d$hormon, w = d$weight,
             subclass = d$row_id)
}
