"""The orphan sweep: what this server created on its engines that no kernel session claims, and its removal.

A Jupyter server that is killed (or redeployed) leaves its kernels' launchers, containers, services, pods, Secrets,
namespaces, SparkApplications and YARN applications behind, including those of launches it was in the middle of.
Everything a provisioner creates carries the server's identity (``server_identity``; a YARN app its
``kf-server-<id>`` tag), so a server coming back with the same identity finds its leftovers: ``find_orphans(claimed)``
lists every object with this identity whose kernel id is not in ``claimed`` (the sessions it is about to reattach),
``remove_orphans`` removes them by id or uid, never by name alone. The session-persistence extension calls both at
server start; ``jupyter kernelfleet sweep`` is the operator's way (``cli/sweep.py``). An engine that is not
configured or does not answer is reported in ``Orphans.unavailable`` and the others are searched all the same.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import defaultdict
from collections.abc import Awaitable, Iterable, Sequence
from pathlib import Path
from typing import Any

from jupyter_core.paths import jupyter_runtime_dir

from kernelfleet.protocol.constants import KERNEL_ID_PATTERN
from kernelfleet.provisioners.server_identity import check_server_id, server_id_of
from kernelfleet.provisioners.sweep import (
    docker_objects,
    kubernetes_objects,
    local_processes,
    remote_processes,
    yarn_apps,
)
from kernelfleet.provisioners.sweep.model import (
    DOCKER,
    ENGINES,
    KUBERNETES,
    LOCAL,
    SSH,
    SWARM,
    YARN,
    EngineUnavailable,
    Orphan,
    Orphans,
    Outcome,
    Removal,
    SSHTarget,
    YarnTarget,
)

__all__ = [
    "ENGINES", "Orphan", "Orphans", "Outcome", "Removal", "SSHTarget", "YarnTarget", "claimed_kernel_ids",
    "default_store_dir", "find_orphans", "remove_orphans", "ssh_targets_from_kernelspecs",
    "yarn_targets_from_kernelspecs",
]

log = logging.getLogger("kernelfleet.sweep")
STORE_DIR_NAME = "kernelfleet-sessions"
DISTRIBUTED = "distributed-provisioner"
YARN_PROVISIONER = "yarn-provisioner"


def default_store_dir() -> Path:
    """Where the session store keeps one JSON file per kernel: ``<Jupyter runtime dir>/kernelfleet-sessions``."""
    return Path(jupyter_runtime_dir()) / STORE_DIR_NAME


def claimed_kernel_ids(store_dir: Path) -> set[str]:
    """The kernel ids the session store claims: each file's ``kernel_id``, and its name's stem as well (a file that
    cannot be read or is half written still claims its kernel: the safe side), and the standby id a kernel claimed in
    place from an R standby is found under (``provisioner_info.standby_id``). Blocking; FileNotFoundError when the
    store does not exist."""
    claimed: set[str] = set()
    for path in store_dir.iterdir():
        stem = path.name.split(".", 1)[0]
        if KERNEL_ID_PATTERN.match(stem):
            claimed.add(stem)
        try:
            saved = json.loads(path.read_text())
            info = saved.get("provisioner_info") or {}
            recorded = [saved.get("kernel_id"), info.get("standby_id") if isinstance(info, dict) else None]
        except (OSError, ValueError, AttributeError):
            continue
        claimed.update(r for r in recorded if isinstance(r, str) and KERNEL_ID_PATTERN.match(r))
    return claimed


def ssh_targets_from_kernelspecs(parent: Any = None) -> list[SSHTarget]:
    """The SSH hosts of every ``distributed-provisioner`` kernelspec, with the settings its provisioner would use
    (kernelspec config over the server's config). Blocking: it reads the kernelspecs."""
    from jupyter_client.kernelspec import KernelSpecManager

    from kernelfleet.provisioners.ssh.distributed import DistributedProvisioner, is_local_host

    targets: dict[SSHTarget, None] = {}
    for name, spec in KernelSpecManager(parent=parent).get_all_specs().items():
        provisioner = (spec.get("spec", {}).get("metadata") or {}).get("kernel_provisioner") or {}
        if provisioner.get("provisioner_name") != DISTRIBUTED:
            continue
        try:
            configured = DistributedProvisioner(parent=parent, **(provisioner.get("config") or {}))
        except Exception as err:  # a kernelspec its provisioner would refuse launches nothing either
            log.warning("Kernelspec %s: its provisioner config cannot be read for the sweep: %s", name, err)
            continue
        settings = configured.ssh_settings()
        for host in configured.remote_hosts:
            if not is_local_host(host):
                targets[SSHTarget(host, settings)] = None
    return list(targets)


def yarn_targets_from_kernelspecs(parent: Any = None) -> list[YarnTarget]:
    """The ResourceManagers of every ``yarn-provisioner`` kernelspec, and the server's own (``GP_YARN_ENDPOINT``,
    ``c.YarnProvisioner.yarn_endpoint``), with the authentication its provisioner would use. Blocking: it reads the
    kernelspecs."""
    from jupyter_client.kernelspec import KernelSpecManager

    from kernelfleet.provisioners.yarn.client import normalise_endpoint
    from kernelfleet.provisioners.yarn.provisioner import YarnProvisioner

    configs: dict[str, dict[str, Any]] = {"": {}}  # the server's own settings first
    for name, spec in KernelSpecManager(parent=parent).get_all_specs().items():
        provisioner = (spec.get("spec", {}).get("metadata") or {}).get("kernel_provisioner") or {}
        if provisioner.get("provisioner_name") == YARN_PROVISIONER:
            configs[name] = provisioner.get("config") or {}
    targets: dict[YarnTarget, None] = {}
    for name, config in configs.items():
        try:
            configured = YarnProvisioner(parent=parent, **config)
            endpoints = tuple(normalise_endpoint(e) for e in configured.endpoints())
        except Exception as err:  # a kernelspec its provisioner would refuse launches nothing either
            log.warning("Kernelspec %s: its provisioner config cannot be read for the sweep: %s", name, err)
            continue
        if endpoints:
            hook = configured.authorization_hook if configured.yarn_endpoint_security_enabled else ""
            targets[YarnTarget(endpoints, hook)] = None
    return list(targets)


async def find_orphans(
    claimed: set[str],
    *,
    server_id: str | None = None,
    engines: Iterable[str] | None = None,
    ssh_targets: Sequence[SSHTarget] | None = None,
    yarn_targets: Sequence[YarnTarget] | None = None,
    min_age: float = 0.0,
    parent: Any = None,
) -> Orphans:
    """Everything with this server's identity on the chosen ``engines`` (default all) whose kernel id is not in
    ``claimed`` and that is at least ``min_age`` seconds old (a younger one may be a launch in progress of a running
    server; at server start nothing of ours is in progress, so 0 is right there).

    ``server_id`` defaults to the configured identity (``ServerIdentity`` under ``parent``); ``ssh_targets`` to the
    hosts of the installed ``distributed-provisioner`` kernelspecs, ``yarn_targets`` to the ResourceManagers of the
    ``yarn-provisioner`` ones and the server's. Never raises for an engine that is missing or unreachable: those are
    in ``unavailable`` of the result. Kernel ids are compared without case (YARN lower-cases the tags that carry
    them): a claim never misses its kernel.
    """
    sid = check_server_id(server_id, "server id") if server_id is not None else server_id_of(parent)
    chosen = _chosen(engines)
    searches: dict[str, Awaitable[list[Orphan]]] = {}
    unavailable: dict[str, str] = {}
    if LOCAL in chosen:
        searches[LOCAL] = local_processes.find(sid)
    if SSH in chosen:
        targets = ssh_targets if ssh_targets is not None else await asyncio.to_thread(ssh_targets_from_kernelspecs,
                                                                                      parent)
        if not targets:
            unavailable[SSH] = "no SSH hosts are configured (no distributed-provisioner kernelspec names one)"
        for target in targets:
            searches[f"{SSH}:{target.host}"] = remote_processes.find(sid, target)
    if DOCKER in chosen or SWARM in chosen:
        searches[DOCKER if DOCKER in chosen else SWARM] = _docker(sid, chosen, unavailable)
    if KUBERNETES in chosen:
        searches[KUBERNETES] = kubernetes_objects.find(sid)
    if YARN in chosen:
        rms = yarn_targets if yarn_targets is not None else await asyncio.to_thread(yarn_targets_from_kernelspecs,
                                                                                   parent)
        if not rms:
            unavailable[YARN] = ("no ResourceManager is configured (no yarn-provisioner kernelspec, "
                                 "c.YarnProvisioner.yarn_endpoint or GP_YARN_ENDPOINT names one)")
        for rm in rms:
            searches[f"{YARN}:{rm.endpoints[0]}"] = yarn_apps.find(sid, rm)
    outcomes = await asyncio.gather(*searches.values(), return_exceptions=True)
    found: list[Orphan] = []
    for where, outcome in zip(searches, outcomes, strict=True):
        if isinstance(outcome, EngineUnavailable):
            unavailable[where] = str(outcome)
        elif isinstance(outcome, BaseException):
            raise outcome
        else:
            found += outcome
    claimed_ids = {kernel_id.lower() for kernel_id in claimed}
    orphans = [o for o in found if o.kernel_id.lower() not in claimed_ids and o.age >= min_age]
    for where, why in unavailable.items():
        log.warning("Orphan sweep: %s could not be searched: %s", where, why)
    log.info("Orphan sweep (server %s): %d unclaimed object(s) found", sid, len(orphans))
    return Orphans(orphans, unavailable)


async def _docker(server_id: str, chosen: set[str], unavailable: dict[str, str]) -> list[Orphan]:
    try:
        found, missing = await docker_objects.find(server_id, swarm=SWARM in chosen, containers=DOCKER in chosen)
    except EngineUnavailable as err:
        if SWARM in chosen and DOCKER in chosen:
            unavailable[SWARM] = str(err)
        raise
    unavailable.update(missing)
    return found


def _chosen(engines: Iterable[str] | None) -> set[str]:
    chosen = set(ENGINES if engines is None else engines)
    unknown = chosen - set(ENGINES)
    if unknown:
        raise ValueError(f"unknown engine(s) {sorted(unknown)}; the sweep knows {', '.join(ENGINES)}")
    return chosen


async def remove_orphans(orphans: Iterable[Orphan]) -> list[Removal]:
    """Remove each orphan by its id or uid (after a fresh identity check where the engine allows one); one log
    line per removal. Engines are worked on concurrently, the objects of one engine in dependency order."""
    by_engine: dict[str, list[Orphan]] = defaultdict(list)
    for orphan in orphans:
        by_engine[orphan.engine].append(orphan)
    removers = {LOCAL: local_processes.remove, SSH: remote_processes.remove, KUBERNETES: kubernetes_objects.remove,
                YARN: yarn_apps.remove}
    docker_side = by_engine.pop(DOCKER, []) + by_engine.pop(SWARM, [])
    jobs = [removers[engine](batch) for engine, batch in by_engine.items()]
    if docker_side:
        jobs.append(docker_objects.remove(docker_side))
    removals = [removal for batch in await asyncio.gather(*jobs) for removal in batch]
    for removal in removals:
        orphan = removal.orphan
        level = logging.WARNING if removal.outcome is Outcome.FAILED else logging.INFO
        log.log(level, "Kernel %s: orphaned %s %s %s %s%s", orphan.kernel_id, orphan.engine, orphan.kind,
                orphan.name, removal.outcome.value, f": {removal.message}" if removal.message else "")
    return removals
