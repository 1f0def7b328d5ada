"""Pure builders for warm pools: a pool's id, the labels and names of standbys on container engines, and what a
claim carries of the kernel's environment.

Called by the provisioners that support pools (``ssh.standbys``, ``ssh.remote_standbys``, ``docker.standbys``,
``docker.swarm_standbys``, ``k8s.standbys``) when they make a pool or a launch takes from one, by the orphan sweep,
and by the tests.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import re
from collections.abc import Mapping, Sequence
from typing import Any

from kernelfleet.protocol import contract
from kernelfleet.protocol.contract import STANDBY_ID
from kernelfleet.protocol.standby import RESERVED_ENV
from kernelfleet.provisioners.labels import APP, LABEL_APP, LABEL_COMPONENT
from kernelfleet.provisioners.server_identity import LABEL_SERVER, SERVER_ID_ENV

_NOT_ID = re.compile(r"[^A-Za-z0-9._-]+")
NAME_PART = 40
DIGEST_CHARS = 12
#: The launchers that have a standby mode (protocol 2.1), by kernelspec language: how a kernelspec's argv names each.
PYTHON_LAUNCHER_MODULE = "kernelfleet.launcher"
R_LAUNCHER_SCRIPT = "launch_IRkernel.R"
#: The Scala launcher's run.sh, installed as ``kernel-launchers/scala/bin/run.sh`` or run from the repository.
SCALA_LAUNCHER_SUFFIXES = ("/scala/bin/run.sh", "/launchers/scala/run.sh")
#: Launchers (the ``launcher`` name of a registration) that become the kernel in the standby's own process, without an
#: exec: the process keeps the standby's environment (neither R nor a JVM can exec itself warm), so
#: ``KF_STANDBY_ID=<id>`` and not ``KERNEL_ID`` is what proves that a pid is still the kernel's (``process_owner``).
IN_PLACE_LAUNCHERS = ("r/", "scala/")
LABEL_STANDBY = "kernelfleet.io/standby"
LABEL_POOL = "kernelfleet.io/pool"
COMPONENT_STANDBY = "standby"
STANDBY_NAME_PREFIX = "kf-standby-"


def pool_id(kernel_name: str, *identity: Any) -> str:
    """``<kernelspec name>-<digest>``: the same for every launch of one kernelspec with one configuration and
    server, different as soon as any of them differs (a changed kernelspec gets a fresh pool). A valid protocol
    id (the standby checks that each claim names its pool)."""
    digest = hashlib.sha256(json.dumps([kernel_name, *identity], sort_keys=True, default=str).encode()).hexdigest()
    name = _NOT_ID.sub("-", kernel_name)[:NAME_PART].strip("-._") or "pool"
    return f"{name}-{digest[:DIGEST_CHARS]}"


def claim_env(kernel_env: Mapping[str, str], standby_env: Mapping[str, str]) -> dict[str, str]:
    """What the claim must set for the kernel to run with ``kernel_env``, the environment a cold launch of the
    same request would give its launcher (already checked by ``request_env`` in ``pre_launch``): every value the
    standby does not already have, except the secrets, which travel in the claim's own fields."""
    return {name: value for name, value in kernel_env.items()
            if standby_env.get(name) != value and name not in RESERVED_ENV}


def standby_launcher(language: str, argv: Sequence[str] | None = None) -> bool:
    """True when a kernelspec of ``language`` runs a launcher with a standby mode: Python (``-m kernelfleet.launcher``),
    R (``launch_IRkernel.R``) and, for a local process only, Scala (our ``run.sh``). ``argv`` is the kernelspec's
    command for a local process; None in a container, whose bootstrap starts the image's launcher for the language
    (no Scala standby in containers yet). Called by each engine's ``poolable``."""
    language = (language or "python").lower()
    if language == "python":
        return argv is None or PYTHON_LAUNCHER_MODULE in argv
    if language == "r":
        return argv is None or any(posixpath.basename(arg) == R_LAUNCHER_SCRIPT for arg in argv)
    if language == "scala":
        return argv is not None and bool(argv) and argv[0].endswith(SCALA_LAUNCHER_SUFFIXES)
    return False


def keeps_standby_environment(launcher: str) -> bool:
    """True when a claimed standby of this launcher (its registration's ``launcher``) runs the kernel in the process
    the pool started, whose environment (``/proc/<pid>/environ``) stays the standby's."""
    return launcher.startswith(IN_PLACE_LAUNCHERS)


def process_owner(standby_id: str | None) -> str | None:
    """The environment entry that identifies a kernel claimed from standby ``standby_id`` in place (None: the kernel
    carries ``KERNEL_ID`` as a cold one does). Called by the local host launcher and the orphan sweep."""
    return f"{STANDBY_ID}={standby_id}" if standby_id else None


def standby_labels(server_id: str, pool: str, standby_id: str) -> dict[str, str]:
    """A standby container's or pod's labels: the server's identity (the sweep), ``app`` (event streams), its pool and
    its own id; never a ``kernel_id`` (it is no kernel yet)."""
    return {LABEL_SERVER: server_id, LABEL_APP: APP, LABEL_COMPONENT: COMPONENT_STANDBY, LABEL_POOL: pool,
            LABEL_STANDBY: standby_id}


def standby_name(standby_id: str) -> str:
    """``kf-standby-<hex>``: the container or pod name of standby ``standby-<hex>`` (a DNS label)."""
    return f"{STANDBY_NAME_PREFIX}{standby_id.removeprefix('standby-')}"


def standby_protocol_env(launch_env: Mapping[str, str], server_id: str) -> dict[str, str]:
    """The protocol's values every standby of a pool gets, from the ``launch_env`` of the launch that made the pool:
    those that depend on no kernel (no id, no token; no ports, which a standby binds only once claimed)."""
    return {
        "KERNEL_LANGUAGE": launch_env["KERNEL_LANGUAGE"],
        contract.RESPONSE_ADDRESS: launch_env[contract.RESPONSE_ADDRESS],
        contract.PUBLIC_KEY: launch_env[contract.PUBLIC_KEY],
        contract.PORT_RANGE: "0..0",
        contract.TRANSPORT_ENCRYPTION: launch_env.get(contract.TRANSPORT_ENCRYPTION, ""),
        SERVER_ID_ENV: server_id,
    }
