"""The response broker: the socket every launcher reports to, and the waiting room for launches.

Each connection is read on its own with a size cap and a whole-line deadline, so a client that
stalls, floods or sends garbage costs only its own connection; RSA unwrapping runs on worker threads
so many reports arriving together never block the event loop. Nothing runs while no one connects.

Whoever reaches the response port may be hostile, so the broker also:

* holds a bounded number of connections, derived from the descriptor limit (which it raises to the
  hard limit at start); at the cap, and when the process runs low on descriptors, the oldest
  connection that has not delivered a whole line is closed for the newcomer;
* accepts on its own (``add_reader`` + ``accept``): when the process is out of descriptors it
  evicts, or pauses accepting with a growing back-off, instead of spinning and logging each failure;
* spends no cryptography before the cheap checks: a v2 report must name a pending launch, and a
  v1 payload is opened only while v1 is accepted and a launch that accepts it is waiting;
* rate-limits every warning an attacker can cause (``LogLimiter``), with the count of those left out.

Reachability: unless the operator configured ``bind_ip`` / ``advertised_ip``, reports from launchers
on this host go to a loopback listener, and a listener on the host's public address opens only when
a launch from elsewhere (an SSH host, a container, a pod) asks for it (``response_address_for``).
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import re
import resource
import secrets
import socket
import threading
from collections import Counter, deque
from concurrent.futures import ThreadPoolExecutor
from typing import ClassVar

from jupyter_client.localinterfaces import public_ips
from traitlets import Bool, Float, Integer, List, TraitError, Unicode, default, validate
from traitlets.config import LoggingConfigurable

from kernelfleet.protocol import Report, ReportError, ServerKey, open_report, peek_kernel_id
from kernelfleet.protocol.constants import LAUNCH_TOKEN_BYTES, MAX_REPORT_BYTES
from kernelfleet.protocol.encoding import dumps_line
from kernelfleet.protocol.loglimit import LogLimiter
from kernelfleet.protocol.report import V1_REFUSED_MESSAGE, is_v1_payload
from kernelfleet.protocol.standby import Registration, open_registration, peek_standby_id
from kernelfleet.provisioners.envconfig import env_bool, env_list, env_number, env_value
from kernelfleet.provisioners.leases import PerLoop

ACCEPTED = dumps_line({"ok": True})
REJECTED = dumps_line({"ok": False, "error": "rejected"})
ACCEPT_BACKLOG = 4096  # launches that may be connecting at once; the kernel caps it at net.core.somaxconn
ACCEPT_BATCH = 64  # connections accepted per wake-up before other callbacks get their turn
LOOPBACK = "127.0.0.1"
# A quarter of the descriptor limit, within these bounds, may be held by report connections; the rest is the
# server's (kernels' ZMQ sockets, files). A launcher sends its line right after connecting, so even the lower
# bound leaves a legitimate report ample time before newer connections make it the oldest.
MIN_CONNECTION_CAP, MAX_CONNECTION_CAP = 16, 1024
OUT_OF_DESCRIPTORS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
ACCEPT_BACKOFF_FIRST, ACCEPT_BACKOFF_MAX = 0.05, 1.0
REMEMBERED_V1_REFUSALS = 32


def raise_descriptor_limit(log: logging.Logger) -> int:
    """Raise this process's RLIMIT_NOFILE soft limit to its hard limit; return the soft limit now in force.

    Called once per process by the first broker that starts: hostile connections must never run the
    server out of descriptors, and the common soft default (1,024) is far below what the host allows.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError) as err:  # e.g. an unlimited hard limit above fs.nr_open
            log.debug("Descriptor limit stays at %s (raising it to %s failed: %s)", soft, hard, err)
        else:
            log.info("Raised this process's descriptor limit from %s to %s", soft, hard)
            soft = hard
    return soft if soft != resource.RLIM_INFINITY else 1 << 20


def derived_connection_cap(descriptor_limit: int) -> int:
    return max(MIN_CONNECTION_CAP, min(descriptor_limit // 4, MAX_CONNECTION_CAP))


class PendingLaunch:
    """One launch waiting for its launcher's report; its token is void once a report is accepted."""

    def __init__(self, kernel_id: str, *, accepts_v1: bool = False, broker: ResponseBroker | None = None) -> None:
        self.kernel_id = kernel_id
        self.token = secrets.token_urlsafe(LAUNCH_TOKEN_BYTES)
        self.accepts_v1 = accepts_v1
        loop = asyncio.get_running_loop()
        self.created = loop.time()
        self.future: asyncio.Future[Report] = loop.create_future()
        self._broker = broker

    @property
    def done(self) -> bool:
        return self.future.done()

    async def wait(self, timeout: float | None = None) -> Report:
        return await asyncio.wait_for(asyncio.shield(self.future), timeout)

    def fail(self, error: BaseException) -> None:
        if not self.future.done():
            self.future.set_exception(error)
            self.future.exception()  # retrieved here so an abandoned launch logs no "never retrieved"

    def cancel(self) -> None:
        self.future.cancel()

    def timeout_hint(self) -> str:
        """What the broker saw that may explain a launch whose report never came; the provisioner appends it
        to its timeout error. Today: refused protocol-v1 payloads, which an old kernel image sends."""
        peers = self._broker.v1_refused_since(self.created) if self._broker is not None else []
        if not peers:
            return ""
        return (f". A protocol-v1 report arrived from {', '.join(peers)} while this launch waited and was refused "
                f"unread; if it was this kernel's, {V1_REFUSED_MESSAGE}")

    def __repr__(self) -> str:
        return f"PendingLaunch({self.kernel_id!r}, done={self.done})"


class PendingStandby:
    """A warm pool's standby launcher that was started and has not registered yet (protocol 2.1).

    The pool (``kernelfleet.provisioners.pool``) makes one per standby with ``ResponseBroker.expect_standby``; the
    future gets the verified registration and the connection's socket, which the broker hands over open."""

    def __init__(self, standby_id: str, pool: str) -> None:
        self.standby_id, self.pool = standby_id, pool
        self.token = secrets.token_urlsafe(LAUNCH_TOKEN_BYTES)
        self.future: asyncio.Future[tuple[Registration, socket.socket]] = asyncio.get_running_loop().create_future()

    def cancel(self) -> None:
        self.future.cancel()


class Listener:
    """One listening socket of the broker and the address launchers are told to use for it."""

    def __init__(self, sock: socket.socket, advertised_host: str) -> None:
        self.sock = sock
        self.advertised_host = advertised_host
        self.port: int = sock.getsockname()[1]
        self.backoff = ACCEPT_BACKOFF_FIRST
        self.resume: asyncio.TimerHandle | None = None

    @property
    def address(self) -> str:
        host = f"[{self.advertised_host}]" if ":" in self.advertised_host else self.advertised_host
        return f"{host}:{self.port}"

    @property
    def bound(self) -> str:
        host, port = self.sock.getsockname()[:2]
        return f"{host}:{port}"


def allowed_addresses(ips: list[str], prohibited: list[str]) -> list[str]:
    """Pure: the addresses of ``ips`` that no pattern of ``prohibited`` matches at its start, in order."""
    return [ip for ip in ips if not any(re.match(pattern, ip) for pattern in prohibited)]


class ResponseBroker(LoggingConfigurable):
    """Receives launch reports for every provisioner of this server process."""

    bind_ip = Unicode(
        help="Address the response socket binds (env KF_RESPONSE_BIND_IP; GP_RESPONSE_ADDR_ANY=true binds all). "
        "Default: the advertised address. Setting this or advertised_ip makes one listener serve every launch; "
        "with neither set, local launches report to 127.0.0.1 and the first public address is listened on only "
        "once a launch from another host, a container or a pod needs it.",
    ).tag(config=True)
    advertised_ip = Unicode(
        help="Address launchers are told to report to (env KF_RESPONSE_IP or GP_RESPONSE_IP; default: "
        "127.0.0.1 for launches on this host, this host's first public address for the others).",
    ).tag(config=True)
    port = Integer(
        help="Response port; 0 picks a free one (env KF_RESPONSE_PORT or GP_RESPONSE_PORT; default 8877)."
    ).tag(config=True)
    port_retries = Integer(
        help="How many further ports to try when the port is taken (env GP_RESPONSE_PORT_RETRIES; default 10)."
    ).tag(config=True)
    prohibited_local_ips = List(
        Unicode(), help="Regular expressions of this host's addresses never advertised to launchers on other hosts, "
        "e.g. a container bridge's (env KF_PROHIBITED_LOCAL_IPS or GP_PROHIBITED_LOCAL_IPS, comma-separated). "
        "Applies only when advertised_ip is not set; when every address matches, such launches fail with a "
        "message naming this setting.",
    ).tag(config=True)
    accept_v1_reports = Bool(
        help="Accept Gateway Provisioners' unauthenticated protocol-v1 reports from old kernel images "
        "(env KF_ACCEPT_V1_REPORTS; default off). Anyone who can reach the response port can forge those.",
    ).tag(config=True)
    read_timeout = Float(5.0, help="Seconds a reporting client may take to send its whole report.").tag(config=True)
    max_report_bytes = Integer(MAX_REPORT_BYTES, help="Largest report accepted, in bytes.").tag(config=True)
    max_connections = Integer(
        0, help="Most report connections held at once; at the cap the oldest one without a whole line is closed. "
        f"0: a quarter of the descriptor limit, at least {MIN_CONNECTION_CAP} and at most {MAX_CONNECTION_CAP}.",
    ).tag(config=True)

    _instances: ClassVar[PerLoop[ResponseBroker]] = PerLoop(close=lambda broker: broker.stop(),
                                                            abandon=lambda broker: broker._abandon())
    _server_key: ClassVar[ServerKey | None] = None
    _key_lock: ClassVar[threading.Lock] = threading.Lock()
    _pool: ClassVar[ThreadPoolExecutor | None] = None
    _descriptor_limit: ClassVar[int | None] = None

    @default("log")
    def _log_default(self) -> logging.Logger:
        return logging.getLogger("kernelfleet.broker")

    @default("advertised_ip")
    def _advertised_ip_default(self) -> str:
        return env_value(("KF_RESPONSE_IP", "GP_RESPONSE_IP")) or ""

    @default("bind_ip")
    def _bind_ip_default(self) -> str:
        configured = env_value(("KF_RESPONSE_BIND_IP",))
        if configured:
            return configured
        return "0.0.0.0" if env_bool(("GP_RESPONSE_ADDR_ANY",), False) else ""

    @default("port")
    def _port_default(self) -> int:
        return int(env_number(("KF_RESPONSE_PORT", "GP_RESPONSE_PORT"), 8877))

    @default("port_retries")
    def _port_retries_default(self) -> int:
        return int(env_number(("GP_RESPONSE_PORT_RETRIES",), 10))

    @default("prohibited_local_ips")
    def _prohibited_local_ips_default(self) -> list[str]:
        return env_list(("KF_PROHIBITED_LOCAL_IPS", "GP_PROHIBITED_LOCAL_IPS"), ())

    @validate("prohibited_local_ips")
    def _check_prohibited_local_ips(self, proposal: dict[str, object]) -> list[str]:
        patterns = list(proposal["value"])  # type: ignore[call-overload]
        for pattern in patterns:
            try:
                re.compile(pattern)
            except re.error as err:
                raise TraitError(f"prohibited_local_ips: {pattern!r} is not a regular expression: {err}") from None
        return patterns

    @default("accept_v1_reports")
    def _accept_v1_default(self) -> bool:
        return env_bool(("KF_ACCEPT_V1_REPORTS",), False)

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self._pending: dict[str, PendingLaunch] = {}
        self._standbys: dict[str, PendingStandby] = {}  # warm-pool standbys not registered yet, by standby id
        self._local: Listener | None = None  # launchers on this host report here
        self._network: Listener | None = None  # launchers elsewhere report here (the same one when configured)
        self._starting: asyncio.Future[None] | None = None
        self._network_opening: asyncio.Future[None] | None = None
        self._waiting: dict[ReportConnection, None] = {}  # connections without a whole line yet, oldest first
        self._judging: set[ReportConnection] = set()
        self._answers: set[asyncio.Task[None]] = set()
        self._connection_cap = MIN_CONNECTION_CAP
        self._descriptor_high_water = 0
        self._v1_refusals: deque[tuple[float, str]] = deque(maxlen=REMEMBERED_V1_REFUSALS)
        self.limited_log = LogLimiter(self.log)
        self.counters: Counter[str] = Counter()  # what happened to connections; read by tests and benchmarks

    # ----------------------------------------------------------------------------------- lifecycle
    @classmethod
    async def instance(cls, **config: object) -> ResponseBroker:
        """The started broker of the running event loop (one per server process and loop).

        Called by every launch (``RemoteProvisionerBase.pre_launch``) with ``config=`` the server's traitlets
        config, so ``c.ResponseBroker.*`` applies; the keyword arguments only matter to the call that creates
        the loop's broker.
        """
        broker = cls._instances.get_or_create(lambda: cls(**config))
        await broker.start()
        return broker

    async def start(self) -> None:
        """Start listening; concurrent callers (many kernels launching at once) share one start."""
        if self._local is not None:
            return
        if self._starting is None or (self._starting.done() and self._starting.exception() is not None):
            self._starting = asyncio.ensure_future(self._start())
        await asyncio.shield(self._starting)

    @classmethod
    def _unwrap_pool(cls) -> ThreadPoolExecutor:
        """RSA unwrapping threads, one pool per process (OpenSSL releases the GIL while it works)."""
        with cls._key_lock:
            if cls._pool is None:
                cls._pool = ThreadPoolExecutor(max_workers=os.cpu_count() or 2, thread_name_prefix="kf-report")
            return cls._pool

    @classmethod
    def _key_once(cls) -> ServerKey:
        with cls._key_lock:  # one key per process, even when several loops start brokers at once
            if cls._server_key is None:
                cls._server_key = ServerKey.generate()
            return cls._server_key

    @classmethod
    def _descriptor_limit_once(cls, log: logging.Logger) -> int:
        with cls._key_lock:
            if cls._descriptor_limit is None:
                cls._descriptor_limit = raise_descriptor_limit(log)
            return cls._descriptor_limit

    @property
    def configured_address(self) -> bool:
        """True when the operator chose the address: then one listener serves launches from everywhere."""
        return bool(self.bind_ip or self.advertised_ip)

    async def _start(self) -> None:
        await asyncio.to_thread(self._key_once)
        limit = self._descriptor_limit_once(self.log)
        self._connection_cap = self.max_connections or derived_connection_cap(limit)
        self._descriptor_high_water = limit - max(64, limit // 8)
        if self.configured_address:
            advertised = self.advertised_ip or await self._first_public_ip() or LOOPBACK
            listener = await self._listen(self.bind_ip or advertised, advertised, self._ports())
            self._local = self._network = listener
            self.log.info("Response broker listening on %s, advertised as %s", listener.bound, listener.address)
        else:
            self._local = await self._listen(LOOPBACK, LOOPBACK, self._ports())
            self.log.info("Response broker listening on %s for launches on this host", self._local.bound)
        self.log.debug("Response broker holds at most %s connections (descriptor limit %s)", self._connection_cap,
                       limit)

    async def _open_network_listener(self) -> None:
        assert self._local is not None
        host = await self._first_public_ip()
        if host is None:
            self.log.info("No public address on this host: launches from elsewhere are told %s", self._local.address)
            self._network = self._local
            return
        self._network = await self._listen(host, host, [self._local.port, *self._ports()])
        self.log.info("Response broker listening on %s for launches on other hosts", self._network.bound)

    async def _first_public_ip(self) -> str | None:
        """This host's first public address that no ``prohibited_local_ips`` pattern matches (as Gateway
        Provisioners did, ``re.match``); None when the host has none. Every address prohibited is the operator's
        contradiction, so it fails the launch that needs one, naming the setting, instead of advertising a
        prohibited address."""
        ips = await asyncio.to_thread(public_ips)  # the first call lists the interfaces (a subprocess)
        allowed = allowed_addresses(ips, self.prohibited_local_ips)
        if ips and not allowed:
            raise OSError(f"Every public address of this host ({', '.join(ips)}) matches prohibited_local_ips "
                          f"({', '.join(self.prohibited_local_ips)}): set ResponseBroker.advertised_ip "
                          "(KF_RESPONSE_IP) to the address launchers on other hosts should report to")
        return allowed[0] if allowed else None

    def _ports(self) -> list[int]:
        return [self.port] if self.port == 0 else [self.port + i for i in range(self.port_retries + 1)]

    async def _listen(self, bind_ip: str, advertised_host: str, ports: list[int]) -> Listener:
        last_error: OSError | None = None
        family = socket.AF_INET6 if ":" in bind_ip else socket.AF_INET
        for port in dict.fromkeys(ports):
            try:
                # The socket is ours, not only the event loop's, so it can be closed even after its loop is gone.
                sock = socket.create_server((bind_ip, port), family=family, backlog=ACCEPT_BACKLOG)
            except OSError as err:
                last_error = err
                self.log.debug("Response port %s:%s unavailable: %s", bind_ip, port, err)
                continue
            sock.setblocking(False)
            listener = Listener(sock, advertised_host)
            asyncio.get_running_loop().add_reader(sock, self._accept, listener)
            return listener
        raise OSError(f"No response port could be bound on {bind_ip} (tried {ports}): {last_error}")

    def _listeners(self) -> list[Listener]:
        return list({id(lst): lst for lst in (self._local, self._network) if lst is not None}.values())

    def _abandon(self) -> None:
        """Release the sockets of a broker whose event loop is already closed."""
        for listener in self._listeners():
            listener.sock.close()
        for connection in [*self._waiting, *self._judging]:
            connection.sock.close()
        self._local = self._network = None

    async def stop(self) -> None:
        loop = asyncio.get_running_loop()
        for listener in self._listeners():
            if listener.resume is not None:
                listener.resume.cancel()
            loop.remove_reader(listener.sock)
            listener.sock.close()
        self._local = self._network = None
        self._starting = self._network_opening = None
        for connection in [*self._waiting, *self._judging]:
            connection.close()
        await asyncio.gather(*self._answers, return_exceptions=True)
        for pending in [*self._pending.values(), *self._standbys.values()]:
            pending.cancel()
        self._pending.clear()
        self._standbys.clear()
        self._instances.forget(self)

    # ----------------------------------------------------------------------------------- launches
    @property
    def response_address(self) -> str:
        """Where launchers on this host report (with a configured address: every launcher)."""
        assert self._local is not None, "start() the broker first"
        return self._local.address

    async def response_address_for(self, *, local: bool) -> str:
        """The address to hand a launcher: ``local`` ones run on this host; the others get a listener that the
        network reaches, opened on first need (launchers on SSH hosts, in containers, in pods)."""
        await self.start()
        if local:
            return self.response_address
        if self._network is None:
            if self._network_opening is None or (
                self._network_opening.done() and self._network_opening.exception() is not None
            ):
                self._network_opening = asyncio.ensure_future(self._open_network_listener())
            await asyncio.shield(self._network_opening)
        assert self._network is not None
        return self._network.address

    @property
    def public_key(self) -> str:
        assert self._server_key is not None, "start() the broker first"
        return self._server_key.public_key_b64

    def expect(self, kernel_id: str) -> PendingLaunch:
        """Register a launch; a restart of the same kernel replaces (and cancels) its previous one."""
        previous = self._pending.pop(kernel_id, None)
        if previous is not None:
            previous.cancel()
        pending = self._pending[kernel_id] = PendingLaunch(kernel_id, accepts_v1=self.accept_v1_reports, broker=self)
        pending.future.add_done_callback(lambda _f: self._forget(pending))
        return pending

    def _forget(self, pending: PendingLaunch) -> None:
        if self._pending.get(pending.kernel_id) is pending:
            del self._pending[pending.kernel_id]

    def _token_for(self, kernel_id: str, *, v1: bool = False) -> str | None:
        pending = self._pending.get(kernel_id)
        if pending is None or pending.done or (v1 and not pending.accepts_v1):
            return None
        return pending.token

    def expect_standby(self, standby_id: str, pool: str) -> PendingStandby:
        """Register a warm pool's standby before it starts; its registration is accepted once (protocol 2.1)."""
        pending = self._standbys[standby_id] = PendingStandby(standby_id, pool)
        pending.future.add_done_callback(lambda _f: self._standbys.pop(standby_id, None))
        return pending

    def _standby_for(self, standby_id: str) -> tuple[str, str] | None:
        pending = self._standbys.get(standby_id)
        if pending is None or pending.future.done():
            return None
        return pending.pool, pending.token

    async def _register(self, connection: ReportConnection, line: bytes) -> bool:
        """Open a standby's registration; when it verifies, the connection stays open and goes to its pool."""
        server_key = self._server_key
        assert server_key is not None
        self.counters["opened"] += 1
        try:
            registration = await asyncio.get_running_loop().run_in_executor(
                self._unwrap_pool(), lambda: open_registration(line, server_key, expected=self._standby_for))
        except ReportError as err:
            self.counters["rejected"] += 1
            self.limited_log.warning(f"rejected standby {err.kernel_id}", "Standby %s: rejected a registration from "
                                     "%s: %s", err.kernel_id, connection.peer, err)
            return False
        pending = self._standbys.get(registration.standby_id)
        if pending is None or pending.future.done() or connection.sock.fileno() < 0:
            return False
        sock = connection.hand_over()
        try:
            sock.send(ACCEPTED)
        except OSError:
            sock.close()
            return False
        pending.future.set_result((registration, sock))
        self.counters["standbys"] += 1
        self.log.debug("Standby %s of pool %s registered from %s", registration.standby_id, registration.pool,
                       connection.peer)
        return True

    def v1_refused_since(self, since: float) -> list[str]:
        """Hosts whose protocol-v1 payloads were refused unread at or after loop time ``since``."""
        return list(dict.fromkeys(host for at, host in self._v1_refusals if at >= since))

    # ----------------------------------------------------------------------------------- connections
    @property
    def held_connections(self) -> int:
        return len(self._waiting) + len(self._judging)

    def _accept(self, listener: Listener) -> None:
        """The listening socket is readable: take what is queued, up to a batch."""
        for _ in range(ACCEPT_BATCH):
            try:
                sock, peer = listener.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as err:
                if err.errno in OUT_OF_DESCRIPTORS and self._evict_oldest("the process is out of descriptors"):
                    continue
                if err.errno in OUT_OF_DESCRIPTORS:
                    self._pause_accepting(listener, err)
                    return
                continue  # the peer gave up while queued (ECONNABORTED and kin): nothing to do
            listener.backoff = ACCEPT_BACKOFF_FIRST
            self._admit(sock, peer)

    def _admit(self, sock: socket.socket, peer: object) -> None:
        sock.setblocking(False)
        self.counters["connections"] += 1
        if sock.fileno() >= self._descriptor_high_water:  # the server runs low: hold no more than before
            self._evict_oldest("the process runs low on descriptors")
        while self.held_connections >= self._connection_cap and self._evict_oldest("the connection cap is reached"):
            pass
        if self.held_connections >= self._connection_cap:  # every held connection is being judged
            self.counters["refused"] += 1
            self.limited_log.warning("refused", "Closed a connection from %s at once: %s connections are being "
                                     "judged", peer, self.held_connections)
            sock.close()
            return
        self._waiting[ReportConnection(self, sock, peer)] = None

    def _evict_oldest(self, why: str) -> bool:
        """Close the oldest connection still without a whole line; False when there is none.

        Each candidate gets a last read first: a launcher's line that has arrived but not been read yet
        is judged, not thrown away.
        """
        while self._waiting:
            oldest = next(iter(self._waiting))
            oldest.read_available()
            if oldest in self._judging:
                continue
            if oldest in self._waiting:
                oldest.close()
                self.counters["evicted"] += 1
                self.limited_log.warning("evicted", "Closed a connection from %s that sent no whole line: %s",
                                         oldest.peer, why)
            return True  # evicted, or it left by itself: either way a descriptor is free
        return False

    def _pause_accepting(self, listener: Listener, err: OSError) -> None:
        """Out of descriptors with nothing to evict: stop accepting for a while (the backlog keeps the queue)."""
        loop = asyncio.get_running_loop()
        loop.remove_reader(listener.sock)
        self.counters["accept_paused"] += 1
        self.limited_log.warning("accept", "Response broker cannot accept on %s (%s); pausing %.2fs",
                                 listener.bound, err.strerror or err, listener.backoff)

        def resume() -> None:
            listener.resume = None
            if listener.sock.fileno() >= 0:
                loop.add_reader(listener.sock, self._accept, listener)

        listener.resume = loop.call_later(listener.backoff, resume)
        listener.backoff = min(listener.backoff * 2, ACCEPT_BACKOFF_MAX)

    def _judge(self, connection: ReportConnection, line: bytes) -> None:
        """A whole line arrived: the cheap checks answer at once; only a line that passes them gets a task
        and, on a worker thread, the private key."""
        self._waiting.pop(connection, None)
        v1 = is_v1_payload(line)
        try:
            worth_opening = self._v1_worth_opening(connection.peer) if v1 else self._v2_worth_opening(
                line, connection.peer)
        except Exception as err:  # a bug must cost this report only, never the broker
            self._unexpected(connection.peer, err)
            worth_opening = False
        if not worth_opening:
            connection.finish(REJECTED)
            return
        self._judging.add(connection)
        task = asyncio.ensure_future(self._answer(connection, line, v1))
        self._answers.add(task)
        task.add_done_callback(self._answers.discard)

    def _forget_connection(self, connection: ReportConnection) -> None:
        self._waiting.pop(connection, None)
        self._judging.discard(connection)

    async def _answer(self, connection: ReportConnection, line: bytes, v1: bool) -> None:
        """Open one report that passed the cheap checks and tell its sender; the verdict stands if it left."""
        answer = b""
        try:
            if not v1 and peek_standby_id(line) is not None:
                answer = b"" if await self._register(connection, line) else REJECTED
                return
            answer = ACCEPTED if await self._open(line, connection.peer, v1) else REJECTED
        except Exception as err:  # a bug must cost this report only, never the broker
            answer = REJECTED
            self._unexpected(connection.peer, err)
        finally:
            connection.finish(answer)

    def _unexpected(self, peer: object, err: Exception) -> None:
        self.limited_log.log(logging.ERROR, "unexpected", "Rejected a report from %s: unexpected %s: %s", peer,
                             type(err).__name__, err)

    def _v2_worth_opening(self, line: bytes, peer: object) -> bool:
        """No cryptography is spent on reports for kernels nobody is launching (nor standbys nobody started)."""
        standby = peek_standby_id(line)
        if standby is not None and self._standby_for(standby) is not None:
            return True
        claimed = peek_kernel_id(line)
        if claimed is not None and self._token_for(claimed) is not None:
            return True
        self.counters["ignored"] += 1
        self.limited_log.warning("ignored", "Ignored a report from %s for kernel %s: no launch is waiting for it",
                                 peer, claimed)
        return False

    async def _open(self, line: bytes, peer: object, v1: bool) -> bool:
        server_key = self._server_key
        assert server_key is not None
        self.counters["opened"] += 1  # the only path to the private key
        try:
            report = await asyncio.get_running_loop().run_in_executor(
                self._unwrap_pool(),
                lambda: open_report(
                    line, server_key, expected_token=lambda kid: self._token_for(kid, v1=v1), accept_v1=v1
                ),
            )
        except ReportError as err:
            self.counters["rejected"] += 1
            self.limited_log.warning(f"rejected {err.kernel_id}", "Kernel %s: rejected a launch report from %s: %s",
                                     err.kernel_id, peer, err)
            return False
        pending = self._pending.get(report.kernel_id)
        if pending is None or pending.done:  # raced with a replay or a cancelled launch
            self.limited_log.warning(f"late {report.kernel_id}", "Kernel %s: report from %s arrived after its launch "
                                     "ended", report.kernel_id, peer)
            return False
        pending.future.set_result(report)
        self.counters["accepted"] += 1
        self.log.debug("Kernel %s: launch report accepted from %s", report.kernel_id, peer)
        return True

    def _v1_worth_opening(self, peer: object) -> bool:
        """The cheap checks before a v1 payload may cost a private-key operation: v1 is on, and a launch that
        accepts v1 is waiting. While v1 is off, the refusal is remembered so the launch's timeout can say why."""
        if not self.accept_v1_reports:
            host = peer[0] if isinstance(peer, tuple) else str(peer)
            self._v1_refusals.append((asyncio.get_running_loop().time(), str(host)))
            self.counters["v1_refused"] += 1
            self.limited_log.warning("v1 refused", "Refused a protocol-v1 report from %s unread: %s", peer,
                                     V1_REFUSED_MESSAGE)
            return False
        if not any(p.accepts_v1 and not p.done for p in self._pending.values()):
            self.counters["ignored"] += 1
            self.limited_log.warning("v1 ignored", "Ignored a protocol-v1 report from %s: no launch that accepts "
                                     "v1 is waiting", peer)
            return False
        return True


class ReportConnection:
    """One launcher's connection: at most one line, within the size cap and the whole-line deadline.

    A bare non-blocking socket watched with ``add_reader`` rather than a transport or a stream: until a
    whole line has arrived a connection costs a small buffer, one timer and its descriptor, and the broker
    can read it synchronously before deciding to evict it. A launcher ends its report with a newline and
    waits for the answer; Gateway Provisioners' v1 launchers end theirs by half-closing the socket instead.
    """

    __slots__ = ("_buffer", "_deadline", "_reading", "broker", "peer", "sock")

    def __init__(self, broker: ResponseBroker, sock: socket.socket, peer: object) -> None:
        self.broker = broker
        self.sock = sock
        self.peer = peer
        self._buffer = bytearray()
        loop = asyncio.get_running_loop()
        self._deadline: asyncio.TimerHandle | None = loop.call_later(broker.read_timeout, self._too_slow)
        loop.add_reader(sock, self.read_available)
        self._reading = True

    def read_available(self) -> None:
        """Read what has arrived; judge the line once it is whole, drop what breaks the rules."""
        limit = self.broker.max_report_bytes
        while self._reading:
            try:
                data = self.sock.recv(65536)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                self.close()
                return
            if not data:  # end of stream: a v1 launcher's way to end its report, or a port probe
                if self._buffer:
                    self._judge(bytes(self._buffer))
                else:
                    self.close()
                return
            searched = len(self._buffer)
            self._buffer += data
            end = self._buffer.find(b"\n", searched)
            if 0 <= end < limit:
                self._judge(bytes(self._buffer[: end + 1]))  # anything after the line is never read
                return
            if len(self._buffer) > limit or end >= 0:
                self.broker.counters["oversized"] += 1
                self.broker.limited_log.warning("oversized", "Dropped a report from %s: larger than %s bytes",
                                                self.peer, limit)
                self.close()
                return

    def _stop_reading(self) -> None:
        if self._reading:
            self._reading = False
            asyncio.get_running_loop().remove_reader(self.sock)
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        self._buffer = bytearray()

    def _judge(self, line: bytes) -> None:
        self._stop_reading()
        self.broker._judge(self, line)

    def _too_slow(self) -> None:
        self._deadline = None
        self.broker.counters["too_slow"] += 1
        self.broker.limited_log.warning("too slow", "Dropped a connection from %s: no whole report within %ss",
                                        self.peer, self.broker.read_timeout)
        self.close()

    def finish(self, answer: bytes) -> None:
        """Send the verdict (when there is one) and close; 30 bytes always fit an idle socket's send buffer."""
        if answer and self.sock.fileno() >= 0:
            try:
                self.sock.send(answer)
            except OSError:
                pass  # the sender is gone; the verdict stands
        self.close()

    def close(self) -> None:
        if self.sock.fileno() >= 0:
            self._stop_reading()
            self.sock.close()
        self.broker._forget_connection(self)

    def hand_over(self) -> socket.socket:
        """A registered standby's connection leaves the broker open (its pool keeps it); ``finish`` then does
        nothing."""
        self._stop_reading()
        sock = socket.socket(fileno=self.sock.detach())
        self.broker._forget_connection(self)
        return sock
