"""The launch token is in no object the Kubernetes API returns to others (issue 12, item 5), for both
kubernetes-provisioner and spark-operator-provisioner, against kubelite through kubernetes_asyncio.

A reader with list/get/watch on every resource type kubelite serves follows the whole launch (a watch per type
from the list's resourceVersion, so nothing in between is missed), lists and gets every object while the kernel
runs, and reads the kernel's log; kubelite's own store and change history (everything any watch could ever
replay) are searched too. The token, plain or base64, may appear only in the launch Secret itself. Before this
fix spark-operator-provisioner wrote it as a plain value into the SparkApplication's driver and executor env.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from k8s_helpers import pods_of, secrets_of
from kf_testing import connect, execute, manager
from kubernetes_asyncio import client

from kernelfleet.kubelite import KubeLite
from kernelfleet.kubelite.resources import ResourceType

pytestmark = [pytest.mark.hostile, pytest.mark.timeout(120)]


def collection_path(rt: ResourceType) -> str:
    base = f"/apis/{rt.group}/{rt.version}" if rt.group else "/api/v1"
    return f"{base}/{rt.plural}"


def item_path(rt: ResourceType, obj: dict[str, Any]) -> str:
    base = f"/apis/{rt.group}/{rt.version}" if rt.group else "/api/v1"
    meta = obj["metadata"]
    if rt.namespaced:
        return f"{base}/namespaces/{meta['namespace']}/{rt.plural}/{meta['name']}"
    return f"{base}/{rt.plural}/{meta['name']}"


class ApiReader:
    """What the API hands to anyone allowed to read everything: every answer kept as (where, object)."""

    def __init__(self, api: client.ApiClient, kube: KubeLite) -> None:
        self.api = api
        self.types = list(kube.types.values())
        self.seen: list[tuple[str, dict[str, Any]]] = []
        self.watches: list[asyncio.Task[None]] = []

    async def get(self, path: str, **query: str) -> Any:
        response = await self.api.call_api(path, "GET", query_params=list(query.items()), auth_settings=["BearerToken"],
                                           _preload_content=False, _return_http_data_only=True)
        try:
            assert response.status == 200, (path, response.status)
            return await response.text()
        finally:
            response.release()

    async def list_all(self) -> dict[str, str]:
        """Every object of every type (and each fetched on its own); the list's resourceVersion per type."""
        versions: dict[str, str] = {}
        for rt in self.types:
            listed = json.loads(await self.get(collection_path(rt)))
            versions[rt.plural] = listed["metadata"]["resourceVersion"]
            for item in listed["items"]:
                self.seen.append((f"list {rt.plural}", item))
                self.seen.append((f"get {rt.plural}", json.loads(await self.get(item_path(rt, item)))))
        return versions

    async def follow(self) -> None:
        versions = await self.list_all()
        self.watches = [asyncio.ensure_future(self._watch(rt, versions[rt.plural])) for rt in self.types]

    async def _watch(self, rt: ResourceType, version: str) -> None:
        response = await self.api.call_api(
            collection_path(rt), "GET", query_params=[("watch", "true"), ("resourceVersion", version)],
            auth_settings=["BearerToken"], _preload_content=False, _return_http_data_only=True)
        try:
            while line := await response.content.readline():
                event = json.loads(line)
                self.seen.append((f"watch {rt.plural} {event['type']}", event["object"]))
        finally:
            response.release()

    async def stop(self) -> None:
        for task in self.watches:
            task.cancel()
        await asyncio.gather(*self.watches, return_exceptions=True)


def launch_secret(obj: dict[str, Any], kernel_id: str) -> bool:
    meta = obj.get("metadata") or {}
    return (obj.get("kind") == "Secret" and meta.get("name", "").endswith("-launch")
            and (meta.get("labels") or {}).get("kernel_id") == kernel_id)


def assert_token_nowhere(seen: list[tuple[str, Any]], kernel_id: str, tokens: list[str]) -> None:
    forms = [form for token in tokens for form in (token, base64.b64encode(token.encode()).decode())]
    checked = 0
    for where, obj in seen:
        if isinstance(obj, dict) and launch_secret(obj, kernel_id):
            continue
        text = obj if isinstance(obj, str) else json.dumps(obj)
        checked += 1
        assert not any(form in text for form in forms), f"the launch token is readable in {where}: {text[:300]}"
    assert checked > 20  # pods, events, the application, namespaces ... were all looked at


def kubelite_store(kube: KubeLite) -> list[tuple[str, Any]]:
    """Everything kubelite holds: every stored object and every change a watch could replay."""
    stored = [(f"stored {rt.plural}", obj) for rt in kube.types.values() for obj in kube.store.list(rt)]
    history = [(f"history {change.type}", change.obj) for change in kube.store._history]
    return stored + history


async def run_and_search(kube: KubeLite, core: client.CoreV1Api, km: Any) -> None:
    """Start (followed by the reader), execute, read everything, shut down; then search it all for the token."""
    reader = ApiReader(core.api_client, kube)
    await reader.follow()
    tokens: list[str] = []
    try:
        await km.start_kernel()
        tokens.append(km.provisioner.launch_env["LAUNCH_TOKEN"])
        kc = await connect(km)
        try:
            assert (await execute(kc, "6 * 7"))["result"] == "42"
        finally:
            kc.stop_channels()
        # the kernel's pod (a SparkApplication's executors, labelled with the kernel id too, are searched below)
        (pod,) = [p for p in await pods_of(core, km.kernel_id)
                  if (p.metadata.labels or {}).get("spark-role") in (None, "driver")]
        await reader.list_all()
        log = await core.read_namespaced_pod_log(pod.metadata.name, pod.metadata.namespace)
        reader.seen.append(("pod log", str(log)))
        assert await secrets_of(core, km.kernel_id) == []  # gone once the kernel reported
    finally:
        await km.shutdown_kernel()
        await reader.stop()
    assert tokens and await secrets_of(core, km.kernel_id) == []
    assert_token_nowhere(reader.seen + kubelite_store(kube), km.kernel_id, tokens)
    # the launch Secret did carry it: the search would have found it anywhere else
    secrets = [obj for _, obj in reader.seen if isinstance(obj, dict) and launch_secret(obj, km.kernel_id)]
    assert secrets and all(s["data"]["launch-token"] == base64.b64encode(tokens[0].encode()).decode()
                           for s in secrets)


async def test_kubernetes_provisioner_token_in_no_api_object(kube: KubeLite, core: client.CoreV1Api,
                                                             kernels_dir: Path, k8s_spec: Callable[..., str]) -> None:
    await run_and_search(kube, core, manager(kernels_dir, k8s_spec(shared_namespace=False)))


async def test_spark_operator_token_in_no_api_object(kube: KubeLite, core: client.CoreV1Api, kernels_dir: Path,
                                                     k8s_spec: Callable[..., str]) -> None:
    spec = k8s_spec("spark_token", provisioner="spark-operator-provisioner",
                    driver_command=["/usr/local/bin/bootstrap-kernel.sh"], executor_command=["sleep", "infinity"])
    await run_and_search(kube, core, manager(kernels_dir, spec))
