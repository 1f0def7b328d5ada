"""A ResourceManager's REST web services (``/ws/v1/cluster``) on aiohttp, one or two of them in HA.

Each ``ResourceManager`` serves one address and is ACTIVE or STANDBY; the members of an HA pair share one
``Cluster``. A standby RM answers ``/ws/v1/cluster/info`` itself (``haState: STANDBY``) and every other request
with YARN's ``RMWebAppFilter`` redirect: ``307 Temporary Redirect`` to the same path on the active RM, body
``This is standby RM. The redirect url is: <url>``; without an active partner it answers 503.

Authentication: YARN's "simple" mode by default (the user is the ``user.name`` query parameter, else
``dr.who``). ``authenticate`` replaces it (the Kerberos tests plug SPNEGO in there): a coroutine that returns the
user for a request, or raises ``web.HTTPUnauthorized`` with its ``WWW-Authenticate`` header.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from .cluster import FINAL, Cluster
from .errors import RemoteError, bad_request

PREFIX = "/ws/v1/cluster"
Authenticate = Callable[[web.Request], Awaitable[str]]
USER = web.RequestKey("user", str)


async def simple_auth(request: web.Request) -> str:
    return request.query.get("user.name") or "dr.who"


class ResourceManager:
    """One RM web endpoint. ``async with ResourceManager(cluster) as rm:`` serves on ``rm.url`` until stopped."""

    def __init__(self, cluster: Cluster, *, host: str = "127.0.0.1", port: int = 0, rm_id: str = "rm1",
                 active: bool = True, authenticate: Authenticate = simple_auth) -> None:
        self.cluster = cluster
        self.host, self.port, self.rm_id = host, port, rm_id
        self.active = active
        self.partner: ResourceManager | None = None
        self.authenticate = authenticate
        self.requests = 0  # every request answered, for tests that count a standby's cost
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def endpoint(self) -> str:
        """What a client configures (GP's ``yarn_endpoint`` shape)."""
        return f"{self.url}{PREFIX}"

    async def __aenter__(self) -> ResourceManager:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        app = web.Application(middlewares=[self._middleware])
        app.router.add_get(PREFIX, self._info)
        app.router.add_get(f"{PREFIX}/info", self._info)
        app.router.add_get(f"{PREFIX}/apps", self._apps)
        app.router.add_post(f"{PREFIX}/apps", self._submit)
        app.router.add_post(f"{PREFIX}/apps/new-application", self._new_application)
        app.router.add_get(f"{PREFIX}/apps/{{app_id}}", self._app)
        app.router.add_get(f"{PREFIX}/apps/{{app_id}}/state", self._state)
        app.router.add_put(f"{PREFIX}/apps/{{app_id}}/state", self._set_state)
        app.router.add_get(f"{PREFIX}/apps/{{app_id}}/appattempts", self._attempts)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        """Stop serving (an RM going down); the cluster and its applications live on for the partner."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def fail_over_to(self, other: ResourceManager) -> None:
        """Make ``other`` the active RM of the pair and this one standby."""
        self.active, other.active = False, True

    # ------------------------------------------------------------------------------------- plumbing
    @web.middleware
    async def _middleware(self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                          ) -> web.StreamResponse:
        self.requests += 1
        if not self.active and request.path not in (PREFIX, f"{PREFIX}/info"):
            partner = self.partner
            if partner is None or not partner.active or partner._runner is None:
                return web.Response(status=503, text="This is standby RM. There is no active RM right now.")
            location = f"{partner.url}{request.path_qs}"
            return web.Response(status=307, headers={"Location": location},
                                text=f"This is standby RM. The redirect url is: {location}")
        try:
            request[USER] = await self.authenticate(request)
            return await handler(request)
        except RemoteError as err:
            return err.response()

    @staticmethod
    def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
        return web.Response(status=status, text=json.dumps(body), content_type="application/json", headers=headers)

    @staticmethod
    async def _body(request: web.Request) -> dict[str, Any]:
        try:
            body = await request.json()
        except ValueError:
            raise bad_request("The request body is not valid JSON") from None
        if not isinstance(body, dict):
            raise bad_request("The request body must be a JSON object")
        return body

    # ------------------------------------------------------------------------------------- handlers
    async def _info(self, request: web.Request) -> web.Response:
        ts = self.cluster.cluster_ts
        return self._json({"clusterInfo": {
            "id": ts, "startedOn": ts, "state": "STARTED", "haState": "ACTIVE" if self.active else "STANDBY",
            "rmStateStoreName": "org.apache.hadoop.yarn.server.resourcemanager.recovery.MemoryRMStateStore",
            "resourceManagerVersion": "3.3.6-yarnlite", "hadoopVersion": "3.3.6-yarnlite",
            "haZooKeeperConnectionState": "ResourceManager HA is not enabled." if self.partner is None
            else "CONNECTED",
        }})

    async def _apps(self, request: web.Request) -> web.Response:
        apps = [a.json(self.cluster) for a in self.cluster.list(dict(request.query))]
        return self._json({"apps": {"app": apps} if apps else None})

    async def _app(self, request: web.Request) -> web.Response:
        return self._json({"app": self.cluster.get(request.match_info["app_id"]).json(self.cluster)})

    async def _attempts(self, request: web.Request) -> web.Response:
        app = self.cluster.get(request.match_info["app_id"])
        if not app.am_host:
            return self._json({"appAttempts": {"appAttempt": []}})
        attempt = {"id": 1, "startTime": app.started, "finishedTime": app.finished,
                   "containerId": f"container_{app.id.removeprefix('application_')}_01_000001",
                   "nodeHttpAddress": self.cluster.node_http, "nodeId": f"{self.cluster.node_host}:45454",
                   "appAttemptId": f"appattempt_{app.id.removeprefix('application_')}_000001",
                   "appAttemptState": app.state if app.state in FINAL else "RUNNING"}
        return self._json({"appAttempts": {"appAttempt": [attempt]}})

    async def _state(self, request: web.Request) -> web.Response:
        return self._json({"state": self.cluster.get(request.match_info["app_id"]).state})

    async def _set_state(self, request: web.Request) -> web.Response:
        app = self.cluster.get(request.match_info["app_id"])
        target = (await self._body(request)).get("state")
        if target != "KILLED":
            raise bad_request("Only 'KILLED' is allowed as a target state.")
        if app.state in FINAL:
            return self._json({"state": app.state})
        await self.cluster.kill(app)
        return self._json({"state": app.state})

    async def _new_application(self, request: web.Request) -> web.Response:
        return self._json({"application-id": self.cluster.new_application(),
                           "maximum-resource-capability": {"memory": 8192, "vCores": 4}})

    async def _submit(self, request: web.Request) -> web.Response:
        app = self.cluster.submit(await self._body(request), request[USER])
        return web.Response(status=202, headers={"Location": f"{self.endpoint}/apps/{app.id}"})


class ResourceManagerPair:
    """Two RMs over one cluster, ``rm1`` active and ``rm2`` standby, each the other's partner."""

    def __init__(self, cluster: Cluster, **kwargs: Any) -> None:
        self.rm1 = ResourceManager(cluster, rm_id="rm1", active=True, **kwargs)
        self.rm2 = ResourceManager(cluster, rm_id="rm2", active=False, **kwargs)
        self.rm1.partner, self.rm2.partner = self.rm2, self.rm1

    async def __aenter__(self) -> ResourceManagerPair:
        await self.rm1.start()
        await self.rm2.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.rm1.stop()
        await self.rm2.stop()
