#!/usr/bin/env bash
# Start Apache Toree under the Kernel Fleet launcher (protocol v2, docs/protocol.md).
#
#   run.sh --kernel-id ID --port-range R --response-address A --public-key K --spark-context-initialization-mode M [toree options...]
#
# LAUNCH_TOKEN comes from the environment (or the file LAUNCH_TOKEN_FILE names, read by the launcher) only. Installed layout: kernel-launchers/scala/bin/run.sh with the jars in
# kernel-launchers/scala/lib/ (kernelfleet-toree-launcher.jar, toree-assembly-*.jar). From the repository it uses
# launchers/scala/dist/ and the toree / pyspark Python packages.
#
# Every value is passed as its own quoted word and nothing is eval'd: the arguments come from the server and the
# kernel's environment, and Gateway Provisioners' run.sh eval'd them (shell injection).
set -euo pipefail

die() { echo "kernelfleet-toree run.sh: $*" >&2; exit 1; }

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
launcher_jar_name="kernelfleet-toree-launcher.jar"

python_package_dir() {
  local py="${PYTHON:-}"
  if [[ -z "$py" ]]; then
    if [[ -x "$here/../../.venv/bin/python" ]]; then py="$here/../../.venv/bin/python"; else py="python3"; fi
  fi
  "$py" - "$1" <<'EOF' 2>/dev/null
import importlib.util, sys
spec = importlib.util.find_spec(sys.argv[1])
if spec is None or not spec.submodule_search_locations:
    sys.exit(1)
print(list(spec.submodule_search_locations)[0])
EOF
}

first_match() {
  local pattern="$1" matches
  shopt -s nullglob
  # shellcheck disable=SC2206  # the glob is the point; the pattern is ours, never user input
  matches=($pattern)
  shopt -u nullglob
  [[ ${#matches[@]} -ge 1 ]] && printf '%s\n' "${matches[0]}"
}

if [[ -f "$here/../lib/$launcher_jar_name" ]]; then
  lib="$(cd "$here/../lib" && pwd)"
  launcher_jar="$lib/$launcher_jar_name"
  toree_jar="${TOREE_JAR:-$(first_match "$lib/toree-assembly-*.jar" || true)}"
else
  launcher_jar="$here/dist/$launcher_jar_name"
  [[ -f "$launcher_jar" ]] || die "no $launcher_jar_name in $here/../lib or $here/dist (build it with tools/build-scala-launcher)"
  toree_jar="${TOREE_JAR:-}"
fi
# Fall back to the pip-installed toree and pyspark packages (an image may ship Spark as pyspark only).
if [[ -z "$toree_jar" ]]; then
  toree_dir="$(python_package_dir toree || true)"
  [[ -n "$toree_dir" ]] && toree_jar="$(first_match "$toree_dir/lib/toree-assembly-*.jar" || true)"
fi
if [[ -z "${SPARK_HOME:-}" ]]; then
  SPARK_HOME="$(python_package_dir pyspark || true)"
fi
[[ -n "$toree_jar" && -f "$toree_jar" ]] || die "the Apache Toree assembly (toree-assembly-*.jar) was not found; set TOREE_JAR"
[[ -n "${SPARK_HOME:-}" && -x "$SPARK_HOME/bin/spark-submit" ]] || die "SPARK_HOME must point at a Spark installation with bin/spark-submit"
export SPARK_HOME

if [[ -z "${JAVA_HOME:-}" ]]; then
  java_bin="$(command -v java || true)"
  [[ -n "$java_bin" ]] || die "java was not found: install a Java 17 runtime or set JAVA_HOME"
  JAVA_HOME="$(dirname "$(dirname "$(readlink -f "$java_bin")")")"
fi
export JAVA_HOME

# A kernel bound to loopback needs Spark's driver on loopback too.
if [[ -z "${SPARK_LOCAL_IP:-}" && "${KERNEL_IP:-}" =~ ^(127\.|::1$|localhost$) ]]; then
  export SPARK_LOCAL_IP=127.0.0.1
fi

# Toree's magics read jar manifests through java.util.jar internals that Java 17 closes by default.
driver_java_options="--add-opens=java.base/java.util.jar=ALL-UNNAMED"
# A warm-pool standby (protocol 2.1) takes on its claim's environment and working directory after the JVM started: the
# launcher's ProcessState needs the JDK's environment map, its cached working directory and libc's chdir.
if [[ -n "${KF_STANDBY_ID:-}" ]]; then
  driver_java_options="$driver_java_options --add-opens=java.base/java.util=ALL-UNNAMED"
  driver_java_options="$driver_java_options --add-opens=java.base/java.io=ALL-UNNAMED"
  driver_java_options="$driver_java_options --add-opens=java.base/sun.nio.fs=ALL-UNNAMED"
  driver_java_options="$driver_java_options --add-modules=jdk.incubator.foreign --enable-native-access=ALL-UNNAMED"
fi
if [[ -n "${KERNEL_DRIVER_JAVA_OPTS:-}" ]]; then
  driver_java_options="$driver_java_options $KERNEL_DRIVER_JAVA_OPTS"
fi

# SPARK_OPTS / TOREE_OPTS come from the kernelspec's env (set by the administrator). They are split on whitespace
# into words, with globbing off, and never evaluated.
spark_opts=()
toree_opts=()
set -f
# shellcheck disable=SC2206
[[ -n "${SPARK_OPTS:-${__TOREE_SPARK_OPTS__:-}}" ]] && spark_opts=(${SPARK_OPTS:-${__TOREE_SPARK_OPTS__:-}})
# shellcheck disable=SC2206
[[ -n "${TOREE_OPTS:-${__TOREE_OPTS__:-}}" ]] && toree_opts=(${TOREE_OPTS:-${__TOREE_OPTS__:-}})
set +f

# Hand LAUNCH_TOKEN to the launcher through a pipe instead of the environment: the JVM's environment is readable by
# every cell the kernel runs (sys.env, /proc/self/environ), and once the launcher has read the pipe it is empty.
if [[ -n "${LAUNCH_TOKEN:-}" ]]; then
  exec {token_fd}< <(printf '%s\n' "$LAUNCH_TOKEN")
  export KERNELFLEET_LAUNCH_TOKEN_FD="$token_fd"
  unset LAUNCH_TOKEN
fi

exec "$SPARK_HOME/bin/spark-submit" \
  --name "kernelfleet-toree" \
  --driver-java-options "$driver_java_options" \
  "${spark_opts[@]}" \
  --jars "$toree_jar" \
  --class kernelfleet.toree.ToreeLauncher \
  "$launcher_jar" \
  "${toree_opts[@]}" \
  "$@"
