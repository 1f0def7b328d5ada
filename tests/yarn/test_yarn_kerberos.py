"""A secured ResourceManager (SPNEGO, as Hadoop's ``hadoop.http.authentication.type=kerberos``) in front of yarnlite,
against the real MIT KDC of tests/support/kdc.py: with ``yarn_endpoint_security_enabled`` the yarn-provisioner's
default hook authenticates every request with the server's ticket, and the RM runs the app as the ticket's user;
without a ticket the launch fails naming the RM and Kerberos' own reason, and nothing is submitted."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
import pytest_asyncio
from aiohttp import web
from kdc import KerberosRealm
from kf_testing import connect, execute, manager
from spnego_server import REMOTE_USER, spnego_middleware

from kernelfleet.provisioners.base import LaunchError
from kernelfleet.yarnlite import Cluster, ResourceManager


def spnego_authenticate(keytab: Path) -> Callable[[web.Request], object]:
    """yarnlite's ``authenticate`` hook backed by the SPNEGO middleware Hadoop's web filter stands for: the user is
    the ticket's principal without its realm; anything else is the middleware's own 401/403 answer."""
    middleware = spnego_middleware(keytab)

    async def authenticate(request: web.Request) -> str:
        async def through(_: web.Request) -> web.StreamResponse:
            return web.Response()

        response = await middleware(request, through)
        if response.status != 200:
            assert isinstance(response, web.Response)
            refusal = web.HTTPUnauthorized if response.status == 401 else web.HTTPForbidden
            challenge = {k: v for k, v in response.headers.items() if k == "WWW-Authenticate"}
            raise refusal(headers=challenge, text=response.text or "", content_type="text/html")
        return str(request[REMOTE_USER])

    return authenticate


@pytest_asyncio.fixture
async def kerberized_rm(cluster: Cluster, kdc: KerberosRealm) -> AsyncIterator[ResourceManager]:
    # The service principal is HTTP/localhost, so the RM is reached by that name (Hadoop's HTTP/_HOST).
    async with ResourceManager(cluster, host="localhost",
                               authenticate=spnego_authenticate(kdc.keytab("HTTP/localhost"))) as server:
        yield server


def secure_spec(make_kernelspec: Callable[..., str], rm: ResourceManager, name: str) -> str:
    return make_kernelspec(name, provisioner="yarn-provisioner",
                           config={"yarn_endpoint": rm.endpoint, "submission": "rest",
                                   "yarn_endpoint_security_enabled": True})


async def test_a_ticket_authenticates_every_rm_request(kernels_dir: Path, make_kernelspec: Callable[..., str],
                                                       kerberized_rm: ResourceManager, cluster: Cluster,
                                                       kerberos_ticket: Callable[..., str]) -> None:
    kerberos_ticket("alice")
    km = manager(kernels_dir, secure_spec(make_kernelspec, kerberized_rm, "yarn_kerberos"))
    await km.start_kernel()
    try:
        client = await connect(km)
        assert (await execute(client, "6 * 7"))["result"] == "42"
        client.stop_channels()
    finally:
        await km.shutdown_kernel()
    (app,) = cluster.apps.values()
    assert app.user == "alice" and app.state == "FINISHED"


async def test_no_ticket_fails_naming_the_rm_and_submits_nothing(kernels_dir: Path,
                                                                 make_kernelspec: Callable[..., str],
                                                                 kerberized_rm: ResourceManager, cluster: Cluster,
                                                                 kdc: KerberosRealm) -> None:
    km = manager(kernels_dir, secure_spec(make_kernelspec, kerberized_rm, "yarn_kerberos_noticket"))
    with pytest.raises(LaunchError) as failure:
        await km.start_kernel()
    message = str(failure.value)
    assert str(km.kernel_id) in message and kerberized_rm.endpoint in message, message
    assert "Kerberos (SPNEGO) authentication" in message, message
    assert not cluster.apps
