"""What every Kernel Fleet provisioner shares: the launch handshake with the broker and the comm port.

A subclass says how to start the launcher on its engine (``start_launcher``), how to notice that
the launch died before reporting (``launch_failure``), and how to stop what it started. Waiting
for the report, interrupting, and the shutdown handshake are the same everywhere and live here.
"""

from __future__ import annotations

import asyncio
import base64
import getpass
import math
import os
import re
import signal
from typing import Any, ClassVar

from jupyter_client.connect import KernelConnectionInfo
from jupyter_client.provisioning import KernelProvisionerBase
from traitlets import Float, Integer, List, Set, TraitError, Unicode, default, validate

from kernelfleet.protocol import CommOp, CommProtocolError, PortRange, PortRangeError, Report, contract
from kernelfleet.protocol.comm_client import send_legacy_request, send_request
from kernelfleet.protocol.constants import KERNEL_ID_PATTERN
from kernelfleet.provisioners.authorization import check_user
from kernelfleet.provisioners.broker import PendingLaunch, ResponseBroker
from kernelfleet.provisioners.config_check import check_provisioner_config
from kernelfleet.provisioners.envconfig import env_list, env_number, env_value
from kernelfleet.provisioners.gp_settings import warn_about_gp_environment
from kernelfleet.provisioners.kernel_signals import SignalNotDelivered, carried_name, refused_message
from kernelfleet.provisioners.launch_events import LaunchEventSettings, LaunchProgress, Phase
from kernelfleet.provisioners.presence import Presence
from kernelfleet.provisioners.request_env import Engine, check_request_env, positive_seconds
from kernelfleet.provisioners.server_identity import SERVER_ID_ENV, server_id_of
from kernelfleet.provisioners.transport_encryption import CurvePlan, normalise_policy

PLACEHOLDER = re.compile(r"\{([A-Za-z0-9_]+)\}")
LEGACY_SIGNALS = {CommOp.INTERRUPT: signal.SIGINT, CommOp.TERMINATE: signal.SIGTERM, CommOp.KILL: signal.SIGKILL}


def fill_placeholders(argv: list[str], values: dict[str, str]) -> list[str]:
    """A kernelspec's argv with the protocol's ``{name}`` placeholders filled; unknown ones stay as they are."""
    return [PLACEHOLDER.sub(lambda m: values.get(m[1], m[0]), arg) for arg in argv]


class LaunchError(RuntimeError):
    """The kernel could not be started; the message names the kernel and the engine's reason."""


class RemoteProvisionerBase(LaunchEventSettings, KernelProvisionerBase):  # type: ignore[misc]
    """Settings every Kernel Fleet provisioner shares: launch timeouts, the kernel's port range, who may start
    the kernel, which server variables it inherits. Set them per kernelspec or as ``c.<Provisioner>.*``;
    jupyter_client's provisioner factory creates one instance per kernel."""

    # Which request-settable KERNEL_* names this provisioner interprets (request_env.REQUEST_VARIABLES).
    request_engine: ClassVar[Engine | None] = None
    # The engine named in launch events (launch_events.Phase); each provisioner says its own.
    launch_engine: ClassVar[str] = "local"

    launch_timeout = Float(
        help="Seconds to wait for the launcher's report (env KF_LAUNCH_TIMEOUT / GP_LAUNCH_TIMEOUT; "
        "a request's KERNEL_LAUNCH_TIMEOUT overrides it for that launch, up to max_launch_timeout; default 30).",
    ).tag(config=True)
    max_launch_timeout = Float(
        help="The longest launch timeout a request may ask for with KERNEL_LAUNCH_TIMEOUT; larger values are "
        "lowered to it (env KF_MAX_LAUNCH_TIMEOUT; default 600 s).",
    ).tag(config=True)
    port_range = Unicode(
        help="Ports the kernel may use, 'lower..upper' or '0..0' (env KF_PORT_RANGE / GP_PORT_RANGE; "
        "default 0..0: any)."
    ).tag(config=True)
    min_port_range_size = Integer(
        help="Smallest non-zero port range accepted (env GP_MIN_PORT_RANGE_SIZE; default 1000)."
    ).tag(config=True)
    authorized_users = Set(
        Unicode(), help="If not empty, only these users may start this kernel (env KF_AUTHORIZED_USERS / "
        "GP_AUTHORIZED_USERS)."
    ).tag(config=True)
    unauthorized_users = Set(
        Unicode(), help="Users who may never start this kernel (env KF_UNAUTHORIZED_USERS / GP_UNAUTHORIZED_USERS; "
        "default: root)."
    ).tag(config=True)
    inherited_envs = List(
        Unicode(), help="Server environment variables passed on to remote kernels (env KF_INHERITED_ENVS / "
        "GP_INHERITED_ENVS)."
    ).tag(config=True)
    comm_timeout = Float(5.0, help="Seconds to wait for the launcher to answer a comm-port request.").tag(config=True)

    @default("launch_timeout")
    def _launch_timeout_default(self) -> float:
        return env_number(("KF_LAUNCH_TIMEOUT", "GP_LAUNCH_TIMEOUT"), 30.0)

    @default("max_launch_timeout")
    def _max_launch_timeout_default(self) -> float:
        return env_number(("KF_MAX_LAUNCH_TIMEOUT",), 600.0)

    @validate("max_launch_timeout")
    def _check_max_launch_timeout(self, proposal: dict[str, Any]) -> float:
        value = float(proposal["value"])
        if not math.isfinite(value) or value <= 0:
            raise TraitError(f"max_launch_timeout must be a finite number of seconds above 0, not {value!r}")
        return value

    @default("port_range")
    def _port_range_default(self) -> str:
        return env_value(("KF_PORT_RANGE", "GP_PORT_RANGE")) or "0..0"

    @default("min_port_range_size")
    def _min_port_range_size_default(self) -> int:
        return int(env_number(("GP_MIN_PORT_RANGE_SIZE",), 1000))

    @default("authorized_users")
    def _authorized_users_default(self) -> set[str]:
        return set(env_list(("KF_AUTHORIZED_USERS", "GP_AUTHORIZED_USERS"), ()))

    @default("unauthorized_users")
    def _unauthorized_users_default(self) -> set[str]:
        return set(env_list(("KF_UNAUTHORIZED_USERS", "GP_UNAUTHORIZED_USERS"), ("root",)))

    @default("inherited_envs")
    def _inherited_envs_default(self) -> list[str]:
        return env_list(("KF_INHERITED_ENVS", "GP_INHERITED_ENVS"), ())

    def __init__(self, **kwargs: Any) -> None:
        check_provisioner_config(type(self), kwargs)  # a kernelspec's typo fails here, not silently
        warn_about_gp_environment(self.log)  # once per process: GP_* names left set that do nothing here
        super().__init__(**kwargs)
        self.pending: PendingLaunch | None = None
        self.comm_host: str | None = None
        self.comm_port: int | None = None
        self.comm_key: bytes | None = None
        self.protocol_version = 2
        self.remote_pid: int | None = None
        self.launcher_name = ""  # the report's "launcher" ("python/0.1.0", "r/0.1.0", "scala/0.1.0")
        self.launch_env: dict[str, str] = {}
        self._effective_timeout = 0.0
        self.curve_plan: CurvePlan | None = None
        self.server_id = ""  # this server's identity, on everything the launch creates (server_identity)
        self.progress = LaunchProgress("", self.launch_engine, self.log, enabled=False)  # pre_launch begins one

    # ------------------------------------------------------------------------------------- hooks
    async def start_launcher(self, cmd: list[str], env: dict[str, str], **kwargs: Any) -> None:
        """Start the launcher on the engine; return once it has been handed over."""
        raise NotImplementedError

    async def start_from_pool(self, cmd: list[str], env: dict[str, str], **kwargs: Any) -> bool:
        """Claim a warm pool's standby for this launch instead of starting a launcher (issue 15, docs/warm-pools.md);
        False (the launch goes cold) when this engine has no pool or it is empty. The report is awaited as usual."""
        return False

    async def launch_failure(self) -> str:
        """Return (never raise) a description as soon as the launch is known to have died; otherwise wait."""
        await asyncio.Event().wait()
        return ""

    async def launch_diagnostics(self) -> str:
        """What to tell the user when the report never came (engine state, last log lines)."""
        return "no further information from the engine"

    def launches_on_this_host(self) -> bool:
        """True when every launcher this provisioner starts runs on the server's host: its report then goes to
        the broker's loopback listener, and no listener the network reaches is opened for it."""
        return False

    def kernel_address(self, report: Report) -> str:
        """Where the kernel's ports are reachable from this server."""
        return str(report.connection_info.get("ip") or "127.0.0.1")

    def closed_request_names(self) -> dict[str, str]:
        """Request-settable names this kernelspec's configuration closes, each with the setting that opens it:
        ``pre_launch`` refuses a request that sets one before reading its value. None by default."""
        return {}

    # ------------------------------------------------------------------------------------- launch
    async def pre_launch(self, **kwargs: Any) -> dict[str, Any]:
        extra_arguments = kwargs.pop("extra_arguments", None)
        policy = kwargs.pop("transport_encryption", None) or getattr(self.parent, "transport_encryption", None)
        kwargs = await super().pre_launch(**kwargs)
        env: dict[str, str] = kwargs["env"]
        kernel_id = self.kernel_id
        self.progress = self.begin_progress(str(kernel_id), self.launch_engine)
        if not isinstance(kernel_id, str) or not KERNEL_ID_PATTERN.match(kernel_id):
            raise ValueError(
                f"Kernel {str(kernel_id)[:140]!r}: the kernel id must be 1-128 characters of [A-Za-z0-9._-], "
                "starting with a letter or digit"
            )
        # Before anything reads a request value: operator-only names, then each interpreted name's type.
        check_request_env(
            kernel_id, env, engine=self.request_engine,
            operator_env=self.kernel_spec.env if self.kernel_spec is not None else {}, server_env=os.environ,
            closed=self.closed_request_names(),
        )
        named = env.get("KERNEL_USERNAME")
        username = named or getpass.getuser()
        env["KERNEL_USERNAME"] = username
        # unauthorized_users (default: root) guards the identity a request asks for; a server running as
        # root that names no user launches as itself, as LocalProvisioner would.
        check_user(
            kernel_id, username, authorized=self.authorized_users, unauthorized=self.unauthorized_users if named else ()
        )
        try:
            port_range = PortRange.parse(self.port_range, min_size=self.min_port_range_size)
        except PortRangeError as err:
            raise ValueError(f"Kernel {kernel_id}: invalid port_range in the kernelspec: {err}") from None
        self._effective_timeout = self._launch_timeout_for(env)
        language = self.kernel_language
        self.curve_plan = CurvePlan.for_launch(
            kernel_id,
            normalise_policy(kernel_id, policy),
            metadata=self.kernel_spec.metadata if self.kernel_spec else None,
            language=language,
            log=self.log,
        )
        # The server's config (c.ResponseBroker.*) reaches the broker through ours: jupyter_client makes us
        # with the kernel manager as parent. The first launch on a loop creates the broker.
        broker = await ResponseBroker.instance(config=self.config)
        try:
            response_address = await broker.response_address_for(local=self.launches_on_this_host())
        except OSError as err:
            raise LaunchError(f"Kernel {kernel_id}: no response address for its launcher: {err}") from None
        if self.pending is not None:
            self.pending.cancel()
        self.pending = broker.expect(kernel_id)
        self.server_id = server_id_of(self)
        self.launch_env = {
            contract.KERNEL_ID: kernel_id,
            "KERNEL_LANGUAGE": env.get("KERNEL_LANGUAGE") or language.lower(),  # the kernelspec's: checked above
            contract.RESPONSE_ADDRESS: response_address,
            contract.PUBLIC_KEY: broker.public_key,
            contract.PORT_RANGE: str(port_range),
            contract.LAUNCH_TOKEN: self.pending.token,
            contract.TRANSPORT_ENCRYPTION: self.curve_plan.launcher_value,
            SERVER_ID_ENV: self.server_id,
        }
        env.update(self.launch_env)
        substitutions = {
            "kernel_id": kernel_id,
            "response_address": response_address,
            "public_key": broker.public_key,
            "port_range": str(port_range),
            "transport_encryption": self.curve_plan.launcher_value,
        }
        kwargs["cmd"] = fill_placeholders(self._base_cmd(extra_arguments), substitutions)
        return kwargs

    def _base_cmd(self, extra_arguments: list[str] | None) -> list[str]:
        km = self.parent
        if km is not None and hasattr(km, "format_kernel_cmd"):
            return list(km.format_kernel_cmd(extra_arguments=extra_arguments))
        return list(self.kernel_spec.argv) + list(extra_arguments or [])

    def _launch_timeout_for(self, env: dict[str, str]) -> float:
        """The kernelspec's launch_timeout, or the request's KERNEL_LAUNCH_TIMEOUT lowered to max_launch_timeout.

        A request must not hold a host slot, container or pod for ever: malformed values (words, inf,
        nan, 0, negatives) were refused by check_request_env; a finite value above the operator's
        maximum is lowered to it, with one log line.
        """
        requested = (env.get("KERNEL_LAUNCH_TIMEOUT") or "").strip()
        if not requested:
            return float(self.launch_timeout)
        value = positive_seconds(self.kernel_id, "KERNEL_LAUNCH_TIMEOUT", requested)
        if value > self.max_launch_timeout:
            self.log.warning("Kernel %s: KERNEL_LAUNCH_TIMEOUT=%s lowered to max_launch_timeout %gs", self.kernel_id,
                             requested[:40], self.max_launch_timeout)
            return float(self.max_launch_timeout)
        return value

    async def launch_kernel(self, cmd: list[str], **kwargs: Any) -> KernelConnectionInfo:
        env = kwargs.pop("env")
        kwargs.pop("kernel_id", None)
        self.log.info("Kernel %s: launching (%s)", self.kernel_id, type(self).__name__)
        self.progress.emit(Phase.ACCEPTED)
        try:
            if not await self.start_from_pool(cmd, env, **kwargs):
                await self.start_launcher(cmd, env, **kwargs)
            self.progress.emit(Phase.LAUNCHER_STARTED)
            report = await self._await_report()
            self._accept_report(report)
            self.progress.emit(Phase.REPORTED, message=str(report.extra.get("launcher") or ""))
        except BaseException as err:
            self.progress.finish(err)
            await self._abandon_launch()
            raise
        self.log.info("Kernel %s: connected (%s:%s)", self.kernel_id, self.connection_info["ip"],
                      self.connection_info["shell_port"])
        return self.connection_info

    async def post_launch(self, **kwargs: Any) -> None:
        """jupyter_client calls it once the kernel's sockets are connected: the launch is over."""
        await super().post_launch(**kwargs)
        self.progress.finish()

    async def _await_report(self) -> Report:
        if self.pending is None:
            # jupyter_client does not serialise restarts: its restarter and a user's restart (or a shutdown) can run
            # on one kernel at once, and the other one's cleanup ended this launch's wait.
            raise LaunchError(f"Kernel {self.kernel_id}: this launch was superseded by a shutdown or restart of the "
                              "same kernel that ran at the same time")
        failure = asyncio.ensure_future(self.launch_failure())
        try:
            done, _ = await asyncio.wait(
                {self.pending.future, failure}, timeout=self._effective_timeout, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            failure.cancel()
        if self.pending.future in done:
            return self.pending.future.result()
        if failure in done:
            raise LaunchError(
                f"Kernel {self.kernel_id}: the launch failed before the kernel reported: {failure.result()}"
            )
        raise TimeoutError(
            f"Kernel {self.kernel_id}: no launch report within {self._effective_timeout:g}s "
            f"({await self.launch_diagnostics()}){self.pending.timeout_hint()}"
        )

    async def _abandon_launch(self) -> None:
        if self.pending is not None:
            self.pending.cancel()
        try:
            await self.kill()
        except Exception as err:  # the original failure is what the user must see
            self.log.debug("Kernel %s: cleanup after a failed launch: %s", self.kernel_id, err)

    def _accept_report(self, report: Report) -> None:
        info = dict(report.connection_info)
        info["ip"] = self.kernel_address(report)
        self.comm_host = info["ip"]
        self.comm_port = report.comm_port
        self.comm_key = report.comm_key
        self.protocol_version = report.version
        self.remote_pid = report.pid
        self.launcher_name = str(report.extra.get("launcher") or "")
        if report.extra.get("launcher"):
            self.log.debug("Kernel %s: launcher %s", self.kernel_id, report.extra["launcher"])
        plan = self.curve_plan or CurvePlan(self.kernel_id, "disabled", False)
        curve = plan.accept(report.extra, str(report.extra.get("launcher") or ""), self.log)
        info.update(curve)
        if hasattr(self.parent, "curve_publickey"):
            # jupyter_client keeps a previous launch's keys when the new connection info has none.
            self.parent.curve_publickey = curve["curve_publickey"].encode() if curve else None
            self.parent.curve_secretkey = curve["curve_secretkey"].encode() if curve else None
        self.log.debug("Kernel %s: transport %s", self.kernel_id, "CurveZMQ-encrypted" if curve else "unencrypted")
        self.connection_info = info

    # ------------------------------------------------------------------------------------- comm port
    async def comm_request(self, op: CommOp, **params: Any) -> dict[str, Any] | None:
        """Send one request to the launcher; None when it cannot be reached or refuses."""
        if not self.comm_port or not self.comm_host:
            return None
        try:
            if self.protocol_version < 2 or self.comm_key is None:
                await self._legacy_request(op, params)
                return {"ok": True, "alive": True}
            reply = await send_request(
                self.comm_host, self.comm_port, self.comm_key, op, timeout=self.comm_timeout, **params
            )
        except (OSError, TimeoutError, CommProtocolError) as err:
            self.log.debug("Kernel %s: comm %s to %s:%s failed: %s", self.kernel_id, op.value, self.comm_host,
                           self.comm_port, err)
            return None
        if not reply.get("ok") and op is not CommOp.SIGNAL:  # deliver_signal says more, once
            self.log.warning("Kernel %s: launcher refused %s: %s", self.kernel_id, op.value, reply.get("error"))
        return reply

    async def _legacy_request(self, op: CommOp, params: dict[str, Any]) -> None:
        assert self.comm_host and self.comm_port
        if op is CommOp.SHUTDOWN:
            request = {"shutdown": 1}
        elif op is CommOp.SIGNAL:  # GP's launcher takes the number, in this host's numbering as GP sent it
            request = {"signum": int(signal.Signals[params["signal"]])}
        else:
            request = {"signum": int(LEGACY_SIGNALS.get(op, 0))}
        await send_legacy_request(self.comm_host, self.comm_port, request, timeout=self.comm_timeout)

    @property
    def kernel_language(self) -> str:
        """The kernelspec's ``language`` as written; Python when it names none (the transport-encryption plan and the
        warm pools' engines decide by it)."""
        return (self.kernel_spec.language if self.kernel_spec else "") or "python"

    # ------------------------------------------------------------------------------------- lifecycle
    @property
    def has_process(self) -> bool:
        return self.comm_port is not None

    async def poll(self) -> int | None:
        """None while the kernel may be alive; an exit status only when the launcher or the engine says it ended.

        A comm port that does not answer proves nothing: anyone who can reach it can keep it busy, and
        jupyter_client's restarter replaces a kernel that polls as dead, losing the user's state. So only
        ``Presence.GONE`` (the launcher's own word, or the engine's) counts as dead; unreachable is alive.
        """
        if not self.comm_port:
            return 0  # never launched, or cleaned up
        return 0 if await self.presence() is Presence.GONE else None

    async def presence(self) -> Presence:
        """Is the kernel still there? ``poll()`` asks on every restarter tick, and the sessions extension asks
        before it re-registers a saved kernel. Here only the launcher can answer; engines that know override
        this, and engines that can ask the host when the launcher does not answer extend it."""
        if not self.comm_port or not self.comm_host:
            return Presence.GONE
        reply = await self.comm_request(CommOp.PING)
        if reply is None or not reply.get("ok"):
            return Presence.UNREACHABLE
        return Presence.RUNNING if reply.get("alive", True) else Presence.GONE

    async def detach(self) -> None:
        """Let go of a kernel without stopping it: give back shared clients, watches and host counts. The sessions
        extension calls it for a saved kernel it cannot reach yet, before it tries again with a new provisioner."""

    async def wait(self) -> int | None:
        """Engines without an exit event end up here: ask the launcher with a growing interval."""
        delay = 0.05
        while await self.poll() is None:
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)
        return 0

    async def send_signal(self, signum: int) -> None:
        """jupyter_client's ``signal_kernel``: 0 asks nothing (``poll`` is the liveness question), SIGINT interrupts,
        SIGTERM and SIGKILL stop the kernel; the signals of protocol 2.2's allow-list (SIGHUP, SIGUSR1, ...) go to
        the kernel by name over the comm port (``deliver_signal``). Raises SignalNotDelivered for anything else."""
        if signum == 0:
            return
        if signum == signal.SIGINT:
            reply = await self.comm_request(CommOp.INTERRUPT)
            if reply and reply.get("ok"):
                self.log.info("Kernel %s: interrupted", self.kernel_id)
            else:
                self.log.warning("Kernel %s: interrupt could not be delivered", self.kernel_id)
        elif signum == signal.SIGTERM:
            await self.terminate()
        elif signum == signal.SIGKILL:
            await self.kill()
        else:
            await self.deliver_signal(signum)

    async def deliver_signal(self, signum: int) -> None:
        """A signal other than SIGINT/SIGTERM/SIGKILL, by name through the launcher's comm port (docs/protocol.md,
        section 4); Gateway Provisioners sent the raw number. Raises SignalNotDelivered, naming the kernel and the
        signal, when the protocol does not carry it, the port does not answer, or the launcher refuses it (a launcher
        older than protocol 2.2 answers "unknown op": the message names the launcher version that is needed)."""
        try:
            name = carried_name(self.kernel_id, signum)
            reply = await self.comm_request(CommOp.SIGNAL, signal=name)
            if reply is None:
                raise SignalNotDelivered(f"Kernel {self.kernel_id}: {name} was not delivered: the launcher's comm "
                                         f"port did not answer within {self.comm_timeout:g}s")
            if not reply.get("ok"):
                raise SignalNotDelivered(
                    refused_message(self.kernel_id, name, str(reply.get("error")), self.launcher_name))
        except SignalNotDelivered as err:
            self.log.warning("%s", err)
            raise
        self.log.info("Kernel %s: %s delivered", self.kernel_id, name)

    async def terminate(self, restart: bool = False) -> None:
        await self.comm_request(CommOp.TERMINATE)

    async def kill(self, restart: bool = False) -> None:
        await self.comm_request(CommOp.KILL)

    async def shutdown_requested(self, restart: bool = False) -> None:
        grace = self.get_shutdown_wait_time()
        await self.comm_request(CommOp.SHUTDOWN, grace=grace)

    async def cleanup(self, restart: bool = False) -> None:
        if self.pending is not None:
            self.pending.cancel()
            self.pending = None
        self.comm_host = self.comm_port = self.comm_key = None
        self.remote_pid = None
        if not restart:
            self.log.info("Kernel %s: stopped", self.kernel_id)

    # ------------------------------------------------------------------------------------- persistence
    async def get_provisioner_info(self) -> dict[str, Any]:
        info = await super().get_provisioner_info()
        info.update(
            comm_host=self.comm_host,
            comm_port=self.comm_port,
            comm_key=base64.b64encode(self.comm_key).decode() if self.comm_key else None,
            protocol_version=self.protocol_version,
            remote_pid=self.remote_pid,
            launcher=self.launcher_name,
        )
        return info

    async def load_provisioner_info(self, provisioner_info: dict[str, Any]) -> None:
        await super().load_provisioner_info(provisioner_info)
        self.comm_host = provisioner_info.get("comm_host")
        self.comm_port = provisioner_info.get("comm_port")
        key = provisioner_info.get("comm_key")
        self.comm_key = base64.b64decode(key) if key else None
        self.protocol_version = int(provisioner_info.get("protocol_version") or 2)
        self.remote_pid = provisioner_info.get("remote_pid")
        self.launcher_name = str(provisioner_info.get("launcher") or "")
