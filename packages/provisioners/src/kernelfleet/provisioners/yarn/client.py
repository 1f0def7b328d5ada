"""A thin asyncio client of the ResourceManager REST API (``/ws/v1/cluster``) on aiohttp, with HA fail-over.

The provisioner makes one per kernel (``YarnProvisioner.rm``). Endpoints are tried from the one that answered
last: a standby's ``307`` redirect is followed at once (one extra request) and its target remembered; an RM that
does not answer, answers 503 or says "This is standby RM" without a redirect is skipped for the next. Only when
no endpoint answers does a call raise ``RMUnavailable``; an RM's own refusal raises ``YarnError`` with its
``RemoteException`` message. Authentication is YARN's "simple" ``user.name`` parameter, or whatever the
``authorization`` hook returns for a URL (the Kerberos support plugs SPNEGO's ``Negotiate`` header in there).
"""

from __future__ import annotations

import asyncio
import importlib
import json
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import aiohttp

CLUSTER_PATH = "/ws/v1/cluster"
#: Given the URL about to be requested, the Authorization header value to send (None: none).
AuthorizationHook = Callable[[str], Awaitable[str | None]]


class YarnError(RuntimeError):
    """The ResourceManager refused a request; ``message`` is its own (RemoteException) text."""

    def __init__(self, status: int, exception: str, message: str) -> None:
        super().__init__(f"{exception}: {message}" if exception else message)
        self.status, self.exception, self.message = status, exception, message


class RMUnavailable(ConnectionError):
    """No configured ResourceManager answered as an active RM; the message names each and why."""


def load_authorization_hook(spec: str) -> AuthorizationHook:
    """The ``module:callable`` hook an ``authorization_hook`` setting names; ValueError saying why it cannot be
    loaded. The provisioner and the orphan sweep load it the same way."""
    module, _, name = spec.partition(":")
    try:
        hook: AuthorizationHook = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError) as err:
        raise ValueError(f"authorization_hook {spec!r} cannot be loaded: {err}") from None
    return hook


def normalise_endpoint(endpoint: str) -> str:
    """``http://rm1:8088`` and ``http://rm1:8088/ws/v1/cluster/`` both become the latter without the slash."""
    endpoint = endpoint.strip().rstrip("/")
    if not endpoint.startswith(("http://", "https://")):
        raise ValueError(f"YARN endpoint {endpoint!r} must be an http:// or https:// URL")
    return endpoint if endpoint.endswith(CLUSTER_PATH) else endpoint + CLUSTER_PATH


def remote_error(status: int, text: str) -> YarnError:
    """A YarnError from an RM error response: its RemoteException when there is one, else the body."""
    try:
        remote = json.loads(text)["RemoteException"]
        return YarnError(status, str(remote.get("exception", "")), str(remote.get("message", "")))
    except (ValueError, KeyError, TypeError, AttributeError):
        return YarnError(status, "", f"HTTP {status}: {text.strip()[:500]}")


class ResourceManagerClient:
    """Calls on the RM web services; ``close()`` when done (the provisioner does in ``cleanup``)."""

    def __init__(self, endpoints: Sequence[str], *, user: str | None = None,
                 authorization: AuthorizationHook | None = None, request_timeout: float = 10.0) -> None:
        if not endpoints:
            raise ValueError("no YARN ResourceManager endpoint is configured (yarn_endpoint / GP_YARN_ENDPOINT)")
        self.endpoints = [normalise_endpoint(e) for e in endpoints]
        self.user = user
        self.authorization = authorization
        self.request_timeout = request_timeout
        self.active = 0  # index of the endpoint that answered last
        self.requests = 0  # sent, for the benchmark's "a standby costs one request"
        self._session: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    # ------------------------------------------------------------------------------------- calls
    async def cluster_info(self) -> dict[str, Any]:
        return dict((await self.request("GET", "/info"))["clusterInfo"])

    async def app(self, app_id: str) -> dict[str, Any]:
        return dict((await self.request("GET", f"/apps/{app_id}"))["app"])

    async def app_state(self, app_id: str) -> str:
        """The cheapest question: a few bytes back."""
        return str((await self.request("GET", f"/apps/{app_id}/state"))["state"])

    async def apps(self, **filters: str) -> list[dict[str, Any]]:
        body = await self.request("GET", "/apps", params={k: v for k, v in filters.items() if v})
        return list(((body or {}).get("apps") or {}).get("app") or [])

    async def new_application(self) -> str:
        return str((await self.request("POST", "/apps/new-application"))["application-id"])

    async def submit(self, context: dict[str, Any]) -> None:
        await self.request("POST", "/apps", body=context)

    async def kill(self, app_id: str) -> str:
        return str((await self.request("PUT", f"/apps/{app_id}/state", body={"state": "KILLED"}))["state"])

    # ------------------------------------------------------------------------------------- transport
    async def request(self, method: str, path: str, *, body: dict[str, Any] | None = None,
                      params: dict[str, str] | None = None) -> Any:
        """One call, on the active RM; the others in turn when it does not answer as the active one."""
        failures: list[str] = []
        count = len(self.endpoints)
        for step in range(count):
            index = (self.active + step) % count
            url = self.endpoints[index] + path
            redirected = False
            try:
                status, text, location = await self._send(method, url, body, params)
                if status in (301, 302, 303, 307, 308) and location:
                    redirected = True
                    self._remember(location)
                    status, text, _ = await self._send(method, location, body, params)
            except (aiohttp.ClientError, OSError, TimeoutError) as err:
                failures.append(f"{self.endpoints[index]}: {err or type(err).__name__}")
                continue
            if status == 503 or (status >= 300 and "standby" in text.lower()):
                failures.append(f"{self.endpoints[index]}: standby ({text.strip()[:120]})")
                continue
            if status >= 400:
                raise remote_error(status, text)
            if not redirected:
                self.active = index
            return json.loads(text) if text.strip() else None
        raise RMUnavailable("no YARN ResourceManager answered as the active one: " + "; ".join(failures))

    def _remember(self, location: str) -> None:
        for index, endpoint in enumerate(self.endpoints):
            if location.startswith(endpoint):
                self.active = index
                return

    async def _send(self, method: str, url: str, body: dict[str, Any] | None, params: dict[str, str] | None
                    ) -> tuple[int, str, str | None]:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.request_timeout))
        headers = {"Accept": "application/json"}
        query = dict(params or {})
        if self.authorization is not None:
            value = await self.authorization(url)
            if value:
                headers["Authorization"] = value
        if self.user and "user.name=" not in url:
            query["user.name"] = self.user
        self.requests += 1
        async with self._session.request(method, url, json=body, params=query or None, headers=headers,
                                         allow_redirects=False) as response:
            text = await response.text()
            location = response.headers.get("Location") if 300 <= response.status < 400 else None
            return response.status, text, location


async def wait_for_state(client: ResourceManagerClient, app_id: str, done: Callable[[str], bool], *,
                         first: float = 0.02, cap: float = 2.0,
                         on_unavailable: Callable[[Exception], None] | None = None,
                         on_change: Callable[[str], None] | None = None) -> str:
    """Ask the app's state with a backoff from ``first`` to ``cap`` seconds until ``done(state)``; return it.

    YARN has no watch, so this is the cheapest request at a growing interval; every state change (the app
    moving on) starts the interval again from ``first``. An RM fail-over in between is ridden out: the
    client moves to the partner, and ``on_unavailable`` hears about each round no RM answered; ``on_change`` hears
    each state the app is seen in (launch events).
    """
    delay, last = first, ""
    while True:
        try:
            state = await client.app_state(app_id)
        except RMUnavailable as err:
            if on_unavailable is not None:
                on_unavailable(err)
            state = last
        if state and state != last and on_change is not None:
            on_change(state)
        if state and done(state):
            return state
        if state != last:
            delay, last = first, state
        await asyncio.sleep(delay)
        delay = min(delay * 2, cap)
