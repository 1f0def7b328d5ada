"""The response broker: the one socket every launcher reports to, and the waiting room for launches.

Each connection is read on its own with a size cap and a read deadline, so a client that stalls,
floods or sends garbage costs only its own connection; RSA unwrapping runs on worker threads so
many reports arriving together never block the event loop. Nothing runs while no one connects.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import ClassVar, cast

from jupyter_client.localinterfaces import public_ips
from traitlets import Bool, Float, Integer, Unicode, default
from traitlets.config import LoggingConfigurable

from kernelfleet.protocol import LegacyReportError, Report, ReportError, ServerKey, open_report, peek_kernel_id
from kernelfleet.protocol.constants import LAUNCH_TOKEN_BYTES, MAX_REPORT_BYTES
from kernelfleet.protocol.encoding import dumps_line
from kernelfleet.provisioners.envconfig import env_bool, env_number, env_value

ACCEPTED = dumps_line({"ok": True})
REJECTED = dumps_line({"ok": False, "error": "rejected"})
ACCEPT_BACKLOG = 4096  # launches that may be connecting at once; the kernel caps it at net.core.somaxconn


class PendingLaunch:
    """One launch waiting for its launcher's report; its token is void once a report is accepted."""

    def __init__(self, kernel_id: str) -> None:
        self.kernel_id = kernel_id
        self.token = secrets.token_urlsafe(LAUNCH_TOKEN_BYTES)
        self.future: asyncio.Future[Report] = asyncio.get_running_loop().create_future()

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

    def __repr__(self) -> str:
        return f"PendingLaunch({self.kernel_id!r}, done={self.done})"


class ResponseBroker(LoggingConfigurable):
    """Receives launch reports for every provisioner of this server process."""

    bind_ip = Unicode(
        help="Address the response socket binds (env KF_RESPONSE_BIND_IP; GP_RESPONSE_ADDR_ANY=true binds all). "
        "Defaults to the advertised address.",
    ).tag(config=True)
    advertised_ip = Unicode(
        help="Address launchers are told to report to (env KF_RESPONSE_IP or GP_RESPONSE_IP; default: "
        "this host's first public address, else 127.0.0.1).",
    ).tag(config=True)
    port = Integer(help="Response port; 0 picks a free one (env KF_RESPONSE_PORT or GP_RESPONSE_PORT).").tag(
        config=True
    )
    port_retries = Integer(
        help="How many further ports to try when the port is taken (env GP_RESPONSE_PORT_RETRIES)."
    ).tag(config=True)
    accept_v1_reports = Bool(
        help="Accept Gateway Provisioners' unauthenticated protocol-v1 reports from old kernel images "
        "(env KF_ACCEPT_V1_REPORTS). Anyone who can reach the response port can forge those.",
    ).tag(config=True)
    read_timeout = Float(5.0, help="Seconds a reporting client may take to send its report.").tag(config=True)
    max_report_bytes = Integer(MAX_REPORT_BYTES, help="Largest report accepted, in bytes.").tag(config=True)

    _instances: ClassVar[dict[asyncio.AbstractEventLoop, ResponseBroker]] = {}
    _server_key: ClassVar[ServerKey | None] = None
    _key_lock: ClassVar[threading.Lock] = threading.Lock()
    _pool: ClassVar[ThreadPoolExecutor | None] = None

    @default("log")
    def _log_default(self) -> logging.Logger:
        return logging.getLogger("kernelfleet.broker")

    @default("advertised_ip")
    def _advertised_ip_default(self) -> str:
        configured = env_value(("KF_RESPONSE_IP", "GP_RESPONSE_IP"))
        if configured:
            return configured
        ips = public_ips()
        return ips[0] if ips else "127.0.0.1"

    @default("bind_ip")
    def _bind_ip_default(self) -> str:
        configured = env_value(("KF_RESPONSE_BIND_IP",))
        if configured:
            return configured
        return "0.0.0.0" if env_bool(("GP_RESPONSE_ADDR_ANY",), False) else self.advertised_ip

    @default("port")
    def _port_default(self) -> int:
        return int(env_number(("KF_RESPONSE_PORT", "GP_RESPONSE_PORT"), 8877))

    @default("port_retries")
    def _port_retries_default(self) -> int:
        return int(env_number(("GP_RESPONSE_PORT_RETRIES",), 10))

    @default("accept_v1_reports")
    def _accept_v1_default(self) -> bool:
        return env_bool(("KF_ACCEPT_V1_REPORTS",), False)

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self._pending: dict[str, PendingLaunch] = {}
        self._server: asyncio.Server | None = None
        self._connections: set[ReportConnection] = set()
        self._port_bound = 0
        self._starting: asyncio.Future[None] | None = None
        self._socket: socket.socket | None = None

    # ----------------------------------------------------------------------------------- lifecycle
    @classmethod
    async def instance(cls, **config: object) -> ResponseBroker:
        """The started broker of the running event loop (one per server process and loop)."""
        loop = asyncio.get_running_loop()
        for stale in [lp for lp in cls._instances if lp.is_closed()]:
            cls._instances.pop(stale)._abandon()
        broker = cls._instances.get(loop)
        if broker is None:
            broker = cls._instances[loop] = cls(**config)
        await broker.start()
        return broker

    async def start(self) -> None:
        """Start listening; concurrent callers (many kernels launching at once) share one start."""
        if self._server is not None:
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

    async def _start(self) -> None:
        await asyncio.to_thread(self._key_once)
        self._server = await self._listen()
        self._port_bound = self._server.sockets[0].getsockname()[1]
        self.log.info("Response broker listening on %s:%s, advertised as %s", self.bind_ip, self._port_bound,
                      self.response_address)

    async def _listen(self) -> asyncio.Server:
        last_error: OSError | None = None
        ports = [self.port] if self.port == 0 else [self.port + i for i in range(self.port_retries + 1)]
        family = socket.AF_INET6 if ":" in self.bind_ip else socket.AF_INET
        for port in ports:
            try:
                # The socket is ours, not only the event loop's, so it can be closed even after its loop is gone.
                self._socket = socket.create_server((self.bind_ip, port), family=family, backlog=ACCEPT_BACKLOG)
            except OSError as err:
                last_error = err
                self.log.debug("Response port %s:%s unavailable: %s", self.bind_ip, port, err)
                continue
            self._socket.setblocking(False)
            # The loop listen()s again on a socket it is given, with its own default backlog of 100 unless told:
            # a burst of launches beyond that overflows the queue and waits a 1 s SYN retransmit.
            return await asyncio.get_running_loop().create_server(
                self._connection, sock=self._socket, backlog=ACCEPT_BACKLOG
            )
        raise OSError(f"No response port could be bound on {self.bind_ip} (tried {ports}): {last_error}")

    def _abandon(self) -> None:
        """Release the listening socket of a broker whose event loop is already closed."""
        if self._socket is not None:
            self._socket.close()
        self._server = self._socket = None

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            serving = list(self._connections)
            for connection in serving:
                connection.abort()
            await asyncio.gather(*(c.answering for c in serving if c.answering is not None), return_exceptions=True)
            await self._server.wait_closed()
            self._server = None
        self._starting = None
        for pending in self._pending.values():
            pending.cancel()
        self._pending.clear()
        self._instances.pop(asyncio.get_running_loop(), None)

    # ----------------------------------------------------------------------------------- launches
    @property
    def response_address(self) -> str:
        host = self.advertised_ip
        host = f"[{host}]" if ":" in host else host
        return f"{host}:{self._port_bound}"

    @property
    def public_key(self) -> str:
        assert self._server_key is not None, "start() the broker first"
        return self._server_key.public_key_b64

    def expect(self, kernel_id: str) -> PendingLaunch:
        """Register a launch; a restart of the same kernel replaces (and cancels) its previous one."""
        previous = self._pending.pop(kernel_id, None)
        if previous is not None:
            previous.cancel()
        pending = self._pending[kernel_id] = PendingLaunch(kernel_id)
        pending.future.add_done_callback(lambda _f: self._forget(pending))
        return pending

    def _forget(self, pending: PendingLaunch) -> None:
        if self._pending.get(pending.kernel_id) is pending:
            del self._pending[pending.kernel_id]

    def _token_for(self, kernel_id: str) -> str | None:
        pending = self._pending.get(kernel_id)
        return pending.token if pending is not None and not pending.done else None

    # ----------------------------------------------------------------------------------- connections
    def _connection(self) -> ReportConnection:
        return ReportConnection(self)

    async def _answer(self, connection: ReportConnection, line: bytes) -> None:
        """Judge one report line and tell its sender; the sender may already be gone, the verdict stands."""
        answer = b""
        try:
            answer = ACCEPTED if await self._receive(line, connection.peer) else REJECTED
        finally:
            connection.finish(answer)

    async def _receive(self, line: bytes, peer: object) -> bool:
        claimed = peek_kernel_id(line)
        if line.lstrip().startswith(b"{") and (claimed is None or self._token_for(claimed) is None):
            # No cryptography is spent on reports for kernels nobody is launching.
            self.log.warning("Ignored a report from %s for kernel %s: no launch is waiting for it", peer, claimed)
            return False
        assert self._server_key is not None
        loop = asyncio.get_running_loop()
        try:
            report = await loop.run_in_executor(
                self._unwrap_pool(),
                lambda: open_report(
                    line, self._server_key, expected_token=self._token_for, accept_v1=self.accept_v1_reports
                ),
            )
        except LegacyReportError as err:
            pending = self._pending.get(err.kernel_id or "")
            self.log.error("Kernel %s: %s", err.kernel_id, err)
            if pending is not None:
                pending.fail(RuntimeError(f"Kernel {err.kernel_id}: {err}"))
            return False
        except ReportError as err:
            self.log.warning("Kernel %s: rejected a launch report from %s: %s", err.kernel_id, peer, err)
            return False
        pending = self._pending.get(report.kernel_id)
        if pending is None or pending.done:  # raced with a replay or a cancelled launch
            self.log.warning("Kernel %s: report from %s arrived after its launch ended", report.kernel_id, peer)
            return False
        pending.future.set_result(report)
        self.log.debug("Kernel %s: launch report accepted from %s", report.kernel_id, peer)
        return True


class ReportConnection(asyncio.Protocol):
    """One launcher's connection: at most one line, within the size cap and the read deadline.

    A plain protocol rather than a stream and a task per connection: hundreds of launchers report at
    once, and until a whole line has arrived a connection costs only its buffer and one timer.
    A launcher ends its report with a newline and waits for the answer; Gateway Provisioners' v1
    launchers end theirs by half-closing the socket instead.
    """

    def __init__(self, broker: ResponseBroker) -> None:
        self.broker = broker
        self.peer: object = None
        self.answering: asyncio.Task[None] | None = None
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's transports are not its subclasses
        self.peer = transport.get_extra_info("peername")
        self._deadline = asyncio.get_running_loop().call_later(self.broker.read_timeout, self._too_slow)
        self.broker._connections.add(self)

    def data_received(self, data: bytes) -> None:
        if self.answering is not None:
            return  # one report per connection; anything after its line is not read
        self._buffer += data
        end = self._buffer.find(b"\n")
        if end < 0 and len(self._buffer) <= self.broker.max_report_bytes:
            return
        if end < 0 or end + 1 > self.broker.max_report_bytes:
            self.broker.log.warning(
                "Dropped a report from %s: larger than %s bytes", self.peer, self.broker.max_report_bytes
            )
            self.abort()
            return
        self._judge(bytes(self._buffer[: end + 1]))

    def eof_received(self) -> bool:
        if self.answering is not None:
            return True  # keep the write half open for the answer
        if not self._buffer:  # connected and left without a word (a port probe): nothing to judge
            return False
        self._judge(bytes(self._buffer))
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        self.broker._connections.discard(self)
        self._buffer.clear()

    def _judge(self, line: bytes) -> None:
        assert self._transport is not None and self._deadline is not None
        self._deadline.cancel()
        self._transport.pause_reading()
        self.answering = asyncio.ensure_future(self.broker._answer(self, line))

    def _too_slow(self) -> None:
        self.broker.log.warning(
            "Dropped a connection from %s: no report within %ss", self.peer, self.broker.read_timeout
        )
        self.abort()

    def finish(self, answer: bytes) -> None:
        """Send the verdict (when there is one) and close."""
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        if answer:
            transport.write(answer)
        transport.close()

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()

