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
from collections.abc import Callable, Iterator

import pytest
from jupyter_client import AsyncKernelManager
from kf_testing import connect, execute, interrupt_busy_cell
from real_users import UsersMissing, processes_of, real_users
from ssh_testing import wait_until


@pytest.fixture(scope="module")
def users() -> Iterator[list[pwd.struct_passwd]]:
    try:
        with real_users(2) as made:
            yield made
    except UsersMissing as err:
        pytest.fail(str(err))


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
    await wait_until(lambda: not processes_of(user.pw_uid), 15, f"processes of {user.pw_name} left after shutdown")


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
    assert not processes_of(users[1].pw_uid) and not km.has_kernel
