"""``docker-provisioner``: each kernel in its own Docker container, created from the kernelspec's image.

The container is followed through the shared Docker event stream (``docker_engine``): a container
that dies before its launcher reports fails the launch at once with its exit code and last log
lines; ``poll`` and ``wait`` ask Docker, not the launcher. Stopping removes the container, so a
kernel leaves nothing behind, whether it ended well, badly or never started — unless ``remove_container`` is off
(Gateway Provisioners' ``GP_REMOVE_CONTAINER=false``): then a container that ended on its own (a failed launch, a
crashed kernel) is kept, stopped and renamed ``<name>-kept-<time>``, for ``docker logs``/``docker inspect``.

The launch token is copied into the created container as a 0400 file of the kernel's user before
the container starts (the spec names only its path). Only the container this launch created, known
by the id Docker returned, is ever removed: a name already taken fails the launch and the holder
is left alone, whoever it belongs to.
"""

from __future__ import annotations

import io
import posixpath
import signal
import tarfile
import time
from typing import Any, ClassVar

import aiodocker
from traitlets import Bool, Enum, TraitError, Unicode, default, validate

from kernelfleet.protocol.contract import LAUNCH_TOKEN
from kernelfleet.provisioners.base import LaunchError
from kernelfleet.provisioners.docker.common import LOG_TAIL_LINES, DockerProvisionerBase, tail_text
from kernelfleet.provisioners.docker.container_end import describe_container_end
from kernelfleet.provisioners.docker.engine import ENGINE_ERRORS, describe_engine_error
from kernelfleet.provisioners.docker.pull import PullTally, pull_image
from kernelfleet.provisioners.docker.specs import container_config
from kernelfleet.provisioners.docker.standbys import claim_docker_standby
from kernelfleet.provisioners.docker.swarm import DockerSwarmProvisioner
from kernelfleet.provisioners.envconfig import env_bool, env_value
from kernelfleet.provisioners.launch_events import Phase
from kernelfleet.provisioners.pool.config import WarmPoolConfig
from kernelfleet.provisioners.presence import Presence
from kernelfleet.provisioners.request_env import Engine

__all__ = ["DockerProvisioner", "DockerSwarmProvisioner"]

ENDED = frozenset({"exited", "dead"})
TOKEN_FILE_NAME = "kernelfleet-launch-token"


def token_archive(name: str, token: str, uid: int, gid: int) -> bytes:
    """A tar stream of one file ``name`` holding ``token``, mode 0400, owned by ``uid:gid`` (Docker keeps both)."""
    data = token.encode("ascii")
    entry = tarfile.TarInfo(name)
    entry.size, entry.mode, entry.uid, entry.gid, entry.mtime = len(data), 0o400, uid, gid, int(time.time())
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        tar.addfile(entry, io.BytesIO(data))
    return buffer.getvalue()


class DockerProvisioner(WarmPoolConfig, DockerProvisionerBase):
    """``docker-provisioner``: the kernel in its own Docker container, created from the kernelspec's image and
    removed when the kernel stops. Configured per kernelspec or as ``c.DockerProvisioner.*``."""

    request_engine: ClassVar[Engine | None] = Engine.DOCKER
    launch_engine: ClassVar[str] = "docker"
    launch_token_dir = Unicode(
        "/tmp",
        help="Existing directory of the image, writable by the kernel's user, where the launch token file is put "
        "before the container starts (the launcher removes it). Not below a configured mount: a mount would hide it.",
    ).tag(config=True)

    remove_container = Bool(
        help="Remove a kernel's container when the kernel ends (default). Off (env KF_REMOVE_CONTAINER or "
        "GP_REMOVE_CONTAINER=false): a container that ended on its own — a failed launch, a crashed kernel — is "
        "kept, stopped, as <name>-kept-<time>, for docker logs / docker inspect; remove it yourself. Containers "
        "this server stops are removed either way.",
    ).tag(config=True)

    @default("remove_container")
    def _remove_container_default(self) -> bool:
        return env_bool(("KF_REMOVE_CONTAINER", "GP_REMOVE_CONTAINER"), True)

    image_pull_policy = Enum(
        ("Never", "IfNotPresent"),
        help="Never: an image Docker does not have fails the launch with Docker's 'No such image'. IfNotPresent: "
        "Docker pulls it first, and the pull's progress is reported as launch events (env "
        "KF_DOCKER_IMAGE_PULL_POLICY; default Never).",
    ).tag(config=True)

    @default("image_pull_policy")
    def _image_pull_policy_default(self) -> str:
        return env_value(("KF_DOCKER_IMAGE_PULL_POLICY",)) or "Never"

    @validate("launch_token_dir")
    def _check_launch_token_dir(self, proposal: dict[str, Any]) -> str:
        value = str(proposal["value"])
        if not posixpath.isabs(value) or "\x00" in value:
            raise TraitError(f"launch_token_dir must be an absolute path, not {value!r}")
        return posixpath.normpath(value)


    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.container_id: str | None = None
        self.exit_code: int | None = None
        self._unlisten: Any = None  # stops forwarding Docker's container events to launch events

    # ------------------------------------------------------------------------------------- launch
    @property
    def launch_token_path(self) -> str:
        return posixpath.join(self.launch_token_dir, TOKEN_FILE_NAME)

    def _settle(self, env: dict[str, str]) -> None:
        super()._settle(env)
        for mount in self.mounts:
            target = posixpath.normpath(str(mount.get("Target")))
            if self.launch_token_dir == target or self.launch_token_dir.startswith(target.rstrip("/") + "/"):
                raise ValueError(
                    f"Kernel {self.kernel_id}: the mount at {target} would hide the launch token file in "
                    f"{self.launch_token_dir}; set launch_token_dir to a directory of the image outside the mounts"
                )

    def container_config(self) -> dict[str, Any]:
        """Docker's create config for this launch (``docker.specs.container_config``)."""
        return container_config(self.docker_launch())

    async def start_launcher(self, cmd: list[str], env: dict[str, str], **kwargs: Any) -> None:
        self.check_response_reachable()
        self.exit_code = None
        engine = self.lease_engine()
        client = engine.client
        config = self.container_config()
        self._stop_forwarding()
        self._unlisten = engine.listen(self.kernel_id, self._forward_event)
        try:
            container = await self._create_or_pull(client, config)
        except ENGINE_ERRORS as err:
            raise LaunchError(
                f"Kernel {self.kernel_id}: Docker could not create a container from image {self.image!r}: "
                f"{describe_engine_error(err)}"
            ) from None
        try:
            await container.put_archive(
                self.launch_token_dir,
                token_archive(TOKEN_FILE_NAME, self.launch_env[LAUNCH_TOKEN], self.uid, self.gid),
            )
        except ENGINE_ERRORS as err:
            raise LaunchError(
                f"Kernel {self.kernel_id}: Docker could not put the launch token file into container "
                f"{self.container_name} (launch_token_dir {self.launch_token_dir!r}): {describe_engine_error(err)}"
            ) from None
        try:
            await container.start()
        except ENGINE_ERRORS as err:
            raise LaunchError(
                f"Kernel {self.kernel_id}: Docker could not start container {self.container_name}: "
                f"{describe_engine_error(err)}"
            ) from None
        self.log.info("Kernel %s: running in container %s (%s, image %s, network %s)", self.kernel_id,
                      self.container_name, container.id[:12], self.image, self.network)

    async def _create_or_pull(self, client: aiodocker.Docker,
                              config: dict[str, Any]) -> aiodocker.docker.DockerContainer:
        """Create the container; with image_pull_policy IfNotPresent, an image Docker lacks is pulled first."""
        try:
            return await self.create_resource(lambda: self._create(client, config), self._record)
        except aiodocker.DockerError as err:
            if err.status != 404 or self.image_pull_policy != "IfNotPresent" or "no such image" not in str(
                    err.message).lower():
                raise
        self.log.info("Kernel %s: pulling image %s", self.kernel_id, self.image)
        try:
            await pull_image(client, self.image, self._pull_progress)
        except ENGINE_ERRORS as err:
            raise LaunchError(f"Kernel {self.kernel_id}: Docker could not pull image {self.image!r}: "
                              f"{describe_engine_error(err)}") from None
        return await self.create_resource(lambda: self._create(client, config), self._record)

    def _pull_progress(self, status: str, tally: PullTally) -> None:
        self.progress.emit(Phase.IMAGE_PULL, image=self.image, reason=status, bytes_done=tally.done,
                           bytes_total=tally.total)

    def _forward_event(self, event: dict[str, Any]) -> None:
        """Docker's events about this kernel's container during its launch: ``start`` is the started phase."""
        action = str(event.get("Action") or event.get("status") or "")
        if event.get("Type", "container") != "container" or action.startswith("exec_"):
            return
        attributes = (event.get("Actor") or {}).get("Attributes") or {}
        code = attributes.get("exitCode")
        message = f"container {attributes.get('name') or self.container_name}" + (f" exit code {code}" if code else "")
        self.progress.forward(Phase.STARTED if action == "start" else Phase.ENGINE_EVENT, action, message)

    def _stop_forwarding(self) -> None:
        unlisten, self._unlisten = self._unlisten, None
        if unlisten is not None:
            unlisten()

    async def start_from_pool(self, cmd: list[str], env: dict[str, str], **kwargs: Any) -> bool:
        """A standby container of this kernelspec's warm pool, renamed and claimed for this kernel
        (``docker.standbys``); False when the launch goes cold."""
        if self.warm_pool_size <= 0:
            return False
        self.check_response_reachable()
        self.exit_code = None
        self._taken_from, standby = await claim_docker_standby(self)
        if standby is None:
            return False
        await self.release_engine()  # the standby's own lease becomes this kernel's
        self.engine, self.container_id = standby.engine, standby.container_id
        self.pool_chosen()
        return True

    def _record(self, container: aiodocker.docker.DockerContainer) -> None:
        self.container_id = container.id

    async def _create(self, client: aiodocker.Docker, config: dict[str, Any]) -> aiodocker.docker.DockerContainer:
        """Create the container; a taken name fails the launch. Labels prove nothing (anyone can set them), so a
        container holding the name is never removed here, even one that claims to be this kernel's."""
        try:
            return await client.containers.create(config, name=self.container_name)
        except aiodocker.DockerError as err:
            if err.status == 409:
                raise self.name_taken("container") from None
            raise

    async def launch_failure(self) -> str:
        code = await self._wait_exit()
        if code is None:
            return f"{self._where} was removed before the kernel reported"
        return f"{self.end_reason or f'{self._where} exited with code {code}'}{await self._log_tail()}"

    async def launch_diagnostics(self) -> str:
        try:
            state = await self._state()
        except ENGINE_ERRORS as err:
            return f"Docker could not be asked about the container: {describe_engine_error(err)}"
        if state is None:
            return f"container {self.container_name} no longer exists"
        return f"container {self.container_name} is {state.get('Status')}{await self._log_tail()}"

    async def _log_tail(self) -> str:
        if self.engine is None or self.container_id is None:
            return ""
        try:
            container = self.engine.client.containers.container(self.container_id)
            lines = await container.log(stdout=True, stderr=True, tail=LOG_TAIL_LINES)
        except ENGINE_ERRORS as err:
            return f"; its output could not be read: {describe_engine_error(err)}"
        return tail_text(lines)

    # ------------------------------------------------------------------------------------- state
    @property
    def _where(self) -> str:
        return f"container {self.container_name} ({(self.container_id or '')[:12]})"

    async def _state(self) -> dict[str, Any] | None:
        """The container's State from Docker; None once it is gone. The first answer that it ended (or vanished
        under us: someone else removed it) is noted with its cause (``note_end``)."""
        assert self.engine is not None and self.container_id is not None
        try:
            info = await self.engine.client.containers.get(self.container_id)
        except aiodocker.DockerError as err:
            if err.status == 404:
                self.note_end(f"{self._where} no longer exists: it was removed outside this server", False)
                return None
            raise
        state: dict[str, Any] = info["State"]
        if state.get("Status") in ENDED:
            self.exit_code = int(state.get("ExitCode", 0))
            inspected = {"State": state, "HostConfig": info["HostConfig"]}
            self.note_end(describe_container_end(self._where, inspected), bool(state.get("OOMKilled")))
        return state

    async def _wait_exit(self) -> int | None:
        """Until the container has stopped: its exit code (None when it vanished). Woken by Docker events."""
        if self.container_id is None:
            return self.exit_code
        engine = self.lease_engine()
        # by id: a claimed standby's container has no kernel_id label (docker.standbys)
        with engine.watch(self.container_id) as changed:
            retry = 0.1
            while True:
                try:
                    state = await self._state()
                except ENGINE_ERRORS as err:
                    self.log.warning("Kernel %s: cannot inspect container %s: %s", self.kernel_id, self.container_name,
                                     describe_engine_error(err))
                    await self.wait_changed(changed, retry)
                    retry = min(retry * 2, 5.0)
                    continue
                if state is None:
                    return self.exit_code
                if state.get("Status") in ENDED:
                    return self.exit_code
                await self.wait_changed(changed, None)

    @property
    def has_process(self) -> bool:
        return self.container_id is not None

    async def presence(self) -> Presence:
        """Docker's word on the container: missing or stopped is gone; no answer from dockerd is unreachable."""
        if self.container_id is None or self.engine is None:
            return Presence.GONE
        try:
            state = await self._state()
        except ENGINE_ERRORS as err:
            self.log.warning("Kernel %s: cannot inspect container %s: %s", self.kernel_id, self.container_name,
                             describe_engine_error(err))
            return Presence.UNREACHABLE
        return Presence.GONE if state is None or state.get("Status") in ENDED else Presence.RUNNING

    async def poll(self) -> int | None:
        if await self.presence() is not Presence.GONE:
            return None  # unknown is not dead: a restarter must not replace a kernel over a daemon hiccup
        return self.exit_code if self.exit_code is not None else 0

    async def wait(self) -> int | None:
        if self.container_id is None:
            return self.exit_code if self.exit_code is not None else 0
        code = await self._wait_exit()
        return 0 if code is None else code

    # ------------------------------------------------------------------------------------- stopping
    async def terminate(self, restart: bool = False) -> None:
        if self.container_id is None or self.engine is None:
            return
        self.stopping = True
        try:
            await self.engine.client.containers.container(self.container_id).kill(signal=signal.SIGTERM.name)
        except ENGINE_ERRORS as err:  # already stopped or gone: nothing left to terminate
            self.log.debug("Kernel %s: SIGTERM to container %s: %s", self.kernel_id, self.container_name,
                           describe_engine_error(err))

    async def _remove(self, keep_engine: bool = False) -> None:
        """Force-remove the container (Docker answers once it is gone) and give back the engine lease."""
        await self.settle_creation()
        self._stop_forwarding()
        if self.container_id is not None and self.engine is not None and await self._keep_ended_container():
            self.container_id = None
        if self.container_id is not None and self.engine is not None:
            self.stopping = True
            container = self.engine.client.containers.container(self.container_id)
            await self.delete_created("container", self.container_name, container.delete(force=True, v=True))
            if self.exit_code is None:
                self.exit_code = -int(signal.SIGKILL)
        self.container_id = None
        if not keep_engine:  # a restart launches again at once: keep the client and its event stream
            await self.release_engine()

    async def _keep_ended_container(self) -> bool:
        """With ``remove_container`` off, keep a container that ended on its own (not one this server stopped):
        renamed, so that a restart can take the name again. True when kept."""
        if self.remove_container or self.stopping:
            return False
        try:
            state = await self._state()  # notes how it ended (end_reason) when it has
        except ENGINE_ERRORS:
            return False
        if state is None or self.end_reason is None:
            return False
        assert self.engine is not None and self.container_id is not None
        kept = f"{self.container_name}-kept-{time.strftime('%Y%m%dT%H%M%S')}"
        try:
            await self.engine.client.containers.container(self.container_id).rename(kept)
        except ENGINE_ERRORS as err:
            self.log.warning("Kernel %s: could not rename %s to keep it (%s); removing it",
                             self.kernel_id, self._where, describe_engine_error(err))
            return False
        self.log.info("Kernel %s: kept %s as %s for debugging (remove_container is off): %s; remove it with "
                      "docker rm %s", self.kernel_id, self._where, kept, self.end_reason, kept)
        return True

    # ------------------------------------------------------------------------------------- persistence
    async def get_provisioner_info(self) -> dict[str, Any]:
        info = await super().get_provisioner_info()
        info["container_id"] = self.container_id
        return info

    async def load_provisioner_info(self, provisioner_info: dict[str, Any]) -> None:
        await super().load_provisioner_info(provisioner_info)
        self.container_id = provisioner_info.get("container_id")
        if self.container_id:
            self.lease_engine()
