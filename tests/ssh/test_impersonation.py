"""Impersonation (impersonation_enabled / GP_IMPERSONATION_ENABLED): the kernel runs as the requesting user.

Real users are created for the module (useradd, removed after) and given traverse rights on the directories the
venv's interpreter lives under (an ACL, removed after). The provisioner's default mechanism, ``sudo -n -H -E -u
{user} --``, runs the launcher as KERNEL_USERNAME, locally and on an SSH "host" (the test sshd, logged in as root);
the kernel reports its own uid. Refused identities (root, users outside authorized_users, names that are not
user names) never start anything.
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from jupyter_client import AsyncKernelManager
from kf_testing import connect, execute, interrupt_busy_cell
from ssh_testing import wait_until


def _processes_of(uid: int) -> list[int]:
    found = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                status = Path(entry.path, "status").read_text()
            except OSError:
                continue
            fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
            if fields.get("Uid", "").split()[:1] == [str(uid)] and fields.get("State", "").split()[:1] != ["Z"]:
                found.append(int(entry.name))
    return found


def _traversed_dirs() -> list[Path]:
    """Directories above the interpreter and the sources that other users cannot enter (e.g. /root, 0700)."""
    dirs = set()
    for target in (Path(os.path.realpath(sys.executable)), Path(__file__).resolve()):
        for parent in target.parents:
            if not parent.stat().st_mode & 0o001:
                dirs.add(parent)
    return sorted(dirs)


@pytest.fixture(scope="module")
def users() -> Iterator[list[pwd.struct_passwd]]:
    for tool in ("useradd", "userdel", "sudo", "setfacl"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is missing: impersonation tests need real users and sudo (Debian: apt-get install "
                        "passwd sudo acl; tools/setup-machine installs them)")
    names = [f"kfimp{secrets.token_hex(3)}" for _ in range(2)]
    dirs = _traversed_dirs()
    made = []
    try:
        for name in names:
            subprocess.run(["useradd", "-m", "-s", "/bin/sh", name], check=True, capture_output=True)
            made.append(name)
            for directory in dirs:
                subprocess.run(["setfacl", "-m", f"u:{name}:x", str(directory)], check=True, capture_output=True)
        yield [pwd.getpwnam(name) for name in names]
    finally:
        for name in made:
            for directory in dirs:
                subprocess.run(["setfacl", "-x", f"u:{name}", str(directory)], capture_output=True)
            subprocess.run(["userdel", "-r", name], capture_output=True)


async def _run_as(km: AsyncKernelManager, user: pwd.struct_passwd) -> None:
    await km.start_kernel(env={**os.environ, "KERNEL_USERNAME": user.pw_name})
    client = await connect(km)
    try:
        ids = await execute(client, "import os; (os.getuid(), os.getgid(), os.path.expanduser('~'))")
        assert ids["result"] == repr((user.pw_uid, user.pw_gid, user.pw_dir))
        await interrupt_busy_cell(km, client)
        answer = await execute(client, "6 * 7")
        assert answer["result"] == "42", answer
    finally:
        client.stop_channels()
        await km.shutdown_kernel()
    await wait_until(lambda: not _processes_of(user.pw_uid), 15, f"processes of {user.pw_name} left after shutdown")


async def test_a_local_kernel_runs_as_the_requesting_user(
    ssh_spec: Callable[..., str], kernel_manager: Callable[..., AsyncKernelManager], users: list[pwd.struct_passwd],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GP_IMPERSONATION_ENABLED", "True")  # Gateway Provisioners' name, honoured
    await _run_as(kernel_manager(ssh_spec(remote_hosts=["localhost"])), users[0])


async def test_a_kernel_on_an_ssh_host_runs_as_the_requesting_user(
    ssh_spec: Callable[..., str], kernel_manager: Callable[..., AsyncKernelManager], users: list[pwd.struct_passwd],
) -> None:
    await _run_as(kernel_manager(ssh_spec(remote_hosts=["127.0.0.2"], impersonation_enabled=True)), users[1])


@pytest.mark.parametrize(("username", "message"), [
    ("root", "not allowed to start kernels"),
    ("USER1", "not in this kernelspec's authorized users"),
    ("-n", "not a valid user name"),
])
async def test_refused_identities_start_nothing(
    ssh_spec: Callable[..., str], kernel_manager: Callable[..., AsyncKernelManager], users: list[pwd.struct_passwd],
    username: str, message: str,
) -> None:
    allowed = users[0].pw_name
    km = kernel_manager(ssh_spec(remote_hosts=["localhost"], impersonation_enabled=True,
                                 authorized_users=[allowed, "root"] if username == "root" else [allowed]))
    name = users[1].pw_name if username == "USER1" else username
    with pytest.raises((PermissionError, ValueError), match=message):
        await km.start_kernel(env={**os.environ, "KERNEL_USERNAME": name})
    assert not _processes_of(users[1].pw_uid) and not km.has_kernel
