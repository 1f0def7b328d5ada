#!/bin/sh
# Build stage of kernel-spark-py/-r: a Java 17 runtime cut to what Spark, its Kubernetes client and py4j use
# (jlink over Debian's JDK: about a third of the JRE package it replaces). Modules: what `jdeps
# --print-module-deps` finds in Spark's jars, plus those Spark reaches by reflection or service lookup
# (TLS ciphers, Kerberos, the JMX beans, zip file systems, extra charsets).
#   jlink-jre.sh DEBIAN_MIRROR OUTPUT
set -eu
mirror="$1"; output="$2"
if [ -n "$mirror" ]; then
  echo "deb $mirror bookworm main" >/etc/apt/sources.list
  rm -f /etc/apt/sources.list.d/*
fi
apt_opts=""
if grep -rqs snapshot /etc/apt/sources.list /etc/apt/sources.list.d/; then
  apt_opts="-o Acquire::Check-Valid-Until=false"
fi
mkdir -p /usr/share/man/man1
# shellcheck disable=SC2086
apt-get $apt_opts update -qq
# shellcheck disable=SC2086
DEBIAN_FRONTEND=noninteractive apt-get $apt_opts install -y -qq --no-install-recommends \
    openjdk-17-jdk-headless binutils >/dev/null  # binutils: jlink strips native debug symbols with objcopy
jdk="/usr/lib/jvm/java-17-openjdk-$(dpkg --print-architecture)"
modules="java.base,java.compiler,java.datatransfer,java.desktop,java.instrument,java.logging,java.management"
modules="$modules,java.management.rmi,java.naming,java.net.http,java.prefs,java.rmi,java.scripting"
modules="$modules,java.security.jgss,java.security.sasl,java.sql,java.sql.rowset,java.transaction.xa,java.xml"
modules="$modules,java.xml.crypto,jdk.charsets,jdk.crypto.cryptoki,jdk.crypto.ec,jdk.httpserver,jdk.jfr"
modules="$modules,jdk.management,jdk.naming.dns,jdk.net,jdk.security.auth,jdk.security.jgss,jdk.unsupported"
modules="$modules,jdk.zipfs"
"$jdk/bin/jlink" --add-modules "$modules" --strip-debug --no-man-pages --no-header-files --compress=2 \
    --output "$output"
# Debian's JDK links its trust store to ca-certificates-java's; the image gets the file itself.
rm -f "$output/lib/security/cacerts"
cp -L "$jdk/lib/security/cacerts" "$output/lib/security/cacerts"
"$output/bin/java" -version 2>&1 | head -n 1
