# The launcher's steps (see launch_IRkernel.R for the whole story): choose the comm port, fork the comm
# listener, build IRkernel's kernel with its ports bound, send the sealed report naming those ports,
# then run the kernel.

kf_launcher_version <- function(dir = KF_LAUNCHER_DIR) {
  # The report's "launcher" name: "r/" and launchers/r/VERSION, the R launcher's one version source (shipped beside
  # these files by kernelfleet-bootstrap; tests/repo checks that nothing else spells it).
  path <- file.path(dir, "VERSION")
  version <- tryCatch(trimws(readLines(path, n = 1L, warn = FALSE)), error = function(e) character())
  if (length(version) != 1L || !nzchar(version)) kf_fatal("the R launcher's version file %s is missing or empty", path)
  paste0("r/", version)
}
# docs/launcher-vectors.json "report" (tests/test_contract.R checks these): a refused connection is retried, with a
# pause doubling from 0.05 s to at most 0.5 s, until KF_REPORT_CONNECT_WINDOW s after the first try; one attempt
# without any answer fails after KF_REPORT_CONNECT_TIMEOUT s; the verdict must come KF_REPORT_REPLY_TIMEOUT s after.
KF_REPORT_CONNECT_WINDOW <- 5
KF_REPORT_CONNECT_TIMEOUT <- 10
KF_REPORT_REPLY_TIMEOUT <- 30

kf_log_threshold <- 20L

kf_log <- function(level, fmt, ...) {
  # One line on stderr per event; callers pass ids, ports and pids only, never keys or the token.
  if (KF_LOG_LEVELS[[level]] < kf_log_threshold) return(invisible())
  text <- tryCatch(sprintf(fmt, ...), error = function(e) paste(fmt, "(unformattable log arguments)"))
  cat(sprintf("[%s %s KernelFleetRLauncher %d] %s\n", substr(level, 1L, 1L), format(Sys.time(), "%H:%M:%OS3"),
              Sys.getpid(), text), file = stderr())
  invisible()
}

kf_fatal <- function(fmt, ...) {
  kf_log("ERROR", fmt, ...)
  quit(save = "no", status = 1L)
}

kf_connection_file_path <- function() {
  # A fresh 0700 directory in this session's temp dir (which R removes when the kernel quits): the
  # kernel's HMAC key is readable by this user only.
  dir <- tempfile("kernelfleet-")
  dir.create(dir, mode = "0700")
  file.path(dir, "kernel.json")
}

kf_write_connection_file <- function(info, path) {
  old <- Sys.umask("077")
  on.exit(Sys.umask(old))
  writeLines(as.character(jsonlite::toJSON(info, auto_unbox = TRUE, digits = NA)), path)
  Sys.chmod(path, "0600")
  invisible(path)
}

kf_report_ip <- function(kernel_ip) {
  # With the wildcard bind, report the address this host's name resolves to (a container's own
  # address); the server may still replace it with the address it knows the host by.
  if (kernel_ip != "0.0.0.0") return(kernel_ip)
  resolved <- tryCatch(utils::nsl(Sys.info()[["nodename"]]), error = function(e) NULL, warning = function(w) NULL)
  if (is.character(resolved) && length(resolved) == 1L && nzchar(resolved)) resolved else "127.0.0.1"
}

kf_connect_response <- function(host, port, id, blocking = TRUE) {
  # A connection to the response address, retried while it is refused (docs/launcher-vectors.json "report"); stops
  # naming the address when it stays unreachable. Used for the report and for a standby's registration (kf_standby.R).
  deadline <- kf_now() + KF_REPORT_CONNECT_WINDOW
  pause <- 0.05
  repeat {
    con <- tryCatch(
      suppressWarnings(socketConnection(host, port, blocking = blocking, open = "a+b", timeout = KF_REPORT_CONNECT_TIMEOUT)),
      error = function(e) e
    )
    if (!inherits(con, "error")) return(con)
    if (kf_now() + pause > deadline) {
      stop(sprintf("cannot reach the response address %s:%d for %g s: %s", host, port, KF_REPORT_CONNECT_WINDOW,
                   conditionMessage(con)), call. = FALSE)
    }
    kf_log("DEBUG", "%s: the response address %s:%d refused the connection; retrying", id, host, port)
    Sys.sleep(pause)
    pause <- min(pause * 2, 0.5)
  }
}

kf_send_report <- function(host, port, line, kernel_id) {
  # Returns TRUE when the server accepted the report, FALSE when it answered ok:false; stops when the
  # server cannot be reached or does not answer.
  con <- kf_connect_response(host, port, paste("kernel", kernel_id))
  on.exit(close(con))
  socketTimeout(con, KF_REPORT_REPLY_TIMEOUT)
  writeBin(c(charToRaw(line), as.raw(10L)), con)
  flush(con)
  reply <- tryCatch(suppressWarnings(readLines(con, n = 1L, ok = TRUE, warn = FALSE)), error = function(e) character())
  parsed <- if (length(reply) == 1L) kf_parse_broker_reply(reply) else NULL
  if (is.null(parsed)) {
    stop(sprintf("the server at %s:%d did not answer the report within %d s", host, port, KF_REPORT_REPLY_TIMEOUT), call. = FALSE)
  }
  isTRUE(parsed$ok)
}

kf_start_listener <- function(comm_socket, comm_key, kernel_pid, conn_file, jit_level = NULL) {
  # The forked listener. It closes nothing the kernel needs: the kernel's ZMQ sockets do not exist yet.
  # It serves the comm port for the kernel's whole life, under floods too: compiled, at the JIT level the
  # kernel gets (compiling happens in the listener, beside the kernel's start rather than in its way).
  listener <- parallel::mcparallel(detached = TRUE, mc.set.seed = FALSE, expr = {
    if (!is.null(jit_level)) compiler::enableJIT(jit_level)
    status <- tryCatch({
      # kf_serve_comm ignores SIGINT itself; this catches one landing between its loop iterations.
      while (!tryCatch({
        kf_serve_comm(comm_socket, comm_key, kernel_pid, kf_log)
        TRUE
      }, interrupt = function(e) FALSE)) NULL
      kf_log("INFO", "kernel exited; comm listener stops")
      0L
    }, error = function(e) {
      kf_log("ERROR", "comm listener failed: %s; stopping the kernel", conditionMessage(e))
      kf_signal(kernel_pid, tools::SIGTERM)
      deadline <- kf_now() + KF_TERM_TO_KILL
      while (kf_kernel_alive(kernel_pid) && kf_now() < deadline) Sys.sleep(0.1)
      if (kf_kernel_alive(kernel_pid)) kf_signal(kernel_pid, tools::SIGKILL)
      1L
    })
    unlink(dirname(conn_file), recursive = TRUE)
    # The kernel was killed, so R could not remove its session temp dir; this process shares it.
    if (!kf_kernel_alive(kernel_pid)) unlink(tempdir(), recursive = TRUE)
    invisible(status)  # mcparallel ends the forked process (_exit) when this expression returns
  })
  listener$pid
}

kf_check_spark <- function(mode) {
  # Checked before the report goes out, so a kernel that cannot start never looks launched.
  if (mode != "none" && !nzchar(system.file(package = "SparkR"))) {
    kf_fatal("--spark-context-initialization-mode %s needs the SparkR package (SPARK_HOME/R/lib), which is not installed",
             mode)
  }
}

kf_init_spark <- function(mode, app_name) {
  # Gateway Provisioners' semantics and names: eager starts the SparkR session before the kernel, lazy on
  # first use of `spark`; `sc` is its JavaSparkContext and `sqlContext` GP's SQL entry point (the session
  # itself where SparkR no longer has sparkRSQL.init). Under spark-submit, sparkR.session() joins the
  # driver (RBackend) spark-submit started, with the operator's --master and options.
  if (mode == "none") return(invisible())
  if (mode == "eager") {
    assign("spark", SparkR::sparkR.session(appName = app_name), envir = globalenv())
  } else {
    delayedAssign("spark", SparkR::sparkR.session(appName = app_name), assign.env = globalenv())
  }
  delayedAssign("sc", SparkR:::callJStatic("org.apache.spark.sql.api.r.SQLUtils", "getJavaSparkContext", spark),
                eval.env = globalenv(), assign.env = globalenv())
  delayedAssign("sqlContext",
                if (exists("sparkRSQL.init", envir = asNamespace("SparkR"))) SparkR::sparkRSQL.init(sc) else spark,
                eval.env = globalenv(), assign.env = globalenv())
  invisible()
}

kf_main <- function(argv = commandArgs(trailingOnly = TRUE), jit_level = NULL) {
  # jit_level: the JIT level to restore for the kernel (launch_IRkernel.R turned the JIT off for the launcher).
  config <- tryCatch(kf_load_config(argv), kf_config_error = function(e) kf_fatal("%s", conditionMessage(e)))
  Sys.unsetenv("LAUNCH_TOKEN")  # read once; the kernel's users have no business with it
  kf_log_threshold <<- config$log_level
  for (arg in config$unknown_args) kf_log("WARNING", "ignoring unknown argument %s", kf_quote(arg))
  # Found, not loaded yet: the comm listener must be forked before IRkernel creates its ZMQ context (a standby's
  # warm-up kernel destroys its context again before the claim).
  if (!nzchar(system.file(package = "IRkernel"))) kf_fatal("the IRkernel package is not installed")
  kf_check_spark(config$spark_init_mode)
  # A warm-pool standby (protocol 2.1) loads IRkernel now and waits for its claim, which names the kernel to be.
  if (kf_is_standby()) config <- kf_standby(config)
  kernel_id <- config$kernel_id
  if (Sys.getpid() == 1L) {
    # PID 1 gets only signals it has handlers for, and R has none for SIGTERM: docker stop, and the
    # comm port's terminate/kill/shutdown, would then do nothing (SIGKILL from outside still works).
    kf_log("WARNING", "kernel %s: running as PID 1; run the image with an init (tini, docker --init) so the kernel can be stopped",
           kernel_id)
  }

  comm <- tryCatch(kf_bind_ports(config$port_range, count = 1L),
                   error = function(e) kf_fatal("kernel %s: %s", kernel_id, conditionMessage(e)))
  comm_port <- comm$ports[[1L]]
  comm_key <- kf_random_bytes(32L)
  conn_info <- list(
    ip = config$kernel_ip, key = paste(format(kf_random_bytes(32L)), collapse = ""),
    transport = "tcp", signature_scheme = "hmac-sha256", kernel_name = ""
  )
  conn_file <- kf_connection_file_path()
  kernel_pid <- Sys.getpid()
  listener_pid <- kf_start_listener(comm$sockets[[1L]], comm_key, kernel_pid, conn_file, jit_level)
  close(comm$sockets[[1L]])
  stop_listener <- function() {
    kf_signal(listener_pid, tools::SIGTERM)
    unlink(dirname(conn_file), recursive = TRUE)
  }
  started <- tryCatch(kf_start_kernel(conn_info, conn_file, config$port_range, comm_port, kernel_id),
                      error = function(e) {
                        stop_listener()
                        kf_fatal("kernel %s: %s", kernel_id, conditionMessage(e))
                      })
  ports <- started$ports
  reported <- c(as.list(ports), conn_info)
  reported$ip <- kf_report_ip(config$kernel_ip)
  reported <- c(reported, list(
    comm_port = comm_port, comm_key = kf_b64encode(comm_key), launch_token = config$launch_token,
    kernel_id = kernel_id, pid = kernel_pid, pgid = kf_pgid(), launcher = kf_launcher_version()
  ))
  if (is.na(reported$pgid)) reported$pgid <- NULL
  line <- tryCatch(kf_seal_report(kf_connection_plaintext(reported), kernel_id, config$public_key),
                   error = function(e) {
                     stop_listener()
                     kf_fatal("kernel %s: %s", kernel_id, conditionMessage(e))
                   })
  rm(reported, comm_key)  # only the listener needs the key; user code could otherwise find it on the stack
  config$launch_token <- NULL
  kf_log("INFO", "kernel %s: kernel bound ports %s, comm port %d, listener pid %d", kernel_id,
         paste(ports, collapse = ","), comm_port, listener_pid)

  accepted <- tryCatch(kf_send_report(config$response_host, config$response_port, line, kernel_id),
                       error = function(e) {
                         kf_log("ERROR", "kernel %s: %s", kernel_id, conditionMessage(e))
                         NA
                       })
  if (!isTRUE(accepted)) {
    if (identical(accepted, FALSE)) kf_log("ERROR", "kernel %s: the server rejected the launch report", kernel_id)
    stop_listener()
    quit(save = "no", status = 1L)
  }
  kf_log("INFO", "kernel %s: report accepted; starting IRkernel", kernel_id)
  if (!is.null(jit_level)) compiler::enableJIT(jit_level)
  kf_init_spark(config$spark_init_mode, config$app_name)
  started$kernel$run()
}

