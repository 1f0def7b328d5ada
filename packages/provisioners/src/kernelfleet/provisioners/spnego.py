"""SPNEGO (``Authorization: Negotiate``) for the HTTP services a provisioner calls, e.g. a Kerberized YARN RM.

Hadoop's web services sit behind its ``AuthenticationFilter``: a request without a valid Kerberos token gets ``401``
with ``WWW-Authenticate: Negotiate``, a valid one gets the answer plus ``WWW-Authenticate: Negotiate <token>`` (the
server's half of mutual authentication) and a ``hadoop.auth`` cookie. ``negotiate_request`` sends the token with the
first request (the provisioner knows the endpoint is secured, so the bare 401 round trip of ``curl --negotiate`` is
saved), continues a multi-leg exchange when the server's 401 carries a token, and checks the server's mutual token.
The token is a Kerberos (krb5 mechanism) token under the Negotiate scheme, as Hadoop's own ``KerberosAuthenticator``
sends: never an NTLM fallback, which no Hadoop service accepts.

The Kerberos work is pyspnego over python-gssapi (the ``kerberos`` extra); a GSS call can block on the KDC (a
service ticket not yet in the cache), so every one runs on a worker thread, never on the event loop. The user's
ticket comes from the process's default credential cache (``KRB5CCNAME``, filled by ``kinit`` or a keytab login);
nothing here reads a password or a keytab. Called by the yarn-provisioner's RM client for every REST request when
``yarn_endpoint_security_enabled``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import html
import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from kernelfleet.provisioners.kerberos import gss_reason

NEGOTIATE = "negotiate"
MAX_LEGS = 4  # Kerberos needs one; SPNEGO mechanism renegotiation at most a few more
JETTY_REASON = re.compile(r"<pre>(.*?)</pre>", re.S)  # Hadoop's (Jetty's) error page carries the reason here


class SpnegoError(PermissionError):
    """Kerberos authentication to an HTTP endpoint failed; the message names the endpoint and Kerberos's reason."""


def negotiate_token(challenges: Iterable[str]) -> bytes | None:
    """The token of the first ``Negotiate`` challenge among ``WWW-Authenticate`` values: ``b""`` for a bare one
    (the server asks for authentication), ``None`` when there is no Negotiate challenge at all."""
    for value in challenges:
        scheme, _, rest = value.strip().partition(" ")
        if scheme.lower() != NEGOTIATE:
            continue
        rest = rest.strip()
        if not rest:
            return b""
        try:
            return base64.b64decode(rest, validate=True)
        except (binascii.Error, ValueError):
            return None
    return None


def _load_spnego() -> Any:
    try:
        import spnego
    except ImportError:
        raise SpnegoError(
            "Kerberos (SPNEGO) needs pyspnego and gssapi: install kernelfleet-provisioners[kerberos]"
        ) from None
    return spnego


class SpnegoAuth:
    """One SPNEGO security context towards ``<service>/<host>`` (a context is single-use: one per request).

    ``hostname`` overrides the URL's host for the service principal, for an endpoint reached by address or alias
    whose principal is ``HTTP/<its canonical name>`` (Hadoop's ``HTTP/_HOST``)."""

    def __init__(self, url: str, *, service: str = "HTTP", hostname: str | None = None, mutual: bool = True) -> None:
        self.url = url
        self.hostname = hostname or urlsplit(url).hostname or "localhost"
        self.service = service
        self.mutual = mutual
        self._context: Any = None

    @property
    def target(self) -> str:
        return f"{self.service}/{self.hostname}"

    def _fail(self, reason: object) -> SpnegoError:
        return SpnegoError(f"Kerberos (SPNEGO) authentication to {self.url} as service {self.target} failed: "
                           f"{reason}")

    def _step(self, token: bytes | None) -> bytes | None:
        """Worker-thread part: make the context on first use (reads the credential cache) and take one step."""
        spnego = _load_spnego()
        try:
            if self._context is None:
                required = spnego.ContextReq.default if self.mutual else spnego.ContextReq.default & ~(
                    spnego.ContextReq.mutual_auth)
                self._context = spnego.client(hostname=self.hostname, service=self.service, protocol="kerberos",
                                              context_req=required)
            return self._context.step(token)
        except spnego.exceptions.SpnegoError as err:
            raise self._fail(gss_reason(str(err))) from None

    async def step(self, token: bytes | None = None) -> bytes | None:
        """The next token to send (``None`` when the exchange needs none), computed off the loop."""
        return await asyncio.to_thread(self._step, token)

    async def authorization(self) -> str:
        """The ``Authorization`` header value for the first request."""
        token = await self.step()
        if not token:
            raise self._fail("GSSAPI produced no initial token")
        return "Negotiate " + base64.b64encode(token).decode("ascii")

    @property
    def complete(self) -> bool:
        return self._context is not None and self._context.complete

    async def verify(self, headers: Mapping[str, str] | aiohttp.typedefs.LooseHeaders) -> None:
        """Check the server's mutual-authentication token on a successful answer: a server that cannot produce
        it does not hold the service key, so its answer is not trusted."""
        if not self.mutual or self.complete:
            return
        token = negotiate_token(_challenges(headers))
        if not token:
            raise self._fail("the server answered without proving its identity (no Negotiate token in "
                             "WWW-Authenticate), so the answer is not trusted")
        await self.step(token)
        if not self.complete:
            raise self._fail("the server's mutual-authentication token did not complete the exchange")


def _challenges(headers: Any) -> list[str]:
    getall = getattr(headers, "getall", None)
    if getall is not None:
        return list(getall("WWW-Authenticate", []))
    value = headers.get("WWW-Authenticate")
    return [value] if value else []


async def negotiate_request(session: aiohttp.ClientSession, method: str, url: str, *, service: str = "HTTP",
                            hostname: str | None = None, mutual: bool = True,
                            **kwargs: Any) -> aiohttp.ClientResponse:
    """``session.request`` with SPNEGO; the caller reads and releases the returned (authenticated) response.

    Raises SpnegoError when there is no usable ticket, the KDC cannot be reached, the server refuses the token
    (its 401/403 body, Hadoop's own words, is in the message) or fails mutual authentication. Any other status is
    the caller's to judge."""
    auth = SpnegoAuth(url, service=service, hostname=hostname, mutual=mutual)
    headers = dict(kwargs.pop("headers", None) or {})
    headers["Authorization"] = await auth.authorization()
    for _ in range(MAX_LEGS):
        response = await session.request(method, url, headers=headers, **kwargs)
        if response.status not in (401, 403):
            if response.status < 400:
                try:
                    await auth.verify(response.headers)
                except BaseException:
                    response.release()
                    raise
            return response
        token = negotiate_token(_challenges(response.headers)) if response.status == 401 else None
        if not token:
            body = await _short_body(response)
            raise auth._fail(f"the server refused the ticket: {response.status} {response.reason}: {body}")
        response.release()
        reply = await auth.step(token)
        if not reply:
            raise auth._fail("the server asked for another leg but GSSAPI has nothing more to send")
        headers["Authorization"] = "Negotiate " + base64.b64encode(reply).decode("ascii")
    raise auth._fail(f"no answer after {MAX_LEGS} Negotiate legs")


async def _short_body(response: aiohttp.ClientResponse, limit: int = 500) -> str:
    """The error body's reason, trimmed (Hadoop sends a Jetty HTML page or a JSON RemoteException)."""
    try:
        text = await response.text(errors="replace")
    finally:
        response.release()
    found = JETTY_REASON.search(text)
    if found:
        text = html.unescape(found.group(1))
    return " ".join(text.split())[:limit] or "(empty body)"


async def negotiate_authorization(url: str) -> str:
    """The ``Authorization: Negotiate ...`` value for one request to ``url``, from this process's Kerberos ticket
    (KRB5CCNAME) for ``HTTP/<the URL's host>``: the yarn-provisioner's default ``authorization_hook`` when
    ``yarn_endpoint_security_enabled`` is on. Raises ``SpnegoError`` naming the URL and libkrb5's reason (no
    ticket, KDC unreachable, unknown service principal)."""
    return await SpnegoAuth(url).authorization()
