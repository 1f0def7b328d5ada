"""A Jupyter server that dies like a crashed one: it starts kernels through the provisioners and is then killed
with SIGKILL, leaving whatever the provisioners had created (the orphan sweep's tests).

Run as ``python crashing_server.py KERNELS_DIR PLAN`` with PLAN a JSON list of {"spec", "kernel_id", "mode"}:
"after" kernels are started to the end (the kernel runs and has reported), then "mid" launches are begun and the
process SIGKILLs itself as soon as each of them has made its first engine object (a process, a container, a
service, a pod, a YARN application) and none has reported. It prints ``STARTED <kernel id>`` per finished launch
and ``CRASHING`` just before the kill. The server identity comes from KF_SERVER_ID in the environment, as an
operator would set it.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

from kf_testing import manager


def made_something(provisioner: Any) -> bool:
    """The launch has created its first engine object (and, for the engines that report, not yet reported)."""
    owned = getattr(provisioner, "owned", {})
    resource = owned.get("resource") or owned.get("pod")
    return bool(
        getattr(provisioner, "local_process", None) or getattr(provisioner, "launcher_pid", None)
        or getattr(provisioner, "container_id", None) or getattr(provisioner, "service_id", None)
        or getattr(provisioner, "application_id", None)
        or (resource is not None and resource.uid)
    )


async def crash(kernels_dir: Path, plan: list[dict[str, str]]) -> None:
    managers = []
    for item in (i for i in plan if i["mode"] == "after"):
        km = manager(kernels_dir, item["spec"], kernel_id=item["kernel_id"])
        await km.start_kernel()
        managers.append(km)
        print("STARTED", item["kernel_id"], flush=True)
    pending = []
    for item in (i for i in plan if i["mode"] == "mid"):
        km = manager(kernels_dir, item["spec"], kernel_id=item["kernel_id"])
        pending.append((km, asyncio.ensure_future(km.start_kernel())))
    async with asyncio.timeout(60):
        while not all(km.provisioner is not None and made_something(km.provisioner) for km, _ in pending):
            if any(task.done() for _, task in pending):
                raise RuntimeError(f"a mid-launch kernel finished its launch first: {[t for _, t in pending]}")
            await asyncio.sleep(0.01)
    print("CRASHING", flush=True)
    os.kill(os.getpid(), signal.SIGKILL)


if __name__ == "__main__":
    asyncio.run(crash(Path(sys.argv[1]), json.loads(sys.argv[2])))
