"""Mixed cycles on the embedded default (distributed-provisioner on localhost) leave nothing behind: no launcher or
kernel process, no descriptor, no asyncio task in the server (issue 11, item 5)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from mixed_cycles import FAILING_LAUNCHER_ARGV, assert_no_leaks, cycle_count, kernel_manager_for, measure_leaks

from kernelfleet.provisioners.broker import ResponseBroker


async def test_mixed_cycles_leave_nothing_on_localhost(
    kernels_dir: Path, make_kernelspec: Callable[..., str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    server_id = f"leaks-local-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("KF_SERVER_ID", server_id)
    monkeypatch.setenv("KF_RESPONSE_IP", "127.0.0.1")
    monkeypatch.setenv("KF_RESPONSE_PORT", "0")
    name = make_kernelspec("kf_local")
    failing = make_kernelspec("kf_local_failing", argv=FAILING_LAUNCHER_ARGV)
    mkm = kernel_manager_for(kernels_dir)
    await ResponseBroker.instance()
    try:
        report = await measure_leaks("local", mkm, name, failing, server_id, cycles=cycle_count(10), at_once=4)
    finally:
        await mkm.shutdown_all(now=True)
        broker = ResponseBroker._instances.get(asyncio.get_running_loop())
        if broker is not None:
            await broker.stop()
        mkm.context.destroy(linger=0)
    assert_no_leaks(report, "test_mixed_cycles_leave_nothing_on_localhost")
