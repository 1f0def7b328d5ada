"""Small helpers for driving a kernel the way a notebook does, over jupyter_client (shared by every suite)."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

from jupyter_client import AsyncKernelManager
from jupyter_client.asynchronous.client import AsyncKernelClient
from jupyter_client.kernelspec import KernelSpecManager


async def execute(client: AsyncKernelClient, code: str, timeout: float = 30) -> dict[str, Any]:
    """Run ``code``; return the reply content plus the text/plain result and stdout it produced."""
    msg_id = client.execute(code)
    result: dict[str, Any] = {"stdout": "", "result": None}
    async with asyncio.timeout(timeout):
        while True:
            msg = await client.get_iopub_msg()
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            kind, content = msg["msg_type"], msg["content"]
            if kind == "stream" and content["name"] == "stdout":
                result["stdout"] += content["text"]
            elif kind == "execute_result":
                result["result"] = content["data"].get("text/plain")
            elif kind == "status" and content["execution_state"] == "idle":
                break
        while True:
            reply = await client.get_shell_msg()
            if reply["parent_header"].get("msg_id") == msg_id:
                return {**reply["content"], **result}


def manager(kernels_dir: Path, name: str, kernel_id: str | None = None) -> AsyncKernelManager:
    return AsyncKernelManager(
        kernel_name=name,
        kernel_id=kernel_id or str(uuid.uuid4()),
        kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(kernels_dir)]),
    )


async def connect(km: AsyncKernelManager) -> AsyncKernelClient:
    client = km.client()
    client.start_channels()
    await client.wait_for_ready(timeout=30)
    return client


async def interrupt_busy_cell(km: AsyncKernelManager, client: AsyncKernelClient) -> None:
    busy = client.execute("import time\nwhile True: time.sleep(0.01)")
    await asyncio.sleep(0.5)
    await km.interrupt_kernel()
    async with asyncio.timeout(10):
        while (msg := await client.get_shell_msg())["parent_header"].get("msg_id") != busy:
            pass
    assert msg["content"]["status"] == "error" and msg["content"]["ename"] == "KeyboardInterrupt"
