"""The launcher's inputs: Gateway Provisioners' arguments, each falling back to its environment variable.

Only what can be checked without the protocol's cryptography is checked here, so the kernel can be
spawned before the slow crypto imports; PUBLIC_KEY is checked when the report is sealed (the
protocol owns that rule). The kernel id is checked here, with the protocol's own pattern, because
it names the kernel's files and log lines from the start.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from kernelfleet.protocol.address import ResponseAddress
from kernelfleet.protocol.constants import KERNEL_ID_PATTERN
from kernelfleet.protocol.ports import PortRange, PortRangeError

DEFAULT_KERNEL_CLASS = "ipykernel.ipkernel.IPythonKernel"
SPARK_INIT_MODES = ("none", "lazy", "eager")
CLUSTER_TYPES = ("spark", "dask", "none")
# The server's jupyter_client policy; an empty value (GP's placeholder when encryption is off) means disabled.
TRANSPORT_ENCRYPTION_POLICIES = ("disabled", "auto", "required")
PROG = "kernelfleet-launcher"
MAX_TOKEN_FILE_BYTES = 4096  # a token is 43 characters; anything much larger is not a token file


class ConfigError(ValueError):
    """Missing or invalid input; the message names the argument and variable, never a secret's value."""


@dataclass(frozen=True)
class LauncherConfig:
    """Everything the supervisor needs. Secrets are kept out of repr so a stray log line cannot leak them."""

    kernel_id: str
    response_address: ResponseAddress
    public_key: str = field(repr=False)
    launch_token: str = field(repr=False)
    port_range: PortRange
    spark_init_mode: str
    cluster_type: str
    kernel_class_name: str
    kernel_ip: str
    log_level: int
    transport_encryption: str = "disabled"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        # argparse prints usage plus the error; the launcher promises one line. Unrecognized arguments
        # are named without their values: someone may have put a secret on the command line.
        prefix = "unrecognized arguments:"
        if message.startswith(prefix):
            names = [a.split("=", 1)[0] for a in message[len(prefix) :].split() if a.startswith("-")]
            message = f"{prefix} {' '.join(names) or '(positional values)'} (values not shown)"
        raise ConfigError(message)


def _parser() -> _Parser:
    p = _Parser(prog=PROG, description="Start an IPython kernel and report it to a Kernel Fleet server.")
    p.add_argument("--kernel-id", dest="kernel_id")
    p.add_argument("--response-address", dest="response_address")
    p.add_argument("--public-key", dest="public_key")
    p.add_argument("--port-range", dest="port_range")
    p.add_argument("--spark-context-initialization-mode", dest="spark_init_mode")
    p.add_argument("--cluster-type", dest="cluster_type")
    p.add_argument("--kernel-class-name", dest="kernel_class_name")
    p.add_argument("--transport-encryption", dest="transport_encryption")
    return p


def _pick(arg: str | None, env: Mapping[str, str], *names: str) -> str | None:
    """The argument if given, else the first non-empty variable; unfilled ``{placeholders}`` count as unset."""
    candidates = [arg, *(env.get(n) for n in names)]
    for value in candidates:
        if value is None:
            continue
        value = value.strip()
        if value and not (value.startswith("{") and value.endswith("}")):
            return value
    return None


def _required(value: str | None, option: str, var: str) -> str:
    if value is None:
        raise ConfigError(f"{var} is required (give {option} or set the {var} environment variable)")
    return value


def _choice(value: str | None, default: str, choices: Sequence[str], option: str, var: str) -> str:
    if value is None:
        return default
    lowered = value.lower()
    if lowered not in choices:
        raise ConfigError(f"{option} / {var} must be one of {', '.join(choices)}, not {value!r}")
    return lowered


def _log_level(value: str | None) -> int:
    if value is None:
        return logging.INFO
    if value.isdigit():
        return int(value)
    level = logging.getLevelName(value.upper())
    if not isinstance(level, int):
        raise ConfigError(f"LOG_LEVEL must be a level name such as INFO or DEBUG, or a number, not {value!r}")
    return level


def _kernel_ip(value: str | None) -> str:
    ip = value or "0.0.0.0"
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, ip)
            return ip
        except OSError:
            continue
    raise ConfigError(f"KERNEL_IP must be an IPv4 or IPv6 address, not {ip!r}")


def _class_name(value: str) -> str:
    parts = value.split(".")
    if len(parts) < 2 or not all(part.isidentifier() for part in parts):
        raise ConfigError(
            f"--kernel-class-name / KERNEL_CLASS_NAME must be a dotted 'module.Class' path, not {value!r}"
        )
    return value


def read_token_file(path: str) -> str:
    """The launch token from ``LAUNCH_TOKEN_FILE``, then the file removed where that is possible.

    Container provisioners deliver the token as a file so that it is in no object the engine
    shows (``docker inspect``, service specs) and in no process environment. A plain container's
    file is the launcher's own and goes at once; a Swarm secret is mounted read-only and stays
    until the service is removed (the token is void once the report is accepted).
    """
    try:
        with open(path, "rb") as token_file:
            data = token_file.read(MAX_TOKEN_FILE_BYTES + 1)
    except OSError as err:
        raise ConfigError(f"LAUNCH_TOKEN_FILE {path!r} cannot be read: {err.strerror or err}") from None
    with contextlib.suppress(OSError):
        os.unlink(path)
    if len(data) > MAX_TOKEN_FILE_BYTES:
        raise ConfigError(f"LAUNCH_TOKEN_FILE {path!r} is larger than {MAX_TOKEN_FILE_BYTES} bytes: not a token file")
    token = data.decode("ascii", errors="replace").strip()
    if not token:
        raise ConfigError(f"LAUNCH_TOKEN_FILE {path!r} is empty")
    return token


def _launch_token(env: Mapping[str, str]) -> str:
    """LAUNCH_TOKEN from the environment, else from the file LAUNCH_TOKEN_FILE names; never from argv."""
    token = env.get("LAUNCH_TOKEN", "").strip()
    if token:
        return token
    path = env.get("LAUNCH_TOKEN_FILE", "").strip()
    if path:
        return read_token_file(path)
    raise ConfigError(
        "LAUNCH_TOKEN is required in the environment, or LAUNCH_TOKEN_FILE naming a file that holds it "
        "(the server sets one of them; the token is never taken from the command line)"
    )


def load_config(argv: Sequence[str], env: Mapping[str, str]) -> LauncherConfig:
    """Build the configuration or raise ConfigError with a one-line, secret-free message."""
    args = _parser().parse_args(list(argv))
    kernel_id = _required(_pick(args.kernel_id, env, "KERNEL_ID"), "--kernel-id", "KERNEL_ID")
    if not KERNEL_ID_PATTERN.match(kernel_id):
        raise ConfigError(
            f"--kernel-id / KERNEL_ID {kernel_id[:140]!r} must be 1-128 characters of [A-Za-z0-9._-], "
            "starting with a letter or digit"
        )
    address_text = _required(
        _pick(args.response_address, env, "RESPONSE_ADDRESS", "EG_RESPONSE_ADDRESS"),
        "--response-address",
        "RESPONSE_ADDRESS",
    )
    try:
        response_address = ResponseAddress.parse(address_text)
    except ValueError as err:
        raise ConfigError(str(err)) from None
    public_key = _required(_pick(args.public_key, env, "PUBLIC_KEY", "EG_PUBLIC_KEY"), "--public-key", "PUBLIC_KEY")
    token = _launch_token(env)
    try:
        port_range = PortRange.parse(_pick(args.port_range, env, "PORT_RANGE", "EG_PORT_RANGE"))
    except PortRangeError as err:
        raise ConfigError(f"--port-range / PORT_RANGE: {err}") from None
    spark_mode = _choice(
        _pick(args.spark_init_mode, env, "KERNEL_SPARK_CONTEXT_INIT_MODE"),
        "none",
        SPARK_INIT_MODES,
        "--spark-context-initialization-mode",
        "KERNEL_SPARK_CONTEXT_INIT_MODE",
    )
    cluster_type = _choice(
        _pick(args.cluster_type, env, "KERNEL_CLUSTER_TYPE"),
        "spark" if spark_mode != "none" else "none",
        CLUSTER_TYPES,
        "--cluster-type",
        "KERNEL_CLUSTER_TYPE",
    )
    encryption = _choice(
        _pick(args.transport_encryption, env, "TRANSPORT_ENCRYPTION"),
        "disabled",
        TRANSPORT_ENCRYPTION_POLICIES,
        "--transport-encryption",
        "TRANSPORT_ENCRYPTION",
    )
    class_name = _class_name(_pick(args.kernel_class_name, env, "KERNEL_CLASS_NAME") or DEFAULT_KERNEL_CLASS)
    return LauncherConfig(
        kernel_id=kernel_id,
        response_address=response_address,
        public_key=public_key,
        launch_token=token,
        port_range=port_range,
        spark_init_mode=spark_mode,
        cluster_type=cluster_type,
        kernel_class_name=class_name,
        kernel_ip=_kernel_ip(_pick(None, env, "KERNEL_IP")),
        log_level=_log_level(_pick(None, env, "LOG_LEVEL")),
        transport_encryption=encryption,
    )
