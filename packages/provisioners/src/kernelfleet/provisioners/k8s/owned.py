"""What a kernel made on Kubernetes, and how it is deleted: by the uid the API gave it, never by name alone.

Names of kernel objects can come from the request (``KERNEL_POD_NAME`` names the pod, its launch Secret, a
per-kernel namespace and a SparkApplication), so a name may belong to someone else's object: a create that
collides answers 409 and the object is not ours. Gateway Provisioners' cleanup then deleted it by name. Here the
provisioner records the uid of each object its create made (``Owned``) and deletes with
``DeleteOptions.preconditions.uid``: should the name have come to mean another object, the API server refuses
with 409 Conflict instead of deleting it. An object whose create answer was lost (a broken connection) has no
recorded uid: it counts as ours only if it carries this kernel's ``kernel_id`` label.

The kubernetes and spark-operator provisioners (``k8s``, ``custom_resource``) are the callers.
"""

from __future__ import annotations

import asyncio
import enum
import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from kernelfleet.provisioners.k8s.client import describe_api_error
from kernelfleet.provisioners.labels import LABEL_KERNEL_ID

# The kinds of object a kernel may own, the keys of its ownership record.
POD = "pod"
SECRET = "secret"
NAMESPACE = "namespace"
RESOURCE = "resource"  # the custom resource of an operator (a SparkApplication)
PRECONDITION_FAILED = "Precondition failed"


@dataclass(frozen=True)
class Owned:
    """One object this kernel created: its name and the uid its create answered (None: the answer was lost)."""

    name: str
    uid: str | None

    def info(self) -> dict[str, str | None]:
        return {"name": self.name, "uid": self.uid}

    @classmethod
    def from_info(cls, info: object) -> Owned | None:
        """The persisted record (a restarted server's provisioner info); None for anything malformed."""
        if not isinstance(info, Mapping) or not isinstance(info.get("name"), str):
            return None
        uid = info.get("uid")
        return cls(info["name"], uid if isinstance(uid, str) and uid else None)


class Deletion(enum.Enum):
    DELETED = "deleted"  # the API accepted the deletion of our object (it may still be terminating)
    GONE = "gone"  # nothing of ours was there any more
    REPLACED = "replaced"  # the name now belongs to an object we did not create: it was left alone


def _field(obj: Any, key: str, attribute: str) -> Any:
    """``obj[key]`` of a plain dict (custom objects, watch events) or ``obj.attribute`` of a client model."""
    return obj.get(key) if isinstance(obj, Mapping) else getattr(obj, attribute, None)


def _meta(obj: Any, key: str, attribute: str) -> Any:
    meta = _field(obj, "metadata", "metadata")
    return _field(meta, key, attribute) if meta is not None else None


def uid_of(obj: Any) -> str | None:
    """``metadata.uid`` of an API answer."""
    uid = _meta(obj, "uid", "uid")
    return str(uid) if uid else None


def deletion_started(obj: Any) -> bool:
    return bool(_meta(obj, "deletionTimestamp", "deletion_timestamp"))


def kernel_uid(obj: Any, kernel_id: str) -> str | None:
    """The uid of ``obj`` if it carries ``kernel_id``'s label (a leftover of this very kernel), else None."""
    labels = _meta(obj, "labels", "labels") or {}
    return uid_of(obj) if labels.get(LABEL_KERNEL_ID) == kernel_id else None


def owner_uids(obj: Any) -> set[str]:
    """The uids ``obj``'s ownerReferences name (a driver pod names its SparkApplication)."""
    refs = _meta(obj, "ownerReferences", "owner_references") or []
    return {str(uid) for uid in (_field(ref, "uid", "uid") for ref in refs) if uid}


def is_precondition_failure(err: ApiException) -> bool:
    return err.status == 409 and PRECONDITION_FAILED in describe_api_error(err)


async def delete_by_uid(delete: Callable[[client.V1DeleteOptions], Awaitable[Any]], uid: str, *,
                        grace_period_seconds: int | None = None, propagation_policy: str | None = None) -> Deletion:
    """Run ``delete(options)`` with a uid precondition. A 404 is GONE, a failed precondition REPLACED, a 409 for a
    deletion already under way (a terminating namespace) DELETED; any other refusal is raised."""
    options = client.V1DeleteOptions(preconditions=client.V1Preconditions(uid=uid),
                                     grace_period_seconds=grace_period_seconds, propagation_policy=propagation_policy)
    try:
        await delete(options)
    except ApiException as err:
        if err.status == 404:
            return Deletion.GONE
        if err.status == 409:
            return Deletion.REPLACED if is_precondition_failure(err) else Deletion.DELETED
        raise
    return Deletion.DELETED


async def wait_object_gone(list_objects: Callable[..., Awaitable[Any]], name: str, uid: str | None,
                           timeout: float) -> None:
    """Follow the object ``name`` (listed by ``list_objects``) until the API has deleted it; an object of the same
    name with another uid is not it."""
    async with asyncio.timeout(timeout):
        listed = await list_objects(field_selector=f"metadata.name={name}")
        if not listed.items or (uid and listed.items[0].metadata.uid != uid):
            return
        version = listed.metadata.resource_version
        while True:
            response = await list_objects(field_selector=f"metadata.name={name}", watch=True,
                                          resource_version=version, timeout_seconds=int(timeout) + 1,
                                          _preload_content=False)
            try:
                while line := await response.content.readline():
                    event = json.loads(line)
                    if event.get("kind") == "Status":  # the watch itself was refused (RBAC's 403): say so
                        refused = ApiException(status=event.get("code"), reason=event.get("reason"))
                        refused.body = line
                        raise refused
                    obj = event.get("object") or {}
                    if event.get("type") == "DELETED" or (uid and uid_of(obj) not in (None, uid)):
                        return
                    version = obj.get("metadata", {}).get("resourceVersion", version)
            finally:
                response.release()
