"""One SSH connection per host, shared by every kernel of this event loop, made with asyncssh in-process.

Gateway Provisioners opened a paramiko connection per launch and a pexpect ``ssh`` subprocess per
tunnelled port. Here a host has at most one connection per loop; launches, signals and port
forwards are channels on it. Kernels ``hold`` a host while they live; a connection nobody holds is
closed after ``idle_timeout`` seconds, so a server with no remote kernels keeps no sockets open.

Host keys are always checked unless the operator opted out explicitly (``known_hosts=None``): an
unknown host is refused, never added. Key files and known_hosts are read on a worker thread, and
``~/.ssh/config`` is not read at all (every setting comes from the provisioner's traits), so no
file is read on the event loop.

Besides keys and the agent, a login may use Kerberos (GSSAPI: the ticket in the default credential cache,
``KRB5CCNAME``; Hadoop sites log into their nodes that way) and a password. The password is never held in
``SSHSettings`` (which is a dictionary key, logged and shown in errors): the settings name where it is — an
environment variable or a file — and it is read on the worker thread at connect time, handed to asyncssh and to
nothing else, so it reaches no log line, exception or command line.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import asyncssh

from kernelfleet.provisioners.kerberos import ticket_note
from kernelfleet.provisioners.leases import PerLoop

log = logging.getLogger("kernelfleet.ssh")


class HostUnavailable(ConnectionError):
    """This host cannot be used now (down, refused, untrusted key, failed auth); the message says why."""


@dataclass(frozen=True)
class SSHSettings:
    """How to reach hosts: everything a connection depends on, so different settings never share one."""

    user: str
    port: int = 22
    key_files: tuple[str, ...] = ()
    agent_path: str | None = None
    known_hosts: str | None = "~/.ssh/known_hosts"  # None: host keys are not checked (explicit opt-out)
    connect_timeout: float = 10.0
    keepalive_interval: float = 30.0
    gss_auth: bool = False  # Kerberos (GSSAPI) user authentication with the default credential cache
    gss_host: str | None = None  # host name of the host principal (host/<name>); None: the name connected to
    gss_kex: bool = True  # also GSSAPI key exchange, when the server offers it (sshd GSSAPIKeyExchange)
    gss_delegate: bool = False  # forward the ticket to the host (for kernels that reach HDFS or Hive as the user)
    password_env: str | None = None  # the environment variable holding the password (not the password)
    password_file: str | None = None  # the file holding the password

    def methods(self, host: str) -> str:
        """The login methods these settings try, for an authentication error (never the password itself)."""
        if self.key_files:
            tried = [f"keys {list(self.key_files)}"]
        else:
            tried = ["~/.ssh/id_* and the agent" if self.agent_path else "~/.ssh/id_*"]
        if self.gss_auth:
            tried.append(f"Kerberos (GSSAPI) as host/{self.gss_host or host}")
        if self.password_file:
            tried.append(f"the password in {self.password_file}")
        elif self.password_env:
            tried.append(f"the password in ${self.password_env}")
        return ", ".join(tried)


@dataclass(frozen=True)
class _Secrets:
    """What a connect reads on the worker thread; ``repr`` never shows the password."""

    keys: Any
    known: Any
    password: str | None = field(default=None, repr=False)
    gss_note: str | None = None  # with GSSAPI on: whose ticket is used, or why none can be


ConnectionKey = tuple[str, SSHSettings]


def _read_password(settings: SSHSettings) -> str | None:
    if settings.password_file:
        path = os.path.expanduser(settings.password_file)
        try:
            with open(path, encoding="utf-8") as f:
                return f.read().rstrip("\r\n")
        except OSError as err:
            raise HostUnavailable(f"cannot read the SSH password file {path}: {err.strerror}") from None
    if settings.password_env:
        password = os.environ.get(settings.password_env)
        if not password:
            raise HostUnavailable(f"the SSH password variable {settings.password_env} is empty or unset")
        return password
    return None


def _gss_note(user: str) -> str:
    """Whose ticket a GSSAPI login presents, or why there is none; a missing gssapi module is an error."""
    try:
        return ticket_note(user)
    except ImportError:
        raise HostUnavailable("Kerberos (GSSAPI) SSH logins need the gssapi module: install "
                              "kernelfleet-provisioners[kerberos]") from None


def _load_files(settings: SSHSettings) -> _Secrets:
    """Worker-thread part of a connect: the key files, the known_hosts file, the password, the Kerberos ticket."""
    keys: Any = ()  # () lets asyncssh use the agent and ~/.ssh/id_* when no key file is configured
    if settings.key_files:
        paths = [os.path.expanduser(p) for p in settings.key_files]
        try:
            keys = asyncssh.load_keypairs(paths)
        except (OSError, asyncssh.KeyImportError, ValueError) as err:
            raise HostUnavailable(f"cannot load the SSH key files {paths}: {err}") from None
    known: Any = None
    if settings.known_hosts is not None:
        path = os.path.expanduser(settings.known_hosts)
        if not os.path.isfile(path):
            raise HostUnavailable(
                f"host key checking is on but the known_hosts file {path} does not exist; create it (for example "
                "with ssh-keyscan) or set known_hosts to its location"
            )
        try:
            known = asyncssh.read_known_hosts(path)
        except (OSError, ValueError) as err:
            raise HostUnavailable(f"cannot read the known_hosts file {path}: {err}") from None
    return _Secrets(keys, known, _read_password(settings), _gss_note(settings.user) if settings.gss_auth else None)


async def open_connection(host: str, settings: SSHSettings) -> asyncssh.SSHClientConnection:
    """A new connection; every failure becomes HostUnavailable with a reason a person can act on."""
    loaded = await asyncio.to_thread(_load_files, settings)
    where = f"{settings.user}@{host}:{settings.port}"
    options: dict[str, Any] = {"gss_host": None}  # None: asyncssh attempts no GSSAPI at all
    if settings.gss_auth:
        options = {"gss_host": settings.gss_host or host, "gss_auth": True, "gss_kex": settings.gss_kex,
                   "gss_delegate_creds": settings.gss_delegate}
    if loaded.password is not None:
        options["password"] = loaded.password  # also answers a keyboard-interactive "Password:" prompt (PAM)
    try:
        return await asyncssh.connect(
            host,
            settings.port,
            username=settings.user,
            client_keys=loaded.keys,
            agent_path=settings.agent_path,
            known_hosts=loaded.known,
            config=None,
            connect_timeout=settings.connect_timeout,
            keepalive_interval=settings.keepalive_interval,
            **options,
        )
    except asyncssh.HostKeyNotVerifiable as err:
        raise HostUnavailable(
            f"SSH host key of {host}:{settings.port} is not trusted ({err.reason}); it is not in "
            f"{settings.known_hosts}. Add it there after checking it (e.g. ssh-keyscan -p {settings.port} {host})"
        ) from None
    except asyncssh.PermissionDenied as err:
        kerberos = f"; Kerberos: {loaded.gss_note}" if loaded.gss_note else ""
        raise HostUnavailable(f"SSH authentication as {where} failed: {err.reason} (tried "
                              f"{settings.methods(host)}){kerberos}") from None
    except asyncssh.Error as err:
        raise HostUnavailable(f"SSH connection to {where} failed: {err.reason}") from None
    except TimeoutError:
        raise HostUnavailable(f"no SSH connection to {where} within {settings.connect_timeout:g}s") from None
    except OSError as err:
        reason = os.strerror(err.errno) if err.errno else str(err)  # asyncio's own text omits the reason
        raise HostUnavailable(f"cannot connect to {host}:{settings.port}: {reason}") from None


class SSHConnectionPool:
    """The connections of one event loop; see the module docstring."""

    def __init__(self, idle_timeout: float = 60.0, max_sessions: int = 8, down_for: float = 30.0) -> None:
        self.idle_timeout = idle_timeout
        self.max_sessions = max_sessions
        self.down_for = down_for
        self._failed: dict[ConnectionKey, float] = {}  # loop time of a host's last failed connect
        self._sessions: dict[ConnectionKey, asyncio.Semaphore] = {}
        self._connections: dict[ConnectionKey, asyncssh.SSHClientConnection] = {}
        self._connecting: dict[ConnectionKey, asyncio.Task[asyncssh.SSHClientConnection]] = {}
        self._holders: Counter[ConnectionKey] = Counter()
        self._idle: dict[ConnectionKey, asyncio.TimerHandle] = {}

    async def connect(self, host: str, settings: SSHSettings) -> asyncssh.SSHClientConnection:
        """The host's live connection, opened if needed; concurrent callers share one handshake."""
        key = (host, settings)
        conn = self._connections.get(key)
        if conn is not None and not conn.is_closed():
            self._touch(key)
            return conn
        self._connections.pop(key, None)
        task = self._connecting.get(key)
        if task is None:
            task = self._connecting[key] = asyncio.ensure_future(open_connection(host, settings))
            task.add_done_callback(lambda t: self._connected(key, t))
        conn = await asyncio.shield(task)
        self._touch(key)
        return conn

    def _connected(self, key: ConnectionKey, task: asyncio.Task[asyncssh.SSHClientConnection]) -> None:
        if self._connecting.get(key) is task:
            del self._connecting[key]
        if task.cancelled():
            return
        if task.exception() is not None:
            self._failed[key] = asyncio.get_running_loop().time()
        else:
            self._failed.pop(key, None)
            self._connections[key] = task.result()
            log.debug("SSH connection to %s@%s:%s opened", key[1].user, key[0], key[1].port)

    def recently_failed(self, host: str, settings: SSHSettings) -> bool:
        """True while a host's last connect failed less than ``down_for`` seconds ago: launches try it last, so a
        host that is down or hangs until the connect timeout does not hold up every launch it would come first in;
        after ``down_for`` it takes its turn again (and is tried anyway when every other host fails)."""
        failed = self._failed.get((host, settings))
        return failed is not None and asyncio.get_running_loop().time() - failed < self.down_for

    def sessions(self, host: str, settings: SSHSettings) -> asyncio.Semaphore:
        """Slots for session channels on a host's connection: sshd refuses more than MaxSessions (default
        10) at once, which must queue a burst of launches rather than fail them over to other hosts."""
        key = (host, settings)
        slots = self._sessions.get(key)
        if slots is None:
            slots = self._sessions[key] = asyncio.Semaphore(self.max_sessions)
        return slots

    def hold(self, host: str, settings: SSHSettings) -> None:
        """A kernel lives on this host: keep its connection open."""
        key = (host, settings)
        self._holders[key] += 1
        self._touch(key)

    def release(self, host: str, settings: SSHSettings) -> None:
        key = (host, settings)
        if self._holders[key] > 0:
            self._holders[key] -= 1
        self._touch(key)

    def _touch(self, key: ConnectionKey) -> None:
        """(Re)arm the idle timer of a connection nobody holds; disarm it for a held one."""
        timer = self._idle.pop(key, None)
        if timer is not None:
            timer.cancel()
        if self._holders[key] == 0 and key in self._connections:
            loop = asyncio.get_running_loop()
            self._idle[key] = loop.call_later(self.idle_timeout, self._close_idle, key)

    def _close_idle(self, key: ConnectionKey) -> None:
        self._idle.pop(key, None)
        conn = self._connections.pop(key, None)
        if conn is not None and self._holders[key] == 0:
            log.debug("SSH connection to %s idle for %ss; closed", key[0], self.idle_timeout)
            conn.close()

    def drop(self, host: str, settings: SSHSettings) -> None:
        """Forget (and close) a host's connection, e.g. after it stopped answering."""
        conn = self._connections.pop((host, settings), None)
        if conn is not None:
            conn.close()

    async def close(self) -> None:
        """Close every connection (server shutdown, end of a test)."""
        _pools.forget(self)
        for timer in self._idle.values():
            timer.cancel()
        self._idle.clear()
        for task in list(self._connecting.values()):
            task.cancel()
        connections = list(self._connections.values())
        self._connections.clear()
        self._holders.clear()
        for conn in connections:
            conn.close()
        for conn in connections:
            with contextlib.suppress(Exception):
                await conn.wait_closed()


_pools: PerLoop[SSHConnectionPool] = PerLoop()


def connection_pool() -> SSHConnectionPool:
    """The running loop's pool (connections cannot move between loops)."""
    return _pools.get_or_create(SSHConnectionPool)
