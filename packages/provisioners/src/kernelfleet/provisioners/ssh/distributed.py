"""``distributed-provisioner``: kernels on a list of hosts, reached over SSH with asyncssh in-process.

``localhost`` (also ``127.0.0.1``, ``::1``) runs the launcher as a local process — the embedded
default that needs no cluster and no SSH. Every other name, other loopback addresses and this
machine's own name included, is reached over SSH, so a host list behaves the same wherever the
server runs.

Remote launches (see ``ssh_command`` for the command and why the environment goes over stdin):

* argv comes from ``jupyter ssh-spec install`` and runs as given on the host. jupyter_client
  replaces an ``argv[0]`` of ``python``/``python3`` with the *server's* interpreter path; for a
  remote host that replacement is undone, so the host's own ``python`` on its PATH runs. An
  absolute interpreter path is used verbatim (install specs with ``--python`` set to the path on the
  hosts). ``{connection_file}``, ``{resource_dir}`` and ``{prefix}`` are server paths: do not use
  them in remote specs.
* The kernel gets only its own variables (``kernel_env.remote_kernel_env``), never the server's
  environment.
* Liveness, interrupt and shutdown use the launcher's authenticated comm port; when that does not
  answer, liveness is asked of the host (are the launcher's or the kernel's process groups still
  there?) and terminate and kill signal those groups over SSH. A host that cannot be reached either
  leaves the kernel "alive": only the launcher or the host may declare it dead.
* Logins use keys or the agent, and optionally Kerberos (``ssh_gss_auth``, GP's ``GP_REMOTE_GSS_SSH``) and a
  password (``GP_REMOTE_PWD`` / ``KF_SSH_PASSWORD`` or ``ssh_password_file``); see ``ssh.connections`` for how
  the password is kept out of logs and errors, and docs/kerberos.md.
"""

from __future__ import annotations

import getpass
import os
import signal
import sys
from typing import Any, ClassVar

from jupyter_client.connect import KernelConnectionInfo
from traitlets import Bool, Enum, Float, Integer, List, Unicode, default

from kernelfleet.protocol import CommOp, Report
from kernelfleet.provisioners.base import LaunchError, RemoteProvisionerBase
from kernelfleet.provisioners.envconfig import env_bool, env_list, env_number, env_value
from kernelfleet.provisioners.kernel_env import remote_kernel_env
from kernelfleet.provisioners.launch_events import LaunchProgress, Phase
from kernelfleet.provisioners.pool.config import WarmPoolConfig
from kernelfleet.provisioners.presence import Presence
from kernelfleet.provisioners.request_env import Engine
from kernelfleet.provisioners.ssh.command import check_env, encode_env, launch_command
from kernelfleet.provisioners.ssh.connections import HostUnavailable, SSHSettings, connection_pool
from kernelfleet.provisioners.ssh.host_launchers import (
    HostLauncher,
    LocalHostLauncher,
    SshHostLauncher,
    host_launcher_for,
    is_local_host,
)
from kernelfleet.provisioners.ssh.hosts import ALGORITHMS, balancer_for
from kernelfleet.provisioners.ssh.impersonation import DEFAULT_COMMAND
from kernelfleet.provisioners.ssh.kernel_argv import ArgvPolicy, kernel_argv
from kernelfleet.provisioners.ssh.launch import RemoteLaunch
from kernelfleet.provisioners.ssh.local_process import LauncherGroup
from kernelfleet.provisioners.ssh.tunnels import KernelTunnels

PASSWORD_VARIABLES = ("KF_SSH_PASSWORD", "GP_REMOTE_PWD")  # where a login password may be (by name)

# Launchers whose kernel leads its own process group and takes SIGINT to that group as an interrupt (the R
# launcher's comm listener ignores it). Toree's kernel is the launcher's JVM, which SIGINT would end.
SIGINT_GROUP_LAUNCHERS = ("python/", "r/")


class DistributedProvisioner(WarmPoolConfig, RemoteProvisionerBase):
    """``distributed-provisioner``: a kernel on one of ``remote_hosts``, over SSH, or as a local process for
    ``localhost`` (the embedded default). Configured per kernelspec in ``metadata.kernel_provisioner.config``
    or for the whole server as ``c.DistributedProvisioner.*``."""

    request_engine: ClassVar[Engine | None] = Engine.SSH
    launch_engine: ClassVar[str] = "ssh"

    remote_hosts = List(
        Unicode(), help="Hosts kernels may run on (env GP_REMOTE_HOSTS, comma-separated). Default: localhost."
    ).tag(config=True)
    load_balancing_algorithm = Enum(
        list(ALGORITHMS), help="How the next host is chosen (env GP_LOAD_BALANCING_ALGORITHM)."
    ).tag(config=True)
    ssh_user = Unicode(help="User to log in as on the hosts (env KF_SSH_USER / GP_REMOTE_USER; default: "
                       "the server's user).").tag(config=True)
    ssh_port = Integer(help="SSH port of the hosts (env KF_SSH_PORT / GP_SSH_PORT; default 22).").tag(config=True)
    ssh_key_files = List(
        Unicode(), help="Private key files to log in with (env KF_SSH_KEY_FILES, comma-separated). When empty, "
        "the SSH agent and ~/.ssh/id_* are used; when set, the agent is not."
    ).tag(config=True)
    ssh_agent_path = Unicode(
        help="SSH agent socket (env KF_SSH_AGENT_PATH, else SSH_AUTH_SOCK); empty: no agent."
    ).tag(config=True)
    known_hosts = Unicode(
        help="known_hosts file the hosts' keys are checked against (env KF_SSH_KNOWN_HOSTS; default "
        "~/.ssh/known_hosts). An unknown key is refused, never added."
    ).tag(config=True)
    host_key_checking = Bool(
        help="Check host keys (env KF_SSH_HOST_KEY_CHECKING; default true). False accepts ANY host key, "
        "which lets whoever can intercept the connection run the kernel and read its secrets."
    ).tag(config=True)
    ssh_gss_auth = Bool(
        help="Also log in with Kerberos (GSSAPI), using the server's ticket from its default credential cache "
        "(KRB5CCNAME) (env KF_SSH_GSS_AUTH / GP_REMOTE_GSS_SSH; default false). Needs the kerberos extra."
    ).tag(config=True)
    ssh_gss_host = Unicode(
        help="Host name of the hosts' Kerberos principal host/<name> (env KF_SSH_GSS_HOST; default: the name in "
        "remote_hosts), for hosts listed by address or alias."
    ).tag(config=True)
    ssh_gss_kex = Bool(
        help="With ssh_gss_auth, also use GSSAPI key exchange when the host offers it (env KF_SSH_GSS_KEX; "
        "default true)."
    ).tag(config=True)
    ssh_gss_delegate_credentials = Bool(
        help="With ssh_gss_auth, forward the ticket to the host so the kernel can reach Kerberized services (HDFS, "
        "Hive) as the user (env KF_SSH_GSS_DELEGATE; default false)."
    ).tag(config=True)
    ssh_password_file = Unicode(
        help="File holding the password to log in with (env KF_SSH_PASSWORD_FILE). Without it, the password is "
        "taken from env KF_SSH_PASSWORD or GP_REMOTE_PWD when set; either way it is read at connect time and never "
        "logged or shown in an error."
    ).tag(config=True)
    ssh_connect_timeout = Float(10.0, help="Seconds to wait for an SSH connection to a host.").tag(config=True)
    ssh_keepalive_interval = Float(
        30.0, help="Seconds between SSH keepalives, so a vanished host is noticed (0: none)."
    ).tag(config=True)
    tunneling = Bool(
        help="Reach the kernel's ports through SSH port forwards instead of directly (env KF_ENABLE_TUNNELING / "
        "GP_ENABLE_TUNNELING): for kernels whose ports only their host can reach."
    ).tag(config=True)
    remote_log_dir = Unicode(
        help="Directory on the hosts for the launcher's private log file (env KF_KERNEL_LOG_DIR / "
        "GP_KERNEL_LOG_DIR; default: the host's $TMPDIR or /tmp)."
    ).tag(config=True)
    keep_remote_logs = Bool(
        False, help="Keep each kernel's log file on its host after the kernel stopped (default: removed)."
    ).tag(config=True)
    spark_submit = Bool(
        False, help="Run the launcher (argv INTERPRETER SCRIPT.py|SCRIPT.R ...) through $SPARK_HOME/bin/spark-submit "
        "with the kernelspec env's SPARK_OPTS, the request's checked KERNEL_EXTRA_SPARK_OPTS and LAUNCH_OPTS, "
        "without a shell (jupyter ssh-spec install --spark writes it)."
    ).tag(config=True)
    impersonation_enabled = Bool(
        help="Run the kernel as the requesting user (KERNEL_USERNAME, checked against authorized_users and "
        "unauthorized_users) through impersonation_command, and with spark_submit as --proxy-user (env "
        "KF_IMPERSONATION_ENABLED / GP_IMPERSONATION_ENABLED)."
    ).tag(config=True)
    impersonation_command = List(
        Unicode(), list(DEFAULT_COMMAND), help="With impersonation_enabled: the argv prefix that runs the launcher "
        "as {user} on the host (default sudo -n -H -E -u {user} --; its sudoers rule needs SETENV). Empty: only "
        "spark-submit's --proxy-user."
    ).tag(config=True)

    @default("remote_hosts")
    def _remote_hosts_default(self) -> list[str]:
        return env_list(("KF_REMOTE_HOSTS", "GP_REMOTE_HOSTS"), ("localhost",))

    @default("load_balancing_algorithm")
    def _algorithm_default(self) -> str:
        return env_value(("KF_LOAD_BALANCING_ALGORITHM", "GP_LOAD_BALANCING_ALGORITHM")) or "round-robin"

    @default("ssh_user")
    def _ssh_user_default(self) -> str:
        return env_value(("KF_SSH_USER", "GP_REMOTE_USER")) or getpass.getuser()

    @default("ssh_port")
    def _ssh_port_default(self) -> int:
        return int(env_number(("KF_SSH_PORT", "GP_SSH_PORT"), 22))

    @default("ssh_key_files")
    def _ssh_key_files_default(self) -> list[str]:
        return env_list(("KF_SSH_KEY_FILES",), ())

    @default("ssh_agent_path")
    def _ssh_agent_path_default(self) -> str:
        return env_value(("KF_SSH_AGENT_PATH", "SSH_AUTH_SOCK")) or ""

    @default("ssh_gss_auth")
    def _ssh_gss_auth_default(self) -> bool:
        return env_bool(("KF_SSH_GSS_AUTH", "GP_REMOTE_GSS_SSH"), False)

    @default("ssh_gss_host")
    def _ssh_gss_host_default(self) -> str:
        return env_value(("KF_SSH_GSS_HOST",)) or ""

    @default("ssh_gss_kex")
    def _ssh_gss_kex_default(self) -> bool:
        return env_bool(("KF_SSH_GSS_KEX",), True)

    @default("ssh_gss_delegate_credentials")
    def _ssh_gss_delegate_default(self) -> bool:
        return env_bool(("KF_SSH_GSS_DELEGATE",), False)

    @default("ssh_password_file")
    def _ssh_password_file_default(self) -> str:
        return env_value(("KF_SSH_PASSWORD_FILE",)) or ""

    @default("known_hosts")
    def _known_hosts_default(self) -> str:
        return env_value(("KF_SSH_KNOWN_HOSTS",)) or "~/.ssh/known_hosts"

    @default("host_key_checking")
    def _host_key_checking_default(self) -> bool:
        return env_bool(("KF_SSH_HOST_KEY_CHECKING",), True)

    @default("tunneling")
    def _tunneling_default(self) -> bool:
        return env_bool(("KF_ENABLE_TUNNELING", "GP_ENABLE_TUNNELING"), False)

    @default("impersonation_enabled")
    def _impersonation_enabled_default(self) -> bool:
        return env_bool(("KF_IMPERSONATION_ENABLED", "GP_IMPERSONATION_ENABLED"), False)

    @default("remote_log_dir")
    def _remote_log_dir_default(self) -> str:
        return env_value(("KF_KERNEL_LOG_DIR", "GP_KERNEL_LOG_DIR")) or ""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.assigned_host: str | None = None
        self.host_launcher: HostLauncher | None = None  # local process or SSH, chosen with the host (host_launchers)
        self.kernel_pgid: int | None = None
        self._reserved: str | None = None  # host counted in the balancer (and held in the pool if remote)
        self._remote_input: tuple[str, bytes] | None = None  # this launch's SSH command and stdin, built once

    # ------------------------------------------------------------------------------------- the host's state
    @property
    def is_remote(self) -> bool:
        return isinstance(self.host_launcher, SshHostLauncher)

    @property
    def local_process(self) -> LauncherGroup | None:
        """The launcher as a local process (started here, or adopted after a server restart), if it is one."""
        return self.host_launcher.process if isinstance(self.host_launcher, LocalHostLauncher) else None

    @local_process.setter
    def local_process(self, process: LauncherGroup | None) -> None:
        if isinstance(self.host_launcher, LocalHostLauncher):
            self.host_launcher.process = process

    def _remote_state(self, name: str) -> Any:
        return getattr(self.host_launcher, name) if isinstance(self.host_launcher, SshHostLauncher) else None

    @property
    def remote_launch(self) -> RemoteLaunch | None:
        return self._remote_state("launch")  # type: ignore[no-any-return]

    @property
    def launcher_pid(self) -> int | None:
        """A remote launcher's pid, also its process group (setsid)."""
        return self._remote_state("launcher_pid")  # type: ignore[no-any-return]

    @property
    def remote_log(self) -> str | None:
        return self._remote_state("remote_log")  # type: ignore[no-any-return]

    @property
    def tunnels(self) -> KernelTunnels | None:
        return self._remote_state("tunnels")  # type: ignore[no-any-return]

    # ------------------------------------------------------------------------------------- hosts
    def ssh_settings(self) -> SSHSettings:
        return SSHSettings(
            user=self.ssh_user,
            port=self.ssh_port,
            key_files=tuple(self.ssh_key_files),
            agent_path=self.ssh_agent_path or None,
            known_hosts=self.known_hosts if self.host_key_checking else None,
            connect_timeout=self.ssh_connect_timeout,
            keepalive_interval=self.ssh_keepalive_interval,
            gss_auth=self.ssh_gss_auth,
            gss_host=self.ssh_gss_host or None,
            gss_kex=self.ssh_gss_kex,
            gss_delegate=self.ssh_gss_delegate_credentials,
            password_file=self.ssh_password_file or None,
            # the variable's name only: the password itself is read at connect time (ssh.connections)
            password_env=None if self.ssh_password_file else next(
                (name for name in PASSWORD_VARIABLES if os.environ.get(name)), None),
        )

    def begin_progress(self, kernel_id: str, engine: str) -> LaunchProgress:
        return super().begin_progress(kernel_id, "local" if self.launches_on_this_host() else engine)

    def launches_on_this_host(self) -> bool:
        return all(is_local_host(host) for host in self.remote_hosts or ["localhost"])

    def candidate_hosts(self, env: dict[str, str]) -> list[str]:
        """Hosts to try, in order: the client's KERNEL_REMOTE_HOST (only if listed), else the balancer's order."""
        hosts = list(self.remote_hosts) or ["localhost"]
        requested = env.get("KERNEL_REMOTE_HOST")
        if requested:
            if requested not in hosts:
                raise PermissionError(
                    f"Kernel {self.kernel_id}: KERNEL_REMOTE_HOST {requested!r} is not one of this kernelspec's "
                    f"remote_hosts {hosts}"
                )
            return [requested]
        return self._down_hosts_last(balancer_for(hosts).candidates(self.load_balancing_algorithm))

    def _down_hosts_last(self, hosts: list[str]) -> list[str]:
        """The balancer's order, with hosts whose last SSH connect failed recently moved to the end (see
        ``SSHConnectionPool.recently_failed``)."""
        pool, settings = connection_pool(), self.ssh_settings()
        down = [h for h in hosts if not is_local_host(h) and pool.recently_failed(h, settings)]
        if down:
            self.log.debug("Kernel %s: hosts %s failed recently; tried last", self.kernel_id, down)
        return [h for h in hosts if h not in down] + down

    def _reserve(self, host: str) -> HostLauncher:
        """Assign ``host``: count the kernel on it and choose how its launcher runs there (``host_launcher_for``)."""
        self._release()
        balancer_for(list(self.remote_hosts) or ["localhost"]).acquire(host)
        launcher = host_launcher_for(self, host)
        launcher.hold()
        self._reserved = self.assigned_host = host
        self.host_launcher = launcher
        return launcher

    def _release(self) -> None:
        host, self._reserved = self._reserved, None
        if host is None:
            return
        balancer_for(list(self.remote_hosts) or ["localhost"]).release(host)
        if self.host_launcher is not None:
            self.host_launcher.unhold()

    # ------------------------------------------------------------------------------------- launch
    async def start_launcher(self, cmd: list[str], env: dict[str, str], **kwargs: Any) -> None:
        reasons: list[str] = []
        self._remote_input = None
        for host in self.candidate_hosts(env):
            launcher = self._reserve(host)
            self.progress.engine = "local" if is_local_host(host) else "ssh"
            self.progress.emit(Phase.HOST_CHOSEN, host=host)
            try:
                await launcher.start(cmd, env, kwargs.get("cwd"))
                return
            except HostUnavailable as err:
                self._release()
                self.assigned_host = self.host_launcher = None
                reasons.append(f"{host}: {err}")
                self.log.warning("Kernel %s: host %s skipped: %s", self.kernel_id, host, err)
        raise LaunchError(f"Kernel {self.kernel_id}: no host could start the kernel — " + "; ".join(reasons))

    async def start_from_pool(self, cmd: list[str], env: dict[str, str], **kwargs: Any) -> bool:
        """A standby of this kernelspec's warm pool, claimed for this kernel, as the launcher a cold launch would
        have started: a local process (``ssh.standbys``) or a launcher on one of the SSH hosts
        (``ssh.remote_standbys``); False when the launch goes cold."""
        if self.warm_pool_size <= 0:
            return False
        requested = env.get("KERNEL_REMOTE_HOST")
        if requested and requested not in (self.remote_hosts or ["localhost"]):
            return False  # start_launcher refuses it with the reason
        if self.launches_on_this_host():
            return await self._claim_local(cmd, env, kwargs.get("cwd"))
        if any(is_local_host(host) for host in self.remote_hosts):
            self.log.debug("Kernel %s: cold launch (pools serve either localhost or SSH hosts)", self.kernel_id)
            return False
        return await self._claim_remote(cmd, env)

    async def _claim_local(self, cmd: list[str], env: dict[str, str], cwd: str | None) -> bool:
        from kernelfleet.provisioners.ssh.standbys import claim_local_standby

        self._taken_from, process, standby_id = await claim_local_standby(self, cmd, env, cwd)
        if process is None:
            return False
        host = env.get("KERNEL_REMOTE_HOST") or (list(self.remote_hosts) or ["localhost"])[0]
        launcher = self._reserve(host)
        assert isinstance(launcher, LocalHostLauncher)
        launcher.process = process
        launcher.standby_id = standby_id
        self._pool_chosen(host)
        return True

    async def _claim_remote(self, cmd: list[str], env: dict[str, str]) -> bool:
        from kernelfleet.provisioners.ssh.remote_standbys import claim_remote_standby

        self._taken_from, standby, renaming = await claim_remote_standby(self, cmd, env)
        if standby is None or renaming is None:
            return False
        launcher = self._reserve(standby.host)
        assert isinstance(launcher, SshHostLauncher)
        launcher.adopt_standby(standby.pid, standby.log_path, renaming)
        self._pool_chosen(standby.host)
        return True

    def _pool_chosen(self, host: str) -> None:
        self.progress.engine = "local" if is_local_host(host) else "ssh"
        self.pool_chosen(host=host)

    def standby_argv(self) -> list[str]:
        """The argv a cold launch of this kernelspec would run, its protocol placeholders still open (pools)."""
        return self._base_cmd(None)

    def remote_launch_input(self, cmd: list[str], env: dict[str, str]) -> tuple[str, bytes]:
        """The SSH command and its stdin (the kernel's environment), built once per launch: a bad value is the
        request's fault, not a host's."""
        if self._remote_input is None:
            payload = encode_env(self.remote_env(env))
            self._remote_input = launch_command(self.kernel_argv(self.remote_argv(cmd), env), self.kernel_id,
                                                self.remote_log_dir, self.keep_remote_logs), payload
        return self._remote_input

    def remote_env(self, env: dict[str, str]) -> dict[str, str]:
        """What a remote launcher of this kernel gets of ``env``, checked for the trip (``check_env``): the cold
        launch's stdin, and the environment a claimed standby is given (``ssh.remote_standbys``)."""
        spec_env = dict(self.kernel_spec.env) if self.kernel_spec else {}
        selected = remote_kernel_env(
            self.kernel_id, env, spec_env_names=spec_env, protocol_env=self.launch_env,
            inherited_envs=self.inherited_envs,
        )
        return check_env(self.kernel_id, selected, trusted_names=spec_env)

    def kernel_argv(self, cmd: list[str], env: dict[str, str]) -> list[str]:
        """``cmd`` under spark-submit and/or as the requesting user, as the kernelspec asks (``ssh.kernel_argv``);
        the host launchers call it once per launch, local or remote."""
        policy = ArgvPolicy(self.spark_submit, self.impersonation_enabled, tuple(self.impersonation_command),
                            frozenset(self.authorized_users), frozenset(self.unauthorized_users))
        operator_env = {**os.environ, **(self.kernel_spec.env if self.kernel_spec else {})}
        return kernel_argv(self.kernel_id, cmd, policy, operator_env=operator_env, request_env=env)

    async def stopped_as_other_user(self, op: CommOp) -> bool:
        """An impersonated local launcher runs as another user, whom this server may not signal: its comm port
        (which the launcher answers as that user) stops it first."""
        if not (self.impersonation_enabled and self.impersonation_command and self.comm_port):
            return False
        reply = await self.comm_request(op)
        return bool(reply and reply.get("ok"))

    def remote_argv(self, cmd: list[str]) -> list[str]:
        """Undo jupyter_client's ``python`` → server-interpreter replacement (see module docstring)."""
        spec_argv = list(self.kernel_spec.argv) if self.kernel_spec else []
        if cmd and spec_argv and cmd[0] == sys.executable and spec_argv[0] != sys.executable:
            return [spec_argv[0], *cmd[1:]]
        return list(cmd)

    async def launch_failure(self) -> str:
        assert self.host_launcher is not None
        return await self.host_launcher.launch_failure()

    async def launch_diagnostics(self) -> str:
        if self.host_launcher is None:
            return "the launcher was never started"
        return self.host_launcher.diagnostics()

    async def launch_kernel(self, cmd: list[str], **kwargs: Any) -> KernelConnectionInfo:
        try:
            info = await super().launch_kernel(cmd, **kwargs)
            return await self.host_launcher.reported(info) if self.host_launcher is not None else info
        except BaseException:
            if self.host_launcher is not None:
                await self.host_launcher.abandon()
            self._release()
            raise

    def kernel_address(self, report: Report) -> str:
        ip = super().kernel_address(report)
        return self.host_launcher.kernel_address(ip) if self.host_launcher is not None else ip

    def _accept_report(self, report: Report) -> None:
        super()._accept_report(report)
        self.kernel_pgid = report.pgid

    # ------------------------------------------------------------------------------------- lifecycle
    @property
    def has_process(self) -> bool:
        return self.local_process is not None or self.remote_launch is not None or super().has_process

    async def poll(self) -> int | None:
        if self.host_launcher is None:
            return await super().poll()
        return await self.host_launcher.poll(super().poll)

    async def wait(self) -> int | None:
        if self.host_launcher is None:
            return await super().wait()
        return await self.host_launcher.wait(super().wait)

    async def presence(self) -> Presence:
        """The host launcher's word: the local process itself, or the comm port and then the host over SSH."""
        if self.host_launcher is None:
            return await super().presence()
        return await self.host_launcher.presence(super().presence)

    async def send_signal(self, signum: int) -> None:
        """An interrupt the comm port could not carry (it did not answer within comm_timeout: a flood, or a
        launcher that accepts slowly) goes to the kernel's own process group through the engine: the local
        process group, or a signal over SSH. Only for launchers whose kernel takes that signal as an
        interrupt (SIGINT_GROUP_LAUNCHERS); everything else is the base class's comm-port path."""
        fallback = signum == signal.SIGINT and self.kernel_pgid and self.launcher_name.startswith(
            SIGINT_GROUP_LAUNCHERS)
        if not fallback:
            await super().send_signal(signum)
            return
        reply = await self.comm_request(CommOp.INTERRUPT)
        if reply and reply.get("ok"):
            self.log.info("Kernel %s: interrupted", self.kernel_id)
        elif self.host_launcher is not None and self.kernel_pgid and await self.host_launcher.interrupt_group(
                self.kernel_pgid):
            self.log.info("Kernel %s: interrupted through its process group (the comm port did not answer)",
                          self.kernel_id)
        else:
            self.log.warning("Kernel %s: interrupt could not be delivered", self.kernel_id)

    async def terminate(self, restart: bool = False) -> None:
        if self.host_launcher is None:
            await self.comm_request(CommOp.TERMINATE)
            return
        await self.host_launcher.terminate()

    async def kill(self, restart: bool = False) -> None:
        if self.host_launcher is None:
            await self.comm_request(CommOp.KILL)
            return
        await self.host_launcher.kill()

    async def cleanup(self, restart: bool = False) -> None:
        if self.host_launcher is not None:
            await self.host_launcher.cleanup()
        self._release()
        self.assigned_host = self.host_launcher = None
        self.kernel_pgid = None
        await super().cleanup(restart)

    async def detach(self) -> None:
        if self.host_launcher is not None:
            self.host_launcher.detach()
        self._release()

    # ------------------------------------------------------------------------------------- persistence
    async def get_provisioner_info(self) -> dict[str, Any]:
        info = await super().get_provisioner_info()
        info.update(assigned_host=self.assigned_host, launcher_pid=None, kernel_pgid=self.kernel_pgid,
                    remote_log=None, tunnel=None)
        if self.host_launcher is not None:
            info.update(self.host_launcher.info())
        return info

    async def load_provisioner_info(self, provisioner_info: dict[str, Any]) -> None:
        """Reattach after a server restart: count the kernel on its host, reconnect, reopen its tunnels."""
        await super().load_provisioner_info(provisioner_info)
        host = provisioner_info.get("assigned_host")
        self.kernel_pgid = provisioner_info.get("kernel_pgid")
        if not host:
            return
        await self._reserve(host).reattach(provisioner_info)
