#!/bin/sh
# Build stage of kernel-spark-py/-r: a Java 17 runtime cut to what Spark, its Kubernetes client and py4j use
# (jlink over Debian's JDK: about a third of the JRE package it replaces). Modules: all that `jdeps
# --print-module-deps` finds in Spark's jars, plus those Spark reaches by reflection or service lookup
# (TLS ciphers, Kerberos, the JMX beans, zip file systems, extra charsets).
#   jlink-jre.sh DEBIAN_MIRROR OUTPUT
set -eu
mirror="$1"; output="$2"
# binutils: jlink strips native debug symbols with objcopy
sh "$(dirname "$0")/apt-install.sh" "$mirror" openjdk-17-jdk-headless binutils
jdk="/usr/lib/jvm/java-17-openjdk-$(dpkg --print-architecture)"
modules="java.base,java.compiler,java.datatransfer,java.desktop,java.instrument,java.logging,java.management"
modules="$modules,java.management.rmi,java.naming,java.net.http,java.prefs,java.rmi,java.scripting"
modules="$modules,java.security.jgss,java.security.sasl,java.sql,java.sql.rowset,java.transaction.xa,java.xml"
modules="$modules,java.xml.crypto,jdk.charsets,jdk.crypto.cryptoki,jdk.crypto.ec,jdk.httpserver,jdk.jfr"
modules="$modules,jdk.management,jdk.naming.dns,jdk.net,jdk.security.auth,jdk.security.jgss,jdk.unsupported"
modules="$modules,jdk.zipfs,jdk.attach,jdk.incubator.vector,jdk.jdi"
"$jdk/bin/jlink" --add-modules "$modules" --strip-debug --no-man-pages --no-header-files --compress=2 \
    --output "$output"
# Debian's JDK links its trust store to ca-certificates-java's; the image gets the file itself.
rm -f "$output/lib/security/cacerts"
cp -L "$jdk/lib/security/cacerts" "$output/lib/security/cacerts"
"$output/bin/java" -version 2>&1 | head -n 1
