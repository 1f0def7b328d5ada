"""What the tests of kernels that survive their server share: a real jupyter_server with the sessions extension
(``jupyter_server_process``), its saved sessions, and a variable set before the server is killed and read back
after it started again."""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path
from typing import Any

from jupyter_server_process import Server, run_cell

EXTENSION = "kernelfleet.provisioners.sessions"


def server_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The server's environment: private Jupyter dirs, the extension enabled by one config line, the broker on
    loopback (kernels in host-network containers and pods reach it there)."""
    config_dir = tmp_path / "config"
    config_dir.mkdir(exist_ok=True)
    (config_dir / "jupyter_server_config.py").write_text(
        f'c.ServerApp.jpserver_extensions = {{"{EXTENSION}": True}}\n'
        "c.KernelSessions.max_retry_delay = 2.0\n"
    )
    return {**os.environ, "JUPYTER_PATH": str(tmp_path / "share" / "jupyter"), "JUPYTER_RUNTIME_DIR": str(tmp_path),
            "JUPYTER_CONFIG_DIR": str(config_dir), "KF_RESPONSE_IP": "127.0.0.1", "KF_RESPONSE_PORT": "0", **extra}


def session_dir(tmp_path: Path) -> Path:
    return tmp_path / "kernelfleet-sessions"


def saved(tmp_path: Path) -> dict[str, dict[str, Any]]:
    return {p.stem: json.loads(p.read_text()) for p in session_dir(tmp_path).glob("*.json")}


async def start_kernel(server: Server, name: str) -> tuple[str, str]:
    """Start a kernel of kernelspec ``name`` and set a variable in it; (kernel id, the variable's value)."""
    kernel_id = (await server.call("POST", "/api/kernels", {"name": name}))["id"]
    ws = await server.channels(kernel_id)
    value = f"{name}-{kernel_id[:8]}"
    reply = await run_cell(ws, f"survivor = {value!r}", timeout=90)
    assert reply["reply"]["status"] == "ok", f"kernel {name}: {reply}"
    ws.close()
    return kernel_id, value


async def read_back(server: Server, kernel_id: str) -> str:
    ws = await server.channels(kernel_id)
    try:
        return str((await run_cell(ws, "survivor", timeout=60))["result"])
    finally:
        ws.close()


async def listed(server: Server, kernel_ids: set[str], within: float) -> None:
    """Until GET /api/kernels lists every one of ``kernel_ids`` (the extension takes them over after the server
    began answering)."""
    deadline = time.monotonic() + within
    while not kernel_ids <= {k["id"] for k in await server.call("GET", "/api/kernels")}:
        assert time.monotonic() < deadline, f"kernels {kernel_ids} not all listed after {within}s"
        await asyncio.sleep(0.2)


async def forgotten(tmp_path: Path, within: float = 30.0) -> None:
    """Until no session is saved. The extension removes a shut-down kernel's session from its listener of the
    kernel-action event, which jupyter_events runs as a task: it may finish just after DELETE has answered."""
    deadline = time.monotonic() + within
    while left := saved(tmp_path):
        assert time.monotonic() < deadline, f"sessions still saved after {within}s: {sorted(left)}"
        await asyncio.sleep(0.1)
