"""Launch progress seen live by a client of a real jupyter_server's ``/api/events/subscribe`` websocket.

A Docker kernel whose image dockerd must first pull (from a registry on 127.0.0.1 serving a freshly saved image:
``local_registry``), a kubelite pod kernel, and a Docker launch that fails: each one's phases arrive in order with
its kernel id while ``POST /api/kernels`` is still waiting, and ``jupyter kernelfleet launches`` then prints them
from the server's launch journal.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import secrets
import stat
import sys
import tarfile
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from jupyter_server_process import TOKEN, Server, ServerProcess, run_cell
from kf_docker import IMAGE, docker_cli, leftovers
from launch_events_testing import EventServer, assert_in_order, launched
from local_registry import LocalRegistry, describe, serve_saved
from tornado.httpclient import HTTPRequest
from tornado.websocket import WebSocketClientConnection, websocket_connect

from kernelfleet.kubelite import KubeLite
from kernelfleet.provisioners.base import LaunchError
from kernelfleet.provisioners.container_argv import container_argv
from kernelfleet.provisioners.launch_events import SCHEMA_ID

ARGV = container_argv(kernel_class_name="ipykernel.ipkernel.IPythonKernel")
DEADLINE = 120.0
RANDOM_LAYER_BYTES = 16 * 1024 * 1024


class EventFeed:
    """Every launch event the websocket delivers, with the time it arrived."""

    def __init__(self, ws: WebSocketClientConnection) -> None:
        self.ws = ws
        self.events: list[tuple[float, dict[str, Any]]] = []
        self.other_schemas: set[str] = set()
        self._changed = asyncio.Event()
        self._task = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        while (message := await self.ws.read_message()) is not None:
            event = json.loads(message)
            if event.get("schema_id") != SCHEMA_ID:
                self.other_schemas.add(str(event.get("schema_id")))
                continue
            self.events.append((time.monotonic(), event))
            self._changed.set()

    def of(self, kernel_id: str) -> list[dict[str, Any]]:
        return [event for _, event in self.events if event["kernel_id"] == kernel_id]

    def arrival(self, kernel_id: str, phase: str) -> float:
        return next(t for t, event in self.events if event["kernel_id"] == kernel_id and event["phase"] == phase)

    async def until_phase(self, kernel_id: str, phase: str) -> list[dict[str, Any]]:
        async with asyncio.timeout(DEADLINE):
            while not any(e["phase"] == phase for e in self.of(kernel_id)):
                self._changed.clear()
                await self._changed.wait()
        return self.of(kernel_id)

    def close(self) -> None:
        self._task.cancel()
        self.ws.close()


async def subscribe(server: Server) -> EventFeed:
    url = server.base.replace("http", "ws") + "/api/events/subscribe"
    ws = await websocket_connect(HTTPRequest(url, headers={"Authorization": f"token {TOKEN}"}))
    return EventFeed(ws)


def phases(events: list[dict[str, Any]]) -> list[str]:
    return [e["phase"] for e in events]


@contextlib.asynccontextmanager
async def image_to_pull(tmp_path: Path) -> AsyncIterator[tuple[str, LocalRegistry]]:
    """A kernel image dockerd does not have, in a registry on 127.0.0.1: the test image plus a layer of random bytes
    (a new image id and a blob dockerd has never seen, so it must download that layer), saved, removed locally and
    served; removed afterwards."""
    tag = secrets.token_hex(4)
    source = f"kernelfleet-test/launch-events-src:{tag}"
    context = io.BytesIO()
    with tarfile.open(fileobj=context, mode="w") as tar:
        for name, data in (("Dockerfile", f"FROM {IMAGE}\nCOPY pull-me /opt/pull-me\n".encode()),
                           ("pull-me", os.urandom(RANDOM_LAYER_BYTES))):
            entry = tarfile.TarInfo(name)
            entry.size = len(data)
            tar.addfile(entry, io.BytesIO(data))
    build = await asyncio.create_subprocess_exec(
        "docker", "build", "-q", "-t", source, "-", stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    _, err = await build.communicate(context.getvalue())
    assert build.returncode == 0, f"docker build failed: {err.decode()}"
    archive = tmp_path / "image.tar"
    try:
        await docker_cli("save", "-o", str(archive), source)
    finally:
        await docker_cli("rmi", source)
    registry = await serve_saved(archive, tmp_path / "saved-image")
    image = f"127.0.0.1:{registry.port}/kernelfleet-test/launch-events:{tag}"
    try:
        yield image, registry
    finally:
        await registry.stop()
        await docker_cli("rmi", image, check=False)


async def start_kernel(server: Server, name: str) -> tuple[str, float]:
    """POST /api/kernels; the kernel id and when the answer came."""
    kernel = await server.call("POST", "/api/kernels", {"name": name})
    return kernel["id"], time.monotonic()


async def test_launch_phases_live_over_the_events_websocket(
    tmp_path: Path, make_kernelspec: Callable[..., str], kube: KubeLite,
) -> None:
    async with image_to_pull(tmp_path) as (image, registry):
        make_kernelspec("kf_docker_pull", provisioner="docker-provisioner", argv=ARGV,
                        config={"image_name": image, "network": "host", "image_pull_policy": "IfNotPresent"})
        make_kernelspec("kf_k8s", provisioner="kubernetes-provisioner", argv=ARGV,
                        config={"image_name": IMAGE, "launch_timeout": 60})
        make_kernelspec("kf_docker_gone", provisioner="docker-provisioner", argv=ARGV,
                        config={"image_name": "127.0.0.1:9/kernelfleet-test/none:x", "network": "host",
                                "image_pull_policy": "IfNotPresent"})
        env = {**os.environ, "JUPYTER_PATH": str(tmp_path / "share" / "jupyter"),
               "JUPYTER_RUNTIME_DIR": str(tmp_path), "JUPYTER_CONFIG_DIR": str(tmp_path / "config"),
               "KF_RESPONSE_IP": "127.0.0.1", "KF_RESPONSE_PORT": "0",
               "KUBECONFIG": str(tmp_path / "kubeconfig"), "KF_KUBERNETES_HOST_NETWORK": "true"}
        process = ServerProcess(tmp_path, env, tmp_path / "jupyter_server.log")
        server = await process.start()
        feed = await subscribe(server)  # before any launch: the schema is registered at server start
        kernel_ids: list[str] = []
        try:
            # Docker, with a real pull: progress arrives while the POST is still waiting.
            docker_id, answered = await start_kernel(server, "kf_docker_pull")
            kernel_ids.append(docker_id)
            events = await feed.until_phase(docker_id, "connected")
            # Docker's "start" event and the API's answer to the start race: started and launcher_started may swap.
            assert_in_order(events, "accepted", "image_pull", "launcher_started", "reported", "connected")
            assert_in_order(events, "image_pull", "started", "reported")
            assert feed.arrival(docker_id, "image_pull") < answered, "pull progress came only after the start"
            pulls = [e for e in events if e["phase"] == "image_pull"]
            assert len(pulls) >= 3, f"no progress during the pull: {pulls}"
            assert all(e["engine"] == "docker" and e["image"] == image for e in pulls)
            assert pulls[-1]["bytes_total"] >= RANDOM_LAYER_BYTES, pulls[-1]
            assert registry.blob_requests, f"dockerd fetched nothing from the registry: {describe(registry)}"
            assert pulls[-1]["bytes_done"] == pulls[-1]["bytes_total"]
            done = [e["bytes_done"] for e in pulls]
            assert done == sorted(done) and done[0] < done[-1], done
            assert any(e["phase"] == "engine_event" and e["reason"] == "create" for e in events), phases(events)
            ws = await server.channels(docker_id)
            assert (await run_cell(ws, "1 + 1", timeout=60))["result"] == "2"
            ws.close()

            # kubelite: the pod's own Events, forwarded.
            pod_id, answered = await start_kernel(server, "kf_k8s")
            kernel_ids.append(pod_id)
            events = await feed.until_phase(pod_id, "connected")
            assert_in_order(events, "accepted", "launcher_started", "reported", "connected")
            assert_in_order(events, "accepted", "scheduled", "started", "reported")
            reasons = {e.get("reason") for e in events}
            assert {"Scheduled", "Pulled", "Started"} <= reasons, reasons
            assert all(e["engine"] == "kubernetes" for e in events)
            assert feed.arrival(pod_id, "scheduled") < answered

            # A launch that fails: Docker's own reason, live.
            bad = await server.http.fetch(HTTPRequest(
                f"{server.base}/api/kernels", method="POST", body=json.dumps({"name": "kf_docker_gone"}),
                headers={"Authorization": f"token {TOKEN}"}, request_timeout=90), raise_error=False)
            assert bad.code >= 500, bad.code
            failed = [e for _, e in feed.events if e["phase"] == "failed" and e["engine"] == "docker"]
            assert len(failed) == 1, failed
            assert "could not pull image" in failed[0]["message"] and failed[0]["kernel_id"] in failed[0]["message"]
            failed_id = failed[0]["kernel_id"]
            assert_in_order(feed.of(failed_id), "accepted", "image_pull", "failed")
        finally:
            feed.close()
            for kernel_id in kernel_ids:
                with contextlib.suppress(AssertionError):
                    await server.call("DELETE", f"/api/kernels/{kernel_id}")
            await process.stop()
        for kernel_id in kernel_ids:
            assert not await leftovers(kernel_id), f"kernel {kernel_id} left {await leftovers(kernel_id)}"

        # The operator's view, from the journal the server wrote.
        journal = tmp_path / "kernelfleet-launches.jsonl"
        assert stat.S_IMODE(journal.stat().st_mode) == 0o600
        listed = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "kernelfleet.provisioners.cli.sweep", "launches", stdout=asyncio.subprocess.PIPE,
            env=env)
        out = (await listed.communicate())[0].decode()
        assert listed.returncode == 0, out
        print(out)  # the operator's view, in the test's output
        for kernel_id in (docker_id, pod_id, failed_id):
            assert kernel_id in out, out
        assert "image_pull@" in out and "scheduled@" in out and "connected@" in out and "error: Kernel" in out, out
        log = (tmp_path / "jupyter_server.log").read_text(errors="replace")
        assert "LAUNCH_TOKEN=" not in journal.read_text() and "LAUNCH_TOKEN=" not in log


async def test_embedded_default_reports_its_host_and_refused_launches_fail(
    kernels_dir: Path, make_kernelspec: Callable[..., str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The local engine in process: the host chosen, then a launcher that exits at once fails with its exit code."""
    monkeypatch.setenv("KF_LAUNCH_JOURNAL", str(tmp_path / "journal.jsonl"))
    server = EventServer()
    km = server.manager(kernels_dir, make_kernelspec("kf_local"))
    async with launched(server, km) as events:
        assert_in_order(events, "accepted", "host_chosen", "launcher_started")
        assert {e["engine"] for e in events} == {"local"}
        assert next(e for e in events if e["phase"] == "host_chosen")["host"] == "localhost"
        assert next(e for e in events if e["phase"] == "reported")["message"].startswith("python/")

    exits = server.manager(kernels_dir, make_kernelspec("kf_exits", argv=[sys.executable, "-c", "raise SystemExit(3)"]))
    with pytest.raises(LaunchError):
        await exits.start_kernel()
    events = await server.until(exits.kernel_id, "failed")
    assert_in_order(events, "accepted", "host_chosen", "launcher_started", "failed")
    failed = events[-1]
    assert exits.kernel_id in failed["message"] and "3" in failed["message"], failed
