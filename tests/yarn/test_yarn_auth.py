"""The RM authentication hook (where SPNEGO plugs in): with ``yarn_endpoint_security_enabled`` every request
carries the hook's Authorization header, and an RM that refuses a request without it is satisfied; without a
hook the launch fails with that message before anything is submitted. And impersonation: the app runs as the
requesting user."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
import pytest_asyncio
import yarn_auth_hook
from aiohttp import web
from kf_testing import connect, execute, manager
from yarn_testing import python_spark_submit_argv

from kernelfleet.provisioners.base import LaunchError
from kernelfleet.yarnlite import Cluster, ResourceManager


async def negotiate_only(request: web.Request) -> str:
    if request.headers.get("Authorization") != yarn_auth_hook.TOKEN:
        raise web.HTTPUnauthorized(headers={"WWW-Authenticate": "Negotiate"})
    return "alice"


@pytest_asyncio.fixture
async def secure_rm(cluster: Cluster) -> AsyncIterator[ResourceManager]:
    async with ResourceManager(cluster, authenticate=negotiate_only) as server:
        yield server


async def test_hook_header_reaches_the_rm(kernels_dir: Path, make_kernelspec: Callable[..., str],
                                          secure_rm: ResourceManager, cluster: Cluster) -> None:
    name = make_kernelspec("yarn_secure", provisioner="yarn-provisioner",
                           config={"yarn_endpoint": secure_rm.endpoint, "submission": "rest",
                                   "yarn_endpoint_security_enabled": True,
                                   "authorization_hook": "yarn_auth_hook:static_negotiate"})
    km = manager(kernels_dir, name)
    await km.start_kernel()
    try:
        client = await connect(km)
        assert (await execute(client, "3 * 3"))["result"] == "9"
        client.stop_channels()
    finally:
        await km.shutdown_kernel()
    (app,) = cluster.apps.values()
    assert app.user == "alice" and app.state == "FINISHED"
    assert any(url.startswith(secure_rm.endpoint) for url in yarn_auth_hook.SEEN)


async def test_security_without_hook_fails_before_submitting(kernels_dir: Path, make_kernelspec: Callable[..., str],
                                                             secure_rm: ResourceManager, cluster: Cluster) -> None:
    name = make_kernelspec("yarn_secure_nohook", provisioner="yarn-provisioner",
                           config={"yarn_endpoint": secure_rm.endpoint, "submission": "rest",
                                   "yarn_endpoint_security_enabled": True, "authorization_hook": ""})
    km = manager(kernels_dir, name)
    with pytest.raises(LaunchError, match="no SPNEGO authorization_hook") as failure:
        await km.start_kernel()
    assert str(km.kernel_id) in str(failure.value) and not cluster.apps


async def test_rm_refusal_is_reported_with_its_status(kernels_dir: Path, make_kernelspec: Callable[..., str],
                                                      secure_rm: ResourceManager) -> None:
    name = make_kernelspec("yarn_insecure", provisioner="yarn-provisioner",
                           config={"yarn_endpoint": secure_rm.endpoint, "submission": "rest"})
    km = manager(kernels_dir, name)
    with pytest.raises(LaunchError, match="YARN refused the application: HTTP 401"):
        await km.start_kernel()


@pytest.mark.parametrize("submission", ["rest", "argv"])
async def test_impersonation_runs_the_app_as_the_requesting_user(
    submission: str, kernels_dir: Path, make_kernelspec: Callable[..., str], rm: ResourceManager, cluster: Cluster,
    spark_home: Path, launchers_dir: Path,
) -> None:
    """``impersonation_enabled`` (GP_IMPERSONATION_ENABLED): a REST submission is made as KERNEL_USERNAME; spark-submit
    (the TEST-ONLY stand-in, which submits as its ``--proxy-user``) gets ``--proxy-user KERNEL_USERNAME``. A user
    name that is not one is refused before anything is submitted."""
    argv = None if submission == "rest" else python_spark_submit_argv(spark_home, launchers_dir)
    name = make_kernelspec(f"yarn_proxy_{submission}", provisioner="yarn-provisioner", argv=argv,
                           config={"yarn_endpoint": rm.endpoint, "submission": submission,
                                   "impersonation_enabled": True})
    km = manager(kernels_dir, name)
    with pytest.raises((LaunchError, ValueError), match="KERNEL_USERNAME is not a valid user name"):
        await km.start_kernel(env={**os.environ, "KERNEL_USERNAME": "bob --class x"})
    assert not cluster.apps
    km = manager(kernels_dir, name)
    await km.start_kernel(env={**os.environ, "KERNEL_USERNAME": "bob"})
    try:
        client = await connect(km)
        assert (await execute(client, "2 ** 5"))["result"] == "32"
        client.stop_channels()
    finally:
        await km.shutdown_kernel()
    (app,) = cluster.apps.values()
    assert app.user == "bob" and app.state == "FINISHED"
