"""What every container provisioner (Docker, Swarm, Kubernetes) decides before it asks its engine for anything.

The image, the user and group ids, the kernel's environment and the settings in the kernelspec's
argv are settled and checked in ``pre_launch``; a refused request therefore never creates a
container. The argv is not run: ``kernelspec_settings`` reads the kernelspec's own argv once (not the
command ``pre_launch`` formatted for this launch) and turns it into variables for the image's bootstrap script.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterable
from typing import Any

from traitlets import Bool, Integer, Set, Unicode, default

from kernelfleet.provisioners.base import RemoteProvisionerBase
from kernelfleet.provisioners.container_argv import kernelspec_settings
from kernelfleet.provisioners.envconfig import env_bool, env_value
from kernelfleet.provisioners.kernel_env import remote_kernel_env
from kernelfleet.provisioners.request_env import DECIMAL, MAX_ID, parse_id

NAME_UNSAFE = re.compile(r"[^a-zA-Z0-9_.-]+")


def parse_id_list(names: tuple[str, ...], default: Iterable[int]) -> set[int]:
    """A comma-separated id list from the environment; a malformed entry is an error, never silently dropped."""
    source = next((name for name in names if env_value((name,)) is not None), None)
    if source is None:
        return set(default)
    raw = env_value((source,)) or ""
    ids: set[int] = set()
    for item in (part.strip() for part in raw.split(",")):
        if not item:
            continue
        if not DECIMAL.fullmatch(item) or int(item) > MAX_ID:
            raise ValueError(f"{source}={raw!r}: {item!r} is not a plain decimal user/group id")
        ids.add(int(item))
    return ids


def resource_name(username: str, kernel_id: str) -> str:
    """A container/service name Docker and Kubernetes accept: ``kf-<user>-<kernel id>``, at most 63 characters."""
    user = NAME_UNSAFE.sub("-", username).strip("-._")[:20] or "user"
    return f"kf-{user}-{kernel_id}"[:63].rstrip("-._").lower()


class ContainerProvisionerBase(RemoteProvisionerBase):
    """Settings every container provisioner (Docker, Swarm, Kubernetes) shares: the image, whether a request may
    choose another, and the user and group the kernel runs as."""

    image_name = Unicode(help="The kernel image (env KF_IMAGE_NAME / GP_IMAGE_NAME).").tag(config=True)
    allow_client_image = Bool(
        help="Let a start request choose the image with KERNEL_IMAGE (env KF_ALLOW_CLIENT_IMAGE; default off).",
    ).tag(config=True)
    allowed_images = Set(
        Unicode(), help="When client images are allowed and this is not empty, only these may be requested."
    ).tag(config=True)
    prohibited_uids = Set(
        Integer(), help="User ids a kernel may never run as (env KF_PROHIBITED_UIDS / GP_PROHIBITED_UIDS; default 0)."
    ).tag(config=True)
    prohibited_gids = Set(
        Integer(), help="Group ids a kernel may never run as (env KF_PROHIBITED_GIDS / GP_PROHIBITED_GIDS; default 0)."
    ).tag(config=True)
    default_uid = Integer(1000, help="KERNEL_UID when the request names none.").tag(config=True)
    default_gid = Integer(100, help="KERNEL_GID when the request names none.").tag(config=True)
    mirror_working_dirs = Bool(
        help="Start the kernel in the request's KERNEL_WORKING_DIR (env GP_MIRROR_WORKING_DIRS; default off).",
    ).tag(config=True)

    @default("image_name")
    def _image_name_default(self) -> str:
        return env_value(("KF_IMAGE_NAME", "GP_IMAGE_NAME")) or ""

    @default("allow_client_image")
    def _allow_client_image_default(self) -> bool:
        return env_bool(("KF_ALLOW_CLIENT_IMAGE",), False)

    @default("prohibited_uids")
    def _prohibited_uids_default(self) -> set[int]:
        return parse_id_list(("KF_PROHIBITED_UIDS", "GP_PROHIBITED_UIDS"), {0})

    @default("prohibited_gids")
    def _prohibited_gids_default(self) -> set[int]:
        return parse_id_list(("KF_PROHIBITED_GIDS", "GP_PROHIBITED_GIDS"), {0})

    @default("mirror_working_dirs")
    def _mirror_working_dirs_default(self) -> bool:
        return env_bool(("KF_MIRROR_WORKING_DIRS", "GP_MIRROR_WORKING_DIRS"), False)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.image = ""
        self.uid = self.gid = 0
        self.working_dir: str | None = None
        self.container_env: dict[str, str] = {}
        self.container_name: str | None = None
        self._argv_settings: dict[str, str] | None = None

    # ------------------------------------------------------------------------------------- launch
    async def pre_launch(self, **kwargs: Any) -> dict[str, Any]:
        kwargs = await super().pre_launch(**kwargs)
        try:
            self._settle(kwargs["env"])
        except BaseException:
            if self.pending is not None:  # nothing will report: release the broker's slot now
                self.pending.cancel()
                self.pending = None
            raise
        return kwargs

    def argv_settings(self) -> dict[str, str]:
        """The kernelspec argv's settings for the bootstrap (``kernelspec_settings``), read on the first launch."""
        if self._argv_settings is None:
            argv = list(self.kernel_spec.argv) if self.kernel_spec is not None else []
            try:
                self._argv_settings = kernelspec_settings(argv)
            except ValueError as err:
                raise ValueError(f"Kernel {self.kernel_id}: {err}") from None
        return self._argv_settings

    def _settle(self, env: dict[str, str]) -> None:
        kernel_id = self.kernel_id
        self.image = self._choose_image(env)
        self.uid = self._choose_id(env, "KERNEL_UID", self.default_uid, self.prohibited_uids)
        self.gid = self._choose_id(env, "KERNEL_GID", self.default_gid, self.prohibited_gids)
        self.working_dir = self._choose_working_dir(env)
        protocol_env = {
            **self.argv_settings(),
            **self.launch_env,
            "KERNEL_UID": str(self.uid),
            "KERNEL_GID": str(self.gid),
            "KERNEL_IMAGE": self.image,
        }
        spec_env = self.kernel_spec.env if self.kernel_spec is not None else {}
        self.container_env = remote_kernel_env(
            kernel_id, env, spec_env_names=spec_env, protocol_env=protocol_env, inherited_envs=self.inherited_envs
        )
        self.container_name = resource_name(env.get("KERNEL_USERNAME", ""), kernel_id)

    def _choose_image(self, env: dict[str, str]) -> str:
        configured = self.image_name.strip()
        requested = (env.get("KERNEL_IMAGE") or "").strip()
        if requested and requested != configured:
            if not self.allow_client_image:
                raise PermissionError(
                    f"Kernel {self.kernel_id}: KERNEL_IMAGE={requested!r} was requested, but this kernelspec does "
                    "not let requests choose the image (allow_client_image is off)"
                )
            if self.allowed_images and requested not in self.allowed_images:
                raise PermissionError(
                    f"Kernel {self.kernel_id}: KERNEL_IMAGE={requested!r} is not one of this kernelspec's "
                    f"allowed_images {sorted(self.allowed_images)}"
                )
            return requested
        if not configured:
            raise ValueError(
                f"Kernel {self.kernel_id}: no image configured: set image_name in the kernelspec's "
                "metadata.kernel_provisioner.config (or KF_IMAGE_NAME / GP_IMAGE_NAME)"
            )
        return configured

    def _choose_id(self, env: dict[str, str], name: str, fallback: int, prohibited: set[int]) -> int:
        value = env.get(name)
        if value is None or value == "":
            return parse_id(self.kernel_id, f"default {name}", str(fallback), prohibited)
        return parse_id(self.kernel_id, name, value, prohibited)

    def _choose_working_dir(self, env: dict[str, str]) -> str | None:
        requested = env.get("KERNEL_WORKING_DIR")
        if not requested or not self.mirror_working_dirs:
            return None
        if not posixpath.isabs(requested) or "\x00" in requested:
            raise ValueError(f"Kernel {self.kernel_id}: KERNEL_WORKING_DIR must be an absolute path")
        return posixpath.normpath(requested)

    # ------------------------------------------------------------------------------------- persistence
    async def get_provisioner_info(self) -> dict[str, Any]:
        info = await super().get_provisioner_info()
        info["container_name"] = self.container_name
        return info

    async def load_provisioner_info(self, provisioner_info: dict[str, Any]) -> None:
        await super().load_provisioner_info(provisioner_info)
        self.container_name = provisioner_info.get("container_name")
