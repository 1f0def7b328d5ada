"""A real jupyter_server ``kill -9``-ed while it is launching kernels (local, SSH and Docker), then started again.

What the dead server had begun must not outlive the next start: a kernel whose launch had reported is taken over
from its saved session (and is listed), everything else carrying the server's identity is removed by the sweep
the sessions extension runs at start. The local and SSH launchers are made slow (a ``sleep`` before the launcher)
so the kill falls inside their launch for certain; the Docker one is killed once its container runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from jupyter_server_process import ServerProcess
from kf_docker import IMAGE, docker_cli, leftovers
from reliability_figures import record_figure
from ssh_testing import processes_with_env, wait_until
from sshd import SshCluster

from kernelfleet.provisioners.container_argv import container_argv

LAUNCHER = ["-m", "kernelfleet.launcher", "--kernel-id", "{kernel_id}", "--port-range", "{port_range}",
            "--response-address", "{response_address}", "--public-key", "{public_key}"]
SLOW = ["sh", "-c", 'sleep 60; exec "$0" "$@"', sys.executable, *LAUNCHER]
RUNNING = re.compile(r"Kernel ([0-9a-f-]{36}): running (as local process|on \S+ as pid|in container)")
EXTENSION = "kernelfleet.provisioners.sessions"


def server_env(tmp_path: Path, server_id: str) -> dict[str, str]:
    config_dir = tmp_path / "config"
    config_dir.mkdir(exist_ok=True)
    (config_dir / "jupyter_server_config.py").write_text(f'c.ServerApp.jpserver_extensions = {{"{EXTENSION}": True}}\n')
    return {**os.environ, "JUPYTER_PATH": str(tmp_path / "share" / "jupyter"), "JUPYTER_RUNTIME_DIR": str(tmp_path),
            "JUPYTER_CONFIG_DIR": str(config_dir), "KF_RESPONSE_IP": "127.0.0.1", "KF_RESPONSE_PORT": "0",
            "KF_SERVER_ID": server_id}


async def left_of(kernel_id: str) -> list[str]:
    """Processes (local or on the SSH hosts: all are this machine) and Docker objects still there for a kernel."""
    return [f"process {pid}" for pid in processes_with_env("KERNEL_ID", kernel_id)] + await leftovers(kernel_id)


async def test_server_killed_mid_launch_leaves_nothing_after_the_next_start(
    tmp_path: Path, make_kernelspec: Callable[..., str], fault_ssh_cluster: SshCluster, fault_log_dir: Path,
) -> None:
    host = fault_ssh_cluster.hosts[0]
    host.start()
    specs = [
        make_kernelspec("kf_local_slow", argv=SLOW),
        make_kernelspec("kf_ssh_slow", argv=SLOW, config={**fault_ssh_cluster.provisioner_config(),
                                                           "remote_hosts": [host.address],
                                                           "remote_log_dir": str(fault_log_dir)}),
        make_kernelspec("kf_docker", provisioner="docker-provisioner", argv=container_argv(),
                        config={"image_name": IMAGE, "network": "host"}),
    ]
    process = ServerProcess(tmp_path, server_env(tmp_path, f"kff-{uuid.uuid4().hex[:12]}"),
                            tmp_path / "jupyter_server.log")
    kernel_ids: list[str] = []
    try:
        server = await process.start()
        launches = [asyncio.ensure_future(server.call("POST", "/api/kernels", {"name": name})) for name in specs]
        await wait_until(lambda: len(RUNNING.findall(process.log())) == len(specs), 60,
                         "the launches did not all get their launcher or container running")
        kernel_ids = [kernel_id for kernel_id, _ in RUNNING.findall(process.log())]
        await process.kill()
        await asyncio.gather(*launches, return_exceptions=True)
        for kernel_id in kernel_ids:
            assert await left_of(kernel_id), f"kernel {kernel_id} had nothing running when the server was killed"

        restarted = time.monotonic()
        server = await process.start()
        pending = set(kernel_ids)
        async with asyncio.timeout(60):  # the sweep runs in the background after the start
            while pending:
                listed = {k["id"] for k in await server.call("GET", "/api/kernels")}
                pending = {k for k in pending if k not in listed and await left_of(k)}
                if pending:
                    await asyncio.sleep(0.2)  # the sweep reports to nobody but its log; its effect is awaited
        record_figure("test_server_killed_mid_launch_leaves_nothing_after_the_next_start", "local+ssh+docker",
                      "server killed mid-launch", "seconds from the new start to every leftover removed",
                      time.monotonic() - restarted)
        listed = {k["id"] for k in await server.call("GET", "/api/kernels")}
        for kernel_id in listed & set(kernel_ids):  # launches that had reported were taken over: stop them
            await server.call("DELETE", f"/api/kernels/{kernel_id}")
        for kernel_id in kernel_ids:
            assert await left_of(kernel_id) == [], f"kernel {kernel_id} left {await left_of(kernel_id)}"
        assert not list((tmp_path / "kernelfleet-sessions").glob("*.json")), "a session file was left"
    finally:
        await process.stop()
        for kernel_id in kernel_ids:  # a failed run must not leave its kernels on the machine
            for pid in processes_with_env("KERNEL_ID", kernel_id):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            for left in await leftovers(kernel_id):
                kind, name = left.split(" ", 1)
                await docker_cli(*(["rm", "-f"] if kind == "container" else [kind, "rm"]), name, check=False)
