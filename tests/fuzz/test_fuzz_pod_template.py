"""Property-based fuzzing of kernelspec pod templates (k8s_template): request values can never change a
rendered pod's structure.

The template is written as Gateway Provisioners' kernelspecs wrote them (values double- and single-quoted,
bare, inside flow mappings and lists, under a condition). Property: whatever the values (quotes, newlines,
YAML indicators, Jinja syntax, any Unicode), the document is exactly the one built directly with each value
verbatim in its own field: a value can never add a key, an item or a document. Through the provisioner, a
template-rendered pod carries the request's KERNEL_* values unchanged and passes the operator's policy.
"""

from __future__ import annotations

from pathlib import Path

from fuzz_properties import KERNEL_ID, budget, check_k8s_request, check_pod_template, write_pod_template
from hypothesis import given
from hypothesis import strategies as st

TEMPLATES = budget(150)

hostile = st.sampled_from([
    '"', "'", '"\nhostPID: true\n"', "x\n  hostPID: true", "}}", "{{ kernel_id }}", "{% raw %}", "- a", ": b", "#",
    "&a", "*a", "!!python/object:os.system", "---", "...", "\\", "\u2028", "\x85", "\ufeff", "\t", "null", "~",
    "true", "0x10", "1e3", ",", "[", "]", "{", "}", "|", ">", "%",
])
template_text = st.lists(hostile | st.text(max_size=12), max_size=4).map("".join)
uids = st.integers(0, 2**32 - 1)


@TEMPLATES
@given(st.fixed_dictionaries({
    "kernel_pod_name": template_text, "kernel_namespace": template_text, "kernel_id": template_text,
    "kernel_username": template_text, "kernel_extra": template_text, "kernel_image": template_text,
    "kernel_uid": uids, "kernel_gid": uids,
}))
def test_values_never_change_the_document(tmp_path: Path, values: dict) -> None:
    check_pod_template(write_pod_template(tmp_path), values)


@TEMPLATES
@given(st.dictionaries(st.sampled_from(["KERNEL_USERNAME", "KERNEL_EXTRA", "KERNEL_POD_NAME", "KERNEL_NAMESPACE",
                                        "KERNEL_UID", "KERNEL_IMAGE"]), template_text, max_size=4))
def test_template_pods_through_the_provisioner(tmp_path: Path, request: dict[str, str]) -> None:
    """The provisioner offers the template only typed, checked values; its pod passes the same checks."""
    template = tmp_path / "kernel-pod.yaml.j2"
    template.write_text(PROVISIONER_TEMPLATE)
    check_k8s_request(request, permissive=False, template=template)


PROVISIONER_TEMPLATE = """\
apiVersion: v1
kind: Pod
metadata:
  name: "{{ kernel_pod_name }}"
  namespace: "{{ kernel_namespace }}"
  labels:
    kernel_id: "{{ kernel_id }}"
spec:
  securityContext: {runAsUser: {{ kernel_uid }}, runAsGroup: {{ kernel_gid }}}
  containers:
  - name: kernel
    image: {{ kernel_image }}
    args: [{{ kernel_username }}]
"""


# ------------------------------------------------------------------------------------------------ findings
def test_finding_template_non_bmp_value(tmp_path: Path) -> None:
    """A value with a character above U+FFFF (an emoji in KERNEL_USERNAME) is written by json.dumps as a
    surrogate-pair escape, which PyYAML decodes into two lone surrogates: the pod's field is not the value
    (and is not valid UTF-8 for anything that encodes it)."""
    values = {"kernel_pod_name": "p", "kernel_namespace": "n", "kernel_id": KERNEL_ID, "kernel_extra": "",
              "kernel_username": "ana\U0001f600", "kernel_image": "i", "kernel_uid": 1000, "kernel_gid": 100}
    check_pod_template(write_pod_template(tmp_path), values)
