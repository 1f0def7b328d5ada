# What every R test script here shares: check() prints "ok   NAME" or "FAIL NAME" and counts, kf_finish() prints the
# count (tests/launchers/test_r_launcher.py looks for " 0 failed") and exits non-zero on any failure.
# Sourced by each script, after it has found its own directory.

failures <- 0L
checks <- 0L

check <- function(ok, what) {
  checks <<- checks + 1L
  if (!isTRUE(ok)) failures <<- failures + 1L
  cat(if (isTRUE(ok)) "ok   " else "FAIL ", what, "\n")
}

kf_finish <- function() {
  cat(sprintf("%d checks, %d failed\n", checks, failures))
  if (failures > 0L) quit(status = 1L, save = "no")
}
