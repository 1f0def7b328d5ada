"""A real jupyter_server process for end-to-end tests: started, killed (-9) and started again, its REST API and
kernel websocket, and a cell runner that waits for the cell's reply and idle status."""

from __future__ import annotations

import asyncio
import json
import secrets
import socket
import sys
import uuid
from pathlib import Path
from typing import Any

from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest
from tornado.websocket import WebSocketClientConnection, websocket_connect

TOKEN = secrets.token_hex(16)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """The server's REST API and kernel websockets, authenticated with the test token."""

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


class ServerProcess:
    """``python -m jupyter_server`` with the given environment; its stderr (the log) goes to ``log_path``."""

    def __init__(self, root: Path, env: dict[str, str], log_path: Path, *extra_args: str) -> None:
        self.root, self.env, self.log_path, self.extra_args = root, env, log_path, extra_args
        self.process: asyncio.subprocess.Process | None = None
        self.server: Server | None = None
        self._log_offset = 0

    async def start(self) -> Server:
        port = free_port()
        self._log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with self.log_path.open("ab") as log_file:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "jupyter_server", "--no-browser", "--allow-root", f"--port={port}",
                "--ip=127.0.0.1", f"--IdentityProvider.token={TOKEN}", f"--ServerApp.root_dir={self.root}",
                *self.extra_args, env=self.env, stdout=asyncio.subprocess.DEVNULL, stderr=log_file,
            )
        self.server = Server(port)
        for _ in range(300):
            try:
                await self.server.call("GET", "/api/status")
                return self.server
            except (ConnectionError, OSError, AssertionError, HTTPClientError):  # 599: not serving yet
                if self.process.returncode is not None:
                    raise RuntimeError(f"jupyter_server exited: {self.log()[-3000:]}") from None
                await asyncio.sleep(0.1)
        raise RuntimeError(f"jupyter_server did not answer within 30 s: {self.log()[-3000:]}")

    def log(self) -> str:
        """This run's log (since the last start)."""
        with self.log_path.open("rb") as handle:
            handle.seek(self._log_offset)
            return handle.read().decode(errors="replace")

    async def kill(self) -> None:
        """``kill -9``: no shutdown hook, no cleanup runs."""
        assert self.process is not None
        self.process.kill()
        await self.process.wait()
        self.process = None

    async def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        await asyncio.wait_for(self.process.wait(), 60)
        self.process = None


async def run_cell(ws: WebSocketClientConnection, code: str, timeout: float = 30,
                   started: tuple[str, asyncio.Event] | None = None) -> dict[str, Any]:
    """Execute ``code`` over the websocket; its reply and result. ``started`` (marker, event): the event is set once
    the cell's output shows the marker, i.e. the cell runs its own code (interrupt only then)."""
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
            if msg["msg_type"] == "stream" and started is not None:
                result["stdout"] = result.get("stdout", "") + msg["content"]["text"]
                if started[0] in result["stdout"]:
                    started[1].set()
            elif msg["msg_type"] == "execute_result":
                result["result"] = msg["content"]["data"]["text/plain"]
            elif msg["msg_type"] == "execute_reply":
                result["reply"] = msg["content"]
            elif msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                result["idle"] = True
    return result
