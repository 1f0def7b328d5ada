"""Validation of submitted objects: the official OpenAPI-derived schema (kubernetes-validate) plus the
handful of semantic rules the API server enforces in Go, answered with the server's error wording."""

from __future__ import annotations

import json
import re
from functools import cache
from typing import Any

import importlib_resources
import jsonschema
from referencing import Registry, Resource

from .errors import bad_request, invalid

#: Schema release matching the kubernetes_asyncio 36.x models (Kubernetes 1.36).
SCHEMA_VERSION = "1.36"

DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")

LABEL_MSG = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and "
    "end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is "
    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
)
SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must "
    "start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is "
    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
LABEL_VALUE_MSG = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must "
    "start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for "
    "validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
)
QUALIFIED_NAME_MSG = (
    "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
    "alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is "
    "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
)

_JSON_TYPE = {dict: "object", list: "array", str: "string", bool: "bool", int: "number", float: "number"}


def _schema_dir(strict: bool) -> Any:
    root = importlib_resources.files("kubernetes_validate").joinpath("kubernetes-json-schema")
    return root.joinpath(f"v{SCHEMA_VERSION}.0-local" + ("-strict" if strict else ""))


@cache
def _registry(strict: bool) -> Registry:
    defs = json.loads(_schema_dir(strict).joinpath("_definitions.json").read_text())
    return Resource.from_contents(defs) @ Registry()


@cache
def _validator(kind: str, api_version: str, strict: bool) -> jsonschema.protocols.Validator | None:
    short = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    path = _schema_dir(strict).joinpath(f"{kind.lower()}-{short}.json")
    if not path.is_file():
        return None
    schema = json.loads(path.read_text())
    registry = Resource.from_contents(schema) @ _registry(strict)
    return jsonschema.validators.Draft202012Validator(schema, registry=registry)


def preload() -> None:
    """Parse the large shared definitions once (blocking: call it in an executor at start-up)."""
    _registry(False)
    _validator("Pod", "v1", False)


def _field(path: Any) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _cause(reason: str, message: str, field: str) -> dict[str, str]:
    return {"reason": reason, "message": message, "field": field}


def schema_check(obj: dict[str, Any], strict: bool = False) -> list[dict[str, str]]:
    """Check ``obj`` against the official schema for its kind: decode-level errors raise the server's 400,
    the rest come back as 422 causes."""
    kind = str(obj.get("kind", ""))
    api_version = str(obj.get("apiVersion", ""))
    validator = _validator(kind, api_version, strict)
    if validator is None:
        return []
    causes: list[dict[str, str]] = []
    for err in sorted(validator.iter_errors(obj), key=lambda e: list(map(str, e.absolute_path))):
        field = _field(err.absolute_path)
        if err.validator == "type":
            go_type = _JSON_TYPE.get(type(err.instance), "value")
            raise bad_request(
                f'{kind} in version "{api_version.split("/")[-1]}" cannot be handled as a {kind}: json: cannot '
                f"unmarshal {go_type} into Go struct field {field} of type {err.validator_value}"
            )
        if err.validator == "additionalProperties":
            extra = sorted(set(err.instance) - set(err.schema.get("properties", {})))
            raise bad_request(
                "strict decoding error: " + ", ".join(f'unknown field "{_join(field, e)}"' for e in extra)
            )
        if err.validator == "required":
            for missing in err.validator_value:
                if missing not in err.instance:
                    causes.append(_cause("FieldValueRequired", "Required value", _join(field, missing)))
        elif err.validator == "enum":
            allowed = ", ".join(json.dumps(v) for v in err.validator_value if v is not None)
            causes.append(_cause("FieldValueNotSupported",
                                 f"Unsupported value: {json.dumps(err.instance)}: supported values: {allowed}", field))
        else:
            causes.append(_cause("FieldValueInvalid", f"Invalid value: {json.dumps(err.instance)}: {err.message}",
                                 field))
    return causes


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _check_name(value: str, pattern: re.Pattern[str], msg: str, field: str, causes: list[dict[str, str]]) -> None:
    if not pattern.match(value):
        causes.append(_cause("FieldValueInvalid", f'Invalid value: "{value}": {msg}', field))
    elif len(value) > (63 if pattern is DNS1123_LABEL else 253):
        limit = 63 if pattern is DNS1123_LABEL else 253
        causes.append(_cause("FieldValueTooLong", f"Too long: may not be more than {limit} bytes", field))


def _check_labels(labels: Any, causes: list[dict[str, str]]) -> None:
    for key, value in (labels or {}).items():
        name = key.rsplit("/", 1)[-1]
        prefix = key.rsplit("/", 1)[0] if "/" in key else ""
        if not _QUALIFIED_NAME.match(name) or len(name) > 63 or (prefix and not DNS1123_SUBDOMAIN.match(prefix)):
            causes.append(_cause("FieldValueInvalid", f'Invalid value: "{key}": {QUALIFIED_NAME_MSG}',
                                 "metadata.labels"))
        if not isinstance(value, str) or not _LABEL_VALUE.match(value):
            causes.append(_cause("FieldValueInvalid", f'Invalid value: "{value}": {LABEL_VALUE_MSG}',
                                 "metadata.labels"))
        elif len(value) > 63:
            causes.append(_cause("FieldValueInvalid",
                                 f'Invalid value: "{value}": must be no more than 63 characters', "metadata.labels"))


def semantic_check(obj: dict[str, Any], name_is_label: bool, causes: list[dict[str, str]] | None = None) -> None:
    """The Go-side rules that matter for kernels (names, labels, pod container basics); raises the 422."""
    meta = obj.get("metadata") or {}
    kind = str(obj.get("kind", ""))
    api_version = str(obj.get("apiVersion", ""))
    group = api_version.split("/")[0] if "/" in api_version else ""
    name = str(meta.get("name") or "")
    causes = list(causes or [])
    if not name:
        causes.append(_cause("FieldValueRequired", "Required value: name or generateName is required",
                             "metadata.name"))
    elif group == "rbac.authorization.k8s.io":  # ValidateRBACName: any path segment (``system:discovery``)
        for bad in ("/", "%"):
            if bad in name:
                causes.append(_cause("FieldValueInvalid", f"Invalid value: \"{name}\": may not contain '{bad}'",
                                     "metadata.name"))
        if name in (".", ".."):
            causes.append(_cause("FieldValueInvalid", f"Invalid value: \"{name}\": may not be '{name}'",
                                 "metadata.name"))
    else:
        _check_name(name, DNS1123_LABEL if name_is_label else DNS1123_SUBDOMAIN,
                    LABEL_MSG if name_is_label else SUBDOMAIN_MSG, "metadata.name", causes)
    _check_labels(meta.get("labels"), causes)
    if kind == "Pod" and api_version == "v1":
        _check_pod_spec(obj.get("spec") or {}, causes)
    unique: dict[tuple[str, str, str], dict[str, str]] = {}
    for cause in causes:
        unique.setdefault((cause["field"], cause["reason"], cause["message"]), cause)
    if unique:
        raise invalid(kind, group, name, list(unique.values()))


def _check_pod_spec(spec: dict[str, Any], causes: list[dict[str, str]]) -> None:
    containers = spec.get("containers") or []
    if not containers:
        causes.append(_cause("FieldValueRequired", "Required value", "spec.containers"))
    seen: set[str] = set()
    for i, c in enumerate(containers):
        base = f"spec.containers[{i}]"
        cname = c.get("name") or ""
        if not cname:
            causes.append(_cause("FieldValueRequired", "Required value", f"{base}.name"))
        else:
            _check_name(cname, DNS1123_LABEL, LABEL_MSG, f"{base}.name", causes)
            if cname in seen:
                causes.append(_cause("FieldValueDuplicate", f'Duplicate value: "{cname}"', f"{base}.name"))
            seen.add(cname)
        if not c.get("image"):
            causes.append(_cause("FieldValueRequired", "Required value", f"{base}.image"))
        env_names: set[str] = set()
        for j, env in enumerate(c.get("env") or []):
            ename = env.get("name") or ""
            if not ename:
                causes.append(_cause("FieldValueRequired", "Required value", f"{base}.env[{j}].name"))
            elif "=" in ename:
                causes.append(_cause("FieldValueInvalid", f'Invalid value: "{ename}": a valid environment variable '
                                     "name must consist of printable ASCII characters other than '='",
                                     f"{base}.env[{j}].name"))
            env_names.add(ename)
    policy = spec.get("restartPolicy")
    if policy not in (None, "Always", "OnFailure", "Never"):
        causes.append(_cause("FieldValueNotSupported", f'Unsupported value: "{policy}": supported values: '
                             '"Always", "OnFailure", "Never"', "spec.restartPolicy"))


def validate(obj: dict[str, Any], *, strict: bool, name_is_label: bool) -> None:
    """Schema first (decode-time errors are 400), then semantic rules (422)."""
    causes = schema_check(obj, strict=strict)
    semantic_check(obj, name_is_label, [c for c in causes if c["field"] != "metadata.name"])
