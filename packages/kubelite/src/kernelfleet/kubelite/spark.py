"""A tiny stand-in for the Kubeflow Spark operator: it submits each SparkApplication by creating its driver pod
and mirrors the driver's phase into ``status.applicationState``.

Executors: on a real cluster the driver's SparkContext asks the API server for ``spec.executor.instances`` executor
pods, owned by the driver pod (so deleting the driver deletes them), with ``spark-role: executor`` labels and the
executor image, cores and memory (plus Spark's memory overhead). Here the stand-in creates exactly those pods on the
driver's behalf as soon as the driver runs (as a driver whose context starts eagerly would), and mirrors their
phases into ``status.executorState``. A test image is no Spark image: ``spec.executor.template``'s command replaces
the executor's ``executor`` argument, as it does for the driver.

States follow the operator's vocabulary: SUBMITTED → RUNNING → COMPLETED | FAILED; a driver pod the API rejects
gives SUBMISSION_FAILED. Tests may set any state themselves through the status subresource."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import uuid
from typing import TYPE_CHECKING, Any

from .clock import now
from .errors import ApiError
from .resources import SPARK_APPLICATIONS

if TYPE_CHECKING:
    from .server import KubeLite

log = logging.getLogger("kubelite.spark")

APP_NAME_LABEL = "sparkoperator.k8s.io/app-name"
_TERMINAL = ("COMPLETED", "FAILED", "SUBMISSION_FAILED")
_RUNNERS = {"Python": "org.apache.spark.deploy.PythonRunner", "R": "org.apache.spark.deploy.RRunner"}


def driver_pod(app: dict[str, Any], app_id: str) -> dict[str, Any]:
    """The driver pod spark-submit would create for ``app`` (v1beta2 fields that matter for kernels)."""
    meta, spec = app["metadata"], app.get("spec") or {}
    driver = spec.get("driver") or {}
    name = meta["name"]
    env = [dict(e) for e in driver.get("env") or []]
    env += [{"name": k, "value": str(v)} for k, v in (driver.get("envVars") or {}).items()]
    env += [{"name": "SPARK_APPLICATION_ID", "value": app_id}]
    main_class = spec.get("mainClass") or _RUNNERS.get(spec.get("type", ""), "")
    args = ["driver", "--properties-file", "/opt/spark/conf/spark.properties"]
    if main_class:
        args += ["--class", main_class]
    if spec.get("mainApplicationFile"):
        args.append(str(spec["mainApplicationFile"]))
    args += [str(a) for a in spec.get("arguments") or []]
    container: dict[str, Any] = {
        "name": "spark-kubernetes-driver",
        "image": driver.get("image") or spec.get("image"),
        "args": args,
        "env": env,
    }
    template = ((driver.get("template") or {}).get("spec") or {}).get("containers") or []
    if template:
        # A test image is no Spark image: a template command replaces spark-submit's driver arguments.
        if "command" in template[0] or "args" in template[0]:
            container.pop("args")
        for key in ("command", "args", "workingDir"):
            if key in template[0]:
                container[key] = template[0][key]
    if spec.get("imagePullPolicy"):
        container["imagePullPolicy"] = spec["imagePullPolicy"]
    if driver.get("securityContext"):
        container["securityContext"] = driver["securityContext"]
    resources: dict[str, Any] = {}
    if driver.get("cores"):
        resources.setdefault("requests", {})["cpu"] = str(driver["cores"])
    if driver.get("coreLimit"):
        resources.setdefault("limits", {})["cpu"] = str(driver["coreLimit"])
    if resources:
        container["resources"] = resources
    labels = {**(driver.get("labels") or {}), "spark-role": "driver", APP_NAME_LABEL: name,
              "sparkoperator.k8s.io/launched-by-spark-operator": "true",
              "sparkoperator.k8s.io/submission-id": str(uuid.uuid4()), "spark-app-selector": app_id,
              "spark-app-name": name}
    pod_spec: dict[str, Any] = {"containers": [container], "restartPolicy": "Never"}
    if driver.get("serviceAccount"):
        pod_spec["serviceAccountName"] = driver["serviceAccount"]
    if driver.get("podSecurityContext"):
        pod_spec["securityContext"] = driver["podSecurityContext"]
    if driver.get("hostNetwork"):
        pod_spec["hostNetwork"] = True
    selector = {**(spec.get("nodeSelector") or {}), **(driver.get("nodeSelector") or {})}
    if selector:
        pod_spec["nodeSelector"] = selector
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {
            "name": f"{name}-driver", "labels": labels, "annotations": dict(driver.get("annotations") or {}),
            "ownerReferences": [{"apiVersion": app["apiVersion"], "kind": app["kind"], "name": name,
                                 "uid": meta["uid"], "controller": True}],
        },
        "spec": pod_spec,
    }


def memory_with_overhead(memory: str) -> str:
    """Spark's executor pod memory request: the JVM amount plus max(384 MiB, 10 %), in MiB ("1g" -> "1408Mi")."""
    units = {"k": 1 / 1024, "m": 1, "g": 1024, "t": 1024 * 1024}
    amount = memory.strip().lower()
    mib = int(amount[:-1]) * units[amount[-1]] if amount and amount[-1] in units else int(amount or 1024) / 2**20
    return f"{int(mib + max(384, mib * 0.1))}Mi"


def executor_pod(app: dict[str, Any], driver: dict[str, Any], index: int) -> dict[str, Any]:
    """Executor ``index`` (from 1) of ``app`` as Spark's Kubernetes scheduler backend creates it for ``driver``."""
    meta, spec = app["metadata"], app.get("spec") or {}
    executor = spec.get("executor") or {}
    app_id = driver["metadata"]["labels"]["spark-app-selector"]
    env = [dict(e) for e in executor.get("env") or []]
    env += [{"name": "SPARK_EXECUTOR_ID", "value": str(index)}, {"name": "SPARK_APPLICATION_ID", "value": app_id},
            {"name": "SPARK_EXECUTOR_CORES", "value": str(executor.get("cores") or 1)},
            {"name": "SPARK_EXECUTOR_MEMORY", "value": str(executor.get("memory") or "1g")}]
    container: dict[str, Any] = {
        "name": "spark-kubernetes-executor",
        "image": executor.get("image") or spec.get("image"),
        "args": ["executor"],
        "env": env,
        "resources": {"requests": {"cpu": str(executor.get("cores") or 1),
                                   "memory": memory_with_overhead(str(executor.get("memory") or "1g"))}},
    }
    template = ((executor.get("template") or {}).get("spec") or {}).get("containers") or []
    if template and ("command" in template[0] or "args" in template[0]):
        container.pop("args")
        for key in ("command", "args"):
            if key in template[0]:
                container[key] = template[0][key]
    if executor.get("securityContext"):
        container["securityContext"] = executor["securityContext"]
    pod_spec: dict[str, Any] = {"containers": [container], "restartPolicy": "Never"}
    driver_spec = driver.get("spec") or {}
    for key in ("serviceAccountName", "securityContext", "hostNetwork", "nodeSelector"):
        if key in driver_spec:
            pod_spec[key] = driver_spec[key]
    labels = {**(executor.get("labels") or {}), "spark-role": "executor", "spark-exec-id": str(index),
              "spark-app-selector": app_id, APP_NAME_LABEL: meta["name"], "spark-app-name": meta["name"],
              "sparkoperator.k8s.io/launched-by-spark-operator": "true"}
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {
            "name": f"{meta['name']}-exec-{index}", "labels": labels,
            "ownerReferences": [{"apiVersion": "v1", "kind": "Pod", "name": driver["metadata"]["name"],
                                 "uid": driver["metadata"]["uid"], "controller": True}],
        },
        "spec": pod_spec,
    }


class SparkOperator:
    """Controller run by :class:`KubeLite`; watches applications and driver pods, like the operator does."""

    def __init__(self, server: KubeLite) -> None:
        self.server = server
        self.rt = server.types[SPARK_APPLICATIONS.key]

    async def run(self) -> None:
        await asyncio.gather(self._watch_apps(), self._watch_drivers())

    def _set_state(self, namespace: str, name: str, state: str, error: str = "", **extra: Any) -> None:
        def apply(app: dict[str, Any]) -> None:
            status = app.setdefault("status", {})
            if status.get("applicationState", {}).get("state") in _TERMINAL:
                return
            status["applicationState"] = {"state": state, "errorMessage": error}
            status.update(extra)

        self.server.store.mutate(self.rt, namespace, name, apply)

    async def _watch_apps(self) -> None:
        async for change in self.server.store.watch(self.rt, None, None):
            if change.type != "ADDED" or (change.obj.get("status") or {}).get("applicationState"):
                continue
            self._submit(change.obj)

    def _submit(self, app: dict[str, Any]) -> None:
        meta = app["metadata"]
        app_id = f"spark-{secrets.token_hex(16)}"
        pod = driver_pod(app, app_id)
        base = {"sparkApplicationId": app_id, "submissionID": pod["metadata"]["labels"][
            "sparkoperator.k8s.io/submission-id"], "lastSubmissionAttemptTime": now(), "submissionAttempts": 1,
            "driverInfo": {"podName": pod["metadata"]["name"]}}
        try:
            self.server.create_object(self.server.pods_rt, meta["namespace"], pod)
        except ApiError as err:
            self._set_state(meta["namespace"], meta["name"], "SUBMISSION_FAILED",
                            f"failed to run spark-submit: {err.message}", **base)
            return
        self._set_state(meta["namespace"], meta["name"], "SUBMITTED", **base)

    async def _watch_drivers(self) -> None:
        pods = self.server.pods_rt
        async for change in self.server.store.watch(pods, None, self.server.store.revision):
            labels = change.obj["metadata"].get("labels") or {}
            app_name = labels.get(APP_NAME_LABEL)
            if not app_name:
                continue
            if labels.get("spark-role") == "executor":
                self._mirror_executor(change.type, change.obj, app_name)
                continue
            if labels.get("spark-role") != "driver":
                continue
            ns = change.obj["metadata"]["namespace"]
            status = change.obj.get("status") or {}
            if change.type == "DELETED":
                self._set_state(ns, app_name, "FAILED", "driver pod not found")
                continue
            phase = status.get("phase")
            if phase == "Running":
                self._set_state(ns, app_name, "RUNNING")
                self._start_executors(ns, app_name, change.obj)
            elif phase == "Succeeded":
                self._set_state(ns, app_name, "COMPLETED", terminationTime=now())
            elif phase == "Failed":
                term = next((s["state"]["terminated"] for s in status.get("containerStatuses") or []
                             if "terminated" in s.get("state", {})), {})
                self._set_state(ns, app_name, "FAILED", f"driver container failed with ExitCode: "
                                f"{term.get('exitCode')}, Reason: {term.get('reason')}", terminationTime=now())

    def _start_executors(self, namespace: str, app_name: str, driver: dict[str, Any]) -> None:
        """The driver's executors, once: a driver that runs again (a status update) asks for none more."""
        try:
            app = self.server.store.get(self.rt, namespace, app_name)
        except ApiError:
            return
        if (app.get("status") or {}).get("executorState") is not None:
            return
        count = int(((app.get("spec") or {}).get("executor") or {}).get("instances") or 0)
        self.server.store.mutate(self.rt, namespace, app_name,
                                 lambda obj: obj.setdefault("status", {}).setdefault("executorState", {}))
        for index in range(1, count + 1):
            pod = executor_pod(app, driver, index)
            try:
                self.server.create_object(self.server.pods_rt, namespace, pod)
            except ApiError as err:  # the driver's log would say this; the application keeps running
                log.info("executor %s of %s/%s refused: %s", index, namespace, app_name, err.message)

    def _mirror_executor(self, change_type: str, pod: dict[str, Any], app_name: str) -> None:
        phase = (pod.get("status") or {}).get("phase") or "Pending"
        states = {"Pending": "PENDING", "Running": "RUNNING", "Succeeded": "COMPLETED", "Failed": "FAILED"}
        state = "DELETED" if change_type == "DELETED" else states.get(phase, "UNKNOWN")
        name = pod["metadata"]["name"]

        def apply(app: dict[str, Any]) -> None:
            app.setdefault("status", {}).setdefault("executorState", {})[name] = state

        with contextlib.suppress(ApiError):
            self.server.store.mutate(self.rt, pod["metadata"]["namespace"], app_name, apply)
