"""A warm pool's standby pod as data, for ``k8s.standbys`` (which creates them) and its tests: the pod and the
registration-token Secret that a cold launch of the kernelspec would get from a request without any values,
relabelled as a standby; the shape by which a launch is known to fit a standby; and the patch that makes a standby
pod its kernel's at the claim.

A standby pod is built by the same pure builders as a kernel pod (``settle_pod_launch``, ``kernel_pod_manifest``:
the built-in pod or the kernelspec's template, the operator's policy checked), so it runs with the image, user,
service account, resources, volumes and security a cold kernel of the kernelspec gets. Its registration token
reaches it as a cold launch's token does, by ``secretKeyRef`` to a Secret of its own (``k8s.secret``); it carries
the server's identity and the pool's labels (``pool.spec.standby_labels``) but no ``kernel_id``, so no kernel's
watch, the orphan sweep or ``kubectl get pods -l kernel_id`` take it for a kernel. No I/O here but reading the
kernelspec's template file.
"""

from __future__ import annotations

import copy
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kernelfleet.protocol.contract import LAUNCH_TOKEN
from kernelfleet.provisioners.container import ContainerChoice
from kernelfleet.provisioners.k8s.settings import KubernetesSettings, kernel_pod_manifest, settle_pod_launch
from kernelfleet.provisioners.labels import LABEL_KERNEL_ID
from kernelfleet.provisioners.pool.spec import standby_labels, standby_name

IDENTITY_FIELDS = ("name", "labels", "uid", "resourceVersion", "creationTimestamp")


@dataclass(frozen=True)
class StandbyPod:
    """One standby's pod and its registration-token Secret, to be created in ``namespace``."""

    standby_id: str
    name: str
    namespace: str
    manifest: dict[str, Any]
    secret: dict[str, Any]
    env: Mapping[str, str]  # the standby's environment, its registration token included (that goes to the Secret)


def relabelled(obj: Mapping[str, Any], labels: Mapping[str, str]) -> dict[str, Any]:
    """``obj`` (a manifest) with ``labels`` over its own and no ``kernel_id`` label."""
    result = copy.deepcopy(dict(obj))
    meta = result.setdefault("metadata", {})
    own = {key: value for key, value in (meta.get("labels") or {}).items() if key != LABEL_KERNEL_ID}
    meta["labels"] = {**own, **labels}
    return result


def standby_pod(s: KubernetesSettings, server_id: str, pool: str, standby_id: str, container: ContainerChoice,
                username: str, template: Path | None = None, spec_dir: str = "") -> StandbyPod:
    """The pod and Secret of standby ``standby_id`` of ``pool``: a cold launch's (``container`` is the container a
    request without values settles to, the registration token as its ``LAUNCH_TOKEN``), named ``kf-standby-<hex>``
    and labelled as a standby. Raises what ``settle_pod_launch`` and ``kernel_pod_manifest`` raise."""
    name = standby_name(standby_id)
    request = {"KERNEL_POD_NAME": name, "KERNEL_USERNAME": username}
    launch = settle_pod_launch(s, standby_id, server_id, request, container)
    labels = standby_labels(server_id, pool, standby_id)
    manifest = relabelled(kernel_pod_manifest(launch, template, spec_dir), labels)
    return StandbyPod(standby_id, name, launch.namespace, manifest, relabelled(launch.secret, labels),
                      dict(launch.env))


def pod_shape(manifest: Mapping[str, Any], env_names: Collection[str]) -> dict[str, Any]:
    """What of a pod a claim cannot change: the manifest without its identity (name, labels), the working directory
    and the environment entries named in ``env_names`` (all of which the claim sets), and the launch token's
    reference. A launch fits a standby when its pod's shape is the standby's."""
    shape = copy.deepcopy(dict(manifest))
    meta = shape.get("metadata") or {}
    for key in IDENTITY_FIELDS:
        meta.pop(key, None)
    for container in (shape.get("spec") or {}).get("containers") or []:
        container.pop("workingDir", None)
        env = [entry for entry in container.get("env") or []
               if entry.get("name") not in env_names and entry.get("name") != LAUNCH_TOKEN]
        container["env"] = sorted(env, key=lambda entry: str(entry.get("name")))
    return shape


def _pointer(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")


def claim_patch(uid: str, labels: Mapping[str, str]) -> list[dict[str, Any]]:
    """The JSON patch that makes standby pod ``uid`` its kernel's: ``labels`` (the kernel's, ``kernel_id`` and
    ``component=kernel`` among them) set over its own; the pool's labels stay, saying where the kernel came from. It
    applies only to that very pod (a ``test`` of its uid): a pod that has meanwhile come to have the name is left
    alone."""
    return [{"op": "test", "path": "/metadata/uid", "value": uid}] + [
        {"op": "add", "path": f"/metadata/labels/{_pointer(key)}", "value": value} for key, value in labels.items()]
