"""The host's exit-watch script (``ssh.exit_watch.WATCH_SCRIPT``) run by a real bash, as sshd runs it.

The soak found kernels whose shutdown never ended: the script's ``read -t`` had timed out part-way through a pid
written to it (bash descheduled under load), dropped those digits and watched the wrong pid, so the launcher's exit
was never reported. Here the pid arrives in two writes with a pause longer than the read timeout between them.
"""

from __future__ import annotations

import subprocess
import sys
import time

from kernelfleet.provisioners.ssh.exit_watch import CHECK_SECONDS, GONE, WATCH_SCRIPT

DEADLINE = 20.0


def exited_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def read_gone(watch: subprocess.Popen[str]) -> str:
    assert watch.stdout is not None
    line = watch.stdout.readline().strip()
    assert line, f"the watch script ended without a word (exit status {watch.poll()})"
    return line


def start_watch() -> subprocess.Popen[str]:
    return subprocess.Popen(["bash", "-c", WATCH_SCRIPT], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                            bufsize=1)


def test_a_pid_split_across_the_read_timeout_is_still_watched() -> None:
    pid = exited_pid()
    digits = str(pid)
    watch = start_watch()
    assert watch.stdin is not None
    try:
        watch.stdin.write(digits[:2])
        watch.stdin.flush()
        time.sleep(CHECK_SECONDS * 3)  # the fault: the rest of the line arrives after read -t gave up
        watch.stdin.write(digits[2:] + "\n")
        watch.stdin.flush()
        assert read_gone(watch) == f"{GONE} {pid}"
    finally:
        watch.stdin.close()
        watch.wait(DEADLINE)
    assert watch.returncode == 0  # end of input ends the script


def test_a_running_pid_is_not_reported_and_an_exited_one_is() -> None:
    alive = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    gone = exited_pid()
    watch = start_watch()
    assert watch.stdin is not None
    try:
        watch.stdin.write(f"{alive.pid}\n{gone}\n")
        watch.stdin.flush()
        assert read_gone(watch) == f"{GONE} {gone}"
        alive.stdin.close()  # type: ignore[union-attr]
        alive.wait(DEADLINE)
        started = time.monotonic()
        assert read_gone(watch) == f"{GONE} {alive.pid}"  # reported once it has exited (it is reaped here)
        assert time.monotonic() - started < DEADLINE
    finally:
        watch.stdin.close()
        watch.wait(DEADLINE)
        if alive.poll() is None:
            alive.kill()
