"""Reading a pod's status (kernelfleet.provisioners.k8s.status): a lost node is an end only once the pod is evicted."""

from __future__ import annotations

from typing import Any

from kernelfleet.provisioners.k8s.status import node_lost, pod_ended, pod_failure


def running_pod(*conditions: dict[str, Any], deleting: bool = False) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "kernel", "namespace": "default"}
    if deleting:
        meta["deletionTimestamp"] = "2026-12-03T10:00:00Z"
    return {"metadata": meta, "spec": {"nodeName": "node-a"},
            "status": {"phase": "Running", "conditions": list(conditions),
                       "containerStatuses": [{"name": "kernel", "state": {"running": {}}}]}}


NOT_READY = {"type": "Ready", "status": "False"}
EVICTED = {"type": "DisruptionTarget", "status": "True", "reason": "DeletionByTaintManager",
           "message": "Taint manager: deleting due to NoExecute taint"}


def test_a_not_ready_pod_has_not_ended() -> None:
    pod = running_pod(NOT_READY)
    assert node_lost(pod) is None and not pod_ended(pod) and pod_failure(pod) is None


def test_a_pod_evicted_from_a_lost_node_has_ended_with_that_cause() -> None:
    pod = running_pod(NOT_READY, EVICTED, deleting=True)
    assert pod_ended(pod)
    assert pod_failure(pod) == node_lost(pod)
    assert (node_lost(pod) or "").startswith("node lost: node node-a stopped reporting")


def test_a_disruption_target_without_deletion_is_not_yet_an_end() -> None:
    assert not pod_ended(running_pod(NOT_READY, EVICTED))


def test_the_older_controllers_node_lost_reason_counts() -> None:
    pod = running_pod(NOT_READY)
    pod["status"]["reason"] = "NodeLost"
    pod["status"]["message"] = "Node node-a which was running pod kernel is unresponsive"
    assert pod_ended(pod) and "node lost: Node node-a which was running pod kernel is unresponsive" == node_lost(pod)
