"""Fixtures for kernels on YARN: a yarnlite cluster (AMs are real local processes), one RM or an HA pair, a fake
SPARK_HOME whose spark-submit is the test-only REST stand-in, and GP's launcher directory layout."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

import kernelfleet.bootstrap
from kernelfleet.yarnlite import Cluster, ResourceManager, ResourceManagerPair
from kernelfleet.yarnlite.testing import cluster_for_tests, make_spark_home

SHIM = Path(kernelfleet.bootstrap.__file__).parent / "launch_ipykernel.py"


@pytest_asyncio.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    c = cluster_for_tests(tmp_path / "yarn")
    yield c
    await c.close()


@pytest_asyncio.fixture
async def rm(cluster: Cluster, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[ResourceManager]:
    async with ResourceManager(cluster) as server:
        monkeypatch.setenv("YARNLITE_RM", server.url)  # where the spark-submit stand-in submits
        yield server


@pytest_asyncio.fixture
async def pair(cluster: Cluster, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[ResourceManagerPair]:
    async with ResourceManagerPair(cluster) as servers:
        monkeypatch.setenv("YARNLITE_RM", f"{servers.rm2.url},{servers.rm1.url}")
        yield servers


@pytest.fixture
def spark_home(tmp_path: Path) -> Path:
    return make_spark_home(tmp_path / "spark")


@pytest.fixture
def launchers_dir(tmp_path: Path) -> Path:
    """``<dir>/python/launch_ipykernel.py``, as ``jupyter image-bootstrap install`` lays it out."""
    target = tmp_path / "kernel-launchers" / "python"
    target.mkdir(parents=True)
    shutil.copy(SHIM, target / "launch_ipykernel.py")
    return target.parent
