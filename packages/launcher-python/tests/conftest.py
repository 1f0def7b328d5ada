"""Fixtures: a real ResponseBroker and the real launcher as a subprocess; nothing they start outlives a test."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

# The tests import launcher_support, and the kernels they start import custom_kernel, from this folder.
TESTS_DIR = Path(__file__).parent
if str(TESTS_DIR) not in sys.path:
    sys.path.insert(0, str(TESTS_DIR))

from launcher_support import LAUNCHER_PYTHON, Launch, Launcher, kernel_processes  # noqa: E402

from kernelfleet.provisioners.broker import ResponseBroker  # noqa: E402


@pytest_asyncio.fixture
async def broker() -> AsyncIterator[ResponseBroker]:
    b = ResponseBroker(bind_ip="127.0.0.1", advertised_ip="127.0.0.1", port=0)
    await b.start()
    yield b
    await b.stop()


@pytest_asyncio.fixture
async def launcher(broker: ResponseBroker, tmp_path: Path) -> AsyncIterator[Launcher]:
    """Start ``python -m kernelfleet.launcher`` against the broker; everything it started is gone afterwards."""
    launches: list[Launch] = []

    async def start(
        env: dict[str, str | None] | None = None,
        *,
        args: list[str] | None = None,
        prefix: list[str] | None = None,
        wait_report: bool = True,
    ) -> Launch:
        kernel_id = f"t-{uuid.uuid4().hex[:12]}"
        pending = broker.expect(kernel_id)
        tmpdir = tmp_path / kernel_id
        tmpdir.mkdir()
        full_env = dict(
            os.environ,
            KERNEL_ID=kernel_id,
            RESPONSE_ADDRESS=broker.response_address,
            PUBLIC_KEY=broker.public_key,
            LAUNCH_TOKEN=pending.token,
            TMPDIR=str(tmpdir),
            PYTHONPATH=os.pathsep.join(filter(None, [str(TESTS_DIR), os.environ.get("PYTHONPATH")])),
        )
        for key, value in (env or {}).items():
            if value is None:
                full_env.pop(key, None)
            else:
                full_env[key] = value
        stderr_path = tmp_path / f"{kernel_id}.log"
        with stderr_path.open("wb") as stderr:
            proc = await asyncio.create_subprocess_exec(
                *(prefix or []), LAUNCHER_PYTHON, "-m", "kernelfleet.launcher", *(args or []),
                env=full_env, stdin=asyncio.subprocess.DEVNULL, stdout=stderr, stderr=stderr,
            )
        launch = Launch(kernel_id, proc, pending, stderr_path, tmpdir, full_env)
        launches.append(launch)
        if wait_report:
            wait = asyncio.ensure_future(pending.wait(timeout=30))
            exited = asyncio.ensure_future(proc.wait())
            await asyncio.wait({wait, exited}, return_when=asyncio.FIRST_COMPLETED)
            if not wait.done():
                wait.cancel()
                pytest.fail(f"launcher exited {proc.returncode} without a report:\n{launch.stderr}")
            exited.cancel()
            launch.report = wait.result()
        return launch

    yield start

    for launch in launches:
        for kc in launch.clients:
            kc.stop_channels()
        if launch.proc.returncode is None:
            launch.proc.send_signal(signal.SIGKILL)  # the kernel follows through its parent-death signal
            await launch.proc.wait()
        for pid in kernel_processes(launch.kernel_id):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        launch.pending.cancel()
