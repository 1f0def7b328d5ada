"""The properties Kernel Fleet's fuzzers check, one checker per input surface.

The hypothesis tests (tests/fuzz/test_fuzz_*.py) and the coverage-guided atheris targets (fuzz_atheris.py,
run by the same tests with a bounded budget and by tools/fuzz for long campaigns) call these same checkers,
so a property is written once. A checker returns normally when the property holds and raises otherwise:
an AssertionError for a broken property, or whatever undocumented exception the code under test let out.

Oracles for the grammars (kernel ids, DNS names, ids, port ranges) are written here from the documents
(docs/protocol.md, the README, Kubernetes' naming rules) without the project's own regular expressions, so a
test compares the validator with the rule rather than with itself.
"""

from __future__ import annotations

import base64
import functools
import json
import math
import string
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from Crypto.Cipher import AES, PKCS1_v1_5
from Crypto.PublicKey import RSA
from Crypto.Util.Padding import pad

from kernelfleet.protocol import (
    CommOp,
    CommProtocolError,
    LegacyReportError,
    Report,
    ReportError,
    ServerKey,
    UnknownOpError,
    open_report,
    parse_greeting,
    parse_reply,
    peek_kernel_id,
    seal_report,
    sign_request,
    verify_request,
)
from kernelfleet.protocol.constants import COMM_KEY_BYTES, NONCE_BYTES

# ------------------------------------------------------------------------------------------------ fixtures
KERNEL_ID = "fuzz-kernel-0001"
#: Secrets of the fuzzed launch. None of them may ever appear in an error message.
LAUNCH_TOKEN = "fuzz-launch-token-9f3c1e"
CONNECTION_KEY = "fuzz-hmac-key-5b7d20"
COMM_KEY = bytes(range(100, 100 + COMM_KEY_BYTES))
NONCE = bytes(range(200, 200 + NONCE_BYTES))
SECRETS = (LAUNCH_TOKEN, CONNECTION_KEY, base64.b64encode(COMM_KEY).decode(), COMM_KEY.hex())
PORT_FIELDS = ("shell_port", "iopub_port", "stdin_port", "control_port", "hb_port", "comm_port")


@functools.cache
def server_key() -> ServerKey:
    """One 2048-bit key per process: the protocol minimum, and the cheapest RSA the opener accepts."""
    return ServerKey.generate(2048)


def expected_token(kernel_id: str) -> str | None:
    return LAUNCH_TOKEN if kernel_id == KERNEL_ID else None


def assert_no_secret(message: str) -> None:
    for secret in SECRETS:
        assert secret not in message, f"a secret reached an error message: {message[:200]!r}"


def valid_connection_info(**changes: Any) -> dict[str, Any]:
    """What a launcher seals: ports, the kernel's HMAC key, the comm key and the launch token."""
    info: dict[str, Any] = {
        "shell_port": 50001, "iopub_port": 50002, "stdin_port": 50003, "control_port": 50004, "hb_port": 50005,
        "comm_port": 50006, "ip": "127.0.0.1", "transport": "tcp", "signature_scheme": "hmac-sha256",
        "kernel_name": "", "key": CONNECTION_KEY, "comm_key": base64.b64encode(COMM_KEY).decode(),
        "launch_token": LAUNCH_TOKEN, "pid": 4242, "pgid": 4242,
    }
    info.update(changes)
    return info


# ------------------------------------------------------------------------------------------------ grammars
KERNEL_ID_FIRST = frozenset(string.ascii_letters + string.digits)
KERNEL_ID_REST = KERNEL_ID_FIRST | frozenset("._-")


def is_protocol_kernel_id(text: str) -> bool:
    """docs/protocol.md: 1-128 characters of [A-Za-z0-9._-], starting with a letter or digit."""
    return 1 <= len(text) <= 128 and text[0] in KERNEL_ID_FIRST and all(ch in KERNEL_ID_REST for ch in text)


DNS_CHARS = frozenset(string.ascii_lowercase + string.digits + "-")
DNS_ENDS = frozenset(string.ascii_lowercase + string.digits)


def is_dns_label(text: str) -> bool:
    """Kubernetes' DNS-1123 label: at most 63 of [a-z0-9-], starting and ending alphanumeric."""
    return (1 <= len(text) <= 63 and all(ch in DNS_CHARS for ch in text)
            and text[0] in DNS_ENDS and text[-1] in DNS_ENDS)


def is_dns_subdomain(text: str) -> bool:
    """Kubernetes' DNS-1123 subdomain: at most 253 characters, dot-separated DNS labels."""
    return 1 <= len(text) <= 253 and all(is_dns_label(part) for part in text.split("."))


def is_plain_id(text: str) -> bool:
    """KERNEL_UID / KERNEL_GID: a plain decimal 0..2**32-1, no sign, no leading zero, ASCII digits only."""
    return (1 <= len(text) <= 10 and all(ch in string.digits for ch in text)
            and (text == "0" or text[0] != "0") and int(text) <= 2**32 - 1)


def is_port_range(text: str, min_size: int) -> bool:
    """docs/protocol.md section 5: 'lower..upper', each end 1-5 ASCII digits, 1024 <= lower <= upper <= 65535
    and >= min_size ports, or 0..0 (or nothing). Blanks (space, tab, CR, LF) around the whole value are ignored."""
    body = text.strip(" \t\r\n")
    if body in ("", "0..0"):
        return True
    lower, sep, upper = body.partition("..")
    if not sep or not all(0 < len(part) <= 5 and all(ch in string.digits for ch in part) for part in (lower, upper)):
        return False
    return 1024 <= int(lower) <= int(upper) <= 65535 and int(upper) - int(lower) + 1 >= min_size


def nested(value: Any, shape: Sequence[bool]) -> Any:
    """``value`` wrapped once per entry of ``shape``, in a list (True) or a one-key object (False): JSON deeper
    than the protocol's bound (16 levels) for the report and comm fuzzers."""
    for in_list in shape:
        value = [value] if in_list else {"k": value}
    return value


# ------------------------------------------------------------------------------------------------ reports
def check_report_line(line: bytes, *, accept_v1: bool = False) -> Report | None:
    """Any bytes on the response port: peek_kernel_id gives None or a grammatical id; open_report gives a
    Report for the pending kernel or a ReportError whose message holds no secret. Nothing else escapes."""
    claimed = peek_kernel_id(line)
    assert claimed is None or is_protocol_kernel_id(claimed), f"peek_kernel_id accepted {claimed!r}"
    try:
        report = open_report(line, server_key(), expected_token=expected_token, accept_v1=accept_v1)
    except LegacyReportError as err:
        assert not accept_v1, "a v1 report was refused while v1 reports are accepted"
        # docs/protocol.md section 6: refused unread (naming its kernel would cost an RSA operation per line),
        # with the switch that accepts old images.
        assert err.kernel_id is None and "accept_v1_reports" in str(err), "a v1 refusal must be unread"
        assert_no_secret(str(err))
        return None
    except ReportError as err:
        assert err.kernel_id is None or is_protocol_kernel_id(err.kernel_id), err.kernel_id
        assert_no_secret(str(err))
        return None
    assert report.kernel_id == KERNEL_ID, "a report was accepted for a kernel nobody is launching"
    for name in PORT_FIELDS:
        port = report.comm_port if name == "comm_port" else report.connection_info[name]
        assert type(port) is int and 0 < port < 65536, f"{name}={port!r} accepted"
    assert isinstance(report.connection_info["key"], bytes)
    assert report.version == 1 or (report.comm_key is not None and len(report.comm_key) == COMM_KEY_BYTES)
    assert report.pid is None or type(report.pid) is int
    return report


def report_fields(line: bytes) -> dict[str, Any]:
    """A v2 report line as the opener understands it: JSON values with the base64 fields decoded."""
    envelope = json.loads(line.strip())  # the opener ignores blanks around the line, bytes.strip() blanks included
    return {k: base64.b64decode(v) if k in ("key", "iv", "ciphertext", "mac") else v for k, v in envelope.items()}


@functools.cache
def sealed_report() -> bytes:
    return seal_report(valid_connection_info(), kernel_id=KERNEL_ID, public_key_b64=server_key().public_key_b64)


def check_report_mutation(position: int, value: int) -> None:
    """A valid sealed report with one byte replaced is refused, unless the change cannot alter what the opener
    reads (blanks around the line, the unused low bits of a base64 quantum): then it means the very same report."""
    line = sealed_report()
    position %= len(line)
    mutated = line[:position] + bytes([value % 256]) + line[position + 1:]
    if mutated == line:
        return
    report = check_report_line(mutated)
    if report is not None:
        assert report_fields(mutated) == report_fields(line), f"byte {position} -> {value}: a changed report opened"


def check_sealed_info(info: dict[str, Any]) -> None:
    """Whatever the (authenticated) launcher seals, the opener answers with a Report or a ReportError."""
    try:
        line = seal_report(info, kernel_id=KERNEL_ID, public_key_b64=server_key().public_key_b64)
    except (TypeError, ValueError):
        return  # not JSON-serialisable: a launcher cannot send it
    report = check_report_line(line)
    if report is not None and "kernel_id" in info:
        assert info["kernel_id"] == KERNEL_ID


LEGACY_AES_KEY = b"fuzz-v1-aes-key!"


@functools.cache
def legacy_wrapped_key() -> bytes:
    """The v1 key block, made once: GP's launchers wrap their AES key with RSA PKCS#1 v1.5."""
    public = RSA.import_key(base64.b64decode(server_key().public_key_b64))
    return PKCS1_v1_5.new(public).encrypt(LEGACY_AES_KEY)


def legacy_report(info: Mapping[str, Any]) -> bytes:
    """A Gateway Provisioners v1 payload, made as its launchers make it, for the fuzzed connection info."""
    wrapped = legacy_wrapped_key()
    body = AES.new(LEGACY_AES_KEY, AES.MODE_ECB).encrypt(pad(json.dumps(info).encode(), 16))
    envelope = {"version": 1, "key": base64.b64encode(wrapped).decode(), "conn_info": base64.b64encode(body).decode()}
    return base64.b64encode(json.dumps(envelope).encode())


def check_legacy_info(info: dict[str, Any]) -> None:
    """A v1 payload (anyone holding the public key can make one): refused unread, naming the switch, when v1 is
    off, and only ever a Report or a ReportError when it is on."""
    try:
        line = legacy_report(info)
    except (TypeError, ValueError):
        return
    check_report_line(line, accept_v1=False)
    check_report_line(line, accept_v1=True)


# ------------------------------------------------------------------------------------------------ comm port
def check_comm_line(line: bytes) -> None:
    """Any bytes read from a comm connection: every parser answers with its result or CommProtocolError."""
    for parse in (parse_greeting, parse_reply, lambda data: verify_request(COMM_KEY, NONCE, data)):
        try:
            parse(line)
        except CommProtocolError as err:
            assert_no_secret(str(err))


def check_signed_request(body: Any) -> None:
    """A request MACed with the comm key whatever its body: an op of CommOp with its parameters, or
    UnknownOpError. The MAC is bound to the nonce: the same line never verifies for another connection."""
    request = json.dumps(body, separators=(",", ":"))
    line = comm_line(request)
    try:
        op, params = verify_request(COMM_KEY, NONCE, line)
    except UnknownOpError as err:
        assert_no_secret(str(err))
    else:
        assert isinstance(op, CommOp) and isinstance(params, dict) and "op" not in params
    other_nonce = bytes(reversed(NONCE))
    try:
        verify_request(COMM_KEY, other_nonce, line)
    except UnknownOpError:
        raise AssertionError("a request verified for a nonce it was not signed for") from None
    except CommProtocolError:
        pass
    else:
        raise AssertionError("a request verified for a nonce it was not signed for")


def comm_line(request: str, nonce: bytes = NONCE) -> bytes:
    """The line a server sends for ``request`` (a JSON text) on the connection with ``nonce``."""
    from kernelfleet.protocol.comm import comm_mac

    mac = comm_mac(COMM_KEY, nonce, request.encode("utf-8"))
    return json.dumps({"request": request, "mac": base64.b64encode(mac).decode()}).encode() + b"\n"


def signed(op: CommOp, nonce: bytes, **params: Any) -> bytes:
    return sign_request(COMM_KEY, nonce, op, **params)


# ------------------------------------------------------------------------------------------------ KERNEL_* values
#: What provisioners document for a refused request: ValueError (names, quantities, ids, env values: their
#: Kernel Fleet subclasses) and PermissionError (a setting the kernelspec does not let requests choose).
REQUEST_ERRORS: tuple[type[BaseException], ...] = (ValueError, PermissionError)


def refused(call: Callable[[], Any], *, kernel_id: str = KERNEL_ID) -> BaseException | None:
    """Run a validator on request input: it succeeds (None) or raises a documented error naming the kernel and
    holding no secret (returned). Any other exception is a finding and propagates."""
    try:
        call()
    except REQUEST_ERRORS as err:
        message = str(err)
        assert kernel_id in message, f"a refusal does not name the kernel: {message[:200]!r}"
        assert_no_secret(message)
        return err
    return None


PUBLIC_KEY_TEXT = "fuzz-public-key"
#: Values the server sets itself: a request's value for these never reaches the kernel as sent.
SERVER_SET = frozenset({
    "KERNEL_ID", "KERNEL_LANGUAGE", "KERNEL_UID", "KERNEL_GID", "KERNEL_IMAGE", "KERNEL_POD_NAME", "KERNEL_NAMESPACE",
    "KERNEL_SERVICE_ACCOUNT_NAME", "KERNEL_USERNAME",
})
IMAGE = "kernelfleet/kernel-py:fuzz"


def launch_env() -> dict[str, str]:
    """What ``RemoteProvisionerBase.pre_launch`` puts into every launch (values of this fuzzed launch)."""
    return {"KERNEL_ID": KERNEL_ID, "KERNEL_LANGUAGE": "python", "RESPONSE_ADDRESS": "10.1.2.3:8877",
            "PUBLIC_KEY": PUBLIC_KEY_TEXT, "PORT_RANGE": "0..0", "LAUNCH_TOKEN": LAUNCH_TOKEN}


def settle(provisioner: Any, request: Mapping[str, str]) -> BaseException | None:
    """Run a container provisioner's request checks exactly as ``pre_launch`` orders them: ``check_request_env``
    on the request (no kernelspec env, nothing from the server's environment), then the provisioner's own checks
    with the server's variables on top (KERNEL_USERNAME as pre_launch sets it)."""
    from kernelfleet.provisioners.request_env import check_request_env

    def checks() -> None:
        check_request_env(KERNEL_ID, request, engine=provisioner.request_engine, operator_env={}, server_env={},
                          closed=provisioner.closed_request_names())
        provisioner.launch_env = launch_env()
        env = {**request, "KERNEL_USERNAME": request.get("KERNEL_USERNAME") or "jovyan", **provisioner.launch_env}
        provisioner._settle(env)

    return refused(checks)


def check_kernel_env(request: Mapping[str, Any]) -> None:
    """kernel_env: a KERNEL_* value reaches the kernel exactly when it is a string of at most 4096 characters
    without NUL, CR or LF, unchanged; the refusal names the kernel and the variable, never the value."""
    from kernelfleet.provisioners.kernel_env import remote_kernel_env

    env = dict(request)
    protocol = launch_env()
    selected: dict[str, str] = {}
    error = refused(lambda: selected.update(remote_kernel_env(KERNEL_ID, env, spec_env_names=(),
                                                              protocol_env=protocol)))
    bad = [name for name, value in env.items() if name.startswith("KERNEL_") and not plain_value(value)]
    if error is not None:
        assert bad, f"refused good values: {error}"
        assert any(name in str(error) for name in bad), str(error)
        for name in bad:
            value = env[name]
            assert not (isinstance(value, str) and len(value) >= 8 and value in str(error)), "a value was echoed"
        return
    assert not bad, f"accepted {bad}"
    for name, value in env.items():
        if name in protocol:
            assert selected[name] == protocol[name], f"the request overrode the server's {name}"
        elif name.startswith("KERNEL_"):
            assert selected[name] == value
        else:
            assert name not in selected, f"{name} from the request reached the kernel"


def plain_value(value: Any) -> bool:
    return isinstance(value, str) and len(value) <= 4096 and not any(ch in value for ch in "\x00\r\n")


def check_docker_request(request: Mapping[str, str], *, permissive: bool) -> None:
    """docker-provisioner: a request is refused with a documented error, or becomes a container config whose
    user ids, image, working dir, name and environment are what the rules allow."""
    from kernelfleet.provisioners.docker.provisioner import DockerProvisioner

    provisioner = DockerProvisioner(kernel_id=KERNEL_ID, kernel_spec=None, parent=None, image_name=IMAGE,
                                    allow_client_image=permissive, mirror_working_dirs=permissive)
    if settle(provisioner, request) is not None:
        return
    config = provisioner.container_config()
    for entry in config["Env"]:
        assert not any(ch in entry for ch in "\x00\n\r"), f"multi-line env entry {entry[:80]!r}"
    env = dict(entry.partition("=")[::2] for entry in config["Env"])
    check_ids(request, *config["User"].split(":"))
    if not permissive:
        assert config["Image"] == IMAGE and "WorkingDir" not in config
    if "WorkingDir" in config:
        assert config["WorkingDir"].startswith("/") and "\x00" not in config["WorkingDir"]
    name = provisioner.container_name or ""
    assert 1 < len(name) <= 63 and name[0].isalnum() and all(ch.isascii() and (ch.isalnum() or ch in "_.-")
                                                           for ch in name), name
    check_request_values(request, env)


def check_ids(request: Mapping[str, str], uid: Any, gid: Any) -> None:
    for name, value, default in (("KERNEL_UID", str(uid), "1000"), ("KERNEL_GID", str(gid), "100")):
        assert is_plain_id(value) and value != "0", f"{name}={value!r} reached the kernel"
        if request.get(name):
            assert request[name] == value, f"{name}={request[name]!r} became {value!r}"
        else:
            assert value == default


def check_request_values(request: Mapping[str, str], env: Mapping[str, str]) -> None:
    for name, value in request.items():
        if name.startswith("KERNEL_") and name not in SERVER_SET:
            assert env.get(name) == value, f"{name} reached the kernel as {env.get(name)!r}, not {value!r}"


def check_k8s_request(request: Mapping[str, str], *, permissive: bool, template: Path | None = None) -> None:
    """kubernetes-provisioner: a request is refused with a documented error, or becomes a pod that passes the
    policy, whose names are DNS names, whose ids and resources follow their grammars, whose env holds the
    request's values unchanged and which never holds the launch token as a value."""
    from kernelfleet.provisioners.k8s.provisioner import KubernetesProvisioner
    from kernelfleet.provisioners.spec_values import QUANTITY

    provisioner = KubernetesProvisioner(
        kernel_id=KERNEL_ID, kernel_spec=None, parent=None, image_name=IMAGE, namespace="default",
        shared_namespace=True, service_account_name="default", allow_client_namespace=permissive,
        allow_client_service_account=permissive, allow_client_resources=permissive, allow_client_image=permissive,
        allow_client_volumes=permissive, pod_template=str(template or ""),
    )
    if settle(provisioner, request) is not None:
        return
    pod = provisioner.manifest
    assert pod is not None and LAUNCH_TOKEN not in json.dumps(pod), "the launch token is in the pod spec"
    meta, spec = pod["metadata"], pod["spec"]
    assert is_dns_label(meta["name"]) and is_dns_label(meta["namespace"]), (meta["name"], meta["namespace"])
    assert is_dns_subdomain(spec.get("serviceAccountName", "default"))
    if not permissive:
        assert meta["namespace"] == "default" and spec.get("serviceAccountName", "default") == "default"
        assert not spec.get("volumes")
    container = spec["containers"][0]
    security = spec.get("securityContext") or {}
    check_ids(request, security.get("runAsUser"), security.get("runAsGroup"))
    for section in (container.get("resources") or {}).values():
        for amount in section.values():
            assert QUANTITY.fullmatch(amount) and amount.isascii(), amount
    env = {entry["name"]: entry.get("value") for entry in container.get("env") or []}
    check_request_values(request, env)


# ------------------------------------------------------------------------------------------------ pod templates
#: A kernelspec template as Gateway Provisioners wrote them: values quoted, unquoted, in flow collections.
POD_TEMPLATE = """\
apiVersion: v1
kind: Pod
metadata:
  name: "{{ kernel_pod_name }}"
  namespace: '{{ kernel_namespace }}'
  labels:
    kernel_id: "{{ kernel_id }}"
  annotations:
    user: {{ kernel_username }}
    extra: {{ kernel_extra }}
spec:
  securityContext: {runAsUser: {{ kernel_uid }}, runAsGroup: {{ kernel_gid }}}
  containers:
  - name: kernel
    image: "{{ kernel_image }}"
    args: [{{ kernel_extra }}, "--fixed"]
    env:
    - name: KERNEL_USERNAME
      value: "{{ kernel_username }}"
{% if kernel_extra %}
    - name: KERNEL_EXTRA
      value: {{ kernel_extra }}
{% endif %}
"""


def expected_pod(values: Mapping[str, Any]) -> dict[str, Any]:
    """POD_TEMPLATE's document, built directly: each value verbatim in its one field."""
    env = [{"name": "KERNEL_USERNAME", "value": values["kernel_username"]}]
    if values["kernel_extra"]:
        env.append({"name": "KERNEL_EXTRA", "value": values["kernel_extra"]})
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": values["kernel_pod_name"], "namespace": values["kernel_namespace"],
                     "labels": {"kernel_id": values["kernel_id"]},
                     "annotations": {"user": values["kernel_username"], "extra": values["kernel_extra"]}},
        "spec": {"securityContext": {"runAsUser": values["kernel_uid"], "runAsGroup": values["kernel_gid"]},
                 "containers": [{"name": "kernel", "image": values["kernel_image"],
                                 "args": [values["kernel_extra"], "--fixed"], "env": env}]},
    }


def check_pod_template(path: Path, values: Mapping[str, Any]) -> None:
    """Rendering can never change the document's shape: every value lands verbatim in its own field."""
    from kernelfleet.provisioners.k8s.template import render_pod_template

    assert render_pod_template(KERNEL_ID, path, values) == expected_pod(values)


# ------------------------------------------------------------------------------------------------ CLI inputs
def check_kernel_name(name: str) -> None:
    """--kernel-name: GP's normalisation (strip, spaces to '_', lower case), then one directory name of
    [a-z0-9._-] that stays inside the kernels directory (so neither '.' nor '..')."""
    from kernelfleet.provisioners.cli.kernelspec import SpecError, normalise_kernel_name

    normalised = name.strip().replace(" ", "_").lower()
    allowed = set(string.ascii_lowercase + string.digits + "._-")
    good = bool(normalised) and set(normalised) <= allowed and normalised not in (".", "..")
    try:
        result = normalise_kernel_name(name)
    except SpecError as err:
        assert not good, f"refused {name!r}: {err}"
        return
    assert good, f"accepted kernel name {name!r} as {result!r}"
    assert result == normalised


def check_port_range(text: str, min_size: int = 1000) -> None:
    """--port-range / port_range: everything the README's grammar allows is accepted as written; whatever is
    accepted comes back in the canonical form inside the bounds; anything else is PortRangeError."""
    from kernelfleet.protocol import PortRange, PortRangeError

    try:
        parsed = PortRange.parse(text, min_size=min_size)
    except PortRangeError as err:
        assert not is_port_range(text, min_size), f"refused {text!r}: {err}"
        return
    canonical = str(parsed)
    assert is_port_range(canonical, min_size), f"{text!r} parsed to {canonical!r}"
    if is_port_range(text, min_size) and not parsed.unrestricted:
        lower, _, upper = text.strip(" \t\r\n").partition("..")
        assert (parsed.lower, parsed.upper) == (int(lower), int(upper))


def write_pod_template(directory: Path) -> Path:
    path = directory / "kernel-pod.yaml.j2"
    path.write_text(POD_TEMPLATE)
    return path


# ------------------------------------------------------------------------------------------------ launch timeout
def check_launch_timeout(text: str) -> None:
    """KERNEL_LAUNCH_TIMEOUT: a finite positive number of seconds is the launch's deadline, lowered to the
    operator's max_launch_timeout; anything else (words, inf, nan, 0, negatives) is refused with an error naming
    the kernel and the variable."""
    from kernelfleet.provisioners.ssh.distributed import DistributedProvisioner

    provisioner = DistributedProvisioner(kernel_id=KERNEL_ID, kernel_spec=None, parent=None, launch_timeout=30.0)
    chosen: list[float] = []
    error = refused(lambda: chosen.append(provisioner._launch_timeout_for({"KERNEL_LAUNCH_TIMEOUT": text})))
    if error is not None:
        assert "KERNEL_LAUNCH_TIMEOUT" in str(error)
        return
    deadline = chosen[0]
    assert math.isfinite(deadline) and 0 < deadline <= provisioner.max_launch_timeout, (
        f"KERNEL_LAUNCH_TIMEOUT={text!r} gave a {deadline} s deadline")


# ------------------------------------------------------------------------------------------------ hypothesis
def budget(examples: int) -> Any:
    """The settings of every hypothesis fuzz test: a fixed number of examples, derandomized so a CI run is
    reproducible, no example database, no per-example deadline (the machine is shared and slow inputs are the
    code's cost, not the test's). The 10,000-case budgets per target are the atheris runs'."""
    from hypothesis import HealthCheck, settings

    return settings(max_examples=examples, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
