"""The launcher's inputs: Gateway Provisioners' arguments, each falling back to its environment variable.

Names, precedence and defaults are the launcher contract's (``kernelfleet.protocol.contract``); the R and
Scala launchers follow the same cases (docs/launcher-vectors.json, tests/test_contract_vectors.py here).

Only what can be checked without the protocol's cryptography is checked here, so the kernel can be
spawned before the slow crypto imports; PUBLIC_KEY is checked when the report is sealed (the
protocol owns that rule). The kernel id is checked here, with the protocol's own pattern, because
it names the kernel's files and log lines from the start.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import logging
import os
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from kernelfleet.protocol import contract as c
from kernelfleet.protocol.address import ResponseAddress
from kernelfleet.protocol.constants import KERNEL_ID_PATTERN
from kernelfleet.protocol.ports import PortRange, PortRangeError

PROG = "kernelfleet-launcher"


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


#: argparse destination -> the contract's input; each is also accepted as --RemoteProcessProxy.<name>.
_OPTIONS = {
    "kernel_id": c.KERNEL_ID_INPUT,
    "response_address": c.RESPONSE_ADDRESS_INPUT,
    "public_key": c.PUBLIC_KEY_INPUT,
    "port_range": c.PORT_RANGE_INPUT,
    "spark_init_mode": c.SPARK_MODE_INPUT,
    "cluster_type": c.CLUSTER_TYPE_INPUT,
    "kernel_class_name": c.KERNEL_CLASS_INPUT,
    "transport_encryption": c.TRANSPORT_ENCRYPTION_INPUT,
}


def _parser() -> _Parser:
    p = _Parser(prog=PROG, description="Start an IPython kernel and report it to a Kernel Fleet server.")
    for dest, spec in _OPTIONS.items():
        # Enterprise Gateway's kernelspecs spell each option --RemoteProcessProxy.<name>.
        option = str(spec.option)
        p.add_argument(option, c.LEGACY_OPTION_PREFIX + option.removeprefix("--"), dest=dest)
    return p


def _required(value: str | None, spec: c.LauncherInput) -> str:
    if value is None:
        raise ConfigError(c.missing_message(spec))
    return value


def _choice(value: str | None, default: str, choices: Sequence[str], spec: c.LauncherInput) -> str:
    if value is None:
        return default
    lowered = value.lower()
    if lowered not in choices:
        raise ConfigError(c.choice_message(spec, tuple(choices), value))
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
    ip = value or c.KERNEL_IP_INPUT.default or "0.0.0.0"
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
            data = token_file.read(c.MAX_TOKEN_FILE_BYTES + 1)
    except OSError as err:
        raise ConfigError(f"LAUNCH_TOKEN_FILE {path!r} cannot be read: {err.strerror or err}") from None
    with contextlib.suppress(OSError):
        os.unlink(path)
    if len(data) > c.MAX_TOKEN_FILE_BYTES:
        raise ConfigError(
            f"LAUNCH_TOKEN_FILE {path!r} is larger than {c.MAX_TOKEN_FILE_BYTES} bytes: not a token file"
        )
    token = data.decode("ascii", errors="replace").strip()
    if not token:
        raise ConfigError(f"LAUNCH_TOKEN_FILE {path!r} is empty")
    return token


def _launch_token(env: Mapping[str, str]) -> str:
    """LAUNCH_TOKEN from the environment, else from the file LAUNCH_TOKEN_FILE names; never from argv."""
    token = env.get(c.LAUNCH_TOKEN, "").strip()
    if token:
        return token
    path = env.get(c.LAUNCH_TOKEN_FILE, "").strip()
    if path:
        return read_token_file(path)
    raise ConfigError(c.MISSING_TOKEN_MESSAGE)


def load_config(argv: Sequence[str], env: Mapping[str, str]) -> LauncherConfig:
    """Build the configuration or raise ConfigError with a one-line, secret-free message.

    Every value is read by the contract's rule (``contract.pick``: option, then variable, then its ``EG_`` name).
    """
    args = _parser().parse_args(list(argv))

    def pick(dest: str) -> str | None:
        return c.pick(getattr(args, dest), env, _OPTIONS[dest])

    kernel_id = _required(pick("kernel_id"), c.KERNEL_ID_INPUT)
    if not KERNEL_ID_PATTERN.match(kernel_id):
        raise ConfigError(
            f"{c.KERNEL_ID_INPUT.label} {kernel_id[:140]!r} must be 1-128 characters of [A-Za-z0-9._-], "
            "starting with a letter or digit"
        )
    try:
        response_address = ResponseAddress.parse(_required(pick("response_address"), c.RESPONSE_ADDRESS_INPUT))
    except ValueError as err:
        raise ConfigError(str(err)) from None
    public_key = _required(pick("public_key"), c.PUBLIC_KEY_INPUT)
    token = _launch_token(env)
    try:
        port_range = PortRange.parse(pick("port_range"))
    except PortRangeError as err:
        raise ConfigError(f"{c.PORT_RANGE_INPUT.label}: {err}") from None
    spark_mode = _choice(pick("spark_init_mode"), "none", c.SPARK_INIT_MODES, c.SPARK_MODE_INPUT)
    cluster_type = _choice(
        pick("cluster_type"), "spark" if spark_mode != "none" else "none", c.CLUSTER_TYPES, c.CLUSTER_TYPE_INPUT
    )
    encryption = _choice(
        pick("transport_encryption"), "disabled", c.TRANSPORT_ENCRYPTION_POLICIES, c.TRANSPORT_ENCRYPTION_INPUT
    )
    class_name = _class_name(pick("kernel_class_name") or c.DEFAULT_KERNEL_CLASS)
    return LauncherConfig(
        kernel_id=kernel_id,
        response_address=response_address,
        public_key=public_key,
        launch_token=token,
        port_range=port_range,
        spark_init_mode=spark_mode,
        cluster_type=cluster_type,
        kernel_class_name=class_name,
        kernel_ip=_kernel_ip(c.pick(None, env, c.KERNEL_IP_INPUT)),
        log_level=_log_level(c.pick(None, env, c.LOG_LEVEL_INPUT)),
        transport_encryption=encryption,
    )


def claimed_config(
    config: LauncherConfig, *, kernel_id: str, token: str, port_range: str, env: Mapping[str, str]
) -> LauncherConfig:
    """A standby's configuration (standby.py) with its claim's launch inputs, read by the rules of a cold launch:
    the kernel id, token and port range are the claim's; ``KERNEL_IP`` and ``TRANSPORT_ENCRYPTION`` the claim's
    environment's when it sets them."""
    if not KERNEL_ID_PATTERN.match(kernel_id):
        raise ConfigError(f"{c.KERNEL_ID_INPUT.label}: the claim's kernel id is not valid")
    try:
        ports = PortRange.parse(port_range)
    except PortRangeError as err:
        raise ConfigError(f"{c.PORT_RANGE_INPUT.label}: {err}") from None
    encryption = _choice(c.pick(None, env, c.TRANSPORT_ENCRYPTION_INPUT), config.transport_encryption,
                         c.TRANSPORT_ENCRYPTION_POLICIES, c.TRANSPORT_ENCRYPTION_INPUT)
    kernel_ip = _kernel_ip(c.pick(None, env, c.KERNEL_IP_INPUT) or config.kernel_ip)
    return dataclasses.replace(config, kernel_id=kernel_id, launch_token=token, port_range=ports,
                               transport_encryption=encryption, kernel_ip=kernel_ip)
