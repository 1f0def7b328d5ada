"""``docker-swarm-provisioner``: each kernel as a one-task Docker Swarm service that is never restarted.

Swarm has no task events: container events of this node wake the kernel's waiters, and because a
task on another node (or one rejected before it had a container, such as a missing image) makes no
local event, the task list is re-read with a growing interval (50 ms up to 1 s) while someone waits.

The launch token reaches the task as a per-launch Docker secret, mounted as a 0400 file of the
kernel's user; Docker never returns a secret's data, and the service spec names only the secret.
Swarm refuses to remove a secret while a service refers to it (and changing the service would
restart the kernel), so the secret goes with the service: at once when the launch fails, and when
the kernel stops. The token it holds is void from the moment the report is accepted.

Only what this launch created, known by the ids Docker returned (service, secret) and the task
containers Swarm labels with that service id, is ever removed: a taken service name fails the
launch and its holder is left alone.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from typing import Any, ClassVar

import aiodocker

from kernelfleet.protocol.contract import LAUNCH_TOKEN
from kernelfleet.provisioners.base import LaunchError
from kernelfleet.provisioners.docker.common import LOG_TAIL_LINES, DockerProvisionerBase, tail_text
from kernelfleet.provisioners.docker.container_end import describe_container_end
from kernelfleet.provisioners.docker.engine import ENGINE_ERRORS, LABEL_SWARM_SERVICE_ID, describe_engine_error
from kernelfleet.provisioners.docker.specs import TokenSecret, task_template
from kernelfleet.provisioners.labels import LABEL_KERNEL_ID
from kernelfleet.provisioners.launch_events import Phase
from kernelfleet.provisioners.pool.config import WarmPoolConfig
from kernelfleet.provisioners.pool.spec import LABEL_STANDBY
from kernelfleet.provisioners.presence import Presence
from kernelfleet.provisioners.request_env import Engine

# https://docs.docker.com/engine/swarm/how-swarm-mode-works/swarm-task-states/
TASK_PHASES = {"assigned": Phase.SCHEDULED, "preparing": Phase.IMAGE_PULL, "running": Phase.STARTED}
LIVE_STATES = frozenset({"new", "pending", "assigned", "accepted", "preparing", "ready", "starting", "running"})
FIRST_RECHECK, LAST_RECHECK = 0.05, 1.0
REMOVAL_TIMEOUT = 30.0
SECRETS_DIR = "/run/secrets"
TOKEN_SECRET_FILE = "kernelfleet-launch-token"
MAX_SECRET_NAME = 64


def token_secret_name(kernel_id: str) -> str:
    """``kf-launch-<random>-<kernel id>``: unique per launch, so no one else's secret can ever hold the name."""
    return f"kf-launch-{secrets.token_hex(4)}-{kernel_id}"[:MAX_SECRET_NAME].rstrip("-._")


def latest_task(tasks: list[Any]) -> dict[str, Any] | None:
    """The service's newest task (restart condition none means there is normally only one)."""
    if not tasks:
        return None
    return dict(max(tasks, key=lambda t: (t.get("Version") or {}).get("Index", 0)))


class DockerSwarmProvisioner(WarmPoolConfig, DockerProvisionerBase):
    """``docker-swarm-provisioner``: the kernel as a one-task Docker Swarm service that is never restarted,
    removed with its launch secret when the kernel stops. Configured per kernelspec or as
    ``c.DockerSwarmProvisioner.*``."""

    request_engine: ClassVar[Engine | None] = Engine.SWARM
    launch_engine: ClassVar[str] = "swarm"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.service_id: str | None = None
        self.secret_id: str | None = None
        self.secret_name: str | None = None
        self.exit_code: int | None = None
        self._task_state = ""  # the task's last state forwarded as a launch event
        self.standby_id: str | None = None  # the warm pool's standby this kernel's service was (docker.swarm_standbys)

    # ------------------------------------------------------------------------------------- launch
    @property
    def launch_token_path(self) -> str:
        return f"{SECRETS_DIR}/{TOKEN_SECRET_FILE}"

    def task_template(self) -> dict[str, Any]:
        """The service's task template for this launch (``docker.specs.task_template``)."""
        return task_template(self.docker_launch(), TokenSecret(self.secret_id, self.secret_name, TOKEN_SECRET_FILE))

    async def start_launcher(self, cmd: list[str], env: dict[str, str], **kwargs: Any) -> None:
        self.check_response_reachable()
        self.exit_code, self._task_state = None, ""
        client = self.lease_engine().client
        name = token_secret_name(self.kernel_id)
        try:
            await self.create_resource(
                lambda: client.secrets.create(name, self.launch_env[LAUNCH_TOKEN], labels=self.object_labels()),
                self._record_secret,
            )
        except ENGINE_ERRORS as err:
            raise LaunchError(
                f"Kernel {self.kernel_id}: Docker Swarm could not create the launch token secret {name}: "
                f"{describe_engine_error(err)}"
            ) from None
        self.secret_name = name
        try:
            await self.create_resource(lambda: self._create(client), self._record)
        except ENGINE_ERRORS as err:
            raise LaunchError(
                f"Kernel {self.kernel_id}: Docker Swarm could not create service {self.container_name} "
                f"(image {self.image!r}): {describe_engine_error(err)}"
            ) from None
        assert self.service_id is not None
        self.log.info("Kernel %s: scheduled as swarm service %s (%s, image %s, network %s)", self.kernel_id,
                      self.container_name, self.service_id[:12], self.image, self.network)

    async def start_from_pool(self, cmd: list[str], env: dict[str, str], **kwargs: Any) -> bool:
        """A standby service of this kernelspec's warm pool, labelled and claimed for this kernel
        (``docker.swarm_standbys``); False when the launch goes cold."""
        from kernelfleet.provisioners.docker.swarm_standbys import claim_swarm_standby

        self.standby_id = None
        if self.warm_pool_size <= 0:
            return False
        self.check_response_reachable()
        self.exit_code, self._task_state = None, ""
        self._taken_from, standby = await claim_swarm_standby(self)
        if standby is None:
            return False
        await self.release_engine()  # the standby's own lease becomes this kernel's
        self.engine, self.service_id = standby.engine, standby.service_id
        self.secret_id, self.secret_name = standby.secret_id, standby.secret_name
        self.standby_id, self.container_name = standby.standby_id, standby.name
        self.pool_chosen()
        return True

    @property
    def _watch_key(self) -> str:
        """What Docker's events wake this kernel's waiters by: its kernel id label, or for a claimed standby (whose
        task's container has no kernel id label) its service's id."""
        return self.service_id if self.standby_id and self.service_id else str(self.kernel_id)

    def _record(self, service: Any) -> None:
        self.service_id = str(service["ID"])

    def _record_secret(self, secret: Any) -> None:
        self.secret_id = str(secret["ID"])

    async def _create(self, client: aiodocker.Docker) -> Any:
        """Create the service; a taken name fails the launch and the holder is never removed (labels prove nothing)."""
        try:
            return await client.services.create(self.task_template(), name=self.container_name,
                                                labels=self.object_labels())
        except aiodocker.DockerError as err:
            if err.status == 409:
                raise self.name_taken("service") from None
            raise

    async def launch_failure(self) -> str:
        task = await self._wait_task_end()
        if task is None:
            return f"service {self.container_name} was removed before the kernel reported"
        return (self.end_reason or self._describe_task(task)) + await self._log_tail(task)

    async def launch_diagnostics(self) -> str:
        try:
            task = await self._task()
        except ENGINE_ERRORS as err:
            return f"Docker could not be asked about the service: {describe_engine_error(err)}"
        if task is None:
            return f"service {self.container_name} has no task"
        return self._describe_task(task) + await self._log_tail(task)

    def _describe_task(self, task: dict[str, Any]) -> str:
        status = task.get("Status") or {}
        text = f"service {self.container_name} task {str(task.get('ID', ''))[:12]} is {status.get('State')}"
        reason = status.get("Err") or status.get("Message")
        if reason:
            text += f": {reason}"
        container = status.get("ContainerStatus") or {}
        code = container.get("ExitCode")
        if status.get("State") not in LIVE_STATES and container.get("ContainerID") and code is not None:
            text += f" (exit code {code})"
        return text

    async def _log_tail(self, task: dict[str, Any]) -> str:
        assert self.engine is not None
        container_id = ((task.get("Status") or {}).get("ContainerStatus") or {}).get("ContainerID")
        if not container_id:
            return ""
        try:  # the task's container is on this node in the common case; service logs lag behind
            container = self.engine.client.containers.container(container_id)
            lines = await container.log(stdout=True, stderr=True, tail=LOG_TAIL_LINES)
        except ENGINE_ERRORS:
            try:
                assert self.service_id is not None
                lines = await self.engine.client.services.logs(
                    self.service_id, stdout=True, stderr=True, tail=str(LOG_TAIL_LINES)
                )
            except ENGINE_ERRORS as err:
                return f"; its output could not be read: {describe_engine_error(err)}"
        return tail_text(list(lines))

    # ------------------------------------------------------------------------------------- state
    async def _task(self) -> dict[str, Any] | None:
        """The service's task; one whose container on this node has already ended counts as ended.

        Swarm reports a task's end a few hundred milliseconds to seconds after its container's, and
        jupyter_client's shutdown waits on ``poll``; the local container is the sooner witness.
        """
        task = latest_task(await self._service_tasks())
        if task is None:
            return None
        status = task.setdefault("Status", {})
        self._forward_task_state(status)
        container = status.get("ContainerStatus") or {}
        unexplained = self.end_reason is None and not self.stopping  # an end whose cause is still to be noted
        if container.get("ContainerID") and (status.get("State") in LIVE_STATES or unexplained):
            inspected = await self._local_container_end(container["ContainerID"])
            if inspected is not None:
                ended = int(inspected["State"].get("ExitCode", 0))
                if status.get("State") in LIVE_STATES:
                    status.update(State="complete" if ended == 0 else "failed", Err="its container stopped",
                                  ContainerStatus={**container, "ExitCode": ended})
                self.note_end(describe_container_end(f"service {self.container_name}'s container", inspected),
                              bool(inspected["State"].get("OOMKilled")))
        if status.get("State") not in LIVE_STATES:
            self.exit_code = int((status.get("ContainerStatus") or {}).get("ExitCode") or 0)
            self.note_end(self._describe_task(task), False)
        return task

    def _forward_task_state(self, status: dict[str, Any]) -> None:
        """Each new state of the task during the launch, as Swarm names it (assigned: scheduled on a node;
        preparing: pulling the image; running: started)."""
        state = str(status.get("State") or "")
        if not state or state == self._task_state:
            return
        self._task_state = state
        phase = TASK_PHASES.get(state, Phase.ENGINE_EVENT)
        self.progress.forward(phase, state, str(status.get("Err") or status.get("Message") or ""))

    async def _local_container_end(self, container_id: str) -> dict[str, Any] | None:
        """State and HostConfig of the task's container if it is on this node and has stopped; None otherwise."""
        assert self.engine is not None
        try:
            info = await self.engine.client.containers.get(container_id)
        except aiodocker.DockerError:
            return None  # on another node, or already removed: the task state decides
        state = info["State"]
        if state.get("Status") not in ("exited", "dead"):
            return None
        return {"State": state, "HostConfig": info["HostConfig"]}

    async def _service_exists(self) -> bool:
        assert self.engine is not None and self.service_id is not None
        try:
            await self.engine.client.services.inspect(self.service_id)
        except aiodocker.DockerError as err:
            if err.status == 404:
                return False
            raise
        return True

    async def _wait_task_end(self) -> dict[str, Any] | None:
        """The task once it has ended (None when the service is gone); woken by events, re-read with backoff."""
        engine = self.lease_engine()
        delay = FIRST_RECHECK
        with engine.watch(self._watch_key) as changed:
            while True:
                if self.service_id is None:  # removed meanwhile (a kill while the launch was waiting)
                    return None
                try:
                    task = await self._task()
                    if task is not None and (task.get("Status") or {}).get("State") not in LIVE_STATES:
                        return task
                    if task is None and not await self._service_exists():
                        return None
                except ENGINE_ERRORS as err:
                    self.log.warning("Kernel %s: cannot inspect service %s: %s", self.kernel_id,
                                     self.container_name, describe_engine_error(err))
                await self.wait_changed(changed, delay)
                delay = min(delay * 2, LAST_RECHECK)

    @property
    def has_process(self) -> bool:
        return self.service_id is not None

    async def presence(self) -> Presence:
        """Swarm's word on the service and its task: a removed service or an ended task is gone."""
        if self.service_id is None or self.engine is None:
            return Presence.GONE
        try:
            task = await self._task()
            if task is None and not await self._service_exists():
                self.note_end(f"service {self.container_name} no longer exists: it was removed outside this server",
                              False)
                return Presence.GONE
        except ENGINE_ERRORS as err:
            self.log.warning("Kernel %s: cannot inspect service %s: %s", self.kernel_id, self.container_name,
                             describe_engine_error(err))
            return Presence.UNREACHABLE
        if task is None or (task.get("Status") or {}).get("State") in LIVE_STATES:
            return Presence.RUNNING
        return Presence.GONE

    async def poll(self) -> int | None:
        if await self.presence() is not Presence.GONE:
            return None
        return 0 if self.exit_code is None else self.exit_code

    async def wait(self) -> int | None:
        if self.service_id is not None:
            await self._wait_task_end()
        return 0 if self.exit_code is None else self.exit_code

    # ------------------------------------------------------------------------------------- stopping
    async def _remove(self, keep_engine: bool = False) -> None:
        await self.settle_creation()
        if self.service_id is not None and self.engine is not None:
            self.stopping = True
            await self._remove_service()
            if self.exit_code is None:
                self.exit_code = -9
        self.service_id = None
        if self.secret_id is not None and self.engine is not None:
            await self._remove_secret()
        self.secret_id = self.secret_name = None
        if not keep_engine:  # a restart launches again at once: keep the client and its event stream
            await self.release_engine()

    async def _remove_service(self) -> None:
        """Delete the service, then wait until its task and container are gone too (the name is reused on restart)."""
        assert self.engine is not None and self.service_id is not None
        client = self.engine.client
        if not await self.delete_created("service", self.container_name, client.services.delete(self.service_id)):
            return
        # A removed service's tasks live on until the agent has stopped them, and one still being scheduled
        # gets its container only after the removal: until the service's tasks are gone, every container
        # of the service that appears on this node is removed at once instead of waiting out its stop.
        # Swarm labels them with the service's id; the kernel id label alone could be anyone's container.
        label = json.dumps({"label": [f"{LABEL_SWARM_SERVICE_ID}={self.service_id}"]})
        delay = FIRST_RECHECK
        loop = asyncio.get_running_loop()
        deadline = loop.time() + REMOVAL_TIMEOUT
        with self.engine.watch(self._watch_key) as changed:
            while True:
                try:
                    left = await client.containers.list(all=True, filters=label)
                    for container in left:
                        await container.delete(force=True, v=True)
                    tasks = await self._kernel_tasks()
                except ENGINE_ERRORS as err:
                    self.log.warning("Kernel %s: cannot remove what is left of service %s: %s", self.kernel_id,
                                     self.container_name, describe_engine_error(err))
                    return
                if not left and not tasks:
                    self.log.debug("Kernel %s: service %s removed", self.kernel_id, self.container_name)
                    return
                if loop.time() > deadline:
                    self.log.warning("Kernel %s: service %s removed, but its task is still present after %ss",
                                     self.kernel_id, self.container_name, REMOVAL_TIMEOUT)
                    return
                await self.wait_changed(changed, delay)
                delay = min(delay * 2, LAST_RECHECK)

    async def _kernel_tasks(self) -> list[Any]:
        """Every task of this kernel's service, found by label: once its service is deleted, Docker no longer
        resolves the service's tasks by service id although they still run. Another service's tasks with the
        same label are not waited for."""
        assert self.engine is not None
        label = f"{LABEL_STANDBY}={self.standby_id}" if self.standby_id else f"{LABEL_KERNEL_ID}={self.kernel_id}"
        tasks = await self.engine.client.tasks.list(filters={"label": [label]})
        return [task for task in tasks if task.get("ServiceID") == self.service_id]

    async def _remove_secret(self) -> None:
        """Delete this launch's token secret by the id Docker gave it (its service, which used it, is gone)."""
        assert self.engine is not None and self.secret_id is not None
        delete = self.engine.client.secrets.delete(self.secret_id)
        await self.delete_created("launch token secret", self.secret_name, delete)

    async def _service_tasks(self) -> list[Any]:
        """The service's tasks; for a deleted service Docker answers "not found" once none are left."""
        assert self.engine is not None and self.service_id is not None
        try:
            return list(await self.engine.client.tasks.list(filters={"service": self.service_id}))
        except aiodocker.DockerError as err:
            if err.status in (400, 404) or "not found" in str(err.message):
                return []
            raise

    # ------------------------------------------------------------------------------------- persistence
    async def get_provisioner_info(self) -> dict[str, Any]:
        info = await super().get_provisioner_info()
        info["service_id"] = self.service_id
        info["secret_id"] = self.secret_id
        info["secret_name"] = self.secret_name
        info["standby_id"] = self.standby_id
        return info

    async def load_provisioner_info(self, provisioner_info: dict[str, Any]) -> None:
        await super().load_provisioner_info(provisioner_info)
        self.service_id = provisioner_info.get("service_id")
        self.secret_id = provisioner_info.get("secret_id")
        self.secret_name = provisioner_info.get("secret_name")
        self.standby_id = provisioner_info.get("standby_id")
        if self.service_id or self.secret_id:
            self.lease_engine()
