"""Kernels that survive the server: a real jupyter_server with the sessions extension, ``kill -9``-ed and started
again, on every engine that runs here (local process, SSH hosts, Docker, Swarm, kubelite).

A variable set over the websocket before the kill is read back over a new websocket after it; shutting the
kernels down afterwards leaves no process, container, service, secret, pod or session file, and the kernel's
processes are gone by the time DELETE /api/kernels/<id> has answered.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import stat
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from jupyter_server_process import ServerProcess, run_cell
from kf_docker import IMAGE, leftovers
from sessions_testing import forgotten, listed, read_back, saved, server_env, session_dir, start_kernel

from kernelfleet.kubelite import KubeLite
from kernelfleet.provisioners.container_argv import container_argv

TESTS = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TESTS / "ssh"))
from ssh_testing import processes_with_env, wait_until  # noqa: E402
from sshd import SshCluster, SshdMissing, start_cluster  # noqa: E402
from sweep_testing import crash_server  # noqa: E402


@pytest.fixture(scope="module")
def ssh_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshCluster]:
    try:
        cluster = start_cluster(tmp_path_factory.mktemp("sshd"))
    except SshdMissing as err:
        pytest.fail(str(err))
    yield cluster
    cluster.stop()


def launcher_of(tmp_path: Path, kernel_id: str) -> int:
    """The launcher's pid as the provisioner saved it (a local launcher reports its own pid)."""
    info = saved(tmp_path)[kernel_id]["provisioner_info"]
    return int(info.get("launcher_pid") or info["remote_pid"])


async def test_kernels_survive_a_killed_server_on_every_engine(
    tmp_path: Path, make_kernelspec: Callable[..., str], ssh_cluster: SshCluster, kube: KubeLite,
) -> None:
    container = {"argv": container_argv(kernel_class_name="ipykernel.ipkernel.IPythonKernel")}
    specs = {
        "kf_local": make_kernelspec("kf_local"),
        "kf_ssh": make_kernelspec("kf_ssh", config={**ssh_cluster.provisioner_config(), "remote_hosts": ["127.0.0.3"]}),
        "kf_docker": make_kernelspec("kf_docker", provisioner="docker-provisioner", **container,
                                     config={"image_name": IMAGE, "network": "host"}),
        "kf_swarm": make_kernelspec("kf_swarm", provisioner="docker-swarm-provisioner", **container,
                                    config={"image_name": IMAGE, "network": "host"}),
        "kf_k8s": make_kernelspec("kf_k8s", provisioner="kubernetes-provisioner", **container,
                                  config={"image_name": IMAGE, "launch_timeout": 60}),
    }
    env = server_env(tmp_path, KUBECONFIG=str(tmp_path / "kubeconfig"), KF_KUBERNETES_HOST_NETWORK="true")
    process = ServerProcess(tmp_path, env, tmp_path / "jupyter_server.log")
    try:
        server = await process.start()
        started = await asyncio.gather(*(start_kernel(server, name) for name in specs))
        values = dict(started)
        files = saved(tmp_path)
        assert set(files) == set(values), f"sessions saved: {sorted(files)}, kernels: {sorted(values)}"
        assert stat.S_IMODE(session_dir(tmp_path).stat().st_mode) == 0o700
        for kernel_id in values:
            assert stat.S_IMODE((session_dir(tmp_path) / f"{kernel_id}.json").stat().st_mode) == 0o600
        secrets = [s["connection_info"]["key"] for s in files.values()]
        secrets += [s["provisioner_info"]["comm_key"] for s in files.values()]

        await process.kill()
        server = await process.start()
        await listed(server, set(values), within=60)
        for kernel_id, value in values.items():
            assert await read_back(server, kernel_id) == repr(value), f"kernel {kernel_id} lost its state"

        # A taken-over kernel restarts like any other, and its new session replaces the saved one.
        local_id = started[0][0]
        local_launcher = launcher_of(tmp_path, local_id)
        await server.call("POST", f"/api/kernels/{local_id}/restart")
        ws = await server.channels(local_id)
        assert (await run_cell(ws, "'survivor' in globals()", timeout=60))["result"] == "False"
        ws.close()
        await wait_until(lambda: launcher_of(tmp_path, local_id) != local_launcher, 10, "restart not saved")
        for kernel_id in values:
            await server.call("DELETE", f"/api/kernels/{kernel_id}")
            # Shutdown answers once the kernel is gone: no wait here.
            assert not processes_with_env("KERNEL_ID", kernel_id), f"kernel {kernel_id} outlived its shutdown"
            assert not await leftovers(kernel_id), f"kernel {kernel_id} left {await leftovers(kernel_id)}"
        assert await server.call("GET", "/api/kernels") == []
        await forgotten(tmp_path)
        log = (tmp_path / "jupyter_server.log").read_text(errors="replace")
        assert all(secret not in log for secret in secrets), "a kernel secret reached the server log"
    finally:
        await process.stop()


async def test_gone_kernel_is_forgotten_and_unreachable_one_retried(
    tmp_path: Path, make_kernelspec: Callable[..., str], ssh_cluster: SshCluster, engines_ready: None,
) -> None:
    make_kernelspec("kf_local")
    host = ssh_cluster.host("127.0.0.4")
    make_kernelspec("kf_ssh", config={**ssh_cluster.provisioner_config(), "remote_hosts": [host.address],
                                      "comm_timeout": 1.0})
    process = ServerProcess(tmp_path, server_env(tmp_path), tmp_path / "jupyter_server.log")
    stopped_launcher: int | None = None
    try:
        server = await process.start()
        (gone_id, _), (away_id, away_value) = await asyncio.gather(
            start_kernel(server, "kf_local"), start_kernel(server, "kf_ssh"))
        await process.kill()

        # While no server runs: the local kernel is killed, the SSH kernel's launcher stops answering and its
        # host's sshd goes down.
        for pid in processes_with_env("KERNEL_ID", gone_id):
            os.kill(pid, signal.SIGKILL)
        await wait_until(lambda: not processes_with_env("KERNEL_ID", gone_id), 10, "the local kernel did not die")
        stopped_launcher = launcher_of(tmp_path, away_id)
        os.kill(stopped_launcher, signal.SIGSTOP)
        host.stop()

        server = await process.start()
        await wait_until(lambda: "cannot be reached yet" in process.log(), 30, "no unreachable line in the log")
        await wait_until(lambda: gone_id not in saved(tmp_path), 10, "the gone kernel's session was kept")
        lines = [line for line in process.log().splitlines() if gone_id in line]
        removal = [line for line in lines if "session" in line]
        assert len(removal) == 1 and "gone" in removal[0], f"log lines about the gone kernel: {lines}"
        assert all(line.startswith("[I ") for line in lines), f"log lines about the gone kernel: {lines}"
        assert "Traceback" not in process.log()
        assert away_id in saved(tmp_path)
        assert away_id not in {k["id"] for k in await server.call("GET", "/api/kernels")}

        # The host and the launcher come back: a retry takes the kernel over, state intact.
        os.kill(stopped_launcher, signal.SIGCONT)
        stopped_launcher = None
        host.start()
        await listed(server, {away_id}, within=30)
        assert await read_back(server, away_id) == repr(away_value)
        await server.call("DELETE", f"/api/kernels/{away_id}")
        assert not processes_with_env("KERNEL_ID", away_id)
        await forgotten(tmp_path)
    finally:
        if stopped_launcher is not None:
            os.kill(stopped_launcher, signal.SIGCONT)
        host.start()
        await process.stop()
        for kernel_id in [*saved(tmp_path)]:
            for pid in processes_with_env("KERNEL_ID", kernel_id):
                os.kill(pid, signal.SIGKILL)


async def test_on_start_shutdown_stops_the_saved_kernels_and_sweeps_orphans(
    tmp_path: Path, make_kernelspec: Callable[..., str], kernels_dir: Path,
) -> None:
    """A restarted server shuts its saved kernels down (on_start=shutdown) and removes, by itself, the kernel a
    crashed run of the same server left with no saved session (killed in the middle of that launch's report)."""
    make_kernelspec("kf_local")
    server_id = f"sessions-{os.getpid()}-{int(time.monotonic() * 1000) % 100000}"
    env = server_env(tmp_path, KF_SERVER_ID=server_id)
    log_path = tmp_path / "jupyter_server.log"
    process = ServerProcess(tmp_path, env, log_path)
    orphan_id = f"orphan-{uuid.uuid4().hex[:8]}"
    try:
        server = await process.start()
        kernel_id, _ = await start_kernel(server, "kf_local")
        await process.kill()
        assert processes_with_env("KERNEL_ID", kernel_id), "the kernel did not outlive the killed server"
        # The same server identity, killed after starting a kernel it never saved: the sweep's business.
        await crash_server(kernels_dir, server_id, [{"spec": "kf_local", "kernel_id": orphan_id, "mode": "after"}])
        assert processes_with_env("KERNEL_ID", orphan_id), "the crashed run's kernel is not running"

        process = ServerProcess(tmp_path, env, log_path, "--KernelSessions.on_start=shutdown")
        server = await process.start()
        await wait_until(lambda: not saved(tmp_path), 30, "the saved session was kept")
        await wait_until(lambda: not processes_with_env("KERNEL_ID", kernel_id), 10, "the kernel was not stopped")
        await wait_until(lambda: not processes_with_env("KERNEL_ID", orphan_id), 30, "the orphan was not swept")
        assert "object(s) a previous run left" in process.log()
        assert await server.call("GET", "/api/kernels") == []
    finally:
        await process.stop()
        for pid in processes_with_env("KERNEL_ID", orphan_id):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
