"""``docker-provisioner``: each kernel in its own Docker container, created from the kernelspec's image.

The container is followed through the shared Docker event stream (``docker_engine``): a container
that dies before its launcher reports fails the launch at once with its exit code and last log
lines; ``poll`` and ``wait`` ask Docker, not the launcher. Stopping removes the container, so a
kernel leaves nothing behind, whether it ended well, badly or never started.
"""

from __future__ import annotations

import signal
from typing import Any, ClassVar

import aiodocker

from kernelfleet.provisioners.base import LaunchError
from kernelfleet.provisioners.docker_common import LOG_TAIL_LINES, DockerProvisionerBase, tail_text
from kernelfleet.provisioners.docker_engine import ENGINE_ERRORS, LABEL_KERNEL_ID, describe_engine_error
from kernelfleet.provisioners.docker_swarm import DockerSwarmProvisioner
from kernelfleet.provisioners.request_env import Engine

__all__ = ["DockerProvisioner", "DockerSwarmProvisioner"]

ENDED = frozenset({"exited", "dead"})


class DockerProvisioner(DockerProvisionerBase):
    request_engine: ClassVar[Engine | None] = Engine.DOCKER

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.container_id: str | None = None
        self.exit_code: int | None = None

    # ------------------------------------------------------------------------------------- launch
    def container_config(self) -> dict[str, Any]:
        host_config: dict[str, Any] = {"NetworkMode": self.network, "Init": self.init}
        if self.mounts:
            host_config["Mounts"] = [dict(m) for m in self.mounts]
        if self.no_new_privileges:
            host_config["SecurityOpt"] = ["no-new-privileges"]
        config: dict[str, Any] = {
            "Image": self.image,
            "Env": [f"{name}={value}" for name, value in self.container_env.items()],
            "Labels": self.labels,
            "User": f"{self.uid}:{self.gid}",
            "HostConfig": host_config,
        }
        if self.working_dir:
            config["WorkingDir"] = self.working_dir
        return config

    async def start_launcher(self, cmd: list[str], env: dict[str, str], **kwargs: Any) -> None:
        self.check_response_reachable()
        self.exit_code = None
        client = self.lease_engine().client
        config = self.container_config()
        try:
            container = await self.create_resource(lambda: self._create(client, config), self._record)
        except ENGINE_ERRORS as err:
            raise LaunchError(
                f"Kernel {self.kernel_id}: Docker could not create a container from image {self.image!r}: "
                f"{describe_engine_error(err)}"
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

    def _record(self, container: aiodocker.docker.DockerContainer) -> None:
        self.container_id = container.id

    async def _create(self, client: aiodocker.Docker, config: dict[str, Any]) -> aiodocker.docker.DockerContainer:
        try:
            return await client.containers.create(config, name=self.container_name)
        except aiodocker.DockerError as err:
            if err.status != 409 or not await self._remove_leftover(client):
                raise
        return await client.containers.create(config, name=self.container_name)

    async def _remove_leftover(self, client: aiodocker.Docker) -> bool:
        """A container of this kernel left by a crashed server holds the name: remove it, never anyone else's."""
        try:
            leftover = await client.containers.get(self.container_name or "")
        except aiodocker.DockerError:
            return False
        if leftover["Config"]["Labels"].get(LABEL_KERNEL_ID) != self.kernel_id:
            return False
        self.log.info("Kernel %s: removing leftover container %s", self.kernel_id, self.container_name)
        await leftover.delete(force=True)
        return True

    async def launch_failure(self) -> str:
        code = await self._wait_exit()
        where = f"container {self.container_name} ({(self.container_id or '')[:12]})"
        if code is None:
            return f"{where} was removed before the kernel reported"
        return f"{where} exited with code {code}{await self._log_tail()}"

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
    async def _state(self) -> dict[str, Any] | None:
        """The container's State from Docker; None once it is gone."""
        assert self.engine is not None and self.container_id is not None
        try:
            info = await self.engine.client.containers.get(self.container_id)
        except aiodocker.DockerError as err:
            if err.status == 404:
                return None
            raise
        state: dict[str, Any] = info["State"]
        if state.get("Status") in ENDED:
            self.exit_code = int(state.get("ExitCode", 0))
        return state

    async def _wait_exit(self) -> int | None:
        """Until the container has stopped: its exit code (None when it vanished). Woken by Docker events."""
        engine = self.lease_engine()
        with engine.watch(self.kernel_id) as changed:
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

    async def poll(self) -> int | None:
        if self.container_id is None or self.engine is None:
            return 0 if self.exit_code is None else self.exit_code
        try:
            state = await self._state()
        except ENGINE_ERRORS as err:
            self.log.warning("Kernel %s: cannot inspect container %s: %s", self.kernel_id, self.container_name,
                             describe_engine_error(err))
            return None  # unknown is not dead: a restarter must not replace a kernel over a daemon hiccup
        if state is None or state.get("Status") in ENDED:
            return self.exit_code if self.exit_code is not None else 0
        return None

    async def wait(self) -> int | None:
        if self.container_id is None:
            return self.exit_code if self.exit_code is not None else 0
        code = await self._wait_exit()
        return 0 if code is None else code

    # ------------------------------------------------------------------------------------- stopping
    async def terminate(self, restart: bool = False) -> None:
        if self.container_id is None or self.engine is None:
            return
        try:
            await self.engine.client.containers.container(self.container_id).kill(signal=signal.SIGTERM.name)
        except ENGINE_ERRORS as err:  # already stopped or gone: nothing left to terminate
            self.log.debug("Kernel %s: SIGTERM to container %s: %s", self.kernel_id, self.container_name,
                           describe_engine_error(err))

    async def _remove(self, keep_engine: bool = False) -> None:
        """Force-remove the container (Docker answers once it is gone) and give back the engine lease."""
        await self.settle_creation()
        if self.container_id is not None and self.engine is not None:
            try:
                await self.engine.client.containers.container(self.container_id).delete(force=True, v=True)
                self.log.debug("Kernel %s: container %s removed", self.kernel_id, self.container_name)
            except aiodocker.DockerError as err:
                if err.status != 404:
                    self.log.warning("Kernel %s: could not remove container %s: %s", self.kernel_id,
                                     self.container_name, describe_engine_error(err))
            except ENGINE_ERRORS as err:
                self.log.warning("Kernel %s: could not remove container %s: %s", self.kernel_id,
                                 self.container_name, describe_engine_error(err))
            if self.exit_code is None:
                self.exit_code = -int(signal.SIGKILL)
        self.container_id = None
        if not keep_engine:  # a restart launches again at once: keep the client and its event stream
            await self.release_engine()

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
