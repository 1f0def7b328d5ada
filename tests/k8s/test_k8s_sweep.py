"""The orphan sweep on Kubernetes (kubelite): a server killed with SIGKILL after and during launches leaves pods,
launch Secrets, per-kernel namespaces and SparkApplications; ``jupyter kernelfleet sweep`` lists exactly those
(not a kernel a session claims, not another server's) and ``--yes`` deletes them by uid, leaving nothing."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from k8s_helpers import pods_of, secrets_of
from kubernetes_asyncio import client
from sweep_testing import crash_server, listed_kernels, sweep_away, sweep_cli, write_session

from kernelfleet.kubelite import KubeLite

pytestmark = pytest.mark.timeout(180)
ENGINES = ("--engine", "kubernetes")


async def test_sweep_finds_and_removes_what_a_killed_server_left_on_kubernetes(
    kube: KubeLite, core: client.CoreV1Api, k8s_spec: Callable[..., str], kernels_dir: Path, tmp_path: Path,
) -> None:
    shared = k8s_spec("k8s_shared")
    own_namespace = k8s_spec("k8s_own_namespace", shared_namespace=False)
    spark = k8s_spec("k8s_spark", provisioner="spark-operator-provisioner",
                     driver_command=["/usr/local/bin/bootstrap-kernel.sh"])
    server, other = f"sweep-{uuid.uuid4().hex[:8]}", f"other-{uuid.uuid4().hex[:8]}"
    kid = {name: f"{name}-{uuid.uuid4().hex[:8]}" for name in
           ("pod-after", "namespace-after", "spark-after", "pod-mid", "other", "claimed")}
    store = tmp_path / "kernelfleet-sessions"

    try:
        await crash_server(kernels_dir, server, [
            {"spec": shared, "kernel_id": kid["pod-after"], "mode": "after"},
            {"spec": own_namespace, "kernel_id": kid["namespace-after"], "mode": "after"},
            {"spec": spark, "kernel_id": kid["spark-after"], "mode": "after"},
            {"spec": shared, "kernel_id": kid["claimed"], "mode": "after"},
            {"spec": shared, "kernel_id": kid["pod-mid"], "mode": "mid"},
        ])
        await crash_server(kernels_dir, other, [{"spec": shared, "kernel_id": kid["other"], "mode": "mid"}])
        write_session(store, kid["claimed"])  # the restarted server will reattach this one

        orphans = {
            kid["pod-after"]: {"kubernetes pod"},
            kid["namespace-after"]: {"kubernetes pod", "kubernetes namespace"},
            kid["spark-after"]: {"kubernetes sparkapplication"},
            kid["pod-mid"]: {"kubernetes pod", "kubernetes secret"},  # killed before the report: its token Secret stays
        }
        env = {"KF_SERVER_ID": server}
        status, out, err = await sweep_cli(*ENGINES, "--store-dir", str(store), "--grace", "0", env=env)
        assert status == 0 and listed_kernels(out) == orphans, out + err

        status, out, err = await sweep_cli(*ENGINES, "--store-dir", str(store), "--grace", "0", "--yes", env=env)
        assert status == 0 and "failed" not in out, out + err
        for kernel_id in orphans:
            assert await pods_of(core, kernel_id) == [] and await secrets_of(core, kernel_id) == []
        assert {n.metadata.name for n in (await core.list_namespace(label_selector=f"kernel_id={kid['namespace-after']}"
                                                                     )).items} == set()
        assert await pods_of(core, kid["claimed"]) and await pods_of(core, kid["other"])

        # What is left: the claimed kernel (the session store would reattach it) and another server's pod; their own
        # sweeps (with nothing claimed) remove them, so the fixture finds nothing left.
        for server_id, kernel_id in ((server, kid["claimed"]), (other, kid["other"])):
            status, out, err = await sweep_cli(*ENGINES, "--server-id", server_id, "--all-unclaimed", "--grace", "0",
                                               "--yes")
            assert status == 0 and set(listed_kernels(out)) == {kernel_id}, out + err
    finally:
        await sweep_away([server, other], ["kubernetes"])
