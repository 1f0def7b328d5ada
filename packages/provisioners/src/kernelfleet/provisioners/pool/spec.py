"""Pure builders for warm pools: a pool's id, and what a claim carries of the kernel's environment.

Called by the provisioners that support pools (``ssh.standbys``, ``ssh.remote_standbys``, ``docker.standbys``,
``docker.swarm_standbys``) when they make a pool or a launch takes from one, and by the tests.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from typing import Any

from kernelfleet.protocol import contract
from kernelfleet.protocol.standby import RESERVED_ENV
from kernelfleet.provisioners.server_identity import SERVER_ID_ENV

_NOT_ID = re.compile(r"[^A-Za-z0-9._-]+")
NAME_PART = 40
DIGEST_CHARS = 12


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
