"""A kernelspec's own pod template (``scripts/kernel-pod.yaml.j2``, as Gateway Provisioners wrote them), rendered
so that no value can change the manifest's structure.

GP loaded every ``KERNEL_*`` value with ``yaml.safe_load`` and pasted it raw into quoted YAML, so a service-account
name holding a quote and a newline added ``hostPID: true`` to the pod. Here every ``{{ expression }}`` is written
as a YAML flow scalar by the environment's ``finalize`` (strings as JSON strings, which are valid double-quoted YAML
and cannot hold a raw newline or an unescaped quote; numbers as numbers; mappings and lists as JSON flow), and
the quotes GP templates put around an expression (``"{{ kernel_pod_name }}"``) are dropped before rendering because
the value brings its own. Only typed, validated values are offered to the template; undefined names are errors.
The result must hold exactly one Pod; ``enforce_operator_fields`` then puts back what is the operator's to decide,
and the provisioner checks it like a built pod. Other documents (a PVC, Secret, ConfigMap or Service next to the Pod)
are created only where the operator allows their kind (``template_objects``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jinja2
import yaml
from jinja2.sandbox import SandboxedEnvironment

from kernelfleet.provisioners.k8s.pod import PodSettings, PodSpecError, apply_restricted, merge_env

MAX_TEMPLATE_BYTES = 256 * 1024
# "{{ expr }}" or '{{ expr }}' exactly: the quotes go, the value is quoted by finalize instead.
QUOTED_EXPRESSION = re.compile(r"""(["'])(\{\{(?:(?!\}\}|\n).)*\}\})\1""")
# In json.dumps' ASCII output: a surrogate-pair escape (group 1, 2), or any other escape, consumed whole so that an
# escaped backslash followed by "ud83d" is never mistaken for an escape.
JSON_ESCAPE = re.compile(r"\\u(d[89ab][0-9a-f]{2})\\u(d[c-f][0-9a-f]{2})|\\.")


def yaml_scalar(value: Any) -> str:
    """How any value appears in the rendered YAML: a flow scalar or flow collection, never raw text."""
    if isinstance(value, jinja2.Undefined):
        value._fail_with_undefined_error()  # raises jinja2.UndefinedError naming the missing value
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, int | float):
        return json.dumps(value)
    if isinstance(value, str | Mapping | list | tuple):
        return JSON_ESCAPE.sub(_astral_escape, json.dumps(value, sort_keys=False))
    raise PodSpecError(f"a pod template value of type {type(value).__name__} cannot be written into YAML")


def _astral_escape(match: re.Match[str]) -> str:
    """A JSON surrogate pair as YAML's ``\\UXXXXXXXX`` escape, for ``yaml_scalar``: YAML decodes each ``\\uXXXX``
    of a pair into a lone surrogate, so a character above U+FFFF (an emoji in a user name) would not come back
    as itself. Every other escape means the same in JSON and YAML and stays."""
    if match[1] is None:
        return match[0]
    high, low = int(match[1], 16), int(match[2], 16)
    return f"\\U{0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00):08x}"


def _environment() -> SandboxedEnvironment:
    return SandboxedEnvironment(
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,  # escaping is finalize's job: HTML escaping would be wrong for YAML
        undefined=jinja2.StrictUndefined,
        finalize=yaml_scalar,
        keep_trailing_newline=True,
    )


def render_template(kernel_id: str, path: Path, values: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Render ``path`` with ``values`` and parse it: every non-empty YAML document, each a mapping (``split_pod``
    finds the Pod)."""
    try:
        source = path.read_bytes()
    except OSError as err:
        raise PodSpecError(f"Kernel {kernel_id}: cannot read the pod template {path}: {err}") from None
    if len(source) > MAX_TEMPLATE_BYTES:
        raise PodSpecError(f"Kernel {kernel_id}: the pod template {path} is larger than {MAX_TEMPLATE_BYTES} bytes")
    text = QUOTED_EXPRESSION.sub(r"\2", source.decode("utf-8"))
    try:
        rendered = _environment().from_string(text).render(dict(values))
    except jinja2.TemplateError as err:
        raise PodSpecError(f"Kernel {kernel_id}: the pod template {path} could not be rendered: {err}") from None
    try:
        documents = [doc for doc in yaml.safe_load_all(rendered) if doc is not None]
    except yaml.YAMLError as err:
        raise PodSpecError(
            f"Kernel {kernel_id}: the pod template {path} did not render to valid YAML ({err}); note that a value "
            "can only stand alone in a field, e.g. name: {{ kernel_pod_name }}, not inside a longer quoted string"
        ) from None
    for index, doc in enumerate(documents):
        if not isinstance(doc, dict):
            raise PodSpecError(f"Kernel {kernel_id}: document {index} of the pod template {path} is a "
                               f"{type(doc).__name__}, not a Kubernetes object")
    return documents


def split_pod(kernel_id: str, path: Path,
              documents: list[dict[str, Any]]) -> tuple[dict[str, Any], list[tuple[int, dict[str, Any]]]]:
    """The one Pod of the rendered documents, and the others with their index (``template_objects`` checks them
    against the kernelspec's ``template_object_kinds``)."""
    pods = [index for index, doc in enumerate(documents) if doc.get("kind") == "Pod"]
    if len(pods) != 1:
        kinds = [d.get("kind") for d in documents]
        raise PodSpecError(f"Kernel {kernel_id}: the pod template {path} must produce exactly one Pod, not {kinds}")
    others = [(index, doc) for index, doc in enumerate(documents) if index != pods[0]]
    return documents[pods[0]], others


def render_pod_template(kernel_id: str, path: Path, values: Mapping[str, Any]) -> dict[str, Any]:
    """A one-document template's Pod (a template with other documents is refused: see ``template_objects``)."""
    pod, others = split_pod(kernel_id, path, render_template(kernel_id, path, values))
    if others:
        kinds = [doc.get("kind") for _, doc in others]
        raise PodSpecError(f"Kernel {kernel_id}: the pod template {path} must produce exactly one Pod; it also "
                           f"makes {kinds}")
    return pod


def enforce_operator_fields(pod: dict[str, Any], settings: PodSettings,
                            identity_labels: Mapping[str, str]) -> dict[str, Any]:
    """What the operator decides is not the template's to change: where the pod runs, who it runs as, its labels
    (the template's own, then the kernel's and this server's ``identity_labels`` over them), the kernel's
    environment, and (``settings.restricted``) what the "restricted" Pod Security Standard needs where the template
    leaves it unset, and restartPolicy Never unless the template says otherwise. Changes ``pod`` in place and
    returns it."""
    meta = pod.setdefault("metadata", {})
    if isinstance(meta, dict):
        meta.setdefault("namespace", settings.namespace)
        meta["labels"] = {**(meta.get("labels") or {}), **identity_labels}
    spec = pod.get("spec")
    if isinstance(spec, dict):
        # a kernel that ends is over: restarted by the kubelet (Kubernetes' default Always), it would report to no
        # launch and its pod would never end for the shutdown that waits for it
        spec.setdefault("restartPolicy", "Never")
        security = spec.setdefault("securityContext", {}) or {}
        spec["securityContext"] = security
        security.setdefault("runAsUser", settings.uid)
        security.setdefault("runAsGroup", settings.gid)
        if settings.host_network:
            spec["hostNetwork"] = True
            spec.setdefault("dnsPolicy", "ClusterFirstWithHostNet")
        containers = spec.get("containers")
        if isinstance(containers, list) and containers and isinstance(containers[0], dict):
            merge_env(containers[0], settings.env, settings.secret_env)
        if settings.restricted:
            apply_restricted(spec)
    return pod
