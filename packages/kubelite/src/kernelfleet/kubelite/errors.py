"""Kubernetes ``Status`` failures, shaped like the real API server's so client error handling is exercised."""

from __future__ import annotations

from typing import Any

_HTTP_REASON = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    409: "AlreadyExists",
    410: "Expired",
    415: "UnsupportedMediaType",
    422: "Invalid",
    500: "InternalError",
}


def resource_name(plural: str, group: str) -> str:
    """The ``plural.group`` spelling the API server uses in messages (``pods``, ``rolebindings.rbac...``)."""
    return f"{plural}.{group}" if group else plural


class ApiError(Exception):
    """An error answered as a ``Status`` object with the given HTTP code."""

    def __init__(
        self,
        code: int,
        message: str,
        reason: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.reason = reason if reason is not None else _HTTP_REASON.get(code, "")
        self.details = details

    def status(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
        }
        if self.details is not None:
            body["details"] = self.details
        body["code"] = self.code
        return body


def _details(name: str, plural: str, group: str) -> dict[str, Any]:
    details: dict[str, Any] = {"name": name}
    if group:
        details["group"] = group
    details["kind"] = plural
    return details


def not_found(plural: str, group: str, name: str) -> ApiError:
    return ApiError(404, f'{resource_name(plural, group)} "{name}" not found', "NotFound",
                    _details(name, plural, group))


def already_exists(plural: str, group: str, name: str) -> ApiError:
    return ApiError(409, f'{resource_name(plural, group)} "{name}" already exists', "AlreadyExists",
                    _details(name, plural, group))


def conflict(plural: str, group: str, name: str, why: str) -> ApiError:
    return ApiError(409, f'Operation cannot be fulfilled on {resource_name(plural, group)} "{name}": {why}',
                    "Conflict", _details(name, plural, group))


def precondition_failed(plural: str, group: str, key: str, name: str, field: str, wanted: str, actual: str) -> ApiError:
    """A DeleteOptions precondition that does not hold: the API server answers its storage layer's "invalid object"
    error as a 409 Conflict, so a client that deletes "the object I created" never deletes a replacement."""
    why = (f"StorageError: invalid object, Code: 4, Key: {key}, ResourceVersion: 0, AdditionalErrorMsg: "
           f"Precondition failed: {field} in precondition: {wanted}, {field} in object meta: {actual}")
    return conflict(plural, group, name, why)


def forbidden(plural: str, group: str, name: str, why: str) -> ApiError:
    return ApiError(403, f'{resource_name(plural, group)} "{name}" is forbidden: {why}', "Forbidden",
                    _details(name, plural, group))


def invalid(kind: str, group: str, name: str, causes: list[dict[str, str]]) -> ApiError:
    """422 the way apimachinery's ``NewInvalid`` words it: one error plain, several in brackets."""
    texts = [f"{c['field']}: {c['message']}" if c.get("field") else c["message"] for c in causes]
    summary = texts[0] if len(texts) == 1 else "[" + ", ".join(texts) + "]"
    details: dict[str, Any] = {"name": name}
    if group:
        details["group"] = group
    details["kind"] = kind
    details["causes"] = causes
    return ApiError(422, f'{kind}.{group} "{name}" is invalid: {summary}' if group
                    else f'{kind} "{name}" is invalid: {summary}', "Invalid", details)


def bad_request(message: str) -> ApiError:
    return ApiError(400, message, "BadRequest")


def expired(requested: int, oldest: int) -> ApiError:
    return ApiError(410, f"too old resource version: {requested} ({oldest})", "Expired")


def resource_missing() -> ApiError:
    """What the server says for a path naming no known resource (e.g. a CRD that is not installed)."""
    return ApiError(404, "the server could not find the requested resource", "NotFound", {})
