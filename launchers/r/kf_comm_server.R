# The communication port (docs/protocol.md, section 4), served by the launcher's forked listener.
#
# One select loop handles every open connection, each with its own nonce, 4 KiB cap and 5 s deadline,
# so a client that connects and says nothing delays nobody else. The loop also watches the kernel:
# it wakes at least every KF_LIVENESS_INTERVAL seconds and ends as soon as the kernel process is gone.
# Signals aimed at the kernel's process group (SIGINT) are caught here and ignored.

KF_COMM_TIMEOUT <- 5
KF_MAX_COMM_CONNECTIONS <- 16L
KF_LIVENESS_INTERVAL <- 0.5
KF_TERM_TO_KILL <- 3

kf_serve_comm <- function(server, comm_key, kernel_pid, log) {
  # Returns when the kernel has exited. Stops (with the kernel still to be stopped by the caller) only
  # on an internal error.
  conns <- list()
  next_id <- 0L
  shutdown <- list(term_at = Inf, kill_at = Inf)

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
    } else {
      log("DEBUG", "ping")
    }
  }
  handle_line <- function(id, bytes) {
    line <- tryCatch(rawToChar(bytes), error = function(e) NA_character_)
    if (!is.na(line)) Encoding(line) <- "UTF-8"
    verdict <- kf_comm_verify(comm_key, conns[[id]]$nonce, line)
    if (!isTRUE(verdict$ok)) {
      log("WARNING", "refused a comm request from connection %s: %s", id, verdict$error)
      answer(id, kf_comm_reply(FALSE, error = verdict$error))
      return(invisible())
    }
    act(verdict$op, verdict$params)
    answer(id, kf_comm_reply(TRUE, alive = kf_kernel_alive(kernel_pid)))
  }
  accept <- function() {
    con <- tryCatch(socketAccept(server, blocking = FALSE, open = "a+b", timeout = KF_COMM_TIMEOUT),
                    error = function(e) NULL, warning = function(w) NULL)
    if (is.null(con)) return(invisible())
    if (length(conns) >= KF_MAX_COMM_CONNECTIONS) {
      log("WARNING", "comm port busy: %d connections open; closing a new one", length(conns))
      try(close(con), silent = TRUE)
      return(invisible())
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
      log("WARNING", "refused a comm request from connection %s: line longer than %d bytes", id, KF_MAX_COMM_LINE_BYTES)
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
        log("DEBUG", "comm connection %s sent no request within %g s; closed", id, KF_COMM_TIMEOUT)
        drop(id)
      }
    }
    wake <- min(c(KF_LIVENESS_INTERVAL, shutdown$term_at - now, shutdown$kill_at - now,
                  vapply(conns, function(c) c$deadline - now, numeric(1))))
    ids <- names(conns)
    sockets <- c(list(server), lapply(ids, function(id) conns[[id]]$con))
    ready <- socketSelect(sockets, timeout = max(0, wake))
    if (ready[[1L]]) accept()
    for (i in which(ready[-1L])) {
      id <- ids[[i]]
      if (is.null(conns[[id]])) next
      # A fault while serving one connection costs that connection only, never the listener.
      tryCatch(receive(id), error = function(e) {
        log("WARNING", "comm connection %s failed: %s", id, conditionMessage(e))
        drop(id)
      })
    }
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
