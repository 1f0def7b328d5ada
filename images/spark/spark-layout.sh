#!/bin/sh
# Build stage of kernel-spark-py/-r: lay out Spark from the pyspark wheel (no download).
#   spark-layout.sh WHEELS PIP_OPTIONS SPARK_HOME PYTHON_DIR
# SPARK_HOME gets bin/ and jars/ (Kubernetes cluster manager kept; Mesos, YARN and RocksDB left out,
# ~70 MB); PYTHON_DIR gets the pyspark and py4j Python packages ("none": the R image needs none).
set -eu
wheels="$1"; pip_options="$2"; spark_home="$3"; python_dir="$4"
pip_wheel="$(ls "$wheels"/pip-*.whl 2>/dev/null | head -n 1)"
if [ -n "$pip_wheel" ]; then pip="python3 $pip_wheel/pip"; else pip="python3 -m pip"; fi
# shellcheck disable=SC2086
$pip install -q --no-compile --no-cache-dir --disable-pip-version-check --target /tmp/spark-dist \
    --find-links "$wheels" $pip_options --no-deps pyspark py4j
src=/tmp/spark-dist/pyspark
mkdir -p "$spark_home"
cp -a "$src/bin" "$src/jars" "$spark_home/"
[ ! -d "$src/licenses" ] || cp -a "$src/licenses" "$spark_home/"
rm -f "$spark_home"/bin/*.cmd "$spark_home/bin/docker-image-tool.sh" "$spark_home/bin/beeline" \
    "$spark_home/bin/spark-sql" "$spark_home/bin/spark-connect-shell"
(cd "$spark_home/jars" && rm -f spark-mesos_*.jar mesos-*.jar spark-yarn_*.jar \
    hadoop-yarn-server-web-proxy-*.jar rocksdbjni-*.jar)
test -f "$spark_home"/jars/spark-kubernetes_*.jar
if [ "$python_dir" != none ]; then
  mkdir -p "$python_dir"
  cp -a "$src" "$python_dir/pyspark"
  rm -rf "$python_dir/pyspark/jars" "$python_dir/pyspark/bin" "$python_dir/pyspark/sbin" \
      "$python_dir/pyspark/examples" "$python_dir/pyspark/data" "$python_dir/pyspark/licenses"
  cp -a /tmp/spark-dist/py4j "$python_dir/py4j"
  find "$python_dir" -depth -type d \( -name tests -o -name __pycache__ \) -exec rm -rf {} +
  # pyspark finds Spark through SPARK_HOME (set in the image).
fi
rm -rf /tmp/spark-dist
