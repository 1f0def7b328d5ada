"""A user's notebook path: a real jupyter_server process, its REST API and kernel websocket, and a kernel
started through the embedded-default provisioner."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from jupyter_server_process import Server, ServerProcess, run_cell
from kf_testing import STARTED


@pytest.fixture
async def server(tmp_path: Path, make_kernelspec: Callable[..., str]) -> AsyncIterator[Server]:
    make_kernelspec("kf_python")
    env = {**os.environ, "JUPYTER_PATH": str(tmp_path / "share" / "jupyter"), "JUPYTER_RUNTIME_DIR": str(tmp_path)}
    process = ServerProcess(tmp_path, env, tmp_path / "jupyter_server.log")
    try:
        yield await process.start()
    finally:
        await process.stop()


async def test_notebook_path_over_rest_and_websocket(server: Server) -> None:
    kernel = await server.call("POST", "/api/kernels", {"name": "kf_python"})
    kid = kernel["id"]
    ws = await server.channels(kid)
    assert (await run_cell(ws, "2 ** 10"))["result"] == "1024"

    running = asyncio.Event()
    busy = asyncio.ensure_future(run_cell(ws, f"print({STARTED!r})\nwhile True:\n    pass",
                                          started=(STARTED, running)))
    await asyncio.wait_for(running.wait(), 30)
    await server.call("POST", f"/api/kernels/{kid}/interrupt")
    interrupted = await asyncio.wait_for(busy, 15)
    assert interrupted["reply"]["status"] == "error" and interrupted["reply"]["ename"] == "KeyboardInterrupt"

    await run_cell(ws, "marker = 1")
    await server.call("POST", f"/api/kernels/{kid}/restart")
    ws.close()
    ws = await server.channels(kid)
    assert (await run_cell(ws, "'marker' in globals()"))["result"] == "False"
    ws.close()

    await server.call("DELETE", f"/api/kernels/{kid}")
    assert all(k["id"] != kid for k in await server.call("GET", "/api/kernels"))
