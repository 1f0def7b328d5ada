"""Secrets and ConfigMaps as the API server stores them and as the kubelet hands them to containers.

The API server converts a Secret's ``stringData`` into base64 ``data`` (``stringData`` is write-only and never
read back), refuses ``data`` that is not base64 (a decode error, 400), keys that are not config keys (422), and
any change to an ``immutable`` Secret. The kubelet resolves ``env[].valueFrom.secretKeyRef`` /
``configMapKeyRef`` from the pod's namespace; a missing object or key (not ``optional``) keeps the container
from being created (``CreateContainerConfigError``) with the kubelet's own message.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable
from typing import Any

from .errors import bad_request, invalid

CONFIG_KEY = re.compile(r"[-._a-zA-Z0-9]+")
CONFIG_KEY_MSG = ("a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  "
                  "or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')")
IMMUTABLE_MSG = "Forbidden: field is immutable when `immutable` is set"

#: Looks an object up in the pod's namespace: (plural, name) -> the stored object or None.
Lookup = Callable[[str, str], "dict[str, Any] | None"]


class EnvConfigError(Exception):
    """A container's environment cannot be made: the message is the kubelet's (CreateContainerConfigError)."""


def _decode(value: Any) -> bytes:
    try:
        return base64.b64decode(str(value), validate=True)
    except (binascii.Error, ValueError) as err:
        raise bad_request(f'Secret in version "v1" cannot be handled as a Secret: illegal base64 data ({err})'
                          ) from None


def normalize_secret(secret: dict[str, Any]) -> None:
    """Merge ``stringData`` into base64 ``data`` (it wins on a shared key) and check the keys, in place."""
    data = secret.get("data")
    string_data = secret.pop("stringData", None)
    if (data is not None and not isinstance(data, dict)) or (
            string_data is not None and not isinstance(string_data, dict)):
        return  # the schema check answers the decode error
    merged = dict(data or {})
    for value in merged.values():
        _decode(value)
    for key, value in (string_data or {}).items():
        merged[key] = base64.b64encode(str(value).encode()).decode("ascii")
    if merged:
        secret["data"] = merged
    causes = [{"reason": "FieldValueInvalid", "message": f'Invalid value: "{key}": {CONFIG_KEY_MSG}',
               "field": f"data[{key}]"} for key in merged if not CONFIG_KEY.fullmatch(str(key))]
    if causes:
        raise invalid("Secret", "", str((secret.get("metadata") or {}).get("name") or ""), causes)


def check_immutable(kind: str, current: dict[str, Any], new: dict[str, Any]) -> None:
    """An ``immutable`` Secret or ConfigMap keeps its data and stays immutable (it may only be deleted)."""
    if not current.get("immutable"):
        return
    causes = []
    for key in ("data", "binaryData"):
        if new.get(key) != current.get(key):
            causes.append({"reason": "FieldValueForbidden", "message": IMMUTABLE_MSG, "field": key})
    if new.get("immutable") is not True:
        causes.append({"reason": "FieldValueForbidden", "message": IMMUTABLE_MSG, "field": "immutable"})
    if causes:
        raise invalid(kind, "", str(current["metadata"]["name"]), causes)


def _ref_value(ref: dict[str, Any], namespace: str, lookup: Lookup, *, secret: bool) -> str | None:
    """The value one ``secretKeyRef``/``configMapKeyRef`` names; None when it is optional and missing."""
    name, key = str(ref.get("name") or ""), str(ref.get("key") or "")
    optional = bool(ref.get("optional"))
    obj = lookup("secrets" if secret else "configmaps", name)
    if obj is None:
        if optional:
            return None
        raise EnvConfigError(f'{"secret" if secret else "configmap"} "{name}" not found')
    if secret:
        raw = (obj.get("data") or {}).get(key)
        if raw is not None:
            return base64.b64decode(str(raw)).decode("utf-8", errors="replace")
    else:
        raw = (obj.get("data") or {}).get(key)
        if raw is not None:
            return str(raw)
        binary = (obj.get("binaryData") or {}).get(key)
        if binary is not None:
            return base64.b64decode(str(binary)).decode("utf-8", errors="replace")
    if optional:
        return None
    raise EnvConfigError(f"couldn't find key {key} in {'Secret' if secret else 'ConfigMap'} {namespace}/{name}")


def container_env(env: list[dict[str, Any]], namespace: str, lookup: Lookup,
                  field_value: Callable[[str], str | None] | None = None) -> dict[str, str]:
    """A container's variables in order, references resolved; ``fieldRef`` through ``field_value`` (the pod's
    downward API), other ``valueFrom`` sources stay empty (not emulated). Raises ``EnvConfigError`` as the kubelet
    refuses the container."""
    out: dict[str, str] = {}
    for entry in env:
        if "name" not in entry:
            continue
        source = entry.get("valueFrom") or {}
        if "fieldRef" in source and field_value is not None:
            path = str((source["fieldRef"] or {}).get("fieldPath", ""))
            value = field_value(path)
            if value is None:
                raise EnvConfigError(f"unsupported fieldPath: {path}")
            out[str(entry["name"])] = value
            continue
        if "secretKeyRef" in source or "configMapKeyRef" in source:
            secret = "secretKeyRef" in source
            value = _ref_value(source["secretKeyRef" if secret else "configMapKeyRef"] or {}, namespace, lookup,
                               secret=secret)
            if value is not None:
                out[str(entry["name"])] = value
            continue
        out[str(entry["name"])] = str(entry.get("value", ""))
    return out
