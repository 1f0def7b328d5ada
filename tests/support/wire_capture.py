"""What an eavesdropper on the loopback interface sees of a kernel's traffic (shared by the suites).

Every engine the tests drive (the embedded default, the sshd "hosts" on 127.0.0.2-4, Docker and
kubelite with host networking) puts the server<->kernel ZMQ traffic on ``lo``. A raw AF_PACKET socket
(root, which the test machine is) bound to ``lo`` reads every frame; the asyncio loop wakes on it, so
nothing polls. TCP payloads are reassembled per direction by sequence number (``lo`` shows each
segment twice, once outgoing and once incoming; the sequence number keys them apart).
"""

from __future__ import annotations

import asyncio
import socket
import struct
import uuid
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from jupyter_client import AsyncKernelManager
from kf_testing import execute

ETH_P_ALL = 0x0003
ETH_HEADER = 14
KERNEL_PORTS = ("shell_port", "iopub_port", "stdin_port", "control_port", "hb_port")
# The ZMTP 3 greeting names the security mechanism in a 20-byte NUL-padded field, in clear text.
MECHANISMS = (b"NULL", b"CURVE", b"PLAIN")

Flow = tuple[str, int, str, int]


@dataclass
class LoopbackCapture:
    sock: socket.socket
    segments: dict[Flow, dict[int, bytes]] = field(default_factory=dict)

    def read_ready(self) -> None:
        while True:
            try:
                frame = self.sock.recv(65600)
            except BlockingIOError:
                return
            self._record(frame)

    def _record(self, frame: bytes) -> None:
        ethertype = struct.unpack_from("!H", frame, 12)[0]
        if ethertype == 0x0800:
            ihl = (frame[ETH_HEADER] & 0x0F) * 4
            if frame[ETH_HEADER + 9] != socket.IPPROTO_TCP:
                return
            total = struct.unpack_from("!H", frame, ETH_HEADER + 2)[0]
            src = socket.inet_ntop(socket.AF_INET, frame[ETH_HEADER + 12 : ETH_HEADER + 16])
            dst = socket.inet_ntop(socket.AF_INET, frame[ETH_HEADER + 16 : ETH_HEADER + 20])
            tcp, end = ETH_HEADER + ihl, ETH_HEADER + total
        elif ethertype == 0x86DD:
            if frame[ETH_HEADER + 6] != socket.IPPROTO_TCP:
                return
            length = struct.unpack_from("!H", frame, ETH_HEADER + 4)[0]
            src = socket.inet_ntop(socket.AF_INET6, frame[ETH_HEADER + 8 : ETH_HEADER + 24])
            dst = socket.inet_ntop(socket.AF_INET6, frame[ETH_HEADER + 24 : ETH_HEADER + 40])
            tcp, end = ETH_HEADER + 40, ETH_HEADER + 40 + length
        else:
            return
        sport, dport, seq = struct.unpack_from("!HHI", frame, tcp)
        payload = frame[tcp + (frame[tcp + 12] >> 4) * 4 : end]
        if payload:
            self.segments.setdefault((src, sport, dst, dport), {})[seq] = payload

    def traffic(self, ports: Iterable[int]) -> bytes:
        """Everything sent to or from ``ports``, each direction in order, directions separated by NULs."""
        wanted = set(ports)
        streams = [
            b"".join(payload for _, payload in sorted(segments.items()))
            for (_, sport, _, dport), segments in self.segments.items()
            if sport in wanted or dport in wanted
        ]
        return b"\0\0".join(streams)


@asynccontextmanager
async def loopback_capture() -> AsyncIterator[LoopbackCapture]:
    """Capture on ``lo`` for the duration of the block (needs CAP_NET_RAW: the tests run as root)."""
    try:
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    except PermissionError as err:
        raise AssertionError(f"capturing on lo needs root (CAP_NET_RAW): {err}") from None
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024 * 1024)
    sock.bind(("lo", 0))
    sock.setblocking(False)
    capture = LoopbackCapture(sock)
    loop = asyncio.get_running_loop()
    loop.add_reader(sock.fileno(), capture.read_ready)
    try:
        yield capture
    finally:
        loop.remove_reader(sock.fileno())
        capture.read_ready()
        sock.close()


@dataclass
class WireResult:
    """What a round trip of one cell looked like on the wire."""

    code_marker: bytes
    output_marker: bytes
    stdout: str
    traffic: bytes
    connection_info: dict[str, Any]

    @property
    def code_readable(self) -> bool:
        return self.code_marker in self.traffic

    @property
    def output_readable(self) -> bool:
        return self.output_marker in self.traffic

    def mechanisms(self) -> set[str]:
        """ZMTP security mechanisms announced in the captured greetings."""
        return {m.decode() for m in MECHANISMS if m + b"\0" * (20 - len(m)) in self.traffic}


async def run_cell_on_the_wire(km: AsyncKernelManager, **start_kwargs: Any) -> WireResult:
    """Start the kernel under capture, run one cell whose code and output carry unique markers, shut down."""
    token = uuid.uuid4().hex
    code = f"print('code-{token}'.replace('code', 'output'))"
    async with loopback_capture() as capture:
        await km.start_kernel(**start_kwargs)
        try:
            info = dict(km.get_connection_info())
            client = km.client()
            client.start_channels()
            try:
                await client.wait_for_ready(timeout=60)
                stdout = (await execute(client, code, timeout=60))["stdout"]
            finally:
                client.stop_channels()
        finally:
            await km.shutdown_kernel(now=True)
        await asyncio.sleep(0)  # let the reader drain what the shutdown put on the wire
    ports = [int(info[name]) for name in KERNEL_PORTS]
    return WireResult(f"code-{token}".encode(), f"output-{token}".encode(), stdout, capture.traffic(ports), info)


def assert_wire(result: WireResult, *, encrypted: bool) -> None:
    """The cell ran; its code and output are on the wire in clear text exactly when not encrypted."""
    assert result.stdout.strip() == result.output_marker.decode(), result.stdout
    assert len(result.traffic) > 1000, f"only {len(result.traffic)} bytes captured on the kernel's ports"
    if encrypted:
        assert result.mechanisms() == {"CURVE"}, f"ZMTP mechanisms on the wire: {result.mechanisms()}"
        assert "curve_publickey" in result.connection_info
        assert not result.code_readable, "the cell's code crossed the wire in clear text"
        assert not result.output_readable, "the cell's output crossed the wire in clear text"
    else:
        assert result.mechanisms() == {"NULL"}, f"ZMTP mechanisms on the wire: {result.mechanisms()}"
        assert result.code_readable and result.output_readable, "plaintext traffic should show code and output"

