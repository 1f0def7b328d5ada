"""Pure builders for warm pools: a pool's id, the labels and names of standbys on container engines, and what a
claim carries of the kernel's environment.

Called by the provisioners that support pools (``ssh.distributed`` for local kernels, ``docker.standbys`` and
``k8s.standbys`` for containers and pods) when a launch takes from a pool, by the orphan sweep, and by the tests.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from typing import Any

from kernelfleet.protocol.standby import RESERVED_ENV
from kernelfleet.provisioners.labels import APP, LABEL_APP, LABEL_COMPONENT
from kernelfleet.provisioners.server_identity import LABEL_SERVER

_NOT_ID = re.compile(r"[^A-Za-z0-9._-]+")
NAME_PART = 40
DIGEST_CHARS = 12
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


def standby_labels(server_id: str, pool: str, standby_id: str) -> dict[str, str]:
    """A standby container's or pod's labels: the server's identity (the sweep), ``app`` (event streams), its pool and
    its own id; never a ``kernel_id`` (it is no kernel yet)."""
    return {LABEL_SERVER: server_id, LABEL_APP: APP, LABEL_COMPONENT: COMPONENT_STANDBY, LABEL_POOL: pool,
            LABEL_STANDBY: standby_id}


def standby_name(standby_id: str) -> str:
    """``kf-standby-<hex>``: the container or pod name of standby ``standby-<hex>`` (a DNS label)."""
    return f"{STANDBY_NAME_PREFIX}{standby_id.removeprefix('standby-')}"
