"""Warm-pool standbys as Docker containers (``docker-provisioner``): the ``StandbyEngine`` of
``kernelfleet.provisioners.pool`` for this engine, and the provisioner's side of taking one from its pool.

A standby container is created like a cold kernel's (same image, user, network, mounts, limits; the registration
token copied in as the launch token file before it starts), with the environment a cold launch would give it
without any request: ``KERNEL_ID`` is the standby's own id and ``KF_STANDBY_ID``/``KF_STANDBY_POOL`` say it waits
for a claim. Docker cannot change a container's labels once it exists, so a standby carries the server's identity,
``app`` and the pool labels (``LABEL_STANDBY``, ``LABEL_POOL``) but no ``kernel_id``; it is named
``kf-standby-<hex>``. At the claim it is **renamed** to the name a cold launch of the kernel gets
(``resource_name``), and from then on the container's id (in the provisioner info) and that name identify it: the
Docker event stream wakes waiters by container id as well as by kernel id, and the orphan sweep reads a claimed
standby's kernel id from its name (``kernel_id_of_name``). That is exact only when the kernel id is the name's
whole tail, so only kernels with a UUID id (what jupyter_server gives every kernel) are pooled; others go cold.

Only a request that settles to the standby's container (same image, uid, gid; no per-request working directory
that the kernelspec does not mirror) can be served: a running container cannot change those.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import aiodocker

from kernelfleet.protocol import contract
from kernelfleet.protocol.standby import Claim
from kernelfleet.provisioners.broker import ResponseBroker
from kernelfleet.provisioners.container import LaunchInputs, settle_container
from kernelfleet.provisioners.docker.container_end import describe_container_end
from kernelfleet.provisioners.docker.engine import ENGINE_ERRORS, DockerEngine, describe_engine_error
from kernelfleet.provisioners.docker.specs import DockerLaunch, container_config
from kernelfleet.provisioners.pool import ClaimFailed, StandbyLink, WarmPool, pool_for
from kernelfleet.provisioners.pool.engine_calls import start_to_completion, stop_to_completion
from kernelfleet.provisioners.pool.spec import (
    COMPONENT_STANDBY,
    LABEL_POOL,
    LABEL_STANDBY,
    STANDBY_NAME_PREFIX,
    claim_env,
    standby_labels,
    standby_launcher,
    standby_name,
    standby_protocol_env,
)

if TYPE_CHECKING:
    from kernelfleet.provisioners.docker.common import DockerProvisionerBase
    from kernelfleet.provisioners.docker.provisioner import DockerProvisioner

ENDED = frozenset({"exited", "dead"})
__all__ = [
    "COMPONENT_STANDBY",
    "LABEL_POOL",
    "LABEL_STANDBY",
    "STANDBY_NAME_PREFIX",
    "DockerStandbys",
    "ShieldedStandbys",
    "claim_docker_standby",
    "claim_prepared",
    "container_claim",
    "container_pool_id",
    "container_poolable",
    "kernel_id_of_name",
    "standby_labels",
    "take_container_standby",
]
H = TypeVar("H")
UUID_TAIL = re.compile(r"-([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$")


def kernel_id_of_name(name: str) -> str | None:
    """The kernel id a claimed standby container's name carries (``kf-<user>-<uuid>``), None for any other name."""
    match = UUID_TAIL.search(name.lstrip("/"))
    return match[1] if match else None


@dataclass
class DockerStandby:
    """One standby container and the Docker engine lease that goes with it (handed to the kernel at its claim)."""

    engine: DockerEngine
    container_id: str
    name: str


class ShieldedStandbys(Generic[H]):
    """Start and stop of a Docker engine's standbys (containers, Swarm services) that complete when cancelled: the pool
    closing cancels them, and what Docker made must still be known and removed. Subclasses give ``_start``/``_stop``."""

    async def start(self, standby_id: str, token: str) -> H:
        """Create and start the standby; a cancelled start (the pool closing) still removes what it made."""
        return await start_to_completion(self._start(standby_id, token), self.stop)

    async def stop(self, handle: H) -> None:
        """Remove the standby and give back its lease; completes even when cancelled (the pool closing)."""
        await stop_to_completion(self._stop(handle))

    async def _start(self, standby_id: str, token: str) -> H:
        raise NotImplementedError

    async def _stop(self, handle: H) -> None:
        raise NotImplementedError


class DockerStandbys(ShieldedStandbys[DockerStandby]):
    """Creates, watches and removes one pool's standby containers."""

    name = "docker"

    def __init__(self, launch: DockerLaunch, token_dir: str, token_file: str) -> None:
        self.launch = launch  # the standby's container, its id-specific values filled in per standby
        self.token_dir = token_dir
        self.token_file = token_file

    async def _start(self, standby_id: str, token: str) -> DockerStandby:
        from kernelfleet.provisioners.docker.provisioner import token_archive

        engine = DockerEngine.acquire()
        name = standby_name(standby_id)
        labels = {**self.launch.labels, LABEL_STANDBY: standby_id}
        env = {**self.launch.env, contract.KERNEL_ID: standby_id, contract.STANDBY_ID: standby_id}
        config = container_config(dataclasses.replace(self.launch, env=env, labels=labels))
        container = None
        try:
            container = await engine.client.containers.create(config, name=name)
            await container.put_archive(self.token_dir, token_archive(self.token_file, token, self.launch.uid,
                                                                      self.launch.gid))
            await container.start()
        except ENGINE_ERRORS as err:
            if container is not None:
                await self._delete(engine, container.id)
            await engine.release()
            raise RuntimeError(f"Docker could not start standby container {name} from image {self.launch.image!r}: "
                               f"{describe_engine_error(err)}") from None
        return DockerStandby(engine, container.id, name)

    async def exited(self, handle: DockerStandby) -> str:
        """Until Docker says the container ended (woken by its events): how it ended, with its last output."""
        with handle.engine.watch(handle.container_id) as changed:
            while True:
                try:
                    info = await handle.engine.client.containers.get(handle.container_id)
                except aiodocker.DockerError as err:
                    if err.status == 404:
                        return f"container {handle.name} was removed"
                    raise
                if info["State"].get("Status") in ENDED:
                    container = handle.engine.client.containers.container(handle.container_id)
                    tail = "".join(await container.log(stdout=True, stderr=True, tail=5)).rstrip()
                    return describe_container_end(f"container {handle.name}", info) + (f": {tail}" if tail else "")
                await changed.wait()
                changed.clear()

    async def _stop(self, handle: DockerStandby) -> None:
        try:
            await self._delete(handle.engine, handle.container_id)
        finally:
            await handle.engine.release()

    @staticmethod
    async def _delete(engine: DockerEngine, container_id: str) -> None:
        try:
            await engine.client.containers.container(container_id).delete(force=True, v=True)
        except aiodocker.DockerError as err:
            if err.status != 404:
                raise


# ------------------------------------------------------------------------------------- the provisioner's side
def standby_launch(p: DockerProvisionerBase, pool: str) -> DockerLaunch:
    """The container every standby of ``p``'s pool runs: a cold launch's, settled from an empty request (Docker's
    containers, and the task of Swarm's standby services: ``docker.swarm_standbys``)."""
    inputs = LaunchInputs(launch_env=standby_protocol_env(p.launch_env, p.server_id), argv_settings=p.argv_settings(),
                          spec_env=dict(p.kernel_spec.env) if p.kernel_spec is not None else {})
    choice = settle_container(pool, p.container_settings(), {}, inputs)
    env = dict(choice.env)
    env.pop(contract.LAUNCH_TOKEN, None)
    env[contract.LAUNCH_TOKEN_FILE] = p.launch_token_path
    env[contract.STANDBY_POOL] = pool
    if p.init:
        env.setdefault("TINI_SUBREAPER", "1")
    return DockerLaunch(image=choice.image, uid=choice.uid, gid=choice.gid, env=env,
                        labels=standby_labels(p.server_id, pool, ""), network=p.network, init=p.init,
                        working_dir=None, mounts=tuple(dict(m) for m in p.mounts),
                        no_new_privileges=p.no_new_privileges, memory_bytes=p.memory_bytes)


def container_poolable(p: DockerProvisionerBase, standby: DockerLaunch | None) -> str | None:
    """Why this launch cannot come from ``p``'s pool of containers or services (None: it can). Without ``standby``
    (before the pool exists): only what the kernelspec decides, so that no pool is made for a kernelspec that never
    could use it. A running container cannot change its image, uid or gid."""
    if not standby_launcher(p.kernel_language):
        return "only the Python and R launchers have a standby mode"
    if standby is not None and (p.image, p.uid, p.gid) != (standby.image, standby.uid, standby.gid):
        return "the request chose another image, uid or gid than the pool's"
    return None


def poolable(p: DockerProvisioner, standby: DockerLaunch | None) -> str | None:
    """``container_poolable``, and the container's name must carry the kernel id whole (the sweep reads it there)."""
    if standby is not None and (p.container_name is None or kernel_id_of_name(p.container_name) != p.kernel_id):
        return "the kernel id is not a UUID the container's name carries whole"
    return container_poolable(p, standby)


def container_pool_id(p: DockerProvisionerBase, *more: object) -> str:
    """The id of ``p``'s pool: its kernelspec, server, and every setting its standbys' containers are made with."""
    settings = p.container_settings()
    return p.pool_identity(settings.image_name, settings.default_uid, settings.default_gid, p.network,  # type: ignore[attr-defined]
                           list(p.mounts), p.memory_limit, p.init, *more)


def docker_pool(p: DockerProvisioner, broker: ResponseBroker) -> WarmPool:
    """The running loop's pool for ``p``'s kernelspec and container settings, created on first use."""
    identity = container_pool_id(p, p.launch_token_dir)
    kernel_name = p.pool_kernel_name()

    def create() -> WarmPool:
        from kernelfleet.provisioners.docker.provisioner import TOKEN_FILE_NAME

        pool_settings = p.pool_settings(identity)
        engine = DockerStandbys(standby_launch(p, identity), p.launch_token_dir, TOKEN_FILE_NAME)
        pool = WarmPool(pool_settings, engine, broker, p.log)
        p.log.info("Pool %s: created for kernelspec %s (%d standbys, Docker containers of %s)", identity,
                   kernel_name, pool_settings.size, engine.launch.image)
        return pool

    return pool_for(identity, create)


PoolOf = Callable[[Any, ResponseBroker], WarmPool]
Poolable = Callable[[Any, "DockerLaunch | None"], "str | None"]


async def take_container_standby(p: DockerProvisionerBase, pool_of: PoolOf, poolable: Poolable
                                 ) -> tuple[WarmPool, StandbyLink] | None:
    """The first half of a container engine's claim (Docker's, Swarm's): the kernelspec may pool, its pool (made on
    first use by ``pool_of``) can serve this request, and a standby is ready; None when the launch goes cold."""
    why_not = poolable(p, None)
    pool = None
    if why_not is None:
        pool = pool_of(p, await ResponseBroker.instance(config=p.config))
        why_not = poolable(p, pool.engine.launch)  # type: ignore[attr-defined]
    if why_not is not None or pool is None:
        p.log.debug("Kernel %s: cold launch (%s)", p.kernel_id, why_not)
        return None
    link = pool.take()
    return None if link is None else (pool, link)


async def claim_prepared(p: DockerProvisionerBase, pool: WarmPool, link: StandbyLink,
                         prepare: Callable[[], Awaitable[None]], cannot: str) -> bool:
    """``prepare`` the taken standby as the kernel's (Docker's rename, Swarm's labels), then claim it; False when
    either fails: the standby is discarded (``cannot``: what the engine could not do) and the launch goes cold."""
    try:
        await prepare()
        await link.claim(container_claim(p, pool.engine.launch.env), timeout=p.comm_timeout)  # type: ignore[attr-defined]
    except ENGINE_ERRORS as err:
        pool.discard(link, f"{cannot}: {describe_engine_error(err)}")
        return False
    except ClaimFailed as err:
        pool.discard(link, str(err))
        return False
    return True


def container_claim(p: DockerProvisionerBase, standby_env: Mapping[str, str]) -> Claim:
    """The claim that gives a standby of ``standby_env`` this launch's container environment and working directory
    (the token file's path is the standby's own)."""
    assert p.pending is not None
    kernel_env = {k: v for k, v in p.container_env.items() if k != contract.LAUNCH_TOKEN_FILE}
    return Claim(str(p.kernel_id), p.pending.token, claim_env(kernel_env, standby_env), p.working_dir,
                 p.launch_env[contract.PORT_RANGE])


async def claim_docker_standby(p: DockerProvisioner) -> tuple[WarmPool | None, DockerStandby | None]:
    """Take a standby from ``p``'s pool, rename it to the kernel's container name and claim it: the pool taken from
    (``launched()`` is due when the launch ends) and the claimed standby, None when the launch must go cold."""
    assert p.pending is not None and p.container_name is not None
    taken = await take_container_standby(p, docker_pool, poolable)
    if taken is None:
        return None, None
    pool, link = taken
    assert isinstance(pool.engine, DockerStandbys)
    standby: DockerStandby = link.handle
    container_name = p.container_name

    async def rename() -> None:
        await standby.engine.client.containers.container(standby.container_id).rename(container_name)
        standby.name = container_name

    if not await claim_prepared(p, pool, link, rename, f"Docker could not rename it to {container_name}"):
        return pool, None
    p.log.info("Kernel %s: claimed standby %s of pool %s (container %s, %s)", p.kernel_id, link.standby_id,
               pool.pool_id, p.container_name, standby.container_id[:12])
    return pool, standby
