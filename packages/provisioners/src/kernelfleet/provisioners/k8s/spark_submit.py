"""Spark on Kubernetes in cluster mode: the kernel is the Spark driver pod that ``spark-submit --master k8s://...
--deploy-mode cluster`` creates, its executors the pods that driver creates (Gateway Provisioners' ``k8s_*_spark``
kernelspecs).

A kernelspec says so by its argv: ``spark-submit`` (any path), its options, the launcher file (``local:///...``) and
the launcher's placeholders. ``kubernetes-provisioner`` then does what GP's ``run.sh`` did with ``eval``, without a
shell: it runs that argv as one process (``asyncio.create_subprocess_exec``) with its own ``--conf`` options inserted
before the launcher file, each one argv entry:

- the driver pod template is the pod this provisioner would have created (``kernel_pod_manifest``: labels, security
  context, resources, volumes, the kernel's variables and ``LAUNCH_TOKEN`` from the launch Secret by
  ``secretKeyRef``), written to a private file (GP's ``--pod-template``); Spark adds its containers' arguments, its
  volumes and variables to it. The token is never on a command line, in a file or in a Spark property.
- with ``impersonation_enabled``, ``--proxy-user`` with the requesting user (checked against the kernelspec's
  authorized/unauthorized users): Spark 3.1+ passes it to the driver pod's own spark-submit, which runs the
  application as that user (``sparkUser()``; on a Kerberized Hadoop, the server's principal must be allowed to
  impersonate it);
- the driver pod's name, namespace, service account, images (``image_name``; executors ``executor_image_name``,
  default the kernel image) and labels (kernel id and server id on the driver and on every executor) are the
  provisioner's (GP's ``--spark-opts-out``): a kernelspec's own ``--conf`` of these is overridden.

``SparkSubmitWorkload`` follows the driver pod as ``PodWorkload`` follows a kernel pod; a stop deletes it by uid and
waits until the objects Spark made for it (executor pods, the driver's Service, ConfigMaps, all owned by the driver
pod) are gone too.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kubernetes_asyncio import client, watch
from kubernetes_asyncio.client.exceptions import ApiException

from kernelfleet.provisioners.base import LaunchError
from kernelfleet.provisioners.k8s.client import describe_api_error
from kernelfleet.provisioners.k8s.owned import POD, Owned, kernel_uid
from kernelfleet.provisioners.k8s.workloads import PodWorkload
from kernelfleet.provisioners.labels import LABEL_KERNEL_ID
from kernelfleet.provisioners.spark_submit import operator_spark_opts

if TYPE_CHECKING:
    from kernelfleet.provisioners.k8s.provisioner import KubernetesProvisioner

#: spark-submit options that take no value (every other ``-x``/``--xyz`` takes the next argument).
_FLAGS = frozenset({"--verbose", "-v", "--supervise", "--help", "-h", "--version", "--usage-error"})
#: What Spark names the objects it makes for an application: selected for the stop's wait.
SPARK_APP_LABEL = "spark-app-selector"
SUBMIT_OUTPUT_LINES = 30
WATCH_SECONDS = 30  # one watch request of the stop's wait for Services and ConfigMaps
#: Variables spark-submit may see from the server's environment (never the whole environment).
SUBMIT_ENVIRONMENT = ("PATH", "HOME", "JAVA_HOME", "SPARK_HOME", "SPARK_CONF_DIR", "KUBECONFIG", "LANG", "TMPDIR")
#: Kernelspec variables that are the server's, for spark-submit: kept out of the driver pod.
SERVER_SIDE = frozenset((*SUBMIT_ENVIRONMENT, "SPARK_OPTS"))


def is_spark_submit(argv: Sequence[str]) -> bool:
    """Pure: whether a kernelspec's argv runs ``spark-submit`` (its program's file name)."""
    return bool(argv) and Path(str(argv[0])).name in ("spark-submit", "spark-submit.sh")


def primary_resource_index(argv: Sequence[str]) -> int:
    """Pure: where the application file is in a spark-submit argv (the first argument that is neither an option
    nor an option's value); ValueError when there is none."""
    i = 1
    while i < len(argv):
        arg = argv[i]
        if arg in _FLAGS or (arg.startswith("--") and "=" in arg):
            i += 1
        elif arg.startswith("-"):
            i += 2
        else:
            return i
    raise ValueError("the spark-submit argv names no application file (e.g. local:///.../launch_ipykernel.py)")


def option_value(argv: Sequence[str], name: str) -> str | None:
    """Pure: the last value of ``--name value`` / ``--name=value`` before the application file."""
    end = primary_resource_index(argv)
    found = None
    for i in range(1, end):
        if argv[i] == name and i + 1 < end:
            found = argv[i + 1]
        elif argv[i].startswith(name + "="):
            found = argv[i].split("=", 1)[1]
    return found


@dataclass(frozen=True)
class SparkSubmission:
    """What one launch submits, as data (built by ``KubernetesProvisioner``, turned into argv by ``submit_argv``)."""

    argv: tuple[str, ...]  #: the kernelspec's argv, placeholders filled
    master: str  #: k8s://https://host:port, when the argv has no --master
    namespace: str
    pod_name: str
    service_account: str
    image: str
    executor_image: str
    driver_labels: Mapping[str, str]
    executor_labels: Mapping[str, str]
    template_path: str
    app_name: str
    spark_opts: tuple[str, ...] = ()  #: the kernelspec env's SPARK_OPTS, split (``split_spark_opts``)
    proxy_user: str | None = None  #: impersonation_enabled: the checked requesting user


def submit_argv(s: SparkSubmission) -> list[str]:
    """Pure: the spark-submit command line of a launch — the kernelspec's options, then the provisioner's (later
    ``--conf`` wins in spark-submit), then the application file and its arguments."""
    argv = list(s.argv)
    at = primary_resource_index(argv)
    deploy_mode = option_value(argv, "--deploy-mode")
    if deploy_mode not in (None, "cluster"):
        raise ValueError(f"a Kubernetes Spark kernelspec runs in cluster mode, not --deploy-mode {deploy_mode}")
    ours: list[str] = []
    if option_value(argv, "--master") is None:
        ours += ["--master", s.master]
    if deploy_mode is None:
        ours += ["--deploy-mode", "cluster"]
    if option_value(argv, "--name") is None:
        ours += ["--name", s.app_name]
    if s.proxy_user:
        if option_value(argv, "--proxy-user") is not None:
            raise ValueError("the kernelspec's argv names --proxy-user; with impersonation_enabled the provisioner "
                             "sets it to the requesting user")
        ours += ["--proxy-user", s.proxy_user]
    conf = {
        "spark.kubernetes.namespace": s.namespace,
        "spark.kubernetes.driver.pod.name": s.pod_name,
        "spark.kubernetes.authenticate.driver.serviceAccountName": s.service_account,
        "spark.kubernetes.driver.container.image": s.image,
        "spark.kubernetes.executor.container.image": s.executor_image or s.image,
        "spark.kubernetes.driver.podTemplateFile": s.template_path,
        "spark.kubernetes.driver.podTemplateContainerName": "kernel",
        "spark.kubernetes.submission.waitAppCompletion": "false",
        # the launch Secret's reference is in the template; the pod's variables must not leak into executors
        "spark.kubernetes.executor.deleteOnTermination": "true",
    }
    conf.update({f"spark.kubernetes.driver.label.{k}": v for k, v in s.driver_labels.items()})
    conf.update({f"spark.kubernetes.executor.label.{k}": v for k, v in s.executor_labels.items()})
    for key, value in conf.items():
        ours += ["--conf", f"{key}={value}"]
    return argv[:at] + list(s.spark_opts) + ours + argv[at:]


def spark_opts_words(kernel_id: str, spark_opts: str, server_env: Mapping[str, str],
                     kernel_values: Mapping[str, str], extra: str = "") -> tuple[str, ...]:
    """Pure: a kernelspec's ``SPARK_OPTS`` as spark-submit arguments, split without a shell by the one implementation
    every engine uses (``spark_submit.operator_spark_opts``). GP's Kubernetes kernelspecs write ``--name
    ${KERNEL_USERNAME}-${KERNEL_ID}``, ``${KERNEL_NAMESPACE}``, ``${KUBERNETES_SERVICE_HOST}`` and
    ``${KERNEL_EXTRA_SPARK_OPTS}``: the kernel's names come from this launch (``kernel_values``), other names from
    the server's environment, the request's extra options are checked as on SSH hosts; anything else with a ``$``
    is refused. Only the kernelspec's value is read as options (an operator's), never a request's."""
    values = {**server_env, **kernel_values}  # names are escaped in the pattern (spark_submit.expansion)
    return tuple(operator_spark_opts(kernel_id, spark_opts, values, extra=extra,
                                     also=", ${KERNEL_NAMESPACE} and the server's environment variables"))


def driver_template(manifest: Mapping[str, Any]) -> dict[str, Any]:
    """Pure: the kernel pod manifest as Spark's driver pod template: the kernel container keeps its variables,
    security context, resources and mounts, but not a command (Spark's ``driver`` arguments and the image's
    entrypoint run it), a restart policy (Spark's ``Never``) or the server-side variables of spark-submit."""
    template = json.loads(json.dumps(manifest))
    spec = template.setdefault("spec", {})
    spec.pop("restartPolicy", None)
    for container in spec.get("containers") or []:
        container.pop("command", None)
        container.pop("args", None)
        # the kernelspec's SPARK_HOME, JAVA_HOME, ... are the server's, for spark-submit: the image has its own
        container["env"] = [e for e in container.get("env") or [] if e.get("name") not in SERVER_SIDE]
    return template


class SparkSubmitWorkload(PodWorkload):
    """The kernel as the Spark driver pod ``spark-submit`` creates in cluster mode."""

    def __init__(self, provisioner: KubernetesProvisioner) -> None:
        super().__init__(provisioner)
        self.app_selector: str | None = None  # Spark's application id label of the driver, once seen

    async def create(self, core: client.CoreV1Api) -> None:
        """The launch Secret, then spark-submit (which returns once the driver pod exists); the pod's uid is recorded
        as this kernel's only if it carries the kernel's id label."""
        p = self.p
        assert p.manifest is not None and p.kernel_namespace and p.pod_name
        ns, name = p.kernel_namespace, p.pod_name
        await p.create_launch_secret(core)
        p.pod_uid = None
        workdir = await asyncio.to_thread(tempfile.mkdtemp, prefix=f"kf-spark-{p.kernel_id}-")
        try:
            template = Path(workdir) / "driver-pod.json"
            await asyncio.to_thread(template.write_text, json.dumps(driver_template(p.manifest)))
            host = (await p.lease_api().client()).configuration.host
            try:
                argv = submit_argv(p.spark_submission(str(template), f"k8s://{host}"))
            except ValueError as err:
                raise LaunchError(f"Kernel {p.kernel_id}: {err}") from None
            p.owned[POD] = Owned(name, None)  # a lost answer is still found (by its label) at cleanup
            await self._run(argv, workdir)
        finally:
            await asyncio.to_thread(shutil.rmtree, workdir, True)
        try:
            pod = await core.read_namespaced_pod(name, ns)
        except ApiException as err:
            raise LaunchError(f"Kernel {p.kernel_id}: spark-submit ended but the driver pod {ns}/{name} cannot be "
                              f"read: {describe_api_error(err)}") from None
        uid = kernel_uid(core.api_client.sanitize_for_serialization(pod), p.kernel_id)
        if uid is None:
            p.owned.pop(POD, None)
            raise LaunchError(f"Kernel {p.kernel_id}: pod {ns}/{name} is not the driver spark-submit made for this "
                              "kernel (no kernel id label); left alone")
        p.owned[POD] = Owned(name, uid)
        p.pod_uid = uid

    async def _run(self, argv: list[str], workdir: str) -> None:
        """spark-submit as one process, no shell, a reduced environment; its output is kept for the error."""
        p = self.p
        env = {k: os.environ[k] for k in SUBMIT_ENVIRONMENT if k in os.environ}
        env.update({k: v for k, v in p.spark_submit_env().items() if k in SUBMIT_ENVIRONMENT})
        p.log.debug("Kernel %s: running %s", p.kernel_id, " ".join(argv))
        try:
            proc = await asyncio.create_subprocess_exec(*argv, cwd=workdir, env=env, stdin=asyncio.subprocess.DEVNULL,
                                                        stdout=asyncio.subprocess.PIPE,
                                                        stderr=asyncio.subprocess.STDOUT)
        except OSError as err:
            raise LaunchError(f"Kernel {p.kernel_id}: cannot run {argv[0]}: {err}") from None
        try:
            output, _ = await proc.communicate()
        except BaseException:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
            raise
        if proc.returncode != 0:
            tail = "\n".join(output.decode(errors="replace").rstrip().splitlines()[-SUBMIT_OUTPUT_LINES:])
            raise LaunchError(f"Kernel {p.kernel_id}: spark-submit failed (exit {proc.returncode}): {tail}")
        p.log.info("Kernel %s: spark-submit created driver pod %s/%s", p.kernel_id, p.kernel_namespace, p.pod_name)

    async def delete(self) -> None:
        """Delete the driver pod by uid, then wait until what Spark made for it (executors, Service, ConfigMaps,
        owned by the driver pod and removed by the garbage collector) is gone."""
        p = self.p
        await p.delete_pod()
        if p.api is None or not p.kernel_namespace:
            return
        try:
            async with asyncio.timeout(p.delete_timeout):
                await self._spark_objects_gone()
        except TimeoutError:
            p.log.warning("Kernel %s: Spark's objects of driver %s still exist %ss after its deletion", p.kernel_id,
                          p.pod_name, p.delete_timeout)
        except ApiException as err:
            p.log.warning("Kernel %s: Spark's objects could not be listed: %s", p.kernel_id, describe_api_error(err))

    async def _spark_objects_gone(self) -> None:
        p = self.p
        ns = p.kernel_namespace
        assert ns
        pods = await p.synced_pods()
        if pods is not None:
            left = [name for name, pod in pods.objects.items()
                    if (pod.get("metadata", {}).get("labels") or {}).get(LABEL_KERNEL_ID) == p.kernel_id]
            for name in left:
                await pods.until(name, lambda pod: pod is None)
        core = await p.core()
        owned_by_driver = {p.pod_uid} if p.pod_uid else set()
        if not owned_by_driver:
            return
        for lister in (core.list_namespaced_service, core.list_namespaced_config_map):
            await _until_unowned(lister, ns, owned_by_driver)


async def _until_unowned(lister: Any, namespace: str, owners: set[str]) -> None:
    """Follow one kind's watch until no object of the namespace names one of ``owners`` as its owner (a watch the
    server ends is resumed from a fresh list; the caller bounds the wait)."""
    while True:
        listed = await lister(namespace)
        left = {o.metadata.name for o in listed.items
                if any(r.uid in owners for r in (o.metadata.owner_references or []))}
        if not left:
            return
        w = watch.Watch()
        try:
            async for event in w.stream(lister, namespace, resource_version=listed.metadata.resource_version,
                                        timeout_seconds=WATCH_SECONDS):
                if event["type"] == "DELETED":
                    left.discard(event["object"].metadata.name)
                if not left:
                    return
        finally:
            w.stop()
