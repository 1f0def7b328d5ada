"""Pods run as real Docker containers behind kubelite, observed only through the kubernetes_asyncio client
(plus Docker itself, to prove containers come and go)."""

from __future__ import annotations

import asyncio
import base64
import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiodocker
import pytest
from kubernetes_asyncio import client, config, watch
from kubernetes_asyncio.client.exceptions import ApiException

from kernelfleet.kubelite import PULL_ERROR_ANNOTATION, UNSCHEDULABLE_ANNOTATION, DockerUnavailable, KubeLite
from kernelfleet.kubelite.testing import pod_manifest

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(90)]



async def pod_events(core: client.CoreV1Api, namespace: str, name: str) -> list[tuple[str, str, str]]:
    listed = await core.list_namespaced_event(namespace, field_selector=f"involvedObject.name={name}")
    return [(e.type, e.reason, e.message) for e in listed.items]


async def watch_until(core: client.CoreV1Api, namespace: str, name: str, done: Any,
                      timeout: int = 30) -> list[dict[str, Any]]:
    """Watch one pod until ``done(event)``; returns every event seen (type + raw object)."""
    seen: list[dict[str, Any]] = []
    w = watch.Watch()
    async for event in w.stream(core.list_namespaced_pod, namespace, field_selector=f"metadata.name={name}",
                                timeout_seconds=timeout):
        seen.append({"type": event["type"], "object": event["raw_object"]})
        if done(seen[-1]):
            break
    else:
        raise AssertionError(f"pod {name} never reached the expected state; saw {[e['type'] for e in seen]}")
    await w.close()
    return seen


def phase(event: dict[str, Any]) -> str | None:
    return (event["object"].get("status") or {}).get("phase")


async def test_watch_added_running_deleted_for_a_real_container(
        core: client.CoreV1Api, namespace: str, image: str, docker: aiodocker.Docker) -> None:
    start = await core.list_namespaced_pod(namespace)
    rv = start.metadata.resource_version
    await core.create_namespaced_pod(namespace, pod_manifest("web", image, ["sleep", "300"]))
    events: list[tuple[str, str | None]] = []
    w = watch.Watch()
    async for event in w.stream(core.list_namespaced_pod, namespace, resource_version=rv, timeout_seconds=30):
        pod = event["object"]
        events.append((event["type"], pod.status.phase))
        if event["type"] == "MODIFIED" and pod.status.phase == "Running" and not pod.metadata.deletion_timestamp:
            assert pod.status.pod_ip and pod.status.pod_ip != "127.0.0.1"
            assert pod.status.host_ip == "127.0.0.1" and pod.status.start_time
            status = pod.status.container_statuses[0]
            assert status.state.running.started_at and status.ready and status.container_id.startswith("docker://")
            assert {c.type: c.status for c in pod.status.conditions}["Ready"] == "True"
            found = await docker.containers.list(filters={"label": [f"io.kubernetes.pod.uid={pod.metadata.uid}"]})
            assert len(found) == 1
            await core.delete_namespaced_pod("web", namespace, grace_period_seconds=5)
        if event["type"] == "DELETED":
            break
    await w.close()
    assert events[0] == ("ADDED", "Pending")
    assert ("MODIFIED", "Running") in events
    assert events[-1][0] == "DELETED"
    kinds = [e[0] for e in events]
    assert kinds.count("ADDED") == 1 and kinds.count("DELETED") == 1
    reasons = [r for _, r, _ in await pod_events(core, namespace, "web")]
    assert {"Scheduled", "Pulled", "Created", "Started", "Killing"} <= set(reasons)
    leftover = await docker.containers.list(all=True, filters={"label": ["io.kubernetes.pod.name=web"]})
    assert not [c for c in leftover if c["Labels"].get("io.kubernetes.pod.namespace") == namespace]


async def test_resource_version_resume_and_410(kube: KubeLite, core: client.CoreV1Api, namespace: str) -> None:
    hold = {UNSCHEDULABLE_ANNOTATION: "true"}
    await core.create_namespaced_pod(namespace, pod_manifest("one", "busybox", ["true"], annotations=hold))
    mark = (await core.list_namespaced_pod(namespace)).metadata.resource_version
    await core.create_namespaced_pod(namespace, pod_manifest("two", "busybox", ["true"], annotations=hold))

    # Resuming from a resourceVersion replays exactly what happened after it.
    seen = []
    w = watch.Watch()
    async for event in w.stream(core.list_namespaced_pod, namespace, resource_version=mark, timeout_seconds=1):
        seen.append((event["type"], event["object"].metadata.name))
    await w.close()
    assert ("ADDED", "two") in seen and all(name == "two" for _, name in seen)
    assert int(w.resource_version) > int(mark)

    # Without a resourceVersion, a watch starts with the current state as ADDED events.
    w = watch.Watch()
    initial = [e["object"].metadata.name async for e in w.stream(core.list_namespaced_pod, namespace,
                                                                  timeout_seconds=1)]
    await w.close()
    assert sorted(initial) == ["one", "two"]

    kube.compact()
    with pytest.raises(ApiException) as exc:
        w = watch.Watch()
        async for _ in w.stream(core.list_namespaced_pod, namespace, resource_version=mark, timeout_seconds=5):
            pass
    assert exc.value.status == 410 and "too old resource version" in exc.value.reason
    await w.close()


async def test_missing_image_reports_err_image_pull_and_back_off(core: client.CoreV1Api, namespace: str) -> None:
    await core.create_namespaced_pod(namespace, pod_manifest("ghost", "kubelite/does-not-exist:1.0", ["true"]))
    seen = await watch_until(core, namespace, "ghost", lambda e: any(
        (s.get("state", {}).get("waiting") or {}).get("reason") == "ImagePullBackOff"
        for s in (e["object"].get("status") or {}).get("containerStatuses") or []))
    reasons = [s["state"]["waiting"]["reason"] for e in seen
               for s in (e["object"].get("status") or {}).get("containerStatuses") or [] if "waiting" in s["state"]]
    assert "ErrImagePull" in reasons and reasons[-1] == "ImagePullBackOff"
    assert all(phase(e) == "Pending" for e in seen)
    events = await pod_events(core, namespace, "ghost")
    failed = [m for t, r, m in events if t == "Warning" and r == "Failed" and m.startswith("Failed to pull image")]
    assert failed and failed[0].startswith('Failed to pull image "kubelite/does-not-exist:1.0": rpc error')
    assert "docker.io/kubelite/does-not-exist:1.0" in failed[0]
    assert ("Normal", "BackOff", 'Back-off pulling image "kubelite/does-not-exist:1.0"') in events
    assert ("Warning", "Failed", "Error: ImagePullBackOff") in events
    await core.delete_namespaced_pod("ghost", namespace)


async def test_simulated_pull_error_annotation(core: client.CoreV1Api, namespace: str, image: str) -> None:
    manifest = pod_manifest("denied", image, ["true"], annotations={PULL_ERROR_ANNOTATION: "pull access denied"})
    await core.create_namespaced_pod(namespace, manifest)
    await watch_until(core, namespace, "denied", lambda e: any(
        (s.get("state", {}).get("waiting") or {}).get("message") == "pull access denied"
        for s in (e["object"].get("status") or {}).get("containerStatuses") or []))
    assert ("Warning", "Failed", f'Failed to pull image "{image}": pull access denied') in await pod_events(
        core, namespace, "denied")


async def test_unschedulable_pod_and_cordoned_node(kube: KubeLite, core: client.CoreV1Api, namespace: str,
                                                   image: str) -> None:
    await core.create_namespaced_pod(namespace, pod_manifest("stuck", image, ["true"],
                                                             annotations={UNSCHEDULABLE_ANNOTATION: "true"}))
    await core.create_namespaced_pod(namespace, pod_manifest("picky", image, ["true"],
                                                             nodeSelector={"disktype": "ssd"}))
    for name, text in (("stuck", "node(s) were unschedulable"), ("picky", "didn't match Pod's node affinity")):
        seen = await watch_until(core, namespace, name, lambda e: any(
            c.get("reason") == "Unschedulable" for c in (e["object"].get("status") or {}).get("conditions") or []))
        pod = seen[-1]["object"]
        cond = pod["status"]["conditions"][0]
        assert (cond["type"], cond["status"], pod["status"]["phase"]) == ("PodScheduled", "False", "Pending")
        assert text in cond["message"] and "nodeName" not in pod["spec"]
        events = await pod_events(core, namespace, name)
        assert any(t == "Warning" and r == "FailedScheduling" and text in m for t, r, m in events)

    kube.set_unschedulable(True)
    await core.create_namespaced_pod(namespace, pod_manifest("later", image, ["true"]))
    await watch_until(core, namespace, "later", lambda e: any(
        c.get("reason") == "Unschedulable" for c in (e["object"].get("status") or {}).get("conditions") or []))
    kube.set_unschedulable(False)
    seen = await watch_until(core, namespace, "later", lambda e: phase(e) == "Succeeded")
    assert seen[-1]["object"]["spec"]["nodeName"] == "kubelite"


async def test_exit_code_3_fails_the_pod(core: client.CoreV1Api, namespace: str, image: str) -> None:
    await core.create_namespaced_pod(namespace, pod_manifest("three", image, ["sh", "-c", "echo bye; exit 3"]))
    seen = await watch_until(core, namespace, "three", lambda e: phase(e) in ("Failed", "Succeeded"))
    pod = seen[-1]["object"]
    assert pod["status"]["phase"] == "Failed"
    terminated = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    assert terminated["exitCode"] == 3 and terminated["reason"] == "Error"
    assert terminated["startedAt"] and terminated["finishedAt"]
    ready = {c["type"]: c for c in pod["status"]["conditions"]}["Ready"]
    assert ready["status"] == "False" and ready["reason"] == "PodFailed"
    assert (await core.read_namespaced_pod_log("three", namespace)) == "bye\n"

    await core.create_namespaced_pod(namespace, pod_manifest("zero", image, ["true"]))
    seen = await watch_until(core, namespace, "zero", lambda e: phase(e) in ("Failed", "Succeeded"))
    assert phase(seen[-1]) == "Succeeded"
    assert seen[-1]["object"]["status"]["containerStatuses"][0]["state"]["terminated"]["reason"] == "Completed"


async def test_security_context_env_args_and_working_dir(core: client.CoreV1Api, namespace: str,
                                                        image: str) -> None:
    manifest = pod_manifest(
        "who", image, ["sh", "-c"], securityContext={"runAsUser": 1234, "runAsGroup": 2345},
        container={"args": ['echo "$(id -u):$(id -g) $GREETING $(pwd) $(NAME)"'], "workingDir": "/tmp",
                   "env": [{"name": "GREETING", "value": "hello"}, {"name": "NAME", "value": "kernel"}]})
    await core.create_namespaced_pod(namespace, manifest)
    await watch_until(core, namespace, "who", lambda e: phase(e) == "Succeeded")
    # $(NAME) is expanded by Kubernetes before the shell sees it; the other $(...) are shell substitutions.
    assert (await core.read_namespaced_pod_log("who", namespace)).strip() == "1234:2345 hello /tmp kernel"

    override = pod_manifest("who2", image, ["sh", "-c", "id -u"], securityContext={"runAsUser": 1234},
                            container={"securityContext": {"runAsUser": 4321}})
    await core.create_namespaced_pod(namespace, override)
    await watch_until(core, namespace, "who2", lambda e: phase(e) == "Succeeded")
    assert (await core.read_namespaced_pod_log("who2", namespace)).strip() == "4321"

    refused = pod_manifest("root", image, ["true"], securityContext={"runAsNonRoot": True})
    await core.create_namespaced_pod(namespace, refused)
    seen = await watch_until(core, namespace, "root", lambda e: any(
        (s.get("state", {}).get("waiting") or {}).get("reason") == "CreateContainerConfigError"
        for s in (e["object"].get("status") or {}).get("containerStatuses") or []))
    assert phase(seen[-1]) == "Pending"


async def test_host_network_pod_gets_the_node_ip(core: client.CoreV1Api, namespace: str, image: str) -> None:
    await core.create_namespaced_pod(namespace, pod_manifest("host", image, ["sleep", "30"], hostNetwork=True))
    seen = await watch_until(core, namespace, "host", lambda e: phase(e) == "Running")
    assert seen[-1]["object"]["status"]["podIP"] == "127.0.0.1"
    deleted = await core.delete_namespaced_pod("host", namespace, grace_period_seconds=0)
    assert deleted.metadata.deletion_grace_period_seconds == 0
    with pytest.raises(ApiException) as exc:
        await core.read_namespaced_pod("host", namespace)
    assert exc.value.status == 404  # grace 0: gone from the API at once


async def test_restart_policy_on_failure_restarts_with_back_off(core: client.CoreV1Api, namespace: str,
                                                               image: str) -> None:
    manifest = pod_manifest("flaky", image, ["sh", "-c", "exit 1"], restartPolicy="OnFailure")
    await core.create_namespaced_pod(namespace, manifest)
    seen = await watch_until(core, namespace, "flaky", lambda e: any(
        s.get("restartCount", 0) >= 2 for s in (e["object"].get("status") or {}).get("containerStatuses") or []))
    status = seen[-1]["object"]["status"]
    assert status["phase"] == "Running"
    assert status["containerStatuses"][0]["lastState"]["terminated"]["exitCode"] == 1
    events = await pod_events(core, namespace, "flaky")
    assert any(r == "BackOff" and m.startswith("Back-off restarting failed container main") for _, r, m in events)


async def test_deleting_a_namespace_removes_pods_and_containers(
        core: client.CoreV1Api, namespace: str, image: str, docker: aiodocker.Docker) -> None:
    for name in ("a", "b"):
        await core.create_namespaced_pod(namespace, pod_manifest(name, image, ["sleep", "300"]))
    for name in ("a", "b"):
        await watch_until(core, namespace, name, lambda e: phase(e) == "Running")
    labels = [f"io.kubernetes.pod.namespace={namespace}"]
    assert len(await docker.containers.list(filters={"label": labels})) == 2
    await core.delete_namespace(namespace)
    with pytest.raises(ApiException) as exc:
        await core.create_namespaced_pod(namespace, pod_manifest("c", image, ["true"]))
    assert exc.value.status == 403 and "being terminated" in json.loads(exc.value.body)["message"]
    w = watch.Watch()
    async for event in w.stream(core.list_namespace, field_selector=f"metadata.name={namespace}",
                                timeout_seconds=30):
        if event["type"] == "DELETED":
            break
    await w.close()
    assert not (await core.list_namespaced_pod(namespace)).items
    assert not await docker.containers.list(all=True, filters={"label": labels})


async def test_spark_application_runs_its_driver_pod(api: client.ApiClient, core: client.CoreV1Api,
                                                     namespace: str, image: str) -> None:
    custom = client.CustomObjectsApi(api)
    group, version, plural = "sparkoperator.k8s.io", "v1beta2", "sparkapplications"
    app = {"apiVersion": f"{group}/{version}", "kind": "SparkApplication", "metadata": {"name": "kernel-1"},
           "spec": {"type": "Python", "mode": "cluster", "image": image, "sparkVersion": "3.5.0",
                    "mainApplicationFile": "local:///opt/launch.py", "restartPolicy": {"type": "Never"},
                    "driver": {"labels": {"kernel_id": "k-1", "component": "kernel"},
                               "env": [{"name": "KERNEL_ID", "value": "k-1"}],
                               "template": {"spec": {"containers": [{"name": "x", "command": ["sleep", "300"]}]}}},
                    "executor": {"instances": 1}}}
    await custom.create_namespaced_custom_object(group, version, namespace, plural, app)
    states = []
    w = watch.Watch()
    async for event in w.stream(custom.list_namespaced_custom_object, group, version, namespace, plural,
                                timeout_seconds=30):
        state = (event["object"].get("status") or {}).get("applicationState", {}).get("state")
        if state and (not states or states[-1] != state):
            states.append(state)
        if state == "RUNNING":
            break
    await w.close()
    assert states[-1] == "RUNNING" and "SUBMITTED" in states
    driver = await core.read_namespaced_pod("kernel-1-driver", namespace)
    assert driver.metadata.labels["spark-role"] == "driver" and driver.metadata.labels["kernel_id"] == "k-1"
    assert driver.status.phase == "Running" and driver.metadata.owner_references[0].kind == "SparkApplication"
    assert {e.name: e.value for e in driver.spec.containers[0].env}["KERNEL_ID"] == "k-1"
    selected = await core.list_namespaced_pod(namespace, label_selector="kernel_id=k-1,component=kernel")
    assert [p.metadata.name for p in selected.items] == ["kernel-1-driver"]

    # Deleting the application garbage-collects its driver pod.
    await custom.delete_namespaced_custom_object(group, version, namespace, plural, "kernel-1")
    seen = await watch_until(core, namespace, "kernel-1-driver", lambda e: e["type"] == "DELETED")
    assert seen[-1]["type"] == "DELETED"


async def test_unreachable_dockerd_fails_clearly() -> None:
    server = KubeLite(docker_url="unix:///nonexistent/docker.sock")
    with pytest.raises(DockerUnavailable, match="dockerd is unreachable"):
        await server.start()


async def test_runs_as_a_process_with_a_kubeconfig(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "kernelfleet.kubelite", "--port", "0", "--kubeconfig", str(kubeconfig),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        assert proc.stdout is not None
        output = b""
        while b"kubelite: serving https://127.0.0.1:" not in output:
            line = await asyncio.wait_for(proc.stdout.readline(), 30)
            assert line, f"kubelite exited before serving: {output.decode()}"
            output += line
        cfg = client.Configuration()
        await config.load_kube_config(config_file=str(kubeconfig), client_configuration=cfg)
        async with client.ApiClient(configuration=cfg) as api:
            names = {n.metadata.name for n in (await client.CoreV1Api(api).list_namespace()).items}
        assert {"default", "kube-system"} <= names
    finally:
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 30) == 0



def waiting(event: dict[str, Any]) -> dict[str, Any]:
    statuses = (event["object"].get("status") or {}).get("containerStatuses") or [{}]
    return (statuses[0].get("state") or {}).get("waiting") or {}


async def test_env_from_secrets_and_config_maps(core: client.CoreV1Api, namespace: str, image: str) -> None:
    await core.create_namespaced_secret(namespace, {
        "metadata": {"name": "creds"}, "data": {"token": base64.b64encode(b"t0ken").decode()},
        "stringData": {"user": "alice"}})
    await core.create_namespaced_config_map(namespace, {"metadata": {"name": "settings"}, "data": {"mode": "fast"}})
    env = [{"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "token"}}},
           {"name": "WHO", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "user"}}},
           {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "mode"}}},
           {"name": "MAYBE", "valueFrom": {"secretKeyRef": {"name": "absent", "key": "x", "optional": True}}},
           {"name": "PLAIN", "value": "p"}]
    manifest = pod_manifest("env", image, ["sh", "-c", 'echo "$TOKEN $WHO $MODE ${MAYBE-unset} $PLAIN $(WHO)"'],
                            container={"env": env})
    await core.create_namespaced_pod(namespace, manifest)
    await watch_until(core, namespace, "env", lambda e: phase(e) == "Succeeded")
    assert (await core.read_namespaced_pod_log("env", namespace)).strip() == "t0ken alice fast unset p alice"


async def test_missing_secret_is_a_create_container_config_error(
        core: client.CoreV1Api, namespace: str, image: str, docker: aiodocker.Docker) -> None:
    """As a kubelet: the container is not created while its Secret or key is missing, and is once it exists."""
    ref = {"name": "later", "key": "token"}
    manifest = pod_manifest("waits", image, ["sh", "-c", "echo $TOKEN"],
                            container={"env": [{"name": "TOKEN", "valueFrom": {"secretKeyRef": ref}}]})
    created = await core.create_namespaced_pod(namespace, manifest)
    seen = await watch_until(core, namespace, "waits",
                             lambda e: waiting(e).get("reason") == "CreateContainerConfigError")
    assert waiting(seen[-1])["message"] == 'secret "later" not found'
    assert phase(seen[-1]) == "Pending"
    events = await pod_events(core, namespace, "waits")
    assert ("Warning", "Failed", 'Error: secret "later" not found') in events
    assert await docker.containers.list(
        all=True, filters={"label": [f"io.kubernetes.pod.uid={created.metadata.uid}"]}) == []

    await core.create_namespaced_secret(namespace, {"metadata": {"name": "later"}, "stringData": {"other": "x"}})
    await watch_until(core, namespace, "waits", lambda e: "couldn't find key" in waiting(e).get("message", ""))
    pod = await core.read_namespaced_pod("waits", namespace)
    message = pod.status.container_statuses[0].state.waiting.message
    assert message == f"couldn't find key token in Secret {namespace}/later"

    await core.delete_namespaced_secret("later", namespace)
    await core.create_namespaced_secret(namespace, {"metadata": {"name": "later"}, "stringData": {"token": "now"}})
    await watch_until(core, namespace, "waits", lambda e: phase(e) == "Succeeded")
    assert (await core.read_namespaced_pod_log("waits", namespace)).strip() == "now"


async def test_executor_pods_ask_for_sparks_memory_overhead() -> None:
    """Spark requests the JVM amount plus max(384 MiB, 10 %) for each executor pod."""
    from kernelfleet.kubelite.spark import memory_with_overhead

    assert memory_with_overhead("1g") == "1408Mi"
    assert memory_with_overhead("512m") == "896Mi"
    assert memory_with_overhead("4g") == "4505Mi"
