#!/bin/sh
# Final stage of kernel-spark-py/-r: what Spark's scripts need beside the JRE (copied in from jlink-jre.sh's
# stage): procps (they call ps) and tini, then the kernel user.
#   install-runtime.sh DEBIAN_MIRROR NB_USER NB_UID NB_GID
set -eu
mirror="$1"; user="$2"; uid="$3"; gid="$4"
sh "$(dirname "$0")/apt-install.sh" "$mirror" procps tini
rm -rf /tmp/*
getent group "$gid" >/dev/null || groupadd -g "$gid" users
getent passwd "$uid" >/dev/null || useradd --no-log-init -m -s /bin/bash -u "$uid" -g "$gid" "$user"
/usr/lib/jvm/java-17/bin/java -version 2>&1 | head -n 1
