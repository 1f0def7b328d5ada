"""Minimal controllers for Deployments and DaemonSets, and Service defaulting, so that a deployment kit applied with
``kubectl apply -f`` runs on kubelite as it would on a cluster.

What is real and what is not (the README's *Workloads* section says the same to a reader):

- **Deployments** own their pods directly: there is no ReplicaSet. The controller keeps ``spec.replicas`` pods made
  from ``spec.template`` (name ``<deployment>-<template hash>-<5 chars>``, label ``pod-template-hash``, an
  ``ownerReference`` to the Deployment with ``controller: true``), replaces a pod that is deleted or ends, and on a
  template change deletes the old pods and makes new ones (the ``Recreate`` strategy, whatever the spec says).
  Status (``observedGeneration``, ``replicas``, ``updatedReplicas``, ``readyReplicas``, ``availableReplicas``,
  condition ``Available``) follows the pods' ``Ready`` condition, so ``kubectl wait --for=condition=Available`` works.
  Deleting the Deployment deletes its pods through the server's garbage collection of ownerReferences.
- **DaemonSets** get one pod on the single node (``<daemonset>-<5 chars>``, owned likewise, replaced when it ends or
  is deleted); status ``desiredNumberScheduled`` / ``currentNumberScheduled`` / ``numberReady``.
- **Services** are stored and validated and get a ``clusterIP`` from 10.96.0.0/16 (``None`` stays headless), but
  nothing routes to it: there is no kube-proxy and no DNS. Reach a pod at its pod IP.

``KubeLite.start`` runs ``WorkloadControllers``; ``KubeLite.create_object`` calls ``default_service`` on a new
Service. Both watch the store the API serves, as controllers watch the API server.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import hashlib
import ipaddress
import json
import logging
import secrets
from typing import TYPE_CHECKING, Any

from .clock import now
from .errors import ApiError, invalid
from .resources import ResourceType

if TYPE_CHECKING:
    from .server import KubeLite

log = logging.getLogger("kubelite.workloads")

_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
_SERVICE_CIDR = ipaddress.ip_network("10.96.0.0/16")
HASH_LABEL = "pod-template-hash"


def template_hash(template: dict[str, Any]) -> str:
    """Pure: a short stable hash of a pod template (the ``pod-template-hash`` label's role)."""
    digest = hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()
    return "".join(_ALPHABET[int(digest[i:i + 2], 16) % len(_ALPHABET)] for i in range(0, 20, 2))


def owned_pod(owner: dict[str, Any], name: str, extra_labels: dict[str, str]) -> dict[str, Any]:
    """Pure: the pod ``owner`` (a Deployment or DaemonSet) makes from its ``spec.template``."""
    template = copy.deepcopy((owner.get("spec") or {}).get("template") or {})
    meta = template.get("metadata") or {}
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {
            "name": name,
            "labels": {**(meta.get("labels") or {}), **extra_labels},
            "annotations": dict(meta.get("annotations") or {}),
            "ownerReferences": [{"apiVersion": owner["apiVersion"], "kind": owner["kind"],
                                 "name": owner["metadata"]["name"], "uid": owner["metadata"]["uid"],
                                 "controller": True, "blockOwnerDeletion": True}],
        },
        "spec": template.get("spec") or {},
    }


def _ready(pod: dict[str, Any]) -> bool:
    status = pod.get("status") or {}
    if status.get("phase") != "Running" or pod["metadata"].get("deletionTimestamp"):
        return False
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])


def _live(pod: dict[str, Any]) -> bool:
    """A pod that still counts for its owner: not ended, not being deleted."""
    phase = (pod.get("status") or {}).get("phase")
    return phase not in ("Succeeded", "Failed") and not pod["metadata"].get("deletionTimestamp")


def _controller_uid(pod: dict[str, Any]) -> str | None:
    for ref in pod["metadata"].get("ownerReferences") or []:
        if ref.get("controller"):
            return str(ref.get("uid"))
    return None


def default_service(service: dict[str, Any], taken: set[str]) -> None:
    """Fill a new Service's defaults as the API server does: type ClusterIP, a free clusterIP (``None`` stays
    headless), TCP ports whose targetPort defaults to the port, sessionAffinity None."""
    spec = service.setdefault("spec", {})
    spec.setdefault("type", "ClusterIP")
    spec.setdefault("sessionAffinity", "None")
    for port in spec.get("ports") or []:
        port.setdefault("protocol", "TCP")
        port.setdefault("targetPort", port.get("port"))
    wanted = spec.get("clusterIP")
    if wanted == "None":
        spec["clusterIPs"] = ["None"]
        return
    if wanted:
        if wanted in taken:
            raise invalid("Service", "", service["metadata"].get("name", ""), [{
                "reason": "FieldValueInvalid", "field": "spec.clusterIP",
                "message": f"Invalid value: \"{wanted}\": provided IP is already allocated"}])
    else:
        hosts = _SERVICE_CIDR.hosts()
        next(hosts)  # .1 is the kubernetes Service's on a cluster
        wanted = next(str(ip) for ip in hosts if str(ip) not in taken)
    spec["clusterIP"] = wanted
    spec["clusterIPs"] = [wanted]
    spec.setdefault("ipFamilies", ["IPv4"])
    spec.setdefault("ipFamilyPolicy", "SingleStack")


class WorkloadControllers:
    """The Deployment and DaemonSet controllers of one kubelite, run by ``KubeLite.add_controller``."""

    def __init__(self, server: KubeLite, deployments: ResourceType, daemonsets: ResourceType) -> None:
        self.server = server
        self.deployments = deployments
        self.daemonsets = daemonsets
        self._wake = asyncio.Event()

    async def run(self) -> None:
        await asyncio.gather(self._follow(self.deployments), self._follow(self.daemonsets),
                             self._follow(self.server.pods_rt), self._reconcile_loop())

    async def _follow(self, rt: ResourceType) -> None:
        async for _change in self.server.store.watch(rt, None, self.server.store.revision):
            self._wake.set()

    async def _reconcile_loop(self) -> None:
        """Reconcile every owner after any change of owners or pods (a level-triggered controller: cheap at the
        sizes tests make, and never misses an edge)."""
        while True:
            self.reconcile()
            await self._wake.wait()
            self._wake.clear()

    def reconcile(self) -> None:
        pods = self.server.store.list(self.server.pods_rt)
        by_owner: dict[str, list[dict[str, Any]]] = {}
        for pod in pods:
            uid = _controller_uid(pod)
            if uid:
                by_owner.setdefault(uid, []).append(pod)
        for deployment in self.server.store.list(self.deployments):
            if not deployment["metadata"].get("deletionTimestamp"):
                self._deployment(deployment, by_owner.get(deployment["metadata"]["uid"], []))
        for daemonset in self.server.store.list(self.daemonsets):
            if not daemonset["metadata"].get("deletionTimestamp"):
                self._daemonset(daemonset, by_owner.get(daemonset["metadata"]["uid"], []))

    def _create(self, owner: dict[str, Any], pod: dict[str, Any], component: str) -> None:
        """Create an owned pod; a refusal is the controller's FailedCreate event, retried at the next change. Nothing
        is made in a terminating namespace (the namespace controller is emptying it)."""
        namespace = self.server.store.find(self.server.namespaces_rt, "", owner["metadata"]["namespace"])
        if namespace is None or namespace["metadata"].get("deletionTimestamp"):
            return
        try:
            self.server.create_object(self.server.pods_rt, owner["metadata"]["namespace"], pod)
        except ApiError as err:
            self.server.recorder.record(owner, "Warning", "FailedCreate", f"Error creating: {err.message}",
                                        component)
            log.info("kubelite: %s %s could not create pod %s: %s", owner["kind"], owner["metadata"]["name"],
                     pod["metadata"]["name"], err.message)

    def _delete(self, pod: dict[str, Any]) -> None:
        with contextlib.suppress(ApiError):
            self.server.delete_object(self.server.pods_rt, pod["metadata"]["namespace"], pod["metadata"]["name"])

    def _deployment(self, deployment: dict[str, Any], pods: list[dict[str, Any]]) -> None:
        meta = deployment["metadata"]
        spec = deployment.get("spec") or {}
        wanted = int(spec.get("replicas", 1))
        current_hash = template_hash(spec.get("template") or {})
        for pod in pods:
            ended = (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")
            if (pod["metadata"].get("labels") or {}).get(HASH_LABEL) != current_hash or ended:
                if not pod["metadata"].get("deletionTimestamp"):
                    self._delete(pod)
        live = [p for p in pods if _live(p) and (p["metadata"].get("labels") or {}).get(HASH_LABEL) == current_hash]
        old_left = [p for p in pods if (p["metadata"].get("labels") or {}).get(HASH_LABEL) != current_hash]
        if not old_left:  # Recreate: new pods only once the old ones are gone
            for _ in range(wanted - len(live)):
                name = f"{meta['name']}-{current_hash}-{''.join(secrets.choice(_ALPHABET) for _ in range(5))}"
                self._create(deployment, owned_pod(deployment, name, {HASH_LABEL: current_hash}),
                             "deployment-controller")
        for pod in live[wanted:]:
            self._delete(pod)
        ready = sum(_ready(p) for p in live)
        available = ready >= wanted
        condition = {"type": "Available", "status": "True" if available else "False",
                     "reason": "MinimumReplicasAvailable" if available else "MinimumReplicasUnavailable",
                     "message": "Deployment has minimum availability." if available
                     else "Deployment does not have minimum availability."}

        def apply(obj: dict[str, Any]) -> None:
            status = obj.setdefault("status", {})
            old = next((c for c in status.get("conditions") or [] if c.get("type") == "Available"), None)
            stamp = old["lastTransitionTime"] if old and old.get("status") == condition["status"] else now()
            status.update({"observedGeneration": obj["metadata"].get("generation", 1), "replicas": len(live),
                           "updatedReplicas": len(live), "readyReplicas": ready, "availableReplicas": ready,
                           "unavailableReplicas": max(0, wanted - ready),
                           "conditions": [{**condition, "lastTransitionTime": stamp, "lastUpdateTime": stamp}]})

        self.server.store.mutate(self.deployments, meta["namespace"], meta["name"], apply)

    def _daemonset(self, daemonset: dict[str, Any], pods: list[dict[str, Any]]) -> None:
        meta = daemonset["metadata"]
        current_hash = template_hash((daemonset.get("spec") or {}).get("template") or {})
        for pod in pods:
            ended = (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")
            stale = (pod["metadata"].get("labels") or {}).get("controller-revision-hash") != current_hash
            if (ended or stale) and not pod["metadata"].get("deletionTimestamp"):
                self._delete(pod)
        live = [p for p in pods if _live(p)
                and (p["metadata"].get("labels") or {}).get("controller-revision-hash") == current_hash]
        if not live and not any(p["metadata"].get("deletionTimestamp") for p in pods):
            name = f"{meta['name']}-{''.join(secrets.choice(_ALPHABET) for _ in range(5))}"
            pod = owned_pod(daemonset, name, {"controller-revision-hash": current_hash})
            self._create(daemonset, pod, "daemonset-controller")
        ready = sum(_ready(p) for p in live)

        def apply(obj: dict[str, Any]) -> None:
            obj.setdefault("status", {}).update({
                "observedGeneration": obj["metadata"].get("generation", 1), "desiredNumberScheduled": 1,
                "currentNumberScheduled": min(1, len(live)), "updatedNumberScheduled": min(1, len(live)),
                "numberReady": ready, "numberAvailable": ready, "numberMisscheduled": 0,
                "numberUnavailable": 1 - min(1, ready)})

        self.server.store.mutate(self.daemonsets, meta["namespace"], meta["name"], apply)
