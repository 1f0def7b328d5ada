"""Fixtures: a yarnlite cluster per test, with one active RM or an HA pair, and an aiohttp client."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest_asyncio

from kernelfleet.yarnlite import Cluster, ResourceManager, ResourceManagerPair
from kernelfleet.yarnlite.testing import cluster_for_tests


@pytest_asyncio.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    c = cluster_for_tests(tmp_path / "yarn")
    yield c
    await c.close()


@pytest_asyncio.fixture
async def rm(cluster: Cluster) -> AsyncIterator[ResourceManager]:
    async with ResourceManager(cluster) as server:
        yield server


@pytest_asyncio.fixture
async def pair(cluster: Cluster) -> AsyncIterator[ResourceManagerPair]:
    async with ResourceManagerPair(cluster) as servers:
        yield servers


@pytest_asyncio.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session
