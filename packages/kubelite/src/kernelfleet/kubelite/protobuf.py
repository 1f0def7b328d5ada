"""The Kubernetes protobuf wire format, read for the one kind of body clients send only that way: kubectl posts
SelfSubjectAccessReview / SelfSubjectRulesReview (``kubectl auth can-i``) as ``application/vnd.kubernetes.protobuf``,
which every real API server accepts. The server's request entry (server.py) decodes them with ``decode_review``
into the JSON shape; answers stay JSON, which kubectl accepts too.
"""

from __future__ import annotations

from typing import Any

from .errors import bad_request

CONTENT_TYPE = "application/vnd.kubernetes.protobuf"
_MAGIC = b"k8s\x00"
Fields = dict[int, list[Any]]


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(data):
            raise ValueError("truncated varint")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7


def fields(data: bytes) -> Fields:
    """A message's fields by number: ints for varints, bytes for length-delimited values."""
    out: Fields = {}
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        value: Any
        if wire == 0:
            value, pos = _varint(data, pos)
        elif wire == 2:
            length, pos = _varint(data, pos)
            value, pos = data[pos:pos + length], pos + length
        elif wire == 1:
            value, pos = data[pos:pos + 8], pos + 8
        elif wire == 5:
            value, pos = data[pos:pos + 4], pos + 4
        else:
            raise ValueError(f"unsupported wire type {wire}")
        out.setdefault(number, []).append(value)
    return out


def _text(message: Fields, number: int) -> str:
    values = message.get(number)
    return values[-1].decode() if values else ""


def _message(message: Fields, number: int) -> Fields | None:
    values = message.get(number)
    return fields(values[-1]) if values else None


def decode_review(body: bytes) -> dict[str, Any]:
    """A SelfSubjectAccessReview or SelfSubjectRulesReview in its ``runtime.Unknown`` envelope, as the JSON object
    (``kind``, ``apiVersion``, ``spec``) the handler takes; a 400 for anything else."""
    try:
        if not body.startswith(_MAGIC):
            raise ValueError("no k8s protobuf envelope")
        unknown = fields(body[len(_MAGIC):])
        type_meta = _message(unknown, 1) or {}
        kind, api_version = _text(type_meta, 2), _text(type_meta, 1)
        review = fields(unknown.get(2, [b""])[-1])
        spec_fields = _message(review, 2) or {}
        spec: dict[str, Any] = {}
        if kind == "SelfSubjectRulesReview":
            spec["namespace"] = _text(spec_fields, 1)
        elif kind == "SelfSubjectAccessReview":
            resource = _message(spec_fields, 1)
            non_resource = _message(spec_fields, 2)
            if resource is not None:
                names = ("namespace", "verb", "group", "version", "resource", "subresource", "name")
                spec["resourceAttributes"] = {n: _text(resource, i) for i, n in enumerate(names, 1)}
            if non_resource is not None:
                spec["nonResourceAttributes"] = {"path": _text(non_resource, 1), "verb": _text(non_resource, 2)}
        else:
            raise ValueError(f"kind {kind!r} is not served as protobuf here")
    except (ValueError, UnicodeDecodeError) as err:
        raise bad_request(f"the body of the request was in an unknown format - accepted media types include: "
                          f"application/json, application/yaml, {CONTENT_TYPE} ({err})") from None
    return {"kind": kind, "apiVersion": api_version, "spec": spec}
