# Standby mode (protocol 2.1, docs/protocol.md section 8): a warmed R launcher that waits in a server's pool until it
# is claimed for one kernel.
#
# kf_main calls kf_standby when the launcher was started with KF_STANDBY_ID. This process then does now what costs a
# cold start its time -- R's own start-up, loading IRkernel and its dependencies, and the first build of IRkernel's
# kernel classes (R5 reference classes: the first Kernel$new costs ~0.3-0.5 s, the next ~0.01 s) -- registers with the
# server's response broker (sealed like a report, with its registration token), and blocks on that connection until
# the one claim arrives, or the server closes it (the pool culled this standby, or the server is gone: exit 0).
# After an accepted claim the launch goes on in this same process exactly as a cold one (kf_main: comm port,
# listener fork, kernel, report), with the claim's kernel id, launch token and port range, its environment applied
# (Sys.setenv) and its working directory entered before any user code runs. No kernel port is bound and no
# connection key exists before the claim: the warm-up kernel binds nothing (its endpoints' directory does not
# exist) and is closed at once.

KF_STANDBY_VARIABLES <- c("KF_STANDBY_ID", "KF_STANDBY_POOL", "KF_STANDBY_PARENT")
KF_REGISTER_TIMEOUT <- 30  # connect, send and hear the server's verdict (as the Python launcher)
KF_MAX_ANSWER_BYTES <- 4096L
KF_WARM_NAMESPACES <- c("IRkernel", "pbdZMQ", "repr", "IRdisplay", "evaluate", "jsonlite", "openssl", "uuid",
                        "digest", "base64enc", "crayon", "parallel")

kf_is_standby <- function(env = Sys.getenv()) {
  "KF_STANDBY_ID" %in% names(env) && nzchar(trimws(env[["KF_STANDBY_ID"]]))
}

kf_warm_kernel <- function() {
  # Loads IRkernel and what its kernels use (forcing their lazy-loaded functions), then builds and closes one
  # IRkernel Kernel whose endpoints cannot bind (ipc paths in a directory that does not exist): the reference
  # classes are built, nothing listens. The search path is left as it was, so the claimed kernel's equals a cold one's.
  for (name in KF_WARM_NAMESPACES) {
    ns <- tryCatch(loadNamespace(name), error = function(e) NULL)
    if (!is.null(ns)) for (f in ls(ns, all.names = TRUE)) tryCatch(get(f, envir = ns), error = function(e) NULL)
  }
  before <- search()
  kept <- options("pager", "jupyter.base_display_func", "jupyter.clear_output_func")
  nowhere <- file.path(tempfile("kernelfleet-warm-"), "absent")
  conn_file <- tempfile("kernelfleet-warm-", fileext = ".json")
  kf_write_connection_file(list(ip = file.path(nowhere, "s"), key = "", transport = "ipc",
                                signature_scheme = "hmac-sha256", kernel_name = "", shell_port = 1L, iopub_port = 2L,
                                stdin_port = 3L, control_port = 4L, hb_port = 5L), conn_file)
  on.exit(unlink(conn_file))
  # pbdZMQ reports each failed bind on stdout as well as by a warning: neither is news here.
  utils::capture.output(kernel <- suppressWarnings(IRkernel:::Kernel$new(connection_file = conn_file)))
  kf_close_kernel(kernel)
  # Let go of every reference IRkernel keeps to the warm-up kernel, so that its Executor's finalizer (which detaches
  # a "jupyter:irkernel" environment by name) runs now rather than later under the claimed kernel's feet.
  assign("comm_manager", NULL, envir = get("runtime_env", envir = asNamespace("IRkernel")))
  options(kept)
  rm(kernel)
  gc(verbose = FALSE)
  while (length(search()) > length(before)) detach(pos = 2L)  # what the finalizers left of the warm-up's attachments
  # A first cell's own first uses (evaluate's machinery, a value's mime bundle, a message's id and signature), each
  # in a scratch environment: ~0.03 s of a claimed kernel's first `1+1` otherwise.
  evaluate::evaluate("1+1", envir = new.env(), stop_on_error = 1L)
  jsonlite::toJSON(IRkernel:::prepare_mimebundle_kernel(2), auto_unbox = TRUE)
  digest::hmac("key", uuid::UUIDgenerate(), "sha256")
  invisible()
}

kf_read_line <- function(con, buffer, limit, timeout) {
  # One line from the non-blocking connection `con`: list(line, buffer) with what is left after it; line NULL on end
  # of stream. Stops on a line longer than `limit` or none within `timeout` seconds.
  deadline <- kf_now() + timeout
  repeat {
    newline <- match(as.raw(10L), buffer)
    if (!is.na(newline)) {
      line <- rawToChar(buffer[seq_len(newline - 1L)])
      Encoding(line) <- "UTF-8"
      return(list(line = line, buffer = buffer[-seq_len(newline)]))
    }
    if (length(buffer) > limit) stop(sprintf("the server sent a line longer than %d bytes", limit), call. = FALSE)
    left <- deadline - kf_now()
    if (left <= 0) stop(sprintf("no line from the server within %g s", timeout), call. = FALSE)
    if (!isTRUE(socketSelect(list(con), timeout = min(left, 3600)))) next
    chunk <- tryCatch(readBin(con, "raw", n = 65536L), error = function(e) raw(0))
    if (length(chunk) == 0L) return(list(line = NULL, buffer = buffer))  # readable with nothing to read: closed
    buffer <- c(buffer, chunk)
  }
}

kf_apply_claim <- function(claim) {
  # The claimed kernel's environment and working directory, before it runs any code; the standby's own variables go.
  Sys.unsetenv(c(KF_STANDBY_VARIABLES, "LAUNCH_TOKEN", "LAUNCH_TOKEN_FILE"))
  if (length(claim$env) > 0L) do.call(Sys.setenv, as.list(claim$env))
  if (!is.null(claim$working_dir)) {
    entered <- tryCatch({
      setwd(claim$working_dir)
      TRUE
    }, error = function(e) conditionMessage(e))
    if (!isTRUE(entered)) {
      kf_fatal("kernel %s: cannot enter the working directory %s: %s", claim$kernel_id, kf_quote(claim$working_dir),
               entered)
    }
  }
  invisible()
}

kf_standby <- function(config) {
  # Returns the claimed launch's config (kf_claimed_config) once the claim's environment and working directory are
  # applied; exits when the standby ends without a claim (0 when the server let it go, 1 on any failure).
  standby_id <- trimws(Sys.getenv("KF_STANDBY_ID"))
  pool <- trimws(Sys.getenv("KF_STANDBY_POOL"))
  kf_warm_kernel()
  claim_key <- kf_random_bytes(KF_CLAIM_KEY_BYTES)
  nonce <- kf_random_bytes(KF_NONCE_BYTES)
  line <- tryCatch(kf_seal_registration(standby_id, pool, config$launch_token, claim_key, nonce, config$public_key,
                                        pid = Sys.getpid(), launcher = kf_launcher_version()),
                   error = function(e) kf_fatal("standby %s: cannot register: %s", standby_id, conditionMessage(e)))
  config$launch_token <- NULL
  con <- tryCatch(kf_connect_response(config$response_host, config$response_port, standby_id, blocking = FALSE),
                  error = function(e) kf_fatal("standby %s: %s", standby_id, conditionMessage(e)))
  writeBin(c(charToRaw(line), as.raw(10L)), con)
  answer <- tryCatch(kf_read_line(con, raw(0), KF_MAX_ANSWER_BYTES, KF_REGISTER_TIMEOUT),
                     error = function(e) kf_fatal("standby %s: registration: %s", standby_id, conditionMessage(e)))
  reply <- if (is.null(answer$line)) NULL else kf_parse_broker_reply(answer$line)
  if (!isTRUE(reply$ok)) kf_fatal("standby %s: the server refused the registration", standby_id)
  kf_log("INFO", "standby %s: registered with pool %s at %s:%d", standby_id, pool, config$response_host,
         config$response_port)
  received <- tryCatch(kf_read_line(con, answer$buffer, KF_MAX_CLAIM_BYTES, Inf),
                       error = function(e) kf_fatal("standby %s: %s", standby_id, conditionMessage(e)))
  if (is.null(received$line)) {
    kf_log("INFO", "standby %s: the server let go of this standby; exiting", standby_id)
    quit(save = "no", status = 0L)
  }
  verdict <- kf_claim_verifier(standby_id, pool, claim_key, nonce)(received$line)
  rm(claim_key)
  claimed <- if (isTRUE(verdict$ok)) {
    tryCatch(kf_claimed_config(config, verdict$claim), kf_config_error = function(e) conditionMessage(e))
  } else {
    verdict$error
  }
  if (is.character(claimed)) {
    try(writeBin(c(charToRaw(kf_claim_answer(claimed)), as.raw(10L)), con), silent = TRUE)
    close(con)
    kf_fatal("standby %s: refused a claim: %s", standby_id, claimed)
  }
  try(writeBin(c(charToRaw(kf_claim_answer()), as.raw(10L)), con), silent = TRUE)
  close(con)
  kf_apply_claim(verdict$claim)
  kf_log("INFO", "standby %s: claimed for kernel %s", standby_id, claimed$kernel_id)
  claimed
}
