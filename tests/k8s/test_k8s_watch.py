"""The shared pod watch against connections real networks lose: a watch whose connection goes silent (no FIN,
no bytes) is given up after its client-side idle timeout and resumed from its resourceVersion, so a pod that
changed meanwhile is still seen; BOOKMARK events keep an idle watch's resourceVersion current and its
connection alive."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest
from kubernetes_asyncio import client

from kernelfleet.kubelite import KubeLite
from kernelfleet.kubelite.testing import pod_manifest
from kernelfleet.provisioners.k8s.client import KubeApi
from kernelfleet.provisioners.k8s.watch import SharedWatch
from kernelfleet.provisioners.k8s.watch import log as watch_log

pytestmark = pytest.mark.timeout(90)
IDLE = 2


def kernel_pod(name: str, image: str) -> dict:
    return pod_manifest(name, image, ["sleep", "300"], labels={"kernel_id": name})


async def test_silently_dropped_watch_times_out_and_resumes(
        kube: KubeLite, core: client.CoreV1Api, kernel_image: str, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger=watch_log.name)
    monkeypatch.setenv("KF_KUBERNETES_WATCH_IDLE_SECONDS", str(IDLE))
    kube.bookmark_interval = IDLE / 4  # an idle but healthy stream is not mistaken for a dead one
    api = KubeApi.acquire()
    watch = SharedWatch.pods(api, "default")
    try:
        assert watch.idle_timeout == IDLE
        await core.create_namespaced_pod("default", kernel_pod("before", kernel_image))
        await watch.until("before", lambda p: p is not None, timeout=20)
        # Healthy but idle for longer than the idle timeout: bookmarks keep it and advance its version.
        version = int(watch.version or 0)
        await core.create_namespaced_config_map("kube-system", {"metadata": {"name": "elsewhere"}})
        revision = kube.store.revision
        with watch.progress() as progressed:
            async with asyncio.timeout(20):
                while int(watch.version or 0) < revision:  # only a bookmark carries a change in another namespace
                    await progressed.wait()
                    progressed.clear()
        assert int(watch.version or 0) >= revision > version
        assert "broke" not in caplog.text

        assert kube.drop_watches_silently() >= 1
        await core.create_namespaced_pod("default", kernel_pod("during", kernel_image))
        seen = await watch.until("during", lambda p: p is not None, timeout=IDLE * 10)
        assert seen is not None and seen["metadata"]["labels"]["kernel_id"] == "during"
        assert f"no event or bookmark for {IDLE}s" in caplog.text
        assert "relisting" not in caplog.text  # resumed from its resourceVersion, not relisted
    finally:
        await core.delete_namespaced_config_map("elsewhere", "kube-system")
        for name in ("before", "during"):
            await core.delete_namespaced_pod(name, "default", grace_period_seconds=0)
        await watch.release(linger=False)
        await api.release()


async def test_bookmarks_only_when_allowed(kube: KubeLite, core: client.CoreV1Api) -> None:
    kube.bookmark_interval = 0.2
    listed = await core.list_namespaced_config_map("default")
    await core.create_namespaced_config_map("kube-system", {"metadata": {"name": "elsewhere"}})
    try:
        for allowed in (True, False):
            response = await core.list_namespaced_config_map(
                "default", watch=True, resource_version=listed.metadata.resource_version, timeout_seconds=1,
                allow_watch_bookmarks=allowed, _preload_content=False)
            events = []
            try:
                while line := await response.content.readline():
                    events.append(json.loads(line))
            finally:
                response.release()
            if allowed:
                assert events and {e["type"] for e in events} == {"BOOKMARK"}
                assert events[0]["object"] == {"kind": "ConfigMap", "apiVersion": "v1", "metadata": {
                    "resourceVersion": events[0]["object"]["metadata"]["resourceVersion"]}}
                assert int(events[-1]["object"]["metadata"]["resourceVersion"]) == kube.store.revision
            else:
                assert events == []
    finally:
        await core.delete_namespaced_config_map("elsewhere", "kube-system")
