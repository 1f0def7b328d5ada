"""A user's notebook path: a real jupyter_server process, its REST API and kernel websocket, and a kernel
started through the embedded-default provisioner."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import socket
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from tornado.httpclient import AsyncHTTPClient, HTTPRequest
from tornado.websocket import WebSocketClientConnection, websocket_connect

TOKEN = secrets.token_hex(16)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}"
        self.http = AsyncHTTPClient()

    async def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        request = HTTPRequest(
            f"{self.base}{path}", method=method, headers={"Authorization": f"token {TOKEN}"},
            body=json.dumps(body) if body is not None else (b"" if method == "POST" else None),
            request_timeout=90, allow_nonstandard_methods=True,
        )
        response = await self.http.fetch(request, raise_error=False)
        assert response.code < 400, f"{method} {path}: {response.code} {response.body!r}"
        return json.loads(response.body) if response.body else None

    async def channels(self, kernel_id: str) -> WebSocketClientConnection:
        url = self.base.replace("http", "ws") + f"/api/kernels/{kernel_id}/channels"
        return await websocket_connect(HTTPRequest(url, headers={"Authorization": f"token {TOKEN}"}))


@pytest.fixture
async def server(tmp_path: Path, make_kernelspec: Callable[..., str]) -> AsyncIterator[Server]:
    make_kernelspec("kf_python")
    port = free_port()
    env = {**os.environ, "JUPYTER_PATH": str(tmp_path / "share" / "jupyter"), "JUPYTER_RUNTIME_DIR": str(tmp_path)}
    log_path = tmp_path / "jupyter_server.log"
    log_file = log_path.open("wb")
    proc = await asyncio.create_subprocess_exec(
        *[sys.executable, "-m", "jupyter_server", "--no-browser", "--allow-root", f"--port={port}", "--ip=127.0.0.1",
         f"--IdentityProvider.token={TOKEN}", f"--ServerApp.root_dir={tmp_path}"],
        env=env, stdout=asyncio.subprocess.DEVNULL, stderr=log_file,
    )
    srv = Server(port)
    try:
        for _ in range(200):
            try:
                await srv.call("GET", "/api/status")
                break
            except (ConnectionError, OSError, AssertionError):
                if proc.returncode is not None:
                    output = log_path.read_text()[-2000:]
                    raise RuntimeError(f"jupyter_server exited: {output}") from None
                await asyncio.sleep(0.1)
        yield srv
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 15)
        log_file.close()


async def run_cell(ws: WebSocketClientConnection, code: str, timeout: float = 30) -> dict[str, Any]:
    msg_id = uuid.uuid4().hex
    await ws.write_message(json.dumps({
        "header": {"msg_id": msg_id, "msg_type": "execute_request", "username": "test", "session": "s",
                   "version": "5.3", "date": ""},
        "parent_header": {}, "metadata": {}, "channel": "shell",
        "content": {"code": code, "silent": False, "store_history": True, "user_expressions": {},
                    "allow_stdin": False, "stop_on_error": True},
    }))
    result: dict[str, Any] = {}
    async with asyncio.timeout(timeout):
        while "reply" not in result or "idle" not in result:
            msg = json.loads(await ws.read_message())
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            if msg["msg_type"] == "execute_result":
                result["result"] = msg["content"]["data"]["text/plain"]
            elif msg["msg_type"] == "execute_reply":
                result["reply"] = msg["content"]
            elif msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                result["idle"] = True
    return result


async def test_notebook_path_over_rest_and_websocket(server: Server) -> None:
    kernel = await server.call("POST", "/api/kernels", {"name": "kf_python"})
    kid = kernel["id"]
    ws = await server.channels(kid)
    assert (await run_cell(ws, "2 ** 10"))["result"] == "1024"

    busy = asyncio.ensure_future(run_cell(ws, "while True:\n    pass"))
    await asyncio.sleep(1.0)
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
