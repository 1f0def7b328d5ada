"""Warm-pool standbys as Docker Swarm services (``docker-swarm-provisioner``): the ``StandbyEngine`` of
``kernelfleet.provisioners.pool`` for this engine, and the provisioner's side of taking one from its pool.

A standby is a one-task service created like a cold kernel's (the task of ``docker.standbys.standby_launch``: same
image, user, network, mounts, limits, the environment of an empty request), its registration token in a Docker secret
of its own mounted as the launch token file, exactly as a cold launch's token. The service and the secret carry the
server's identity, ``app`` and the pool labels (``LABEL_STANDBY``, ``LABEL_POOL``) but no kernel data; the service is
named ``kf-standby-<hex>``.

At the claim the **service-level** labels of the service (and the labels of its secret) get the kernel's
(``kernel_id``, ``component=kernel``). Only the service's own labels change, never its task template, so Swarm
redeploys nothing: the running task and its container stay (checked by the tests against the real swarm). The
provisioner records the service's and the secret's ids, as for a cold launch: poll, wait, shutdown, reattach and the
orphan sweep (``sweep.docker_objects``, which reads the service's labels) work the same. Swarm cannot rename a
service, so a pooled kernel's service keeps its standby name; its task's container keeps the standby's labels, and
waiters are woken by the container events of the service (``DockerEngine`` wakes by ``com.docker.swarm.service.id``).
"""

from __future__ import annotations

import dataclasses
import json
import secrets
from dataclasses import dataclass
from typing import Any

import aiodocker

from kernelfleet.protocol import contract
from kernelfleet.provisioners.broker import ResponseBroker
from kernelfleet.provisioners.docker.common import wait_changed
from kernelfleet.provisioners.docker.engine import (
    ENGINE_ERRORS,
    LABEL_SWARM_SERVICE_ID,
    DockerEngine,
    describe_engine_error,
)
from kernelfleet.provisioners.docker.specs import DockerLaunch, TokenSecret, task_template
from kernelfleet.provisioners.docker.standbys import (
    LABEL_STANDBY,
    STANDBY_NAME_PREFIX,
    ShieldedStandbys,
    claim_prepared,
    container_pool_id,
    container_poolable,
    standby_launch,
    take_container_standby,
)
from kernelfleet.provisioners.docker.swarm import (
    FIRST_RECHECK,
    LAST_RECHECK,
    LIVE_STATES,
    TOKEN_SECRET_FILE,
    DockerSwarmProvisioner,
    latest_task,
)
from kernelfleet.provisioners.labels import kernel_labels
from kernelfleet.provisioners.pool import WarmPool, pool_for
from kernelfleet.provisioners.server_identity import LABEL_SERVER


@dataclass
class SwarmStandby:
    """One standby service, its token secret, and the Docker engine lease that goes with them (the kernel's from its
    claim on)."""

    engine: DockerEngine
    standby_id: str
    service_id: str
    name: str
    secret_id: str
    secret_name: str


class SwarmStandbys(ShieldedStandbys[SwarmStandby]):
    """Creates, watches and removes one pool's standby services."""

    name = "swarm"

    def __init__(self, launch: DockerLaunch, token_file: str) -> None:
        self.launch = launch  # the standby's task, its id-specific values filled in per standby
        self.token_file = token_file

    async def _start(self, standby_id: str, token: str) -> SwarmStandby:
        engine = DockerEngine.acquire()
        client = engine.client
        suffix = standby_id.removeprefix("standby-")
        name, secret_name = f"{STANDBY_NAME_PREFIX}{suffix}", f"kf-launch-{secrets.token_hex(4)}-{standby_id}"
        labels = {**self.launch.labels, LABEL_STANDBY: standby_id}
        env = {**self.launch.env, contract.KERNEL_ID: standby_id, contract.STANDBY_ID: standby_id}
        secret_id = service_id = None
        try:
            secret_id = str((await client.secrets.create(secret_name, token, labels=labels))["ID"])
            template = task_template(dataclasses.replace(self.launch, env=env, labels=labels),
                                     TokenSecret(secret_id, secret_name, self.token_file))
            service_id = str((await client.services.create(template, name=name, labels=labels))["ID"])
        except ENGINE_ERRORS as err:
            await _delete(client, service_id, secret_id)
            await engine.release()
            raise RuntimeError(f"Docker Swarm could not create standby service {name} from image "
                               f"{self.launch.image!r}: {describe_engine_error(err)}") from None
        return SwarmStandby(engine, standby_id, service_id, name, secret_id, secret_name)

    async def exited(self, handle: SwarmStandby) -> str:
        """Until Swarm says the standby's task ended (woken by its container's events, re-read with a back-off: a task
        rejected before it had a container makes no event)."""
        delay = FIRST_RECHECK
        with handle.engine.watch(handle.service_id) as changed:
            while True:
                try:
                    tasks = await handle.engine.client.tasks.list(filters={"service": handle.service_id})
                except aiodocker.DockerError as err:
                    if err.status == 404:
                        return f"service {handle.name} was removed"
                    raise
                task = latest_task(list(tasks))
                status = (task or {}).get("Status") or {}
                if task is not None and status.get("State") not in LIVE_STATES:
                    code = (status.get("ContainerStatus") or {}).get("ExitCode")
                    return (f"service {handle.name} task is {status.get('State')}: "
                            f"{status.get('Err') or status.get('Message') or ''}"
                            + (f" (exit code {code})" if code is not None else ""))
                await wait_changed(changed, delay)
                delay = min(delay * 2, LAST_RECHECK)

    async def _stop(self, handle: SwarmStandby) -> None:
        try:
            await _delete(handle.engine.client, handle.service_id, handle.secret_id)
        finally:
            await handle.engine.release()


async def _delete(client: aiodocker.Docker, service_id: str | None, secret_id: str | None) -> None:
    """Delete a standby's service, its task containers on this node (they would stop only after their grace period)
    and then its secret (Swarm keeps a secret while a service names it); "not found" is fine."""
    if service_id is not None:
        await _missing_ok(client.services.delete(service_id))
        label = json.dumps({"label": [f"{LABEL_SWARM_SERVICE_ID}={service_id}"]})
        for container in await client.containers.list(all=True, filters=label):
            await _missing_ok(container.delete(force=True, v=True))
    if secret_id is not None:
        await _missing_ok(client.secrets.delete(secret_id))


async def _missing_ok(call: Any) -> None:
    try:
        await call
    except aiodocker.DockerError as err:
        if err.status != 404:
            raise


# ------------------------------------------------------------------------------------- the provisioner's side
def swarm_pool(p: DockerSwarmProvisioner, broker: ResponseBroker) -> WarmPool:
    """The running loop's pool for ``p``'s kernelspec and service settings, created on first use."""
    identity = container_pool_id(p)
    kernel_name = p.pool_kernel_name()

    def create() -> WarmPool:
        pool_settings = p.pool_settings(identity)
        engine = SwarmStandbys(standby_launch(p, identity), TOKEN_SECRET_FILE)
        pool = WarmPool(pool_settings, engine, broker, p.log)
        p.log.info("Pool %s: created for kernelspec %s (%d standbys, Swarm services of %s)", identity, kernel_name,
                   pool_settings.size, engine.launch.image)
        return pool

    return pool_for(identity, create)


async def _label_as_kernel(p: DockerSwarmProvisioner, standby: SwarmStandby) -> None:
    """Give the service (service-level labels only: its task is not redeployed) and its secret the kernel's labels."""
    client = standby.engine.client
    labels = kernel_labels(str(p.kernel_id), {LABEL_SERVER: p.server_id})
    service = await client.services.inspect(standby.service_id)
    spec = dict(service["Spec"])
    spec["Labels"] = {**(spec.get("Labels") or {}), **labels}
    await client._query_json(f"services/{standby.service_id}/update", method="POST", data=json.dumps(spec),
                             params={"version": str(service["Version"]["Index"])})
    secret = await client.secrets.inspect(standby.secret_id)
    await client.secrets.update(standby.secret_id, str(secret["Version"]["Index"]),
                                labels={**(secret["Spec"].get("Labels") or {}), **labels})


def swarm_poolable(p: DockerSwarmProvisioner, standby: DockerLaunch | None) -> str | None:
    """``container_poolable`` for Python kernelspecs only: R standbys on Swarm are not tested yet (they start cold)."""
    if p.kernel_language.lower() != "python":
        return "only Python kernels are pooled on Swarm"
    return container_poolable(p, standby)


async def claim_swarm_standby(p: DockerSwarmProvisioner) -> tuple[WarmPool | None, SwarmStandby | None]:
    """Take a standby service from ``p``'s pool, label it as the kernel's and claim it: the pool taken from
    (``launched()`` is due when the launch ends) and the claimed standby, None when the launch must go cold."""
    taken = await take_container_standby(p, swarm_pool, swarm_poolable)
    if taken is None:
        return None, None
    pool, link = taken
    assert isinstance(pool.engine, SwarmStandbys)
    standby: SwarmStandby = link.handle
    # labelled first: a standby that takes the claim reports, so it must be the kernel's service by then
    if not await claim_prepared(p, pool, link, lambda: _label_as_kernel(p, standby),
                                f"Docker Swarm could not label service {standby.name}"):
        return pool, None
    p.log.info("Kernel %s: claimed standby %s of pool %s (swarm service %s, %s)", p.kernel_id, link.standby_id,
               pool.pool_id, standby.name, standby.service_id[:12])
    return pool, standby
