#!/bin/sh
# Final stage of kernel-spark-py/-r: what Spark's scripts need beside the JRE (copied in from jlink-jre.sh's
# stage): procps (they call ps) and tini, then the kernel user.
#   install-runtime.sh DEBIAN_MIRROR NB_USER NB_UID NB_GID
set -eu
mirror="$1"; user="$2"; uid="$3"; gid="$4"
if [ -n "$mirror" ]; then
  echo "deb $mirror bookworm main" >/etc/apt/sources.list
  rm -f /etc/apt/sources.list.d/*
fi
apt_opts=""
if grep -rqs snapshot /etc/apt/sources.list /etc/apt/sources.list.d/; then
  apt_opts="-o Acquire::Check-Valid-Until=false"
fi
# shellcheck disable=SC2086
apt-get $apt_opts update -qq
# shellcheck disable=SC2086
DEBIAN_FRONTEND=noninteractive apt-get $apt_opts install -y -qq --no-install-recommends procps tini >/dev/null
rm -rf /var/lib/apt/lists/* /var/cache/apt/* /var/log/* /tmp/* /usr/share/man/*
getent group "$gid" >/dev/null || groupadd -g "$gid" users
getent passwd "$uid" >/dev/null || useradd --no-log-init -m -s /bin/bash -u "$uid" -g "$gid" "$user"
/usr/lib/jvm/java-17/bin/java -version 2>&1 | head -n 1
