"""The scheduler's filters for kubelite's one node, as pure functions: nodeSelector and required node affinity
against the node's labels, and the node's taints against the pod's tolerations. ``PodWorker._unschedulable_reason``
turns a refusal into the ``FailedScheduling`` message of the default scheduler."""

from __future__ import annotations

from typing import Any


def _expression_matches(expression: dict[str, Any], labels: dict[str, str]) -> bool:
    key, operator = str(expression.get("key")), expression.get("operator")
    values = [str(v) for v in expression.get("values") or []]
    present = key in labels
    if operator == "In":
        return present and labels[key] in values
    if operator == "NotIn":
        return not present or labels[key] not in values
    if operator == "Exists":
        return present
    if operator == "DoesNotExist":
        return not present
    if operator in ("Gt", "Lt") and present and values:
        try:
            node, wanted = int(labels[key]), int(values[0])
        except ValueError:
            return False
        return node > wanted if operator == "Gt" else node < wanted
    return False


def matches_node(spec: dict[str, Any], labels: dict[str, str]) -> bool:
    """nodeSelector and requiredDuringSchedulingIgnoredDuringExecution: the terms are ORed, a term's expressions
    ANDed (``matchFields`` compares ``metadata.name``, i.e. the ``kubernetes.io/hostname`` label here)."""
    if any(labels.get(k) != v for k, v in (spec.get("nodeSelector") or {}).items()):
        return False
    required = (((spec.get("affinity") or {}).get("nodeAffinity") or {})
                .get("requiredDuringSchedulingIgnoredDuringExecution") or {})
    terms = required.get("nodeSelectorTerms")
    if not terms:
        return True
    fields = {"metadata.name": labels.get("kubernetes.io/hostname", "")}
    return any(
        all(_expression_matches(e, labels) for e in term.get("matchExpressions") or [])
        and all(_expression_matches(e, fields) for e in term.get("matchFields") or [])
        and (term.get("matchExpressions") or term.get("matchFields"))
        for term in terms)


def _tolerates(toleration: dict[str, Any], taint: dict[str, Any]) -> bool:
    if toleration.get("effect") and toleration["effect"] != taint.get("effect"):
        return False
    if toleration.get("operator", "Equal") == "Exists":
        return not toleration.get("key") or toleration["key"] == taint.get("key")
    return toleration.get("key") == taint.get("key") and str(toleration.get("value", "")) == str(
        taint.get("value", ""))


def untolerated_taint(spec: dict[str, Any], taints: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The first NoSchedule/NoExecute taint of the node the pod does not tolerate."""
    tolerations = spec.get("tolerations") or []
    for taint in taints:
        if taint.get("effect") not in ("NoSchedule", "NoExecute"):
            continue
        if not any(_tolerates(t, taint) for t in tolerations):
            return taint
    return None


def describe_taint(taint: dict[str, Any]) -> str:
    """``{key: value}`` as the scheduler prints an untolerated taint."""
    value = taint.get("value")
    return f"{{{taint.get('key')}: {value}}}" if value else f"{{{taint.get('key')}: }}"
