"""The response broker under load and abuse: every legitimate launch still gets its report."""

from __future__ import annotations

import asyncio
import logging
import secrets
import shutil
import time
from pathlib import Path

import pytest
from report_clients import REJECTED, connection_info, gp_v1_payload, sealed_report, v1_info
from report_clients import send as send_to

from kernelfleet.protocol import seal_report
from kernelfleet.provisioners.broker import PendingLaunch, ResponseBroker


@pytest.fixture
async def broker() -> ResponseBroker:
    b = ResponseBroker(bind_ip="127.0.0.1", advertised_ip="127.0.0.1", port=0, read_timeout=1.0)
    await b.start()
    yield b
    await b.stop()


def sealed(broker: ResponseBroker, pending: PendingLaunch, token: str | None = None) -> bytes:
    return sealed_report(broker.public_key, pending.kernel_id, token or pending.token)


async def send(broker: ResponseBroker, payload: bytes, *, close_after: bool = False) -> bytes:
    return await send_to(broker.response_address, payload, close_after=close_after)


async def test_500_simultaneous_reports_all_arrive(broker: ResponseBroker) -> None:
    launches = [broker.expect(f"kernel-{i}") for i in range(500)]
    lines = [sealed(broker, p) for p in launches]
    replies = await asyncio.gather(*(send(broker, line) for line in lines))
    reports = await asyncio.gather(*(p.wait(30) for p in launches))
    assert all(r == b'{"ok":true}\n' for r in replies)
    assert [r.kernel_id for r in reports] == [p.kernel_id for p in launches]


async def test_listener_backlog_holds_a_burst_of_launches(broker: ResponseBroker) -> None:
    """The event loop listen()s again on the socket it is handed, with a backlog of 100 unless told: 500
    launchers connecting at once then overflowed the queue and waited a 1 s SYN retransmit."""
    ss = shutil.which("ss")
    assert ss, "ss (Debian iproute2) is needed to read the listening socket's backlog; tools/setup-machine installs it"
    port = broker.response_address.rsplit(":", 1)[1]
    proc = await asyncio.create_subprocess_exec(ss, "-Hltn", f"sport = :{port}", stdout=asyncio.subprocess.PIPE)
    out = (await proc.communicate())[0].decode()
    listening = [line.split() for line in out.splitlines() if line.startswith("LISTEN")]
    assert len(listening) == 1, out
    backlog = int(listening[0][2])  # a listening socket's Send-Q column is its accept backlog
    somaxconn = int(await asyncio.to_thread(Path("/proc/sys/net/core/somaxconn").read_text))
    assert backlog >= min(1024, somaxconn), f"accept backlog {backlog}"


async def test_stalled_client_does_not_delay_other_launches(broker: ResponseBroker) -> None:
    host, port = broker.response_address.rsplit(":", 1)
    stalled = [await asyncio.open_connection(host, int(port)) for _ in range(20)]
    for _, writer in stalled:
        writer.write(b'{"protocol":"kernelfleet"')  # half a report, then nothing
    pending = broker.expect("kernel-after-stall")
    started = time.perf_counter()
    assert await send(broker, sealed(broker, pending)) == b'{"ok":true}\n'
    await pending.wait(5)
    assert time.perf_counter() - started < 0.5
    # ... and the broker hangs up on the stalled clients after its read deadline
    for reader, writer in stalled:
        assert await asyncio.wait_for(reader.read(), 3) == b""
        writer.close()


@pytest.mark.parametrize(
    "garbage",
    [b"\x00\xff" * 100 + b"\n", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", b"{}\n", b"[1,2,3]\n", b"\n",
     b'{"protocol":"kernelfleet","version":2,"kernel_id":"kernel-g","key":"!!","iv":"","ciphertext":"","mac":""}\n'],
)
async def test_garbage_is_rejected_and_the_launch_still_succeeds(broker: ResponseBroker, garbage: bytes) -> None:
    pending = broker.expect("kernel-g")
    reply = await send(broker, garbage, close_after=True)
    assert reply in (b'{"ok":false,"error":"rejected"}\n', b"")
    assert not pending.done
    assert await send(broker, sealed(broker, pending)) == b'{"ok":true}\n'
    assert (await pending.wait(5)).kernel_id == "kernel-g"


async def test_oversized_report_is_dropped(broker: ResponseBroker) -> None:
    pending = broker.expect("kernel-big")
    try:
        reply = await send(broker, b"{" + b"a" * (2 * 1024 * 1024) + b"\n")
    except ConnectionResetError:  # the broker hung up with the rest unread: what a real server does
        reply = b""
    assert reply == b""
    assert await send(broker, sealed(broker, pending)) == b'{"ok":true}\n'
    await pending.wait(5)


async def test_forged_report_with_wrong_token_is_refused(broker: ResponseBroker, caplog) -> None:
    pending = broker.expect("kernel-f")
    forged = sealed(broker, pending, token=secrets.token_urlsafe(32))
    assert await send(broker, forged) == b'{"ok":false,"error":"rejected"}\n'
    assert not pending.done
    assert "launch token does not match" in caplog.text
    assert await send(broker, sealed(broker, pending)) == b'{"ok":true}\n'
    await pending.wait(5)


async def test_replayed_report_is_refused(broker: ResponseBroker) -> None:
    pending = broker.expect("kernel-r")
    line = sealed(broker, pending)
    assert await send(broker, line) == b'{"ok":true}\n'
    first = await pending.wait(5)
    assert await send(broker, line) == b'{"ok":false,"error":"rejected"}\n'
    assert first.kernel_id == "kernel-r"


async def test_report_for_unknown_kernel_is_refused(broker: ResponseBroker) -> None:
    pending = broker.expect("kernel-known")
    other = PendingLaunch("kernel-unknown")
    assert await send(broker, sealed(broker, other)) == b'{"ok":false,"error":"rejected"}\n'
    assert not pending.done


async def test_v1_report_is_refused_unread_and_the_timeout_names_the_switch(broker: ResponseBroker) -> None:
    """An old (Gateway Provisioners) image's report: refused without a private-key operation, the launch stays
    pending (a v1 payload proves nothing), and the launch's timeout error tells the operator which switch
    accepts such images."""
    pending = broker.expect("kernel-v1")
    reply = await send(broker, gp_v1_payload(broker.public_key, v1_info("kernel-v1")), close_after=True)
    assert reply == REJECTED
    assert not pending.done
    assert broker.counters["opened"] == 0
    hint = pending.timeout_hint()
    assert "127.0.0.1" in hint
    assert "c.ResponseBroker.accept_v1_reports = True (environment: KF_ACCEPT_V1_REPORTS=true)" in hint
    assert broker.expect("kernel-later").timeout_hint() == "", "a launch begun after the v1 payload gets no hint"


async def test_v1_report_accepted_when_switched_on(broker: ResponseBroker) -> None:
    broker.accept_v1_reports = True
    pending = broker.expect("kernel-v1ok")
    await send(broker, gp_v1_payload(broker.public_key, v1_info("kernel-v1ok")), close_after=True)
    report = await pending.wait(5)
    assert report.version == 1 and report.comm_key is None and report.comm_port == 50006


async def test_no_secret_reaches_the_log(broker: ResponseBroker, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    pending = broker.expect("kernel-s")
    info = connection_info(pending.kernel_id, pending.token)
    line = seal_report(info, kernel_id=pending.kernel_id, public_key_b64=broker.public_key)
    await send(broker, sealed(broker, pending, token="wrong"))
    await send(broker, line)
    await pending.wait(5)
    for secret in (info["key"], info["comm_key"], pending.token):
        assert secret not in caplog.text


def test_broker_on_uvloop() -> None:
    """The demo and benchmarks run on uvloop when it is installed; the broker must behave the same there."""
    import uvloop

    async def scenario() -> int:
        b = ResponseBroker(bind_ip="127.0.0.1", advertised_ip="127.0.0.1", port=0, read_timeout=1.0)
        await b.start()
        try:
            host, port = b.response_address.rsplit(":", 1)
            stalled = await asyncio.open_connection(host, int(port))
            launches = [b.expect(f"uv-{i}") for i in range(50)]
            replies = await asyncio.gather(*(send(b, sealed(b, p)) for p in launches))
            await asyncio.gather(*(p.wait(10) for p in launches))
            stalled[1].close()
            return sum(r == b'{"ok":true}\n' for r in replies)
        finally:
            await b.stop()

    assert uvloop.run(scenario()) == 50


async def test_concurrent_first_use_shares_one_listener_and_key() -> None:
    """Many kernels launching at once on a fresh loop must all get the same address and public key."""
    brokers = await asyncio.gather(*(ResponseBroker.instance() for _ in range(20)))
    try:
        assert len({id(b) for b in brokers}) == 1
        assert len({(b.response_address, b.public_key) for b in brokers}) == 1
    finally:
        await brokers[0].stop()
