"""A lost node, as kube-controller-manager handles one: the testing hook for "the kernel's node went away".

Real Kubernetes, when a node's kubelet stops posting status (host down, network cut):

1. for ``node-monitor-grace-period`` (40 s by default) nothing happens: the API still shows what the kubelet last
   said, so a short blip is invisible;
2. then the node lifecycle controller marks the node NotReady (its Ready condition Unknown, taint
   ``node.kubernetes.io/unreachable:NoExecute``) and every pod on it not ready: the pod's ``Ready`` condition turns
   ``False`` (``MarkPodsNotReady``; the phase stays ``Running`` and the containers may well still run) and a Warning
   event ``NodeNotReady`` ("Node is not ready") is recorded on the pod;
3. each pod tolerates the taint for its toleration's ``tolerationSeconds`` (300 s, added by the DefaultTolerationSeconds
   admission plugin, as kubelite's defaulting does); then the taint eviction controller adds a ``DisruptionTarget``
   condition (reason ``DeletionByTaintManager``) and deletes the pod. The deletion is graceful, and only the
   kubelet can finish it, so while the node stays away the pod is left ``Terminating`` (deletionTimestamp set);
4. when the kubelet is back it reports again, and terminates and removes the pods deleted meanwhile.

``NodeLifecycle`` plays that on kubelite's one node: ``lose()`` stops the kubelet's status updates (its containers keep
running, as on a partitioned node) and runs steps 2 and 3 after the given delays; ``recover()`` is step 4. The delays
default to the real ones; tests shorten them. Not emulated: the Node object and its taint (kubelite serves no nodes),
lease objects, the rate limits and zone states of mass evictions, and deletions requested by others while the node
is lost (kubelite's kubelet still acts on those).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Any

from .clock import now

if TYPE_CHECKING:
    from .server import KubeLite

log = logging.getLogger("kubelite.node_lifecycle")

MONITOR_GRACE = 40.0  # kube-controller-manager --node-monitor-grace-period
DEFAULT_TOLERATION = 300.0  # DefaultTolerationSeconds for node.kubernetes.io/unreachable
UNREACHABLE_TAINT = "node.kubernetes.io/unreachable"


def unreachable_toleration(pod: dict[str, Any]) -> float | None:
    """Seconds the pod tolerates an unreachable node (None: for ever), from its own tolerations."""
    for toleration in (pod.get("spec") or {}).get("tolerations") or []:
        if toleration.get("effect") not in (None, "", "NoExecute"):
            continue
        key, operator = toleration.get("key"), toleration.get("operator", "Equal")
        if key == UNREACHABLE_TAINT or (not key and operator == "Exists"):
            seconds = toleration.get("tolerationSeconds")
            return None if seconds is None else max(0.0, float(seconds))
    return 0.0  # no toleration: evicted as soon as the node is tainted


class NodeLifecycle:
    """The node lifecycle and taint eviction controllers for kubelite's node; driven by tests."""

    def __init__(self, kube: KubeLite, *, monitor_grace: float = MONITOR_GRACE,
                 eviction_timeout: float | None = None) -> None:
        """``eviction_timeout`` replaces every pod's own unreachable tolerationSeconds (as if the admission default
        were that); None keeps each pod's."""
        self.kube = kube
        self.monitor_grace = monitor_grace
        self.eviction_timeout = eviction_timeout
        self._task: asyncio.Task[None] | None = None

    @property
    def lost(self) -> bool:
        return not self.kube.node.posting_status

    def lose(self) -> None:
        """The kubelet stops posting status now; NotReady and evictions follow after their delays."""
        if self.lost:
            return
        self.kube.node.posting_status = False
        log.info("kubelite: node %s stopped posting status", self.kube.node.name)
        self._task = self.kube.spawn(self._run())

    async def recover(self) -> None:
        """The kubelet is back: it reports every pod again and finishes the deletions made while it was away."""
        if not self.lost:
            return
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self.kube.node.posting_status = True
        log.info("kubelite: node %s posts status again", self.kube.node.name)
        kubelet = self.kube.kubelet
        assert kubelet is not None
        for uid, worker in list(kubelet.workers.items()):
            pod = self.kube.store.find(self.kube.pods_rt, worker.ns, worker.name)
            if pod is not None and pod["metadata"].get("deletionTimestamp"):
                grace = int(pod["metadata"].get("deletionGracePeriodSeconds") or 0)
                kubelet.pod_deleted(uid, grace, remove_object=True)
            else:
                worker.publish()

    async def _run(self) -> None:
        await asyncio.sleep(self.monitor_grace)
        pods = self._bound_pods()
        log.info("kubelite: node %s NotReady (kubelet stopped posting status); %d pods not ready",
                 self.kube.node.name, len(pods))
        for pod in pods:
            self._mark_not_ready(pod)
        evictions = [self._evict_after(pod) for pod in pods]
        await asyncio.gather(*evictions)

    def _bound_pods(self) -> list[dict[str, Any]]:
        kubelet = self.kube.kubelet
        assert kubelet is not None
        found = (self.kube.store.find(self.kube.pods_rt, w.ns, w.name) for w in kubelet.workers.values())
        return [pod for pod in found if pod is not None and pod["spec"].get("nodeName") == self.kube.node.name]

    def _mark_not_ready(self, pod: dict[str, Any]) -> None:
        def apply(current: dict[str, Any]) -> None:
            for condition in (current.get("status") or {}).get("conditions") or []:
                if condition.get("type") == "Ready" and condition.get("status") != "False":
                    condition["status"] = "False"
                    condition["lastTransitionTime"] = now()

        self._mutate(pod, apply)
        self.kube.recorder.record(pod, "Warning", "NodeNotReady", "Node is not ready", "node-controller", None)

    async def _evict_after(self, pod: dict[str, Any]) -> None:
        delay = self.eviction_timeout if self.eviction_timeout is not None else unreachable_toleration(pod)
        if delay is None:
            return  # tolerates the taint for ever
        await asyncio.sleep(delay)
        stamp = now()

        def evict(current: dict[str, Any]) -> None:
            status = current.setdefault("status", {})
            conditions = [c for c in status.get("conditions") or [] if c.get("type") != "DisruptionTarget"]
            conditions.append({"type": "DisruptionTarget", "status": "True", "reason": "DeletionByTaintManager",
                               "message": "Taint manager: deleting due to NoExecute taint",
                               "lastProbeTime": None, "lastTransitionTime": stamp})
            status["conditions"] = conditions
            meta = current["metadata"]
            if not meta.get("deletionTimestamp"):
                meta["deletionTimestamp"] = stamp
                meta["deletionGracePeriodSeconds"] = int(current["spec"].get("terminationGracePeriodSeconds", 30))

        self._mutate(pod, evict)
        meta = pod["metadata"]
        self.kube.recorder.record(pod, "Normal", "TaintManagerEviction", f"Marking for deletion Pod "
                                  f"{meta['namespace']}/{meta['name']}", "taint-eviction-controller", None)
        log.info("kubelite: pod %s/%s evicted from lost node %s", meta["namespace"], meta["name"],
                 self.kube.node.name)

    def _mutate(self, pod: dict[str, Any], fn: Any) -> None:
        uid = pod["metadata"].get("uid")

        def guarded(current: dict[str, Any]) -> None:
            if current["metadata"].get("uid") == uid:
                fn(current)

        self.kube.store.mutate(self.kube.pods_rt, pod["metadata"]["namespace"], pod["metadata"]["name"], guarded)
