"""Containers, Swarm services and Swarm secrets with this server's label, and their removal by Docker id.

A warm pool's standby container carries no ``kernel_id`` label (Docker cannot add one at its claim): it is
listed under the kernel id its name carries once claimed, and under its standby id once it stopped unclaimed. A Swarm
standby service gets its kernel's labels at the claim; unclaimed, it is listed under its standby id once its task
ended.
Swarm task containers carry their service's labels too; they are the service's to remove (deleting the service
stops them), so they are not listed on their own. A secret can go only once no service uses it: services are
removed first.
"""

from __future__ import annotations

import datetime
import json
from typing import Any

import aiodocker

from kernelfleet.protocol.constants import KERNEL_ID_PATTERN
from kernelfleet.provisioners.docker.engine import ENGINE_ERRORS, LABEL_SWARM_SERVICE_ID, describe_engine_error
from kernelfleet.provisioners.docker.standbys import LABEL_STANDBY, STANDBY_NAME_PREFIX, kernel_id_of_name
from kernelfleet.provisioners.labels import LABEL_KERNEL_ID
from kernelfleet.provisioners.server_identity import LABEL_SERVER
from kernelfleet.provisioners.sweep.model import DOCKER, SWARM, EngineUnavailable, Orphan, Outcome, Removal

CONTAINER, SERVICE, SECRET = "container", "service", "secret"


def age_of(created: str, now: datetime.datetime) -> float:
    """Seconds since Docker's RFC 3339 timestamp (nanoseconds cut to what Python parses)."""
    text = created.rstrip("Z")
    head, _, fraction = text.partition(".")
    stamp = datetime.datetime.fromisoformat(head + (f".{fraction[:6]}" if fraction else "")).replace(
        tzinfo=datetime.UTC)
    return max(0.0, (now - stamp).total_seconds())


def _label_filter(server_id: str) -> str:
    return json.dumps({"label": [f"{LABEL_SERVER}={server_id}"]})


def _kernel_id(labels: dict[str, str] | None) -> str | None:
    kernel_id = (labels or {}).get(LABEL_KERNEL_ID, "")
    return kernel_id if KERNEL_ID_PATTERN.match(kernel_id) else None


def _standby_kernel_id(labels: dict[str, str], name: str, state: str) -> str | None:
    """A warm pool's standby container (``docker.standbys``). Claimed (renamed to its kernel's container name): the
    kernel id its name carries, as for a cold kernel's container. Unclaimed: its standby id (no session claims it),
    but only once it stopped: a standby exits when its server's connection ends, so a running one is a live
    server's pool."""
    if not name.startswith(STANDBY_NAME_PREFIX):
        return kernel_id_of_name(name)
    standby_id = labels.get(LABEL_STANDBY, "")
    return standby_id if state != "running" and KERNEL_ID_PATTERN.match(standby_id) else None


async def _client() -> aiodocker.Docker:
    """A client of its own (the provisioners' shared one follows the event stream, which a sweep does not need)."""
    client = aiodocker.Docker()
    try:
        await client.version()
    except ENGINE_ERRORS as err:
        await client.close()
        raise EngineUnavailable(describe_engine_error(err)) from None
    return client


async def find(server_id: str, *, swarm: bool, containers: bool) -> tuple[list[Orphan], dict[str, str]]:
    """The orphans on the local Docker engine; ``swarm``/``containers`` choose what is looked at. Returns what could
    not be searched as {engine: why} (a Docker engine that is not a swarm manager has no services)."""
    client = await _client()
    now = datetime.datetime.now(datetime.UTC)
    found: list[Orphan] = []
    unavailable: dict[str, str] = {}
    try:
        if containers:
            for container in await client.containers.list(all=True, filters=_label_filter(server_id)):
                info = container._container
                labels = info.get("Labels") or {}
                name = str((info.get("Names") or [container.id[:12]])[0]).lstrip("/")
                kernel_id = _standby_kernel_id(labels, name, str(info.get("State"))) if LABEL_STANDBY in labels \
                    else _kernel_id(labels)
                if kernel_id is None or LABEL_SWARM_SERVICE_ID in labels:
                    continue
                details = await client.containers.get(container.id)
                found.append(Orphan(DOCKER, CONTAINER, name, container.id, kernel_id,
                                    age_of(details["Created"], now), server_id))
        if swarm:
            state = ((await client.system.info()).get("Swarm") or {})
            if state.get("LocalNodeState") != "active" or not state.get("ControlAvailable"):
                unavailable[SWARM] = "this Docker engine is not a swarm manager"
            else:
                found += await _swarm_objects(client, server_id, now)
    except ENGINE_ERRORS as err:
        raise EngineUnavailable(describe_engine_error(err)) from None
    finally:
        await client.close()
    return found, unavailable


async def _swarm_objects(client: aiodocker.Docker, server_id: str, now: datetime.datetime) -> list[Orphan]:
    """Services and secrets with this server's label. An unclaimed standby service (``docker.swarm_standbys``: the
    standby label, no kernel id) is listed under its standby id once its task has ended (its server's connection
    ended, so it exited), never while it runs; its secret goes with it, or once no service of the standby is left.
    A claimed one carries its kernel's labels, service and secret alike."""
    found = []
    label = {"label": [f"{LABEL_SERVER}={server_id}"]}
    live_standbys: set[str] = set()
    for service in await client.services.list(filters=label):
        labels = (service.get("Spec") or {}).get("Labels") or {}
        kernel_id = _kernel_id(labels)
        if kernel_id is None and LABEL_STANDBY in labels:
            kernel_id = await _ended_standby(client, service, live_standbys)
        if kernel_id is not None:
            found.append(Orphan(SWARM, SERVICE, str(service["Spec"]["Name"]), str(service["ID"]), kernel_id,
                                age_of(service["CreatedAt"], now), server_id))
    for secret in await client.secrets.list(filters=label):
        labels = (secret.get("Spec") or {}).get("Labels") or {}
        kernel_id = _kernel_id(labels)
        standby_id = labels.get(LABEL_STANDBY, "")
        if kernel_id is None and standby_id not in live_standbys and KERNEL_ID_PATTERN.match(standby_id):
            kernel_id = standby_id
        if kernel_id is not None:
            found.append(Orphan(SWARM, SECRET, str(secret["Spec"]["Name"]), str(secret["ID"]), kernel_id,
                                age_of(secret["CreatedAt"], now), server_id))
    return found


async def _ended_standby(client: aiodocker.Docker, service: dict[str, Any], live: set[str]) -> str | None:
    """The standby id of an unclaimed standby service whose task has ended; None (and noted in ``live``) while its
    task is live."""
    from kernelfleet.provisioners.docker.swarm import LIVE_STATES, latest_task

    standby_id = str(service["Spec"]["Labels"][LABEL_STANDBY])
    task = latest_task(list(await client.tasks.list(filters={"service": str(service["ID"])})))
    if task is not None and ((task.get("Status") or {}).get("State") in LIVE_STATES):
        live.add(standby_id)
        return None
    return standby_id if KERNEL_ID_PATTERN.match(standby_id) else None


async def remove(orphans: list[Orphan]) -> list[Removal]:
    """Services first (with their task containers), then secrets and containers; each by its id."""
    order = {SERVICE: 0, CONTAINER: 1, SECRET: 2}
    try:
        client = await _client()
    except EngineUnavailable as err:
        return [Removal(orphan, Outcome.FAILED, str(err)) for orphan in orphans]
    try:
        return [await _remove_one(client, orphan) for orphan in sorted(orphans, key=lambda o: order[o.kind])]
    finally:
        await client.close()


async def _remove_one(client: aiodocker.Docker, orphan: Orphan) -> Removal:
    try:
        if orphan.kind == CONTAINER:
            await client.containers.container(orphan.object_id).delete(force=True, v=True)
        elif orphan.kind == SERVICE:
            await client.services.delete(orphan.object_id)
            await _remove_task_containers(client, orphan.object_id)
        else:
            await client.secrets.delete(orphan.object_id)
    except aiodocker.DockerError as err:
        if err.status == 404:
            return Removal(orphan, Outcome.GONE)
        return Removal(orphan, Outcome.FAILED, describe_engine_error(err))
    except ENGINE_ERRORS as err:
        return Removal(orphan, Outcome.FAILED, describe_engine_error(err))
    return Removal(orphan, Outcome.REMOVED)


async def _remove_task_containers(client: aiodocker.Docker, service_id: str) -> None:
    """A deleted service's task containers on this node stop only after their grace period: remove them now."""
    filters = json.dumps({"label": [f"{LABEL_SWARM_SERVICE_ID}={service_id}"]})
    for container in await client.containers.list(all=True, filters=filters):
        try:
            await container.delete(force=True, v=True)
        except aiodocker.DockerError as err:
            if err.status != 404:
                raise
