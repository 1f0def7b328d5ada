"""Pulling a kernel's image when Docker does not have it (``image_pull_policy`` IfNotPresent), with its progress.

``docker-provisioner`` calls ``pull_image`` when creating the container failed with "No such image"; Docker's pull
stream (one JSON line per layer step) is tallied by the pure ``PullTally`` into bytes done/total, which the
provisioner reports as ``image_pull`` launch events (``launch_events``), at most every ``interval`` seconds plus
every step that ends a layer.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiodocker

LAYER_DONE = frozenset({"Download complete", "Pull complete", "Already exists"})
PROGRESS_INTERVAL = 0.25


def split_reference(image: str) -> tuple[str, str | None]:
    """``name[:tag]`` or ``name@digest`` as Docker's pull takes them (a registry's ``host:port`` is not a tag)."""
    if "@" in image:
        return image, None
    name, colon, tag = image.rpartition(":")
    if colon and "/" not in tag:
        return name, tag
    return image, "latest"


@dataclass
class PullTally:
    """Bytes downloaded and to download over every layer Docker named, from its pull progress lines."""

    layers: dict[str, tuple[int, int]] = field(default_factory=dict)

    def feed(self, line: dict[str, Any]) -> bool:
        """Take one progress line; True when it ends a layer's download (worth reporting at once)."""
        layer, status = str(line.get("id") or ""), str(line.get("status") or "")
        if not layer or layer.startswith(("sha256:", "latest")):
            return False
        done, total = self.layers.get(layer, (0, 0))
        detail = line.get("progressDetail") or {}
        if status == "Downloading" and isinstance(detail.get("total"), int):
            done, total = int(detail.get("current") or 0), int(detail["total"])
        elif status in LAYER_DONE:
            done = total
        self.layers[layer] = (done, total)
        return status in LAYER_DONE

    @property
    def done(self) -> int:
        return sum(done for done, _ in self.layers.values())

    @property
    def total(self) -> int:
        return sum(total for _, total in self.layers.values())


async def pull_image(client: aiodocker.Docker, image: str,
                     report: Callable[[str, PullTally], None], interval: float = PROGRESS_INTERVAL) -> None:
    """Pull ``image``, calling ``report(status, tally)`` for the first line, every ended layer, at most every
    ``interval`` seconds in between, and at the end. Docker's errors, in the stream too, raise ``DockerError``."""
    name, tag = split_reference(image)
    tally, last = PullTally(), 0.0
    status = "Pulling"
    report(status, tally)
    async for line in client.images.pull(name, tag=tag, stream=True):
        status = str(line.get("status") or status)
        ended = tally.feed(line)
        now = time.monotonic()
        if ended or now - last >= interval:
            last = now
            report(status, tally)
    report("Pulled", tally)
