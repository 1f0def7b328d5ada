#!/bin/sh
# Debian packages for a stage of kernel-spark-py/-r (jlink-jre.sh, install-runtime.sh): the apt sources of
# DEBIAN_MIRROR when one is given (a snapshot mirror's Release files are past their Valid-Until), no recommends, and
# the package lists and caches removed afterwards. man1 must exist for the JDK's postinst (the base drops man pages).
#   apt-install.sh DEBIAN_MIRROR PACKAGE...
set -eu
mirror="$1"; shift
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
DEBIAN_FRONTEND=noninteractive apt-get $apt_opts install -y -qq --no-install-recommends "$@" >/dev/null
rm -rf /var/lib/apt/lists/* /var/cache/apt/* /var/log/* /usr/share/man/*
