# Choosing the comm port and the kernel's five ports (docs/protocol.md, section 5).
#
# The comm port's socket is chosen here, held, and becomes the comm listener's socket (no race at all).
# The kernel's five ports are never chosen ahead and released: IRkernel binds them itself and the
# report names what its ZMQ sockets hold. With PORT_RANGE unset or 0..0 ZMQ picks free ports as it
# binds ("tcp://ip:*"), so there is no window at all. Inside a range, free ports are probed, released
# and bound by IRkernel at once; a port taken in that window makes the bind fail, and the kernel is
# rebuilt once on fresh ports (kf_start_kernel). Base R cannot leave a socket bound but not
# listening, so the Python and Scala launchers' reservation has no R equivalent.
#
# R's serverSocket() cannot bind port 0 and read the port back, so "any free port" for the comm port
# means a random free port in the host's ephemeral range, which is where port 0 lands too.

KF_PORT_COUNT <- 6L
KF_TRIES_PER_PORT <- 50L

kf_ephemeral_range <- function() {
  text <- tryCatch(readLines("/proc/sys/net/ipv4/ip_local_port_range", warn = FALSE), error = function(e) "",
                   warning = function(w) "")
  bounds <- suppressWarnings(as.integer(strsplit(trimws(text[1L]), "[[:space:]]+")[[1L]]))
  if (length(bounds) == 2L && !anyNA(bounds) && bounds[1L] >= 1024L && bounds[1L] < bounds[2L]) bounds else c(32768L, 60999L)
}

kf_random_port <- function(bounds) {
  # Uniform enough for port choice; the CSPRNG only avoids disturbing the user's RNG stream (set.seed).
  size <- bounds[2L] - bounds[1L] + 1L
  draw <- sum(as.integer(kf_random_bytes(4L)) * c(16777216, 65536, 256, 1))
  bounds[1L] + as.integer(draw %% size)
}

kf_try_listen <- function(port) {
  tryCatch(serverSocket(port), error = function(e) NULL, warning = function(w) NULL)
}

kf_bind_ports <- function(port_range, count = KF_PORT_COUNT, taken = integer()) {
  # Returns list(ports = integer, sockets = list of servsockconn), or stops naming the range.
  bounds <- if (all(port_range == 0L)) kf_ephemeral_range() else port_range
  ports <- integer()
  sockets <- list()
  for (i in seq_len(count)) {
    socket <- NULL
    for (try in seq_len(KF_TRIES_PER_PORT)) {
      port <- kf_random_port(bounds)
      if (port %in% c(ports, taken)) next
      socket <- kf_try_listen(port)
      if (!is.null(socket)) break
    }
    if (is.null(socket)) {
      for (s in sockets) close(s)
      stop(sprintf("no free port found in PORT_RANGE %d..%d after %d tries", bounds[1L], bounds[2L],
                   KF_TRIES_PER_PORT), call. = FALSE)
    }
    ports <- c(ports, port)
    sockets[[i]] <- socket
  }
  list(ports = ports, sockets = sockets)
}

KF_KERNEL_SOCKETS <- c(shell_port = "shell", iopub_port = "iopub", stdin_port = "stdin", control_port = "control",
                       hb_port = "hb")
KF_KERNEL_ATTEMPTS <- 2L

kf_kernel_ports <- function(kernel) {
  # The port each of IRkernel's sockets is bound to, read back from ZMQ; NA where the bind failed
  # (pbdZMQ only warns then, and IRkernel would run on without that socket).
  vapply(KF_KERNEL_SOCKETS, function(name) {
    # zmq.getsockopt fills the buffer it is given in place: a fresh one per socket.
    endpoint <- pbdZMQ::zmq.getsockopt(kernel$sockets[[name]], pbdZMQ::ZMQ.SO()$LAST_ENDPOINT,
                                       paste0(name, strrep(" ", 255L)))
    port <- regmatches(endpoint, regexpr("[0-9]+$", sub("[[:space:]]+$", "", endpoint)))
    if (length(port) == 1L && startsWith(endpoint, "tcp://")) as.integer(port) else NA_integer_
  }, integer(1L))
}

kf_close_kernel <- function(kernel) {
  for (socket in kernel$sockets) pbdZMQ::zmq.close(socket)
  pbdZMQ::zmq.ctx.destroy(kernel$zmqctx)
}

kf_start_kernel <- function(conn_info, conn_file, port_range, taken, kernel_id) {
  # IRkernel's Kernel with all five sockets bound: list(kernel, ports). Called by kf_main before the
  # report, which then names these ports. Stops with ZMQ's own message after KF_KERNEL_ATTEMPTS tries.
  problems <- character()
  for (attempt in seq_len(KF_KERNEL_ATTEMPTS)) {
    if (all(port_range == 0L)) {
      chosen <- rep("*", length(KF_KERNEL_SOCKETS))  # ZMQ picks each port as it binds
    } else {
      probe <- kf_bind_ports(port_range, count = length(KF_KERNEL_SOCKETS), taken = taken)
      for (s in probe$sockets) close(s)
      chosen <- probe$ports
    }
    conn_info[names(KF_KERNEL_SOCKETS)] <- as.list(chosen)
    kf_write_connection_file(conn_info, conn_file)
    problems <- character()
    kernel <- withCallingHandlers(
      IRkernel:::Kernel$new(connection_file = conn_file),  # binds every socket; pbdZMQ warns on failure
      warning = function(w) {
        problems <<- c(problems, conditionMessage(w))
        invokeRestart("muffleWarning")
      }
    )
    ports <- kf_kernel_ports(kernel)
    if (!anyNA(ports)) return(list(kernel = kernel, ports = ports))
    kf_close_kernel(kernel)
    kf_log("WARNING", "kernel %s: the kernel could not bind %s (attempt %d of %d): %s", kernel_id,
           paste(names(ports)[is.na(ports)], collapse = ", "), attempt, KF_KERNEL_ATTEMPTS,
           paste(problems, collapse = "; "))
  }
  stop(sprintf("the kernel could not bind its ports after %d attempts: %s", KF_KERNEL_ATTEMPTS,
               paste(problems, collapse = "; ")), call. = FALSE)
}
