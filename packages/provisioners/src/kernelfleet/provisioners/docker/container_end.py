"""Why a Docker or Swarm kernel's container ended, in words, and the memory limit that can end it.

Docker keeps the cause in the container's state: ``OOMKilled`` when the kernel crossed its memory limit
(exit code 137, the SIGKILL the kernel's OOM killer sent). Kubernetes names that reason in the pod status;
for Docker and Swarm the provisioners read it from the container's inspect and put it, with the limit the
engine applied, into the launch error and the log line that reports the kernel's end (``docker.py``,
``docker_swarm.py``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

MEMORY = re.compile(r"([0-9]+)([bkmg]?)", re.IGNORECASE)
UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3}
MIN_MEMORY = 6 * 1024**2  # dockerd refuses less


def parse_memory_limit(kernel_id: str, value: str) -> int:
    """Bytes of ``512m``-style text as ``docker run --memory`` takes it (b, k, m, g); 0 for none (empty)."""
    text = value.strip()
    if not text:
        return 0
    match = MEMORY.fullmatch(text)
    if match is None:
        raise ValueError(f"Kernel {kernel_id}: memory_limit {value[:40]!r} is not a size like 512m or 2g")
    size = int(match[1]) * UNITS[match[2].lower()]
    if size < MIN_MEMORY:
        raise ValueError(f"Kernel {kernel_id}: memory_limit {value!r} is below Docker's minimum of 6m")
    return size


def format_bytes(size: int) -> str:
    for unit, factor in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if size >= factor and size % factor == 0:
            return f"{size // factor} {unit}"
    return f"{size} bytes"


def describe_container_end(where: str, inspected: Mapping[str, Any]) -> str:
    """``where`` (e.g. "container kf-alice-1234") and how it ended, from ``docker inspect``'s answer.

    An OOM kill names the memory limit Docker applied (HostConfig.Memory), so the user learns what to raise.
    """
    state = inspected.get("State") or {}
    code = state.get("ExitCode")
    if state.get("OOMKilled"):
        limit = int((inspected.get("HostConfig") or {}).get("Memory") or 0)
        bound = f"its memory limit of {format_bytes(limit)}" if limit else "the host's memory"
        return f"{where} was OOMKilled (exit code {code}): the kernel used more than {bound}"
    text = f"{where} exited with code {code}"
    error = str(state.get("Error") or "").strip()
    return f"{text}: {error}" if error else text
