"""Pods, launch Secrets, per-kernel namespaces, SparkApplications and the objects of pod templates (PVCs, Secrets,
ConfigMaps, Services: ``k8s.template_objects``) with this server's label, in every namespace, deleted by uid
(``k8s_owned.delete_by_uid``): should a name have come to mean another object since the listing, the API server
refuses instead of deleting it.

Objects that name an owner (a SparkApplication's driver, its executors, the Service and ConfigMaps spark-submit made
for a driver pod) are left to the garbage collector: they go with their owner.

A warm pool's standby pod (``k8s.standbys``) carries no ``kernel_id`` until it is claimed; claimed, it is relabelled
as its kernel's and listed like a cold kernel's pod. An unclaimed one is listed under its standby id, but only once it
has ended: a standby exits when its server's connection ends, so a running one belongs to a live server's pool. Its
registration token's Secret likewise, once no standby pod of that id is still running (a server that died while
starting it).
"""

from __future__ import annotations

import datetime
from collections.abc import Awaitable, Callable
from typing import Any

from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from kernelfleet.protocol.constants import KERNEL_ID_PATTERN
from kernelfleet.provisioners.k8s.client import describe_api_error, load_configuration
from kernelfleet.provisioners.k8s.owned import Deletion, delete_by_uid, wait_object_gone
from kernelfleet.provisioners.k8s.template_objects import TEMPLATE_KINDS
from kernelfleet.provisioners.labels import LABEL_KERNEL_ID
from kernelfleet.provisioners.pool.spec import LABEL_STANDBY
from kernelfleet.provisioners.server_identity import LABEL_SERVER
from kernelfleet.provisioners.sweep.model import KUBERNETES, EngineUnavailable, Orphan, Outcome, Removal

SPARK = ("sparkoperator.k8s.io", "v1beta2", "sparkapplications")
SPARK_APPLICATION, POD, SECRET, NAMESPACE = "sparkapplication", "pod", "secret", "namespace"
#: Template objects other than Secrets, by the sweep's kind name ("persistentvolumeclaim", "configmap", "service").
TEMPLATE_OBJECTS = {kind.kind.lower(): kind for kind in TEMPLATE_KINDS.values() if kind.kind != "Secret"}
REMOVAL_ORDER = {SPARK_APPLICATION: 0, POD: 1, SECRET: 2, **dict.fromkeys(TEMPLATE_OBJECTS, 2), NAMESPACE: 3}
DELETE_TIMEOUT = 60.0
POD_GRACE_SECONDS = 1
ENDED_PHASES = frozenset({"Succeeded", "Failed"})


def _age(stamp: Any, now: datetime.datetime) -> float:
    if isinstance(stamp, str):
        stamp = datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    return max(0.0, (now - stamp).total_seconds()) if isinstance(stamp, datetime.datetime) else 0.0


async def _configuration() -> client.Configuration:
    try:
        return await load_configuration()
    except Exception as err:  # no kubeconfig, a malformed one: not configured here
        raise EngineUnavailable(f"not configured: {describe_api_error(err)}") from None


async def find(server_id: str) -> list[Orphan]:
    cfg = await _configuration()
    selector = f"{LABEL_SERVER}={server_id}"
    now = datetime.datetime.now(datetime.UTC)
    found: list[Orphan] = []
    try:
        async with client.ApiClient(configuration=cfg) as api:
            core = client.CoreV1Api(api)
            listed = {
                POD: (await core.list_pod_for_all_namespaces(label_selector=selector)).items,
                SECRET: (await core.list_secret_for_all_namespaces(label_selector=selector)).items,
                NAMESPACE: (await core.list_namespace(label_selector=selector)).items,
            }
            for name, kind in TEMPLATE_OBJECTS.items():
                listed[name] = (await getattr(core, kind.method("list_all"))(label_selector=selector)).items
            live_standbys = {(p.metadata.labels or {}).get(LABEL_STANDBY) for p in listed[POD]
                             if (p.status.phase if p.status else None) not in ENDED_PHASES}
            for kind, items in listed.items():
                for item in items:
                    meta = item.metadata
                    if meta.owner_references:
                        continue
                    labels = dict(meta.labels or {})
                    if LABEL_STANDBY in labels and LABEL_KERNEL_ID not in labels:
                        if labels[LABEL_STANDBY] in live_standbys:
                            continue  # a live server's standby (or one it is starting)
                        labels[LABEL_KERNEL_ID] = labels[LABEL_STANDBY]
                    found += _orphan(kind, meta.name, meta.namespace or "", meta.uid, labels,
                                     meta.creation_timestamp, now, server_id)
            for app in await _spark_applications(client.CustomObjectsApi(api), selector):
                meta = app.get("metadata") or {}
                found += _orphan(SPARK_APPLICATION, meta.get("name", ""), meta.get("namespace", ""), meta.get("uid"),
                                 meta.get("labels"), meta.get("creationTimestamp"), now, server_id)
    except (TimeoutError, ApiException, OSError) as err:
        raise EngineUnavailable(describe_api_error(err)) from None
    return found


def _orphan(kind: str, name: str, namespace: str, uid: str | None, labels: dict[str, str] | None, created: Any,
            now: datetime.datetime, server_id: str) -> list[Orphan]:
    kernel_id = (labels or {}).get(LABEL_KERNEL_ID, "")
    if not uid or not KERNEL_ID_PATTERN.match(kernel_id):
        return []
    shown = f"{namespace}/{name}" if namespace else name
    return [Orphan(KUBERNETES, kind, shown, uid, kernel_id, _age(created, now), server_id, location=namespace)]


async def _spark_applications(custom: client.CustomObjectsApi, selector: str) -> list[dict[str, Any]]:
    """Every labelled SparkApplication; none where the Spark operator's resource type is not installed."""
    try:
        listed = await custom.list_cluster_custom_object(*SPARK, label_selector=selector)
    except ApiException as err:
        if err.status == 404:
            return []
        raise
    return list(listed.get("items") or [])


def _bare_name(orphan: Orphan) -> str:
    return orphan.name.rpartition("/")[2]


async def remove(orphans: list[Orphan]) -> list[Removal]:
    """Applications, pods, Secrets and template objects, then namespaces; each by its uid, pods and namespaces
    waited for until gone."""
    try:
        cfg = await _configuration()
    except EngineUnavailable as err:
        return [Removal(orphan, Outcome.FAILED, str(err)) for orphan in orphans]
    async with client.ApiClient(configuration=cfg) as api:
        core, custom = client.CoreV1Api(api), client.CustomObjectsApi(api)
        results = []
        for orphan in sorted(orphans, key=lambda o: REMOVAL_ORDER[o.kind]):
            results.append(await _remove_one(core, custom, orphan))
        return results


async def _remove_one(core: client.CoreV1Api, custom: client.CustomObjectsApi, orphan: Orphan) -> Removal:
    name, ns = _bare_name(orphan), orphan.location
    delete: Callable[[client.V1DeleteOptions], Awaitable[Any]]
    listing: Callable[..., Awaitable[Any]] | None = None
    options: dict[str, Any] = {}
    if orphan.kind == POD:
        delete = lambda body: core.delete_namespaced_pod(name, ns, body=body)  # noqa: E731
        listing = lambda **kw: core.list_namespaced_pod(ns, **kw)  # noqa: E731
        options = {"grace_period_seconds": POD_GRACE_SECONDS, "propagation_policy": "Background"}
    elif orphan.kind == SECRET:
        delete = lambda body: core.delete_namespaced_secret(name, ns, body=body)  # noqa: E731
    elif orphan.kind in TEMPLATE_OBJECTS:
        method = getattr(core, TEMPLATE_OBJECTS[orphan.kind].method("delete"))
        delete = lambda body: method(name, ns, body=body)  # noqa: E731
    elif orphan.kind == NAMESPACE:
        delete = lambda body: core.delete_namespace(name, body=body)  # noqa: E731
        listing = core.list_namespace
    else:
        delete = lambda body: custom.delete_namespaced_custom_object(  # noqa: E731
            *SPARK[:2], ns, SPARK[2], name, body=body)
        options = {"propagation_policy": "Foreground"}
    try:
        outcome = await delete_by_uid(delete, orphan.object_id, **options)
        if outcome is Deletion.DELETED and listing is not None:
            await wait_object_gone(listing, name, orphan.object_id, DELETE_TIMEOUT)
    except ApiException as err:
        return Removal(orphan, Outcome.FAILED, describe_api_error(err))
    except TimeoutError:
        return Removal(orphan, Outcome.FAILED, f"still there {DELETE_TIMEOUT:g}s after its deletion")
    return Removal(orphan, {Deletion.DELETED: Outcome.REMOVED, Deletion.GONE: Outcome.GONE,
                            Deletion.REPLACED: Outcome.LEFT}[outcome])
