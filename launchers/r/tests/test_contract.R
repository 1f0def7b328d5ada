# The R launcher reads argv and environment as docs/launcher-vectors.json says (the Python and Scala launchers run
# the same cases), and its retry counts and timeouts are the contract's.
#
#   Rscript launchers/r/tests/test_contract.R [path/to/launcher-vectors.json]
#
# Exits non-zero on any failure.

local({
  args <- commandArgs(trailingOnly = FALSE)
  here <- dirname(normalizePath(sub("^--file=", "", args[startsWith(args, "--file=")][1L])))
  for (name in c("kf_protocol.R", "kf_config.R", "kf_ports.R", "kf_comm_server.R", "kf_launcher.R")) {
    sys.source(file.path(here, "..", name), envir = globalenv())
  }
  sys.source(file.path(here, "kf_check.R"), envir = globalenv())
  rest <- commandArgs(trailingOnly = TRUE)
  vectors_path <<- if (length(rest) >= 1L) rest[[1L]] else file.path(here, "..", "..", "..", "docs", "launcher-vectors.json")
})


v <- jsonlite::read_json(vectors_path, simplifyVector = FALSE)
check(identical(v$version, 2L), "vectors file is contract v2")

# ---- names, options and defaults
for (input in v$inputs) {
  if (!is.null(input$option)) {
    check(substring(input$option, 3L) %in% KF_KNOWN_OPTIONS, paste("option understood:", input$option))
  }
}
check(identical(KF_SPARK_INIT_MODES, unlist(v$spark_init_modes)), "spark modes")
check(identical(KF_MAX_TOKEN_FILE_BYTES, as.integer(v$launch_token$max_file_bytes)), "token file size limit")

# ---- retries and timeouts
check(identical(KF_PORT_COUNT, as.integer(v$ports$count)), "port count")
check(identical(KF_TRIES_PER_PORT, as.integer(v$ports$tries_per_port)), "tries per port")
check(KF_REPORT_CONNECT_WINDOW == v$report$connect_window, "report connect window")
check(KF_REPORT_CONNECT_TIMEOUT == v$report$connect_timeout, "report connect timeout")
check(KF_REPORT_REPLY_TIMEOUT == v$report$reply_timeout, "report reply timeout")
local({
  holder <- kf_bind_ports(c(0L, 0L), count = 1L)
  on.exit(close(holder$sockets[[1L]]))
  port <- holder$ports[[1L]]
  message <- tryCatch({
    kf_bind_ports(c(port, port), count = 1L)
    NA_character_
  }, error = function(e) conditionMessage(e))
  check(grepl(sprintf("after %d tries", v$ports$tries_per_port), message, fixed = TRUE), "a full range fails after the contract's tries")
})

# ---- PORT_RANGE: accepted values, refused ones with the contract's phrase
for (good in v$port_ranges$valid) {
  check(identical(kf_parse_port_range(good$text), c(as.integer(good$lower), as.integer(good$upper))),
        paste("port range accepted:", encodeString(good$text)))
}
for (bad in v$port_ranges$invalid) {
  message <- tryCatch({
    kf_parse_port_range(bad$text)
    NA_character_
  }, kf_config_error = function(e) conditionMessage(e))
  check(startsWith(message, "--port-range / PORT_RANGE") && grepl(bad$error, message, fixed = TRUE),
        paste("port range refused:", bad$why))
}

# ---- argv + environment -> values, or the error's phrases
observed <- function(cfg) {
  list(kernel_id = cfg$kernel_id, response_host = cfg$response_host, response_port = cfg$response_port,
       public_key = cfg$public_key, port_range = cfg$port_range, spark_init_mode = cfg$spark_init_mode,
       kernel_ip = cfg$kernel_ip, launch_token = cfg$launch_token)
}
for (case in v$resolve) {
  argv <- as.character(unlist(case$argv))
  env <- unlist(case$env)
  if (is.null(env)) env <- character()
  if (!is.null(case$token_file)) {
    path <- tempfile("launch-token-")
    writeBin(charToRaw(enc2utf8(case$token_file)), path)
    env[["LAUNCH_TOKEN_FILE"]] <- path
  }
  result <- tryCatch(kf_load_config(argv, env), kf_config_error = function(e) e)
  if (!is.null(case$expect)) {
    want <- case$expect
    want$response_port <- as.integer(want$response_port)
    want$port_range <- as.integer(unlist(want$port_range))
    got <- if (inherits(result, "error")) conditionMessage(result) else observed(result)
    ok <- identical(got, want[names(got)])
    check(ok, paste("resolves:", case$why))
    if (!ok) cat("  got:", deparse(got), "\n")
  } else {
    message <- if (inherits(result, "error")) conditionMessage(result) else ""
    ok <- all(vapply(unlist(case$error), function(p) grepl(p, message, fixed = TRUE), logical(1L)))
    check(ok, paste("refuses:", case$why))
    if (!ok) cat("  got:", message, "\n")
  }
}

kf_finish()
