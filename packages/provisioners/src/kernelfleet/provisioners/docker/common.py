"""What the Docker and Swarm provisioners share: network and mount settings, labels, the engine lease,
the launch token's way into the container, and the one check Docker cannot do for us — whether a
container can reach the response address.

The launch token never goes into a container's or service's spec: ``docker inspect``, ``docker
service inspect`` and the event stream show those to everyone with access to the engine's API, and
Docker keeps them for as long as the object exists. The spec carries only ``LAUNCH_TOKEN_FILE``, the
path of a file with the token that the provisioner puts there by other means (``docker.py``: an
archive copied into the created container before it starts; ``docker_swarm.py``: a per-launch
Docker secret). The launcher reads the file and removes it where it can (docs/protocol.md, section 2).
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import aiodocker
from traitlets import Bool, Dict, List, TraitError, Unicode, default, validate

from kernelfleet.protocol.address import ResponseAddress
from kernelfleet.protocol.contract import LAUNCH_TOKEN, LAUNCH_TOKEN_FILE, RESPONSE_ADDRESS
from kernelfleet.provisioners.base import LaunchError
from kernelfleet.provisioners.container import ContainerProvisionerBase
from kernelfleet.provisioners.docker.container_end import parse_memory_limit
from kernelfleet.provisioners.docker.engine import ENGINE_ERRORS, DockerEngine, describe_engine_error
from kernelfleet.provisioners.docker.specs import DockerLaunch
from kernelfleet.provisioners.envconfig import env_value
from kernelfleet.provisioners.labels import kernel_labels
from kernelfleet.provisioners.server_identity import LABEL_SERVER

MOUNT_TYPES = frozenset({"bind", "volume", "tmpfs", "npipe"})
HOST_NETWORK = "host"
LOG_TAIL_LINES = 20
T = TypeVar("T")


async def wait_changed(changed: asyncio.Event, timeout: float | None) -> None:
    """Sleep until ``changed`` is set (Docker reported something about what it watches), or until ``timeout``.

    ``asyncio.wait`` rather than ``wait_for``: on Python 3.11 the latter can swallow a cancellation.
    """
    waiter = asyncio.ensure_future(changed.wait())
    try:
        await asyncio.wait({waiter}, timeout=timeout)
    finally:
        waiter.cancel()
    changed.clear()


def tail_text(lines: list[str]) -> str:
    """The last log lines, one string, for an error message; says so when the image cannot read a token file.

    A bootstrap or launcher from before ``LAUNCH_TOKEN_FILE`` complains about a missing ``LAUNCH_TOKEN`` and
    never names the file: the user learns that the image, not the request, must change.
    """
    text = "".join(lines).rstrip()
    if not text:
        return "; it wrote no output"
    hint = ""
    if LAUNCH_TOKEN in text and LAUNCH_TOKEN_FILE not in text:
        hint = (f"\n(the image's bootstrap or launcher predates {LAUNCH_TOKEN_FILE}: Docker and Swarm kernels get the "
                "launch token only as a file; rebuild the image with this Kernel Fleet's kernelfleet-bootstrap and "
                "launchers, see docs/protocol.md section 2)")
    return f"; its last output:\n{text}{hint}"


class DockerProvisionerBase(ContainerProvisionerBase):
    """Settings the Docker and Swarm provisioners share: the network kernels join and what they may mount."""

    network = Unicode(
        help="Docker network of kernel containers: 'host', 'bridge' or a named network (env KF_DOCKER_NETWORK / "
        "GP_DOCKER_NETWORK; default bridge). On any network but host, the response broker must advertise an "
        "address containers can reach (KF_RESPONSE_IP), e.g. the bridge gateway 172.17.0.1.",
    ).tag(config=True)
    mounts = List(
        Dict(),
        help="Docker mount specs given to every kernel of this kernelspec, e.g. "
        '[{"Type": "bind", "Source": "/data", "Target": "/data", "ReadOnly": true}]. Requests cannot add mounts.',
    ).tag(config=True)
    init = Bool(
        True,
        help="Run Docker's init process as PID 1 so a stop reaches the whole kernel at once (an image's own tini "
        "then runs as a subreaper below it: TINI_SUBREAPER is set).",
    ).tag(config=True)
    no_new_privileges = Bool(True, help="Forbid setuid privilege gains inside kernel containers.").tag(config=True)
    memory_limit = Unicode(
        help="Memory limit of each kernel container, as `docker run --memory` takes it (e.g. 512m, 2g; env "
        "KF_DOCKER_MEMORY_LIMIT; default: none). A kernel that crosses it is OOM-killed, and its end names the limit.",
    ).tag(config=True)

    @default("network")
    def _network_default(self) -> str:
        return env_value(("KF_DOCKER_NETWORK", "GP_DOCKER_NETWORK")) or "bridge"

    @default("memory_limit")
    def _memory_limit_default(self) -> str:
        return env_value(("KF_DOCKER_MEMORY_LIMIT",)) or ""

    @validate("mounts")
    def _check_mounts(self, proposal: dict[str, Any]) -> list[dict[str, Any]]:
        for mount in proposal["value"]:
            kind, target = mount.get("Type"), mount.get("Target")
            if kind not in MOUNT_TYPES or not isinstance(target, str) or not target.startswith("/"):
                raise TraitError(f"mounts: {mount!r} needs a Type ({', '.join(sorted(MOUNT_TYPES))}) and an "
                                 "absolute Target")
        return list(proposal["value"])

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.engine: DockerEngine | None = None
        self.memory_bytes = 0
        self.end_reason: str | None = None  # how the kernel's container ended, once Docker said so (docker_exit)
        self.stopping = False  # this server stops or removes the kernel: how its container ends is no news
        self._creating: asyncio.Future[Any] | None = None

    # ------------------------------------------------------------------------------------- engine lease
    def lease_engine(self) -> DockerEngine:
        """The loop's shared Docker client, held while this kernel has something on Docker."""
        if self.engine is None:
            self.engine = DockerEngine.acquire()
        return self.engine

    async def release_engine(self) -> None:
        engine, self.engine = self.engine, None
        if engine is not None:
            await engine.release()

    async def delete_created(self, what: str, name: str, delete: Awaitable[Any]) -> bool:
        """Await ``delete`` of an object this launch created (by the id Docker gave it). True once it is gone,
        "not found" included (someone removed it first); any other failure is logged with the engine's message
        and False returned, so removal goes on with what is left."""
        try:
            await delete
        except aiodocker.DockerError as err:
            if err.status != 404:
                self.log.warning("Kernel %s: could not remove %s %s: %s", self.kernel_id, what, name,
                                 describe_engine_error(err))
                return False
        except ENGINE_ERRORS as err:
            self.log.warning("Kernel %s: could not remove %s %s: %s", self.kernel_id, what, name,
                             describe_engine_error(err))
            return False
        self.log.debug("Kernel %s: %s %s removed", self.kernel_id, what, name)
        return True

    async def pre_launch(self, **kwargs: Any) -> dict[str, Any]:
        try:
            return await super().pre_launch(**kwargs)
        except BaseException:
            await self.release_engine()  # a refused restart: the lease kept across it is not needed any more
            raise

    # ------------------------------------------------------------------------------------- launch helpers
    @property
    def launch_token_path(self) -> str:
        """Where the container finds the launch token file (the subclass puts it there)."""
        raise NotImplementedError

    def _settle(self, env: dict[str, str]) -> None:
        super()._settle(env)
        self.memory_bytes = parse_memory_limit(self.kernel_id, self.memory_limit)
        self.end_reason, self.stopping = None, False
        if self.init:  # our images start under tini, which warns when it is not PID 1 unless it may subreap
            self.container_env.setdefault("TINI_SUBREAPER", "1")
        # Only the token's path goes into the spec (see the module docstring); the token stays in launch_env.
        self.container_env.pop(LAUNCH_TOKEN, None)
        self.container_env[LAUNCH_TOKEN_FILE] = self.launch_token_path

    def docker_launch(self) -> DockerLaunch:
        """This launch's container as one value, for the pure builders of ``docker.specs``."""
        return DockerLaunch(
            image=self.image, uid=self.uid, gid=self.gid, env=dict(self.container_env), labels=self.object_labels(),
            network=self.network, init=self.init, working_dir=self.working_dir,
            mounts=tuple(dict(m) for m in self.mounts), no_new_privileges=self.no_new_privileges,
            memory_bytes=self.memory_bytes,
        )

    def name_taken(self, kind: str) -> LaunchError:
        """The error for a name held by an object this launch did not create; that object is never touched."""
        return LaunchError(
            f"Kernel {self.kernel_id}: Docker already has a {kind} named {self.container_name} that this launch did "
            f"not create; it was left untouched. The name is made of KERNEL_USERNAME and the kernel id: start the "
            f"kernel under another kernel id (or KERNEL_USERNAME), or have the {kind}'s owner remove it"
        )

    def object_labels(self) -> dict[str, str]:
        """The labels of every object this kernel creates, with this server's identity, by which the orphan sweep
        finds what a crashed server left."""
        return kernel_labels(self.kernel_id, {LABEL_SERVER: self.server_id})

    def check_response_reachable(self) -> None:
        """Refuse a launch whose container could never report: loopback is the container's own on other networks."""
        if self.network == HOST_NETWORK:
            return
        host = ResponseAddress.parse(self.launch_env[RESPONSE_ADDRESS]).host
        try:
            loopback = ipaddress.ip_address(host.strip("[]")).is_loopback
        except ValueError:
            loopback = host == "localhost"
        if loopback:
            raise LaunchError(
                f"Kernel {self.kernel_id}: the response broker advertises {host}, which a container on Docker network "
                f"{self.network!r} cannot reach; set KF_RESPONSE_IP (c.ResponseBroker.advertised_ip) to an address "
                "of this host that containers reach (e.g. the bridge gateway, 172.17.0.1), or use network 'host'"
            )

    async def create_resource(self, create: Callable[[], Awaitable[T]], record: Callable[[T], None]) -> T:
        """Create the container/service so that a cancelled launch still learns its id and can remove it.

        A cancelled request does not stop dockerd: the object may appear after our caller gave up.
        The creation therefore runs shielded and records the id itself; ``settle_creation`` waits for it.
        """

        async def run() -> T:
            made = await create()
            record(made)
            return made

        self._creating = asyncio.ensure_future(run())
        return await asyncio.shield(self._creating)

    async def settle_creation(self) -> None:
        """Before removing: let an in-flight creation finish, so that what it made is known and removed."""
        creating, self._creating = self._creating, None
        if creating is not None:
            await asyncio.wait({creating})
            if not creating.cancelled():
                creating.exception()  # the launch already reported it; here it only must not go unretrieved

    def note_end(self, reason: str, oom: bool) -> None:
        """Keep (and log once) how the kernel's container ended: the cause a user needs, an OOM kill above all."""
        if self.end_reason is not None or self.stopping:
            return
        self.end_reason = reason
        if oom:
            self.log.warning("Kernel %s: %s", self.kernel_id, reason)
        else:
            self.log.info("Kernel %s: %s", self.kernel_id, reason)

    async def _remove(self, keep_engine: bool = False) -> None:
        """Remove what this kernel created on the engine (container or service) and wait until it is gone."""
        raise NotImplementedError

    async def shutdown_requested(self, restart: bool = False) -> None:
        self.stopping = True
        await super().shutdown_requested(restart)

    async def kill(self, restart: bool = False) -> None:
        await self._remove(keep_engine=restart)

    async def cleanup(self, restart: bool = False) -> None:
        await self._remove(keep_engine=restart)
        await super().cleanup(restart)

    async def detach(self) -> None:
        await self.release_engine()

    async def wait_changed(self, changed: asyncio.Event, timeout: float | None) -> None:
        """Sleep until Docker reports something about this kernel, or until ``timeout``."""
        await wait_changed(changed, timeout)
