# Process facts and signals for the launcher, in base R (tools::pskill) plus Linux /proc where present.

kf_proc_stat <- function(pid = "self") {
  # Fields after the command name of /proc/<pid>/stat: state, ppid, pgrp, ... (NULL without /proc).
  text <- tryCatch(readLines(sprintf("/proc/%s/stat", pid), warn = FALSE), error = function(e) NULL,
                   warning = function(w) NULL)
  if (length(text) != 1L) return(NULL)
  strsplit(sub("^.*\\) ", "", text), " ", fixed = TRUE)[[1L]]
}

kf_pgid <- function() {
  fields <- kf_proc_stat()
  if (is.null(fields)) NA_integer_ else as.integer(fields[3L])
}

kf_parent_pid <- function() {
  fields <- kf_proc_stat()
  if (is.null(fields)) NA_integer_ else as.integer(fields[2L])
}

kf_kernel_alive <- function(kernel_pid) {
  # The listener is the kernel's forked child, so it is re-parented the moment the kernel dies: that
  # is immune to the kernel lingering as a zombie and to its pid being reused. Without /proc, fall
  # back to signal 0 (which a zombie still answers).
  ppid <- kf_parent_pid()
  if (!is.na(ppid)) return(ppid == kernel_pid)
  isTRUE(tools::pskill(kernel_pid, 0L))
}

kf_signal <- function(pid, signal) invisible(isTRUE(tools::pskill(pid, signal)))

kf_signal_number <- function(name) {
  # This platform's number for one of KF_ALLOWED_SIGNALS (tools names them for the host R runs on).
  switch(name, SIGHUP = tools::SIGHUP, SIGQUIT = tools::SIGQUIT, SIGUSR1 = tools::SIGUSR1, SIGUSR2 = tools::SIGUSR2,
         SIGCONT = tools::SIGCONT, SIGSTOP = tools::SIGSTOP, SIGTSTP = tools::SIGTSTP,
         stop("not an allowed signal: ", name, call. = FALSE))
}
