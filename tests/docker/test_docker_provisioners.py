"""docker-provisioner and docker-swarm-provisioner against the real dockerd and the real kernel image,
driven through jupyter_client's AsyncKernelManager as a notebook server does."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ipaddress
import json
import logging
import os
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from jupyter_client.provisioning import KernelProvisionerFactory
from kf_docker import DOCKER, docker_cli, leftovers
from kf_testing import connect, execute, interrupt_busy_cell, manager

from kernelfleet.provisioners.base import LaunchError
from kernelfleet.provisioners.broker import ResponseBroker
from kernelfleet.provisioners.request_env import OperatorOnlyError

UID_CORPUS = ["0", "00", "+0", "0x0", "-1", "abc", "4294967296", " 1000", "1e3", "٣"]


# ----------------------------------------------------------------------------------------- helpers
async def running_containers(kernel_id: str) -> list[str]:
    return (await docker_cli("ps", "-q", "--filter", f"label=kernel_id={kernel_id}")).split()


# ----------------------------------------------------------------------------------------- lifecycle
async def test_full_lifecycle(
    provisioner: str, docker_spec: Callable[..., str], kernels_dir: Path, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("KF_TEST_SERVER_SECRET", "must-not-reach-the-kernel")
    monkeypatch.setenv("KF_TEST_SHARED", "inherited-on-purpose")
    name = docker_spec(provisioner, inherited_envs=["KF_TEST_SHARED"])
    km = manager(kernels_dir, name)
    await km.start_kernel(env={**os.environ, "KERNEL_EXTRA": "from-request"})
    try:
        assert await running_containers(km.kernel_id), "the kernel's container is not running"
        client = await connect(km)
        reply = await execute(client, "x = 6 * 7\nx")
        assert reply["status"] == "ok" and reply["result"] == "42"
        # the kernel's own variables only: never the server's environment, never a secret of another kind
        seen = await execute(client, "import os; sorted(k for k in os.environ if k.startswith(('KF_', 'KERNEL_')))")
        names = eval(seen["result"])  # a repr of a list of str
        assert "KF_TEST_SERVER_SECRET" not in names and "KF_TEST_SHARED" in names
        assert "KERNEL_EXTRA" in names and "KERNEL_ID" in names
        ids = await execute(client, "import os; (os.getuid(), os.getgid())")
        assert ids["result"] == "(1000, 100)"

        await interrupt_busy_cell(km, client)
        assert (await execute(client, "x + 1"))["result"] == "43"

        first_container = (await running_containers(km.kernel_id))[0]
        await km.restart_kernel()
        client.stop_channels()
        client = await connect(km)
        assert (await execute(client, "'x' in globals()"))["result"] == "False"
        assert first_container not in await running_containers(km.kernel_id), "restart reused the old container"
        secrets = [
            km.session.key.decode(),
            base64.b64encode(km.provisioner.comm_key).decode(),
            km.provisioner.launch_env["LAUNCH_TOKEN"],
        ]
        client.stop_channels()
    finally:
        await km.shutdown_kernel()
    assert not km.has_kernel
    assert await leftovers(km.kernel_id) == []
    assert f"Kernel {km.kernel_id}" in caplog.text
    for secret in secrets:
        assert secret not in caplog.text


# ----------------------------------------------------------------------------------------- fast failures
async def test_missing_image_fails_fast_with_dockers_message(
    provisioner: str, docker_spec: Callable[..., str], kernels_dir: Path
) -> None:
    # Docker's own error, not the launch timeout (made long here): how fast is tools/bench/stop_latency.py's business.
    km = manager(kernels_dir, docker_spec(provisioner, image_name="kernelfleet/no-such-image:none", launch_timeout=300))
    started = time.perf_counter()
    with pytest.raises(LaunchError) as err:
        await km.start_kernel()
    elapsed = time.perf_counter() - started
    message = str(err.value)
    assert km.kernel_id in message and "No such image" in message, message
    assert elapsed < 60, f"a missing image took {elapsed:.1f}s to fail"
    assert await leftovers(km.kernel_id) == []


async def test_container_that_exits_at_once_fails_fast_with_its_output(
    provisioner: str, docker_spec: Callable[..., str], kernels_dir: Path
) -> None:
    # the kernelspec argv's Spark mode reaches the image's bootstrap, which refuses it and exits with 1
    name = docker_spec(provisioner, spark_init_mode="sideways")
    km = manager(kernels_dir, name)
    started = time.perf_counter()
    with pytest.raises(LaunchError) as err:
        await km.start_kernel()
    elapsed = time.perf_counter() - started
    message = str(err.value)
    assert km.kernel_id in message and re.search(r"exit(ed with)? code 1", message), message
    assert "KERNEL_SPARK_CONTEXT_INIT_MODE must be one of" in message, message
    assert elapsed < 15, f"a dead container took {elapsed:.1f}s to fail the launch"  # launch timeout is 30 s
    assert await leftovers(km.kernel_id) == []


async def test_remove_container_off_keeps_a_failed_container_for_debugging(
    docker_spec: Callable[..., str], kernels_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """GP_REMOVE_CONTAINER=false (Gateway Provisioners' name): the container of a failed launch stays, stopped and
    renamed, with the output that explains the failure; a kernel this server stops is still removed."""
    monkeypatch.setenv("GP_REMOVE_CONTAINER", "false")
    km = manager(kernels_dir, docker_spec("docker-provisioner", spark_init_mode="sideways"))
    with pytest.raises(LaunchError):
        await km.start_kernel()
    kept = (await docker_cli("ps", "-a", "--filter", f"label=kernel_id={km.kernel_id}", "--format",
                             "{{.Names}} {{.State}}")).split()
    try:
        assert len(kept) == 2 and kept[1] == "exited", kept
        assert re.fullmatch(r".+-kept-\d{8}T\d{6}", kept[0]), kept
        proc = await asyncio.create_subprocess_exec(DOCKER, "logs", kept[0], stdout=asyncio.subprocess.PIPE,
                                                    stderr=asyncio.subprocess.STDOUT)
        logs, _ = await proc.communicate()
        assert "KERNEL_SPARK_CONTEXT_INIT_MODE must be one of" in logs.decode()
    finally:
        await docker_cli("rm", "-f", kept[0], check=False)
    assert await leftovers(km.kernel_id) == []

    good = manager(kernels_dir, docker_spec("docker-provisioner", "kept_off"))
    await good.start_kernel()
    await good.shutdown_kernel()
    assert await leftovers(good.kernel_id) == []


async def test_kernel_class_that_does_not_exist_ends_the_kernel(
    docker_spec: Callable[..., str], kernels_dir: Path
) -> None:
    """The launcher reports before the kernel imports its class; the container's end is then seen by Docker."""
    km = manager(kernels_dir, docker_spec("docker-provisioner", kernel_class_name="nowhere.NoSuchKernel"))
    try:
        await km.start_kernel()
    except LaunchError as err:  # the kernel may also die before the report: then the launch fails at once
        assert "nowhere" in str(err)
    else:
        async with asyncio.timeout(20):
            await km.provisioner.wait()
        assert not await km.is_alive()
        await km.shutdown_kernel(now=True)
    assert await leftovers(km.kernel_id) == []


# ----------------------------------------------------------------------------------------- engine-side liveness
async def test_killed_container_is_seen_dead(
    provisioner: str, docker_spec: Callable[..., str], kernels_dir: Path
) -> None:
    km = manager(kernels_dir, docker_spec(provisioner))
    await km.start_kernel()
    try:
        assert await km.is_alive()
        containers = await running_containers(km.kernel_id)
        assert len(containers) == 1
        await docker_cli("kill", containers[0])
        async with asyncio.timeout(10):
            code = await km.provisioner.wait()
        assert code is not None and await km.provisioner.poll() is not None
        assert not await km.is_alive()
    finally:
        await km.shutdown_kernel(now=True)
    assert await leftovers(km.kernel_id) == []


async def test_reattach_after_the_manager_is_thrown_away(
    provisioner: str, docker_spec: Callable[..., str], kernels_dir: Path
) -> None:
    name = docker_spec(provisioner)
    km = manager(kernels_dir, name)
    await km.start_kernel()
    kernel_id = km.kernel_id
    info = await km.provisioner.get_provisioner_info()
    await km.provisioner.release_engine()  # what a restarted host process has: nothing but the stored info
    del km

    km2 = manager(kernels_dir, name, kernel_id)
    km2.provisioner = KernelProvisionerFactory.instance(parent=km2.parent).create_provisioner_instance(
        kernel_id, km2.kernel_spec, parent=km2
    )
    await km2.provisioner.load_provisioner_info(info)
    km2.load_connection_info(info["connection_info"])
    try:
        assert await km2.is_alive()
        client = await connect(km2)
        assert (await execute(client, "21 * 2"))["result"] == "42"
        await interrupt_busy_cell(km2, client)
        client.stop_channels()
    finally:
        await km2.shutdown_kernel()
    assert await leftovers(kernel_id) == []


# ----------------------------------------------------------------------------------------- refusals
@pytest.mark.parametrize("value", UID_CORPUS)
async def test_uid_corpus_is_refused_before_any_container(
    value: str, docker_spec: Callable[..., str], kernels_dir: Path
) -> None:
    km = manager(kernels_dir, docker_spec("docker-provisioner"))
    with pytest.raises((ValueError, PermissionError)) as err:
        await km.start_kernel(env={**os.environ, "KERNEL_UID": value})
    message = str(err.value)
    assert km.kernel_id in message and "KERNEL_UID" in message, message
    assert await leftovers(km.kernel_id) == []


async def test_gid_zero_and_env_prohibited_ids(
    provisioner: str, docker_spec: Callable[..., str], kernels_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = docker_spec(provisioner)
    km = manager(kernels_dir, name)
    with pytest.raises(PermissionError, match=r"KERNEL_GID=0 is prohibited"):
        await km.start_kernel(env={**os.environ, "KERNEL_GID": "0"})
    monkeypatch.setenv("GP_PROHIBITED_UIDS", "0,1234")
    km = manager(kernels_dir, name)
    with pytest.raises(PermissionError, match=r"KERNEL_UID=1234 is prohibited"):
        await km.start_kernel(env={**os.environ, "KERNEL_UID": "1234"})
    monkeypatch.setenv("GP_PROHIBITED_UIDS", "0,root")
    km = manager(kernels_dir, name)
    with pytest.raises(ValueError, match=r"GP_PROHIBITED_UIDS.*'root' is not a plain decimal"):
        await km.start_kernel()
    assert await leftovers(km.kernel_id) == []


async def test_client_image_needs_the_operators_consent(docker_spec: Callable[..., str], kernels_dir: Path) -> None:
    km = manager(kernels_dir, docker_spec("docker-provisioner"))
    with pytest.raises(PermissionError, match="allow_client_image is off"):
        await km.start_kernel(env={**os.environ, "KERNEL_IMAGE": "evil/image:latest"})
    km = manager(kernels_dir, docker_spec("docker-provisioner", "picky", allow_client_image=True,
                                          allowed_images=["kernelfleet/kernel-py:dev"]))
    with pytest.raises(PermissionError, match="not one of this kernelspec's allowed_images"):
        await km.start_kernel(env={**os.environ, "KERNEL_IMAGE": "evil/image:latest"})
    assert await leftovers(km.kernel_id) == []


async def test_loopback_broker_with_bridge_network_is_a_clear_error(
    docker_spec: Callable[..., str], kernels_dir: Path
) -> None:
    km = manager(kernels_dir, docker_spec("docker-provisioner", network="bridge"))
    with pytest.raises(LaunchError, match=r"advertises 127.0.0.1.*cannot reach.*KF_RESPONSE_IP"):
        await km.start_kernel()
    assert await leftovers(km.kernel_id) == []


async def test_request_uid_and_mounts_are_applied(
    docker_spec: Callable[..., str], kernels_dir: Path, tmp_path: Path
) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "hello.txt").write_text("from the host\n")
    mount = {"Type": "bind", "Source": str(shared), "Target": "/data", "ReadOnly": True}
    km = manager(kernels_dir, docker_spec("docker-provisioner", mounts=[mount]))
    await km.start_kernel(env={**os.environ, "KERNEL_UID": "1234", "KERNEL_GID": "1234"})
    try:
        client = await connect(km)
        reply = await execute(client, "import os; (os.getuid(), os.getgid(), open('/data/hello.txt').read())")
        assert reply["result"] == "(1234, 1234, 'from the host\\n')"
        client.stop_channels()
    finally:
        await km.shutdown_kernel(now=True)
    assert await leftovers(km.kernel_id) == []


# ----------------------------------------------------------------------------------------- churn
async def test_twenty_launch_kill_cycles_leave_nothing(
    provisioner: str, docker_spec: Callable[..., str], kernels_dir: Path
) -> None:
    """Every other launch is killed while it is still starting (the request cancelled), the rest once running."""
    name = docker_spec(provisioner)
    kernel_ids: list[str] = []

    async def cycles(worker: int, count: int) -> None:
        for i in range(count):
            km = manager(kernels_dir, name)
            kernel_ids.append(km.kernel_id)
            if (worker + i) % 2:
                starting = asyncio.ensure_future(km.start_kernel())
                await asyncio.sleep(0.2 + 0.2 * i)
                starting.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await starting
                if km.has_kernel:  # it connected before the cancel arrived
                    await km.shutdown_kernel(now=True)
            else:
                await km.start_kernel()
                assert await km.is_alive()
                await km.shutdown_kernel(now=True)
            assert not km.has_kernel

    async with asyncio.TaskGroup() as group:
        for worker in range(4):
            group.create_task(cycles(worker, 5))
    assert len(kernel_ids) == 20
    left: list[Any] = []
    for kernel_id in kernel_ids:
        left += await leftovers(kernel_id)
    assert left == []


async def test_bridge_network_reports_through_the_bridge_gateway(
    docker_spec: Callable[..., str], kernels_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a bridge network the broker is advertised on the bridge's gateway and the kernel is reached at its own IP."""
    subnet = json.loads(await docker_cli("network", "inspect", "bridge", "--format", "{{json .IPAM.Config}}"))[0]
    network = ipaddress.ip_network(subnet["Subnet"])
    gateway = subnet.get("Gateway") or str(next(network.hosts()))
    await ResponseBroker._instances[asyncio.get_running_loop()].stop()
    monkeypatch.setenv("KF_RESPONSE_IP", gateway)
    await ResponseBroker.instance()
    km = manager(kernels_dir, docker_spec("docker-provisioner", network="bridge"))
    await km.start_kernel()
    try:
        assert ipaddress.ip_address(km.get_connection_info()["ip"]) in network
        client = await connect(km)
        assert (await execute(client, "6 * 7"))["result"] == "42"
        client.stop_channels()
    finally:
        await km.shutdown_kernel(now=True)
    assert await leftovers(km.kernel_id) == []


async def test_unreachable_docker_daemon_is_a_clear_error(
    docker_spec: Callable[..., str], kernels_dir: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-dockerd.sock")
    km = manager(kernels_dir, docker_spec("docker-provisioner"))
    started = time.perf_counter()
    with pytest.raises(LaunchError) as err:
        await km.start_kernel()
    message = str(err.value)
    assert km.kernel_id in message and "Cannot connect to Docker Engine" in message, message
    assert time.perf_counter() - started < 5


# ----------------------------------------------------------------------------------------- operator-only names
@pytest.mark.parametrize(("name", "value"), [("KERNEL_PYTHON", "/bin/echo"), ("KERNEL_LAUNCHERS_DIR", "/tmp"),
                                             ("KERNEL_LANGUAGE", "r")])
async def test_request_cannot_choose_what_the_bootstrap_execs(
    provisioner: str, docker_spec: Callable[..., str], kernels_dir: Path, name: str, value: str
) -> None:
    """The image's bootstrap-kernel.sh execs KERNEL_PYTHON / runs launchers from KERNEL_LAUNCHERS_DIR /
    picks the launcher by KERNEL_LANGUAGE: a request naming them is refused before any container exists."""
    km = manager(kernels_dir, docker_spec(provisioner))
    with pytest.raises(OperatorOnlyError) as err:
        await km.start_kernel(env={**os.environ, name: value})
    message = str(err.value)
    assert km.kernel_id in message and name in message and "kernelspec" in message, message
    assert await leftovers(km.kernel_id) == []


async def test_kernelspec_env_still_chooses_the_python(
    docker_spec: Callable[..., str], kernels_dir: Path
) -> None:
    name = docker_spec("docker-provisioner")
    spec_file = kernels_dir / name / "kernel.json"
    spec = json.loads(spec_file.read_text())
    spec["env"] = {"KERNEL_PYTHON": "/opt/kernel/bin/python3.11"}
    spec_file.write_text(json.dumps(spec))
    km = manager(kernels_dir, name)
    await km.start_kernel()
    try:
        client = await connect(km)
        assert (await execute(client, "import sys; sys.executable"))["result"] == "'/opt/kernel/bin/python3.11'"
        client.stop_channels()
    finally:
        await km.shutdown_kernel(now=True)
    assert await leftovers(km.kernel_id) == []
