"""Property-based fuzzing of what a start request controls: its KERNEL_* variables, through kernel_env and
the Docker and Kubernetes provisioners' request checks (``_settle``, exactly what ``pre_launch`` runs
before any engine is asked for anything), and KERNEL_LAUNCH_TIMEOUT.

Properties: a refusal is ValueError or PermissionError naming the kernel and holding no secret; an accepted
request gives the kernel its values unchanged and single-line, ids and names that follow their documented
grammars (oracles in fuzz_properties, written from the documents), settings a kernelspec did not open to
requests left as configured, and never the launch token in a pod spec. Each validator accepts exactly its
grammar.
"""

from __future__ import annotations

import tracemalloc

import pytest
from fuzz_properties import (
    KERNEL_ID,
    budget,
    check_docker_request,
    check_k8s_request,
    check_kernel_env,
    check_launch_timeout,
    is_dns_label,
    is_dns_subdomain,
    is_plain_id,
    settle,
)
from hypothesis import given
from hypothesis import strategies as st

from kernelfleet.provisioners.container import parse_id
from kernelfleet.provisioners.docker.provisioner import DockerProvisioner
from kernelfleet.provisioners.k8s.names import K8sNameError, check_dns_label, check_dns_subdomain
from kernelfleet.provisioners.k8s.provisioner import KubernetesProvisioner

GRAMMAR = budget(500)
REQUESTS = budget(200)

REQUEST_NAMES = st.sampled_from([
    "KERNEL_UID", "KERNEL_GID", "KERNEL_IMAGE", "KERNEL_WORKING_DIR", "KERNEL_NAMESPACE", "KERNEL_SERVICE_ACCOUNT_NAME",
    "KERNEL_POD_NAME", "KERNEL_USERNAME", "KERNEL_CPUS", "KERNEL_MEMORY", "KERNEL_GPUS", "KERNEL_CPUS_LIMIT",
    "KERNEL_MEMORY_LIMIT", "KERNEL_GPUS_LIMIT", "KERNEL_VOLUMES", "KERNEL_VOLUME_MOUNTS", "KERNEL_EXTRA",
    "KERNEL_ID", "LAUNCH_TOKEN", "PUBLIC_KEY", "PATH",
])
# Values near each grammar's edges as well as anything at all.
near_grammar = st.one_of(
    st.from_regex(r"\A(0|[1-9][0-9]{0,10}|0[0-9]|[+-][0-9]{1,3}| [0-9]+)\Z"),
    st.from_regex(r"\A[a-z0-9.-]{1,70}\Z"),
    st.from_regex(r"\A[0-9]{1,4}(\.[0-9]{1,3})?(m|Mi|Gi|k|e3|E)?\Z"),
    st.from_regex(r"\A/[a-z/._]{0,20}\Z"),
    st.sampled_from(["[]", '[{"name": "v", "emptyDir": {}}]', '[{"name": "v", "hostPath": {"path": "/"}}]',
                     '[{"name": "v", "mountPath": "/data"}]', "default", "kernelfleet/kernel-py:fuzz", "\u0662",
                     "10\n", "a\x00b", "x" * 5000]),
)
request_values = near_grammar | st.text(max_size=60)
requests = st.dictionaries(REQUEST_NAMES, request_values, max_size=6)


@REQUESTS
@given(st.dictionaries(REQUEST_NAMES, request_values | st.integers() | st.none(), max_size=5))
def test_kernel_env_passes_exactly_plain_single_line_strings(request: dict) -> None:
    check_kernel_env(request)


@GRAMMAR
@given(near_grammar | st.text(max_size=14))
def test_ids_accept_exactly_plain_decimals(text: str) -> None:
    try:
        number = parse_id(KERNEL_ID, "KERNEL_UID", text, prohibited={0})
    except PermissionError:
        assert text == "0"
    except ValueError as err:
        assert not is_plain_id(text) and KERNEL_ID in str(err) and "KERNEL_UID" in str(err)
    else:
        assert is_plain_id(text) and str(number) == text


@GRAMMAR
@given(near_grammar | st.text(max_size=70))
def test_kubernetes_names_accept_exactly_dns_names(text: str) -> None:
    for check, oracle in ((check_dns_label, is_dns_label), (check_dns_subdomain, is_dns_subdomain)):
        try:
            assert check(KERNEL_ID, "KERNEL_NAMESPACE", text) == text
        except K8sNameError as err:
            assert not oracle(text) and KERNEL_ID in str(err) and "KERNEL_NAMESPACE" in str(err)
        else:
            assert oracle(text), f"{check.__name__} accepted {text!r}"


@GRAMMAR
@given(st.from_regex(r"\A[+-]?([0-9]{1,4}(\.[0-9]*)?|inf|nan|1e[0-9]{1,3}|0x1)\Z") | st.text(max_size=12))
def test_launch_timeout_is_finite_or_refused(text: str) -> None:
    check_launch_timeout(text)


@REQUESTS
@given(requests, st.booleans())
def test_docker_requests(request: dict[str, str], permissive: bool) -> None:
    check_docker_request(request, permissive=permissive)


@REQUESTS
@given(requests, st.booleans())
def test_kubernetes_requests(request: dict[str, str], permissive: bool) -> None:
    check_k8s_request(request, permissive=permissive)


# ------------------------------------------------------------------------------------------------ findings
def alias_bomb(levels: int) -> str:
    """A YAML list whose first item is nine-fold nested aliases: a few hundred bytes that mean 9**levels
    items once anything walks them (str() does)."""
    anchors = ["&a0 [x, x, x, x, x, x, x, x, x]"]
    anchors += [f"&a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, levels)]
    return "[[" + ", ".join(anchors) + "]]"


@pytest.mark.parametrize("permissive", [False, True], ids=["volumes-off", "volumes-on"])
@pytest.mark.parametrize("name", ["KERNEL_VOLUMES", "KERNEL_VOLUME_MOUNTS"])
def test_finding_k8s_volumes_yaml_alias_bomb(name: str, permissive: bool) -> None:
    """KERNEL_VOLUMES / KERNEL_VOLUME_MOUNTS are parsed with yaml.safe_load, whose aliases share objects;
    check_volume/check_mount then build their error with str(item)[:80], which expands every alias first.
    A 290-byte request at level 6 costs ~7 MB (level 7: 60 MB; each level nine times more, so a 4 KiB value
    exhausts any server's memory and CPU) even when the kernelspec does not allow client volumes at all (the
    permission check comes after). The refusal also does not name the variable (the rule for bad input).
    Now: refused by permission before parsing when volumes are off, and by the alias-free loader when on."""
    provisioner = KubernetesProvisioner(kernel_id=KERNEL_ID, kernel_spec=None, parent=None, image_name="i:1",
                                        allow_client_volumes=permissive)
    tracemalloc.start()
    try:
        error = settle(provisioner, {name: alias_bomb(6)})
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1_000_000, f"refusing a {len(alias_bomb(6))}-byte {name} took {peak / 1e6:.0f} MB"
    assert error is not None and name in str(error), "the refusal must name the variable"


@pytest.mark.parametrize("permissive", [False, True], ids=["volumes-off", "volumes-on"])
@pytest.mark.parametrize("text", ["[" * 3000, "[" * 20 + "]" * 20, "- " * 2000])
def test_finding_k8s_volumes_deep_nesting(text: str, permissive: bool) -> None:
    """KERNEL_VOLUMES of 3,000 '[' made yaml.safe_load raise RecursionError, which escaped pre_launch
    instead of the documented PodSpecError (whether or not client volumes are allowed)."""
    provisioner = KubernetesProvisioner(kernel_id=KERNEL_ID, kernel_spec=None, parent=None, image_name="i:1",
                                        allow_client_volumes=permissive)
    error = settle(provisioner, {"KERNEL_VOLUMES": text})
    assert error is not None and "KERNEL_VOLUMES" in str(error)
    assert isinstance(error, PermissionError) != permissive, error


@pytest.mark.parametrize("name", ["KERNEL_PYTHON", "KERNEL_LAUNCHERS_DIR"])
def test_finding_request_selects_executables(name: str) -> None:
    """Any KERNEL_* name passes kernel_env, so a request's KERNEL_PYTHON / KERNEL_LAUNCHERS_DIR reached the
    container, where the bootstrap script execs what they name."""
    provisioner = DockerProvisioner(kernel_id=KERNEL_ID, kernel_spec=None, parent=None, image_name="i:1")
    error = settle(provisioner, {name: "/tmp/evil"})
    if error is None:
        assert provisioner.container_env.get(name) != "/tmp/evil", f"the request's {name} reached the kernel"
    else:
        assert name in str(error)


@pytest.mark.parametrize("text", ["inf", "Infinity", "1e400", "1e308"])
def test_finding_launch_timeout_unbounded(text: str) -> None:
    """KERNEL_LAUNCH_TIMEOUT=inf (or 1e400, found by the fuzzer, or 1e308) became the launch's deadline: a
    launch that never reports then holds its host slot, pod or container forever."""
    from kernelfleet.provisioners.ssh.distributed import DistributedProvisioner

    provisioner = DistributedProvisioner(kernel_id=KERNEL_ID, kernel_spec=None, parent=None, launch_timeout=30.0)
    try:
        deadline = provisioner._launch_timeout_for({"KERNEL_LAUNCH_TIMEOUT": text})
    except ValueError as err:
        assert "KERNEL_LAUNCH_TIMEOUT" in str(err)
    else:
        assert deadline <= 3600, f"KERNEL_LAUNCH_TIMEOUT={text} gave a {deadline} s launch deadline"
