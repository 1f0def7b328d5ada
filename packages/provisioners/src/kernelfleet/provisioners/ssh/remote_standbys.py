"""Warm-pool standbys on SSH hosts (``distributed-provisioner`` with remote hosts): the ``StandbyEngine`` of
``kernelfleet.provisioners.pool`` for this engine, and the provisioner's side of taking one from its pool.

A standby is started exactly like a cold remote launcher (``RemoteLaunch``: the constant launch script over one of the
connection's session slots, ``setsid nohup``, a private log file), with the kernelspec's argv and the environment a
cold launch would send for an empty request: no ``KERNEL_ID``, no request values, and ``KF_STANDBY_ID`` /
``KF_STANDBY_POOL`` with its registration token as ``LAUNCH_TOKEN``, all on the channel's stdin (never on a command
line). Its launch channel reports an early death until it registers; then the channel is closed (the pool stops
waiting on ``exited``), which gives its session slot back: a waiting standby holds nothing on the host but its
processes and its TCP connection to the broker, whose end tells the pool it died (``StandbyLink``). Standbys are
spread over the kernelspec's hosts: each goes to the host with the fewest of this pool's standbys, hosts whose last
connect failed last, ties in the balancer's order.

At the claim the provisioner assigns the standby's host as a cold launch would (``_reserve``: counted by the
balancer, its connection held), records the launcher's pid (its process group) and renames its log file to the
name a cold launch of the kernel gets (``kernelfleet-<kernel id>-…``), so that signals, the exit watch, shutdown,
reattach and the orphan sweep (``sweep.remote_processes``) find it by the kernel id: the claimed launcher execs its
supervisor with ``KERNEL_ID`` set, and its kernel process (started before the claim) is owned through its parent
(``ssh.command.signal_command``). When the server is gone, a standby exits by itself (its connection ends); one that
cannot (stopped) is listed by the sweep once it holds no established connection.
"""

from __future__ import annotations

import asyncio
import os
import posixpath
import shlex
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import asyncssh

from kernelfleet.protocol import contract
from kernelfleet.protocol.standby import Claim
from kernelfleet.provisioners.base import fill_placeholders
from kernelfleet.provisioners.broker import ResponseBroker
from kernelfleet.provisioners.kernel_env import remote_kernel_env
from kernelfleet.provisioners.pool import ClaimFailed, WarmPool, pool_for
from kernelfleet.provisioners.pool.spec import claim_env, process_owner, standby_launcher, standby_protocol_env
from kernelfleet.provisioners.ssh.command import check_env, encode_env, launch_command, sweep_command
from kernelfleet.provisioners.ssh.connections import HostUnavailable, SSHSettings, connection_pool
from kernelfleet.provisioners.ssh.exit_watch import HostExitWatch
from kernelfleet.provisioners.ssh.host_launchers import is_local_host
from kernelfleet.provisioners.ssh.launch import RemoteLaunch, run_command

if TYPE_CHECKING:
    import logging

    from kernelfleet.provisioners.ssh.distributed import DistributedProvisioner

STOP_TIMEOUT = 15.0  # seconds for the SSH command that stops a standby
SSH_ERRORS = (HostUnavailable, asyncssh.Error, OSError, TimeoutError)


@dataclass
class RemoteStandby:
    """One standby launcher on ``host``: its pid (also its process group), its log, its launch channel until it
    registered."""

    standby_id: str
    host: str
    pid: int
    log_path: str
    launch: RemoteLaunch | None = field(default=None, repr=False)


@dataclass(frozen=True)
class StandbyCommand:
    """What every standby of a pool runs: its argv (placeholders still open), the environment it shares with the
    pool's other standbys, and where its log goes."""

    argv: list[str]
    env: dict[str, str]
    trusted_names: frozenset[str]  # the kernelspec's env names, which the request rules of check_env skip
    log_dir: str
    keep_logs: bool


class RemoteStandbys:
    """Starts, watches and stops one pool's standbys on its SSH hosts."""

    name = "ssh"

    def __init__(self, hosts: list[str], settings: SSHSettings, command: StandbyCommand, timeout: float,
                 log: logging.Logger) -> None:
        self.hosts = hosts
        self.settings = settings
        self.command = command
        self.timeout = timeout
        self.log = log
        self.placed: dict[str, str] = {}  # standby id -> host of this pool's live standbys (the spread)
        self._turn = 0

    def host_order(self) -> list[str]:
        """Hosts to try for the next standby: fewest of this pool's standbys first, recently failed ones last."""
        pool = connection_pool()
        start = self._turn % len(self.hosts)
        self._turn += 1
        rotated = self.hosts[start:] + self.hosts[:start]
        placed = Counter(self.placed.values())
        return sorted(rotated, key=lambda h: (pool.recently_failed(h, self.settings), placed[h]))

    async def start(self, standby_id: str, token: str) -> RemoteStandby:
        argv = fill_placeholders(self.command.argv, {
            "kernel_id": standby_id, "response_address": self.command.env[contract.RESPONSE_ADDRESS],
            "public_key": self.command.env[contract.PUBLIC_KEY], "port_range": "0..0",
            "transport_encryption": self.command.env.get(contract.TRANSPORT_ENCRYPTION, "")})
        command = launch_command(argv, standby_id, self.command.log_dir, self.command.keep_logs)
        env = dict(self.command.env, **{contract.STANDBY_ID: standby_id, contract.LAUNCH_TOKEN: token})
        payload = encode_env(check_env(standby_id, env, trusted_names=self.command.trusted_names))
        reasons = []
        for host in self.host_order():
            self.placed[standby_id] = host
            try:
                return await self._start_on(host, standby_id, command, payload)
            except BaseException as err:
                self.placed.pop(standby_id, None)
                if not isinstance(err, HostUnavailable):
                    raise
                reasons.append(f"{host}: {err}")
        raise RuntimeError("no host could start it — " + "; ".join(reasons))

    async def _start_on(self, host: str, standby_id: str, command: str, payload: bytes) -> RemoteStandby:
        pool = connection_pool()
        conn = await pool.connect(host, self.settings)
        launch = await RemoteLaunch.start(conn, host, standby_id, command, payload, self.timeout, self.log,
                                          pool.sessions(host, self.settings))
        self.log.debug("Standby %s: running on %s as pid %s", standby_id, host, launch.pid)
        return RemoteStandby(standby_id, host, launch.pid, launch.log_path, launch)

    async def exited(self, handle: RemoteStandby) -> str:
        """Until the standby ended: its launch channel's word while it has one, then the host's exit watch.

        The pool waits on this only until the standby registered (or it gave up on it); when it stops waiting the
        launch channel has done its job and is closed, giving its session slot back to the host's launches."""
        launch = handle.launch
        if launch is not None:
            try:
                await launch.exited()
                return launch.describe_exit()
            finally:
                handle.launch = None
                await launch.detach()
        try:
            gone = await HostExitWatch.of(handle.host, self.settings).until_gone(handle.pid)
        except SSH_ERRORS as err:
            return f"unknown: {handle.host} cannot be asked ({getattr(err, 'reason', None) or err})"
        return f"launcher pid {handle.pid} on {handle.host} exited" if gone else \
            f"unknown: the exit watch on {handle.host} ended"

    def lost(self, handle: RemoteStandby) -> None:
        """The pool heard the standby's connection end: its host has one standby fewer for the replacement's choice,
        before ``stop`` has made sure of it."""
        self.placed.pop(handle.standby_id, None)

    async def stop(self, handle: RemoteStandby) -> None:
        """SIGKILL the standby's groups (it holds no user state; its warmed kernel dies with it) and remove its log.

        An unreachable host is logged: the standby exits by itself once its connection to the broker is closed."""
        launch, handle.launch = handle.launch, None
        if launch is not None:
            launch.release_slot()
        self.placed.pop(handle.standby_id, None)
        log_path = None if self.command.keep_logs else handle.log_path
        pool = connection_pool()
        try:
            conn = await pool.connect(handle.host, self.settings)
            await run_command(conn, sweep_command(handle.standby_id, [handle.pid], log_path,
                                                  process_owner(handle.standby_id)),
                              STOP_TIMEOUT, pool.sessions(handle.host, self.settings))
        except SSH_ERRORS as err:
            self.log.warning("Standby %s: cannot stop it on %s: %s", handle.standby_id, handle.host,
                             getattr(err, "reason", None) or err or type(err).__name__)
        finally:
            if launch is not None:
                await launch.detach()


# ------------------------------------------------------------------------------------- the provisioner's side
def poolable(p: DistributedProvisioner, cmd: list[str], env: dict[str, str]) -> str | None:
    """Why this remote launch cannot come from a pool (None: it can). Python launchers only; R, Scala, spark-submit
    and impersonated launches, and a request naming its host (``KERNEL_REMOTE_HOST``), start cold."""
    if p.spark_submit or p.impersonation_enabled:
        return "spark-submit and impersonated launches start cold"
    if p.kernel_language.lower() != "python" or not standby_launcher(p.kernel_language, cmd):
        # an R kernel runs in its standby's process (pool.spec.process_owner), which the remote hosts' signals,
        # reattach and sweep do not yet check: R on SSH hosts starts cold
        return "only the Python launcher has a standby mode on SSH hosts"
    if env.get("KERNEL_REMOTE_HOST"):
        return "the request names its host"
    return None


def remote_hosts(p: DistributedProvisioner) -> list[str]:
    return [host for host in p.remote_hosts if not is_local_host(host)]


def _standby_command(p: DistributedProvisioner, pool: str) -> StandbyCommand:
    """The argv and environment of ``p``'s pool's standbys: what a cold launch sends for an empty request."""
    spec_env = dict(p.kernel_spec.env) if p.kernel_spec else {}
    protocol_env = {**standby_protocol_env(p.launch_env, p.server_id), contract.STANDBY_POOL: pool}
    env = remote_kernel_env(pool, {**os.environ, **spec_env}, spec_env_names=spec_env, protocol_env=protocol_env,
                            inherited_envs=p.inherited_envs)
    return StandbyCommand(p.remote_argv(p.standby_argv()), env, frozenset(spec_env), p.remote_log_dir,
                          p.keep_remote_logs)


def remote_pool(p: DistributedProvisioner, broker: ResponseBroker) -> WarmPool:
    """The running loop's pool for ``p``'s kernelspec, hosts and SSH settings, created on first use."""
    kernel_name = p.pool_kernel_name()
    settings = p.ssh_settings()
    hosts = remote_hosts(p)
    identity = p.pool_identity("ssh", p.launch_env[contract.TRANSPORT_ENCRYPTION], hosts, settings.user,
                               settings.port, list(p.inherited_envs), p.remote_log_dir)

    def create() -> WarmPool:
        pool_settings = p.pool_settings(identity)
        engine = RemoteStandbys(hosts, settings, _standby_command(p, identity), p.ssh_connect_timeout, p.log)
        pool = WarmPool(pool_settings, engine, broker, p.log)
        p.log.info("Pool %s: created for kernelspec %s (%d standbys, SSH hosts %s)", identity, kernel_name,
                   pool_settings.size, ", ".join(hosts))
        return pool

    return pool_for(identity, create)


def claimed_log_path(log_path: str, standby_id: str, kernel_id: str) -> str:
    """The name a cold launch of ``kernel_id`` gives its log (``kernelfleet-<kernel id>-<random>``), in the same
    directory and with the standby's random part; the standby's own path when it does not have the launch script's
    form."""
    directory, name = posixpath.split(log_path)
    prefix = f"kernelfleet-{standby_id}-"
    if not name.startswith(prefix):
        return log_path
    return posixpath.join(directory, f"kernelfleet-{kernel_id}-{name[len(prefix):]}")


async def _rename_log(p: DistributedProvisioner, standby: RemoteStandby, new_path: str) -> str:
    """Rename the claimed standby's log on its host (the launcher keeps writing to it); the path it has now."""
    if new_path == standby.log_path:
        return new_path
    pool, settings = connection_pool(), p.ssh_settings()
    try:
        conn = await pool.connect(standby.host, settings)
        await run_command(conn, shlex.join(["mv", "-f", "--", standby.log_path, new_path]), p.comm_timeout,
                          pool.sessions(standby.host, settings))
    except SSH_ERRORS as err:
        p.log.warning("Kernel %s: its log on %s keeps the standby's name %s: %s", p.kernel_id, standby.host,
                      standby.log_path, getattr(err, "reason", None) or err or type(err).__name__)
        return standby.log_path
    return new_path


async def claim_remote_standby(p: DistributedProvisioner, cmd: list[str], env: dict[str, str]
                               ) -> tuple[WarmPool | None, RemoteStandby | None, asyncio.Task[str] | None]:
    """Take a standby from ``p``'s pool and claim it for ``p``'s kernel: the pool taken from (``launched()`` is due
    when the launch ends), the claimed standby and the renaming of its log (its path once done: the launch awaits it
    with the report, so that the SSH command is not on the kernel's way); None when the launch must go cold."""
    why_not = poolable(p, cmd, env)
    if why_not is not None:
        p.log.debug("Kernel %s: cold launch (%s)", p.kernel_id, why_not)
        return None, None, None
    assert p.pending is not None
    pool = remote_pool(p, await ResponseBroker.instance(config=p.config))
    assert isinstance(pool.engine, RemoteStandbys)
    if pool.engine.command.env.get(contract.TRANSPORT_ENCRYPTION, "") != p.launch_env[contract.TRANSPORT_ENCRYPTION]:
        p.log.debug("Kernel %s: cold launch (the request's transport encryption is not the pool's)", p.kernel_id)
        return None, None, None
    kernel_env = p.remote_env(env)  # validated as for a cold launch, before any standby is taken
    link = pool.take()
    if link is None:
        return None, None, None
    standby: RemoteStandby = link.handle
    claim = Claim(str(p.kernel_id), p.pending.token, claim_env(kernel_env, pool.engine.command.env), None,
                  p.launch_env[contract.PORT_RANGE])
    try:
        await link.claim(claim, timeout=p.comm_timeout)
    except ClaimFailed as err:
        pool.discard(link, str(err))
        return pool, None, None
    pool.engine.placed.pop(standby.standby_id, None)  # the kernel's now: the balancer counts it from here
    renamed = asyncio.ensure_future(_rename_log(p, standby, claimed_log_path(standby.log_path, standby.standby_id,
                                                                             str(p.kernel_id))))
    p.log.info("Kernel %s: claimed standby %s of pool %s (pid %s on %s)", p.kernel_id, link.standby_id,
               pool.pool_id, standby.pid, standby.host)
    return pool, standby, renamed
