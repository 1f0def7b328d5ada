"""Admission of new pods, as the API server's LimitRanger, PodSecurity and ResourceQuota plugins do it.

``KubeLite.create_object`` calls ``PodAdmission.mutate`` before defaulting a pod (LimitRange defaults for requests
and limits a container does not set) and ``PodAdmission.validate`` after (LimitRange min/max, the namespace's
PodSecurity level, ResourceQuota), so a refusal is a 403 worded as the real plugin words it and nothing is stored.
Usage is computed from the stored pods at admission; ``status.used`` of a ResourceQuota is not maintained.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from .errors import forbidden
from .pod_security import check_pod_security
from .quantity import parse_quantity
from .resources import ResourceType
from .store import Store

#: ResourceQuota keys kubelite evaluates for pods: key -> (section of container resources, resource).
QUOTA_COMPUTE: dict[str, tuple[str, str]] = {
    "cpu": ("requests", "cpu"), "memory": ("requests", "memory"),
    "requests.cpu": ("requests", "cpu"), "requests.memory": ("requests", "memory"),
    "limits.cpu": ("limits", "cpu"), "limits.memory": ("limits", "memory"),
}
_BINARY = (("Ei", 2 ** 60), ("Pi", 2 ** 50), ("Ti", 2 ** 40), ("Gi", 2 ** 30), ("Mi", 2 ** 20), ("Ki", 2 ** 10))


def format_quantity(value: Decimal, resource: str) -> str:
    """A sum of quantities as the API server prints it in quota messages (``0``, ``2Gi``, ``500m``)."""
    if value == value.to_integral_value():
        number = int(value)
        if resource.endswith("memory") and number:
            for suffix, size in _BINARY:
                if number % size == 0:
                    return f"{number // size}{suffix}"
        return str(number)
    return f"{int(value * 1000)}m"


def _resources(container: dict[str, Any]) -> dict[str, Any]:
    return container.setdefault("resources", {}) if isinstance(container, dict) else {}


def _container_limits(limit_ranges: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [item for lr in limit_ranges for item in (lr.get("spec") or {}).get("limits") or []
            if item.get("type") == "Container"]


def _pod_usage(pod: dict[str, Any]) -> dict[str, Decimal]:
    """What one pod counts against a quota."""
    usage = {"pods": Decimal(1)}
    for key, (section, resource) in QUOTA_COMPUTE.items():
        total = Decimal(0)
        for c in (pod.get("spec") or {}).get("containers") or []:
            value = ((c.get("resources") or {}).get(section) or {}).get(resource)
            if value is not None:
                total += parse_quantity(value)
        usage[key] = total
    return usage


def _missing(pod: dict[str, Any], key: str) -> list[str]:
    section, resource = QUOTA_COMPUTE[key]
    return [c["name"] for c in (pod.get("spec") or {}).get("containers") or []
            if resource not in ((c.get("resources") or {}).get(section) or {})]


def _limit_range_errors(pod: dict[str, Any], limit_ranges: list[dict[str, Any]]) -> list[str]:
    errors = []
    for item in _container_limits(limit_ranges):
        for c in (pod.get("spec") or {}).get("containers") or []:
            res = c.get("resources") or {}
            requests, limits = res.get("requests") or {}, res.get("limits") or {}
            for resource, enforced in (item.get("max") or {}).items():
                if resource not in limits:
                    errors.append(f"maximum {resource} usage per Container is {enforced}.  No limit is specified")
                elif parse_quantity(limits[resource]) > parse_quantity(enforced):
                    errors.append(f"maximum {resource} usage per Container is {enforced}, but limit is "
                                  f"{limits[resource]}")
            for resource, enforced in (item.get("min") or {}).items():
                if resource not in requests:
                    errors.append(f"minimum {resource} usage per Container is {enforced}.  No request is specified")
                elif parse_quantity(requests[resource]) < parse_quantity(enforced):
                    errors.append(f"minimum {resource} usage per Container is {enforced}, but request is "
                                  f"{requests[resource]}")
    return errors


def _check_quota(pod: dict[str, Any], quota: dict[str, Any], others: list[dict[str, Any]]) -> None:
    name = pod["metadata"]["name"]
    quota_name = quota["metadata"]["name"]
    hard: dict[str, Any] = (quota.get("spec") or {}).get("hard") or {}
    missing = sorted(f"{key} for: {','.join(names)}" for key in hard
                     if key in QUOTA_COMPUTE and (names := _missing(pod, key)))
    if missing:
        raise forbidden("pods", "", name, f"failed quota: {quota_name}: must specify {'; '.join(missing)}")
    wanted = _pod_usage(pod)
    used = {key: Decimal(0) for key in wanted}
    for other in others:
        if (other.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            continue
        for key, amount in _pod_usage(other).items():
            used[key] += amount
    exceeded = sorted(key for key in hard if key in wanted and used[key] + wanted[key] > parse_quantity(hard[key]))
    if not exceeded:
        return

    def show(values: dict[str, Any]) -> str:
        return ",".join(f"{k}={values[k] if isinstance(values[k], str) else format_quantity(values[k], k)}"
                        for k in exceeded)

    raise forbidden("pods", "", name, f"exceeded quota: {quota_name}, requested: {show(wanted)}, used: "
                    f"{show(used)}, limited: {show({k: str(hard[k]) for k in hard})}")


class PodAdmission:
    """The admission plugins for pods, reading LimitRanges, ResourceQuotas, namespaces and pods from the store."""

    def __init__(self, store: Store, types: dict[tuple[str, str], ResourceType]) -> None:
        self.store = store
        self.types = types

    def _list(self, plural: str, namespace: str) -> list[dict[str, Any]]:
        return self.store.list(self.types[("", plural)], namespace)

    def mutate(self, pod: dict[str, Any], namespace: str) -> None:
        """LimitRanger's defaulting: a container without a request or limit gets the LimitRange's (a request falls
        back to the container's own limit first, as API defaulting does before admission)."""
        for item in _container_limits(self._list("limitranges", namespace)):
            defaults, default_requests = item.get("default") or {}, item.get("defaultRequest") or {}
            for c in (pod.get("spec") or {}).get("containers") or []:
                res = _resources(c)
                limits = res.get("limits") or {}
                requests = res.get("requests") or {}
                own_limits = dict(limits)
                for resource, value in defaults.items():
                    limits.setdefault(resource, value)
                for resource, value in {**defaults, **default_requests}.items():
                    requests.setdefault(resource, own_limits.get(resource, value))
                if limits:
                    res["limits"] = limits
                if requests:
                    res["requests"] = requests

    def validate(self, pod: dict[str, Any], namespace: str) -> None:
        """LimitRange bounds, then the PodSecurity level of the namespace, then every ResourceQuota: the first
        plugin that refuses answers 403 with its message."""
        name = pod["metadata"]["name"]
        errors = _limit_range_errors(pod, self._list("limitranges", namespace))
        if errors:
            raise forbidden("pods", "", name, errors[0] if len(errors) == 1 else "[" + ", ".join(errors) + "]")
        check_pod_security(pod, self.store.find(self.types[("", "namespaces")], "", namespace))
        others = self._list("pods", namespace)
        for quota in self._list("resourcequotas", namespace):
            _check_quota(pod, quota, others)
