"""Errors as the ResourceManager's web services send them: a ``RemoteException`` JSON object.

Hadoop's ``GenericExceptionHandler`` maps ``NotFoundException`` to 404, ``BadRequestException`` to 400,
``ForbiddenException`` to 403 and anything else to 500, with the Java class in ``javaClassName``.
"""

from __future__ import annotations

import json

from aiohttp import web

JAVA_CLASSES = {
    "NotFoundException": "org.apache.hadoop.yarn.webapp.NotFoundException",
    "BadRequestException": "org.apache.hadoop.yarn.webapp.BadRequestException",
    "ForbiddenException": "org.apache.hadoop.yarn.webapp.ForbiddenException",
    "AuthorizationException": "org.apache.hadoop.security.authorize.AuthorizationException",
    "YarnException": "org.apache.hadoop.yarn.exceptions.YarnException",
}
STATUS = {"NotFoundException": 404, "BadRequestException": 400, "ForbiddenException": 403,
          "AuthorizationException": 403, "YarnException": 500}


class RemoteError(Exception):
    """Raised by the cluster model; the server answers it as YARN would."""

    def __init__(self, exception: str, message: str) -> None:
        super().__init__(message)
        self.exception = exception
        self.message = message

    def response(self) -> web.Response:
        body = {"RemoteException": {"exception": self.exception, "message": self.message,
                                    "javaClassName": JAVA_CLASSES[self.exception]}}
        return web.Response(status=STATUS[self.exception], text=json.dumps(body), content_type="application/json")


def not_found(message: str) -> RemoteError:
    return RemoteError("NotFoundException", f"java.lang.Exception: {message}")


def bad_request(message: str) -> RemoteError:
    return RemoteError("BadRequestException", message)
