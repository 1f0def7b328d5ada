# The communication port (docs/protocol.md, section 4), served by the launcher's forked listener.
#
# One select loop handles every open connection, each with its own nonce, 4 KiB cap and one 5 s
# deadline for the whole request (however slowly its bytes trickle in). At most
# KF_MAX_COMM_CONNECTIONS wait for their request at once; a new connection evicts the oldest waiting
# one (R does not tell a connection's peer address, so unlike the Python and Scala launchers this
# cannot prefer the busiest peer). The server's request arrives one round trip after its greeting, on
# the newest connection; each step reads what has arrived before it accepts one new connection, so
# that request is evicted only if a flood outruns it for KF_MAX_COMM_CONNECTIONS steps (the server
# then retries once). R's socketAccept looks up the peer's name, which can take ~0.1 s per connection
# from an address without quick reverse DNS: a flood from there can delay the port for longer than
# the server waits, and the server then interrupts R kernels through their process group. Refused and evicted connections are
# counted into rate-limited warnings (kf_log_limited), never one line each.
# The loop also watches the kernel: it wakes at least every KF_LIVENESS_INTERVAL seconds and ends as
# soon as the kernel process is gone. Signals aimed at the kernel's process group (SIGINT) are caught
# here and ignored. JSON depth: lines are capped at 4 KiB, which jsonlite parses at any nesting (a
# deeper document fails inside jsonlite as an ordinary, caught error).

KF_COMM_TIMEOUT <- 5
KF_MAX_COMM_CONNECTIONS <- 64L
KF_LIVENESS_INTERVAL <- 0.5
KF_TERM_TO_KILL <- 3
KF_WARNING_INTERVAL <- 10

kf_log_limiter <- function(log, interval = KF_WARNING_INTERVAL) {
  # Returns function(key, fmt, ...): at most one WARNING per key and interval; the next line that gets
  # through says how many were left out. Keys are fixed strings, so the state stays small.
  last <- list()
  suppressed <- list()
  function(key, fmt, ...) {
    now <- kf_now()
    if (!is.null(last[[key]]) && now - last[[key]] < interval) {
      suppressed[[key]] <<- (if (is.null(suppressed[[key]])) 0L else suppressed[[key]]) + 1L
      return(invisible(FALSE))
    }
    last[[key]] <<- now
    skipped <- if (is.null(suppressed[[key]])) 0L else suppressed[[key]]
    suppressed[[key]] <<- 0L
    text <- tryCatch(sprintf(fmt, ...), error = function(e) fmt)
    if (skipped > 0L) text <- sprintf("%s (%d similar events in the last %g s not logged)", text, skipped, interval)
    log("WARNING", "%s", text)
    invisible(TRUE)
  }
}

kf_serve_comm <- function(server, comm_key, kernel_pid, log) {
  # Returns when the kernel has exited. Stops (with the kernel still to be stopped by the caller) only
  # on an internal error.
  conns <- list()  # in order of arrival: the oldest first
  next_id <- 0L
  shutdown <- list(term_at = Inf, kill_at = Inf)
  warn <- kf_log_limiter(log)

  drop <- function(id) {
    if (!is.null(conns[[id]])) try(close(conns[[id]]$con), silent = TRUE)
    conns[[id]] <<- NULL
  }
  answer <- function(id, reply) {
    try(writeBin(c(charToRaw(reply), as.raw(10L)), conns[[id]]$con), silent = TRUE)
    drop(id)
  }
  act <- function(op, params) {
    if (op == "interrupt") {
      log("INFO", "interrupting the kernel (SIGINT to pid %d)", kernel_pid)
      kf_signal(kernel_pid, tools::SIGINT)
    } else if (op == "terminate") {
      log("INFO", "terminating the kernel (SIGTERM to pid %d)", kernel_pid)
      kf_signal(kernel_pid, tools::SIGTERM)
    } else if (op == "kill") {
      log("INFO", "killing the kernel (SIGKILL to pid %d)", kernel_pid)
      kf_signal(kernel_pid, tools::SIGKILL)
    } else if (op == "shutdown") {
      log("INFO", "shutdown requested: the kernel has %g s to exit before it is terminated", params$grace)
      shutdown$term_at <<- min(shutdown$term_at, kf_now() + params$grace)
    } else if (op == "signal") {
      # Protocol 2.2: an allowed signal, by name (kf_comm_verify checked it), to the kernel alone, never to this
      # listener; R's own meaning applies (SIGUSR1: save the workspace and quit, SIGUSR2: quit).
      log("INFO", "%s requested (to pid %d)", params$signal, kernel_pid)
      kf_signal(kernel_pid, kf_signal_number(params$signal))
    } else {
      log("DEBUG", "ping")
    }
  }
  handle_line <- function(id, bytes) {
    line <- tryCatch(rawToChar(bytes), error = function(e) NA_character_)
    if (!is.na(line)) Encoding(line) <- "UTF-8"
    verdict <- kf_comm_verify(comm_key, conns[[id]]$nonce, line)
    if (!isTRUE(verdict$ok)) {
      warn(paste("refused:", verdict$error), "refused a comm request from connection %s: %s", id, verdict$error)
      answer(id, kf_comm_reply(FALSE, error = verdict$error))
      return(invisible())
    }
    act(verdict$op, verdict$params)
    answer(id, kf_comm_reply(TRUE, alive = kf_kernel_alive(kernel_pid)))
  }
  accept <- function() {
    con <- tryCatch(socketAccept(server, blocking = FALSE, open = "a+b", timeout = KF_COMM_TIMEOUT),
                    error = function(e) NULL, warning = function(w) NULL)
    if (is.null(con)) return(FALSE)
    while (length(conns) >= KF_MAX_COMM_CONNECTIONS) {
      warn("evicted", "comm port full (%d connections without a request); closed the oldest (connection %s)",
           length(conns), names(conns)[[1L]])
      drop(names(conns)[[1L]])
    }
    next_id <<- next_id + 1L
    id <- as.character(next_id)
    nonce <- kf_random_bytes(32L)
    conns[[id]] <<- list(con = con, nonce = nonce, buffer = raw(0), deadline = kf_now() + KF_COMM_TIMEOUT)
    ok <- tryCatch({
      writeBin(c(charToRaw(kf_comm_greeting(nonce)), as.raw(10L)), con)
      TRUE
    }, error = function(e) FALSE)
    if (!ok) drop(id)
    TRUE
  }
  receive <- function(id) {
    chunk <- tryCatch(readBin(conns[[id]]$con, "raw", n = KF_MAX_COMM_LINE_BYTES + 1L), error = function(e) raw(0))
    if (length(chunk) == 0L) {  # readable with nothing to read: the peer closed
      drop(id)
      return(invisible())
    }
    buffer <- c(conns[[id]]$buffer, chunk)
    newline <- match(as.raw(10L), buffer)
    if (!is.na(newline) && newline - 1L <= KF_MAX_COMM_LINE_BYTES) {
      handle_line(id, buffer[seq_len(newline - 1L)])
    } else if (length(buffer) > KF_MAX_COMM_LINE_BYTES) {
      warn("refused: line too long", "refused a comm request from connection %s: line longer than %d bytes", id,
           KF_MAX_COMM_LINE_BYTES)
      answer(id, kf_comm_reply(FALSE, error = "line too long"))
    } else {
      conns[[id]]$buffer <<- buffer
    }
  }
  escalate <- function(now) {
    if (now >= shutdown$term_at && is.infinite(shutdown$kill_at)) {
      log("INFO", "the kernel did not exit within its grace period; terminating it (SIGTERM to pid %d)", kernel_pid)
      kf_signal(kernel_pid, tools::SIGTERM)
      shutdown$kill_at <<- now + KF_TERM_TO_KILL
    } else if (now >= shutdown$kill_at) {
      log("INFO", "the kernel ignored SIGTERM; killing it (SIGKILL to pid %d)", kernel_pid)
      kf_signal(kernel_pid, tools::SIGKILL)
      shutdown$kill_at <<- now + KF_TERM_TO_KILL
    }
  }

  step <- function() {
    now <- kf_now()
    escalate(now)
    for (id in names(conns)) {
      if (now >= conns[[id]]$deadline) {
        warn("timed out", "comm connection %s sent no complete request within %g s; closed", id, KF_COMM_TIMEOUT)
        drop(id)
      }
    }
    wake <- min(c(KF_LIVENESS_INTERVAL, shutdown$term_at - now, shutdown$kill_at - now,
                  vapply(conns, function(c) c$deadline - now, numeric(1))))
    ids <- names(conns)
    sockets <- c(list(server), lapply(ids, function(id) conns[[id]]$con))
    ready <- socketSelect(sockets, timeout = max(0, wake))
    # Requests first: a request that has arrived is answered before new arrivals could evict it.
    for (i in which(ready[-1L])) {
      id <- ids[[i]]
      if (is.null(conns[[id]])) next
      # A fault while serving one connection costs that connection only, never the listener.
      tryCatch(receive(id), error = function(e) {
        warn("failed", "comm connection %s failed: %s", id, conditionMessage(e))
        drop(id)
      })
    }
    if (ready[[1L]]) accept()  # one per step: a second socketAccept could block when nothing is queued
  }

  repeat {
    # SIGINT sent to the kernel's whole process group reaches this process too: it is not for us.
    alive <- tryCatch({
      alive <- kf_kernel_alive(kernel_pid)
      if (alive) step()
      alive
    }, interrupt = function(e) {
      log("DEBUG", "ignored an interrupt meant for the kernel")
      TRUE
    })
    if (!alive) break
  }
  for (id in names(conns)) drop(id)
  invisible()
}

kf_now <- function() as.numeric(proc.time()[["elapsed"]])
