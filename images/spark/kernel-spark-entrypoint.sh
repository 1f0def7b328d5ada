#!/usr/bin/env bash
# Kernel Fleet's Spark-on-Kubernetes entrypoint for kernel-spark-py and kernel-spark-r: the part of
# Apache Spark's kubernetes/dockerfiles/spark/entrypoint.sh a kernel image needs (that script is not in
# the pyspark distribution these images are built from).
#
#   driver ARGS...    the pod spark-submit --deploy-mode cluster created: run spark-submit in client mode
#                     inside it (ARGS are Spark's: --properties-file ..., --class ..., the launcher file and
#                     its arguments), bound to the pod's IP (SPARK_DRIVER_BIND_ADDRESS, from status.podIP)
#   executor          an executor pod the driver created: run KubernetesExecutorBackend with the values
#                     Spark put in the pod's environment (SPARK_DRIVER_URL, SPARK_EXECUTOR_ID, ...)
#   anything else     exec'd as given (the images' default is bootstrap-kernel.sh: a pod kernel)
#
# No eval and no word splitting of values: each variable is one argument. SPARK_JAVA_OPT_<n> are the
# executor's JVM options, in the order of n, as Spark's own entrypoint reads them.
set -euo pipefail

me="kernel-spark-entrypoint"
fail() {
  printf '%s: %s\n' "$me" "$1" >&2
  exit 1
}

[[ -n "${SPARK_HOME:-}" && -x "$SPARK_HOME/bin/spark-submit" ]] || fail "SPARK_HOME must name a Spark distribution"
java="${JAVA_HOME:+$JAVA_HOME/bin/}java"

java_opts() {  # the SPARK_JAVA_OPT_<n> values, ordered by n
  local names=() n
  for n in $(compgen -e | sed -n 's/^SPARK_JAVA_OPT_\([0-9][0-9]*\)$/\1/p' | sort -n); do
    names+=("SPARK_JAVA_OPT_$n")
  done
  for n in "${names[@]}"; do printf '%s\0' "${!n}"; done
}

case "${1:-}" in
  driver)
    shift
    [[ -n "${SPARK_DRIVER_BIND_ADDRESS:-}" ]] || fail "SPARK_DRIVER_BIND_ADDRESS is not set (the driver pod sets it from status.podIP)"
    # The driver reaches the API server as any in-cluster client does (KUBERNETES_SERVICE_HOST/PORT, the
    # service-account token), not through Spark's default name https://kubernetes.default.svc, which needs DNS.
    master=()
    if [[ -n "${KUBERNETES_SERVICE_HOST:-}" && -n "${KUBERNETES_SERVICE_PORT:-}" ]]; then
      host="$KUBERNETES_SERVICE_HOST"
      [[ "$host" != *:* ]] || host="[$host]"
      master=(--conf "spark.kubernetes.driver.master=https://$host:$KUBERNETES_SERVICE_PORT")
    fi
    exec "$SPARK_HOME/bin/spark-submit" "${master[@]}" \
      --conf "spark.driver.bindAddress=$SPARK_DRIVER_BIND_ADDRESS" \
      --conf "spark.executorEnv.SPARK_DRIVER_POD_IP=$SPARK_DRIVER_BIND_ADDRESS" \
      --deploy-mode client "$@"
    ;;
  executor)
    shift
    for name in SPARK_DRIVER_URL SPARK_EXECUTOR_ID SPARK_EXECUTOR_CORES SPARK_APPLICATION_ID \
                SPARK_EXECUTOR_POD_IP SPARK_EXECUTOR_MEMORY; do
      [[ -n "${!name:-}" ]] || fail "$name is not set (the driver sets it on every executor pod)"
    done
    mapfile -d '' opts < <(java_opts)
    classpath="$SPARK_HOME/jars/*"
    [[ -z "${SPARK_EXTRA_CLASSPATH:-}" ]] || classpath="$classpath:$SPARK_EXTRA_CLASSPATH"
    [[ -z "${SPARK_DIST_CLASSPATH:-}" ]] || classpath="$classpath:$SPARK_DIST_CLASSPATH"
    exec "$java" "${opts[@]}" "-Xms$SPARK_EXECUTOR_MEMORY" "-Xmx$SPARK_EXECUTOR_MEMORY" -cp "$classpath" \
      org.apache.spark.scheduler.cluster.k8s.KubernetesExecutorBackend \
      --driver-url "$SPARK_DRIVER_URL" --executor-id "$SPARK_EXECUTOR_ID" --cores "$SPARK_EXECUTOR_CORES" \
      --app-id "$SPARK_APPLICATION_ID" --hostname "$SPARK_EXECUTOR_POD_IP" \
      --resourceProfileId "${SPARK_RESOURCE_PROFILE_ID:-0}" --podName "${SPARK_EXECUTOR_POD_NAME:-$HOSTNAME}"
    ;;
  "")
    fail "no command (driver, executor, or a program to run)"
    ;;
  *)
    exec "$@"
    ;;
esac
