"""Transient against definitive: what a kubelet retries and real clusters recover from (a registry that blips, a
Secret cache that lags behind the launch Secret we just created) does not fail a launch within
``transient_error_window``; a definitive reason (an image that is not found, a registry that says unauthorized)
fails it at once with the kubelet's message, and a transient one that lasts fails it when the window ends."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
from k8s_helpers import pods_of, refused_launch, secrets_of
from kf_testing import connect, execute, manager
from kubernetes_asyncio import client

from kernelfleet.kubelite import (
    PULL_ERROR_ANNOTATION,
    PULL_FLAKY_ANNOTATION,
    SECRET_CACHE_MISSES_ANNOTATION,
    KubeLite,
)

pytestmark = pytest.mark.timeout(120)
UNAUTHORIZED = ('rpc error: code = Unknown desc = failed to pull and unpack image "registry.example/team/kernel:1": '
                "failed to resolve reference: pull access denied, repository does not exist or may require "
                "authorization: server message: insufficient_scope: authorization failed; 401 Unauthorized")
UNAVAILABLE = ('rpc error: code = Unknown desc = failed to pull and unpack image "registry.example/team/kernel:1": '
               "failed to copy: httpReadSeeker: failed open: unexpected status code 503 Service Unavailable")


async def event_reasons(core: client.CoreV1Api, pod: client.V1Pod) -> list[str]:
    listed = await core.list_namespaced_event(pod.metadata.namespace,
                                              field_selector=f"involvedObject.name={pod.metadata.name}")
    return [f"{e.reason}: {e.message}" for e in listed.items]


async def starts_after_retries(km, core: client.CoreV1Api) -> list[str]:
    """Start the kernel, run a cell, return the pod's events; the kernel is shut down afterwards."""
    await km.start_kernel()
    try:
        (pod,) = await pods_of(core, km.kernel_id)
        events = await event_reasons(core, pod)
        kc = await connect(km)
        try:
            assert (await execute(kc, "6 * 7"))["result"] == "42"
        finally:
            kc.stop_channels()
    finally:
        await km.shutdown_kernel()
    return events


async def test_registry_blip_is_retried(kube: KubeLite, core: client.CoreV1Api, kernels_dir: Path,
                                        k8s_spec: Callable[..., str]) -> None:
    km = manager(kernels_dir, k8s_spec("blip", annotations={PULL_FLAKY_ANNOTATION: "2"}, transient_error_window=60))
    events = await starts_after_retries(km, core)
    assert any("Failed: Error: ErrImagePull" in e for e in events), events
    assert any("503 Service Unavailable" in e for e in events), events
    assert any(e.startswith("Pulled: Successfully pulled image") for e in events), events


async def test_lagging_secret_cache_is_retried(kube: KubeLite, core: client.CoreV1Api, kernels_dir: Path,
                                               k8s_spec: Callable[..., str]) -> None:
    km = manager(kernels_dir, k8s_spec("lag", annotations={SECRET_CACHE_MISSES_ANNOTATION: "2"},
                                       transient_error_window=60))
    events = await starts_after_retries(km, core)
    assert any(e.startswith('Failed: Error: secret "') and "not found" in e for e in events), events
    assert await secrets_of(core, km.kernel_id) == []


async def test_unauthorized_fails_at_once(kube: KubeLite, core: client.CoreV1Api, kernels_dir: Path,
                                          k8s_spec: Callable[..., str]) -> None:
    km = manager(kernels_dir, k8s_spec("unauthorized", annotations={PULL_ERROR_ANNOTATION: UNAUTHORIZED},
                                       transient_error_window=60))
    started = time.perf_counter()
    message = await refused_launch(km, core)
    assert time.perf_counter() - started < 20  # far less than the 60 s window: the reason is definitive
    assert "401 Unauthorized" in message and "ErrImagePull" in message
    assert "transient_error_window" not in message


async def test_lasting_transient_error_fails_when_the_window_ends(kube: KubeLite, core: client.CoreV1Api,
                                                                  kernels_dir: Path,
                                                                  k8s_spec: Callable[..., str]) -> None:
    window = 3
    km = manager(kernels_dir, k8s_spec("unavailable", annotations={PULL_ERROR_ANNOTATION: UNAVAILABLE},
                                       transient_error_window=window))
    started = time.perf_counter()
    message = await refused_launch(km, core)
    assert window <= time.perf_counter() - started < 40
    assert "503 Service Unavailable" in message
    assert f"still after the {window}s that transient errors are retried, transient_error_window" in message
