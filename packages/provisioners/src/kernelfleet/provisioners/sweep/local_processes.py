"""Launchers this server ran as its own children (``distributed-provisioner`` with ``localhost``) and their
kernels, found in ``/proc`` by the variables the provisioner put in their environment.

A launcher and its kernel each lead their own process group (the launcher is started in a new session, the
kernel with ``setsid``) and inherit the launch environment: ``KF_SERVER_ID`` (whose), ``KF_LOCAL_LAUNCH``
(started as a local process, not over SSH) and ``KERNEL_ID``. A group whose leader carries all three with this
server's id is an orphan unless a session claims its kernel. Removal re-reads the leader's environment right
before the signal, so a pid reused since the listing is never signalled.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from pathlib import Path

from kernelfleet.protocol.constants import KERNEL_ID_PATTERN
from kernelfleet.protocol.contract import KERNEL_ID, STANDBY_ID
from kernelfleet.provisioners.server_identity import LOCAL_LAUNCH_ENV, SERVER_ID_ENV, STANDBY_PARENT_ENV
from kernelfleet.provisioners.sweep.model import LOCAL, EngineUnavailable, Orphan, Outcome, Removal

PROC = Path("/proc")
EXIT_TIMEOUT = 10.0


def _environment(pid: int) -> dict[str, str]:
    raw = (PROC / str(pid) / "environ").read_bytes()
    return dict(item.split("=", 1) for item in raw.decode("utf-8", "replace").split("\0") if "=" in item)


def _stat_fields(pid: int) -> list[str]:
    """``/proc/<pid>/stat`` after the command name (which may hold spaces): [state, ppid, pgrp, ...]."""
    return (PROC / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()


def _ancestors() -> set[int]:
    pids, pid = set(), os.getpid()
    while pid > 1:
        pids.add(pid)
        try:
            pid = int(_stat_fields(pid)[1])
        except (OSError, ValueError, IndexError):
            break
    return pids


def _kernel_of(pid: int, server_id: str) -> str | None:
    """The kernel id of process group leader ``pid`` if it is a local launch of this server, else None.

    An unclaimed warm-pool standby (``KF_STANDBY_ID``, no kernel id yet) counts under its standby id, which no
    session claims, but only once the server process that started it (``KF_STANDBY_PARENT``) is no longer its
    parent: a running server's pool is not an orphan. A claimed standby carries its kernel's id like a cold one, except
    one that became the kernel in place (R): it keeps its standby id, which its saved session claims
    (``KernelSession.claimed_ids``)."""
    fields = _stat_fields(pid)
    if fields[0] == "Z" or int(fields[2]) != pid:
        return None
    env = _environment(pid)
    kernel_id = env.get(KERNEL_ID, "")
    if not kernel_id and env.get(STANDBY_ID):
        if env.get(STANDBY_PARENT_ENV) == fields[1]:
            return None
        kernel_id = env[STANDBY_ID]
    if env.get(SERVER_ID_ENV) != server_id or env.get(LOCAL_LAUNCH_ENV) != "1" or \
            not KERNEL_ID_PATTERN.match(kernel_id):
        return None
    return kernel_id


def _command(pid: int) -> str:
    try:
        words = (PROC / str(pid) / "cmdline").read_bytes().split(b"\0")
    except OSError:
        return "?"
    return " ".join(w.decode("utf-8", "replace") for w in words[:3] if w)[:60]


def scan(server_id: str) -> list[Orphan]:
    """Every process group this server started locally (worker thread: it reads all of /proc)."""
    if not (PROC / "self" / "environ").exists():
        raise EngineUnavailable("this system has no /proc, where local launchers are found")
    ticks = os.sysconf("SC_CLK_TCK")
    uptime = float((PROC / "uptime").read_text().split()[0])
    skip = _ancestors()
    found = []
    for entry in os.scandir(PROC):
        if not entry.name.isdigit() or int(entry.name) in skip:
            continue
        pid = int(entry.name)
        try:
            kernel_id = _kernel_of(pid, server_id)
            if kernel_id is None:
                continue
            age = max(0.0, uptime - int(_stat_fields(pid)[19]) / ticks)
        except (OSError, ValueError, IndexError):
            continue  # gone meanwhile, or not ours to read
        found.append(Orphan(LOCAL, "process group", f"{pid} ({_command(pid)})", str(pid), kernel_id, age, server_id))
    return found


async def find(server_id: str) -> list[Orphan]:
    return await asyncio.to_thread(scan, server_id)


def _kill(orphan: Orphan) -> tuple[Outcome, int | None]:
    """SIGKILL the group if its leader is still this orphan; a pidfd to wait on (opened before the signal)."""
    pid = int(orphan.object_id)
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return Outcome.GONE, None
    try:
        if _kernel_of(pid, orphan.server_id) != orphan.kernel_id:
            os.close(pidfd)
            return Outcome.LEFT, None
        os.killpg(pid, signal.SIGKILL)
    except (OSError, ValueError, IndexError):
        os.close(pidfd)
        return Outcome.GONE, None
    return Outcome.REMOVED, pidfd


async def _exited(pidfd: int, timeout: float) -> bool:
    """Wait until the process behind ``pidfd`` has exited: the descriptor becomes readable then (no polling)."""
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    loop.add_reader(pidfd, lambda: done.done() or done.set_result(None))
    try:
        await asyncio.wait_for(done, timeout)
        return True
    except TimeoutError:
        return False
    finally:
        loop.remove_reader(pidfd)
        with contextlib.suppress(OSError):
            os.close(pidfd)


async def remove(orphans: list[Orphan]) -> list[Removal]:
    """SIGKILL each orphaned group (its state is lost with the server that owned it) and wait for its leader."""
    results = []
    for orphan in orphans:
        outcome, pidfd = await asyncio.to_thread(_kill, orphan)
        if pidfd is not None and not await _exited(pidfd, EXIT_TIMEOUT):
            results.append(Removal(orphan, Outcome.FAILED, f"still running {EXIT_TIMEOUT:g}s after SIGKILL"))
            continue
        results.append(Removal(orphan, outcome))
    return results
