"""Spark on Kubernetes in cluster mode, for real: kubernetes-provisioner runs the real ``spark-submit --master
k8s://... --deploy-mode cluster`` (pyspark's, with its fabric8 client) against kubelite; the kernel is the Spark
driver pod (``kernelfleet/kernel-spark-py``), whose SparkContext creates executor pods through kubelite from inside
its pod (its service account's token), and a Spark job really runs on them.

Needs the Spark images: ``tools/build-images-rs --only spark`` (KF_TEST_SPARK_IMAGE names another)."""

from __future__ import annotations

import getpass
import os
import subprocess
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import rs_testing
from jupyter_client import AsyncKernelClient, AsyncKernelManager
from k8s_helpers import assert_token_by_reference, pods_of, secrets_of
from kf_testing import execute, interrupted_reply, manager, start_busy_cell
from kubernetes_asyncio import client
from test_kubectl import kubectl

from kernelfleet.kubelite import KubeLite
from kernelfleet.provisioners.cli.k8s import SPARK_LAUNCHER_FILES, spark_submit_argv
from kernelfleet.provisioners.container_argv import launcher_args
from kernelfleet.provisioners.k8s import rbac

pytestmark = pytest.mark.timeout(600)
CELL = 120.0  # seconds a cell, a connection or an interrupt may take on a loaded machine

DOCKER = "/usr/bin/docker" if Path("/usr/bin/docker").exists() else "docker"
SPARK_IMAGE = "kernelfleet/kernel-spark-py:dev"
# A second name for the same image: the executors must run the executor image, not the kernel's.
EXECUTOR_IMAGE = "kernelfleet/kernel-spark-py:sparkk8s-executor-test"
SPARK_OPTS = ("--conf spark.executor.instances=1 --conf spark.driver.memory=512m --conf spark.executor.memory=512m "
              "--conf spark.kubernetes.executor.request.cores=0.2 --conf spark.ui.enabled=false")
# The driver's service account gets what `jupyter k8s-spec rbac --spark-driver-account default` grants it.
DRIVER_RBAC = rbac.api_objects(rbac.spark_driver_manifests(
    rbac.RbacSettings(kernel_namespace="default", spark_driver_account="default")))


def spark_home() -> str:
    """The server's Spark: the pyspark distribution of this venv (its bin/spark-submit and jars)."""
    import pyspark

    home = Path(pyspark.__file__).parent
    if not (home / "bin" / "spark-submit").exists():
        pytest.fail(f"pyspark at {home} has no bin/spark-submit")
    return str(home)


@pytest.fixture(scope="module")
def spark_images() -> AsyncIterator[tuple[str, str]]:
    image = os.environ.get("KF_TEST_SPARK_IMAGE") or SPARK_IMAGE
    if subprocess.run([DOCKER, "image", "inspect", image], capture_output=True, check=False).returncode != 0:
        pytest.fail(f"the Spark kernel image {image} is missing: build it with tools/build-images-rs --only spark")
    subprocess.run([DOCKER, "tag", image, EXECUTOR_IMAGE], check=True)
    try:
        yield image, EXECUTOR_IMAGE
    finally:
        subprocess.run([DOCKER, "rmi", EXECUTOR_IMAGE], capture_output=True, check=False)


@pytest.fixture
def spark_spec(make_kernelspec: Callable[..., str], spark_images: tuple[str, str]) -> Callable[..., str]:
    """A cluster-mode kernelspec as ``jupyter k8s-spec install --spark`` writes it (its argv builder)."""

    def make(name: str = "k8s_python_spark", **config: Any) -> str:
        argv = spark_submit_argv(spark_home(), SPARK_LAUNCHER_FILES["python"], launcher_args(
            kernel_class_name="ipykernel.ipkernel.IPythonKernel", spark_init_mode="lazy"))
        return make_kernelspec(name, argv=argv, provisioner="kubernetes-provisioner",
                               env={"SPARK_HOME": spark_home(), "SPARK_OPTS": SPARK_OPTS},
                               config={"image_name": spark_images[0], "executor_image_name": spark_images[1],
                                       "launch_timeout": 240, **config})

    return make


def grant_driver_role(kube: KubeLite) -> None:
    for obj in DRIVER_RBAC:
        plural = {"Role": "roles", "RoleBinding": "rolebindings"}[obj["kind"]]
        kube.create_object(kube.types[("rbac.authorization.k8s.io", plural)], "default", obj)


async def spark_objects(core: client.CoreV1Api) -> dict[str, list[str]]:
    """Every pod, Service and ConfigMap in the namespace, and the kernel's Secrets."""
    return {
        "pods": [p.metadata.name for p in (await core.list_namespaced_pod("default")).items],
        "services": [s.metadata.name for s in (await core.list_namespaced_service("default")).items],
        "configmaps": [c.metadata.name for c in (await core.list_namespaced_config_map("default")).items],
    }


async def shutdown_leaves_nothing(km: AsyncKernelManager, kc: AsyncKernelClient, core: client.CoreV1Api) -> None:
    """A shutdown deletes the driver and waits until no executor pod, Service, ConfigMap or Secret is left."""
    kc.stop_channels()
    await km.shutdown_kernel()
    assert await pods_of(core, km.kernel_id) == []
    assert await secrets_of(core, km.kernel_id) == []
    assert await spark_objects(core) == {"pods": [], "services": [], "configmaps": []}


async def test_python_spark_kernel_in_cluster_mode(kube: KubeLite, core: client.CoreV1Api, kernels_dir: Path,
                                                   spark_spec: Callable[..., str],
                                                   spark_images: tuple[str, str]) -> None:
    grant_driver_role(kube)
    km = manager(kernels_dir, spark_spec())
    started = time.perf_counter()
    await km.start_kernel()
    kc = await rs_testing.connect(km, CELL)
    try:
        (driver,) = await pods_of(core, km.kernel_id)  # only the driver so far: executors come with the context
        assert driver.metadata.labels["spark-role"] == "driver"
        assert driver.spec.containers[0].image == spark_images[0]
        assert driver.spec.containers[0].args[0] == "driver"
        assert_token_by_reference(core, driver, km.provisioner.launch_env["LAUNCH_TOKEN"])
        assert await secrets_of(core, km.kernel_id) == []

        # A job whose one task answers with the host it ran on: an executor pod, not the driver.
        reply = await execute(kc, "sc.parallelize(range(100), 2).map(lambda x: x * 2).sum(), "
                                  "sc.parallelize([0], 1).map(lambda _: __import__('socket').gethostname()).collect()",
                              timeout=2 * CELL)
        assert reply["status"] == "ok", reply
        pods = {p.metadata.name: p for p in await pods_of(core, km.kernel_id)}
        executors = [p for p in pods.values() if p.metadata.labels.get("spark-role") == "executor"]
        assert len(executors) == 1, sorted(pods)
        executor = executors[0]
        assert executor.spec.containers[0].image == spark_images[1]  # executor_image_name, honoured
        assert [(r.kind, r.name, r.uid) for r in executor.metadata.owner_references] == [
            ("Pod", driver.metadata.name, driver.metadata.uid)]
        assert "LAUNCH_TOKEN" not in str(executor.spec.containers[0].env)
        hostname = executor.spec.hostname or executor.metadata.name
        assert reply["result"] == f"(9900, [{hostname!r}])"

        # generous deadlines: a driver JVM and an executor JVM share CI's two cores with the test
        busy = await start_busy_cell(kc, timeout=CELL)
        await km.interrupt_kernel()
        await interrupted_reply(kc, busy, timeout=CELL)
        reply = await execute(kc, "spark.range(5).count()", timeout=CELL)
        if reply["status"] == "aborted":  # ipykernel aborts what reaches it in its stop-on-error window; once only
            reply = await execute(kc, "spark.range(5).count()", timeout=CELL)
        assert reply["result"] == "5", reply

        await km.restart_kernel()
        kc.stop_channels()
        kc = await rs_testing.connect(km, CELL)
        (fresh,) = [p for p in await pods_of(core, km.kernel_id) if p.metadata.labels.get("spark-role") == "driver"]
        assert fresh.metadata.uid != driver.metadata.uid and fresh.metadata.name == driver.metadata.name
        assert (await execute(kc, "'spark' in globals()", timeout=CELL))["result"] == "True"
    except BaseException:
        kc.stop_channels()
        await km.shutdown_kernel(now=True)
        raise
    await shutdown_leaves_nothing(km, kc, core)
    print(f"Spark-on-Kubernetes kernel lifecycle: {time.perf_counter() - started:.0f} s")


@pytest.fixture(scope="module")
def spark_r_image() -> str:
    image = os.environ.get("KF_TEST_SPARK_R_IMAGE") or "kernelfleet/kernel-spark-r:dev"
    if subprocess.run([DOCKER, "image", "inspect", image], capture_output=True, check=False).returncode != 0:
        pytest.fail(f"the Spark R kernel image {image} is missing: build it with tools/build-images-rs --only spark")
    return image


async def test_r_kernel_as_the_spark_driver(kube: KubeLite, core: client.CoreV1Api, kernels_dir: Path,
                                            make_kernelspec: Callable[..., str], spark_r_image: str) -> None:
    """kernel-spark-r as the driver pod: Spark's RRunner (with its R backend) runs the R launcher, the IRkernel
    answers; SparkR is not in the image (images/README.md), so the kernelspec's Spark mode is none."""
    image = spark_r_image
    grant_driver_role(kube)
    argv = spark_submit_argv(spark_home(), SPARK_LAUNCHER_FILES["r"], launcher_args(spark_init_mode="none"))
    name = make_kernelspec("k8s_r_spark", argv=argv, provisioner="kubernetes-provisioner", language="r",
                           env={"SPARK_HOME": spark_home(), "SPARK_OPTS": SPARK_OPTS},
                           config={"image_name": image, "launch_timeout": 240})
    km = manager(kernels_dir, name)
    await km.start_kernel()
    kc = await rs_testing.connect(km, CELL)
    try:
        (driver,) = await pods_of(core, km.kernel_id)
        assert driver.metadata.labels["spark-role"] == "driver" and driver.spec.containers[0].image == image
        first = await rs_testing.execute(kc, "1+1")
        assert first["status"] == "ok" and first["result"] == "[1] 2", first
        # RRunner started the kernel with its R backend's port: SparkR would attach to it
        backend = await rs_testing.execute(kc, 'nzchar(Sys.getenv("EXISTING_SPARKR_BACKEND_PORT"))')
        assert backend["result"] == "[1] TRUE", backend
    except BaseException:
        kc.stop_channels()
        await km.shutdown_kernel(now=True)
        raise
    await shutdown_leaves_nothing(km, kc, core)


async def test_the_driver_runs_as_the_requesting_user_with_exactly_the_generated_rbac(
        kube: KubeLite, core: client.CoreV1Api, kernels_dir: Path, spark_spec: Callable[..., str], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """impersonation_enabled: spark-submit --proxy-user KERNEL_USERNAME, and the driver's ``sparkUser()`` is that user.
    The server runs as its own service account with exactly ``jupyter k8s-spec rbac --spark-driver-account spark``
    (applied with kubectl), the driver as ``spark`` with the spark-driver Role, and executors really run."""
    settings = rbac.RbacSettings(spark_driver_account="spark")
    manifest = tmp_path / "rbac.yaml"
    manifest.write_text(rbac.render(rbac.SHARED, settings))
    admin = tmp_path / "kubeconfig"
    await kubectl(admin, "apply", "-f", str(manifest))
    token = kube.service_account_token(settings.server_namespace, settings.server_account)
    monkeypatch.setenv("KUBECONFIG", str(kube.write_kubeconfig(tmp_path / "server-kubeconfig", token=token)))
    ns = settings.kernel_namespace
    try:
        # The identity is checked whoever named it: unnamed, the request would run as this server's own user.
        spec = spark_spec("k8s_python_spark_proxy", namespace=ns, service_account_name="spark",
                          impersonation_enabled=True, unauthorized_users=[getpass.getuser()])
        km = manager(kernels_dir, spec)
        with pytest.raises(PermissionError, match=f"Kernel {km.kernel_id}: user '{getpass.getuser()}' is not "
                                                  "allowed to start kernels of this kind"):
            await km.start_kernel()
        assert await pods_of(core, km.kernel_id) == [] and await secrets_of(core, km.kernel_id) == []

        km = manager(kernels_dir, spec)
        await km.start_kernel(env={"KERNEL_USERNAME": "alice"})
        kc = await rs_testing.connect(km, CELL)
        try:
            reply = await execute(kc, "spark.sparkContext.sparkUser(), sc.parallelize(range(10), 2).sum()",
                                  timeout=2 * CELL)
            assert reply["result"] == "('alice', 45)", reply
            pods = await pods_of(core, km.kernel_id)
            roles = sorted(p.metadata.labels.get("spark-role") for p in pods)
            assert roles == ["driver", "executor"], roles
            (driver,) = [p for p in pods if p.metadata.labels["spark-role"] == "driver"]
            assert driver.spec.service_account_name == "spark" and driver.metadata.namespace == ns
            log = await core.read_namespaced_pod_log(driver.metadata.name, ns)
            assert "forbidden" not in log.lower(), log[-3000:]
        except BaseException:
            kc.stop_channels()
            await km.shutdown_kernel(now=True)
            raise
        kc.stop_channels()
        await km.shutdown_kernel()
        assert await pods_of(core, km.kernel_id) == [] and await secrets_of(core, km.kernel_id) == []
        assert [s.metadata.name for s in (await core.list_namespaced_service(ns)).items] == []
        assert [c.metadata.name for c in (await core.list_namespaced_config_map(ns)).items
                if c.metadata.owner_references] == []
    finally:
        await kubectl(admin, "delete", "--wait=true", "--ignore-not-found=true", "-f", str(manifest))
