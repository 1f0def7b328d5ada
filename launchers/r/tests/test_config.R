# Inputs and port choice of the R launcher: arguments, environment fallbacks, refusals, PORT_RANGE.
#
#   Rscript launchers/r/tests/test_config.R
#
# Exits non-zero on any failure.

local({
  args <- commandArgs(trailingOnly = FALSE)
  here <- dirname(normalizePath(sub("^--file=", "", args[startsWith(args, "--file=")][1L])))
  for (name in c("kf_protocol.R", "kf_config.R", "kf_ports.R", "kf_process.R")) {
    sys.source(file.path(here, "..", name), envir = globalenv())
  }
  sys.source(file.path(here, "kf_check.R"), envir = globalenv())
})

config_error <- function(argv, env) {
  tryCatch({
    kf_load_config(argv, env)
    NA_character_
  }, kf_config_error = function(e) conditionMessage(e))
}

argv <- c("--kernel-id", "k-1", "--port-range", "40000..41000", "--response-address", "10.0.0.5:8877",
          "--public-key", "QUJD", "--spark-context-initialization-mode", "none")
env <- c(LAUNCH_TOKEN = "secret-token-value", HOME = "/root")
cfg <- kf_load_config(argv, env)
check(identical(cfg$kernel_id, "k-1") && identical(cfg$response_host, "10.0.0.5") && identical(cfg$response_port, 8877L),
      "arguments parsed")
check(identical(cfg$port_range, c(40000L, 41000L)), "port range parsed")
check(identical(cfg$launch_token, "secret-token-value") && identical(cfg$kernel_ip, "0.0.0.0") &&
        identical(cfg$log_level, 20L), "token from the environment; defaults")

cfg <- kf_load_config(c("--kernel-id={kernel_id}", "--customAppName", "my app", "--RemoteProcessProxy.x", "y"),
                      c(KERNEL_ID = "env-id", EG_RESPONSE_ADDRESS = "[fd00::1]:9000", EG_PUBLIC_KEY = "QUJD",
                        LAUNCH_TOKEN = "t", PORT_RANGE = "0..0", KERNEL_SPARK_CONTEXT_INIT_MODE = "Lazy",
                        LOG_LEVEL = "debug"))
check(identical(cfg$kernel_id, "env-id"), "an unfilled {placeholder} falls back to the environment")
check(identical(cfg$response_host, "fd00::1") && identical(cfg$response_port, 9000L), "EG_ names and [v6]:port accepted")
check(identical(cfg$spark_init_mode, "lazy") && identical(cfg$app_name, "my app") && identical(cfg$log_level, 10L),
      "spark mode, app name, log level")
check(identical(cfg$unknown_args, "--RemoteProcessProxy.x"), "unknown arguments are reported, not fatal")
cfg <- kf_load_config(c("--some-flag", argv), env)
check(identical(cfg$kernel_id, "k-1") && identical(cfg$unknown_args, "--some-flag"), "an unknown bare flag swallows no option")

message <- config_error(argv, c(HOME = "/root"))
check(grepl("LAUNCH_TOKEN is required in the environment", message), "missing LAUNCH_TOKEN named")
token_file <- tempfile("launch-token-")
writeLines("token-from-file", token_file)
Sys.chmod(token_file, "0400")
cfg <- kf_load_config(argv, c(LAUNCH_TOKEN_FILE = token_file, HOME = "/root"))
check(identical(cfg$launch_token, "token-from-file"), "LAUNCH_TOKEN_FILE read when LAUNCH_TOKEN is unset")
check(!file.exists(token_file), "the token file is removed once read")
message <- config_error(argv, c(LAUNCH_TOKEN_FILE = token_file, HOME = "/root"))
check(grepl("LAUNCH_TOKEN_FILE .* cannot be read", message), "an unreadable token file is named")
writeLines("", token_file)
check(grepl("LAUNCH_TOKEN_FILE .* is empty", config_error(argv, c(LAUNCH_TOKEN_FILE = token_file))), "empty token file refused")
unlink(token_file)
message <- config_error(c(argv, "--launch-token", "from-argv"), c(HOME = "/root"))
check(grepl("LAUNCH_TOKEN is required", message), "LAUNCH_TOKEN is never taken from argv")
check(grepl("KERNEL_ID is required", config_error(argv[-(1:2)], env)), "missing kernel id named")
check(grepl("must be 1-128", config_error(replace(argv, 2L, "../etc"), env)), "bad kernel id refused")
check(grepl("PORT_RANGE", config_error(replace(argv, 4L, "80..90"), env)), "port range below 1024 refused")
check(grepl("PORT_RANGE", config_error(replace(argv, 4L, "41000..40000"), env)), "reversed port range refused")
check(grepl("PORT_RANGE", config_error(replace(argv, 4L, "4000-5000"), env)), "malformed port range refused")
check(grepl("RESPONSE_ADDRESS", config_error(replace(argv, 6L, "nohost"), env)), "address without port refused")
check(grepl("one of none, lazy, eager", config_error(replace(argv, 10L, "sometimes"), env)), "bad spark mode refused")
check(grepl("KERNEL_IP", config_error(argv, c(env, KERNEL_IP = "my-host"))), "non-address KERNEL_IP refused")
check(!any(grepl("secret-token-value", vapply(list(
  config_error(replace(argv, 2L, "../etc"), env), config_error(replace(argv, 4L, "x"), env)
), identity, ""))), "errors never carry the token")

# Port choice: six distinct free ports inside the range, held while chosen.
bound <- kf_bind_ports(c(47000L, 47999L))
check(length(unique(bound$ports)) == 6L && all(bound$ports >= 47000L & bound$ports <= 47999L), "six distinct ports in range")
check(is.null(kf_try_listen(bound$ports[[1L]])), "a chosen port is held until released")
for (s in bound$sockets) close(s)
anyport <- kf_bind_ports(c(0L, 0L))
eph <- kf_ephemeral_range()
check(all(anyport$ports >= eph[1L] & anyport$ports <= eph[2L]), "0..0 picks from the ephemeral range")
for (s in anyport$sockets) close(s)
full <- serverSocket(46999L)
err <- tryCatch({
  kf_bind_ports(c(46999L, 46999L), count = 1L)
  ""
}, error = function(e) conditionMessage(e))
close(full)
check(grepl("no free port found in PORT_RANGE 46999..46999", err), "a full range fails naming the range")

check(identical(kf_pgid(), as.integer(strsplit(sub("^.*\\) ", "", readLines("/proc/self/stat")), " ")[[1L]][3L])),
      "process group read from /proc")

kf_finish()
