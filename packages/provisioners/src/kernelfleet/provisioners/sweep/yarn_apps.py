"""YARN applications with this server's tag (``kf-server-<id>``, lower-cased as YARN keeps tags) that have not
ended, on every ResourceManager a ``yarn-provisioner`` kernelspec (or the server's own config) names, killed by
application id (``PUT /apps/{id}/state`` KILLED) after a fresh look at the app: one that has ended meanwhile is
gone, one whose tags no longer name this server is left alone.

The kernel id is the app's name (the provisioner submits it as the name, spark-submit gets ``--name
{kernel_id}``); its ``kf-kernel-<id>`` tag, lower-cased, stands in when the name is something else.
"""

from __future__ import annotations

import asyncio
import getpass
import time
from collections import defaultdict
from collections.abc import Mapping
from typing import Any

from kernelfleet.protocol.constants import KERNEL_ID_PATTERN
from kernelfleet.provisioners.sweep.model import YARN, EngineUnavailable, Orphan, Outcome, Removal, YarnTarget
from kernelfleet.provisioners.yarn.client import (
    ResourceManagerClient,
    RMUnavailable,
    YarnError,
    load_authorization_hook,
    wait_for_state,
)
from kernelfleet.provisioners.yarn.submission import KERNEL_TAG_PREFIX, SERVER_TAG_PREFIX

APPLICATION = "application"
LIVE_STATES = "NEW,NEW_SAVING,SUBMITTED,ACCEPTED,RUNNING"
FINAL_STATES = frozenset({"FINISHED", "FAILED", "KILLED"})
KILL_TIMEOUT = 60.0


def client_for(target: YarnTarget) -> ResourceManagerClient:
    """A client as the provisioner makes one: simple auth as this user, or the configured hook (SPNEGO)."""
    hook = load_authorization_hook(target.authorization_hook) if target.authorization_hook else None
    return ResourceManagerClient(list(target.endpoints), user=getpass.getuser(), authorization=hook)


def _tags(app: Mapping[str, Any]) -> set[str]:
    return {t.strip() for t in str(app.get("applicationTags") or "").split(",") if t.strip()}


def app_orphan(app: Mapping[str, Any], server_id: str, target: YarnTarget, now_ms: int) -> Orphan | None:
    """The orphan a listed app stands for: live, tagged with this server, its kernel id known; else None."""
    tags = _tags(app)
    if f"{SERVER_TAG_PREFIX}{server_id}".lower() not in tags or str(app.get("state")) in FINAL_STATES:
        return None
    tagged = next((t.removeprefix(KERNEL_TAG_PREFIX) for t in sorted(tags) if t.startswith(KERNEL_TAG_PREFIX)), "")
    name = str(app.get("name") or "")
    kernel_id = name if KERNEL_ID_PATTERN.match(name) and (not tagged or name.lower() == tagged) else tagged
    app_id = str(app.get("id") or "")
    if not app_id or not KERNEL_ID_PATTERN.match(kernel_id):
        return None
    age = max(0.0, (now_ms - int(app.get("startedTime") or now_ms)) / 1000)
    return Orphan(YARN, APPLICATION, app_id, app_id, kernel_id, age, server_id, location=target.endpoints[0],
                  yarn=target)


async def find(server_id: str, target: YarnTarget) -> list[Orphan]:
    """This server's live apps on one RM (one ``GET /apps``, filtered by state and tag)."""
    try:
        rm = client_for(target)
        try:
            listing = await rm.apps(states=LIVE_STATES, applicationTags=f"{SERVER_TAG_PREFIX}{server_id}".lower())
        finally:
            await rm.close()
    except (YarnError, RMUnavailable, ValueError) as err:
        raise EngineUnavailable(str(err)) from None
    now_ms = int(time.time() * 1000)
    return [o for o in (app_orphan(app, server_id, target, now_ms) for app in listing) if o is not None]


async def remove(orphans: list[Orphan]) -> list[Removal]:
    """Kill each app by id once its current report still names this server; wait until YARN says it ended."""
    by_target: dict[YarnTarget, list[Orphan]] = defaultdict(list)
    for orphan in orphans:
        assert orphan.yarn is not None
        by_target[orphan.yarn].append(orphan)
    batches = await asyncio.gather(*(_remove_on(target, batch) for target, batch in by_target.items()))
    return [removal for batch in batches for removal in batch]


async def _remove_on(target: YarnTarget, orphans: list[Orphan]) -> list[Removal]:
    try:
        rm = client_for(target)
    except ValueError as err:
        return [Removal(orphan, Outcome.FAILED, str(err)) for orphan in orphans]
    try:
        return list(await asyncio.gather(*(_remove_one(rm, orphan) for orphan in orphans)))
    finally:
        await rm.close()


async def _remove_one(rm: ResourceManagerClient, orphan: Orphan) -> Removal:
    try:
        app = await rm.app(orphan.object_id)
        if str(app.get("state")) in FINAL_STATES:
            return Removal(orphan, Outcome.GONE)
        if f"{SERVER_TAG_PREFIX}{orphan.server_id}".lower() not in _tags(app):
            return Removal(orphan, Outcome.LEFT)
        if await rm.kill(orphan.object_id) not in FINAL_STATES:
            async with asyncio.timeout(KILL_TIMEOUT):
                await wait_for_state(rm, orphan.object_id, FINAL_STATES.__contains__)
    except YarnError as err:
        if err.status == 404:
            return Removal(orphan, Outcome.GONE)
        return Removal(orphan, Outcome.FAILED, str(err))
    except RMUnavailable as err:
        return Removal(orphan, Outcome.FAILED, str(err))
    except TimeoutError:
        return Removal(orphan, Outcome.FAILED, f"not ended {KILL_TIMEOUT:g}s after YARN was asked to kill it")
    return Removal(orphan, Outcome.REMOVED)
