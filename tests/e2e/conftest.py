"""Engines the end-to-end tests share: dockerd with the kernel image and an active swarm, and a kubelite API server
whose kubeconfig a jupyter_server process is pointed at (``KUBECONFIG``); after each test, nothing of kubelite is
left (tests/k8s/conftest.py's check)."""

from __future__ import annotations

import importlib.util
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from kf_docker import DOCKER, IMAGE, docker_cli

from kernelfleet.kubelite import KubeLite
from kernelfleet.kubelite.testing import docker_or_fail

TESTS = Path(__file__).resolve().parents[1]

# kubelite's leftover check lives in tests/k8s/conftest.py; loaded under its own name, not as a conftest.
_k8s_spec = importlib.util.spec_from_file_location("k8s_conftest", TESTS / "k8s" / "conftest.py")
assert _k8s_spec is not None and _k8s_spec.loader is not None
k8s_conftest = importlib.util.module_from_spec(_k8s_spec)
_k8s_spec.loader.exec_module(k8s_conftest)


@pytest.fixture
async def engines_ready() -> None:
    """dockerd answers, the kernel image is there and the swarm is active: fail with what is missing otherwise."""
    try:
        state = (await docker_cli("info", "--format", "{{json .Swarm.LocalNodeState}}")).strip()
    except AssertionError as err:
        pytest.fail(f"dockerd is unreachable ({err}); start it with tools/setup-machine")
    if json.loads(state or '""') != "active":
        pytest.fail(f"Docker Swarm is not active (state {state}); run {DOCKER} swarm init --advertise-addr 127.0.0.1")
    await docker_cli("image", "inspect", IMAGE)


@pytest.fixture
async def kube(tmp_path: Path, engines_ready: None) -> AsyncIterator[KubeLite]:
    """kubelite, its kubeconfig at ``tmp_path/kubeconfig``; afterwards no pod, Secret, namespace or container."""
    docker = await docker_or_fail()
    await docker.close()
    server = KubeLite(pull_backoff=(0.3, 2.0), restart_backoff=(0.3, 2.0))
    await server.start()
    server.write_kubeconfig(tmp_path / "kubeconfig")
    try:
        yield server
        await k8s_conftest.assert_nothing_left(server, tmp_path / "kubeconfig")
    finally:
        await server.stop()
