"""The launch token's own Secret: how a kernel pod gets ``LAUNCH_TOKEN`` without the token being in its spec.

Protocol v2's launch token is what lets the server tell the kernel's own report from a forged one, so only the
server and that launcher may know it. A plain ``env`` value would be readable by everyone allowed to ``get pods``
in the namespace; in a Secret it is readable only by those allowed to ``get secrets``, and the pod refers to it
with ``valueFrom.secretKeyRef``. The Secret cannot be owned by the pod (the pod does not exist yet when the
Secret must), so the provisioner deletes it itself as soon as the report is in or the launch has failed.

This module does no I/O: it names and builds the Secret.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from typing import Any

from kernelfleet.protocol.contract import LAUNCH_TOKEN
from kernelfleet.provisioners.k8s.names import check_dns_subdomain, dns_label
from kernelfleet.provisioners.k8s.pod import PodSpecError, SecretKeyRef
from kernelfleet.provisioners.labels import kernel_labels

TOKEN_KEY = "launch-token"
SECRET_SUFFIX = "-launch"


def launch_secret_name(kernel_id: str, pod_name: str) -> str:
    """``<pod name>-launch``, kept a DNS label (≤ 63; a long one is cut and ends in a hash, like pod names), so it
    is a valid Secret name by any reading of the rules and the same for every launch of the kernel."""
    return check_dns_subdomain(kernel_id, "launch Secret name", dns_label(f"{pod_name}{SECRET_SUFFIX}"))


def launch_token_ref(kernel_id: str, pod_name: str) -> SecretKeyRef:
    return SecretKeyRef(launch_secret_name(kernel_id, pod_name), TOKEN_KEY)


def build_launch_secret(ref: SecretKeyRef, namespace: str, kernel_id: str, token: str,
                        labels: Mapping[str, str] = ()) -> dict[str, Any]:  # type: ignore[assignment]
    """The Opaque Secret holding ``token`` under ``ref.key``, labelled like the kernel's pod.

    The value goes base64 in ``data`` (what the API stores; ``stringData`` would be converted anyway). It is
    immutable: nobody may swap the token of a pending launch; a restart makes a new Secret with a new token.
    """
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "immutable": True,
        "metadata": {"name": ref.name, "namespace": namespace, "labels": kernel_labels(kernel_id, labels)},
        "data": {ref.key: base64.b64encode(token.encode()).decode("ascii")},
    }


def check_token_absent(kernel_id: str, manifest: Mapping[str, Any], token: str) -> None:
    """Refuse a manifest that carries the token anywhere (a template's literal, an annotation): the pod spec is
    readable by more people than the Secret."""
    if token and token in json.dumps(manifest):
        raise PodSpecError(
            f"Kernel {kernel_id}: the pod manifest contains the launch token; {LAUNCH_TOKEN} may only reach the "
            "pod through its Secret (valueFrom.secretKeyRef)"
        )
