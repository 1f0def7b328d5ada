"""Helpers for tests that use kubelite: a locally built busybox image (nothing can be pulled here), pod
manifests, and a dockerd check that fails loudly instead of skipping."""

from __future__ import annotations

import io
import shutil
import tarfile
from typing import Any

import aiodocker
import pytest

IMAGE = "kubelite/busybox:test"
_DOCKERFILE = b"""FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
RUN mkdir -p /tmp /root && chmod 1777 /tmp
ENV PATH=/bin
CMD ["sh"]
"""


async def docker_or_fail() -> aiodocker.Docker:
    """A connected Docker client, or a test failure that says dockerd is what is missing."""
    docker = aiodocker.Docker()
    try:
        await docker.version()
    except Exception as err:
        await docker.close()
        pytest.fail(f"kubelite tests need a running dockerd (unreachable: {err}); start it, e.g. `dockerd &`")
    return docker


async def ensure_image(docker: aiodocker.Docker) -> str:
    """Build ``kubelite/busybox:test`` from the host's static busybox (Debian package busybox-static)."""
    try:
        await docker.images.inspect(IMAGE)
        return IMAGE
    except aiodocker.DockerError:
        pass
    busybox = shutil.which("busybox")
    if busybox is None:
        pytest.fail("building the kubelite test image needs a static busybox: apt-get install busybox-static")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(_DOCKERFILE)
        tar.addfile(info, io.BytesIO(_DOCKERFILE))
        tar.add(busybox, arcname="busybox")
    buf.seek(0)
    await docker.images.build(fileobj=buf, encoding="identity", tag=IMAGE, rm=True, forcerm=True)
    await docker.images.inspect(IMAGE)
    return IMAGE


def pod_manifest(name: str, image: str, command: list[str], **spec: Any) -> dict[str, Any]:
    """A restartPolicy Never pod with one container ``main``; extra keyword arguments go into the pod spec."""
    labels = spec.pop("labels", {"app": "kubelite-test"})
    annotations = spec.pop("annotations", None)
    container = {"name": "main", "image": image, "command": command, **spec.pop("container", {})}
    meta: dict[str, Any] = {"name": name, "labels": labels}
    if annotations:
        meta["annotations"] = annotations
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta,
            "spec": {"restartPolicy": "Never", "terminationGracePeriodSeconds": 2, "containers": [container],
                     **spec}}

