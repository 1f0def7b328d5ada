"""Fixtures for the Docker and Swarm provisioner tests: real dockerd, the real kernel image, a one-node swarm.

Nothing is skipped: a missing daemon, image or swarm fails the test with what to run. Kernels use host
networking and the broker is advertised on 127.0.0.1, so nothing here depends on the machine's addresses.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from kf_docker import DOCKER, IMAGE

from kernelfleet.provisioners.broker import ResponseBroker
from kernelfleet.provisioners.container_argv import container_argv
from kernelfleet.provisioners.docker.engine import DockerEngine
from kernelfleet.provisioners.leases import close_all

PROVISIONERS = ["docker-provisioner", "docker-swarm-provisioner"]


@pytest.fixture(scope="session")
def docker_ready() -> None:
    """dockerd answers and the kernel image exists; fail with the command that fixes it otherwise."""
    import subprocess

    if shutil.which(DOCKER) is None:
        pytest.fail(f"the docker CLI ({DOCKER}) is not installed; run tools/setup-machine")
    info = subprocess.run([DOCKER, "info", "--format", "{{json .Swarm.LocalNodeState}}"], capture_output=True,
                          text=True, check=False)
    if info.returncode != 0:
        pytest.fail(f"dockerd is unreachable ({info.stderr.strip()}); start it with tools/setup-machine")
    image = subprocess.run([DOCKER, "image", "inspect", IMAGE], capture_output=True, text=True, check=False)
    if image.returncode != 0:
        pytest.fail(f"the kernel image {IMAGE} is missing; build it with tools/build-images")


@pytest.fixture(scope="session")
def swarm_ready(docker_ready: None) -> None:
    import subprocess

    state = subprocess.run([DOCKER, "info", "--format", "{{json .Swarm.LocalNodeState}}"], capture_output=True,
                           text=True, check=False).stdout.strip()
    if json.loads(state or '""') != "active":
        pytest.fail(f"Docker Swarm is not active (state {state}); run: {DOCKER} swarm init --advertise-addr 127.0.0.1 "
                    "(tools/setup-machine does this)")


@pytest.fixture(autouse=True)
async def loopback_broker(monkeypatch: pytest.MonkeyPatch, docker_ready: None) -> AsyncIterator[None]:
    """Launchers report to 127.0.0.1 on a free port; broker and Docker client are closed after each test."""
    monkeypatch.setenv("KF_RESPONSE_IP", "127.0.0.1")
    monkeypatch.setenv("KF_RESPONSE_PORT", "0")
    # Started up front, as a server does at start-up: concurrent first launches would otherwise race
    # inside ResponseBroker.start() (reported to the lead: it is not idempotent under concurrency yet).
    await ResponseBroker.instance()
    yield
    await close_all()
    loop = asyncio.get_running_loop()
    assert loop not in DockerEngine._instances
    assert loop not in ResponseBroker._instances


@pytest.fixture
def docker_spec(make_kernelspec: Callable[..., str]) -> Callable[..., str]:
    """A kernelspec for one of our Docker provisioners, host networking, the test image."""

    def make(
        provisioner: str,
        name: str | None = None,
        *,
        kernel_class_name: str | None = None,
        spark_init_mode: str | None = None,
        metadata: dict[str, Any] | None = None,
        **config: Any,
    ) -> str:
        return make_kernelspec(
            name or provisioner.replace("-", "_"),
            argv=container_argv(kernel_class_name=kernel_class_name, spark_init_mode=spark_init_mode),
            provisioner=provisioner,
            config={"image_name": IMAGE, "network": "host", **config},
            metadata=metadata,
        )

    return make


@pytest.fixture(params=PROVISIONERS)
def provisioner(request: pytest.FixtureRequest) -> str:
    """Both provisioners; the swarm one needs an active swarm."""
    if request.param == "docker-swarm-provisioner":
        request.getfixturevalue("swarm_ready")
    return str(request.param)
