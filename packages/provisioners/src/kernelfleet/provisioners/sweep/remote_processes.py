"""Launchers this server started on SSH hosts, and their kernels, found and removed with two fixed shell programs.

Like ``ssh_command``'s launch script, the programs are constants and every value (the server id, kernel ids,
process group ids, log paths) is a positional parameter quoted with ``shlex.quote``; values read back from a host
are checked before they are used again (kernel ids against the protocol's pattern, pids as integers, log paths
against the launch script's own ``kernelfleet-<kernel id>-`` name).

A remote launcher leads its own session (``setsid``) and carries the launch environment, ``KF_SERVER_ID`` and
``KERNEL_ID`` among it; its kernel leads another group with the same variables. Groups of local launches
(``KF_LOCAL_LAUNCH``) are the local sweep's. An unclaimed warm-pool standby (``KF_STANDBY_ID``, no kernel id yet,
``ssh.remote_standbys``) is listed under its standby id, which no session claims, but only once it holds no
established TCP connection: a standby waits on its connection to its server's broker, so a connected one belongs to
a running server (and one being started is younger than the operator's ``--min-age``). A claimed standby carries
its kernel's id like a cold launcher. One machine reachable under several addresses would show every
process once per address: a process whose ``SSH_CONNECTION`` names another local address than the sweep's own
session arrived through that other address and is listed there only.
"""

from __future__ import annotations

import asyncio
import re
import shlex
from collections import defaultdict

import asyncssh

from kernelfleet.protocol.constants import KERNEL_ID_PATTERN
from kernelfleet.provisioners.ssh.connections import HostUnavailable, connection_pool
from kernelfleet.provisioners.ssh.launch import run_command
from kernelfleet.provisioners.sweep.model import SSH, EngineUnavailable, Orphan, Outcome, Removal, SSHTarget

FOUND, KILLED, GONE, LEFT = "KF-ORPHAN", "KF-KILLED", "KF-GONE", "KF-LEFT"
COMMAND_TIMEOUT = 30.0

LIST_SCRIPT = r"""kf_sid=$1
kf_tck=$(getconf CLK_TCK 2>/dev/null) || kf_tck=100
read -r kf_up kf_rest </proc/uptime || { echo "KF-ERROR this host has no /proc"; exit 97; }
kf_where=$(printf '%s\n' "$SSH_CONNECTION" | awk '{print $3}')
for kf_file in $(grep -lsxzF "KF_SERVER_ID=$kf_sid" /proc/[0-9]*/environ); do
  kf_dir=${kf_file%/environ}; kf_pid=${kf_dir#/proc/}
  kf_env=$(tr '\0' '\n' <"$kf_file" 2>/dev/null) || continue
  printf '%s\n' "$kf_env" | grep -qxF "KF_LOCAL_LAUNCH=1" && continue
  kf_via=$(printf '%s\n' "$kf_env" | sed -n 's/^SSH_CONNECTION=//p' | awk '{print $3}')
  [ -z "$kf_via" ] || [ -z "$kf_where" ] || [ "$kf_via" = "$kf_where" ] || continue
  kf_kid=$(printf '%s\n' "$kf_env" | sed -n 's/^KERNEL_ID=//p' | head -n 1)
  if [ -z "$kf_kid" ]; then
    kf_kid=$(printf '%s\n' "$kf_env" | sed -n 's/^KF_STANDBY_ID=//p' | head -n 1)
    [ -n "$kf_kid" ] || continue
    kf_socks=$(ls -l "$kf_dir/fd" 2>/dev/null | sed -n 's/.*socket:\[\([0-9]*\)\]$/\1/p' | tr '\n' ' ')
    if [ -n "$kf_socks" ] && cat "$kf_dir/net/tcp" "$kf_dir/net/tcp6" 2>/dev/null |
       awk -v s=" $kf_socks" '$4 == "01" && index(s, " " $10 " ") { f = 1 } END { exit !f }'; then
      continue
    fi
  fi
  kf_stat=$(awk -v up="$kf_up" -v tck="$kf_tck" \
    '{sub(/^.*\) /, ""); printf "%s %s %d", $1, $3, up - $20 / tck}' "$kf_dir/stat" 2>/dev/null) || continue
  set -- $kf_stat
  [ "$1" != Z ] && [ "$2" = "$kf_pid" ] || continue
  echo "KF-ORPHAN $kf_pid $3 $kf_kid $(readlink "$kf_dir/fd/1" 2>/dev/null)"
done
"""

KILL_SCRIPT = r"""kf_sid=$1; shift
while [ $# -ge 3 ]; do
  kf_g=$1; kf_kid=$2; kf_log=$3; shift 3
  case "$kf_log" in */kernelfleet-"$kf_kid"-*) rm -f -- "$kf_log";; esac
  kf_env=$(tr '\0' '\n' <"/proc/$kf_g/environ" 2>/dev/null) || { echo "KF-GONE $kf_g"; continue; }
  if printf '%s\n' "$kf_env" | grep -qxF -e "KERNEL_ID=$kf_kid" -e "KF_STANDBY_ID=$kf_kid" &&
     printf '%s\n' "$kf_env" | grep -qxF "KF_SERVER_ID=$kf_sid"; then
    if kill -s KILL -- "-$kf_g" 2>/dev/null; then echo "KF-KILLED $kf_g"; else echo "KF-GONE $kf_g"; fi
  else
    echo "KF-LEFT $kf_g"
  fi
done
"""


def list_command(server_id: str) -> str:
    return shlex.join(["/bin/sh", "-c", LIST_SCRIPT, "kernelfleet-sweep", server_id])


def kill_command(server_id: str, orphans: list[Orphan]) -> str:
    words = ["/bin/sh", "-c", KILL_SCRIPT, "kernelfleet-sweep", server_id]
    for orphan in orphans:
        words += [str(int(orphan.object_id)), orphan.kernel_id, orphan.log_path]
    return shlex.join(words)


def log_path_of(kernel_id: str, text: str) -> str:
    """The launcher's log file as the launch script named it, or "" (a kernel's own stdout, a pipe, anything else)."""
    pattern = rf"/[^\0\n]*/kernelfleet-{re.escape(kernel_id)}-[A-Za-z0-9]+"
    return text if re.fullmatch(pattern, text) and "/../" not in text else ""


def parse_listing(output: str, target: SSHTarget, server_id: str) -> list[Orphan]:
    found = []
    for line in output.splitlines():
        words = line.split(" ", 4)
        if len(words) < 4 or words[0] != FOUND or not words[1].isdigit() or not words[2].lstrip("-").isdigit():
            continue
        pid, age, kernel_id = words[1], max(0, int(words[2])), words[3]
        if not KERNEL_ID_PATTERN.match(kernel_id):
            continue
        log = log_path_of(kernel_id, words[4] if len(words) > 4 else "")
        found.append(Orphan(SSH, "process group", f"{target.host}:{pid}", pid, kernel_id, float(age), server_id,
                            location=target.host, log_path=log, ssh=target))
    return found


async def _run(target: SSHTarget, command: str) -> str:
    pool = connection_pool()
    try:
        conn = await pool.connect(target.host, target.settings)
        return await run_command(conn, command, COMMAND_TIMEOUT, pool.sessions(target.host, target.settings))
    except (HostUnavailable, asyncssh.Error, OSError, TimeoutError) as err:
        raise EngineUnavailable(f"{target.host}: {getattr(err, 'reason', None) or err or type(err).__name__}") from None


async def find(server_id: str, target: SSHTarget) -> list[Orphan]:
    output = await _run(target, list_command(server_id))
    if output.startswith("KF-ERROR "):
        raise EngineUnavailable(f"{target.host}: {output.splitlines()[0][len('KF-ERROR '):]}")
    return parse_listing(output, target, server_id)


async def remove(orphans: list[Orphan]) -> list[Removal]:
    """One command per host and server id: kill every listed group that still carries its kernel and server."""
    groups: dict[tuple[SSHTarget, str], list[Orphan]] = defaultdict(list)
    for orphan in orphans:
        assert orphan.ssh is not None
        groups[(orphan.ssh, orphan.server_id)].append(orphan)
    results = await asyncio.gather(*(_remove_on(target, sid, batch) for (target, sid), batch in groups.items()))
    return [removal for batch in results for removal in batch]


async def _remove_on(target: SSHTarget, server_id: str, orphans: list[Orphan]) -> list[Removal]:
    try:
        output = await _run(target, kill_command(server_id, orphans))
    except EngineUnavailable as err:
        return [Removal(orphan, Outcome.FAILED, str(err)) for orphan in orphans]
    said = {words[1]: words[0] for words in (line.split() for line in output.splitlines()) if len(words) == 2}
    outcome = {KILLED: Outcome.REMOVED, GONE: Outcome.GONE, LEFT: Outcome.LEFT}
    return [Removal(orphan, outcome.get(said.get(orphan.object_id, ""), Outcome.FAILED)) for orphan in orphans]
