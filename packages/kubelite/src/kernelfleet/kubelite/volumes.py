"""Pod volumes made real for Docker: emptyDir, hostPath, configMap and secret, as the kubelet's volume manager
sets them up before the containers start.

``PodWorker`` (kubelet.py) calls ``prepare`` once per pod (retried with back-off while it raises ``MountError``,
as the kubelet retries ``FailedMount``) and ``binds`` per container, then ``cleanup`` when the pod's containers
are removed. emptyDir, configMap and secret volumes are directories under the instance's volume root
(``<root>/<pod uid>/<volume>``), group-owned by the pod's ``fsGroup`` as the kubelet's ownership management does
(emptyDir ``medium: Memory`` is a Docker tmpfs); configMap and secret keys become files (``items`` and
``defaultMode`` honoured) mounted read-only. hostPath binds the node's path (``DirectoryOrCreate`` creates it).
Other volume types are refused with ``FailedMount`` (kubelite does not emulate them). File work runs in a thread.
"""

from __future__ import annotations

import asyncio
import base64
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

Lookup = Callable[[str, str], dict[str, Any] | None]
EMULATED = ("emptyDir", "hostPath", "configMap", "secret")


class MountError(RuntimeError):
    """A volume cannot be set up (yet): the kubelet's ``MountVolume.SetUp failed for volume ...`` message."""


def _files(volume: dict[str, Any], source: str, obj: dict[str, Any]) -> dict[str, bytes]:
    """The files a configMap/secret volume shows: every key, or the ``items`` it selects (key -> path)."""
    data: dict[str, bytes] = {}
    for key, value in (obj.get("data") or {}).items():
        data[key] = base64.b64decode(str(value)) if source == "secret" else str(value).encode()
    for key, value in (obj.get("binaryData") or {}).items():
        data[key] = base64.b64decode(str(value))
    items = volume[source].get("items")
    if not items:
        return data
    out = {}
    for item in items:
        if item.get("key") not in data:
            what = "configmap references non-existent config key" if source == "configMap" else \
                "references non-existent secret key"
            raise MountError(f"{what}: {item.get('key')}")
        out[str(item["path"])] = data[item["key"]]
    return out


class PodVolumes:
    """The volumes of one pod on this node."""

    def __init__(self, root: Path, pod: dict[str, Any], lookup: Lookup) -> None:
        self.pod = pod
        self.spec = pod.get("spec") or {}
        self.dir = root / str(pod["metadata"]["uid"])
        self.lookup = lookup
        self.sources: dict[str, tuple[str, str | None]] = {}  # volume name -> (kind, host path or None for tmpfs)

    async def prepare(self) -> None:
        """Set up every volume; raises MountError naming the first that cannot be."""
        plan = []
        for volume in self.spec.get("volumes") or []:
            name = str(volume["name"])
            kind = next((k for k in volume if k != "name"), "")
            if kind not in EMULATED:
                raise MountError(f'MountVolume.SetUp failed for volume "{name}" : kubelite does not emulate '
                                 f"{kind} volumes")
            files: dict[str, bytes] | None = None
            if kind in ("configMap", "secret"):
                ref = str(volume[kind].get("name" if kind == "configMap" else "secretName") or "")
                obj = self.lookup("configmaps" if kind == "configMap" else "secrets", ref)
                if obj is None:
                    if volume[kind].get("optional"):
                        files = {}
                    else:
                        raise MountError(f'MountVolume.SetUp failed for volume "{name}" : '
                                         f'{"configmap" if kind == "configMap" else "secret"} "{ref}" not found')
                else:
                    try:
                        files = _files(volume, kind, obj)
                    except MountError as err:
                        raise MountError(f'MountVolume.SetUp failed for volume "{name}" : {err}') from None
            plan.append((name, kind, volume[kind], files))
        fs_group = (self.spec.get("securityContext") or {}).get("fsGroup")
        loop = asyncio.get_running_loop()
        for name, kind, source, files in plan:
            self.sources[name] = await loop.run_in_executor(None, self._make, name, kind, source, files, fs_group)

    def _make(self, name: str, kind: str, source: dict[str, Any], files: dict[str, bytes] | None,
              fs_group: int | None) -> tuple[str, str | None]:
        if kind == "hostPath":
            path = Path(str(source.get("path")))
            if source.get("type") in ("DirectoryOrCreate",) and not path.exists():
                path.mkdir(mode=0o755, parents=True)
            if not path.exists() and source.get("type") not in (None, ""):
                raise MountError(f'MountVolume.SetUp failed for volume "{name}" : hostPath type check failed: '
                                 f"{path} is not a directory")
            return kind, str(path)
        if kind == "emptyDir" and source.get("medium") == "Memory":
            return kind, None
        path = self.dir / name
        path.mkdir(parents=True, exist_ok=True)
        path.chmod(0o777 if kind == "emptyDir" else 0o755)
        if kind == "emptyDir" and fs_group is not None:
            os.chown(path, -1, int(fs_group))
            path.chmod(0o2777)
        mode = int(source.get("defaultMode", 0o644))
        for relative, content in (files or {}).items():
            target = path / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content)
            target.chmod(mode)
            if fs_group is not None:
                os.chown(target, -1, int(fs_group))
        return kind, str(path)

    def docker_mounts(self, container: dict[str, Any]) -> tuple[list[str], dict[str, str]]:
        """(Binds, Tmpfs) of one container's ``volumeMounts``."""
        binds: list[str] = []
        tmpfs: dict[str, str] = {}
        for mount in container.get("volumeMounts") or []:
            kind, host = self.sources[str(mount["name"])]
            target = str(mount["mountPath"])
            if host is None:
                tmpfs[target] = "mode=1777"
                continue
            if mount.get("subPath"):
                host = str(Path(host) / str(mount["subPath"]))
            read_only = bool(mount.get("readOnly")) or kind in ("configMap", "secret")
            binds.append(f"{host}:{target}{':ro' if read_only else ''}")
        return binds, tmpfs

    async def cleanup(self) -> None:
        await asyncio.get_running_loop().run_in_executor(None, lambda: shutil.rmtree(self.dir, ignore_errors=True))
