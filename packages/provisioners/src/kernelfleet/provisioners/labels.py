"""The labels on every object an engine creates for a kernel: containers, services and Secrets in Docker; pods,
Secrets, namespaces and custom resources in Kubernetes.

They are how the engines' event streams and watches pick our objects out (``app``), how a kernel's objects are
found again after a restart (``kernel_id``, Gateway Provisioners' key, so existing operator scripts keep working),
and, with the server's identity (``server_identity.LABEL_SERVER``), how the orphan sweep finds what a crashed
server left. Defined once here for every engine.
"""

from __future__ import annotations

from collections.abc import Mapping

LABEL_KERNEL_ID = "kernel_id"
LABEL_APP = "app"
LABEL_COMPONENT = "component"
APP = "kernelfleet"
COMPONENT = "kernel"


def kernel_labels(kernel_id: str, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The labels every kernel object carries: ``extra`` (the kernelspec's, the server's), with ours winning."""
    return {**dict(extra or {}), LABEL_KERNEL_ID: kernel_id, LABEL_APP: APP, LABEL_COMPONENT: COMPONENT}
