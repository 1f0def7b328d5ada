"""The Python launcher's standby mode (protocol 2.1) against the real broker: it registers, holds no kernel id, no
user environment and no connection key until claimed, accepts only a claim made with its key for its pool, and once
claimed launches like a cold launcher. The test holds the server's end of the standby's connection (what the pool
holds), so it can also send what an attacker on that connection would."""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from jupyter_client.asynchronous.client import AsyncKernelClient
from launcher_support import LAUNCHER_PYTHON, TESTS_DIR, kernel_processes

from kernelfleet.protocol import CommOp
from kernelfleet.protocol.comm_client import send_request
from kernelfleet.protocol.standby import Claim, Registration, seal_claim, seal_registration
from kernelfleet.provisioners.broker import ResponseBroker

POOL = "pool-under-test"


@dataclass
class Standby:
    process: asyncio.subprocess.Process
    registration: Registration
    sock: socket.socket
    stderr_path: Path

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    async def send(self, line: bytes) -> bytes:
        """Write ``line`` on the standby's connection and return its one-line answer (b"" if it closed)."""
        loop = asyncio.get_running_loop()
        await loop.sock_sendall(self.sock, line)
        answer = b""
        try:
            async with asyncio.timeout(60):
                while not answer.endswith(b"\n"):
                    chunk = await loop.sock_recv(self.sock, 4096)
                    if not chunk:
                        break
                    answer += chunk
        except TimeoutError:
            pytest.fail(f"the standby did not answer within 60s:\n{self.stderr}")
        return answer


@pytest.fixture
async def standbys(broker: ResponseBroker, tmp_path: Path) -> AsyncIterator[list[Standby]]:
    started: list[Standby] = []
    yield started
    for standby in started:
        standby.sock.close()
        if standby.process.returncode is None:
            standby.process.kill()
        await standby.process.wait()


async def start_standby(broker: ResponseBroker, tmp_path: Path, standbys: list[Standby],
                        pool: str = POOL) -> Standby:
    standby_id = f"standby-{uuid.uuid4().hex[:12]}"
    pending = broker.expect_standby(standby_id, pool)
    env = {k: v for k, v in os.environ.items() if k != "KERNEL_ID"}
    env.update(KF_STANDBY_ID=standby_id, KF_STANDBY_POOL=pool, RESPONSE_ADDRESS=broker.response_address,
               PUBLIC_KEY=broker.public_key, LAUNCH_TOKEN=pending.token, KERNEL_IP="127.0.0.1",
               PYTHONPATH=os.pathsep.join(filter(None, [str(TESTS_DIR), os.environ.get("PYTHONPATH")])))
    stderr_path = tmp_path / f"{standby_id}.log"
    with stderr_path.open("wb") as stderr:
        process = await asyncio.create_subprocess_exec(
            LAUNCHER_PYTHON, "-m", "kernelfleet.launcher", "--kernel-id", standby_id, env=env,
            stdin=asyncio.subprocess.DEVNULL, stdout=stderr, stderr=stderr)
    exited = asyncio.ensure_future(process.wait())
    done, _ = await asyncio.wait({pending.future, exited}, timeout=60, return_when=asyncio.FIRST_COMPLETED)
    exited.cancel()
    if pending.future not in done:
        pytest.fail(f"standby did not register:\n{stderr_path.read_text()}")
    registration, sock = pending.future.result()
    sock.setblocking(False)
    standby = Standby(process, registration, sock, stderr_path)
    standbys.append(standby)
    return standby


def claim_for(broker: ResponseBroker, kernel_id: str, **env: str) -> tuple[Claim, object]:
    pending = broker.expect(kernel_id)
    return Claim(kernel_id, pending.token, {"KERNEL_ID": kernel_id, **env}, None, "0..0"), pending


async def test_claimed_standby_reports_like_a_cold_launcher(broker: ResponseBroker, tmp_path: Path,
                                                            standbys: list[Standby]) -> None:
    standby = await start_standby(broker, tmp_path, standbys)
    kernel_id = f"k-{uuid.uuid4().hex[:12]}"
    claim, pending = claim_for(broker, kernel_id, KERNEL_COLOUR="green")
    assert await standby.send(seal_claim(claim, standby.registration)) == b'{"ok":true}\n'
    report = await pending.wait(timeout=60)  # type: ignore[attr-defined]
    assert report.kernel_id == kernel_id and report.pid == standby.process.pid
    # the warmed kernel process was spawned before any kernel id existed: only its launcher's environment names it
    assert kernel_processes(kernel_id) == []
    reply = await send_request("127.0.0.1", report.comm_port, report.comm_key, CommOp.SHUTDOWN, grace=0.5)
    assert reply["ok"] is True
    # nobody asked the kernel itself to shut down: terminated after the grace, as a cold launcher's kernel is
    assert await asyncio.wait_for(standby.process.wait(), 60) == 143, standby.stderr


async def test_claims_temporary_directory_replaces_the_warmed_one(broker: ResponseBroker, tmp_path: Path,
                                                                 standbys: list[Standby]) -> None:
    """The standby probes ``tempfile.gettempdir()`` before the claim (its first cell would otherwise pay for it); a
    claim that sets TMPDIR must still get its own directory in user code."""
    standby = await start_standby(broker, tmp_path, standbys)
    claimed_tmp = tmp_path / "claimed-tmp"
    claimed_tmp.mkdir()
    kernel_id = f"k-{uuid.uuid4().hex[:12]}"
    claim, pending = claim_for(broker, kernel_id, TMPDIR=str(claimed_tmp))
    assert await standby.send(seal_claim(claim, standby.registration)) == b'{"ok":true}\n'
    report = await pending.wait(timeout=60)  # type: ignore[attr-defined]
    kc = AsyncKernelClient()
    kc.load_connection_info(report.connection_info)
    kc.start_channels(hb=False)
    out: list[str] = []
    try:
        reply = await kc.execute_interactive(
            "import tempfile; print(tempfile.gettempdir())", timeout=60,
            output_hook=lambda msg: out.append(msg["content"].get("text", "")) if msg["msg_type"] == "stream" else None)
    finally:
        kc.stop_channels()
    assert reply["content"]["status"] == "ok", standby.stderr
    assert "".join(out).strip() == str(claimed_tmp)
    await send_request("127.0.0.1", report.comm_port, report.comm_key, CommOp.SHUTDOWN, grace=0.5)
    assert await asyncio.wait_for(standby.process.wait(), 60) == 143, standby.stderr


async def test_claim_without_the_key_is_refused(broker: ResponseBroker, tmp_path: Path,
                                               standbys: list[Standby]) -> None:
    standby = await start_standby(broker, tmp_path, standbys)
    claim, _ = claim_for(broker, f"k-{uuid.uuid4().hex[:12]}")
    forged = Registration(standby.registration.standby_id, POOL, os.urandom(64), standby.registration.nonce)
    answer = await standby.send(seal_claim(claim, forged))
    assert b'"ok":false' in answer and b"MAC" in answer
    assert await asyncio.wait_for(standby.process.wait(), 60) != 0
    assert "refused a claim" in standby.stderr


async def test_claim_for_another_pools_standby_is_refused(broker: ResponseBroker, tmp_path: Path,
                                                          standbys: list[Standby]) -> None:
    standby = await start_standby(broker, tmp_path, standbys)
    claim, _ = claim_for(broker, f"k-{uuid.uuid4().hex[:12]}")
    other = Registration(standby.registration.standby_id, "another-pool", standby.registration.claim_key,
                         standby.registration.nonce)
    answer = await standby.send(seal_claim(claim, other))
    assert b'"ok":false' in answer and b"another pool" in answer
    assert await asyncio.wait_for(standby.process.wait(), 60) != 0


async def test_replayed_claim_is_refused_by_another_standby(broker: ResponseBroker, tmp_path: Path,
                                                            standbys: list[Standby]) -> None:
    first = await start_standby(broker, tmp_path, standbys)
    second = await start_standby(broker, tmp_path, standbys)
    claim, pending = claim_for(broker, f"k-{uuid.uuid4().hex[:12]}")
    line = seal_claim(claim, first.registration)
    assert await first.send(line) == b'{"ok":true}\n'
    answer = await second.send(line)  # recorded on the first standby's connection, replayed to another
    assert b'"ok":false' in answer
    assert await asyncio.wait_for(second.process.wait(), 60) != 0
    report = await pending.wait(timeout=60)  # type: ignore[attr-defined]
    await send_request("127.0.0.1", report.comm_port, report.comm_key, CommOp.KILL)
    await asyncio.wait_for(first.process.wait(), 60)


async def test_standby_exits_when_the_server_lets_go(broker: ResponseBroker, tmp_path: Path,
                                                    standbys: list[Standby]) -> None:
    standby = await start_standby(broker, tmp_path, standbys)
    standby.sock.close()
    assert await asyncio.wait_for(standby.process.wait(), 60) == 0
    assert "let go of this standby" in standby.stderr


async def test_registration_with_another_token_is_refused(broker: ResponseBroker) -> None:
    """Whoever reaches the response port cannot join a pool: a registration must carry the standby's own token."""
    pending = broker.expect_standby("standby-forged", POOL)
    line = seal_registration(standby_id="standby-forged", pool=POOL, token="not-the-token", claim_key=os.urandom(64),
                             nonce=os.urandom(32), public_key_b64=broker.public_key)
    host, port = broker.response_address.rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(line)
    await writer.drain()
    assert await asyncio.wait_for(reader.readline(), 30) == b'{"ok":false,"error":"rejected"}\n'
    writer.close()
    assert not pending.future.done() and broker.counters["rejected"] == 1
