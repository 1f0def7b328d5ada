"""A read-only Docker registry (HTTP API v2) on 127.0.0.1, serving one image from ``docker save``: so dockerd
really pulls an image, with its real progress stream, on a machine that reaches no registry.

No registry image or binary is available here (no internet; Debian has no ``docker-registry`` package in our
mirror), so this serves the few endpoints a pull uses, from the files ``docker save`` writes (Docker 20.10's
format: ``manifest.json``, the config ``<id>.json``, one uncompressed ``layer.tar`` per layer):

| endpoint | served |
|---|---|
| ``GET /v2/`` | ``{}`` (API version check, no auth) |
| ``GET/HEAD /v2/<name>/manifests/<tag>`` | a schema 2 manifest built from the saved config and layers |
| ``GET/HEAD /v2/<name>/blobs/<digest>`` | the config or a layer (layers uncompressed: their digest is the diff id) |

Not emulated: pushes, auth, catalog, tag lists, manifest lists, range requests, deletes. dockerd treats
127.0.0.0/8 as an insecure registry by default, so plain HTTP works without configuring the daemon.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

MANIFEST_V2 = "application/vnd.docker.distribution.manifest.v2+json"
CONFIG_V1 = "application/vnd.docker.container.image.v1+json"
LAYER_TAR = "application/vnd.docker.image.rootfs.diff.tar"


@dataclass
class SavedImage:
    """An image as ``docker save`` wrote it, unpacked into ``root``: its manifest and blobs by digest."""

    root: Path
    manifest: bytes = b""
    blobs: dict[str, Path] = field(default_factory=dict)

    @classmethod
    def load(cls, archive: Path, root: Path) -> SavedImage:
        """Unpack a ``docker save`` archive (blocking: call it in a thread) and index it."""
        with tarfile.open(archive) as tar:
            tar.extractall(root, filter="data")
        entry = json.loads((root / "manifest.json").read_text())[0]
        config_path = root / entry["Config"]
        config = json.loads(config_path.read_text())
        image = cls(root)
        config_digest = "sha256:" + hashlib.sha256(config_path.read_bytes()).hexdigest()
        image.blobs[config_digest] = config_path
        layers = []
        for layer, diff_id in zip(entry["Layers"], config["rootfs"]["diff_ids"], strict=True):
            path = root / layer
            image.blobs[diff_id] = path
            layers.append({"mediaType": LAYER_TAR, "size": path.stat().st_size, "digest": diff_id})
        manifest = {
            "schemaVersion": 2, "mediaType": MANIFEST_V2,
            "config": {"mediaType": CONFIG_V1, "size": config_path.stat().st_size, "digest": config_digest},
            "layers": layers,
        }
        image.manifest = json.dumps(manifest).encode()
        return image

    @property
    def total_bytes(self) -> int:
        return sum(path.stat().st_size for path in self.blobs.values())


class LocalRegistry:
    """Serves ``image`` under any repository name and tag at ``http://127.0.0.1:<port>``."""

    def __init__(self, image: SavedImage) -> None:
        self.image = image
        self.runner: web.AppRunner | None = None
        self.port = 0
        self.blob_requests: list[str] = []

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/v2/", self._version)
        app.router.add_route("*", "/v2/{name:.+}/manifests/{reference}", self._manifest)
        app.router.add_route("*", "/v2/{name:.+}/blobs/{digest}", self._blob)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()

    def headers(self, **extra: str) -> dict[str, str]:
        return {"Docker-Distribution-API-Version": "registry/2.0", **extra}

    async def _version(self, request: web.Request) -> web.Response:
        return web.json_response({}, headers=self.headers())

    async def _manifest(self, request: web.Request) -> web.StreamResponse:
        body = self.image.manifest
        digest = "sha256:" + hashlib.sha256(body).hexdigest()
        headers = self.headers(**{"Docker-Content-Digest": digest, "Content-Type": MANIFEST_V2})
        if request.method == "HEAD":
            return web.Response(headers={**headers, "Content-Length": str(len(body))})
        return web.Response(body=body, headers=headers)

    async def _blob(self, request: web.Request) -> web.StreamResponse:
        digest = request.match_info["digest"]
        path = self.image.blobs.get(digest)
        if path is None:
            return web.json_response({"errors": [{"code": "BLOB_UNKNOWN", "message": digest}]}, status=404,
                                     headers=self.headers())
        self.blob_requests.append(digest)
        headers = self.headers(**{"Docker-Content-Digest": digest, "Content-Type": "application/octet-stream"})
        if request.method == "HEAD":
            return web.Response(headers={**headers, "Content-Length": str(path.stat().st_size)})
        return web.FileResponse(path, headers=headers)


async def serve_saved(archive: Path, root: Path) -> LocalRegistry:
    """A started registry serving the image saved in ``archive`` (unpacked into ``root`` off the event loop)."""
    image = await asyncio.to_thread(SavedImage.load, archive, root)
    registry = LocalRegistry(image)
    await registry.start()
    return registry


def describe(registry: LocalRegistry) -> dict[str, Any]:
    """What a failing test prints about the registry."""
    return {"port": registry.port, "blobs": len(registry.image.blobs), "requested": len(registry.blob_requests)}
