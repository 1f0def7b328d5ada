"""Between a saved session and the server's kernel manager: capture one, and take a kernel over from one.

jupyter_server has no public call for "this kernel already runs, manage it": taking one over repeats
what ``MappingKernelManager.start_kernel`` does after its launch (the kernel manager, its provisioner,
restarter and control socket, the mapping's connection count, activity watch and "dead" callback),
with the launch replaced by the provisioner's ``load_provisioner_info``. The private names used are
jupyter_server 2.x's and jupyter_client 8.x's; they are used here and nowhere else.
"""

from __future__ import annotations

import os
from typing import Any

from jupyter_client.manager import KernelManager
from jupyter_client.provisioning import KernelProvisionerFactory
from jupyter_server._tz import utcnow
from jupyter_server.services.kernels.kernelmanager import MappingKernelManager

from kernelfleet.protocol.contract import KERNEL_ID
from kernelfleet.provisioners.base import RemoteProvisionerBase
from kernelfleet.provisioners.presence import Presence
from kernelfleet.provisioners.sessions.store import KernelSession, SessionError

# Request values worth keeping for a restart of a taken-over kernel; the rest of its environment is the server's.
KEPT_ENV_PREFIXES = ("KERNEL_", "JPY_")
NOT_KEPT_ENV = frozenset({KERNEL_ID})


def provisioner_name(km: KernelManager) -> str:
    metadata = km.kernel_spec.metadata if km.kernel_spec is not None else {}
    return str((metadata.get("kernel_provisioner") or {}).get("provisioner_name") or "")


def json_safe(value: Any) -> Any:
    """Connection and provisioner info as JSON: jupyter_client keeps the HMAC key (and curve keys) as bytes."""
    if isinstance(value, bytes):
        return value.decode("ascii")
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


async def capture(km: KernelManager) -> KernelSession | None:
    """The session of a running Kernel Fleet kernel; None for kernels other provisioners run (not ours to keep)."""
    provisioner = km.provisioner
    if not isinstance(provisioner, RemoteProvisionerBase) or not km.has_kernel:
        return None
    launch_args = dict(km._launch_args or {})
    env = launch_args.get("env") or {}
    launch: dict[str, Any] = {
        "cwd": launch_args.get("cwd"),
        "env": {k: v for k, v in env.items() if k.startswith(KEPT_ENV_PREFIXES) and k not in NOT_KEPT_ENV},
    }
    return KernelSession(
        kernel_id=str(km.kernel_id),
        kernel_name=km.kernel_name,
        provisioner_name=provisioner_name(km),
        connection_info=json_safe(km.get_connection_info(session=False)),
        provisioner_info=json_safe(await provisioner.get_provisioner_info()),
        launch=json_safe(launch),
    )


async def load_kernel(mkm: MappingKernelManager, session: KernelSession) -> tuple[KernelManager, Presence]:
    """A kernel manager for the saved kernel, its provisioner loaded, and what the provisioner says of the kernel.

    Nothing is registered yet: the caller registers a running one (``register``), cleans up a gone one
    and detaches from an unreachable one.
    """
    kernel_id = session.kernel_id
    km: KernelManager = mkm.kernel_manager_factory(
        connection_file=os.path.join(mkm.connection_dir, f"kernel-{kernel_id}.json"),
        parent=mkm, log=mkm.log, kernel_name=session.kernel_name,
    )
    km.kernel_id = kernel_id
    name = provisioner_name(km)
    if name != session.provisioner_name:
        raise SessionError(f"Kernel {kernel_id}: kernelspec {session.kernel_name!r} now names provisioner "
                           f"{name or 'none'!r}, the kernel was started by {session.provisioner_name!r}")
    km.load_connection_info(session.connection_info)
    provisioner = KernelProvisionerFactory.instance(parent=mkm.parent).create_provisioner_instance(
        kernel_id, km.kernel_spec, parent=km)
    if not isinstance(provisioner, RemoteProvisionerBase):
        raise SessionError(f"Kernel {kernel_id}: provisioner {name!r} is not a Kernel Fleet provisioner")
    km.provisioner = provisioner
    await provisioner.load_provisioner_info(session.provisioner_info)
    if provisioner.connection_info:  # reopened tunnels may listen on other local ports than before
        km.load_connection_info(provisioner.connection_info)
    return km, await provisioner.presence()


async def register(mkm: MappingKernelManager, km: KernelManager, session: KernelSession) -> None:
    """Make a running, loaded kernel one of the server's: listed by GET /api/kernels, reachable over websockets,
    restarted and culled like one it started."""
    from jupyter_server.prometheus.metrics import KERNEL_CURRENTLY_RUNNING_TOTAL

    kernel_id = session.kernel_id
    env = dict(session.launch.get("env") or {})
    km._launch_args = {"cwd": session.launch.get("cwd"), **({"env": {**os.environ, **env}} if env else {})}
    km.write_connection_file()
    km._attempted_start = True  # so that a shutdown or restart makes itself a fresh "ready" future
    if not km.ready.done():
        km.ready.set_result(None)
    km.start_restarter()
    km._connect_control_socket()
    mkm._kernels[kernel_id] = km
    mkm._kernel_connections[kernel_id] = 0
    km.execution_state = "idle"
    km.reason = ""
    km.last_activity = utcnow()
    await mkm._finish_kernel_start(kernel_id)
    KERNEL_CURRENTLY_RUNNING_TOTAL.labels(type=km.kernel_name).inc()
    if not mkm._initialized_culler:
        mkm.initialize_culler()
