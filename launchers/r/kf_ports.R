# Choosing the kernel's five ports and the comm port (docs/protocol.md, section 5).
#
# Each chosen port is held by a listening socket while the others are chosen, so two picks never
# collide. The comm port's socket is kept and becomes the comm listener's socket (no race at all);
# the five kernel ports are released just before the kernel binds them, as in every Jupyter launcher.
#
# R's serverSocket() cannot bind port 0 and read the port back, so "any free port" (PORT_RANGE unset
# or 0..0) means a random free port in the host's ephemeral range, which is where port 0 lands too.

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

kf_bind_ports <- function(port_range, count = KF_PORT_COUNT) {
  # Returns list(ports = integer, sockets = list of servsockconn), or stops naming the range.
  bounds <- if (all(port_range == 0L)) kf_ephemeral_range() else port_range
  ports <- integer()
  sockets <- list()
  for (i in seq_len(count)) {
    socket <- NULL
    for (try in seq_len(KF_TRIES_PER_PORT)) {
      port <- kf_random_port(bounds)
      if (port %in% ports) next
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
