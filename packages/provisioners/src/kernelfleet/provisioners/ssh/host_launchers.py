"""Where a distributed kernel's launcher runs, as a strategy chosen once per assigned host: ``LocalHostLauncher``
(a process of this server, for ``localhost``) or ``SshHostLauncher`` (a process on another host, over SSH).

``DistributedProvisioner`` picks one with ``host_launcher_for`` when it assigns a host (at launch, or when a
restarted server takes a kernel over) and drives every step through it — start, early death, address, liveness,
signals, stop, reattach — so the provisioner's own methods read the same for both and branch on nothing. Each
strategy keeps the state only its kind has: the local process, or the remote launch, its pid, log, tunnels and exit
watch. The ``base_*`` callables are the protocol's generic answers (the comm port's), which the SSH strategy
completes with what the host itself says.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import asyncssh
from jupyter_client.connect import KernelConnectionInfo

from kernelfleet.protocol import CommOp
from kernelfleet.protocol.constants import KERNEL_ID_PATTERN
from kernelfleet.provisioners.base import LaunchError
from kernelfleet.provisioners.pool.spec import process_owner
from kernelfleet.provisioners.presence import Presence
from kernelfleet.provisioners.server_identity import LOCAL_LAUNCH_ENV
from kernelfleet.provisioners.ssh.adopted_process import AdoptedLocalProcess, run_local_shell
from kernelfleet.provisioners.ssh.command import signal_command, sweep_command
from kernelfleet.provisioners.ssh.connections import HostUnavailable, connection_pool
from kernelfleet.provisioners.ssh.exit_watch import HostExitWatch
from kernelfleet.provisioners.ssh.launch import RemoteLaunch, run_command
from kernelfleet.provisioners.ssh.local_process import LauncherGroup, LocalLauncherProcess
from kernelfleet.provisioners.ssh.tunnels import KERNEL_PORTS, LOCAL_ADDRESS, KernelTunnels, TunnelError

if TYPE_CHECKING:
    from kernelfleet.provisioners.ssh.distributed import DistributedProvisioner

LOCAL_NAMES = frozenset({"localhost", "localhost.localdomain", "127.0.0.1", "::1", ""})
UNROUTABLE = frozenset({"", "0.0.0.0", "::"})
STOP_GRACE = 3.0  # seconds an unreported launcher gets between SIGTERM and SIGKILL
WAIT_RECHECK_FIRST, WAIT_RECHECK_MAX = 1.0, 5.0  # wait(): seconds between poll()s while the exit watch is silent

BasePoll = Callable[[], Awaitable[int | None]]
BasePresence = Callable[[], Awaitable[Presence]]


def is_local_host(host: str) -> bool:
    """True for the names that mean "run the launcher as a local process" (no SSH)."""
    return host.strip().lower() in LOCAL_NAMES


def _is_loopback(ip: str) -> bool:
    return ip.startswith("127.") or ip in ("::1", "localhost")


class HostLauncher:
    """One kernel's launcher on its assigned ``host``; the provisioner calls these in launch order."""

    def __init__(self, provisioner: DistributedProvisioner, host: str) -> None:
        self.p = provisioner
        self.host = host

    @property
    def kernel_id(self) -> str:
        return str(self.p.kernel_id)

    def hold(self) -> None:
        """Count on what the kernel needs on its host while it is assigned (the SSH connection)."""

    def unhold(self) -> None:
        """Give back what ``hold`` took."""

    async def start(self, cmd: list[str], env: dict[str, str], cwd: str | None) -> None:
        raise NotImplementedError

    async def launch_failure(self) -> str:
        """A description once the launcher died before reporting; otherwise waits."""
        raise NotImplementedError

    def diagnostics(self) -> str:
        raise NotImplementedError

    async def reported(self, info: KernelConnectionInfo) -> KernelConnectionInfo:
        """The kernel reported: let go of the launch's watch; return the connection info to use."""
        return info

    async def abandon(self) -> None:
        """The launch failed: let go of the launch's watch."""

    def kernel_address(self, reported_ip: str) -> str:
        raise NotImplementedError

    async def poll(self, base_poll: BasePoll) -> int | None:
        raise NotImplementedError

    async def wait(self, base_wait: BasePoll) -> int | None:
        raise NotImplementedError

    async def presence(self, base_presence: BasePresence) -> Presence:
        raise NotImplementedError

    async def interrupt_group(self, pgid: int) -> bool:
        """SIGINT to the kernel's own process group; False when it could not be delivered."""
        raise NotImplementedError

    async def terminate(self) -> None:
        raise NotImplementedError

    async def kill(self) -> None:
        raise NotImplementedError

    async def cleanup(self) -> None:
        """After a stop: make sure nothing of the kernel is left on the host."""

    def detach(self) -> None:
        """Let go without stopping anything."""

    def info(self) -> dict[str, Any]:
        """What a restarted server needs to take the launcher over (``reattach``)."""
        return {}

    async def reattach(self, info: dict[str, Any]) -> None:
        """Take over the launcher a previous server started, from its ``info``."""


class LocalHostLauncher(HostLauncher):
    """The launcher as a child process of this server (``localhost``), or one adopted after a server restart."""

    def __init__(self, provisioner: DistributedProvisioner, host: str) -> None:
        super().__init__(provisioner, host)
        self.process: LauncherGroup | None = None
        # A warm-pool standby that became the kernel in its own process keeps the standby's environment: its id, not
        # KERNEL_ID, proves that a pid is still this kernel's (ssh.standbys, pool.spec.process_owner).
        self.standby_id: str | None = None

    def info(self) -> dict[str, Any]:
        return {"standby_id": self.standby_id} if self.standby_id else {}

    async def start(self, cmd: list[str], env: dict[str, str], cwd: str | None) -> None:
        env.setdefault("KERNEL_IP", "127.0.0.1")
        env[LOCAL_LAUNCH_ENV] = "1"  # tells the orphan sweep's local and SSH views apart
        argv = self.p.kernel_argv(cmd, env)  # under spark-submit and/or as the requesting user
        self.process = await LocalLauncherProcess.start(self.kernel_id, argv, env, cwd, self.p.log)
        self.p.log.info("Kernel %s: running as local process %s", self.kernel_id, self.process.pid)

    async def launch_failure(self) -> str:
        assert self.process is not None
        return self.process.describe_exit(await self.process.wait())

    def diagnostics(self) -> str:
        if self.process is None:
            return "the launcher was never started"
        tail = "\n".join(self.process.stderr_tail)
        return f"launcher pid {self.process.pid} is still running" + (f"; its output:\n{tail}" if tail else "")

    def kernel_address(self, reported_ip: str) -> str:
        return "127.0.0.1" if self.process is not None else reported_ip

    async def poll(self, base_poll: BasePoll) -> int | None:
        return self.process.returncode if self.process is not None else 0

    async def wait(self, base_wait: BasePoll) -> int | None:
        return await self.process.wait() if self.process is not None else 0

    async def presence(self, base_presence: BasePresence) -> Presence:
        running = self.process is not None and self.process.returncode is None
        return Presence.RUNNING if running else Presence.GONE

    async def interrupt_group(self, pgid: int) -> bool:
        if self.process is None or self.process.returncode is not None:
            return False  # the launcher is gone; its kernel's group id may name someone else by now
        try:
            os.killpg(pgid, signal.SIGINT)
        except OSError:
            return False
        return True

    async def terminate(self) -> None:
        if self.process is None:
            await self.p.comm_request(CommOp.TERMINATE)
            return
        if not await self.p.stopped_as_other_user(CommOp.TERMINATE):
            self.process.signal_group(signal.SIGTERM)

    async def kill(self) -> None:
        if self.process is None:
            await self.p.comm_request(CommOp.KILL)
            return
        if not await self.p.stopped_as_other_user(CommOp.KILL):
            self.process.signal_group(signal.SIGKILL)
        await self.process.wait()

    async def cleanup(self) -> None:
        process, self.process = self.process, None
        if process is not None and process.returncode is None:
            await process.stop()
        if isinstance(process, AdoptedLocalProcess):
            await self._sweep_adopted(process)

    async def _sweep_adopted(self, launcher: AdoptedLocalProcess) -> None:
        """An adopted launcher has exited; its kernel's group, which a child launcher takes along, may not have."""
        launcher.close()
        pgid = self.p.kernel_pgid
        if pgid:
            owner = process_owner(self.standby_id)
            killed = (await run_local_shell(sweep_command(self.kernel_id, [pgid], None, owner))).split()
            if killed:
                self.p.log.info("Kernel %s: killed leftover process group %s", self.kernel_id, killed)

    def detach(self) -> None:
        if isinstance(self.process, AdoptedLocalProcess):
            self.process.close()
        self.process = None

    async def reattach(self, info: dict[str, Any]) -> None:
        standby_id = info.get("standby_id")
        self.standby_id = standby_id if isinstance(standby_id, str) and KERNEL_ID_PATTERN.match(standby_id) else None
        if self.p.remote_pid:  # the launcher's pid (it reported its own)
            self.process = await AdoptedLocalProcess.adopt(self.kernel_id, int(self.p.remote_pid), self.p.log,
                                                           process_owner(self.standby_id))


# How long poll() waits for its answer. A kernel that answers, or whose host says it is gone, is known well within it;
# past it (a partition: the comm port, then the host, time out) poll() says "not known to be dead" at once and the
# check goes on, for the next poll() to take its answer: jupyter_client's restarter, which polls every
# time_to_dead seconds, is never held for comm_timeout plus the SSH command's timeout.
POLL_WAIT = 0.5


def _stale(check: asyncio.Task[int | None]) -> bool:
    """A finished check nobody took that found no death (or failed): its "alive" is old news, so ask again."""
    return check.done() and (check.cancelled() or check.exception() is not None or check.result() is None)


class SshHostLauncher(HostLauncher):
    """The launcher on another host, started over SSH: the launch channel tells of an early death, the comm port
    and then the host itself (its exit watch, a signal over SSH) of liveness; optional tunnels reach its ports."""

    def __init__(self, provisioner: DistributedProvisioner, host: str) -> None:
        super().__init__(provisioner, host)
        self.launch: RemoteLaunch | None = None
        self.launcher_pid: int | None = None  # the launcher's pid, also its process group (setsid)
        self.remote_log: str | None = None
        self.tunnels: KernelTunnels | None = None
        self.follower: asyncio.Task[None] | None = None  # the host's exit watch on the launcher
        self.launcher_gone = False  # the host said the launcher exited (its kernel goes with it)
        self.poll_check: asyncio.Task[int | None] | None = None  # a poll() answer still under way
        self.log_renaming: asyncio.Task[str] | None = None  # a claimed standby's log getting the kernel's name

    def hold(self) -> None:
        connection_pool().hold(self.host, self.p.ssh_settings())

    def unhold(self) -> None:
        connection_pool().release(self.host, self.p.ssh_settings())

    # ------------------------------------------------------------------------------------- launch
    async def start(self, cmd: list[str], env: dict[str, str], cwd: str | None) -> None:
        command, payload = self.p.remote_launch_input(cmd, env)
        settings = self.p.ssh_settings()
        if settings.known_hosts is None:
            self.p.log.warning("Kernel %s: host key checking is OFF for %s (host_key_checking=False)",
                               self.kernel_id, self.host)
        pool = connection_pool()
        conn = await pool.connect(self.host, settings)
        launch = await RemoteLaunch.start(
            conn, self.host, self.kernel_id, command, payload, self.p.ssh_connect_timeout, self.p.log,
            pool.sessions(self.host, settings),
        )
        self.launch = launch
        self.launcher_pid, self.remote_log = launch.pid, launch.log_path
        self.p.log.info("Kernel %s: running on %s as pid %s", self.kernel_id, self.host, launch.pid)

    def adopt_standby(self, pid: int, log_path: str, renaming: asyncio.Task[str]) -> None:
        """The launcher is a warm pool's standby claimed for this kernel (``ssh.remote_standbys``): its launch channel
        closed when it registered, so its early death is the host's exit watch's to tell. ``renaming`` gives its log
        the kernel's name; the launch ends (reported or not) only once it is done."""
        self.launcher_pid, self.remote_log, self.log_renaming = pid, log_path, renaming
        self.p.log.info("Kernel %s: running on %s as pid %s (a claimed standby)", self.kernel_id, self.host, pid)

    async def launch_failure(self) -> str:
        if self.launch is None:  # a claimed standby
            assert self.launcher_pid is not None
            await self._await_exit(self.launcher_pid)
            return (f"launcher (pid {self.launcher_pid} on {self.host}) exited; its log is {self.remote_log} on "
                    "that host")
        await self.launch.exited()
        return self.launch.describe_exit()

    def diagnostics(self) -> str:
        if self.launch is None and self.launcher_pid:
            return (f"launcher pid {self.launcher_pid} on {self.host} (a claimed standby) is still running; "
                    f"its log is {self.remote_log} on that host")
        if self.launch is None:
            return "the launcher was never started"
        return (f"launcher pid {self.launch.pid} on {self.launch.host} is still running; "
                f"its log is {self.launch.log_path} on that host")

    async def reported(self, info: KernelConnectionInfo) -> KernelConnectionInfo:
        await self.abandon()
        if self.p.tunneling:
            return await self.open_tunnels()
        return info

    async def abandon(self) -> None:
        launch, self.launch = self.launch, None
        if launch is not None:
            await launch.detach()
        renaming, self.log_renaming = self.log_renaming, None
        if renaming is not None:
            self.remote_log = await renaming

    def kernel_address(self, reported_ip: str) -> str:
        if not self.p.tunneling and (reported_ip in UNROUTABLE or _is_loopback(reported_ip)):
            return self.host  # the launcher's address is only meaningful on its own host
        return reported_ip

    # ------------------------------------------------------------------------------------- tunnels
    async def open_tunnels(self, preferred: dict[str, int] | None = None,
                           state: dict[str, Any] | None = None) -> KernelConnectionInfo:
        """Forward the five kernel ports and the comm port; rewrite connection_info to the local ends."""
        p = self.p
        if state is not None:
            tunnels = KernelTunnels(str(state["remote_ip"]), dict(state["remote_ports"]))
        else:
            info = p.connection_info
            ports = {name: int(info[name]) for name in KERNEL_PORTS}
            ports["comm_port"] = int(p.comm_port or 0)
            tunnels = KernelTunnels(str(info["ip"]), ports)
        try:
            conn = await connection_pool().connect(self.host, p.ssh_settings())
            local = await tunnels.open(conn, preferred, p.log)
        except (HostUnavailable, TunnelError) as err:
            if state is None:
                await p.kill()
            raise LaunchError(f"Kernel {self.kernel_id}: cannot tunnel to its ports on {self.host}: {err}") from None
        self.tunnels = tunnels
        info = dict(p.connection_info)
        info["ip"] = LOCAL_ADDRESS
        info.update({name: local[name] for name in KERNEL_PORTS})
        p.connection_info = info
        p.comm_host, p.comm_port = LOCAL_ADDRESS, local["comm_port"]
        p.log.debug("Kernel %s: tunnelled through %s to %s", self.kernel_id, self.host, tunnels.remote_ip)
        return info

    async def repair_tunnels(self) -> None:
        """The host's connection dropped (network blip, keepalive timeout): open the same forwards again.

        Checked on every poll, which jupyter_client's restarter runs every few seconds anyway.
        """
        assert self.tunnels is not None
        state = self.tunnels.state()
        self.tunnels.close()
        self.tunnels = None
        try:
            await self.open_tunnels(preferred=dict(state["local_ports"]), state=state)  # type: ignore[arg-type]
        except LaunchError as err:
            self.p.log.warning("%s; will retry", err)
            self.tunnels = KernelTunnels(str(state["remote_ip"]), dict(state["remote_ports"]))  # type: ignore[arg-type]
            self.tunnels.local_ports = dict(state["local_ports"])  # type: ignore[arg-type]
        else:
            self.p.log.info("Kernel %s: tunnels to %s reopened", self.kernel_id, self.host)

    def close_tunnels(self) -> None:
        tunnels, self.tunnels = self.tunnels, None
        if tunnels is not None:
            tunnels.close()

    # ------------------------------------------------------------------------------------- state
    async def poll(self, base_poll: BasePoll) -> int | None:
        """The comm port's or the host's answer within POLL_WAIT, else None (not known to be dead) while the check
        goes on for the next call; the host's exit watch, followed from the first call on, reports an exit at once
        either way."""
        if self.launcher_gone and self.p.comm_port:
            return 0
        if self.poll_check is None or _stale(self.poll_check):
            self.poll_check = asyncio.ensure_future(self._check_poll(base_poll))
        check = self.poll_check
        done, _ = await asyncio.wait({check}, timeout=POLL_WAIT)
        if not done:
            self.p.log.debug("Kernel %s: no answer from %s within %gs; not known to be dead", self.kernel_id,
                             self.host, POLL_WAIT)
            return None
        self.poll_check = None
        if check.cancelled():  # cleanup or detach ended it meanwhile
            return None if self.p.comm_port else 0
        return check.result()

    async def _check_poll(self, base_poll: BasePoll) -> int | None:
        if self.tunnels is not None and self.tunnels.broken:
            await self.repair_tunnels()
        code = await base_poll()
        if code is None:
            self.follow_exit()  # from now on the host tells us at once when the launcher exits
        return code

    async def wait(self, base_wait: BasePoll) -> int | None:
        if not self.launcher_pid:
            return await base_wait()
        recheck = WAIT_RECHECK_FIRST
        while await self.p.poll() is None:
            follower = self.follow_exit()
            if follower is None:
                break
            # Ends when the launcher exited, or cleanup stopped following; the host's watch is the fast path, and the
            # re-check (growing to WAIT_RECHECK_MAX) bounds what a missed word from it could cost a shutdown.
            await asyncio.wait({follower}, timeout=recheck)
            recheck = min(recheck * 2, WAIT_RECHECK_MAX)
        return 0

    def follow_exit(self) -> asyncio.Task[None] | None:
        """The task that learns from the host's exit watch (``exit_watch``) when the launcher exits; started by the
        first ``poll()`` or ``wait()`` of a reported kernel, ended by its cleanup."""
        if not (self.launcher_pid and self.p.comm_port) or self.launcher_gone:
            return None
        if self.follower is None or self.follower.done():
            self.follower = asyncio.ensure_future(self._await_exit(self.launcher_pid))
        return self.follower

    async def _await_exit(self, pid: int) -> None:
        """Only the host's word that the launcher exited counts; a watch that cannot be opened or breaks proves
        nothing, and is tried again less and less often while the host does not answer."""
        pause = 0.05
        watch = HostExitWatch.of(self.host, self.p.ssh_settings())
        while True:
            try:
                if await watch.until_gone(pid):
                    break
            except (HostUnavailable, asyncssh.Error, OSError) as err:
                self.p.log.debug("Kernel %s: no exit watch on %s: %s", self.kernel_id, self.host, err)
            await asyncio.sleep(pause)
            pause = min(pause * 2, 5.0)
        if pid == self.launcher_pid:
            self.launcher_gone = True
            self.p.log.info("Kernel %s: its launcher (pid %s) exited on %s", self.kernel_id, pid, self.host)

    def stop_following(self) -> None:
        follower, self.follower = self.follower, None
        if follower is not None:
            follower.cancel()
        check, self.poll_check = self.poll_check, None
        if check is not None:
            check.cancel()
        self.launcher_gone = False

    async def presence(self, base_presence: BasePresence) -> Presence:
        """Its comm port, else its process groups tested over SSH (or the exit watch, whichever answers first)."""
        if self.launcher_gone:
            return Presence.GONE
        answer = await base_presence()
        if answer is not Presence.UNREACHABLE:
            return answer
        # The comm port did not answer: the host itself says whether the launcher's or the kernel's process group
        # is still there (the launch channel is closed once the kernel reported). An unreachable host is unknown.
        check = asyncio.ensure_future(self.signal("0"))
        follower = self.follower
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
            self.p.log.info("Kernel %s: its processes are gone from %s", self.kernel_id, self.host)
            return Presence.GONE
        return Presence.RUNNING

    # ------------------------------------------------------------------------------------- signals
    async def interrupt_group(self, pgid: int) -> bool:
        return bool(await self.signal_groups("INT", [pgid]))

    async def terminate(self) -> None:
        reply = await self.p.comm_request(CommOp.TERMINATE)
        if not (reply and reply.get("ok")):
            await self.signal("TERM")

    async def kill(self) -> None:
        if self.launch is not None and self.p.comm_port is None:
            await self._stop_unreported_launch()
            return
        reply = await self.p.comm_request(CommOp.KILL)
        if not (reply and reply.get("ok")):
            await self.signal("KILL")

    async def _stop_unreported_launch(self) -> None:
        """The launcher has not reported: SIGTERM its group (it stops its kernel), SIGKILL if it lingers."""
        launch = self.launch
        assert launch is not None
        if launch.exit_code is not None:
            return  # it died by itself (the usual way a launch fails): nothing to stop
        launch.release_slot()
        await self.signal("TERM")
        try:
            await asyncio.wait_for(launch.exited(), STOP_GRACE)
        except (TimeoutError, asyncio.CancelledError):
            await self.signal("KILL")

    def groups(self) -> list[int]:
        return [g for g in (self.launcher_pid, self.p.kernel_pgid) if g]

    async def signal(self, signal_name: str) -> list[str] | None:
        """The fallback when the comm port is gone: signal (``0``: test) the process groups over SSH.

        Returns the groups that were still there (empty when none were), None when the host cannot be reached.
        """
        return await self.signal_groups(signal_name, self.groups())

    async def signal_groups(self, signal_name: str, groups: list[int]) -> list[str] | None:
        if not groups:
            return []
        try:
            present = (await self.run(signal_command(self.kernel_id, signal_name, groups))).split()
        except (HostUnavailable, asyncssh.Error, OSError, TimeoutError) as err:
            self.p.log.warning("Kernel %s: cannot signal its processes on %s: %s", self.kernel_id, self.host, err)
            return None
        self.p.log.debug("Kernel %s: signal %s over SSH to groups %s on %s (present: %s)", self.kernel_id,
                         signal_name, groups, self.host, present or "none")
        return present

    async def run(self, command: str) -> str:
        pool, settings = connection_pool(), self.p.ssh_settings()
        conn = await pool.connect(self.host, settings)
        return await run_command(conn, command, self.p.comm_timeout + 5, pool.sessions(self.host, settings))

    # ------------------------------------------------------------------------------------- stopping
    async def cleanup(self) -> None:
        self.stop_following()
        await self.abandon()
        self.close_tunnels()
        await self._sweep()

    async def _sweep(self) -> None:
        """One SSH command after every stop: kill what is left of the kernel's groups, remove its log.

        A launcher that hangs (stopped, wedged) never acts on the comm port's kill; this sweep is
        what guarantees nothing is left on the host
        (``signal_command`` only hits groups still carrying this kernel's id).
        """
        groups = self.groups()
        log_path = None if self.p.keep_remote_logs else self.remote_log
        if not groups and not log_path:
            return
        try:
            killed = await self.run(sweep_command(self.kernel_id, groups, log_path))
        except (HostUnavailable, asyncssh.Error, OSError, TimeoutError) as err:
            self.p.log.warning("Kernel %s: cannot clean up on %s: %s", self.kernel_id, self.host, err)
            return
        if killed.split():
            self.p.log.info("Kernel %s: killed leftover process groups %s on %s", self.kernel_id, killed.split(),
                            self.host)

    def detach(self) -> None:
        self.stop_following()
        self.close_tunnels()

    # ------------------------------------------------------------------------------------- persistence
    def info(self) -> dict[str, Any]:
        return {"launcher_pid": self.launcher_pid, "remote_log": self.remote_log,
                "tunnel": self.tunnels.state() if self.tunnels is not None else None}

    async def reattach(self, info: dict[str, Any]) -> None:
        self.launcher_pid = info.get("launcher_pid")
        self.remote_log = info.get("remote_log")
        tunnel = info.get("tunnel")
        if not tunnel:
            return
        try:
            await self.open_tunnels(preferred=dict(tunnel.get("local_ports") or {}), state=tunnel)
        except LaunchError as err:
            self.p.log.warning("%s; the kernel is unreachable until its host is", err)


def host_launcher_for(provisioner: DistributedProvisioner, host: str) -> HostLauncher:
    """The strategy for ``host``: a local process for the local names, SSH for every other name."""
    return LocalHostLauncher(provisioner, host) if is_local_host(host) else SshHostLauncher(provisioner, host)
