#!/usr/bin/env bash
# Kernel Fleet image bootstrap: the container provisioners start a kernel image with environment
# variables only; this script checks them and execs the launcher for KERNEL_LANGUAGE, so the
# launcher becomes the container's main process and receives its signals.
#
# Secrets never reach argv or output: LAUNCH_TOKEN stays in the environment, or (container
# provisioners) LAUNCH_TOKEN_FILE names a file the launcher reads and removes itself, so the token is
# in no engine object and in no process environment. Nothing here reads the token, prints the
# environment or any value of PUBLIC_KEY / LAUNCH_TOKEN. Do not add `set -x`.
set -euo pipefail

# `jupyter image-bootstrap install` replaces the token below with the install directory.
install_dir=@KERNELFLEET_INSTALL_DIR@
case "$install_dir" in
  /*) ;;
  *) install_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)" ;;  # uninstalled copy
esac

me="bootstrap-kernel.sh"
fail() {
  printf '%s: %s\n' "$me" "$1" >&2
  exit 1
}

kernel_id="${KERNEL_ID:-}"
language="${KERNEL_LANGUAGE:-}"
response_address="${RESPONSE_ADDRESS:-${EG_RESPONSE_ADDRESS:-}}"
public_key="${PUBLIC_KEY:-${EG_PUBLIC_KEY:-}}"
port_range="${PORT_RANGE:-${EG_PORT_RANGE:-0..0}}"
spark_mode="${KERNEL_SPARK_CONTEXT_INIT_MODE:-none}"
class_name="${KERNEL_CLASS_NAME:-}"
cluster_type="${KERNEL_CLUSTER_TYPE:-}"
# KERNEL_PYTHON and KERNEL_LAUNCHERS_DIR choose what runs: they come from the image's ENV or the
# kernelspec's env (the server refuses them in start requests). A relative path would be looked up
# in the working directory, which a request may choose (KERNEL_WORKING_DIR): only absolute paths
# (or, for KERNEL_PYTHON, a bare command name found on the image's PATH) are accepted.
launchers_dir="${KERNEL_LAUNCHERS_DIR:-$install_dir/kernel-launchers}"

missing=0
need() {  # need NAME VALUE [ALTERNATIVE-NAME]
  if [[ -z "$2" ]]; then
    if [[ -n "${3:-}" ]]; then
      printf '%s: required environment variable %s (or %s) is not set\n' "$me" "$1" "$3" >&2
    else
      printf '%s: required environment variable %s is not set\n' "$me" "$1" >&2
    fi
    missing=1
  fi
}
need KERNEL_ID "$kernel_id"
need KERNEL_LANGUAGE "$language"
need RESPONSE_ADDRESS "$response_address" EG_RESPONSE_ADDRESS
need PUBLIC_KEY "$public_key" EG_PUBLIC_KEY
# The token is read by the launcher itself; only its presence is checked here.
token_file=""
if [[ -z "${LAUNCH_TOKEN:-}" ]]; then
  token_file="${LAUNCH_TOKEN_FILE:-}"
  need LAUNCH_TOKEN "$token_file" LAUNCH_TOKEN_FILE
fi
[[ $missing -eq 0 ]] || exit 1
if [[ -n "$token_file" ]]; then
  [[ -f "$token_file" && -r "$token_file" ]] ||
    fail "LAUNCH_TOKEN_FILE names no file this user ($(id -u):$(id -g)) can read"
fi

# Values go to the launcher as separate arguments, so none may pass for an option.
[[ "$kernel_id" =~ ^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$ ]] ||
  fail "KERNEL_ID must be 1-128 characters of [A-Za-z0-9._-], starting with a letter or digit"
[[ "$port_range" =~ ^[0-9]{1,5}\.\.[0-9]{1,5}$ ]] ||
  fail "PORT_RANGE must look like LOWER..UPPER (for example 40000..41000, or 0..0 for any port)"
[[ "$response_address" != -* ]] || fail "RESPONSE_ADDRESS must be host:port"
[[ "$public_key" =~ ^[A-Za-z0-9+/=]+$ ]] || fail "PUBLIC_KEY must be base64 (DER, no PEM armour)"
[[ "$launchers_dir" == /* ]] ||
  fail "KERNEL_LAUNCHERS_DIR must be an absolute path (set it in the image's ENV or the kernelspec's env)"
spark_mode="${spark_mode,,}"
case "$spark_mode" in
  none | lazy | eager) ;;
  *) fail "KERNEL_SPARK_CONTEXT_INIT_MODE must be one of: none, lazy, eager" ;;
esac

common=(
  --kernel-id "$kernel_id"
  --port-range "$port_range"
  --response-address "$response_address"
  --public-key "$public_key"
)

case "${language,,}" in
  python)
    args=("${common[@]}")
    if [[ -n "$class_name" ]]; then
      [[ "$class_name" =~ ^[A-Za-z_][A-Za-z0-9_.]*$ ]] ||
        fail "KERNEL_CLASS_NAME must be a dotted Python name"
      args+=(--kernel-class-name "$class_name")
    fi
    if [[ -n "$cluster_type" ]]; then
      case "${cluster_type,,}" in
        spark | dask | none) args+=(--cluster-type "${cluster_type,,}") ;;
        *) fail "KERNEL_CLUSTER_TYPE must be one of: spark, dask, none" ;;
      esac
    fi
    args+=(--spark-context-initialization-mode "$spark_mode")
    python="${KERNEL_PYTHON:-}"
    if [[ -n "$python" && "$python" != /* && ! "$python" =~ ^[A-Za-z0-9_][A-Za-z0-9._+-]*$ ]]; then
      fail "KERNEL_PYTHON must be an absolute path or a command name on PATH (set it in the image's ENV or the kernelspec's env)"
    fi
    if [[ -z "$python" ]]; then  # Debian and Ubuntu system Pythons ship only python3
      python="$(command -v python || command -v python3 || true)"
      [[ -n "$python" ]] || fail "no python or python3 on PATH (set KERNEL_PYTHON to the interpreter with kernelfleet-launcher-python)"
    fi
    exec "$python" -m kernelfleet.launcher "${args[@]}"
    ;;
  r)
    launcher="$launchers_dir/r/launch_IRkernel.R"
    [[ -f "$launcher" ]] ||
      fail "R launcher not found at $launcher (run: jupyter image-bootstrap install --languages r)"
    exec Rscript "$launcher" "${common[@]}" --spark-context-initialization-mode "$spark_mode"
    ;;
  scala)
    launcher="$launchers_dir/scala/bin/run.sh"
    [[ -x "$launcher" ]] ||
      fail "Scala launcher not found or not executable at $launcher (run: jupyter image-bootstrap install --languages scala)"
    exec "$launcher" "${common[@]}" --spark-context-initialization-mode "$spark_mode"
    ;;
  *)
    shown="${language:0:32}"
    fail "KERNEL_LANGUAGE '${shown//[^A-Za-z0-9_.-]/?}' is not supported; supported languages: python, r, scala (any case)"
    ;;
esac
