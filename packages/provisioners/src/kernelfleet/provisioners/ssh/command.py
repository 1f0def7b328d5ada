"""The command lines a remote host runs for a kernel, built so that no value can become shell code.

Gateway Provisioners concatenated ``export KERNEL_USERNAME="<raw value>"`` into one shell string,
so a user name like ``bob";touch X;echo "`` ran a command on the host. Here:

* The shell program is a constant (``LAUNCH_SCRIPT``); nothing is interpolated into it. The values
  it needs — log directory, kernel id, the launcher's argv — are its positional parameters, each
  passed through ``shlex.quote``.
* The kernel's environment never appears on a command line (``ps`` shows every user a process's
  arguments). It is written to the channel's stdin as ``NAME=value`` lines, which the script turns
  into variables with ``export "$line"`` — the value is never parsed as shell code. Stdin was chosen
  over SSH ``env`` requests because sshd drops those unless ``AcceptEnv`` lists each name, which
  would make secrets like ``LAUNCH_TOKEN`` silently disappear on most hosts.
* Values that cannot travel on one line (NUL, CR, LF) are refused, as are names that are not plain
  identifiers or would change the launching shell itself. Values the client chose (``KERNEL_*``)
  additionally must not contain ``$`` or backticks, since launch scripts on the host (R, Spark
  wrappers) may use them in shell contexts of their own, and ``KERNEL_USERNAME`` must look like a
  user name.

The script runs the launcher detached (``setsid nohup``) with its output in a private log file
(``mktemp``: mode 0600, random name), prints ``KF-STARTED <pid> <log>``, and then waits: if the
launcher exits it prints ``KF-EXITED <code>`` and the log's tail, so a launch that dies at once is
reported at once (and, unless logs are kept, removes the log: its tail is in the error). The
watch ends when the server closes the channel's stdin: a small reader then
ends the waiting shell, leaving only the launcher (its own session and process group) running.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable, Mapping

from kernelfleet.provisioners.kernel_env import FORBIDDEN_CHARACTERS
from kernelfleet.provisioners.request_env import USERNAME

STARTED = "KF-STARTED"
EXITED = "KF-EXITED"
ERROR = "KF-ERROR"

LAUNCH_SCRIPT = r"""umask 077
kf_dir=${1:-${TMPDIR:-/tmp}}; kf_kid=$2; kf_keep=$3; shift 3
kf_setsid=$(command -v setsid) || { echo "KF-ERROR setsid is not installed on this host"; exit 97; }
kf_nohup=$(command -v nohup) || { echo "KF-ERROR nohup is not installed on this host"; exit 97; }
kf_log=$(mktemp "$kf_dir/kernelfleet-$kf_kid-XXXXXXXXXXXX") ||
  { echo "KF-ERROR cannot create a log file in $kf_dir"; exit 97; }
while IFS= read -r kf_line && [ -n "$kf_line" ]; do
  export "$kf_line" || { echo "KF-ERROR cannot set an environment variable"; exit 97; }
done
exec 4<&0 </dev/null
"$kf_setsid" "$kf_nohup" "$@" >>"$kf_log" 2>&1 4<&- &
kf_pid=$!
echo "KF-STARTED $kf_pid $kf_log"
{ cat >/dev/null; kill "$$"; } <&4 >/dev/null 2>&1 &
kf_watch=$!
exec 4<&-
wait "$kf_pid"
kf_code=$?
kill "$kf_watch" 2>/dev/null
echo "KF-EXITED $kf_code"
tail -c 3000 "$kf_log"
[ -n "$kf_keep" ] || rm -f "$kf_log"
"""

NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
UNSAFE_IN_REQUEST = ("$", "`")
# Variables that change how the launching shell itself behaves; a kernel has no use for them.
SHELL_NAMES = frozenset({"IFS", "ENV", "BASH_ENV", "SHELLOPTS", "BASHOPTS", "PS4", "CDPATH", "OPTIND", "PPID"})


class RemoteEnvError(ValueError):
    """A variable that must not be sent to a remote host; the message names it, never its value."""


def check_env(
    kernel_id: str, env: Mapping[str, str], *, trusted_names: Iterable[str] = ()
) -> dict[str, str]:
    """Refuse what could break out of the launch; ``trusted_names`` (the kernelspec's env) skip the request rules."""
    trusted = set(trusted_names)
    for name, value in env.items():
        if not NAME.match(name) or name in SHELL_NAMES or name.startswith("BASH_FUNC_"):
            raise RemoteEnvError(f"Kernel {kernel_id}: environment variable name {name!r} cannot be sent to a host")
        if not isinstance(value, str) or any(ch in value for ch in FORBIDDEN_CHARACTERS):
            raise RemoteEnvError(f"Kernel {kernel_id}: {name} contains a newline, carriage return or NUL character")
        if name.startswith("KERNEL_") and name not in trusted and any(ch in value for ch in UNSAFE_IN_REQUEST):
            raise RemoteEnvError(f"Kernel {kernel_id}: {name} must not contain '$' or '`'")
    username = env.get("KERNEL_USERNAME")
    if username is not None and not USERNAME.match(username):
        raise RemoteEnvError(
            f"Kernel {kernel_id}: KERNEL_USERNAME is not a valid user name (letters, digits, '.', '_', '@', '-')"
        )
    return dict(env)


def encode_env(env: Mapping[str, str]) -> bytes:
    """The stdin payload: one ``NAME=value`` line per variable, then an empty line. Call check_env first."""
    return "".join(f"{name}={value}\n" for name, value in env.items()).encode() + b"\n"


def launch_command(argv: list[str], kernel_id: str, log_dir: str = "", keep_log: bool = False) -> str:
    """The command line for the launch channel; it holds no secret and no environment.

    Without ``keep_log`` the log of a launcher that exits during the launch is removed once its
    tail has been sent (the tail is in the error); a running kernel's log is removed at its stop.
    """
    if not argv:
        raise ValueError(f"Kernel {kernel_id}: the kernelspec argv is empty")
    words = ["exec", "/bin/sh", "-c", LAUNCH_SCRIPT, "kernelfleet-launch", log_dir, kernel_id,
             "keep" if keep_log else "", *argv]
    return shlex.join(words)


def signal_command(kernel_id: str, signal_name: str, pgids: Iterable[int], owner: str | None = None) -> str:
    """Signal (``0``: only test) process groups owned by ``KERNEL_ID=<kernel_id>``, or by the environment entry
    ``owner`` when given; prints those hit.

    ``owner`` is ``KF_STANDBY_ID=<id>`` (``pool.spec.process_owner``) for an unclaimed standby and for an R kernel
    claimed from a warm pool, which runs in its standby's process and keeps the standby's environment. A group is
    owned when its leader's environment has that entry, or its leader's parent's does: a kernel process is its
    launcher's child, and the kernel of a warm pool's Python standby was started before the claim gave its launcher a
    kernel id (docs/warm-pools.md), so only its parent says whose it is. The identity check (read from /proc) means a
    pid reused since the kernel ended is never signalled; on a host without /proc nothing is signalled, which is the
    safe side.
    """
    if not re.fullmatch(r"[A-Z]+|0", signal_name):
        raise ValueError(f"not a signal name: {signal_name!r}")
    option = f"-s {signal_name}"  # not "-0 --": dash's kill reads "--" as a pid after "-0"
    owned = shlex.quote(owner or f"KERNEL_ID={kernel_id}")
    return "; ".join(
        f"if {{ tr '\\0' '\\n' </proc/{g}/environ 2>/dev/null | grep -qxF -- {owned}; }} || "
        f"{{ kf_pp=$(sed 's/.*) //' /proc/{g}/stat 2>/dev/null | cut -d ' ' -f 2) && [ \"${{kf_pp:-1}}\" -gt 1 ] && "
        f"tr '\\0' '\\n' </proc/$kf_pp/environ 2>/dev/null | grep -qxF -- {owned}; }}; then "
        f"kill {option} -- -{g} 2>/dev/null && echo {g}; fi"
        for g in (int(p) for p in pgids) if g > 1
    ) or "true"


def sweep_command(kernel_id: str, pgids: Iterable[int], log_path: str | None, owner: str | None = None) -> str:
    """After a stop: SIGKILL whatever is left of the kernel's groups (printed), remove its log (``owner``: as for
    ``signal_command``)."""
    parts = [signal_command(kernel_id, "KILL", pgids, owner)]
    if log_path:
        parts.append(shlex.join(["rm", "-f", "--", log_path]))
    return "; ".join(parts)
