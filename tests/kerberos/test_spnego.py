"""SPNEGO from ``kernelfleet.provisioners.spnego`` to an aiohttp service behind ``spnego_middleware``, with a real KDC.

The service is a tiny aiohttp app on 127.0.0.1 reached as ``http://localhost:<port>`` (its principal is
``HTTP/localhost``), checking tickets with the HTTP keytab as Hadoop's AuthenticationFilter does. Every failure must
name the endpoint and carry Kerberos's (or the server's) own reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiohttp
import gssapi
import pytest
from aiohttp import web
from kdc import KerberosRealm, start_kdc
from spnego_server import KERBEROS_PRINCIPAL, REMOTE_USER, spnego_middleware

from kernelfleet.provisioners.spnego import SpnegoError, negotiate_request, negotiate_token


async def whoami(request: web.Request) -> web.Response:
    return web.json_response({"principal": request[KERBEROS_PRINCIPAL], "user": request[REMOTE_USER]})


@contextlib.asynccontextmanager
async def serve(handler: Callable[[web.Request], Awaitable[web.Response]], keytab: Path | None
                ) -> AsyncIterator[str]:
    """An app answering /ws/v1/cluster/info on 127.0.0.1, behind spnego_middleware when given a keytab; yields its
    base URL as http://localhost:<port> (the host name of the HTTP/localhost principal)."""
    app = web.Application(middlewares=[spnego_middleware(keytab)] if keytab else [])
    app.router.add_get("/ws/v1/cluster/info", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://localhost:{port}"
    finally:
        await runner.cleanup()


async def refusal(base: str) -> str:
    """The SpnegoError of a GET of base's /ws/v1/cluster/info; it must name that URL."""
    url = f"{base}/ws/v1/cluster/info"
    async with aiohttp.ClientSession() as session:
        with pytest.raises(SpnegoError) as caught:
            await negotiate_request(session, "GET", url)
    message = str(caught.value)
    assert url in message, message
    return message


@pytest.fixture
async def service(kdc: KerberosRealm) -> AsyncIterator[str]:
    """The protected app; yields its base URL."""
    async with serve(whoami, kdc.keytab("HTTP/localhost")) as url:
        yield url


async def test_ticket_gets_200_with_mutual_auth_and_cookie(service: str, kerberos_ticket: Callable[..., str]) -> None:
    kerberos_ticket("alice")
    url = f"{service}/ws/v1/cluster/info"
    async with aiohttp.ClientSession() as session:
        response = await negotiate_request(session, "GET", url)
        async with response:
            assert response.status == 200
            assert await response.json() == {"principal": "alice@KERNELFLEET.TEST", "user": "alice"}
            assert negotiate_token(response.headers.getall("WWW-Authenticate")), "no mutual token from the server"
        # the hadoop.auth cookie authenticates the next request without a token, as with Hadoop
        async with session.get(url) as plain:
            assert plain.status == 200
            assert (await plain.json())["user"] == "alice"


async def test_no_authorization_is_hadoops_401(service: str, kdc: KerberosRealm) -> None:
    async with aiohttp.ClientSession() as session, session.get(f"{service}/ws/v1/cluster/info") as response:
        assert response.status == 401
        assert response.headers["WWW-Authenticate"] == "Negotiate"
        assert "Authentication required" in await response.text()


async def test_no_ticket_names_endpoint(service: str, kdc: KerberosRealm) -> None:
    message = await refusal(service)
    assert "HTTP/localhost" in message and "No Kerberos credentials available" in message and "kinit" in message


async def test_kdc_down_is_clear(service: str, kdc: KerberosRealm, kerberos_ticket: Callable[..., str]) -> None:
    kerberos_ticket("alice")  # a TGT, but no HTTP service ticket yet: that needs the KDC
    kdc.stop()
    message = await refusal(service)
    assert "Cannot contact any KDC" in message, message


async def test_expired_ticket_is_clear(service: str, kdc: KerberosRealm, kerberos_ticket: Callable[..., str]) -> None:
    kerberos_ticket("alice", lifetime="2s")
    expiry = gssapi.Credentials(usage="initiate").lifetime
    await asyncio.sleep(expiry + 1)  # the event under test is the ticket's end time passing; nothing to watch
    message = await refusal(service)
    assert "expired" in message.lower(), message


async def test_other_realm_is_refused(service: str, kdc: KerberosRealm, tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """A user of another realm (its own KDC, no trust with ours) gets no ticket for our HTTP/localhost."""
    other = await asyncio.to_thread(start_kdc, tmp_path / "other", ("alice",), "OTHER.TEST")
    try:
        env = other.kinit("alice", tmp_path / "other-ccache")
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        message = await refusal(service)
        assert "not found in Kerberos database" in message, message
    finally:
        other.stop()


async def test_wrong_service_key_is_hadoops_403(kdc: KerberosRealm, kerberos_ticket: Callable[..., str]) -> None:
    """A server holding another service's key (host/localhost) cannot read an HTTP ticket: 403 with GSSException."""
    kerberos_ticket("alice")
    async with serve(whoami, kdc.keytab("host/localhost")) as base:
        message = await refusal(base)
    assert "403" in message and "GSSException" in message, message


async def test_gss_work_stays_off_the_loop(service: str, kerberos_ticket: Callable[..., str]) -> None:
    """Requests keep flowing while others authenticate: a loop tick during a burst is never long."""
    kerberos_ticket("alice")
    url = f"{service}/ws/v1/cluster/info"
    ticks: list[float] = []
    stop = asyncio.Event()

    async def ticker() -> None:
        last = time.monotonic()
        while not stop.is_set():
            await asyncio.sleep(0)
            now = time.monotonic()
            ticks.append(now - last)
            last = now

    task = asyncio.create_task(ticker())
    async with aiohttp.ClientSession() as session:
        responses = await asyncio.gather(*(negotiate_request(session, "GET", url) for _ in range(10)))
        for response in responses:
            assert response.status == 200
            response.release()
    stop.set()
    await task
    assert max(ticks) < 0.5, f"the loop was blocked for {max(ticks):.3f}s"


async def test_server_without_mutual_token_is_not_trusted(kdc: KerberosRealm,
                                                          kerberos_ticket: Callable[..., str]) -> None:
    """An impostor that answers 200 without the service key cannot prove itself: the answer is refused."""
    async def impostor(request: web.Request) -> web.Response:
        return web.json_response({"clusterInfo": {}})

    kerberos_ticket("alice")
    async with serve(impostor, None) as base:
        message = await refusal(base)
    assert "not trusted" in message, message
