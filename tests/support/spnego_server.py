"""Server side of SPNEGO for the test services (the local YARN RM): Hadoop's ``AuthenticationFilter`` in aiohttp.

``spnego_middleware(keytab_path)`` checks every request the way Hadoop's Kerberos authentication handler does, with
python-gssapi directly (not the client's pyspnego, so the two sides are independent implementations) and the
service key from the given keytab only — the process's default keytab is never used:

* no ``Authorization`` and no valid ``hadoop.auth`` cookie: ``401``, ``WWW-Authenticate: Negotiate`` and Jetty's
  "Authentication required" error page;
* a token that does not verify (wrong service key, expired, replayed, another realm): ``403`` with
  ``GSSException: <GSSAPI's message>``, as Hadoop sends it;
* a good token: the handler runs with ``request[KERBEROS_PRINCIPAL]`` (``alice@REALM``) and
  ``request[REMOTE_USER]`` (``alice``); the answer carries ``WWW-Authenticate: Negotiate <mutual token>`` and a
  signed ``hadoop.auth`` cookie that authenticates the next requests without a token (until it expires).

GSS calls run on a worker thread. Imported by ``kernelfleet.yarnlite``'s tests and the SPNEGO tests.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import secrets
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import gssapi
from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
COOKIE = "hadoop.auth"
#: Where the middleware puts who was authenticated, for the handlers: ``alice@REALM`` and ``alice``.
KERBEROS_PRINCIPAL = web.RequestKey("kerberos_principal", str)
REMOTE_USER = web.RequestKey("remote_user", str)


def jetty_error(request: web.Request, status: int, reason: str) -> web.Response:
    """Jetty's error page, as Hadoop's HTTP server sends it for ``sendError(status, reason)``."""
    title = {401: "Unauthorized", 403: "Forbidden"}.get(status, "Error")
    body = ("<html>\n<head>\n<meta http-equiv=\"Content-Type\" content=\"text/html;charset=utf-8\"/>\n"
            f"<title>Error {status} {reason}</title>\n</head>\n<body><h2>HTTP ERROR {status}</h2>\n"
            f"<p>Problem accessing {request.path}. Reason:\n<pre>    {reason}</pre></p>\n</body>\n</html>\n")
    response = web.Response(status=status, text=body, content_type="text/html", reason=title)
    response.headers["Cache-Control"] = "must-revalidate,no-cache,no-store"
    return response


class _Cookies:
    """Hadoop's signed ``hadoop.auth`` token: ``u=<user>&p=<principal>&t=kerberos&e=<expiry ms>&s=<signature>``."""

    def __init__(self, validity: float) -> None:
        self.secret = secrets.token_bytes(32)
        self.validity = validity

    def _sign(self, text: str) -> str:
        return base64.b64encode(hmac.new(self.secret, text.encode(), hashlib.sha256).digest()).decode()

    def make(self, user: str, principal: str) -> str:
        text = f"u={user}&p={principal}&t=kerberos&e={int((time.time() + self.validity) * 1000)}"
        return f"{text}&s={self._sign(text)}"

    def check(self, value: str | None) -> tuple[str, str] | None:
        if not value:
            return None
        text, _, signature = value.strip('"').rpartition("&s=")
        if not hmac.compare_digest(self._sign(text), signature):
            return None
        fields = dict(part.partition("=")[::2] for part in text.split("&"))
        expiry = fields.get("e", "")
        if not expiry.isdigit() or int(expiry) < time.time() * 1000:
            return None
        return fields.get("u", ""), fields.get("p", "")


def spnego_middleware(keytab_path: str | Path, service: str = "HTTP", cookie_validity: float = 36000.0
                      ) -> Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]:
    """An aiohttp middleware that lets only Kerberos-authenticated requests through (see the module docstring)."""
    store = {"keytab": str(keytab_path)}
    cookies = _Cookies(cookie_validity)

    def accept(token: bytes) -> tuple[str, bytes | None]:
        credentials = gssapi.Credentials(usage="accept", store=store)
        context = gssapi.SecurityContext(creds=credentials, usage="accept")
        reply = context.step(token)
        if not context.complete:
            raise gssapi.exceptions.GSSError(0, 0)
        target = str(context.target_name)
        if not target.startswith(f"{service}/") and not target.startswith(f"{service}@"):
            raise PermissionError(f"the ticket is for {target}, not a {service} service")
        return str(context.initiator_name), reply

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        header = request.headers.get("Authorization", "")
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "negotiate" or not encoded.strip():
            known = cookies.check(request.cookies.get(COOKIE))
            if known is not None:
                request[REMOTE_USER], request[KERBEROS_PRINCIPAL] = known
                return await handler(request)
            response = jetty_error(request, 401, "Authentication required")
            response.headers["WWW-Authenticate"] = "Negotiate"
            return response
        try:
            token = base64.b64decode(encoded.strip(), validate=True)
            principal, reply = await asyncio.to_thread(accept, token)
        except (binascii.Error, ValueError):
            return jetty_error(request, 403, "GSSException: Defective token detected (Mechanism level: not base64)")
        except gssapi.exceptions.GSSError as err:
            return jetty_error(request, 403, f"GSSException: {' '.join(err.gen_message().split())}")
        except PermissionError as err:
            return jetty_error(request, 403, f"GSSException: {err}")
        request[KERBEROS_PRINCIPAL] = principal
        request[REMOTE_USER] = user = principal.partition("@")[0].partition("/")[0]
        response = await handler(request)
        if reply:
            response.headers["WWW-Authenticate"] = "Negotiate " + base64.b64encode(reply).decode()
        response.set_cookie(COOKIE, cookies.make(user, principal), path="/", httponly=True)
        return response

    return middleware
