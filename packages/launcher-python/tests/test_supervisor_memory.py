"""The launcher's long-lived supervisor stays small (issue 15, section 3) and is still the launcher.

After the report the launcher re-executes itself as the small supervisor (handover.py). A comm-port
ping is answered only by that supervisor, so once one is answered the process can be measured. The
bound is generous (tools/bench/launcher_memory.py measures the real figure, about 7 MB of PSS against
GP 0.5.0's 21 MB): what this test catches is asyncio, pycryptodome or pyzmq creeping back in.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

from launcher_support import Launcher, kernel_processes, wait_gone

PSS_BOUND_KB = 12 * 1024
# Shared objects that only the reporting phase may load: asyncio, pycryptodome, pyzmq.
HEAVY = ("_asyncio", "/Crypto/", "/zmq/", "libzmq")


def pss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1])
    raise AssertionError(f"no Pss line in /proc/{pid}/smaps_rollup")


def proc_facts(pid: int, kernel_pid: int) -> tuple[list[bytes], bytes, str, int]:
    """argv, environment, mapped files of the supervisor, and the kernel's parent pid (procfs: never blocks)."""
    argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    environ = Path(f"/proc/{pid}/environ").read_bytes()
    maps = Path(f"/proc/{pid}/maps").read_text()
    kernel_parent = int(Path(f"/proc/{kernel_pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    return argv, environ, maps, kernel_parent


async def test_supervisor_is_small_and_keeps_its_pid_kernel_and_signals(launcher: Launcher) -> None:
    launch = await launcher()
    assert launch.report is not None
    assert (await launch.comm("ping")) == {"ok": True, "alive": True}
    pid = launch.proc.pid
    assert launch.report.pid == pid  # the exec kept the pid the report named
    argv, environ, maps, kernel_parent = proc_facts(pid, launch.kernel_pid)
    assert b"-S" in argv and b"kernelfleet.launcher" in argv, argv
    assert b"LAUNCH_TOKEN=" not in environ
    assert [lib for lib in HEAVY if lib in maps] == []
    assert kernel_parent == pid  # the kernel is still the supervisor's child
    assert pss_kb(pid) <= PSS_BOUND_KB, f"supervisor PSS {pss_kb(pid)} KiB"

    kc = await launch.client()
    kc.stop_channels()
    os.kill(pid, signal.SIGTERM)
    assert await launch.wait_exit(30) == 128 + signal.SIGTERM
    assert await wait_gone(launch.kernel_pid, 30)
    assert kernel_processes(launch.kernel_id) == []
    assert list(launch.tmpdir.iterdir()) == []
