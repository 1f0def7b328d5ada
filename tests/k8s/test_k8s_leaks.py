"""Mixed cycles on Kubernetes (kubelite) leave nothing behind: no pod, launch Secret or namespace with this server's
label, no kernel process, no descriptor or asyncio task in the server (issue 11, item 5). The ``kube`` fixture
checks afterwards that kubelite holds no pod, Secret, namespace or container at all."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from kubernetes_asyncio import client
from leak_probe import kubernetes_objects_of_server
from mixed_cycles import FAILING_KERNEL_CLASS, assert_no_leaks, cycle_count, kernel_manager_for, measure_leaks

from kernelfleet.kubelite import KubeLite
from kernelfleet.provisioners.container_argv import container_argv


async def test_mixed_cycles_leave_nothing_on_kubernetes(
    kube: KubeLite, core: client.CoreV1Api, k8s_spec: Callable[..., str], make_kernelspec: Callable[..., str],
    kernel_image: str, kernels_dir: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    server_id = f"leaks-k8s-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("KF_SERVER_ID", server_id)
    name = k8s_spec("k8s_leaks")
    failing = make_kernelspec("k8s_leaks_failing", argv=container_argv(kernel_class_name=FAILING_KERNEL_CLASS),
                              provisioner="kubernetes-provisioner",
                              config={"image_name": kernel_image, "launch_timeout": 60})
    mkm = kernel_manager_for(kernels_dir)
    try:
        report = await measure_leaks("kubernetes", mkm, name, failing, server_id, cycles=cycle_count(4), at_once=2,
                                     warmup=2, engine_objects=lambda: kubernetes_objects_of_server(core, server_id))
    finally:
        await mkm.shutdown_all(now=True)
        mkm.context.destroy(linger=0)
    assert_no_leaks(report, "test_mixed_cycles_leave_nothing_on_kubernetes")
