"""Small helpers for driving a kernel the way a notebook does, over jupyter_client."""

from __future__ import annotations

import asyncio
from typing import Any

from jupyter_client.asynchronous.client import AsyncKernelClient


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
