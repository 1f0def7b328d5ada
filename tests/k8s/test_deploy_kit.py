"""The deployment kit on kubelite, end to end: ``jupyter k8s-spec deploy --with-rbac`` applied with kubectl runs the
application image as a Deployment (kubelite's minimal controller makes its pod), the pod's Jupyter server starts a
kernel through its in-cluster configuration (the service-account token and CA kubelite mounts into every pod) as the
server's least-privilege ServiceAccount, a client executes ``1+1`` over the server's websocket, and deleting the
kernel and then the kit leaves nothing behind. The image puller DaemonSet runs one pod with every kernel image.

Images: KF_TEST_SERVER_IMAGE (default kernelfleet/server:dev, made by ``tools/build-images --with-server``); its
kernelspec's kernel image is read from the image's ``org.kernelfleet.kernel-image`` label.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import subprocess
import sys
import uuid
from pathlib import Path

import aiohttp
import pytest
from kubernetes_asyncio import client
from test_kubectl import kubectl

from kernelfleet.kubelite import KubeLite

pytestmark = pytest.mark.timeout(240)
DOCKER = "/usr/bin/docker" if Path("/usr/bin/docker").exists() else "docker"
NAMESPACE = "kernelfleet"


@pytest.fixture(scope="session")
def server_image() -> tuple[str, str]:
    """(application image, the kernel image its kernelspec names); both must exist locally (kubelite never pulls)."""
    image = os.environ.get("KF_TEST_SERVER_IMAGE") or "kernelfleet/server:dev"
    found = subprocess.run([DOCKER, "image", "inspect", "--format",
                            '{{ index .Config.Labels "org.kernelfleet.kernel-image" }}', image],
                           capture_output=True, text=True, check=False)
    if found.returncode != 0:
        pytest.fail(f"the application image {image} (KF_TEST_SERVER_IMAGE) is missing; build it with "
                    "tools/build-images --with-server (KF_IMAGE_TAG=<tag> for your own tag)")
    kernel_image = found.stdout.strip()
    if subprocess.run([DOCKER, "image", "inspect", kernel_image], capture_output=True, check=False).returncode:
        pytest.fail(f"the kernel image {kernel_image} named by {image}'s kernelspec is missing; build it with "
                    "tools/build-images")
    return image, kernel_image


async def command_output(*argv: str) -> str:
    proc = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    assert proc.returncode == 0, f"{' '.join(argv)} failed ({proc.returncode}): {err.decode()}"
    return out.decode()


async def wait_for_log_line(core: client.CoreV1Api, namespace: str, pod: str, needle: str) -> str:
    """Follow the pod's log until a line holds ``needle`` (the log stream wakes us; no polling)."""
    response = await core.read_namespaced_pod_log(pod, namespace, follow=True, _preload_content=False)
    seen = []
    try:
        while line := await response.content.readline():
            text = line.decode(errors="replace")
            seen.append(text)
            if needle in text:
                return text
    finally:
        response.release()
    raise AssertionError(f"the log of {namespace}/{pod} ended without {needle!r}:\n{''.join(seen)[-3000:]}")


async def server_pod(core: client.CoreV1Api) -> client.V1Pod:
    """The Deployment's pod once it runs, followed with a watch."""
    selector = "app.kubernetes.io/component=server"
    listed = await core.list_namespaced_pod(NAMESPACE, label_selector=selector)
    for pod in listed.items:
        if pod.status.phase == "Running" and pod.status.pod_ip:
            return pod
    response = await core.list_namespaced_pod(NAMESPACE, label_selector=selector, watch=True,
                                              resource_version=listed.metadata.resource_version,
                                              timeout_seconds=120, _preload_content=False)
    try:
        while line := await response.content.readline():
            obj = json.loads(line)["object"]
            if (obj.get("status") or {}).get("phase") == "Running" and obj["status"].get("podIP"):
                return await core.read_namespaced_pod(obj["metadata"]["name"], NAMESPACE)
    finally:
        response.release()
    raise AssertionError("the server's pod never ran")


async def execute(session: aiohttp.ClientSession, url: str, kernel_id: str, code: str) -> str:
    """Run ``code`` over the server's kernel websocket and return its execute_result's text/plain."""
    session_id = uuid.uuid4().hex
    async with session.ws_connect(f"{url}/api/kernels/{kernel_id}/channels?session_id={session_id}") as ws:
        msg_id = uuid.uuid4().hex
        await ws.send_json({
            "header": {"msg_id": msg_id, "username": "test", "session": session_id, "msg_type": "execute_request",
                       "version": "5.3", "date": ""},
            "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
            "content": {"code": code, "silent": False, "store_history": True, "user_expressions": {},
                        "allow_stdin": False, "stop_on_error": True}})
        result = None
        async for message in ws:
            msg = json.loads(message.data)
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            if msg["msg_type"] == "execute_result":
                result = msg["content"]["data"]["text/plain"]
            if msg["msg_type"] == "error":
                raise AssertionError(f"the cell failed: {msg['content']}")
            if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle" and result is not None:
                return result
    raise AssertionError("the websocket closed before the cell's result")


async def test_deploy_kit_starts_a_kernel_from_the_server_pod(kube: KubeLite, core: client.CoreV1Api,
                                                               tmp_path: Path, server_image: tuple[str, str]) -> None:
    image, kernel_image = server_image
    kubeconfig = tmp_path / "kubeconfig"
    manifest = tmp_path / "kit.yaml"
    jupyter = str(Path(sys.executable).parent / "jupyter")
    manifest.write_text(await command_output(jupyter, "k8s-spec", "deploy", "--with-rbac", "--server-image", image,
                                             "--kernel-image", kernel_image))
    await kubectl(kubeconfig, "apply", "-f", str(manifest))
    token = secrets.token_hex(16)
    await core.create_namespaced_secret(NAMESPACE, {"metadata": {"name": "kernelfleet-server-token"},
                                                    "stringData": {"token": token}})
    _, out = await kubectl(kubeconfig, "wait", "-n", NAMESPACE, "--for=condition=Available",
                           "deployment/kernelfleet-server", "--timeout=120s")
    assert "condition met" in out

    pod = await server_pod(core)
    assert pod.metadata.owner_references[0].kind == "Deployment"
    assert pod.spec.service_account_name == "kernelfleet"
    line = await wait_for_log_line(core, NAMESPACE, pod.metadata.name, "is running at")
    assert token not in line
    url = f"http://{pod.status.pod_ip}:8888"
    service = await core.read_namespaced_service("kernelfleet-server", NAMESPACE)
    assert {p.name: p.port for p in service.spec.ports} == {"http": 8888, "response": 8877}
    assert service.spec.cluster_ip

    async with aiohttp.ClientSession(headers={"Authorization": f"token {token}"}) as session:
        async with session.get(f"{url}/api/kernelspecs") as resp:
            specs = await resp.json()
        assert specs["kernelspecs"]["k8s_python"]["spec"]["metadata"]["kernel_provisioner"]["provisioner_name"] \
            == "kubernetes-provisioner"
        async with session.post(f"{url}/api/kernels", json={"name": "k8s_python"}) as resp:
            body = await resp.text()
            assert resp.status == 201, f"starting a kernel failed ({resp.status}): {body}"
            kernel_id = json.loads(body)["id"]
        kernel_pods = (await core.list_namespaced_pod("kernels", label_selector=f"kernel_id={kernel_id}")).items
        assert [p.status.phase for p in kernel_pods] == ["Running"]
        assert await execute(session, url, kernel_id, "1+1") == "2"
        async with session.delete(f"{url}/api/kernels/{kernel_id}") as resp:
            assert resp.status == 204, await resp.text()
        async with session.get(f"{url}/api/kernels") as resp:
            assert await resp.json() == []
    # The server waited for the pod's end; its launch Secret went at the report.
    assert (await core.list_namespaced_pod("kernels", label_selector=f"kernel_id={kernel_id}")).items == []
    assert (await core.list_namespaced_secret("kernels", label_selector="app=kernelfleet")).items == []

    pullers = (await core.list_namespaced_pod(NAMESPACE, label_selector="app.kubernetes.io/component=image-puller")
               ).items
    assert [[c.image for c in p.spec.containers] for p in pullers] == [[kernel_image]]
    assert pullers[0].metadata.owner_references[0].kind == "DaemonSet"

    # --wait: kubectl follows each namespace until the API has deleted it and everything in it (the namespaces
    # come first in the file, so their content may be gone before kubectl names it: --ignore-not-found).
    await kubectl(kubeconfig, "delete", "--wait=true", "--ignore-not-found=true", "-f", str(manifest))
