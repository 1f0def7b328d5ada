"""Process checks for the SSH tests: every "host" is this machine, so /proc shows what runs on them."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path


def process_env(pid: int) -> dict[str, str]:
    """Another process's environment (we are root, and every "host" is this machine)."""
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    return dict(item.split("=", 1) for item in raw.decode(errors="replace").split("\0") if "=" in item)


def processes_with_env(name: str, value: str) -> list[int]:
    """Live processes whose environment has name=value (finds launchers, kernels and shells of a kernel)."""
    needle = f"{name}={value}".encode() + b"\0"
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            if needle in Path(entry.path, "environ").read_bytes() + b"\0":
                state = Path(entry.path, "stat").read_text().rsplit(")", 1)[1].split()[0]
                if state != "Z":
                    found.append(int(entry.name))
        except OSError:
            continue
    return found


def processes_through(port: int) -> list[int]:
    """Live processes started through an sshd on ``port`` (their SSH_CONNECTION names it as server port)."""
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            raw = Path(entry.path, "environ").read_bytes()
            state = Path(entry.path, "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        for item in raw.split(b"\0"):
            if item.startswith(b"SSH_CONNECTION=") and item.split()[-1] == str(port).encode() and state != "Z":
                found.append(int(entry.name))
    return found


def cmdlines_containing(secret: str) -> list[int]:
    hits = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                if secret.encode() in Path(entry.path, "cmdline").read_bytes():
                    hits.append(int(entry.name))
            except OSError:
                continue
    return hits


def gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state == "Z"


async def wait_until(condition: object, within: float, what: str) -> None:
    """Wait (briefly re-checking) until ``condition()`` is true; fail with ``what`` otherwise."""
    deadline = time.monotonic() + within
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} (waited {within}s)")
        await asyncio.sleep(0.05)


def file_mode(path: Path) -> int | None:
    """Permission bits of a file on the "host", None when it does not exist."""
    try:
        return path.stat().st_mode & 0o777
    except FileNotFoundError:
        return None
