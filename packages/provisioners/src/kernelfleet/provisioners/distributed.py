"""``distributed-provisioner``: kernels on a list of hosts. ``localhost`` runs the launcher as a local
process — the embedded default that needs no cluster and no SSH."""

from __future__ import annotations

import ipaddress
import signal
import socket
from typing import Any

from jupyter_client.localinterfaces import is_local_ip
from traitlets import Enum, List, Unicode, default

from kernelfleet.protocol import Report
from kernelfleet.provisioners.base import LaunchError, RemoteProvisionerBase
from kernelfleet.provisioners.envconfig import env_list, env_value
from kernelfleet.provisioners.local_process import LocalLauncherProcess

LOCAL_NAMES = frozenset({"localhost", "localhost.localdomain", "127.0.0.1", "::1", ""})


def is_local_host(host: str) -> bool:
    """True for names that mean this machine; no DNS lookup for the common spellings."""
    if host in LOCAL_NAMES or host == socket.gethostname():
        return True
    try:
        return ipaddress.ip_address(host).is_loopback or is_local_ip(host)
    except ValueError:
        return False


class DistributedProvisioner(RemoteProvisionerBase):
    remote_hosts = List(
        Unicode(), help="Hosts kernels may run on (env GP_REMOTE_HOSTS, comma-separated). Default: localhost."
    ).tag(config=True)
    load_balancing_algorithm = Enum(
        ["round-robin", "least-connection"],
        help="How the next host is chosen (env GP_LOAD_BALANCING_ALGORITHM).",
    ).tag(config=True)

    @default("remote_hosts")
    def _remote_hosts_default(self) -> list[str]:
        return env_list(("KF_REMOTE_HOSTS", "GP_REMOTE_HOSTS"), ("localhost",))

    @default("load_balancing_algorithm")
    def _algorithm_default(self) -> str:
        return env_value(("KF_LOAD_BALANCING_ALGORITHM", "GP_LOAD_BALANCING_ALGORITHM")) or "round-robin"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.assigned_host: str | None = None
        self.local_process: LocalLauncherProcess | None = None

    # ------------------------------------------------------------------------------------- launch
    def choose_host(self, env: dict[str, str]) -> str:
        hosts = self.remote_hosts or ["localhost"]
        requested = env.get("KERNEL_REMOTE_HOST")
        if requested:
            if requested not in hosts:
                raise PermissionError(
                    f"Kernel {self.kernel_id}: KERNEL_REMOTE_HOST {requested!r} is not one of this kernelspec's "
                    f"remote_hosts {hosts}"
                )
            return requested
        return hosts[0]

    async def start_launcher(self, cmd: list[str], env: dict[str, str], **kwargs: Any) -> None:
        host = self.choose_host(env)
        if not is_local_host(host):
            raise LaunchError(
                f"Kernel {self.kernel_id}: host {host!r} is remote, and launching over SSH is not available in "
                "this version; use remote_hosts = ['localhost']"
            )
        self.assigned_host = host
        env.setdefault("KERNEL_IP", "127.0.0.1")
        self.local_process = await LocalLauncherProcess.start(self.kernel_id, cmd, env, kwargs.get("cwd"), self.log)
        self.log.info("Kernel %s: running as local process %s", self.kernel_id, self.local_process.pid)

    async def launch_failure(self) -> str:
        assert self.local_process is not None
        return self.local_process.describe_exit(await self.local_process.wait())

    async def launch_diagnostics(self) -> str:
        if self.local_process is None:
            return "the launcher was never started"
        tail = "\n".join(self.local_process.stderr_tail)
        return f"launcher pid {self.local_process.pid} is still running" + (f"; its output:\n{tail}" if tail else "")

    def kernel_address(self, report: Report) -> str:
        if self.local_process is not None:
            return "127.0.0.1"
        return super().kernel_address(report)

    # ------------------------------------------------------------------------------------- lifecycle
    @property
    def has_process(self) -> bool:
        return self.local_process is not None or super().has_process

    async def poll(self) -> int | None:
        if self.local_process is not None:
            return self.local_process.returncode
        return await super().poll()

    async def wait(self) -> int | None:
        if self.local_process is not None:
            return await self.local_process.wait()
        return await super().wait()

    async def terminate(self, restart: bool = False) -> None:
        if self.local_process is not None:
            self.local_process.signal_group(signal.SIGTERM)
        else:
            await super().terminate(restart)

    async def kill(self, restart: bool = False) -> None:
        if self.local_process is not None:
            self.local_process.signal_group(signal.SIGKILL)
            await self.local_process.wait()
        else:
            await super().kill(restart)

    async def cleanup(self, restart: bool = False) -> None:
        if self.local_process is not None and self.local_process.returncode is None:
            await self.local_process.stop()
        self.local_process = None
        self.assigned_host = None
        await super().cleanup(restart)

    async def get_provisioner_info(self) -> dict[str, Any]:
        info = await super().get_provisioner_info()
        info["assigned_host"] = self.assigned_host
        return info

    async def load_provisioner_info(self, provisioner_info: dict[str, Any]) -> None:
        await super().load_provisioner_info(provisioner_info)
        self.assigned_host = provisioner_info.get("assigned_host")
