"""The cluster behind the ResourceManagers: applications, queues and one NodeManager that runs AMs as processes.

One ``Cluster`` is shared by every ``ResourceManager`` of an HA pair, as a real pair shares its state store, so
an application submitted to one RM is still there after a failover. States follow YARN's ``RMAppState``:
NEW → NEW_SAVING → SUBMITTED → ACCEPTED → RUNNING → FINISHED | FAILED | KILLED. An application waits in
ACCEPTED while its queue has no room (``Queue.max_running``); an unknown queue fails it as the
CapacityScheduler does. The AM command runs with ``bash -c`` (YARN's ``launch_container.sh`` is a bash script)
in a container work directory, in its own session, with the container's environment only.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import signal
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import bad_request, not_found

FINAL = frozenset({"FINISHED", "FAILED", "KILLED"})
STATES = ("NEW", "NEW_SAVING", "SUBMITTED", "ACCEPTED", "RUNNING", "FINISHED", "FAILED", "KILLED")
QUEUE_FULL = ("[{now}] Application is added to the scheduler and is not yet activated. Queue's AM resource limit "
              "exceeded.  Details : AM Partition = <DEFAULT_PARTITION>; Queue '{queue}' is full: {running} of "
              "{limit} applications running")
KILL_GRACE = 0.25  # yarn.nodemanager.sleep-delay-before-sigkill.ms


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class Queue:
    """A leaf queue; ``max_running`` applications may run at once (None: no limit)."""

    name: str
    max_running: int | None = None


@dataclass
class Application:
    """One application, as the RM keeps it."""

    id: str
    name: str
    user: str
    queue: str
    app_type: str
    tags: list[str]
    command: str
    env: dict[str, str]
    memory: int
    vcores: int
    state: str = "NEW"
    final_status: str = "UNDEFINED"
    diagnostics: str = ""
    started: int = field(default_factory=now_ms)
    finished: int = 0
    am_host: str = ""
    process: asyncio.subprocess.Process | None = None
    exit_code: int | None = None
    log_dir: Path | None = None
    killing: bool = False
    running: asyncio.Event = field(default_factory=asyncio.Event)  # the AM process was started
    ended: asyncio.Event = field(default_factory=asyncio.Event)

    def json(self, cluster: Cluster) -> dict[str, Any]:
        """The ``app`` object of ``GET /ws/v1/cluster/apps/{id}`` (the fields clients read)."""
        attempt = f"appattempt_{self.id.removeprefix('application_')}_000001"
        container = f"container_{self.id.removeprefix('application_')}_01_000001"
        running = self.state == "RUNNING"
        return {
            "id": self.id, "user": self.user, "name": self.name, "queue": self.queue, "state": self.state,
            "finalStatus": self.final_status, "progress": 100.0 if self.state in FINAL else 0.0,
            "trackingUI": "History" if self.state in FINAL else "ApplicationMaster",
            "trackingUrl": f"{cluster.proxy_url}/proxy/{self.id}/", "diagnostics": self.diagnostics,
            "clusterId": cluster.cluster_ts, "applicationType": self.app_type,
            "applicationTags": ",".join(self.tags), "priority": 0,
            "startedTime": self.started, "launchTime": self.started, "finishedTime": self.finished,
            "elapsedTime": (self.finished or now_ms()) - self.started,
            "amContainerLogs": f"http://{cluster.node_http}/node/containerlogs/{container}/{self.user}"
            if self.am_host else "",
            "amHostHttpAddress": cluster.node_http if self.am_host else "",
            "currentAppAttemptId": attempt if self.state in ("RUNNING", *FINAL) else "",
            "allocatedMB": self.memory if running else -1, "allocatedVCores": self.vcores if running else -1,
            "runningContainers": 1 if running else -1, "queueUsagePercentage": 0.0, "clusterUsagePercentage": 0.0,
            "unmanagedApplication": False, "amNodeLabelExpression": "",
        }


class Cluster:
    """Applications, queues and the NodeManager, driven by the RM servers (``server.ResourceManager``)."""

    def __init__(self, work_dir: Path, *, queues: Iterable[Queue] = (Queue("default"),), node_host: str = "localhost",
                 node_port: int = 8042, schedule_delay: float = 0.0, proxy_url: str = "http://localhost:8088") -> None:
        self.work_dir = work_dir
        self.queues = {q.name: q for q in queues}
        self.node_host = node_host
        self.node_http = f"{node_host}:{node_port}"
        self.schedule_delay = schedule_delay  # the RM's own scheduling time (heartbeats, allocation)
        self.proxy_url = proxy_url
        self.cluster_ts = now_ms()
        self.apps: dict[str, Application] = {}
        self._issued: set[str] = set()
        self._sequence = itertools.count(1)
        self._tasks: set[asyncio.Task[None]] = set()
        self.submitted: asyncio.Queue[Application] = asyncio.Queue()  # every accepted submission, for tests to wait on

    # ------------------------------------------------------------------------------------- requests
    def new_application(self) -> str:
        app_id = f"application_{self.cluster_ts}_{next(self._sequence):04d}"
        self._issued.add(app_id)
        return app_id

    def get(self, app_id: str) -> Application:
        app = self.apps.get(app_id)
        if app is None:
            raise not_found(f"app with id: {app_id} not found")
        return app

    def submit(self, context: dict[str, Any], user: str) -> Application:
        """``POST /apps``: the application-submission-context, checked as the RM's web service does."""
        app_id = context.get("application-id")
        if not isinstance(app_id, str) or not app_id:
            raise bad_request("application-id must be specified: use the new-application API first")
        if app_id in self.apps:
            raise bad_request(f"Application with id '{app_id}' is already present! Cannot add a duplicate!")
        if app_id not in self._issued:
            raise bad_request(f"Invalid ApplicationId: {app_id}")
        spec = context.get("am-container-spec") or {}
        command = (spec.get("commands") or {}).get("command")
        if not isinstance(command, str) or not command.strip():
            raise bad_request("am-container-spec commands.command must be specified")
        entries = (spec.get("environment") or {}).get("entry") or []
        env = {str(e["key"]): str(e.get("value", "")) for e in entries if isinstance(e, dict) and "key" in e}
        tags = (context.get("application-tags") or {}).get("tag") or []
        tags = [tags] if isinstance(tags, str) else list(tags)
        resource = context.get("resource") or {}
        app = Application(
            id=app_id, name=str(context.get("application-name") or "N/A"), user=user,
            queue=str(context.get("queue") or "default"), app_type=str(context.get("application-type") or "YARN"),
            tags=[str(t).lower() for t in tags], command=command, env=env,
            memory=int(resource.get("memory", 1024)), vcores=int(resource.get("vCores", 1)),
        )
        self.apps[app_id] = app
        self.submitted.put_nowait(app)
        self._spawn(self._admit(app))
        return app

    def list(self, query: dict[str, str]) -> list[Application]:
        """``GET /apps`` with the filters YARN documents (states, queue, user, startedTimeBegin, applicationTags,
        name)."""
        apps = list(self.apps.values())
        if states := query.get("states") or query.get("state"):
            wanted = {s.strip().upper() for s in states.split(",")}
            unknown = wanted - set(STATES)
            if unknown:
                raise bad_request(f"Invalid application-state {sorted(unknown)[0]} specified. It should be one of "
                                  f"{', '.join(STATES)}")
            apps = [a for a in apps if a.state in wanted]
        if queue := query.get("queue"):
            apps = [a for a in apps if a.queue == queue]
        if user := query.get("user"):
            apps = [a for a in apps if a.user == user]
        if name := query.get("name"):
            apps = [a for a in apps if a.name == name]
        if begin := query.get("startedTimeBegin"):
            try:
                since = int(begin)
            except ValueError:
                raise bad_request(f"Invalid number format: For input string: \"{begin}\"") from None
            apps = [a for a in apps if a.started >= since]
        if tags := query.get("applicationTags"):
            wanted_tags = {t.strip().lower() for t in tags.split(",") if t.strip()}
            apps = [a for a in apps if wanted_tags & set(a.tags)]
        return apps

    async def kill(self, app: Application) -> None:
        """``PUT .../state`` KILLED: the AM is stopped (SIGTERM, then SIGKILL) and the app ends KILLED."""
        if app.state in FINAL:
            return
        app.killing = True
        if app.process is not None and app.process.returncode is None:
            self._signal(app, signal.SIGTERM)
            try:
                await asyncio.wait_for(asyncio.shield(app.ended.wait()), KILL_GRACE)
            except TimeoutError:
                self._signal(app, signal.SIGKILL)
            await app.ended.wait()
        else:
            self._finish(app, "KILLED", "KILLED", "Application killed by user.")

    async def close(self) -> None:
        """Kill every AM that still runs (tests call it through ``ResourceManager.stop`` of the last RM)."""
        for app in list(self.apps.values()):
            await self.kill(app)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    # ------------------------------------------------------------------------------------- scheduling
    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _admit(self, app: Application) -> None:
        app.state = "NEW_SAVING"
        app.state = "SUBMITTED"
        if app.queue not in self.queues:
            self._finish(app, "FAILED", "FAILED",
                         f"Application {app.id} submitted by user {app.user} to unknown queue: {app.queue}")
            return
        app.state = "ACCEPTED"
        app.diagnostics = (f"[{time.strftime('%a %b %d %H:%M:%S %z %Y')}] Scheduler has assigned a container for AM, "
                           "waiting for AM container to be launched")
        self._schedule()

    def _schedule(self) -> None:
        """Start the waiting applications their queues have room for, oldest first."""
        for app in sorted(self.apps.values(), key=lambda a: a.id):
            if app.state != "ACCEPTED" or app.am_host or app.killing:
                continue
            queue = self.queues[app.queue]
            running = sum(1 for a in self.apps.values() if a.queue == app.queue and a.am_host and a.state not in FINAL)
            if queue.max_running is not None and running >= queue.max_running:
                app.diagnostics = QUEUE_FULL.format(now=time.strftime("%a %b %d %H:%M:%S %z %Y"), queue=app.queue,
                                                    running=running, limit=queue.max_running)
                continue
            app.am_host = self.node_host
            app.diagnostics = ""
            self._spawn(self._run_am(app))

    async def _run_am(self, app: Application) -> None:
        if self.schedule_delay:
            await asyncio.sleep(self.schedule_delay)  # the NM heartbeat and allocation a real RM waits for
        if app.killing:
            self._finish(app, "KILLED", "KILLED", "Application killed by user.")
            return
        container = f"container_{app.id.removeprefix('application_')}_01_000001"
        cwd = self.work_dir / "usercache" / app.user / "appcache" / app.id / container
        app.log_dir = self.work_dir / "logs" / app.id / container
        log_dir = app.log_dir
        await asyncio.to_thread(lambda: (cwd.mkdir(parents=True, exist_ok=True),
                                         log_dir.mkdir(parents=True, exist_ok=True)))
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(cwd), "USER": app.user,
            "LOGNAME": app.user, "CONTAINER_ID": container, "NM_HOST": self.node_host, "NM_PORT": "45454",
            "NM_HTTP_PORT": self.node_http.rsplit(":", 1)[1], "LOCAL_DIRS": str(cwd.parent),
            "LOG_DIRS": str(app.log_dir), "PWD": str(cwd), "APP_SUBMIT_TIME_ENV": str(app.started),
            **app.env,
        }
        command = app.command.replace("<LOG_DIR>", str(app.log_dir)).replace("{{PWD}}", str(cwd))
        out, err = await asyncio.to_thread(lambda: (open(log_dir / "stdout", "wb"), open(log_dir / "stderr", "wb")))
        try:
            app.process = await asyncio.create_subprocess_exec(
                "/bin/bash", "-c", command, cwd=cwd, env=env, stdin=asyncio.subprocess.DEVNULL, stdout=out,
                stderr=err, start_new_session=True)
        except OSError as error:
            self._finish(app, "FAILED", "FAILED", f"AM container for {app.id} could not be launched: {error}")
            return
        finally:
            out.close()
            err.close()
        app.state = "RUNNING"
        app.running.set()
        code = await app.process.wait()
        app.exit_code = code
        if app.killing:
            self._finish(app, "KILLED", "KILLED", "Application killed by user.")
        elif code == 0:
            self._finish(app, "FINISHED", "SUCCEEDED", "")
        else:
            self._finish(app, "FAILED", "FAILED", self._am_exit_diagnostics(app, container, code))

    def _am_exit_diagnostics(self, app: Application, container: str, code: int) -> str:
        """YARN's wording for an AM container that exited non-zero, with the last bytes of its stderr."""
        assert app.log_dir is not None
        try:
            tail = (app.log_dir / "stderr").read_bytes()[-4096:].decode("utf-8", "replace")
        except OSError:
            tail = ""
        attempt = f"appattempt_{app.id.removeprefix('application_')}_000001"
        return (f"Application {app.id} failed 1 times (global limit =2; local limit is =1) due to AM Container for "
                f"{attempt} exited with  exitCode: {code}\nFailing this attempt.Diagnostics: "
                f"[{time.strftime('%Y-%m-%d %H:%M:%S')}]Exception from container-launch.\nContainer id: {container}\n"
                f"Exit code: {code}\nLast 4096 bytes of stderr :\n{tail}\n. Failing the application.")

    def _signal(self, app: Application, signum: int) -> None:
        assert app.process is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(app.process.pid, signum)

    def _finish(self, app: Application, state: str, final_status: str, diagnostics: str) -> None:
        app.state, app.final_status, app.diagnostics = state, final_status, diagnostics
        app.finished = now_ms()
        app.ended.set()
        self._schedule()
