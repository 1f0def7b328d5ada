"""What a server holds and what its kernels left behind, measured from outside our code (issue 11, item 5).

The server side (``footprint``): open descriptors from ``/proc/self/fd`` and the loop's asyncio tasks, each
counted by kind so a leak says what leaked. The engine side: processes carrying the server's identity
(``KF_SERVER_ID`` in their environment: launchers and kernels, local, over SSH and in containers alike, since
every "host" and container runs on this machine), Docker containers, services and secrets carrying its label
(through the docker CLI, the tests' own view), Kubernetes objects carrying it (through the caller's own client),
and the SSH connection pool's bookkeeping. Shared by ``tests/leaks`` and ``tools/bench/leak_cycles.py``.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kernelfleet.provisioners.server_identity import LABEL_SERVER, SERVER_ID_ENV


@dataclass(frozen=True)
class Footprint:
    """The server's descriptors and tasks at one moment, by kind."""

    fds: Counter[str] = field(default_factory=Counter)
    tasks: Counter[str] = field(default_factory=Counter)

    @property
    def fd_count(self) -> int:
        return sum(self.fds.values())

    @property
    def task_count(self) -> int:
        return sum(self.tasks.values())

    def growth(self, since: Footprint) -> dict[str, dict[str, int]]:
        """What there is more of than at ``since`` (empty dicts: nothing grew)."""
        return {"fds": dict(self.fds - since.fds), "tasks": dict(self.tasks - since.tasks)}


def _fd_kind(target: str) -> str:
    """``socket``, ``pipe``, ``anon_inode:[eventfd]``, or the file's path (files are few and worth naming)."""
    if target.startswith(("socket:", "pipe:")):
        return target.split(":", 1)[0]
    if target.startswith("anon_inode:"):
        return target
    return target


def _task_kind(task: asyncio.Task[Any]) -> str:
    coro = task.get_coro()
    return getattr(coro, "__qualname__", None) or type(coro).__name__


def footprint() -> Footprint:
    """This process's open descriptors and the running loop's tasks (the caller's own task left out)."""
    fds: Counter[str] = Counter()
    for entry in os.scandir("/proc/self/fd"):
        try:
            fds[_fd_kind(os.readlink(entry.path))] += 1
        except OSError:
            continue  # the descriptor scandir itself used, closed by now
    current = asyncio.current_task()
    tasks = Counter(_task_kind(t) for t in asyncio.all_tasks() if t is not current and not t.done())
    return Footprint(fds, tasks)


async def settled_footprint(baseline: Footprint, within: float = 20.0) -> Footprint:
    """The footprint once it is back to ``baseline`` or ``within`` seconds have passed, whichever is first.

    Closing is asynchronous (zmq sockets, aiohttp connectors and SSH channels finish closing a few loop turns after
    the call that closed them), and nothing announces the moment they are done, so this looks again every 50 ms.
    """
    deadline = time.monotonic() + within
    while True:
        now = footprint()
        if not any(now.growth(baseline).values()) or time.monotonic() > deadline:
            return now
        await asyncio.sleep(0.05)


def processes_of_server(server_id: str) -> list[str]:
    """Live processes whose environment says this server started them: ``"<pid> <command line>"`` each."""
    needle = f"{SERVER_ID_ENV}={server_id}".encode()
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = Path(entry.path, "environ").read_bytes().split(b"\0")
            if needle not in environ:
                continue
            if Path(entry.path, "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                continue
            cmdline = Path(entry.path, "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        found.append(f"{entry.name} {cmdline[:160]}")
    return found


async def docker_objects_of_server(server_id: str, *, swarm: bool = False) -> list[str]:
    """Containers (and with ``swarm`` services and secrets) carrying this server's label, by the docker CLI."""
    from kf_docker import docker_cli

    label = f"label={LABEL_SERVER}={server_id}"
    found = [f"container {c}" for c in (await docker_cli("ps", "-aq", "--filter", label)).split()]
    if swarm:
        found += [f"service {s}" for s in (await docker_cli("service", "ls", "-q", "--filter", label)).split()]
        found += [f"secret {s}" for s in (await docker_cli("secret", "ls", "-q", "--filter", label)).split()]
    return found


async def kubernetes_objects_of_server(core: Any, server_id: str) -> list[str]:
    """Pods, Secrets and namespaces carrying this server's label, through the caller's own CoreV1Api."""
    selector = f"{LABEL_SERVER}={server_id}"
    pods = (await core.list_pod_for_all_namespaces(label_selector=selector)).items
    secrets = (await core.list_secret_for_all_namespaces(label_selector=selector)).items
    namespaces = (await core.list_namespace(label_selector=selector)).items
    return ([f"pod {p.metadata.namespace}/{p.metadata.name}" for p in pods]
            + [f"secret {s.metadata.namespace}/{s.metadata.name}" for s in secrets]
            + [f"namespace {n.metadata.name}" for n in namespaces])


def ssh_pool_state() -> dict[str, int]:
    """The running loop's SSH pool: open connections, kernels holding a host, handshakes in flight, session
    channels in use (launches being watched and helper commands running), idle timers armed."""
    from kernelfleet.provisioners.ssh.connections import connection_pool

    pool = connection_pool()
    return {
        "connections": sum(1 for c in pool._connections.values() if not c.is_closed()),
        "holders": sum(pool._holders.values()),
        "connecting": len(pool._connecting),
        "channels": sum(pool.max_sessions - slots._value for slots in pool._sessions.values()),
    }


async def wait_for_nothing(probe: Callable[[], Any], within: float = 30.0) -> list[str]:
    """``probe()`` (sync or async, a list of leftovers) until it is empty or ``within`` seconds passed; its last
    answer. Engines remove in the background (a pod's container after the pod), so a moment is allowed."""
    deadline = time.monotonic() + within
    while True:
        found = probe()
        if asyncio.iscoroutine(found):
            found = await found
        if not found or time.monotonic() > deadline:
            return list(found)
        await asyncio.sleep(0.1)
