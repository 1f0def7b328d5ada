"""``/openapi/v3``: the OpenAPI v3 discovery kubectl reads before ``apply`` / ``create``, reduced to what it uses.

kubectl validates manifests on the server when the server's OpenAPI says its write operations take the
``fieldValidation`` query parameter (its ``QueryParamVerifierV3``), and only then; otherwise it downloads the whole
OpenAPI v2 document (protobuf) to validate on the client. So kubelite lists, per group-version, each resource path's
operations with their ``x-kubernetes-group-version-kind`` and ``fieldValidation``/``dryRun`` parameters, and no
schemas: objects are validated by the server against the official schemas (validation.py), as ``Strict`` asks.
The server's request entry serves ``root`` and ``group_version``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from typing import Any

from .resources import ResourceType

_WRITE_PARAMETERS = [{"name": name, "in": "query", "schema": {"type": "string", "uniqueItems": True}}
                     for name in ("dryRun", "fieldManager", "fieldValidation")]


def _gv_path(group: str, version: str) -> str:
    return f"apis/{group}/{version}" if group else f"api/{version}"


def group_version(types: Iterable[ResourceType], group: str, version: str) -> dict[str, Any] | None:
    """The OpenAPI v3 document of ``group/version`` (None: not served)."""
    paths: dict[str, Any] = {}
    for rt in types:
        if rt.group != group or rt.version != version:
            continue
        gvk = {"group": rt.group, "version": rt.version, "kind": rt.kind}
        base = f"/{_gv_path(group, version)}/" + ("namespaces/{namespace}/" if rt.namespaced else "") + rt.plural

        def operation(action: str, writes: bool, gvk: dict[str, str] = gvk, rt: ResourceType = rt) -> dict[str, Any]:
            return {"operationId": f"{action}{rt.kind}", "x-kubernetes-action": action,
                    "x-kubernetes-group-version-kind": gvk,
                    "parameters": list(_WRITE_PARAMETERS) if writes else [],
                    "responses": {"200": {"description": "OK"}}}

        verbs = set(rt.verbs)
        collection: dict[str, Any] = {}
        if "list" in verbs:
            collection["get"] = operation("list", False)
        if "create" in verbs:
            collection["post"] = operation("post", True)
        paths[base] = collection
        if {"get", "update", "patch", "delete"} & verbs:
            paths[base + "/{name}"] = {"get": operation("get", False), "put": operation("put", True),
                                       "patch": operation("patch", True), "delete": operation("delete", False)}
    if not paths:
        return None
    return {"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": "v1.36.0"}, "paths": paths,
            "components": {"schemas": {}}}


def root(types: Iterable[ResourceType]) -> dict[str, Any]:
    """``/openapi/v3``: each served group-version and where its document is (with the content hash as a real server
    puts it, so clients cache by it)."""
    types = list(types)
    out: dict[str, Any] = {}
    for group, version in sorted({(rt.group, rt.version) for rt in types}):
        doc = group_version(types, group, version)
        digest = hashlib.sha512(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:32].upper()
        out[_gv_path(group, version)] = {"serverRelativeURL": f"/openapi/v3/{_gv_path(group, version)}?hash={digest}"}
    return {"paths": out}
