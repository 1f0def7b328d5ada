"""Readiness probes, run as the kubelet runs them: ``httpGet`` (a status from 200 to 399 passes) and ``tcpSocket``
(a connection passes) against the pod's IP, every ``periodSeconds`` after ``initialDelaySeconds``, each attempt
bounded by ``timeoutSeconds``; ``failureThreshold`` failures in a row make a ready container unready again. A
container with a readiness probe is not ready until its probe passes, so a Deployment is ``Available`` only once
its server answers. ``exec`` and ``grpc`` probes are not run (the container counts as ready, as without a probe;
the README says so). Liveness and startup probes are not run.

``PodWorker`` (kubelet.py) runs ``ReadinessProbe.run`` beside each probed container and publishes the pod's status
when the answer changes.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

import aiohttp

RUNNABLE = ("httpGet", "tcpSocket")


def probe_port(probe: dict[str, Any], container: dict[str, Any]) -> int:
    """Pure: the probe's port, a number or the name of one of the container's ports."""
    action = probe.get("httpGet") or probe.get("tcpSocket") or {}
    port = action.get("port")
    if isinstance(port, int):
        return port
    for declared in container.get("ports") or []:
        if declared.get("name") == port:
            return int(declared["containerPort"])
    raise ValueError(f"port {port!r} is not a port of container {container.get('name')!r}")


async def probe_once(probe: dict[str, Any], host: str, port: int) -> str | None:
    """One attempt: None when it passes, else the kubelet's wording of why not."""
    timeout = float(probe.get("timeoutSeconds", 1))
    if "tcpSocket" in probe:
        try:
            async with asyncio.timeout(timeout):
                _, writer = await asyncio.open_connection(host, port)
        except (OSError, TimeoutError) as err:
            return f"dial tcp {host}:{port}: {err}"
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return None
    action = probe["httpGet"]
    scheme = str(action.get("scheme", "HTTP")).lower()
    url = f"{scheme}://{host}:{port}{action.get('path', '/')}"
    headers = {h["name"]: h["value"] for h in action.get("httpHeaders") or []}
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session, \
                session.get(url, headers=headers, ssl=False, allow_redirects=False) as response:
            if 200 <= response.status < 400:
                return None
            return f"HTTP probe failed with statuscode: {response.status}"
    except (aiohttp.ClientError, OSError, TimeoutError) as err:
        return f'Get "{url}": {err or type(err).__name__}'


class ReadinessProbe:
    """One container's readiness probe; ``ready`` is its current answer (False until the first pass)."""

    def __init__(self, probe: dict[str, Any], container: dict[str, Any]) -> None:
        self.probe = probe
        self.container = container
        self.ready = False

    @property
    def runnable(self) -> bool:
        return any(k in self.probe for k in RUNNABLE)

    async def run(self, host: Callable[[], str | None], running: Callable[[], bool], finished: Callable[[], bool],
                  notify: Callable[[str | None], None]) -> None:
        """Probe while the container runs: ``notify(None)`` when it becomes ready, ``notify(why)`` after each failed
        attempt (the kubelet's ``Unhealthy`` event; ``ready`` turns False after ``failureThreshold`` in a row)."""
        period = float(self.probe.get("periodSeconds", 10))
        threshold = int(self.probe.get("failureThreshold", 3))
        await asyncio.sleep(float(self.probe.get("initialDelaySeconds", 0)))
        failures = 0
        while not finished():
            address = host()
            if running() and address:
                failure = await probe_once(self.probe, address, probe_port(self.probe, self.container))
                if failure is None:
                    failures = 0
                    if not self.ready:
                        self.ready = True
                        notify(None)
                else:
                    failures += 1
                    if failures >= threshold:
                        self.ready = False
                    notify(failure)
            await asyncio.sleep(period)
