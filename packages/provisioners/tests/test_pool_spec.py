"""Which kernelspecs a warm pool may serve, and how a kernel claimed in place from an R standby stays identifiable:
``pool.spec`` (pure), the owner check of ``ssh.command.signal_command`` run by /bin/sh against real processes, and
the ids a saved session claims from the orphan sweep."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kernelfleet.provisioners.pool.spec import keeps_standby_environment, process_owner, standby_launcher
from kernelfleet.provisioners.sessions.store import KernelSession
from kernelfleet.provisioners.ssh.command import signal_command
from kernelfleet.provisioners.sweep import claimed_kernel_ids

R_ARGV = ["Rscript", "/opt/kernel-launchers/r/launch_IRkernel.R", "--kernel-id", "{kernel_id}"]
PY_ARGV = [sys.executable, "-m", "kernelfleet.launcher", "--kernel-id", "{kernel_id}"]
KID, SID = "6f1c2a4e-0d3b-4c5e-9f7a-1b2c3d4e5f60", "standby-0123456789abcdef0123"


@pytest.mark.parametrize(("language", "argv", "pooled"), [
    ("python", PY_ARGV, True),
    ("", PY_ARGV, True),  # a kernelspec without a language is Python's
    ("R", R_ARGV, True),
    ("r", R_ARGV, True),
    ("R", ["Rscript", "/opt/my_own_launcher.R"], False),  # not our launcher: no standby mode
    ("python", [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"], False),
    ("scala", ["/opt/kernel-launchers/scala/bin/run.sh"], True),  # our run.sh, on this host
    ("scala", ["/opt/other/bin/run.sh"], False),
    ("R", None, True),  # a container: the image's bootstrap starts the language's launcher
    ("python", None, True),
    ("scala", None, False),  # no Scala standby in containers yet
])
def test_standby_launcher(language: str, argv: list[str] | None, pooled: bool) -> None:
    assert standby_launcher(language, argv) is pooled


def test_only_r_and_scala_standbys_keep_their_environment() -> None:
    assert keeps_standby_environment("r/0.1.0") and keeps_standby_environment("scala/0.2.0")
    assert not keeps_standby_environment("python/0.1.0")
    assert process_owner(SID) == f"KF_STANDBY_ID={SID}" and process_owner(None) is None


@pytest.mark.parametrize(("env", "owner", "hit"), [
    ({"KERNEL_ID": KID}, None, True),  # a cold kernel, or a Python one (its supervisor was exec'd with KERNEL_ID)
    ({"KF_STANDBY_ID": SID}, None, False),  # an R kernel claimed in place does not carry KERNEL_ID...
    ({"KF_STANDBY_ID": SID}, process_owner(SID), True),  # ...its standby id proves it
    ({"KF_STANDBY_ID": "standby-another"}, process_owner(SID), False),  # another standby's process: never signalled
])
def test_signal_command_checks_the_owner_in_the_process_environment(env: dict[str, str], owner: str | None,
                                                                    hit: bool) -> None:
    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE,
                             env={"PATH": os.environ["PATH"], **env}, start_new_session=True)
    try:
        out = subprocess.run(["/bin/sh", "-c", signal_command(KID, "0", [child.pid], owner)], capture_output=True,
                             text=True, timeout=30, check=True).stdout.split()
        assert out == ([str(child.pid)] if hit else [])
    finally:
        child.kill()
        child.wait()


def test_a_session_claims_the_standby_id_of_a_kernel_claimed_in_place(tmp_path: Path) -> None:
    in_place = KernelSession(KID, "r", "distributed-provisioner", {}, {"standby_id": SID})
    cold = KernelSession(KID, "py", "distributed-provisioner", {}, {"standby_id": None})
    forged = KernelSession(KID, "r", "distributed-provisioner", {}, {"standby_id": "not an id\n"})
    assert in_place.claimed_ids() == [KID, SID]
    assert cold.claimed_ids() == forged.claimed_ids() == [KID]
    (tmp_path / f"{KID}.json").write_text(in_place.to_json())
    (tmp_path / "other.json").write_text(json.dumps({"kernel_id": "k2", "provisioner_info": ["not", "a", "dict"]}))
    assert claimed_kernel_ids(tmp_path) == {KID, SID, "k2", "other"}
