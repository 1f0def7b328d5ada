"""LAUNCH_TOKEN_FILE: the real launcher reads the token from the file a container provisioner put there,
reports with it, and removes the file before any cell can run; errors name the variable, never the token."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import uuid
from pathlib import Path

import pytest
from launcher_support import LAUNCHER_PYTHON, kernel_processes, wait_gone

from kernelfleet.provisioners.broker import ResponseBroker


async def test_token_from_file_is_reported_and_the_file_removed(broker: ResponseBroker, tmp_path: Path) -> None:
    kernel_id = f"t-{uuid.uuid4().hex[:12]}"
    pending = broker.expect(kernel_id)
    token_file = tmp_path / "launch-token"
    token_file.write_text(pending.token + "\n")
    token_file.chmod(0o400)
    env = {k: v for k, v in os.environ.items() if k != "LAUNCH_TOKEN"}
    env.update(KERNEL_ID=kernel_id, RESPONSE_ADDRESS=broker.response_address, PUBLIC_KEY=broker.public_key,
               LAUNCH_TOKEN_FILE=str(token_file), TMPDIR=str(tmp_path))
    log_path = tmp_path / "launcher.log"
    with log_path.open("wb") as log:
        proc = await asyncio.create_subprocess_exec(LAUNCHER_PYTHON, "-m", "kernelfleet.launcher", env=env,
                                                    stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=log)
    try:
        report_waiter = asyncio.ensure_future(pending.wait(timeout=30))
        exited = asyncio.ensure_future(proc.wait())
        await asyncio.wait({report_waiter, exited}, return_when=asyncio.FIRST_COMPLETED)
        exited.cancel()
        assert report_waiter.done(), f"launcher exited {proc.returncode} without a report:\n{log_path.read_text()}"
        report = report_waiter.result()
        assert report.pid == proc.pid
        assert not token_file.exists(), "the launcher left the token file behind"
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            await proc.wait()
        for pid in kernel_processes(kernel_id):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            await wait_gone(pid, 5)
        pending.cancel()
    assert pending.token not in log_path.read_text()


@pytest.mark.parametrize("content", [None, "", "x" * 5000])
def test_bad_token_file_is_one_clear_line(tmp_path: Path, content: str | None) -> None:
    import subprocess

    token_file = tmp_path / "launch-token"
    if content is not None:
        token_file.write_text(content)
    env = {k: v for k, v in os.environ.items() if k != "LAUNCH_TOKEN"}
    env.update(KERNEL_ID=f"bad-file-{uuid.uuid4().hex[:8]}", RESPONSE_ADDRESS="127.0.0.1:9", PUBLIC_KEY="AAAA",
               LAUNCH_TOKEN_FILE=str(token_file))
    done = subprocess.run([LAUNCHER_PYTHON, "-m", "kernelfleet.launcher"], env=env, capture_output=True, text=True,
                          timeout=60)
    lines = (done.stderr + done.stdout).strip().splitlines()
    assert done.returncode == 2
    assert len(lines) == 1 and "LAUNCH_TOKEN_FILE" in lines[0] and str(token_file) in lines[0], lines
    assert kernel_processes(env["KERNEL_ID"]) == []
