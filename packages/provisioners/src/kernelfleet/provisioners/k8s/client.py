"""One Kubernetes API client per event loop, configured the first time a kernel needs it.

Gateway Provisioners loaded the cluster configuration at import and called the blocking client from async
methods. Here the configuration is read when the first kernel of a loop asks for the client (in-cluster when the
server runs in a pod, else the kubeconfig), the calls are ``kubernetes_asyncio``'s, and the client is leased: it
closes once the last kernel that holds it has released it (``leases.close_all`` closes it regardless, at server
shutdown or at the end of a test).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import ssl
from pathlib import Path
from typing import Any, ClassVar

import aiohttp
from kubernetes_asyncio import client, config
from kubernetes_asyncio.client.exceptions import ApiException

from kernelfleet.provisioners.envconfig import env_bool, env_value
from kernelfleet.provisioners.leases import Leases, PerLoop

log = logging.getLogger("kernelfleet.kubernetes")

# Every watch holds one connection; leave room for many namespaces plus the ordinary calls.
CONNECTION_POOL_SIZE = 256
# How long the client and its watches stay open after the last kernel released them.
IDLE_SECONDS = 30.0
# Where a pod finds its service account's token, CA and namespace (KF_SERVICE_ACCOUNT_DIR overrides it).
VERIFY_TIMEOUT = 10.0
SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"


def describe_api_error(err: BaseException) -> str:
    """The API server's own message (its Status ``message``), or why it could not be reached; a server whose
    certificate does not verify against the configured CA is named as such."""
    if isinstance(err, UntrustedServer):
        return str(err)
    if isinstance(err, aiohttp.ClientConnectorCertificateError | ssl.SSLCertVerificationError):
        where = ""
        if isinstance(err, aiohttp.ClientConnectorCertificateError):
            where = f" https://{err.host}:{err.port}"
            detail = getattr(err.certificate_error, "verify_message", None) or str(err.certificate_error)
        else:
            detail = err.verify_message or str(err)
        return (f"the Kubernetes API server{where} presented a certificate that does not verify against the "
                f"configured certificate authority ({detail}); check the kubeconfig's certificate-authority(-data) "
                "or the service account's ca.crt")
    if isinstance(err, ApiException):
        body = getattr(err, "body", None)
        if body:
            try:
                message = json.loads(body).get("message")
            except (ValueError, AttributeError):
                message = None
            if message:
                return f"{message} (HTTP {err.status})"
        return f"HTTP {err.status} {err.reason or ''}".strip()
    return f"{type(err).__name__}: {err}" if str(err) else type(err).__name__


async def load_configuration() -> client.Configuration:
    """In-cluster configuration inside a pod (unless GP_USE_INCLUSTER_CONFIG=false), else the kubeconfig."""
    cfg = client.Configuration()
    in_cluster = bool(os.environ.get("KUBERNETES_SERVICE_HOST")) and env_bool(
        ("KF_USE_INCLUSTER_CONFIG", "GP_USE_INCLUSTER_CONFIG"), True
    )
    if in_cluster:
        account = Path(env_value(("KF_SERVICE_ACCOUNT_DIR",)) or SERVICE_ACCOUNT_DIR)
        await asyncio.to_thread(config.load_incluster_config, client_configuration=cfg,
                                token_filename=str(account / "token"), cert_filename=str(account / "ca.crt"))
    else:
        paths = (env_value(("KUBECONFIG",)) or "").split(os.pathsep)
        path = next((p for p in paths if p), str(Path.home() / ".kube" / "config"))
        if not await asyncio.to_thread(Path(path).exists):
            raise RuntimeError(
                f"no Kubernetes configuration: not running in a pod and the kubeconfig {path} does not exist "
                "(set KUBECONFIG)"
            )
        await config.load_kube_config(config_file=path, client_configuration=cfg, persist_config=False)
    cfg.connection_pool_maxsize = CONNECTION_POOL_SIZE
    return cfg


class UntrustedServer(RuntimeError):
    """The API server's certificate does not verify against the configured CA: nothing is sent to it."""


async def verify_server(api_client: client.ApiClient) -> None:
    """Refuse an API server whose certificate does not verify (a ``/version`` call, which every authenticated user
    may make), before any kernel's request reaches it; an unreachable server is the first real call's to report."""
    try:
        await asyncio.wait_for(client.VersionApi(api_client).get_code(), VERIFY_TIMEOUT)
    except (aiohttp.ClientConnectorCertificateError, ssl.SSLCertVerificationError) as err:
        raise UntrustedServer(describe_api_error(err)) from None
    except Exception as err:  # down, slow or refusing /version: the calls that matter will say so
        log.debug("Kubernetes API server not verified yet: %s", describe_api_error(err))


class _NoBodies(logging.Filter):
    """kubernetes_asyncio logs whole response bodies at debug level; a launch Secret's body holds the token."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("response body")


_REST_LOG_FILTER = _NoBodies()


class KubeApi:
    """The loop's ``ApiClient`` and how many kernels hold it."""

    _instances: ClassVar[PerLoop[KubeApi]] = PerLoop()

    def __init__(self) -> None:
        self.leases = Leases(self.close, linger=IDLE_SECONDS)
        self._client: client.ApiClient | None = None
        self._lock = asyncio.Lock()
        self._closers: list[Any] = []

    @classmethod
    def acquire(cls) -> KubeApi:
        """The loop's holder with one more lease."""
        api = cls._instances.get_or_create(cls)
        api.leases.take()
        return api

    async def client(self) -> client.ApiClient:
        """The configured client; the configuration is loaded on the first call."""
        if self._client is None:
            async with self._lock:
                if self._client is None:
                    rest_log = logging.getLogger("kubernetes_asyncio.client.rest")
                    if _REST_LOG_FILTER not in rest_log.filters:
                        rest_log.addFilter(_REST_LOG_FILTER)
                    cfg = await load_configuration()
                    api_client = client.ApiClient(configuration=cfg)
                    try:
                        await verify_server(api_client)
                    except BaseException:
                        await api_client.close()
                        raise
                    self._client = api_client
                    log.debug("Kubernetes client for %s", cfg.host)
        return self._client

    def on_close(self, closer: Any) -> None:
        """Register an ``async`` callable run before the client closes (the shared watches)."""
        self._closers.append(closer)

    async def release(self) -> None:
        """Give back one lease; the client (and its watches) close after IDLE_SECONDS without any lease.

        Kernels come and go in bursts: closing at once would make the next one pay for a new configuration,
        connection and namespace watch on its start.
        """
        await self.leases.give_back()

    async def close(self) -> None:
        self.leases.cancel_idle_close()
        self._instances.forget(self)
        closers, self._closers = self._closers, []
        for closer in closers:
            try:
                await closer()
            except Exception as err:  # closing must go on for the rest
                log.debug("closing a Kubernetes watch: %s", err)
        api_client, self._client = self._client, None
        if api_client is not None:
            await api_client.close()
