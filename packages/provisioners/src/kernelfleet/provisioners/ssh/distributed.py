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
* Password authentication (``GP_REMOTE_PWD``) is not supported: use keys or an agent.
"""

from __future__ import annotations

import asyncio
import getpass
import os
import signal
import sys
from typing import Any, ClassVar

import asyncssh
from jupyter_client.connect import KernelConnectionInfo
from traitlets import Bool, Enum, Float, Integer, List, Unicode, default

from kernelfleet.protocol import CommOp, Report
from kernelfleet.provisioners.base import LaunchError, RemoteProvisionerBase
from kernelfleet.provisioners.envconfig import env_bool, env_list, env_number, env_value
from kernelfleet.provisioners.kernel_env import remote_kernel_env
from kernelfleet.provisioners.presence import Presence
from kernelfleet.provisioners.request_env import Engine
from kernelfleet.provisioners.server_identity import LOCAL_LAUNCH_ENV
from kernelfleet.provisioners.ssh.adopted_process import AdoptedLocalProcess, run_local_shell
from kernelfleet.provisioners.ssh.command import (
    check_env,
    encode_env,
    launch_command,
    signal_command,
    sweep_command,
)
from kernelfleet.provisioners.ssh.connections import HostUnavailable, SSHSettings, connection_pool
from kernelfleet.provisioners.ssh.exit_watch import HostExitWatch
from kernelfleet.provisioners.ssh.hosts import ALGORITHMS, balancer_for
from kernelfleet.provisioners.ssh.launch import RemoteLaunch, run_command
from kernelfleet.provisioners.ssh.local_process import LauncherGroup, LocalLauncherProcess
from kernelfleet.provisioners.ssh.tunnels import KERNEL_PORTS, LOCAL_ADDRESS, KernelTunnels, TunnelError

LOCAL_NAMES = frozenset({"localhost", "localhost.localdomain", "127.0.0.1", "::1", ""})
UNROUTABLE = frozenset({"", "0.0.0.0", "::"})
STOP_GRACE = 3.0  # seconds an unreported launcher gets between SIGTERM and SIGKILL
# How long poll() waits for its answer. A kernel that answers, or whose host says it is gone, is known well within it;
# past it (a partition: the comm port, then the host, time out) poll() says "not known to be dead" at once and the
# check goes on, for the next poll() to take its answer: jupyter_client's restarter, which polls every
# time_to_dead seconds, is never held for comm_timeout plus the SSH command's timeout.
POLL_WAIT = 0.5


# Launchers whose kernel leads its own process group and takes SIGINT to that group as an interrupt (the R
# launcher's comm listener ignores it). Toree's kernel is the launcher's JVM, which SIGINT would end.
SIGINT_GROUP_LAUNCHERS = ("python/", "r/")


def is_local_host(host: str) -> bool:
    """True for the names that mean "run the launcher as a local process" (no SSH)."""
    return host.strip().lower() in LOCAL_NAMES


def _is_loopback(ip: str) -> bool:
    return ip.startswith("127.") or ip in ("::1", "localhost")


class DistributedProvisioner(RemoteProvisionerBase):
    """``distributed-provisioner``: a kernel on one of ``remote_hosts``, over SSH, or as a local process for
    ``localhost`` (the embedded default). Configured per kernelspec in ``metadata.kernel_provisioner.config``
    or for the whole server as ``c.DistributedProvisioner.*``."""

    request_engine: ClassVar[Engine | None] = Engine.SSH

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

    @default("known_hosts")
    def _known_hosts_default(self) -> str:
        return env_value(("KF_SSH_KNOWN_HOSTS",)) or "~/.ssh/known_hosts"

    @default("host_key_checking")
    def _host_key_checking_default(self) -> bool:
        return env_bool(("KF_SSH_HOST_KEY_CHECKING",), True)

    @default("tunneling")
    def _tunneling_default(self) -> bool:
        return env_bool(("KF_ENABLE_TUNNELING", "GP_ENABLE_TUNNELING"), False)

    @default("remote_log_dir")
    def _remote_log_dir_default(self) -> str:
        return env_value(("KF_KERNEL_LOG_DIR", "GP_KERNEL_LOG_DIR")) or ""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.assigned_host: str | None = None
        self.local_process: LauncherGroup | None = None  # started here, or adopted after a server restart
        self.remote_launch: RemoteLaunch | None = None
        self.launcher_pid: int | None = None  # remote: the launcher's pid, also its process group (setsid)
        self.kernel_pgid: int | None = None
        self.launcher_name = ""  # the report's "launcher" ("python/0.1.0", "r/0.1.0", "scala/0.1.0")
        self.remote_log: str | None = None
        self.tunnels: KernelTunnels | None = None
        self._reserved: str | None = None  # host counted in the balancer (and held in the pool if remote)
        self._exit_follower: asyncio.Task[None] | None = None  # the host's exit watch on a remote launcher
        self._poll_check: asyncio.Task[int | None] | None = None  # a remote poll() answer still under way
        self.launcher_gone = False  # the host said the remote launcher exited (its kernel goes with it)

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
        )

    @property
    def is_remote(self) -> bool:
        return self.assigned_host is not None and not is_local_host(self.assigned_host)

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

    def _reserve(self, host: str) -> None:
        self._release()
        balancer_for(list(self.remote_hosts) or ["localhost"]).acquire(host)
        if not is_local_host(host):
            connection_pool().hold(host, self.ssh_settings())
        self._reserved = self.assigned_host = host

    def _release(self) -> None:
        host, self._reserved = self._reserved, None
        if host is None:
            return
        balancer_for(list(self.remote_hosts) or ["localhost"]).release(host)
        if not is_local_host(host):
            connection_pool().release(host, self.ssh_settings())

    # ------------------------------------------------------------------------------------- launch
    async def start_launcher(self, cmd: list[str], env: dict[str, str], **kwargs: Any) -> None:
        reasons: list[str] = []
        remote: tuple[str, bytes] | None = None
        for host in self.candidate_hosts(env):
            self._reserve(host)
            if is_local_host(host):
                env.setdefault("KERNEL_IP", "127.0.0.1")
                env[LOCAL_LAUNCH_ENV] = "1"  # tells the orphan sweep's local and SSH views apart
                self.local_process = await LocalLauncherProcess.start(
                    self.kernel_id, cmd, env, kwargs.get("cwd"), self.log
                )
                self.log.info("Kernel %s: running as local process %s", self.kernel_id, self.local_process.pid)
                return
            if remote is None:  # built once: a bad value is the request's fault, not a host's
                remote = self._remote_launch_input(cmd, env)
            try:
                await self._start_remote(host, *remote)
                return
            except HostUnavailable as err:
                self._release()
                self.assigned_host = None
                reasons.append(f"{host}: {err}")
                self.log.warning("Kernel %s: host %s skipped: %s", self.kernel_id, host, err)
        raise LaunchError(f"Kernel {self.kernel_id}: no host could start the kernel — " + "; ".join(reasons))

    def _remote_launch_input(self, cmd: list[str], env: dict[str, str]) -> tuple[str, bytes]:
        spec_env = dict(self.kernel_spec.env) if self.kernel_spec else {}
        selected = remote_kernel_env(
            self.kernel_id, env, spec_env_names=spec_env, protocol_env=self.launch_env,
            inherited_envs=self.inherited_envs,
        )
        payload = encode_env(check_env(self.kernel_id, selected, trusted_names=spec_env))
        return launch_command(self._remote_argv(cmd), self.kernel_id, self.remote_log_dir,
                               self.keep_remote_logs), payload

    def _remote_argv(self, cmd: list[str]) -> list[str]:
        """Undo jupyter_client's ``python`` → server-interpreter replacement (see module docstring)."""
        spec_argv = list(self.kernel_spec.argv) if self.kernel_spec else []
        if cmd and spec_argv and cmd[0] == sys.executable and spec_argv[0] != sys.executable:
            return [spec_argv[0], *cmd[1:]]
        return list(cmd)

    async def _start_remote(self, host: str, command: str, payload: bytes) -> None:
        settings = self.ssh_settings()
        if settings.known_hosts is None:
            self.log.warning("Kernel %s: host key checking is OFF for %s (host_key_checking=False)",
                             self.kernel_id, host)
        pool = connection_pool()
        conn = await pool.connect(host, settings)
        launch = await RemoteLaunch.start(
            conn, host, self.kernel_id, command, payload, self.ssh_connect_timeout, self.log,
            pool.sessions(host, settings),
        )
        self.remote_launch = launch
        self.launcher_pid, self.remote_log, self.kernel_pgid = launch.pid, launch.log_path, None
        self.log.info("Kernel %s: running on %s as pid %s", self.kernel_id, host, launch.pid)

    async def launch_failure(self) -> str:
        if self.local_process is not None:
            return self.local_process.describe_exit(await self.local_process.wait())
        assert self.remote_launch is not None
        await self.remote_launch.exited()
        return self.remote_launch.describe_exit()

    async def launch_diagnostics(self) -> str:
        if self.local_process is not None:
            tail = "\n".join(self.local_process.stderr_tail)
            return f"launcher pid {self.local_process.pid} is still running" + (
                f"; its output:\n{tail}" if tail else "")
        if self.remote_launch is not None:
            return (f"launcher pid {self.remote_launch.pid} on {self.remote_launch.host} is still running; "
                    f"its log is {self.remote_launch.log_path} on that host")
        return "the launcher was never started"

    async def launch_kernel(self, cmd: list[str], **kwargs: Any) -> KernelConnectionInfo:
        try:
            info = await super().launch_kernel(cmd, **kwargs)
            if self.remote_launch is not None:
                await self.remote_launch.detach()
                self.remote_launch = None
            if self.is_remote and self.tunneling:
                info = await self._open_tunnels()
            return info
        except BaseException:
            if self.remote_launch is not None:
                await self.remote_launch.detach()
                self.remote_launch = None
            self._release()
            raise

    def kernel_address(self, report: Report) -> str:
        if self.local_process is not None:
            return "127.0.0.1"
        ip = super().kernel_address(report)
        if self.is_remote and not self.tunneling and (ip in UNROUTABLE or _is_loopback(ip)):
            assert self.assigned_host is not None
            return self.assigned_host  # the launcher's address is only meaningful on its own host
        return ip

    def _accept_report(self, report: Report) -> None:
        super()._accept_report(report)
        self.kernel_pgid = report.pgid
        self.launcher_name = str(report.extra.get("launcher") or "")

    # ------------------------------------------------------------------------------------- tunnels
    async def _open_tunnels(self, preferred: dict[str, int] | None = None,
                            state: dict[str, Any] | None = None) -> KernelConnectionInfo:
        """Forward the five kernel ports and the comm port; rewrite connection_info to the local ends."""
        assert self.assigned_host is not None
        if state is not None:
            tunnels = KernelTunnels(str(state["remote_ip"]), dict(state["remote_ports"]))
        else:
            info = self.connection_info
            ports = {name: int(info[name]) for name in KERNEL_PORTS}
            ports["comm_port"] = int(self.comm_port or 0)
            tunnels = KernelTunnels(str(info["ip"]), ports)
        try:
            conn = await connection_pool().connect(self.assigned_host, self.ssh_settings())
            local = await tunnels.open(conn, preferred, self.log)
        except (HostUnavailable, TunnelError) as err:
            if state is None:
                await self.kill()
            raise LaunchError(f"Kernel {self.kernel_id}: cannot tunnel to its ports on {self.assigned_host}: "
                              f"{err}") from None
        self.tunnels = tunnels
        info = dict(self.connection_info)
        info["ip"] = LOCAL_ADDRESS
        info.update({name: local[name] for name in KERNEL_PORTS})
        self.connection_info = info
        self.comm_host, self.comm_port = LOCAL_ADDRESS, local["comm_port"]
        self.log.debug("Kernel %s: tunnelled through %s to %s", self.kernel_id, self.assigned_host,
                       tunnels.remote_ip)
        return info

    async def _repair_tunnels(self) -> None:
        """The host's connection dropped (network blip, keepalive timeout): open the same forwards again.

        Checked on every poll, which jupyter_client's restarter runs every few seconds anyway.
        """
        assert self.tunnels is not None
        state = self.tunnels.state()
        self.tunnels.close()
        self.tunnels = None
        try:
            await self._open_tunnels(preferred=dict(state["local_ports"]), state=state)  # type: ignore[arg-type]
        except LaunchError as err:
            self.log.warning("%s; will retry", err)
            self.tunnels = KernelTunnels(str(state["remote_ip"]), dict(state["remote_ports"]))  # type: ignore[arg-type]
            self.tunnels.local_ports = dict(state["local_ports"])  # type: ignore[arg-type]
        else:
            self.log.info("Kernel %s: tunnels to %s reopened", self.kernel_id, self.assigned_host)

    # ------------------------------------------------------------------------------------- lifecycle
    @property
    def has_process(self) -> bool:
        return self.local_process is not None or self.remote_launch is not None or super().has_process

    async def poll(self) -> int | None:
        """Local: the launcher's exit status. Remote: the comm port's or the host's answer within POLL_WAIT, else
        None (not known to be dead) while the check goes on for the next call; the host's exit watch, followed from
        the first call on, reports an exit at once either way."""
        if self.local_process is not None:
            return self.local_process.returncode
        if not self.is_remote:
            return await self._check_poll()
        if self.launcher_gone and self.comm_port:
            return 0
        if self._poll_check is None or self._stale(self._poll_check):
            self._poll_check = asyncio.ensure_future(self._check_poll())
        check = self._poll_check
        done, _ = await asyncio.wait({check}, timeout=POLL_WAIT)
        if not done:
            self.log.debug("Kernel %s: no answer from %s within %gs; not known to be dead", self.kernel_id,
                           self.assigned_host, POLL_WAIT)
            return None
        self._poll_check = None
        if check.cancelled():  # cleanup or detach ended it meanwhile
            return None if self.comm_port else 0
        return check.result()

    @staticmethod
    def _stale(check: asyncio.Task[int | None]) -> bool:
        """A finished check nobody took that found no death (or failed): its "alive" is old news, so ask again."""
        return check.done() and (check.cancelled() or check.exception() is not None or check.result() is None)

    async def _check_poll(self) -> int | None:
        if self.tunnels is not None and self.tunnels.broken:
            await self._repair_tunnels()
        code = await super().poll()
        if code is None:
            self._follow_remote_exit()  # from now on the host tells us at once when the launcher exits
        return code

    async def wait(self) -> int | None:
        if self.local_process is not None:
            return await self.local_process.wait()
        if self.is_remote and self.launcher_pid:
            while await self.poll() is None:
                follower = self._follow_remote_exit()
                if follower is None:
                    break
                await asyncio.wait({follower})  # ends when the launcher exited, or cleanup stopped following
            return 0
        return await super().wait()

    def _follow_remote_exit(self) -> asyncio.Task[None] | None:
        """The task that learns from the host's exit watch (``ssh_exit_watch``) when the remote launcher exits;
        started by the first ``poll()`` or ``wait()`` of a reported remote kernel, ended by its cleanup."""
        if not (self.is_remote and self.launcher_pid and self.comm_port) or self.launcher_gone:
            return None
        if self._exit_follower is None or self._exit_follower.done():
            self._exit_follower = asyncio.ensure_future(self._await_remote_exit(self.launcher_pid))
        return self._exit_follower

    async def _await_remote_exit(self, pid: int) -> None:
        """Only the host's word that the launcher exited counts; a watch that cannot be opened or breaks proves
        nothing, and is tried again less and less often while the host does not answer."""
        pause = 0.05
        assert self.assigned_host is not None
        watch = HostExitWatch.of(self.assigned_host, self.ssh_settings())
        while True:
            try:
                if await watch.until_gone(pid):
                    break
            except (HostUnavailable, asyncssh.Error, OSError) as err:
                self.log.debug("Kernel %s: no exit watch on %s: %s", self.kernel_id, self.assigned_host, err)
            await asyncio.sleep(pause)
            pause = min(pause * 2, 5.0)
        if pid == self.launcher_pid:
            self.launcher_gone = True
            self.log.info("Kernel %s: its launcher (pid %s) exited on %s", self.kernel_id, pid, self.assigned_host)

    def _stop_following(self) -> None:
        follower, self._exit_follower = self._exit_follower, None
        if follower is not None:
            follower.cancel()
        check, self._poll_check = self._poll_check, None
        if check is not None:
            check.cancel()
        self.launcher_gone = False

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
        elif await self._interrupt_group():
            self.log.info("Kernel %s: interrupted through its process group (the comm port did not answer)",
                          self.kernel_id)
        else:
            self.log.warning("Kernel %s: interrupt could not be delivered", self.kernel_id)

    async def _interrupt_group(self) -> bool:
        assert self.kernel_pgid
        if self.local_process is not None:
            if self.local_process.returncode is not None:
                return False  # the launcher is gone; its kernel's group id may name someone else by now
            try:
                os.killpg(self.kernel_pgid, signal.SIGINT)
            except OSError:
                return False
            return True
        if not self.is_remote:
            return False
        present = await self._run_signal_remote("INT", [self.kernel_pgid])
        return bool(present)

    async def presence(self) -> Presence:
        """Local: the launcher process itself. Remote: its comm port, else its process groups tested over SSH."""
        if self.assigned_host is None:
            return await super().presence()
        if not self.is_remote:
            running = self.local_process is not None and self.local_process.returncode is None
            return Presence.RUNNING if running else Presence.GONE
        if self.launcher_gone:
            return Presence.GONE
        answer = await super().presence()
        if answer is not Presence.UNREACHABLE:
            return answer
        # The comm port did not answer: the host itself says whether the launcher's or the kernel's process group
        # is still there (the launch channel is closed once the kernel reported). An unreachable host is unknown.
        # The host's exit watch may say it sooner than that command: whichever answers first.
        check = asyncio.ensure_future(self._signal_remote("0"))
        follower = self._exit_follower
        try:
            await asyncio.wait({check} | ({follower} if follower is not None else set()),
                               return_when=asyncio.FIRST_COMPLETED)
        finally:
            if self.launcher_gone:
                check.cancel()
        if self.launcher_gone:
            return Presence.GONE
        present = await check
        if present is None:
            return Presence.UNREACHABLE
        if not present:
            self.log.info("Kernel %s: its processes are gone from %s", self.kernel_id, self.assigned_host)
            return Presence.GONE
        return Presence.RUNNING

    async def terminate(self, restart: bool = False) -> None:
        if self.local_process is not None:
            self.local_process.signal_group(signal.SIGTERM)
            return
        reply = await self.comm_request(CommOp.TERMINATE)
        if self.is_remote and not (reply and reply.get("ok")):
            await self._signal_remote("TERM")

    async def kill(self, restart: bool = False) -> None:
        if self.local_process is not None:
            self.local_process.signal_group(signal.SIGKILL)
            await self.local_process.wait()
            return
        if self.remote_launch is not None and self.comm_port is None:
            await self._stop_unreported_launch()
            return
        reply = await self.comm_request(CommOp.KILL)
        if self.is_remote and not (reply and reply.get("ok")):
            await self._signal_remote("KILL")

    async def _stop_unreported_launch(self) -> None:
        """The launcher has not reported: SIGTERM its group (it stops its kernel), SIGKILL if it lingers."""
        launch = self.remote_launch
        assert launch is not None
        if launch.exit_code is not None:
            return  # it died by itself (the usual way a launch fails): nothing to stop
        launch.release_slot()
        await self._signal_remote("TERM")
        try:
            await asyncio.wait_for(launch.exited(), STOP_GRACE)
        except (TimeoutError, asyncio.CancelledError):
            await self._signal_remote("KILL")

    async def _signal_remote(self, signal_name: str) -> list[str] | None:
        """The fallback when the comm port is gone: signal (``0``: test) the process groups over SSH.

        Returns the groups that were still there (empty when none were), None when the host cannot be reached.
        """
        return await self._run_signal_remote(signal_name, [g for g in (self.launcher_pid, self.kernel_pgid) if g])

    async def _run_signal_remote(self, signal_name: str, groups: list[int]) -> list[str] | None:
        if not groups or self.assigned_host is None:
            return []
        try:
            present = (await self._run_remote(signal_command(self.kernel_id, signal_name, groups))).split()
        except (HostUnavailable, asyncssh.Error, OSError, TimeoutError) as err:
            self.log.warning("Kernel %s: cannot signal its processes on %s: %s", self.kernel_id, self.assigned_host,
                             err)
            return None
        self.log.debug("Kernel %s: signal %s over SSH to groups %s on %s (present: %s)", self.kernel_id,
                       signal_name, groups, self.assigned_host, present or "none")
        return present

    async def cleanup(self, restart: bool = False) -> None:
        self._stop_following()
        if self.local_process is not None and self.local_process.returncode is None:
            await self.local_process.stop()
        if isinstance(self.local_process, AdoptedLocalProcess):
            await self._sweep_adopted(self.local_process)
        self.local_process = None
        if self.remote_launch is not None:
            await self.remote_launch.detach()
            self.remote_launch = None
        if self.tunnels is not None:
            self.tunnels.close()
            self.tunnels = None
        if self.is_remote:
            await self._sweep_remote()
        self._release()
        self.assigned_host = self.remote_log = None
        self.launcher_pid = self.kernel_pgid = None
        await super().cleanup(restart)

    async def detach(self) -> None:
        self._stop_following()
        if isinstance(self.local_process, AdoptedLocalProcess):
            self.local_process.close()
        self.local_process = None
        if self.tunnels is not None:
            self.tunnels.close()
            self.tunnels = None
        self._release()

    async def _sweep_adopted(self, launcher: AdoptedLocalProcess) -> None:
        """An adopted launcher has exited; its kernel's group, which a child launcher takes along, may not have."""
        launcher.close()
        if self.kernel_pgid:
            killed = (await run_local_shell(sweep_command(self.kernel_id, [self.kernel_pgid], None))).split()
            if killed:
                self.log.info("Kernel %s: killed leftover process group %s", self.kernel_id, killed)

    async def _run_remote(self, command: str) -> str:
        assert self.assigned_host is not None
        pool, settings = connection_pool(), self.ssh_settings()
        conn = await pool.connect(self.assigned_host, settings)
        return await run_command(conn, command, self.comm_timeout + 5, pool.sessions(self.assigned_host, settings))

    async def _sweep_remote(self) -> None:
        """One SSH command after every stop: kill what is left of the kernel's groups, remove its log.

        A launcher that hangs (stopped, wedged) never acts on the comm port's kill; this sweep is
        what guarantees nothing is left on the host
        (``signal_command`` only hits groups still carrying this kernel's id).
        """
        assert self.assigned_host is not None
        groups = [g for g in (self.launcher_pid, self.kernel_pgid) if g]
        log_path = None if self.keep_remote_logs else self.remote_log
        if not groups and not log_path:
            return
        try:
            killed = await self._run_remote(sweep_command(self.kernel_id, groups, log_path))
        except (HostUnavailable, asyncssh.Error, OSError, TimeoutError) as err:
            self.log.warning("Kernel %s: cannot clean up on %s: %s", self.kernel_id, self.assigned_host, err)
            return
        if killed.split():
            self.log.info("Kernel %s: killed leftover process groups %s on %s", self.kernel_id, killed.split(),
                          self.assigned_host)

    # ------------------------------------------------------------------------------------- persistence
    async def get_provisioner_info(self) -> dict[str, Any]:
        info = await super().get_provisioner_info()
        info.update(
            assigned_host=self.assigned_host,
            launcher_pid=self.launcher_pid,
            kernel_pgid=self.kernel_pgid,
            remote_log=self.remote_log,
            tunnel=self.tunnels.state() if self.tunnels is not None else None,
        )
        return info

    async def load_provisioner_info(self, provisioner_info: dict[str, Any]) -> None:
        """Reattach after a server restart: count the kernel on its host, reconnect, reopen its tunnels."""
        await super().load_provisioner_info(provisioner_info)
        host = provisioner_info.get("assigned_host")
        self.launcher_pid = provisioner_info.get("launcher_pid")
        self.kernel_pgid = provisioner_info.get("kernel_pgid")
        self.remote_log = provisioner_info.get("remote_log")
        if not host:
            return
        self._reserve(host)
        if is_local_host(host):
            if self.remote_pid:  # the launcher's pid (it reported its own)
                self.local_process = await AdoptedLocalProcess.adopt(self.kernel_id, int(self.remote_pid), self.log)
            return
        tunnel = provisioner_info.get("tunnel")
        if not tunnel:
            return
        try:
            await self._open_tunnels(preferred=dict(tunnel.get("local_ports") or {}), state=tunnel)
        except LaunchError as err:
            self.log.warning("%s; the kernel is unreachable until its host is", err)
