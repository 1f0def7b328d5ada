"""The R and Scala kernel images (tools/build-images-rs) under docker-provisioner, driven through jupyter_client's
AsyncKernelManager as a notebook server does: kernelspecs from the real ``jupyter docker-spec install``, host
networking, the broker on 127.0.0.1 (tests/docker/conftest.py), and nothing left on Docker afterwards.

One kernel per image: a Toree start costs 15-60 s.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from jupyter_client import AsyncKernelManager
from jupyter_client.asynchronous.client import AsyncKernelClient
from jupyter_client.kernelspec import KernelSpecManager
from rs_testing import (
    SAY_STARTED_R,
    SAY_STARTED_SCALA,
    connect,
    execute,
    execute_after_interrupt,
    execute_settled,
    hostile_requests_are_ignored,
    interrupt,
    r_kernel_takes_signals,
)

DOCKER = os.environ.get("DOCKER", "/usr/bin/docker" if Path("/usr/bin/docker").exists() else "docker")
R_IMAGE = os.environ.get("KF_TEST_R_IMAGE", "kernelfleet/kernel-r:dev")
SCALA_IMAGE = os.environ.get("KF_TEST_SCALA_IMAGE", "kernelfleet/kernel-scala:dev")
JUPYTER = Path(sys.executable).with_name("jupyter")
R_READY = 60.0
SCALA_READY = 240.0

pytestmark = pytest.mark.timeout(600)


# ------------------------------------------------------------------------------------------ set-up


@dataclass
class Specs:
    kernels_dir: Path
    r_spec: str
    scala_spec: str


def _docker(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([DOCKER, *args], capture_output=True, text=True, timeout=60, check=False)


def _jupyter(*args: str) -> None:
    if not JUPYTER.exists():
        pytest.fail(f"{JUPYTER} is missing: run tools/setup-venv")
    run = subprocess.run([str(JUPYTER), *args], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PATH": f"{JUPYTER.parent}{os.pathsep}{os.environ.get('PATH', '')}"})
    assert run.returncode == 0, f"jupyter {' '.join(args)} failed ({run.returncode}):\n{run.stdout}\n{run.stderr}"


@pytest.fixture(scope="module")
def specs(tmp_path_factory: pytest.TempPathFactory) -> Specs:
    """Both images present, and a docker-provisioner kernelspec for each, as an administrator writes them."""
    if shutil.which(DOCKER) is None:
        pytest.fail(f"the docker CLI ({DOCKER}) is not installed; run tools/setup-machine")
    for image in (R_IMAGE, SCALA_IMAGE):
        if _docker("image", "inspect", image).returncode != 0:
            pytest.fail(f"the kernel image {image} is missing; build it with tools/build-images-rs")
    prefix = tmp_path_factory.mktemp("rs-docker")
    _jupyter("docker-spec", "install", "--language", "R", "--image-name", R_IMAGE, "--prefix", str(prefix),
             "--kernel-name", "docker_rs_r", "--launch-timeout", "120")
    _jupyter("docker-spec", "install", "--language", "scala", "--image-name", SCALA_IMAGE, "--prefix", str(prefix),
             "--kernel-name", "docker_rs_scala", "--launch-timeout", "240")
    kernels = prefix / "share" / "jupyter" / "kernels"
    for name in ("docker_rs_r", "docker_rs_scala"):
        path = kernels / name / "kernel.json"
        spec = json.loads(path.read_text())
        config = spec["metadata"]["kernel_provisioner"]["config"]
        assert spec["metadata"]["kernel_provisioner"]["provisioner_name"] == "docker-provisioner"
        assert config["image_name"] in (R_IMAGE, SCALA_IMAGE)
        # Host networking with the broker on loopback; the kernel (and Spark's driver) bind loopback too.
        config["network"] = "host"
        spec["env"] = {**spec["env"], "KERNEL_IP": "127.0.0.1"}
        if name == "docker_rs_scala":
            # docker-spec writes Spark mode "none" for Scala; the Spark job below needs a (lazy) context.
            argv = spec["argv"]
            argv[argv.index("--spark-context-initialization-mode") + 1] = "lazy"
        path.write_text(json.dumps(spec, indent=2))
    return Specs(kernels, "docker_rs_r", "docker_rs_scala")


# ------------------------------------------------------------------------------------------ helpers


def leftovers(kernel_id: str) -> list[str]:
    return _docker("ps", "-aq", "--filter", f"label=kernel_id={kernel_id}").stdout.split()


def container_commands(kernel_id: str) -> list[str]:
    """The command lines running in the kernel's container (docker top)."""
    ids = _docker("ps", "-q", "--filter", f"label=kernel_id={kernel_id}").stdout.split()
    assert len(ids) == 1, f"expected one running container for kernel {kernel_id}, found {ids}"
    top = _docker("top", ids[0], "-eo", "pid,args")
    assert top.returncode == 0, top.stderr
    return [line.strip().split(None, 1)[-1] for line in top.stdout.splitlines()[1:]]


async def assert_nothing_left(kernel_id: str, within: float) -> None:
    deadline = time.monotonic() + within
    while left := leftovers(kernel_id):
        assert time.monotonic() < deadline, f"kernel {kernel_id}: containers {left} left after shutdown"
        await asyncio.sleep(0.5)


def remove_leftovers(kernel_id: str) -> None:
    for container in leftovers(kernel_id):
        _docker("rm", "-f", container)


def manager(specs: Specs, name: str) -> AsyncKernelManager:
    return AsyncKernelManager(kernel_name=name, kernel_spec_manager=KernelSpecManager(
        kernel_dirs=[str(specs.kernels_dir)]))


# ------------------------------------------------------------------------------------------ tests


async def test_r_image_lifecycle(specs: Specs) -> None:
    km = manager(specs, specs.r_spec)
    client: AsyncKernelClient | None = None
    kernel_id = ""
    try:
        t0 = time.monotonic()
        await km.start_kernel()
        kernel_id = km.kernel_id
        client = await connect(km, R_READY)
        first = await execute(client, "1+1")
        assert first["status"] == "ok" and first["result"] == "[1] 2", first
        print(f"\nR image: start to first execute {time.monotonic() - t0:.2f}s", file=sys.stderr)
        ids = await execute(client, 'x <- 41; cat(system("id -u", intern = TRUE), system("id -g", intern = TRUE))')
        assert ids["stdout"] == "1000 100", ids
        commands = container_commands(kernel_id)
        assert any("launch_IRkernel.R" in c for c in commands), commands
        assert not any("python" in c for c in commands), f"a Python process runs in the R image: {commands}"

        for code in ("Sys.sleep(300)", "repeat { y <- sqrt(2) }"):
            reply = await interrupt(km, client, SAY_STARTED_R + code)
            assert reply["status"] in ("abort", "aborted", "error"), reply
            after = await execute_settled(client, "x + 1")
            assert after["status"] == "ok" and after["result"] == "[1] 42", after

        await hostile_requests_are_ignored(km)
        assert (await execute(client, "x + 1"))["result"] == "[1] 42"

        first_container = leftovers(kernel_id)
        await km.restart_kernel()
        client.stop_channels()
        client = await connect(km, R_READY)
        fresh = await execute(client, 'exists("x")')
        assert fresh["status"] == "ok" and fresh["result"] == "[1] FALSE", fresh
        assert not set(first_container) & set(leftovers(kernel_id)), "restart reused or left the old container"

        client.stop_channels()
        client = None
        await km.shutdown_kernel()
        assert not km.has_kernel
        await assert_nothing_left(kernel_id, within=15)
    finally:
        if client is not None:
            client.stop_channels()
        if km.has_kernel:
            await km.shutdown_kernel(now=True)
        if kernel_id:
            remove_leftovers(kernel_id)


async def test_r_image_takes_signals_by_name(specs: Specs) -> None:
    """send_signal into the R image's launcher (protocol 2.2's signal op): STOP, CONT, then HUP ends the kernel, and
    its container goes with it."""
    km = manager(specs, specs.r_spec)
    kernel_id = ""
    try:
        await km.start_kernel()
        kernel_id = km.kernel_id
        client = await connect(km, R_READY)
        try:
            await r_kernel_takes_signals(km, client)
        finally:
            client.stop_channels()
        await km.shutdown_kernel()
        await assert_nothing_left(kernel_id, within=15)
    finally:
        if km.has_kernel:
            await km.shutdown_kernel(now=True)
        if kernel_id:
            remove_leftovers(kernel_id)


async def test_scala_image_lifecycle(specs: Specs) -> None:
    km = manager(specs, specs.scala_spec)
    client: AsyncKernelClient | None = None
    kernel_id = ""
    try:
        t0 = time.monotonic()
        await km.start_kernel()
        kernel_id = km.kernel_id
        client = await connect(km, SCALA_READY)
        first = await execute(client, "1+1")
        assert first["status"] == "ok" and first["result"] == "2", first
        print(f"\nScala image: start to first execute {time.monotonic() - t0:.2f}s", file=sys.stderr)
        commands = container_commands(kernel_id)
        assert any("kernelfleet.toree.ToreeLauncher" in c for c in commands), commands
        assert not any("python" in c for c in commands), f"a Python process runs in the Scala image: {commands}"

        job = await execute(client, "sc.parallelize(1 to 100).sum()")
        assert job["status"] == "ok" and job["result"] == "5050.0", job
        user = await execute(client, 'sys.props("user.name")')
        assert user["result"] == "jovyan", user

        reply = await interrupt(km, client, SAY_STARTED_SCALA + "Thread.sleep(300000); 7")
        assert reply["status"] == "error" and reply["ename"] == "java.lang.InterruptedException", reply
        after = await execute_after_interrupt(client, "1+2")
        assert after["result"] == "3", after

        await hostile_requests_are_ignored(km)
        assert (await execute(client, "2+3"))["result"] == "5"

        client.stop_channels()
        client = None
        await km.shutdown_kernel()
        assert not km.has_kernel
        await assert_nothing_left(kernel_id, within=30)
    finally:
        if client is not None:
            client.stop_channels()
        if km.has_kernel:
            await km.shutdown_kernel(now=True)
        if kernel_id:
            remove_leftovers(kernel_id)


async def test_images_stop_promptly_without_dockers_init(specs: Specs) -> None:
    """tini is each image's entrypoint: R as PID 1 would ignore docker stop's SIGTERM and wait out the timeout."""
    java = _docker("run", "--rm", "--network", "none", SCALA_IMAGE, "java", "-version")
    assert java.returncode == 0 and "17." in java.stderr, f"Java 17 missing from {SCALA_IMAGE}: {java.stderr}"
    name = f"kf-rs-stop-{os.getpid()}"
    started = _docker("run", "-d", "--rm", "--name", name, "--network", "none", R_IMAGE, "Rscript", "-e",
                      "Sys.sleep(600)")
    assert started.returncode == 0, started.stderr
    try:
        await asyncio.sleep(2)  # R is up and sleeping
        t0 = time.monotonic()
        stopped = _docker("stop", "-t", "30", name)
        assert stopped.returncode == 0, stopped.stderr
        took = time.monotonic() - t0
        assert took < 10, f"docker stop of an R container took {took:.1f}s: SIGTERM did not reach R"
    finally:
        _docker("rm", "-f", name)
