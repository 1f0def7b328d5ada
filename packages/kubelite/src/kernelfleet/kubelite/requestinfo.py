"""What a request asks for, named as the API server's RequestInfo resolver names it, before any handler runs: the
authorizer (rbac.py) decides on these attributes, so the server's request entry (server.py ``_dispatch``) calls
``request_info`` once per request.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

_NAMESPACE_SUBRESOURCES = ("status", "finalize")
_VERBS = {"POST": "create", "PUT": "update", "PATCH": "patch", "GET": "get", "HEAD": "get", "DELETE": "delete"}


@dataclass(frozen=True)
class RequestInfo:
    verb: str
    path: str
    resource_request: bool = False
    api_group: str = ""
    api_version: str = ""
    namespace: str = ""
    resource: str = ""
    subresource: str = ""
    name: str = ""


def request_info(method: str, path: str, query: Mapping[str, str]) -> RequestInfo:
    """The resolver's reading: ``/api/v1/...`` and ``/apis/{group}/{version}/...`` with a resource are resource
    requests (``GET`` without a name is ``list`` or ``watch``, with ``metadata.name=`` in the field selector naming the
    object; ``DELETE`` without a name is ``deletecollection``; ``/namespaces/{ns}`` is the namespace's own namespace);
    anything else is a non-resource request whose verb is the lower-cased method."""
    parts = [p for p in path.split("/") if p]
    minimum = {"api": 3, "apis": 4}.get(parts[0] if parts else "", 0)
    if not minimum or len(parts) < minimum:
        return RequestInfo(method.lower(), path)
    group = parts[1] if parts[0] == "apis" else ""
    version = parts[minimum - 2]
    rest = parts[minimum - 1:]
    namespace = ""
    if rest[0] == "namespaces" and len(rest) > 1:
        namespace = rest[1]
        if len(rest) > 2 and rest[2] not in _NAMESPACE_SUBRESOURCES:
            rest = rest[2:]
    resource = rest[0]
    name = rest[1] if len(rest) > 1 else ""
    subresource = rest[2] if len(rest) > 2 else ""
    verb = _VERBS.get(method.upper(), method.lower())
    watch = query.get("watch") in ("true", "1", "True")
    if verb == "get" and watch:
        verb = "watch"
    if not name and verb == "delete":
        verb = "deletecollection"
    if not name and verb == "get":
        verb = "list"
    if not name and verb in ("list", "watch"):
        for term in (query.get("fieldSelector") or "").split(","):
            key, sep, value = term.partition("=")
            if sep and key.strip() == "metadata.name" and value.removeprefix("=").strip():
                name = value.removeprefix("=").strip()
    return RequestInfo(verb, path, True, group, version, namespace, resource, subresource, name)
