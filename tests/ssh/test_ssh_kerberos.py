"""SSH logins without keys: Kerberos (GSSAPI, the real test KDC) and passwords, against a real sshd.

The sshd here is its own daemon on 127.0.0.7 with ``PubkeyAuthentication no`` (so a key or agent cannot be what let
a login in), ``GSSAPIAuthentication yes`` with the ``host/localhost`` keytab (``KRB5_KTNAME``) of the test realm, and
``PasswordAuthentication yes`` (``UsePAM no``: sshd checks /etc/shadow) for a test user this module creates and
removes. Kernels connect to 127.0.0.7 with ``ssh_gss_host=localhost``, the name in the host principal. The
password test user cannot run this venv's python (it lives under root's private home), so the password login is
proven with a command over the provisioner's own connection pool; a whole kernel runs over the Kerberos login.
"""

from __future__ import annotations

import logging
import os
import pwd
import secrets
import subprocess
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
from jupyter_client import AsyncKernelManager
from kdc import KerberosRealm
from kf_testing import execute
from ssh_testing import cmdlines_containing, gone, process_env, processes_through, wait_until
from sshd import SshCluster, start_cluster

from kernelfleet.provisioners.base import LaunchError
from kernelfleet.provisioners.leases import close_all
from kernelfleet.provisioners.ssh.connections import HostUnavailable, SSHSettings, connection_pool
from kernelfleet.provisioners.ssh.launch import run_command

ADDRESS = "127.0.0.7"  # the SSH suite uses .2-.4, the fault tests .5-.6, .9 is "not listed"
TEST_USER = "kf-sshpw"


@pytest.fixture(scope="module")
def password_user() -> Iterator[tuple[str, str]]:
    """A real local user with a fresh random password (its hash in /etc/shadow), removed afterwards."""
    password = secrets.token_urlsafe(18)
    created = False
    try:
        pwd.getpwnam(TEST_USER)
    except KeyError:
        subprocess.run(["useradd", "--no-create-home", "--home-dir", "/nonexistent", "--shell", "/bin/sh",
                        TEST_USER], check=True, capture_output=True)
        created = True
    subprocess.run(["chpasswd"], input=f"{TEST_USER}:{password}\n", text=True, check=True, capture_output=True)
    yield TEST_USER, password
    if created:
        subprocess.run(["userdel", TEST_USER], check=False, capture_output=True)


@pytest.fixture(scope="module")
def kerberos_sshd(kdc_realm: KerberosRealm, password_user: tuple[str, str],
                  tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshCluster]:
    env = {**os.environ, **kdc_realm.env, "KRB5_KTNAME": f"FILE:{kdc_realm.keytab('host/localhost')}"}
    cluster = start_cluster(
        tmp_path_factory.mktemp("sshd-kerberos"), (ADDRESS,), env=env,
        extra_config="PubkeyAuthentication no\nGSSAPIAuthentication yes\nGSSAPIKeyExchange yes\n"
                     "GSSAPIStrictAcceptorCheck no\nGSSAPICleanupCredentials yes\nPasswordAuthentication yes\n",
    )
    yield cluster
    cluster.stop()


@pytest.fixture
def kerberos_spec(make_kernelspec: Callable[..., str], kerberos_sshd: SshCluster, tmp_path: Path
                  ) -> Callable[..., str]:
    """A kernelspec for the Kerberos sshd: no key files, no agent; keyword arguments override its config."""
    counter = iter(range(100))

    def make(**config: object) -> str:
        base = {**kerberos_sshd.provisioner_config(), "ssh_key_files": [], "ssh_agent_path": "",
                "remote_log_dir": str(tmp_path), "ssh_connect_timeout": 20.0}
        return make_kernelspec(f"krb_{next(counter)}", config={**base, **config})

    return make


@pytest.fixture(autouse=True)
async def kerberos_host_left_empty(kerberos_sshd: SshCluster) -> AsyncIterator[None]:
    kerberos_sshd.hosts[0].start()
    yield
    await close_all()
    await wait_until(lambda: not processes_through(kerberos_sshd.port), 10,
                     "the test left processes behind on the Kerberos SSH host")


async def test_kernel_over_a_kerberos_login_only(
    kerberos_spec: Callable[..., str], kernel_manager: Callable[..., AsyncKernelManager],
    kerberos_ticket: Callable[..., str], caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    kerberos_ticket("root")  # root@KERNELFLEET.TEST maps to the local user root
    km = kernel_manager(kerberos_spec(ssh_gss_auth=True, ssh_gss_host="localhost"))
    await km.start_kernel()
    try:
        launcher_env = process_env(km.provisioner.launcher_pid)
        assert launcher_env["SSH_CONNECTION"].split()[2] == ADDRESS
        client = km.client()
        client.start_channels()
        await client.wait_for_ready(timeout=60)
        assert (await execute(client, "6 * 7"))["result"] == "42"
        client.stop_channels()
    finally:
        launcher = km.provisioner.launcher_pid
        await km.shutdown_kernel(now=True)
    await wait_until(lambda: gone(launcher), 10, "the launcher is still running")


async def test_gss_from_gp_environment_variable(
    kerberos_spec: Callable[..., str], kernel_manager: Callable[..., AsyncKernelManager],
    kerberos_ticket: Callable[..., str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """GP's GP_REMOTE_GSS_SSH turns it on, as in Gateway Provisioners (KF_SSH_GSS_HOST names the principal)."""
    kerberos_ticket("root")
    monkeypatch.setenv("GP_REMOTE_GSS_SSH", "True")
    monkeypatch.setenv("KF_SSH_GSS_HOST", "localhost")
    km = kernel_manager(kerberos_spec())
    await km.start_kernel()
    try:
        assert km.provisioner.ssh_settings().gss_auth
        assert process_env(km.provisioner.launcher_pid)["SSH_CONNECTION"].split()[2] == ADDRESS
    finally:
        await km.shutdown_kernel(now=True)


async def test_no_ticket_names_the_host(
    kerberos_spec: Callable[..., str], kernel_manager: Callable[..., AsyncKernelManager], kdc: KerberosRealm,
) -> None:
    km = kernel_manager(kerberos_spec(ssh_gss_auth=True, ssh_gss_host="localhost"))
    with pytest.raises(LaunchError) as caught:
        await km.start_kernel()
    message = str(caught.value)
    assert ADDRESS in message and "Kerberos" in message, message
    assert "No Kerberos credentials available" in message and "kinit" in message, message


async def test_ticket_for_another_user_is_refused(
    kerberos_spec: Callable[..., str], kernel_manager: Callable[..., AsyncKernelManager],
    kerberos_ticket: Callable[..., str],
) -> None:
    """alice@KERNELFLEET.TEST may not log in as root (no .k5login grants it): sshd refuses, the error says so."""
    kerberos_ticket("alice")
    km = kernel_manager(kerberos_spec(ssh_gss_auth=True, ssh_gss_host="localhost"))
    with pytest.raises(LaunchError) as caught:
        await km.start_kernel()
    message = str(caught.value)
    assert f"root@{ADDRESS}" in message and "authentication" in message.lower(), message
    assert "alice@KERNELFLEET.TEST" in message, message  # whose ticket it was, so the admin can map it


def password_settings(cluster: SshCluster, user: str, **kwargs: object) -> SSHSettings:
    return SSHSettings(user=user, port=cluster.port, key_files=(), agent_path=None,
                       known_hosts=str(cluster.known_hosts), connect_timeout=20.0, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("source", ["GP_REMOTE_PWD", "file"])
async def test_password_login(
    source: str, kerberos_sshd: SshCluster, password_user: tuple[str, str], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    user, password = password_user
    if source == "file":
        secret_file = tmp_path / "ssh-password"
        secret_file.write_text(password + "\n")
        secret_file.chmod(0o600)
        settings = password_settings(kerberos_sshd, user, password_file=str(secret_file))
    else:
        monkeypatch.setenv("GP_REMOTE_PWD", password)
        settings = password_settings(kerberos_sshd, user, password_env="GP_REMOTE_PWD")
    pool = connection_pool()
    conn = await pool.connect(ADDRESS, settings)
    assert cmdlines_containing(password) == []
    result = await run_command(conn, "id -un", 20, pool.sessions(ADDRESS, settings))
    assert result.strip() == user
    assert password not in repr(settings) and password not in caplog.text


async def test_password_settings_from_the_provisioner(
    kerberos_spec: Callable[..., str], kernel_manager: Callable[..., AsyncKernelManager],
    password_user: tuple[str, str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """GP_REMOTE_PWD reaches the settings by name only; the distributed provisioner logs in with it."""
    user, password = password_user
    monkeypatch.setenv("GP_REMOTE_PWD", password)
    km = kernel_manager(kerberos_spec(ssh_user=user))
    provisioner_settings = _provisioner_settings(km)
    assert provisioner_settings.password_env == "GP_REMOTE_PWD" and password not in repr(provisioner_settings)
    pool = connection_pool()
    conn = await pool.connect(ADDRESS, provisioner_settings)
    result = await run_command(conn, "id -un", 20, pool.sessions(ADDRESS, provisioner_settings))
    assert result.strip() == user


def _provisioner_settings(km: AsyncKernelManager) -> SSHSettings:
    from jupyter_client.provisioning import KernelProvisionerFactory

    spec = km.kernel_spec
    assert spec is not None
    provisioner = KernelProvisionerFactory.instance().create_provisioner_instance("k", spec, km)
    return provisioner.ssh_settings()  # type: ignore[attr-defined]


async def test_wrong_password_names_host_never_the_secret(
    kerberos_spec: Callable[..., str], kernel_manager: Callable[..., AsyncKernelManager],
    password_user: tuple[str, str], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    user, _ = password_user
    wrong = "wrong-" + secrets.token_urlsafe(12)
    monkeypatch.setenv("GP_REMOTE_PWD", wrong)
    km = kernel_manager(kerberos_spec(ssh_user=user))
    with pytest.raises(LaunchError) as caught:
        await km.start_kernel()
    message = str(caught.value)
    assert f"{user}@{ADDRESS}" in message and "$GP_REMOTE_PWD" in message, message
    assert wrong not in message and wrong not in caplog.text
    assert cmdlines_containing(wrong) == []


async def test_unreadable_password_file_is_clear(kerberos_sshd: SshCluster, password_user: tuple[str, str],
                                                 tmp_path: Path) -> None:
    settings = password_settings(kerberos_sshd, password_user[0], password_file=str(tmp_path / "missing"))
    with pytest.raises(HostUnavailable, match=r"cannot read the SSH password file .*missing"):
        await connection_pool().connect(ADDRESS, settings)

