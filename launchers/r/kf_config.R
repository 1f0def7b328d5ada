# The launcher's inputs: Gateway Provisioners' R launcher arguments, each falling back to its
# environment variable (docs/protocol.md, section 2: the contract is kernelfleet.protocol.contract, and
# tests/test_contract.R runs docs/launcher-vectors.json's cases here). Errors name the argument and variable, never a
# secret's value; LAUNCH_TOKEN is taken from the environment (or the file LAUNCH_TOKEN_FILE names) only and
# removed from it at once, so the kernel's user code cannot read it.

KF_SPARK_INIT_MODES <- c("none", "lazy", "eager")
KF_KNOWN_OPTIONS <- c(
  "kernel-id", "port-range", "response-address", "public-key",
  "spark-context-initialization-mode", "customAppName"
)
KF_LOG_LEVELS <- c(DEBUG = 10L, INFO = 20L, WARNING = 30L, WARN = 30L, ERROR = 40L, CRITICAL = 50L)

kf_config_error <- function(message) {
  structure(class = c("kf_config_error", "error", "condition"), list(message = message, call = NULL))
}

kf_parse_argv <- function(argv) {
  # "--name value" and "--name=value"; unknown options are kept (and warned about by the caller)
  # because old kernelspecs pass extra Gateway Provisioners arguments.
  values <- list()
  unknown <- character()
  i <- 1L
  while (i <= length(argv)) {
    arg <- argv[[i]]
    if (!startsWith(arg, "--")) {
      unknown <- c(unknown, arg)
      i <- i + 1L
      next
    }
    body <- substring(arg, 3L)
    if (grepl("=", body, fixed = TRUE)) {
      name <- sub("=.*$", "", body)
      value <- sub("^[^=]*=", "", body)
      i <- i + 1L
    } else {
      name <- body
      # A following "--option" is never taken as this one's value (unknown options may be bare flags).
      has_value <- i < length(argv) && !startsWith(argv[[i + 1L]], "--")
      value <- if (has_value) argv[[i + 1L]] else NA_character_
      i <- i + if (has_value) 2L else 1L
    }
    # Enterprise Gateway's kernelspecs spell the options --RemoteProcessProxy.<name>.
    option <- sub("^RemoteProcessProxy[.]", "", name)
    if (option %in% KF_KNOWN_OPTIONS) values[[option]] <- value else unknown <- c(unknown, paste0("--", name))
  }
  list(values = values, unknown = unknown)
}

kf_pick <- function(arg, env_names, env = Sys.getenv()) {
  # The argument if given, else the first non-empty variable; unfilled "{placeholders}" count as unset.
  # trimws() trims exactly the contract's blanks (space, tab, CR, LF).
  candidates <- c(if (!is.null(arg)) arg, unname(env[intersect(env_names, names(env))]))
  for (value in candidates) {
    if (is.na(value)) next
    value <- trimws(value)
    if (nzchar(value) && !(startsWith(value, "{") && endsWith(value, "}"))) return(value)
  }
  NULL
}

kf_required <- function(value, option, var) {
  if (is.null(value)) stop(kf_config_error(sprintf("%s is required (give %s or set the %s environment variable)",
                                                   var, option, var)))
  value
}

# PORT_RANGE as docs/protocol.md section 5 writes it: "lower..upper", each end 1-5 ASCII digits, blanks only around
# the whole value (as.integer alone also took "+1024", "1e3", "0x400" and blanks around ".."). The cases all three
# launchers are checked against are docs/protocol-vectors.json "port_ranges".
kf_parse_port_range <- function(text) {
  body <- if (is.null(text)) "" else gsub("^[ \t\r\n]+|[ \t\r\n]+$", "", text, useBytes = TRUE)
  if (body %in% c("", "0..0")) return(c(0L, 0L))
  if (!grepl("^[0123456789]{1,5}[.][.][0123456789]{1,5}$", body, useBytes = TRUE)) {
    stop(kf_config_error(sprintf(
      "--port-range / PORT_RANGE %s must look like 'lower..upper' with both ends written in digits 0-9, e.g. '40000..41000'",
      kf_quote(text))))
  }
  bounds <- as.integer(strsplit(body, "..", fixed = TRUE)[[1L]])
  if (!(1024L <= bounds[1L] && bounds[1L] <= bounds[2L] && bounds[2L] <= 65535L)) {
    stop(kf_config_error(sprintf("--port-range / PORT_RANGE %s: need 1024 <= lower <= upper <= 65535", kf_quote(text))))
  }
  bounds
}

kf_parse_response_address <- function(text) {
  if (startsWith(text, "[")) {
    host <- sub("^\\[([^]]*)\\]:.*$", "\\1", text)
    port_text <- sub("^\\[[^]]*\\]:", "", text)
    if (identical(host, text)) host <- ""
  } else {
    host <- sub(":[^:]*$", "", text)
    port_text <- sub("^.*:", "", text)
    if (!grepl(":", text, fixed = TRUE)) host <- ""
  }
  port <- suppressWarnings(as.integer(port_text))
  if (!nzchar(host) || is.na(port) || port < 1L || port > 65535L || !grepl("^[0-9]+$", port_text)) {
    stop(kf_config_error(sprintf("--response-address / RESPONSE_ADDRESS %s must be 'host:port' or '[v6]:port'",
                                 kf_quote(text))))
  }
  list(host = host, port = port)
}

kf_quote <- function(text) {
  # Echoes a non-secret input back in an error, bounded so a pasted key cannot flood the log.
  if (nchar(text) > 80L) text <- paste0(substr(text, 1L, 77L), "...")
  paste0("'", text, "'")
}

kf_log_level <- function(text) {
  if (is.null(text)) return(KF_LOG_LEVELS[["INFO"]])
  if (grepl("^[0-9]+$", text)) return(as.integer(text))
  level <- KF_LOG_LEVELS[toupper(text)]
  if (is.na(level)) stop(kf_config_error(sprintf("LOG_LEVEL must be DEBUG, INFO, WARNING or ERROR, not %s", kf_quote(text))))
  unname(level)
}

KF_MAX_TOKEN_FILE_BYTES <- 4096L

kf_read_token_file <- function(path) {
  # LAUNCH_TOKEN_FILE: container provisioners hand the token over as a file, so that it is in no object
  # the engine shows and in no process environment. The file is removed once read where that is
  # possible (a Swarm secret is a read-only mount; it goes with the service, the token being void by then).
  size <- file.size(path)
  if (is.na(size) || file.access(path, 4L) != 0L) {
    stop(kf_config_error(sprintf("LAUNCH_TOKEN_FILE %s cannot be read", kf_quote(path))))
  }
  if (size > KF_MAX_TOKEN_FILE_BYTES) {
    stop(kf_config_error(sprintf("LAUNCH_TOKEN_FILE %s is larger than %d bytes: not a token file",
                                 kf_quote(path), KF_MAX_TOKEN_FILE_BYTES)))
  }
  bytes <- tryCatch(readBin(path, "raw", n = KF_MAX_TOKEN_FILE_BYTES), error = function(e) NULL)
  if (is.null(bytes)) stop(kf_config_error(sprintf("LAUNCH_TOKEN_FILE %s cannot be read", kf_quote(path))))
  suppressWarnings(unlink(path))
  token <- trimws(rawToChar(bytes[bytes != as.raw(0L)]))
  if (!nzchar(token)) stop(kf_config_error(sprintf("LAUNCH_TOKEN_FILE %s is empty", kf_quote(path))))
  token
}

kf_launch_token <- function(env) {
  # LAUNCH_TOKEN from the environment, else from the file LAUNCH_TOKEN_FILE names; never from argv.
  token <- if ("LAUNCH_TOKEN" %in% names(env)) trimws(env[["LAUNCH_TOKEN"]]) else ""
  if (nzchar(token)) return(token)
  path <- if ("LAUNCH_TOKEN_FILE" %in% names(env)) trimws(env[["LAUNCH_TOKEN_FILE"]]) else ""
  if (nzchar(path)) return(kf_read_token_file(path))
  stop(kf_config_error(paste(
    "LAUNCH_TOKEN is required in the environment, or LAUNCH_TOKEN_FILE naming a file that holds it",
    "(the server sets one of them for each launch; the token is never taken from the command line)"
  )))
}

kf_load_config <- function(argv, env = Sys.getenv()) {
  parsed <- kf_parse_argv(argv)
  a <- parsed$values
  kernel_id <- kf_required(kf_pick(a[["kernel-id"]], "KERNEL_ID", env), "--kernel-id", "KERNEL_ID")
  if (!grepl(KF_KERNEL_ID_PATTERN, kernel_id)) {
    stop(kf_config_error(sprintf("--kernel-id / KERNEL_ID %s must be 1-128 characters of [A-Za-z0-9._-], starting with a letter or digit",
                                 kf_quote(kernel_id))))
  }
  address <- kf_parse_response_address(kf_required(
    kf_pick(a[["response-address"]], c("RESPONSE_ADDRESS", "EG_RESPONSE_ADDRESS"), env),
    "--response-address", "RESPONSE_ADDRESS"
  ))
  public_key <- kf_required(kf_pick(a[["public-key"]], c("PUBLIC_KEY", "EG_PUBLIC_KEY"), env),
                            "--public-key", "PUBLIC_KEY")
  token <- kf_launch_token(env)
  spark_mode <- tolower(kf_pick(a[["spark-context-initialization-mode"]], "KERNEL_SPARK_CONTEXT_INIT_MODE", env) %||% "none")
  if (!(spark_mode %in% KF_SPARK_INIT_MODES)) {
    stop(kf_config_error(sprintf("--spark-context-initialization-mode / KERNEL_SPARK_CONTEXT_INIT_MODE must be one of %s, not %s",
                                 paste(KF_SPARK_INIT_MODES, collapse = ", "), kf_quote(spark_mode))))
  }
  kernel_ip <- kf_kernel_ip(kf_pick(NULL, "KERNEL_IP", env) %||% "0.0.0.0")
  list(
    kernel_id = kernel_id,
    response_host = address$host,
    response_port = address$port,
    public_key = public_key,
    launch_token = token,
    port_range = kf_parse_port_range(kf_pick(a[["port-range"]], c("PORT_RANGE", "EG_PORT_RANGE"), env)),
    spark_init_mode = spark_mode,
    app_name = kf_pick(a[["customAppName"]], character(), env) %||% kernel_id,
    kernel_ip = kernel_ip,
    log_level = kf_log_level(kf_pick(NULL, "LOG_LEVEL", env)),
    unknown_args = parsed$unknown
  )
}

kf_kernel_ip <- function(kernel_ip) {
  if (!grepl("^[0-9]{1,3}(\\.[0-9]{1,3}){3}$", kernel_ip)) {
    stop(kf_config_error(sprintf("KERNEL_IP must be an IPv4 address (R sockets are IPv4 only), not %s", kf_quote(kernel_ip))))
  }
  kernel_ip
}

kf_claimed_config <- function(config, claim) {
  # A standby's config (kf_standby.R) with its claim's launch inputs, read by the rules of a cold launch: the kernel
  # id, token and port range are the claim's, KERNEL_IP the claim environment's when it sets it; an app name that
  # defaulted to the standby's id becomes the kernel's. Stops with a kf_config_error the standby answers the claim with.
  kernel_ip <- kf_pick(NULL, "KERNEL_IP", claim$env)
  if (identical(config$app_name, config$kernel_id)) config$app_name <- claim$kernel_id
  config$kernel_id <- claim$kernel_id
  config$launch_token <- claim$launch_token
  config$port_range <- kf_parse_port_range(claim$port_range)
  if (!is.null(kernel_ip)) config$kernel_ip <- kf_kernel_ip(kernel_ip)
  config
}

`%||%` <- function(a, b) if (is.null(a)) b else a
