"""What the orphan-sweep tests share: crash a server in a subprocess, run ``jupyter kernelfleet sweep``."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

CRASHING_SERVER = Path(__file__).with_name("crashing_server.py")
SUPPORT = str(Path(__file__).parent)


async def crash_server(kernels_dir: Path, server_id: str, plan: list[dict[str, str]]) -> list[str]:
    """Run ``crashing_server.py`` with ``plan`` as server ``server_id``; returns its output once it was killed."""
    env = {**os.environ, "KF_SERVER_ID": server_id,
           "PYTHONPATH": os.pathsep.join(p for p in (SUPPORT, os.environ.get("PYTHONPATH")) if p)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(CRASHING_SERVER), str(kernels_dir), json.dumps(plan), env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    lines = out.decode().splitlines()
    assert proc.returncode == -9 and lines[-1:] == ["CRASHING"], (
        f"the crashing server ended with {proc.returncode}: {out.decode()[-2000:]}\n{err.decode()[-3000:]}")
    return lines


async def sweep_cli(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """``jupyter kernelfleet sweep ARGS`` as an operator runs it (the console script of this venv)."""
    script = Path(sys.executable).with_name("jupyter-kernelfleet")
    proc = await asyncio.create_subprocess_exec(
        str(script), "sweep", *args, env={**os.environ, **(env or {})},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    return int(proc.returncode or 0), out.decode(), err.decode()


def listed_kernels(table: str) -> dict[str, set[str]]:
    """kernel id -> the kinds the sweep's table shows for it (dry run or --yes)."""
    kernels: dict[str, set[str]] = {}
    lines = table.splitlines()
    header = next((i for i, line in enumerate(lines) if line.startswith("ENGINE")), None)
    if header is None:
        return kernels
    columns = lines[header]
    kind_at, name_at, kernel_at, age_at = (columns.index(c) for c in ("KIND", "NAME", "KERNEL", "AGE"))
    for line in lines[header + 1:]:
        if not line or line.startswith("dry run"):
            break
        kernels.setdefault(line[kernel_at:age_at].strip(), set()).add(
            f"{line[:kind_at].strip()} {line[kind_at:name_at].strip()}")
    return kernels


SILENT_LAUNCHER = [sys.executable, "-c", "import time; time.sleep(600)"]  # a launcher that has not reported yet


def expected_table(kernels: dict[str, set[str]]) -> dict[str, set[str]]:
    """For readable assertion messages: the same shape as ``listed_kernels``."""
    return {kid: set(kinds) for kid, kinds in kernels.items()}


async def until_made_something(provisioner_of: object, task: asyncio.Future[object]) -> None:
    """Wait until an in-progress launch (``task``) has made its first engine object."""
    from crashing_server import made_something

    async with asyncio.timeout(60):
        while not (getattr(provisioner_of, "provisioner", None) is not None
                   and made_something(provisioner_of.provisioner)):  # type: ignore[attr-defined]
            assert not task.done(), f"the launch ended before it made anything: {task}"
            await asyncio.sleep(0.01)


def write_session(store: Path, kernel_id: str) -> None:
    """A session file as the session store keeps it: one JSON file per kernel."""
    store.mkdir(mode=0o700, exist_ok=True)
    (store / f"{kernel_id}.json").write_text(json.dumps({"kernel_id": kernel_id}))


async def sweep_away(server_ids: list[str], engines: list[str], ssh_targets: list[object] | None = None) -> None:
    """After a failed test: remove whatever the crashed servers' identities still mark, so the next test starts
    clean (a passing test has removed it all already)."""
    from kernelfleet.provisioners.sweep import find_orphans, remove_orphans

    for server_id in server_ids:
        found = await find_orphans(set(), server_id=server_id, engines=engines,
                                   ssh_targets=ssh_targets)  # type: ignore[arg-type]
        await remove_orphans(found)
