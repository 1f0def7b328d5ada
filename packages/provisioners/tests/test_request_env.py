"""The request-variable policy table (request_env): its validators, the operator-only rule, and docs/protocol.md."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from kernelfleet.provisioners.kernel_env import KernelEnvError
from kernelfleet.provisioners.request_env import (
    OPERATOR_ONLY,
    REQUEST_VARIABLES,
    Engine,
    OperatorOnlyError,
    check_request_env,
    request_variables,
)

KID = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
PROTOCOL_MD = Path(__file__).parents[3] / "docs" / "protocol.md"
CODE_SELECTING = {"KERNEL_PYTHON", "KERNEL_LAUNCHERS_DIR", "KERNEL_LANGUAGE", "KERNEL_CLASS_NAME",
                  "KERNEL_SPARK_CONTEXT_INIT_MODE", "KERNEL_CLUSTER_TYPE", "KERNEL_DRIVER_JAVA_OPTS",
                  "KERNEL_SPARKAPP_CONFIG_MAP"}


def check(env: dict[str, str], engine: Engine | None = Engine.SSH, *, spec: dict[str, str] | None = None,
          server: dict[str, str] | None = None) -> None:
    check_request_env(KID, env, engine=engine, operator_env=spec or {}, server_env=server or {})


def test_every_name_the_bootstrap_and_launchers_use_to_choose_code_is_operator_only() -> None:
    assert set(OPERATOR_ONLY) == CODE_SELECTING
    assert not CODE_SELECTING & {v.name for v in REQUEST_VARIABLES}


@pytest.mark.parametrize("name", sorted(CODE_SELECTING))
@pytest.mark.parametrize("engine", [*Engine, None])
def test_operator_only_name_from_a_request_is_refused_on_every_engine(name: str, engine: Engine | None) -> None:
    with pytest.raises(OperatorOnlyError) as err:
        check({name: "/tmp/x/evil"}, engine)
    message = str(err.value)
    assert message.startswith(f"Kernel {KID}: the start request sets {name}, which selects ")
    assert "An operator sets it in" in message and "kernel.json" in message
    assert "/tmp/x/evil" not in message


@pytest.mark.parametrize("name", sorted(CODE_SELECTING))
def test_operator_only_name_from_the_kernelspec_or_the_servers_environment_is_accepted(name: str) -> None:
    check({name: "/opt/py/bin/python"}, spec={name: "/opt/py/bin/python"})
    check({name: "/opt/py/bin/python"}, server={name: "/opt/py/bin/python"})
    with pytest.raises(OperatorOnlyError):  # the request replaced the server's value
        check({name: "/tmp/evil"}, server={name: "/opt/py/bin/python"})


@pytest.mark.parametrize(
    ("engine", "env", "fragment"),
    [
        (Engine.SSH, {"KERNEL_USERNAME": "bob;id"}, "KERNEL_USERNAME is not a valid user name"),
        (Engine.SSH, {"KERNEL_LAUNCH_TIMEOUT": "inf"}, "KERNEL_LAUNCH_TIMEOUT='inf' must be a finite number"),
        (Engine.DOCKER, {"KERNEL_LAUNCH_TIMEOUT": "nan"}, "must be a finite number of seconds above 0"),
        (Engine.SWARM, {"KERNEL_LAUNCH_TIMEOUT": "-1"}, "must be a finite number of seconds above 0"),
        (Engine.KUBERNETES, {"KERNEL_LAUNCH_TIMEOUT": "0"}, "must be a finite number of seconds above 0"),
        (Engine.SPARK_OPERATOR, {"KERNEL_LAUNCH_TIMEOUT": "1e999"}, "must be a finite number of seconds above 0"),
        (Engine.SSH, {"KERNEL_LAUNCH_TIMEOUT": "ten"}, "KERNEL_LAUNCH_TIMEOUT='ten' is not a number of seconds"),
        (Engine.DOCKER, {"KERNEL_IP": "example.com"}, "KERNEL_IP='example.com' is not an IP address"),
        (Engine.DOCKER, {"KERNEL_UID": "00"}, "plain decimal"),
        (Engine.SWARM, {"KERNEL_GID": "4294967296"}, "larger than"),
        (Engine.KUBERNETES, {"KERNEL_NAMESPACE": "Kube_System"}, "not a valid Kubernetes name"),
        (Engine.SPARK_OPERATOR, {"KERNEL_SERVICE_ACCOUNT_NAME": "a/b"}, "not a valid Kubernetes name"),
        (Engine.KUBERNETES, {"KERNEL_MEMORY": "1e9"}, "not a resource quantity"),
        (Engine.KUBERNETES, {"KERNEL_VOLUMES": '{"name": "x"}'}, "must be a JSON list of mappings"),
        (Engine.KUBERNETES, {"KERNEL_VOLUME_MOUNTS": "[1, 2]"}, "must be a JSON list of mappings"),
        (Engine.DOCKER, {"KERNEL_ANYTHING": "a\nb"}, "contains a newline"),
        (None, {"KERNEL_ANYTHING": "x" * 5000}, "longer than 4096"),
    ],
)
def test_interpreted_values_of_the_wrong_type_are_refused(engine: Engine | None, env: dict[str, str],
                                                          fragment: str) -> None:
    with pytest.raises(ValueError, match=re.escape(fragment)) as err:
        check(env, engine)
    assert str(err.value).startswith(f"Kernel {KID}: ")


def test_a_name_is_checked_only_by_the_engines_that_read_it() -> None:
    odd = {"KERNEL_NAMESPACE": "Not_A_Label", "KERNEL_UID": "+0", "KERNEL_USERNAME": "Alice Smith (ops)",
           "KERNEL_REMOTE_HOST": "any host"}
    with pytest.raises(KernelEnvError, match="KERNEL_USERNAME"):
        check(odd, Engine.SSH)
    with pytest.raises(ValueError, match="KERNEL_UID"):
        check(odd, Engine.DOCKER)
    check({"KERNEL_NAMESPACE": "Not_A_Label", "KERNEL_USERNAME": "Alice Smith (ops)"}, Engine.DOCKER)
    check({"KERNEL_UID": "+0", "KERNEL_NAMESPACE": "Not_A_Label"}, Engine.SSH)


def test_valid_values_pass_and_empty_means_unset() -> None:
    check({"KERNEL_USERNAME": "alice", "KERNEL_LAUNCH_TIMEOUT": "45.5", "KERNEL_IP": "::1",
           "KERNEL_REMOTE_HOST": "node1", "KERNEL_EXTRA": "plain data: $HOME `x` ;|&"}, Engine.SSH)
    check({"KERNEL_UID": "1000", "KERNEL_GID": "", "KERNEL_NAMESPACE": "team-a", "KERNEL_CPUS": "500m",
           "KERNEL_VOLUMES": '[{"name": "s", "emptyDir": {}}]', "KERNEL_LAUNCH_TIMEOUT": ""}, Engine.KUBERNETES)


def test_engines_interpret_what_their_provisioners_read() -> None:
    ssh, docker, k8s = (set(request_variables(e)) for e in (Engine.SSH, Engine.DOCKER, Engine.KUBERNETES))
    assert ssh == {"KERNEL_USERNAME", "KERNEL_LAUNCH_TIMEOUT", "KERNEL_IP", "KERNEL_REMOTE_HOST",
                   "KERNEL_EXTRA_SPARK_OPTS"}
    assert docker == set(request_variables(Engine.SWARM)) == {
        "KERNEL_USERNAME", "KERNEL_LAUNCH_TIMEOUT", "KERNEL_IP", "KERNEL_WORKING_DIR", "KERNEL_IMAGE", "KERNEL_UID",
        "KERNEL_GID"}
    # spark-submit in cluster mode (a kubernetes-provisioner kernelspec that runs it) reads the request's extra options
    assert k8s - {"KERNEL_EXTRA_SPARK_OPTS"} == set(request_variables(Engine.SPARK_OPERATOR)) and docker < k8s
    assert request_variables(None) == {}


def documented_table() -> dict[str, set[Engine]]:
    """docs/protocol.md's "Who may set which variable" table: name -> engines ticked."""
    text = PROTOCOL_MD.read_text()
    section = text[text.index("### Who may set which variable"):]
    section = section[: section.index("\n\n", section.index("| variable |"))]
    columns = list(Engine)  # the header's order; test_docs_table_matches_the_code checks it
    table: dict[str, set[Engine]] = {}
    for line in section.splitlines():
        if not line.startswith("| `"):
            continue
        cells = [c.strip() for c in line.split("|")[1:-1]]
        for name in re.findall(r"`(KERNEL_[A-Z_]+)`", cells[0]):
            table[name] = {engine for engine, cell in zip(columns, cells[2:7], strict=True) if cell == "✓"}
    return table


def test_docs_table_matches_the_code() -> None:
    header = next(line for line in PROTOCOL_MD.read_text().splitlines() if line.startswith("| variable | type |"))
    assert [c.strip() for c in header.split("|")[3:8]] == [e.value for e in Engine]
    in_code: dict[str, set[Engine]] = {}
    for variable in REQUEST_VARIABLES:
        in_code.setdefault(variable.name, set()).update(variable.engines)
    assert documented_table() == in_code
    text = PROTOCOL_MD.read_text()
    for name in OPERATOR_ONLY:
        assert f"`{name}`" in text[text.index("**Operator-only**"):text.index("**Interpreted**")], name
