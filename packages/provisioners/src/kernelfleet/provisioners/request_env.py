"""Which ``KERNEL_*`` values a start request may set, per engine, and how each one is checked.

A start request (Enterprise/Kernel Gateway clients, jupyter_server's gateway client) carries
``KERNEL_*`` variables. Gateway Provisioners treated them all alike, so a request could name the
interpreter the image's bootstrap execs (``KERNEL_PYTHON``) or the directory it runs launchers from
(``KERNEL_LAUNCHERS_DIR``). Here every name falls in one of three groups:

* **operator-only** (``OPERATOR_ONLY``): names that choose what runs — an executable, a directory of
  launchers, a module to import, a launcher, JVM options. Only the kernelspec (its ``env``, its argv,
  its ``language``) or the server's own environment may set them; a request that sets one fails the
  launch before anything is started, with the kernel id, the name and where an operator sets it.
* **interpreted** (``REQUEST_VARIABLES``): names an engine's provisioner reads, each with the type it
  must have; a value of the wrong type fails the launch. What the operator allows on top (a
  namespace, an image, a uid) is the provisioner's policy, checked after this.
* **everything else**: plain data for the kernel, passed on after ``check_value`` (one line of text,
  bounded length).

``RemoteProvisionerBase.pre_launch`` calls ``check_request_env`` once per launch; the provisioners
reuse the same validators (``parse_id``, ``positive_seconds``, ``mapping_list``, ...) for their policy.
docs/protocol.md section 2 prints the same table; a test keeps the two equal.
"""

from __future__ import annotations

import enum
import ipaddress
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from kernelfleet.provisioners.kernel_env import KernelEnvError, check_value
from kernelfleet.provisioners.spark_submit import extra_spark_options
from kernelfleet.provisioners.spec_values import check_dns_label, check_dns_subdomain, parse_quantity

MAX_ID = 2**32 - 1
DECIMAL = re.compile(r"0|[1-9][0-9]{0,9}")
USERNAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._@-]{0,63}\Z")


class Engine(enum.Enum):
    """Where a kernel runs; the value is the column heading in docs/protocol.md."""

    SSH = "local/SSH"
    DOCKER = "Docker"
    SWARM = "Swarm"
    KUBERNETES = "Kubernetes"
    SPARK_OPERATOR = "Spark operator"


class OperatorOnlyError(PermissionError):
    """A request set a variable that only the kernelspec or the server's environment may set."""


Validator = Callable[[str, str, str], Any]


# ----------------------------------------------------------------------------------------- validators
def text(kernel_id: str, name: str, value: str) -> str:
    """Any single line of text (``check_value``): the value is data, never code."""
    return check_value(kernel_id, name, value)


def user_name(kernel_id: str, name: str, value: str) -> str:
    """A login-style name: SSH hosts' launch scripts and log file names use it."""
    if not USERNAME.match(value):
        raise KernelEnvError(
            f"Kernel {kernel_id}: {name} is not a valid user name (letters, digits, '.', '_', '@', '-')"
        )
    return value


def positive_seconds(kernel_id: str, name: str, value: str) -> float:
    """A finite, positive number of seconds; ``inf``, ``nan``, ``0``, negatives and words are errors."""
    try:
        seconds = float(value)
    except ValueError:
        raise KernelEnvError(f"Kernel {kernel_id}: {name}={value[:40]!r} is not a number of seconds") from None
    if not math.isfinite(seconds) or seconds <= 0:
        raise KernelEnvError(f"Kernel {kernel_id}: {name}={value[:40]!r} must be a finite number of seconds above 0")
    return seconds


def ip_address(kernel_id: str, name: str, value: str) -> str:
    """An IPv4 or IPv6 address literal (no host names: the launcher binds it as given)."""
    try:
        ipaddress.ip_address(value)
    except ValueError:
        raise KernelEnvError(f"Kernel {kernel_id}: {name}={value[:60]!r} is not an IP address") from None
    return value


def parse_id(kernel_id: str, name: str, value: str, prohibited: Iterable[int] = ()) -> int:
    """A user or group id as a plain decimal, so that spellings such as "00", "+0" or "0x0" cannot mean root."""
    if not DECIMAL.fullmatch(value):
        raise ValueError(
            f"Kernel {kernel_id}: {name}={value[:32]!r} is not a user/group id: use a plain decimal number "
            f"from 0 to {MAX_ID} without sign or leading zeros"
        )
    number = int(value)
    if number > MAX_ID:
        raise ValueError(f"Kernel {kernel_id}: {name}={value!r} is larger than {MAX_ID}")
    if number in set(prohibited):
        raise PermissionError(f"Kernel {kernel_id}: {name}={number} is prohibited for kernels on this server")
    return number


#: How deep a request's volume list may nest: a volume source is a few levels (list, volume, source, items, ...).
MAX_MAPPING_LIST_DEPTH = 16


class _RefusedYaml(yaml.YAMLError):
    """A construct ``_RequestYamlLoader`` does not accept; its message names no part of the value."""


class _RequestYamlLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` for request values (``mapping_list``), without aliases and with bounded nesting.

    Aliases make a few hundred bytes mean billions of nodes to whoever walks the result (``str()`` in an error
    message did), and deep nesting makes the composer recurse until RecursionError: both are refused while the
    document is composed, before any object exists.
    """

    depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            raise _RefusedYaml("YAML aliases are not allowed")
        if self.depth >= MAX_MAPPING_LIST_DEPTH:
            raise _RefusedYaml(f"nested deeper than {MAX_MAPPING_LIST_DEPTH} levels")
        self.depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


def mapping_list(kernel_id: str, name: str, value: str) -> list[dict[str, Any]]:
    """A JSON list of mappings (Gateway Provisioners' YAML flow lists are accepted too, without aliases).

    Called by ``check_request_env`` (every Kubernetes launch's request) and by the Kubernetes provisioner; the
    value is bounded by ``check_value`` first, so parsing it costs at most a few KiB of YAML. The error names
    the kernel and the variable, never the value.
    """
    check_value(kernel_id, name, value)
    try:
        items = yaml.load(value, Loader=_RequestYamlLoader)
    except _RefusedYaml as err:
        raise KernelEnvError(f"Kernel {kernel_id}: {name} must be a JSON list of mappings: {err}") from None
    except yaml.YAMLError:  # its message quotes the value
        raise KernelEnvError(f"Kernel {kernel_id}: {name} must be a JSON list of mappings") from None
    if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
        raise KernelEnvError(f"Kernel {kernel_id}: {name} must be a JSON list of mappings")
    return items


# ----------------------------------------------------------------------------------------- the table
@dataclass(frozen=True)
class RequestVariable:
    """One request-settable name: what it must look like, which engines read it, what the operator controls."""

    name: str
    kind: str
    check: Validator
    engines: frozenset[Engine]
    setting: str = ""


ALL = frozenset(Engine)
CONTAINERS = frozenset({Engine.DOCKER, Engine.SWARM, Engine.KUBERNETES, Engine.SPARK_OPERATOR})
KUBERNETES = frozenset({Engine.KUBERNETES, Engine.SPARK_OPERATOR})
RESOURCES = ("KERNEL_CPUS", "KERNEL_MEMORY", "KERNEL_GPUS", "KERNEL_CPUS_LIMIT", "KERNEL_MEMORY_LIMIT",
             "KERNEL_GPUS_LIMIT")

REQUEST_VARIABLES: tuple[RequestVariable, ...] = (
    RequestVariable("KERNEL_USERNAME", "user name: 1-64 of `A-Za-z0-9._@-`", user_name, frozenset({Engine.SSH}),
                    "authorized_users, unauthorized_users"),
    RequestVariable("KERNEL_USERNAME", "text (made into resource names)", text, CONTAINERS,
                    "authorized_users, unauthorized_users"),
    RequestVariable("KERNEL_LAUNCH_TIMEOUT", "seconds: finite, > 0", positive_seconds, ALL,
                    "max_launch_timeout (larger values are lowered to it)"),
    RequestVariable("KERNEL_IP", "IP address literal", ip_address, ALL),
    RequestVariable("KERNEL_REMOTE_HOST", "host name", text, frozenset({Engine.SSH}),
                    "remote_hosts (the value must be one of them)"),
    RequestVariable("KERNEL_EXTRA_SPARK_OPTS", "spark-submit words (not --master, --deploy-mode, --proxy-user, "
                    "--principal, --keytab, Kerberos or driver-interpreter --conf keys)", extra_spark_options,
                    frozenset({Engine.SSH, Engine.KUBERNETES}), "spark_submit (SSH), a spark-submit argv (Kubernetes)"),
    RequestVariable("KERNEL_WORKING_DIR", "absolute path", text, CONTAINERS, "mirror_working_dirs"),
    RequestVariable("KERNEL_IMAGE", "image reference", text, CONTAINERS, "allow_client_image, allowed_images"),
    RequestVariable("KERNEL_UID", "decimal id 0-4294967295", parse_id, CONTAINERS, "prohibited_uids"),
    RequestVariable("KERNEL_GID", "decimal id 0-4294967295", parse_id, CONTAINERS, "prohibited_gids"),
    RequestVariable("KERNEL_POD_NAME", "text (made into a DNS label)", text, KUBERNETES),
    RequestVariable("KERNEL_NAMESPACE", "DNS label", check_dns_label, KUBERNETES, "allow_client_namespace"),
    RequestVariable("KERNEL_SERVICE_ACCOUNT_NAME", "DNS subdomain", check_dns_subdomain, KUBERNETES,
                    "allow_client_service_account"),
    *(RequestVariable(name, "Kubernetes quantity", parse_quantity, KUBERNETES, "allow_client_resources")
      for name in RESOURCES),
    RequestVariable("KERNEL_VOLUMES", "JSON list of volumes", mapping_list, KUBERNETES,
                    "allow_client_volumes, allow_host_path_volumes"),
    RequestVariable("KERNEL_VOLUME_MOUNTS", "JSON list of volume mounts", mapping_list, KUBERNETES,
                    "allow_client_volumes"),
)

KERNELSPEC_ENV = 'the kernelspec\'s "env" in kernel.json'
# Name -> (what it selects, where an operator sets it). Read by bootstrap-kernel.sh and the three launchers, and
# (KERNEL_SPARKAPP_CONFIG_MAP, Gateway Provisioners' name) by spark-operator-provisioner.
OPERATOR_ONLY: Mapping[str, tuple[str, str]] = {
    "KERNEL_PYTHON": ("the interpreter bootstrap-kernel.sh execs", f"{KERNELSPEC_ENV} or the image's ENV"),
    "KERNEL_LAUNCHERS_DIR": ("the directory bootstrap-kernel.sh runs launchers from",
                             f"{KERNELSPEC_ENV} or the image's ENV"),
    "KERNEL_LANGUAGE": ("which launcher bootstrap-kernel.sh starts",
                        f'the kernelspec\'s "language" (or {KERNELSPEC_ENV})'),
    "KERNEL_CLASS_NAME": ("the kernel class the Python launcher imports",
                          f"the kernelspec's argv (--kernel-class-name) or {KERNELSPEC_ENV}"),
    "KERNEL_SPARK_CONTEXT_INIT_MODE": ("whether the launcher starts Spark",
                                       f"the kernelspec's argv (--spark-context-initialization-mode) or "
                                       f"{KERNELSPEC_ENV}"),
    "KERNEL_CLUSTER_TYPE": ("which cluster library (Spark, Dask) the Python launcher imports",
                            f"the kernelspec's argv (--cluster-type) or {KERNELSPEC_ENV}"),
    "KERNEL_DRIVER_JAVA_OPTS": ("JVM options of the Scala launcher (agents, hooks that run commands)",
                                KERNELSPEC_ENV),
    "KERNEL_SPARKAPP_CONFIG_MAP": ("the spark-defaults ConfigMap of a Spark-operator kernel (its images, JVM "
                                   "options and submit settings)",
                                   f"{KERNELSPEC_ENV} or SparkOperatorProvisioner.spark_config_map"),
}


def refuse_closed(kernel_id: str, name: str, setting: str) -> None:
    """The refusal of a request value the kernelspec does not open to requests (``check_request_env``, and the
    provisioner itself before it parses such a value)."""
    raise PermissionError(f"Kernel {kernel_id}: the start request sets {name}, but this kernelspec does not let "
                          f"requests set it ({setting} is off)")


def request_variables(engine: Engine | None) -> dict[str, RequestVariable]:
    """The names ``engine`` interprets, each with its check (none for a provisioner that names no engine)."""
    return {v.name: v for v in REQUEST_VARIABLES if engine in v.engines}


def check_request_env(
    kernel_id: str,
    env: Mapping[str, str],
    *,
    engine: Engine | None,
    operator_env: Mapping[str, str],
    server_env: Mapping[str, str],
    closed: Mapping[str, str] | None = None,
) -> None:
    """Refuse a launch whose request set an operator-only name or gave an interpreted name a wrong value.

    ``env`` is the launch environment after jupyter_client applied the kernelspec's ``env``
    (``operator_env``) over the request's; ``server_env`` is the server's own environment, which
    jupyter_server merges under the request's values. A name counts as set by the operator when
    the kernelspec's env names it or its value is the server's own; any other value is the request's.
    ``closed`` maps names this kernelspec does not let requests set to the setting that would (the
    provisioner's ``closed_request_names``): such a name is refused before its value is even parsed.
    Called by ``RemoteProvisionerBase.pre_launch`` before anything is started.
    """
    for name, setting in (closed or {}).items():
        if env.get(name):
            refuse_closed(kernel_id, name, setting)
    for name, (selects, where) in OPERATOR_ONLY.items():
        value = env.get(name)
        if value is None or name in operator_env or value == server_env.get(name):
            continue
        raise OperatorOnlyError(
            f"Kernel {kernel_id}: the start request sets {name}, which selects {selects}; requests may not set it. "
            f"An operator sets it in {where}"
        )
    interpreted = request_variables(engine)
    for name, value in env.items():
        if not name.startswith("KERNEL_"):
            continue
        check_value(kernel_id, name, value)
        variable = interpreted.get(name)
        if variable is not None and value != "":
            variable.check(kernel_id, name, value)
