"""Fixtures: a kubelite server per test, a kubernetes_asyncio client bound to it by kubeconfig, and a tiny
busybox image built locally (nothing can be pulled here)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import aiodocker
import pytest
import pytest_asyncio
from kubernetes_asyncio import client, config

from kernelfleet.kubelite import KubeLite, remove_containers
from kernelfleet.kubelite.testing import docker_or_fail, ensure_image


@pytest_asyncio.fixture
async def docker() -> AsyncIterator[aiodocker.Docker]:
    d = await docker_or_fail()
    yield d
    await d.close()


@pytest_asyncio.fixture
async def image(docker: aiodocker.Docker) -> str:
    return await ensure_image(docker)


@pytest_asyncio.fixture
async def kube(tmp_path: Path, docker: aiodocker.Docker) -> AsyncIterator[KubeLite]:
    server = KubeLite(pull_backoff=(0.4, 2.0), restart_backoff=(0.4, 2.0))
    _INSTANCES.append(server.node.instance)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()
    leftover = await docker.containers.list(
        all=True, filters={"label": [f"kubelite.instance={server.node.instance}"]})
    assert not leftover, f"kubelite left containers behind: {[c.id for c in leftover]}"


@pytest_asyncio.fixture
async def api(kube: KubeLite, tmp_path: Path) -> AsyncIterator[client.ApiClient]:
    path = kube.write_kubeconfig(tmp_path / "kubeconfig")
    cfg = client.Configuration()
    await config.load_kube_config(config_file=str(path), client_configuration=cfg)
    async with client.ApiClient(configuration=cfg) as api_client:
        yield api_client


@pytest_asyncio.fixture
async def core(api: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(api)


@pytest_asyncio.fixture
async def namespace(core: client.CoreV1Api) -> str:
    name = f"t-{uuid.uuid4().hex[:8]}"
    await core.create_namespace({"metadata": {"name": name}})
    return name


#: The kubelite instances this session started: the final sweep removes their containers only, never those of
#: another session on the same dockerd (whose running kernels it would kill, exit code 137).
_INSTANCES: list[str] = []


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Belt and braces: remove any container this session's kubelite instances left (normally none)."""

    async def sweep() -> None:
        docker = aiodocker.Docker()
        try:
            for instance in _INSTANCES:
                await remove_containers(docker, {"kubelite.instance": instance})
        except Exception:
            pass
        finally:
            await docker.close()

    asyncio.run(sweep())
