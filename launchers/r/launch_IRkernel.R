# Kernel Fleet's R kernel launcher: pure R, so an R kernel image needs no Python.
#
#   LAUNCH_TOKEN=... Rscript launch_IRkernel.R --kernel-id ID --port-range 0..0 \
#       --response-address HOST:PORT --public-key B64DER --spark-context-initialization-mode none
#
# This process becomes the kernel (IRkernel::main) so its pid is the kernel's, and SIGTERM to it stops
# the kernel. Before that it forks the comm-port listener (parallel::mcparallel, detached), sends the
# sealed report (protocol v2) and waits for the server's verdict. The two processes end together: the
# listener exits as soon as the kernel is gone (it watches its parent), R's exit handlers kill the
# listener when the kernel quits, and the listener stops the kernel when it ends for any other reason.
#
# Dependencies: R >= 4.0 (serverSocket), IRkernel, jsonlite, openssl. Sibling files are sourced from
# the directory this script lives in.

kf_script_dir <- function() {
  args <- commandArgs(trailingOnly = FALSE)
  file_arg <- args[startsWith(args, "--file=")]
  if (length(file_arg) == 1L) return(dirname(normalizePath(sub("^--file=", "", file_arg))))
  for (i in rev(seq_len(sys.nframe()))) {  # sourced rather than run by Rscript
    ofile <- sys.frame(i)$ofile
    if (!is.null(ofile)) return(dirname(normalizePath(ofile)))
  }
  getwd()
}

# Everything lives in one private environment, so the user's global environment starts empty.
local({
  # R's JIT compiles every closure before its first call: for the launcher's functions, each run once or
  # twice, that cost more than running them (about 0.1 s of CPU per start). The launcher runs them
  # uncompiled; kf_main restores the JIT level before the kernel runs user code.
  jit_level <- compiler::enableJIT(0L)
  launcher <- new.env(parent = baseenv())
  dir <- kf_script_dir()
  launcher$KF_LAUNCHER_DIR <- dir  # where VERSION is (kf_launcher_version)
  for (name in c("kf_protocol.R", "kf_protocol_standby.R", "kf_config.R", "kf_ports.R", "kf_process.R", "kf_comm_server.R",
                  "kf_standby.R", "kf_launcher.R")) {
    sys.source(file.path(dir, name), envir = launcher)
  }
  rm(kf_script_dir, envir = globalenv())
  launcher$kf_main(jit_level = jit_level)
})
