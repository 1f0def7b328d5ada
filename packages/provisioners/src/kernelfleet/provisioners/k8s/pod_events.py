"""A kernel pod's own Events (Scheduled, Pulling, Pulled, Started, BackOff, ...), forwarded as launch events.

``KubernetesProvisioner.start_launcher`` runs ``forward_pod_events`` once its pod exists, for the length of the
launch only (``launch_kernel`` cancels it): one list, then one watch from its version, of the namespace's Events
with a field selector on the pod's name, the same selector ``kubectl describe`` uses. The scheduler's and
kubelet's reasons map onto the schema's phases (``event_phase``); the rest are forwarded as ``engine_event`` with
the reason and message as they came.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from kubernetes_asyncio import client, watch

from kernelfleet.provisioners.launch_events import LaunchProgress, Phase

log = logging.getLogger("kernelfleet.kubernetes")

REASON_PHASES = {"Scheduled": Phase.SCHEDULED, "Pulling": Phase.IMAGE_PULL, "Pulled": Phase.IMAGE_PULL,
                 "Started": Phase.STARTED}
# Events of one second (their timestamps' resolution) are put in the order a pod lives them.
REASON_RANK = {"Scheduled": 0, "Pulling": 1, "Pulled": 2, "Created": 3, "Started": 4}


def event_phase(reason: str) -> Phase:
    """The launch phase a pod Event's reason stands for."""
    return REASON_PHASES.get(reason, Phase.ENGINE_EVENT)


def event_order(event: Any) -> tuple[str, int]:
    """When an Event happened, for the events that were there before the watch: its timestamp, then the lifecycle."""
    stamp = event.last_timestamp or event.event_time or event.first_timestamp or event.metadata.creation_timestamp
    return (stamp.isoformat() if stamp is not None else ""), REASON_RANK.get(str(event.reason or ""), len(REASON_RANK))


def event_key(event: Any) -> tuple[str, int]:
    """An Event is new when its uid is, or when its count grew (a repeated BackOff is the same object)."""
    return str(event.metadata.uid), int(event.count or 1)


async def forward_pod_events(core: client.CoreV1Api, namespace: str, pod_name: str, pod_uid: Callable[[], str | None],
                             progress: LaunchProgress, timeout: float) -> None:
    """Forward the Events about pod ``pod_name`` (of uid ``pod_uid()``, once known) until cancelled or ``timeout``.
    An API error ends the forwarding with a debug line: events are news, the launch does not depend on them."""
    seen: set[tuple[str, int]] = set()
    selector = f"involvedObject.name={pod_name}"

    def forward(event: Any) -> None:
        uid = pod_uid()
        if uid is not None and event.involved_object.uid not in (None, uid):
            return  # an Event about an earlier pod of the same name
        key = event_key(event)
        if key in seen:
            return
        seen.add(key)
        reason = str(event.reason or "")
        host = event.source.host if event.source is not None and reason == "Started" else None
        progress.forward(event_phase(reason), reason, str(event.message or ""), host=host)

    try:
        async with watch.Watch() as stream:  # closes the stream's response when cancelled, too
            # List, in the order they happened, then watch from that list's version: none missed or reordered.
            listed = await core.list_namespaced_event(namespace, field_selector=selector)
            for event in sorted(listed.items, key=event_order):
                forward(event)
            async for item in stream.stream(core.list_namespaced_event, namespace, field_selector=selector,
                                            resource_version=listed.metadata.resource_version,
                                            timeout_seconds=max(1, int(timeout))):
                event = item.get("object")
                if item.get("type") != "DELETED" and event is not None and hasattr(event, "involved_object"):
                    forward(event)
    except Exception as err:
        log.debug("Kernel %s: pod events of %s/%s no longer followed: %s", progress.kernel_id, namespace, pod_name,
                  err)
