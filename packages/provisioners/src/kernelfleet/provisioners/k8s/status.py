"""Reading a pod's status (as the watch delivers it, a plain dict): has the launch failed, has the kernel ended.

Gateway Provisioners only knew the phase, so a pod stuck on an image that cannot be pulled or on a node that does
not exist waited for the whole launch timeout. These functions name the states a kernel pod never recovers from
(``pod_failure``), so the launch fails the moment the API reports one, and apart from them the states a kubelet
retries that real clusters pass through and leave (``pod_transient``): a registry that blips (``ErrImagePull`` /
``ImagePullBackOff`` without a definitive reason) and a kubelet whose Secret cache has not yet seen the launch
Secret we just created (``CreateContainerConfigError`` naming a missing Secret, ConfigMap or key). The provisioner
gives those a bounded window (``transient_error_window``) before it fails the launch with the kubelet's message.
"""

from __future__ import annotations

from typing import Any

# Waiting reasons that mean the container will not start without someone changing something.
FATAL_WAITING = frozenset({
    "InvalidImageName", "ErrImageNeverPull", "CreateContainerError", "RunContainerError", "CrashLoopBackOff",
    "PreStartHookError",
})
# Waiting reasons a kubelet retries: transient unless their message says otherwise (``_definitive``).
PULL_WAITING = frozenset({"ErrImagePull", "ImagePullBackOff"})
CONFIG_WAITING = "CreateContainerConfigError"
# What a registry answers when retrying cannot help: the image or tag does not exist, or we may not pull it.
DEFINITIVE_PULL = ("not found", "manifest unknown", "unauthorized", "denied", "forbidden",
                   "repository does not exist", "authentication required", "invalid reference format")
# The kubelet's words for an object its cache has not got (yet): a Secret or ConfigMap, or a key of one.
LAGGING_CONFIG = ('secret "', 'configmap "')
ENDED_PHASES = frozenset({"Succeeded", "Failed"})


def _statuses(pod: dict[str, Any]) -> list[dict[str, Any]]:
    status = pod.get("status") or {}
    return list(status.get("initContainerStatuses") or []) + list(status.get("containerStatuses") or [])


def describe_termination(name: str, terminated: dict[str, Any]) -> str:
    reason = terminated.get("reason") or "terminated"
    verb = "was " if reason == "OOMKilled" else ""
    text = f"container {name} {verb}{reason} (exit code {terminated.get('exitCode')})"
    message = (terminated.get("message") or "").strip()
    return f"{text}: {message}" if message else text


def node_lost(pod: dict[str, Any] | None) -> str | None:
    """The cause when the pod was evicted because its node stopped reporting, else None.

    A node whose kubelet goes silent first only makes its pods not ready (``Ready`` False, phase still Running): that
    may be a blip, and the kernel may well still run, so it is not an end. Once the node stays away for the pod's
    unreachable toleration, the taint eviction controller marks the pod ``DisruptionTarget``
    (``DeletionByTaintManager``) and deletes it; only the lost kubelet could finish that deletion, so the pod may stay
    Terminating for good, but the kernel is lost either way. Older controllers said so with the pod reason
    ``NodeLost``.
    """
    if pod is None:
        return None
    meta, status = pod.get("metadata") or {}, pod.get("status") or {}
    node = (pod.get("spec") or {}).get("nodeName") or "?"
    if status.get("reason") == "NodeLost":
        return f"node lost: {(status.get('message') or '').strip() or node}"
    if not meta.get("deletionTimestamp"):
        return None
    for condition in status.get("conditions") or []:
        if condition.get("type") == "DisruptionTarget" and condition.get("status") == "True" and \
                condition.get("reason") == "DeletionByTaintManager":
            return f"node lost: node {node} stopped reporting and the pod was evicted ({condition.get('message')})"
    return None


def pod_failure(pod: dict[str, Any] | None, *, fail_unschedulable: bool = True) -> str | None:
    """Why a kernel pod that has not reported yet will never do so; None while it still may."""
    if pod is None:
        return "the pod was deleted"
    if lost := node_lost(pod):
        return lost
    meta, status = pod.get("metadata") or {}, pod.get("status") or {}
    for container in _statuses(pod):
        state = container.get("state") or {}
        name = container.get("name", "?")
        if state.get("terminated"):
            return describe_termination(name, state["terminated"])
        waiting = state.get("waiting") or {}
        if waiting.get("reason") in FATAL_WAITING or _definitive(waiting):
            return _describe_waiting(name, waiting)
    phase = status.get("phase")
    if phase in ENDED_PHASES:
        reason = status.get("reason") or phase
        message = (status.get("message") or "").strip()
        return f"the pod {reason}" + (f": {message}" if message else "")
    if fail_unschedulable:
        for condition in status.get("conditions") or []:
            if condition.get("type") == "PodScheduled" and condition.get("status") == "False" and \
                    condition.get("reason") == "Unschedulable":
                return f"the pod cannot be scheduled (Unschedulable): {condition.get('message') or ''}".rstrip(": ")
    if meta.get("deletionTimestamp"):
        return "the pod is being deleted"
    return None


def _describe_waiting(name: str, waiting: dict[str, Any]) -> str:
    message = (waiting.get("message") or "").strip()
    return f"container {name}: {waiting['reason']}" + (f": {message}" if message else "")


def _definitive(waiting: dict[str, Any]) -> bool:
    """A retried waiting reason whose message says retrying cannot help (an image that does not exist, a
    registry that refuses us, a configuration error other than a missing Secret/ConfigMap)."""
    reason, message = waiting.get("reason"), str(waiting.get("message") or "").lower()
    if reason in PULL_WAITING:
        return any(marker in message for marker in DEFINITIVE_PULL)
    if reason == CONFIG_WAITING:
        missing = any(marker in message for marker in LAGGING_CONFIG) and "not found" in message
        return not (missing or "couldn't find key " in message)
    return False


def pod_transient(pod: dict[str, Any] | None) -> str | None:
    """The kubelet's retried, not (yet) definitive, trouble with a container (``pod_failure`` first): a pull
    error without a definitive reason, or a configuration that names a Secret/ConfigMap its cache lacks."""
    for container in _statuses(pod or {}):
        waiting = (container.get("state") or {}).get("waiting") or {}
        if waiting.get("reason") in PULL_WAITING or waiting.get("reason") == CONFIG_WAITING:
            if not _definitive(waiting):
                return _describe_waiting(container.get("name", "?"), waiting)
    return None


def pod_ended(pod: dict[str, Any] | None) -> bool:
    """The kernel is gone: no pod, a pod past its end, a container that terminated, or a pod evicted from a lost
    node."""
    if pod is None or node_lost(pod):
        return True
    if (pod.get("status") or {}).get("phase") in ENDED_PHASES:
        return True
    return any((c.get("state") or {}).get("terminated") for c in (pod.get("status") or {}).get("containerStatuses")
               or [])


def exit_code(pod: dict[str, Any] | None) -> int:
    """The kernel container's exit code once it ended (0 when the pod is simply gone)."""
    for container in _statuses(pod or {}):
        terminated = (container.get("state") or {}).get("terminated")
        if terminated is not None:
            return int(terminated.get("exitCode") or 0)
    return 0


def pod_ip(pod: dict[str, Any] | None) -> str | None:
    return ((pod or {}).get("status") or {}).get("podIP") or None
