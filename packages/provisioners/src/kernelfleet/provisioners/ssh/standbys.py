"""Warm-pool standbys as local processes (``distributed-provisioner`` on ``localhost``): the ``StandbyEngine`` of
``kernelfleet.provisioners.pool`` for this engine, and the provisioner's side of taking one from its pool.

A standby is started exactly like a cold local launcher (``LocalLauncherProcess``: its own session, stderr
kept for diagnostics), with the kernelspec's argv and the server's environment plus the kernelspec's, but
without any kernel's: no ``KERNEL_ID`` and no request values, and ``KF_STANDBY_ID``/``KF_STANDBY_POOL`` with a
registration token instead of a launch token. ``KF_SERVER_ID`` and ``KF_LOCAL_LAUNCH`` are set as for a cold
launch, and ``KF_STANDBY_PARENT`` (this server's pid), so the orphan sweep (``sweep.local_processes``) removes
a standby whose server is gone; a standby also exits by itself when its connection to the broker ends. Once
claimed, the launcher execs its supervisor with the claim's environment (``KERNEL_ID`` included), so the
kernel is found, reattached and swept exactly like a cold one.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING

from kernelfleet.protocol import contract
from kernelfleet.protocol.standby import Claim
from kernelfleet.provisioners.base import fill_placeholders
from kernelfleet.provisioners.broker import ResponseBroker
from kernelfleet.provisioners.pool import ClaimFailed, WarmPool, pool_for
from kernelfleet.provisioners.pool.spec import claim_env, keeps_standby_environment, pool_id, standby_launcher
from kernelfleet.provisioners.server_identity import LOCAL_LAUNCH_ENV, SERVER_ID_ENV, STANDBY_PARENT_ENV
from kernelfleet.provisioners.ssh.local_process import LocalLauncherProcess

if TYPE_CHECKING:
    from kernelfleet.provisioners.ssh.distributed import DistributedProvisioner

LOCAL_KERNEL_IP = "127.0.0.1"


class LocalStandbys:
    """Starts, watches and stops one pool's standbys as children of this server."""

    name = "local"

    def __init__(self, argv: list[str], env: dict[str, str], log: logging.Logger) -> None:
        self.argv = argv  # the kernelspec's argv, its {placeholders} still open
        self.env = env  # everything the standby's environment holds but its id and token
        self.log = log

    async def start(self, standby_id: str, token: str) -> LocalLauncherProcess:
        argv = fill_placeholders(self.argv, {"kernel_id": standby_id, "response_address": self.env[
            contract.RESPONSE_ADDRESS], "public_key": self.env[contract.PUBLIC_KEY], "port_range": "0..0",
                                             "transport_encryption": ""})
        env = dict(self.env, **{contract.STANDBY_ID: standby_id, contract.LAUNCH_TOKEN: token})
        return await LocalLauncherProcess.start(standby_id, argv, env, None, self.log)

    async def exited(self, handle: LocalLauncherProcess) -> str:
        return handle.describe_exit(await handle.wait())

    async def stop(self, handle: LocalLauncherProcess) -> None:
        await handle.stop()


def poolable(p: DistributedProvisioner, cmd: list[str], env: dict[str, str]) -> str | None:
    """Why this launch cannot come from a pool (None: it can). Python, R and Scala launchers on this host only;
    spark-submit and impersonated launches start cold."""
    if p.warm_pool_size <= 0:
        return "no pool asked for"
    if not p.launches_on_this_host():
        return "pools serve localhost only"
    if p.spark_submit or p.impersonation_enabled:
        return "spark-submit and impersonated launches start cold"
    if not standby_launcher(p.kernel_language, cmd):
        return "only the Python, R and Scala launchers have a standby mode"
    return None


def _standby_env(p: DistributedProvisioner, pool: str) -> dict[str, str]:
    """The environment every standby of ``p``'s pool shares: the server's and the kernelspec's, and the protocol's
    values that do not depend on a kernel."""
    spec_env = dict(p.kernel_spec.env) if p.kernel_spec else {}
    return {
        **os.environ, **spec_env,
        "KERNEL_IP": LOCAL_KERNEL_IP, LOCAL_LAUNCH_ENV: "1", SERVER_ID_ENV: p.server_id,
        STANDBY_PARENT_ENV: str(os.getpid()),
        contract.RESPONSE_ADDRESS: p.launch_env[contract.RESPONSE_ADDRESS],
        contract.PUBLIC_KEY: p.launch_env[contract.PUBLIC_KEY],
        contract.PORT_RANGE: "0..0",
        "KERNEL_LANGUAGE": p.launch_env["KERNEL_LANGUAGE"],
        contract.STANDBY_POOL: pool,
    }


def local_pool(p: DistributedProvisioner, broker: ResponseBroker) -> WarmPool:
    """The running loop's pool for ``p``'s kernelspec and configuration, created (and started filling) on first
    use. Its argv is the kernelspec's as jupyter_client formats it, placeholders left for each standby."""
    argv = p.standby_argv()
    spec = p.kernel_spec
    kernel_name = p.pool_kernel_name()
    identity = pool_id(kernel_name, type(p).__name__, list(spec.argv) if spec else argv, dict(spec.env) if spec else {},
                       spec.metadata if spec else {}, p.server_id, p.launch_env[contract.RESPONSE_ADDRESS])

    def create() -> WarmPool:
        env = _standby_env(p, identity)
        settings = p.pool_settings(identity)
        pool = WarmPool(settings, LocalStandbys(argv, env, p.log), broker, p.log)
        p.log.info("Pool %s: created for kernelspec %s (%d standbys, local processes)", identity, kernel_name,
                   settings.size)
        return pool

    return pool_for(identity, create)


def local_claim(p: DistributedProvisioner, env: dict[str, str], cwd: str | None,
                standby_env: dict[str, str]) -> Claim:
    """The claim that makes a standby the local launcher a cold launch of ``env`` in ``cwd`` would have started."""
    assert p.pending is not None
    kernel_env = dict(env)
    kernel_env.setdefault("KERNEL_IP", LOCAL_KERNEL_IP)  # as LocalHostLauncher.start sets them for a cold launch
    kernel_env[LOCAL_LAUNCH_ENV] = "1"
    # a relative working directory means the server's, as for the cold launch's subprocess
    return Claim(str(p.kernel_id), p.pending.token, claim_env(kernel_env, standby_env),
                 os.path.abspath(cwd) if cwd else None, p.launch_env[contract.PORT_RANGE])


async def claim_local_standby(p: DistributedProvisioner, cmd: list[str], env: dict[str, str],
                              cwd: str | None) -> tuple[WarmPool | None, LocalLauncherProcess | None, str | None]:
    """Take a standby from ``p``'s pool and claim it for ``p``'s kernel: the pool taken from (to call ``launched()``
    on when the launch ends), the claimed process (None when the launch must go cold) and, when that process keeps
    the standby's environment (``keeps_standby_environment``: R), the standby id that identifies it from then on."""
    why_not = poolable(p, cmd, env)
    if why_not is not None:
        p.log.debug("Kernel %s: cold launch (%s)", p.kernel_id, why_not)
        return None, None, None
    assert p.pending is not None
    pool = local_pool(p, await ResponseBroker.instance(config=p.config))
    link = pool.take()
    if link is None:
        return None, None, None
    claim = local_claim(p, env, cwd, pool.engine.env if isinstance(pool.engine, LocalStandbys) else {})
    try:
        await link.claim(claim, timeout=p.comm_timeout)
    except ClaimFailed as err:
        pool.discard(link, str(err))
        return pool, None, None
    process: LocalLauncherProcess = link.handle
    process.kernel_id = str(p.kernel_id)
    p.log.info("Kernel %s: claimed standby %s of pool %s (local process %s)", p.kernel_id, link.standby_id,
               pool.pool_id, process.pid)
    return pool, process, link.standby_id if keeps_standby_environment(link.registration.launcher) else None

