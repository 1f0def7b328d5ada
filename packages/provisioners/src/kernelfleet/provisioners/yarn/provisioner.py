"""``yarn-provisioner``: each kernel is a YARN application whose application master is the kernel's launcher.

Two ways to submit, per kernelspec (``submission``):

* ``argv`` (default, Gateway Provisioners' way): the kernelspec's argv — ``spark-submit --master yarn
  --deploy-mode cluster --name {kernel_id} ...`` — runs as a local process, without a shell. GP's own YARN
  kernelspecs start ``bin/run.sh``, which ``eval``s ``SPARK_OPTS``; that script is never run: its meaning is
  rebuilt as an argv (``submission.gp_spark_submit_argv``). The launch environment reaches the AM through a
  0600 Spark properties file (``spark.yarn.appMasterEnv.*``), so the launch token is never on a command line.
  The app is then found by name (the kernel id) among apps started since the launch.
* ``rest``: ``new-application`` + ``POST /apps`` with the kernelspec's argv as the AM command, so a plain
  Python or R kernel on YARN needs no Spark client.

A Dask kernelspec (``DASK_OPTS`` in its env: GP's ``yarn_dask_python``, whose ``run.sh`` would run ``dask-yarn
submit``, or ``jupyter yarn-spec install --dask``'s) is always submitted through REST: the kernel is the AM, and
``DASK_OPTS`` becomes the kernel's Dask settings (``yarn.dask``), from which it starts its own YarnCluster.

Then the app's state is followed (``client.wait_for_state``: the cheapest request, a backoff from 20 ms capped at
``state_poll_cap``) and raced against the launcher's report as on every engine: an app that ends
(FAILED, KILLED, FINISHED: the AM exited) or stays ACCEPTED past ``queue_timeout`` fails the launch at once
with YARN's diagnostics. Interrupt and shutdown go through the launcher's comm port; kill is
``PUT /apps/{id}/state`` KILLED. ``poll`` asks YARN.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import os
import tempfile
import time
from typing import Any, ClassVar

from traitlets import Bool, Enum, Float, Integer, TraitError, Unicode, default, validate

from kernelfleet.protocol import Report
from kernelfleet.protocol.contract import LAUNCH_TOKEN
from kernelfleet.provisioners.base import LaunchError, RemoteProvisionerBase
from kernelfleet.provisioners.envconfig import env_bool, env_number, env_value
from kernelfleet.provisioners.kernel_env import remote_kernel_env
from kernelfleet.provisioners.launch_events import Phase
from kernelfleet.provisioners.presence import Presence
from kernelfleet.provisioners.request_env import user_name
from kernelfleet.provisioners.ssh.local_process import LocalLauncherProcess
from kernelfleet.provisioners.yarn.client import (
    AuthorizationHook,
    ResourceManagerClient,
    RMUnavailable,
    YarnError,
    load_authorization_hook,
    wait_for_state,
)
from kernelfleet.provisioners.yarn.dask import DaskLaunch, dask_launch, is_dask_kernelspec
from kernelfleet.provisioners.yarn.submission import (
    am_host,
    app_tags,
    describe_end,
    describe_queue_wait,
    gp_spark_submit_argv,
    is_gp_run_sh,
    pick_app,
    properties_text,
    submission_context,
    with_spark_options,
    with_templates,
)

FINAL = frozenset({"FINISHED", "FAILED", "KILLED"})
WAITING = frozenset({"NEW", "NEW_SAVING", "SUBMITTED", "ACCEPTED"})
WILDCARD = frozenset({"", "0.0.0.0", "::"})
CLOCK_SLACK_MS = 5000  # the RM's clock may lag ours: apps found by start time are looked for this much earlier


class YarnProvisioner(RemoteProvisionerBase):
    """``yarn-provisioner``: the kernel as a YARN application (Spark cluster mode or a plain AM). Configured per
    kernelspec or as ``c.YarnProvisioner.*``; GP's ``GP_YARN_*`` variables are read as defaults."""

    launch_engine: ClassVar[str] = "yarn"

    yarn_endpoint = Unicode(
        help="The ResourceManager's REST endpoint, e.g. http://rm1:8088/ws/v1/cluster (env KF_YARN_ENDPOINT / "
        "GP_YARN_ENDPOINT)."
    ).tag(config=True)
    alt_yarn_endpoint = Unicode(
        help="The HA partner's endpoint (env KF_ALT_YARN_ENDPOINT / GP_ALT_YARN_ENDPOINT); requests go to "
        "whichever is active."
    ).tag(config=True)
    yarn_endpoint_security_enabled = Bool(
        help="Authenticate to the RM with Kerberos/SPNEGO through authorization_hook (env "
        "GP_YARN_ENDPOINT_SECURITY_ENABLED; default false: YARN's simple auth, user.name=)."
    ).tag(config=True)
    authorization_hook = Unicode(
        "kernelfleet.provisioners.spnego:negotiate_authorization",
        help="'module:callable' returning the Authorization header for an RM URL (an async callable taking the "
        "URL); used when yarn_endpoint_security_enabled is on. Default: SPNEGO with the server's Kerberos ticket "
        "(the kerberos extra; docs/kerberos.md)."
    ).tag(config=True)
    impersonation_enabled = Bool(
        help="Run the app as the requesting user: spark-submit --proxy-user KERNEL_USERNAME, or the REST "
        "submission's user (env GP_IMPERSONATION_ENABLED; default false)."
    ).tag(config=True)
    submission = Enum(
        ["argv", "rest"], "argv",
        help="'argv': run the kernelspec's argv (spark-submit in cluster mode); 'rest': submit the argv as the AM "
        "command through the RM's REST API."
    ).tag(config=True)
    queue = Unicode("default", help="The YARN queue of REST submissions (spark-submit names its own).").tag(config=True)
    queue_timeout = Float(
        help="Seconds an app may stay ACCEPTED (waiting for its queue) before the launch fails with the RM's reason "
        "(env KF_YARN_QUEUE_TIMEOUT; default: a fifth of the launch timeout, as GP)."
    ).tag(config=True)
    am_memory = Integer(1024, help="AM container memory (MB) of REST submissions.").tag(config=True)
    am_vcores = Integer(1, help="AM container vcores of REST submissions.").tag(config=True)
    state_poll_cap = Float(
        1.0, help="Longest interval, in seconds, between two state requests (YARN has no watch: a failure is seen at "
        "most this long after the RM reports it)."
    ).tag(config=True)

    @default("yarn_endpoint")
    def _yarn_endpoint_default(self) -> str:
        return env_value(("KF_YARN_ENDPOINT", "GP_YARN_ENDPOINT")) or ""

    @default("alt_yarn_endpoint")
    def _alt_yarn_endpoint_default(self) -> str:
        return env_value(("KF_ALT_YARN_ENDPOINT", "GP_ALT_YARN_ENDPOINT")) or ""

    @default("yarn_endpoint_security_enabled")
    def _security_default(self) -> bool:
        return env_bool(("KF_YARN_ENDPOINT_SECURITY_ENABLED", "GP_YARN_ENDPOINT_SECURITY_ENABLED"), False)

    @default("impersonation_enabled")
    def _impersonation_default(self) -> bool:
        return env_bool(("KF_IMPERSONATION_ENABLED", "GP_IMPERSONATION_ENABLED"), False)

    @default("queue_timeout")
    def _queue_timeout_default(self) -> float:
        return env_number(("KF_YARN_QUEUE_TIMEOUT",), 0.0)

    @validate("queue_timeout", "state_poll_cap")
    def _check_seconds(self, proposal: dict[str, Any]) -> float:
        value = float(proposal["value"])
        if value < 0:
            raise TraitError(f"{proposal['trait'].name} must be a number of seconds, not {value!r}")
        return value

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.application_id: str | None = None
        self.am_host = ""
        self.am_address = ""
        self.rm: ResourceManagerClient | None = None
        self.submitter: LocalLauncherProcess | None = None
        self._properties_dir: str | None = None
        self._launch_started_ms = 0
        self._previous_apps: set[str] = set()
        self._app_ended = False  # YARN said the current app reached a final state

    # ------------------------------------------------------------------------------------- client
    def endpoints(self) -> list[str]:
        return [e for e in (self.yarn_endpoint, self.alt_yarn_endpoint) if e.strip()]

    def _authorization(self) -> AuthorizationHook | None:
        if not self.yarn_endpoint_security_enabled:
            return None
        if not self.authorization_hook:
            raise LaunchError(f"Kernel {self.kernel_id}: yarn_endpoint_security_enabled is on, but no SPNEGO "
                              "authorization_hook ('module:callable') is configured")
        try:
            return load_authorization_hook(self.authorization_hook)
        except ValueError as err:
            raise LaunchError(f"Kernel {self.kernel_id}: {err}") from None

    def client(self, user: str | None = None) -> ResourceManagerClient:
        if self.rm is None:
            try:
                self.rm = ResourceManagerClient(self.endpoints(), user=user or getpass.getuser(),
                                                authorization=self._authorization())
            except ValueError as err:
                raise LaunchError(f"Kernel {self.kernel_id}: {err}") from None
        return self.rm

    # ------------------------------------------------------------------------------------- launch
    async def launch_kernel(self, cmd: list[str], **kwargs: Any) -> Any:
        """The shared launch; a failed one also gives back the RM client (jupyter_client calls no cleanup then)."""
        try:
            return await super().launch_kernel(cmd, **kwargs)
        except BaseException:
            await self.detach()
            raise

    async def start_launcher(self, cmd: list[str], env: dict[str, str], **kwargs: Any) -> None:
        if self.application_id:
            self._previous_apps.add(self.application_id)
        self.application_id, self.am_host, self.am_address = None, "", ""
        self._app_ended = False
        proxy_user = self._proxy_user(env)
        rm = self.client(proxy_user)
        self._launch_started_ms = int(time.time() * 1000)
        spec_env = dict(self.kernel_spec.env) if self.kernel_spec else {}
        am_env = remote_kernel_env(self.kernel_id, env, spec_env_names=spec_env, protocol_env=self.launch_env,
                                   inherited_envs=self.inherited_envs)
        templated = with_templates(env, spec_env)  # GP's option strings as the kernelspec wrote them
        if is_dask_kernelspec(spec_env):
            dask = self._dask_launch(cmd, templated, proxy_user)
            await self._submit_rest(rm, dask.argv, {**dask.env, **am_env}, queue=dask.queue,
                                    memory_mb=dask.memory_mb, vcores=dask.vcores)
        elif self.submission == "rest":
            await self._submit_rest(rm, cmd, am_env)
        else:
            await self._run_submitter(cmd, env, templated, am_env, proxy_user)

    def _proxy_user(self, env: dict[str, str]) -> str | None:
        if not self.impersonation_enabled:
            return None
        return user_name(self.kernel_id, "KERNEL_USERNAME", env["KERNEL_USERNAME"])

    def _dask_launch(self, cmd: list[str], env: dict[str, str], proxy_user: str | None) -> DaskLaunch:
        """A Dask kernel's REST submission (GP's run.sh is never run; ``dask-yarn submit`` never either)."""
        try:
            return dask_launch(cmd, env, gp_run_sh=is_gp_run_sh(cmd),
                               tags=app_tags(self.kernel_id, self.server_id), user=proxy_user)
        except ValueError as err:
            raise LaunchError(f"Kernel {self.kernel_id}: {err}") from None

    async def _submit_rest(self, rm: ResourceManagerClient, cmd: list[str], am_env: dict[str, str], *,
                           queue: str | None = None, memory_mb: int | None = None, vcores: int | None = None) -> None:
        """Submit ``cmd`` as the AM; ``queue`` / ``memory_mb`` / ``vcores`` (a Dask kernel's ``--queue`` and
        ``--client-*``) override the provisioner's ``queue``, ``am_memory`` and ``am_vcores``."""
        queue = queue or self.queue
        try:
            app_id = await rm.new_application()
            context = submission_context(app_id=app_id, name=self.kernel_id, queue=queue, argv=cmd, env=am_env,
                                         tags=app_tags(self.kernel_id, self.server_id),
                                         memory_mb=memory_mb or self.am_memory, vcores=vcores or self.am_vcores)
            await rm.submit(context)
        except (YarnError, RMUnavailable) as err:
            raise LaunchError(f"Kernel {self.kernel_id}: YARN refused the application: {err}") from None
        self.application_id = app_id
        self.log.info("Kernel %s: submitted YARN application %s to queue %s", self.kernel_id, app_id, queue)

    async def _run_submitter(self, cmd: list[str], env: dict[str, str], templated: dict[str, str],
                             am_env: dict[str, str], proxy_user: str | None) -> None:
        """spark-submit (``cmd``, or GP's run.sh rebuilt from ``templated``: ``env`` with the kernelspec's option
        templates) as a local process with ``env`` less the launch token."""
        try:
            if is_gp_run_sh(cmd):
                lib = os.path.join(os.path.dirname(os.path.dirname(cmd[0])), "lib")
                argv = gp_spark_submit_argv(cmd, templated, proxy_user, await asyncio.to_thread(_names_in, lib))
            else:
                argv = list(cmd)
        except ValueError as err:
            raise LaunchError(f"Kernel {self.kernel_id}: {err}") from None
        properties = await asyncio.to_thread(self._write_properties, am_env)
        argv = with_spark_options(argv, properties, proxy_user)
        submit_env = {k: v for k, v in env.items() if k != LAUNCH_TOKEN}  # the AM gets it from the properties file
        try:
            self.submitter = await LocalLauncherProcess.start(self.kernel_id, argv, submit_env, None, self.log)
        except RuntimeError as err:
            raise LaunchError(str(err)) from None
        self.log.info("Kernel %s: submitting to YARN with %s (pid %s)", self.kernel_id, os.path.basename(argv[0]),
                      self.submitter.pid)

    def _write_properties(self, am_env: dict[str, str]) -> str:
        self._properties_dir = tempfile.mkdtemp(prefix="kernelfleet-yarn-")  # 0700
        path = os.path.join(self._properties_dir, "launch.properties")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(properties_text(am_env, app_tags(self.kernel_id, self.server_id)))
        return path

    def _remove_properties(self) -> None:
        if self._properties_dir is not None:
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(self._properties_dir, "launch.properties"))
                os.rmdir(self._properties_dir)
            self._properties_dir = None

    async def launch_failure(self) -> str:
        """The first sign that the launch cannot report: the submitter failed, the app ended or waited too long."""
        if self.application_id is None:
            problem = await self._find_app()
            if problem:
                return problem
        assert self.application_id is not None and self.rm is not None
        app_id, rm = self.application_id, self.rm
        patience = self.queue_timeout or self._effective_timeout / 5
        try:
            async with asyncio.timeout(patience):
                state = await wait_for_state(rm, app_id, lambda s: s not in WAITING, cap=self.state_poll_cap,
                                             on_unavailable=self._rm_unavailable, on_change=self._forward_state)
        except TimeoutError:
            return describe_queue_wait(await self._app_or_id(), patience)
        if state == "RUNNING":
            await self._note_am(await self._app_or_id())
            await wait_for_state(rm, app_id, FINAL.__contains__, cap=self.state_poll_cap,
                                 on_unavailable=self._rm_unavailable)
        self._app_ended = True
        return describe_end(await self._app_or_id())

    def _forward_state(self, state: str) -> None:
        """Each YARN application state seen during the launch (ACCEPTED, RUNNING, ...): RUNNING is the started phase."""
        self.progress.forward(Phase.STARTED if state == "RUNNING" else Phase.ENGINE_EVENT, state,
                              f"YARN application {self.application_id}")

    async def _find_app(self) -> str:
        """Wait for the submitter's app to appear (by name); a submitter that fails first is the answer."""
        assert self.submitter is not None and self.rm is not None
        exited = asyncio.ensure_future(self.submitter.wait())
        delay = 0.02
        try:
            while True:
                try:
                    found = await self._lookup_app()
                except RMUnavailable as err:
                    self._rm_unavailable(err)
                    found = None
                if found is not None:
                    self.log.info("Kernel %s: YARN application %s (queue %s)", self.kernel_id, self.application_id,
                                  found.get("queue"))
                    self._remove_properties()
                    return ""
                if exited.done() and exited.result() != 0:
                    return self.submitter.describe_exit(exited.result())
                await asyncio.wait({exited}, timeout=delay)
                delay = min(delay * 2, self.state_poll_cap)
        finally:
            exited.cancel()

    async def _lookup_app(self) -> dict[str, Any] | None:
        """This launch's app among those started since it began (one ``GET /apps``); noted when found."""
        assert self.rm is not None
        since = self._launch_started_ms - CLOCK_SLACK_MS
        apps = await self.rm.apps(startedTimeBegin=str(since))
        found = pick_app([a for a in apps if a.get("id") not in self._previous_apps], self.kernel_id, since)
        if found is not None:
            self.application_id = str(found["id"])
        return dict(found) if found is not None else None

    def _rm_unavailable(self, err: Exception) -> None:
        self.log.warning("Kernel %s: %s", self.kernel_id, err)

    async def _app_or_id(self) -> dict[str, Any]:
        assert self.rm is not None
        try:
            return await self.rm.app(str(self.application_id))
        except (YarnError, RMUnavailable) as err:
            return {"id": self.application_id, "state": "unknown", "diagnostics": str(err)}

    async def _note_am(self, app: dict[str, Any]) -> None:
        self.am_host = am_host(app)
        if not self.am_host:
            return
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(self.am_host, None)
            self.am_address = str(infos[0][4][0])
        except OSError as err:
            self.log.warning("Kernel %s: AM host %s does not resolve: %s", self.kernel_id, self.am_host, err)
        self.log.info("Kernel %s: YARN application %s running, AM on %s", self.kernel_id, self.application_id,
                      self.am_host)

    async def launch_diagnostics(self) -> str:
        if self.application_id is None or self.rm is None:
            return "the YARN application was not found"
        app = await self._app_or_id()
        return f"YARN application {app.get('id')} is {app.get('state')}: {app.get('diagnostics') or 'no diagnostics'}"

    def kernel_address(self, report: Report) -> str:
        ip = str(report.connection_info.get("ip") or "")
        return self.am_address or self.am_host or "127.0.0.1" if ip in WILDCARD else ip

    # ------------------------------------------------------------------------------------- state
    @property
    def has_process(self) -> bool:
        return (self.application_id is not None and not self._app_ended) or self.comm_port is not None

    async def presence(self) -> Presence:
        """YARN's word on the app: ended (or unknown to the RM) is gone; no RM answering is unreachable."""
        if self.application_id is None:
            return await super().presence()
        try:
            state = await self.client().app_state(self.application_id)
        except RMUnavailable:
            return Presence.UNREACHABLE
        except YarnError as err:
            return Presence.GONE if err.status == 404 else Presence.UNREACHABLE
        return Presence.GONE if state in FINAL else Presence.RUNNING

    async def wait(self) -> int | None:
        if self.application_id is None:
            return 0
        try:
            await wait_for_state(self.client(), self.application_id, FINAL.__contains__, cap=self.state_poll_cap)
        except YarnError:
            pass  # unknown to the RM: nothing is left to wait for
        return 0

    async def kill(self, restart: bool = False) -> None:
        """``PUT /apps/{id}/state`` KILLED; returns once YARN says the app ended."""
        if self.submitter is not None and self.submitter.returncode is None:
            await self.submitter.stop()
        if self.application_id is None and self.submitter is not None and self.rm is not None:
            with contextlib.suppress(YarnError, RMUnavailable):  # submitted, but not found yet: find it to kill it
                await self._lookup_app()
        if self.application_id is None or self.rm is None:
            return
        try:
            if await self.rm.kill(self.application_id) not in FINAL:
                async with asyncio.timeout(self.comm_timeout * 2):
                    await wait_for_state(self.rm, self.application_id, FINAL.__contains__, cap=self.state_poll_cap)
            self._app_ended = True
            self.log.debug("Kernel %s: YARN application %s killed", self.kernel_id, self.application_id)
        except (YarnError, RMUnavailable, TimeoutError) as err:
            self.log.warning("Kernel %s: could not kill YARN application %s: %s", self.kernel_id,
                             self.application_id, err)

    async def cleanup(self, restart: bool = False) -> None:
        self._remove_properties()
        if self.submitter is not None and self.submitter.returncode is None:
            await self.submitter.stop()
        self.submitter = None
        await super().cleanup(restart)
        if not restart:
            self.application_id = None
            if self.rm is not None:
                await self.rm.close()
                self.rm = None

    async def detach(self) -> None:
        if self.rm is not None:
            await self.rm.close()
            self.rm = None

    # ------------------------------------------------------------------------------------- persistence
    async def get_provisioner_info(self) -> dict[str, Any]:
        info = await super().get_provisioner_info()
        info.update(application_id=self.application_id, am_host=self.am_host)
        return info

    async def load_provisioner_info(self, provisioner_info: dict[str, Any]) -> None:
        await super().load_provisioner_info(provisioner_info)
        self.application_id = provisioner_info.get("application_id")
        self.am_host = str(provisioner_info.get("am_host") or "")


def _names_in(directory: str) -> list[str]:
    """The file names in a GP kernelspec's ``lib`` (its Scala jars); none when there is no such directory."""
    try:
        return os.listdir(directory)
    except OSError:
        return []
