"""What every container provisioner (Docker, Swarm, Kubernetes) decides before it asks its engine for anything.

The image, the user and group ids, the kernel's environment and the settings in the kernelspec's
argv are settled and checked in ``pre_launch`` by one pure function, ``settle_container`` (a frozen
``ContainerSettings`` and the request in, a frozen ``ContainerChoice`` out); a refused request therefore never
creates a container. The argv is not run: ``kernelspec_settings`` reads the kernelspec's own argv once (not the
command ``pre_launch`` formatted for this launch) and turns it into variables for the image's bootstrap script.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
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


@dataclass(frozen=True)
class ContainerSettings:
    """A kernelspec's container settings (``ContainerProvisionerBase``'s traits) as one value."""

    image_name: str = ""
    allow_client_image: bool = False
    allowed_images: frozenset[str] = frozenset()
    prohibited_uids: frozenset[int] = frozenset({0})
    prohibited_gids: frozenset[int] = frozenset({0})
    default_uid: int = 1000
    default_gid: int = 100
    mirror_working_dirs: bool = False
    inherited_envs: tuple[str, ...] = ()


@dataclass(frozen=True)
class ContainerChoice:
    """What the engine-neutral container settling chose: image, ids, directory and the kernel's environment (the
    launch token included), and the container's name."""

    image: str
    uid: int
    gid: int
    working_dir: str | None
    env: Mapping[str, str]
    name: str = ""


@dataclass(frozen=True)
class LaunchInputs:
    """What a launch brings besides the request: the protocol's variables, the kernelspec argv's settings and the
    names the kernelspec's own env sets."""

    launch_env: Mapping[str, str] = field(default_factory=dict)
    argv_settings: Mapping[str, str] = field(default_factory=dict)
    spec_env: Mapping[str, str] = field(default_factory=dict)


def choose_image(kernel_id: str, s: ContainerSettings, env: Mapping[str, str]) -> str:
    """The configured image, or the request's KERNEL_IMAGE where the kernelspec allows it."""
    configured = s.image_name.strip()
    requested = (env.get("KERNEL_IMAGE") or "").strip()
    if requested and requested != configured:
        if not s.allow_client_image:
            raise PermissionError(
                f"Kernel {kernel_id}: KERNEL_IMAGE={requested!r} was requested, but this kernelspec does "
                "not let requests choose the image (allow_client_image is off)"
            )
        if s.allowed_images and requested not in s.allowed_images:
            raise PermissionError(
                f"Kernel {kernel_id}: KERNEL_IMAGE={requested!r} is not one of this kernelspec's "
                f"allowed_images {sorted(s.allowed_images)}"
            )
        return requested
    if not configured:
        raise ValueError(
            f"Kernel {kernel_id}: no image configured: set image_name in the kernelspec's "
            "metadata.kernel_provisioner.config (or KF_IMAGE_NAME / GP_IMAGE_NAME)"
        )
    return configured


def choose_id(kernel_id: str, env: Mapping[str, str], name: str, fallback: int, prohibited: Iterable[int]) -> int:
    """KERNEL_UID / KERNEL_GID from the request, else the default; never a prohibited id."""
    value = env.get(name)
    if value is None or value == "":
        return parse_id(kernel_id, f"default {name}", str(fallback), set(prohibited))
    return parse_id(kernel_id, name, value, set(prohibited))


def choose_working_dir(kernel_id: str, env: Mapping[str, str], mirror: bool) -> str | None:
    """The request's KERNEL_WORKING_DIR when the kernelspec mirrors working directories; an absolute path only."""
    requested = env.get("KERNEL_WORKING_DIR")
    if not requested or not mirror:
        return None
    if not posixpath.isabs(requested) or "\x00" in requested:
        raise ValueError(f"Kernel {kernel_id}: KERNEL_WORKING_DIR must be an absolute path")
    return posixpath.normpath(requested)


def settle_container(kernel_id: str, s: ContainerSettings, env: Mapping[str, str],
                     inputs: LaunchInputs) -> ContainerChoice:
    """Pure: the container of one launch, from the kernelspec's settings and the request's checked environment.
    Raises PermissionError / ValueError naming the kernel and the value for anything the kernelspec refuses."""
    image = choose_image(kernel_id, s, env)
    uid = choose_id(kernel_id, env, "KERNEL_UID", s.default_uid, s.prohibited_uids)
    gid = choose_id(kernel_id, env, "KERNEL_GID", s.default_gid, s.prohibited_gids)
    working_dir = choose_working_dir(kernel_id, env, s.mirror_working_dirs)
    protocol_env = {**inputs.argv_settings, **inputs.launch_env, "KERNEL_UID": str(uid), "KERNEL_GID": str(gid),
                    "KERNEL_IMAGE": image}
    container_env = remote_kernel_env(kernel_id, dict(env), spec_env_names=dict(inputs.spec_env),
                                      protocol_env=protocol_env, inherited_envs=list(s.inherited_envs))
    return ContainerChoice(image, uid, gid, working_dir, container_env,
                           resource_name(env.get("KERNEL_USERNAME", ""), kernel_id))


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
        self.container_env: dict[str, str] = {}
        self.container_name: str | None = None
        self.container: ContainerChoice | None = None  # this launch's settled container (settle_container)
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

    def container_settings(self) -> ContainerSettings:
        """This kernelspec's container traits as one value, for ``settle_container``."""
        return ContainerSettings(
            image_name=self.image_name, allow_client_image=self.allow_client_image,
            allowed_images=frozenset(self.allowed_images), prohibited_uids=frozenset(self.prohibited_uids),
            prohibited_gids=frozenset(self.prohibited_gids), default_uid=self.default_uid,
            default_gid=self.default_gid, mirror_working_dirs=self.mirror_working_dirs,
            inherited_envs=tuple(self.inherited_envs),
        )

    def _settle(self, env: dict[str, str]) -> None:
        """Decide the container (``settle_container``) and keep the choice as this launch's state."""
        inputs = LaunchInputs(launch_env=dict(self.launch_env), argv_settings=self.argv_settings(),
                              spec_env=dict(self.kernel_spec.env) if self.kernel_spec is not None else {})
        self.container = choice = settle_container(self.kernel_id, self.container_settings(), env, inputs)
        self.container_env = dict(choice.env)  # engines add to it (the token's file, TINI_SUBREAPER)
        self.container_name = choice.name  # kept apart: a reattached provisioner knows only the name

    # The settled choice's fields, read by the engines; before a launch (or after a reattach) the neutral values.
    @property
    def image(self) -> str:
        return self.container.image if self.container is not None else ""

    @property
    def uid(self) -> int:
        return self.container.uid if self.container is not None else 0

    @property
    def gid(self) -> int:
        return self.container.gid if self.container is not None else 0

    @property
    def working_dir(self) -> str | None:
        return self.container.working_dir if self.container is not None else None

    # ------------------------------------------------------------------------------------- persistence
    async def get_provisioner_info(self) -> dict[str, Any]:
        info = await super().get_provisioner_info()
        info["container_name"] = self.container_name
        return info

    async def load_provisioner_info(self, provisioner_info: dict[str, Any]) -> None:
        await super().load_provisioner_info(provisioner_info)
        self.container_name = provisioner_info.get("container_name")
