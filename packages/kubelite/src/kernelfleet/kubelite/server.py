"""The HTTP API server: REST verbs, list/watch, discovery, admission and defaulting, over aiohttp."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import copy
import datetime as _dt
import json
import logging
import secrets
import shutil
import tempfile
import uuid
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiodocker
from aiohttp import web

from . import openapi, protobuf, tables, validation
from .admission import PodAdmission
from .authn import MASTERS, Authenticator, UserInfo, service_account_user
from .clock import now
from .errors import (
    ApiError,
    bad_request,
    conflict,
    forbidden,
    not_found,
    precondition_failed,
    resource_missing,
    resource_name,
)
from .events import EventRecorder
from .incluster import ApiAccess
from .kubelet import Kubelet, NodeConfig, remove_containers
from .network import PodNetwork
from .patch import json_patch, merge_patch
from .rbac import AUTHORIZATION_GROUP, RBAC_GROUP, Attributes, RbacAuthorizer, bootstrap_objects
from .requestinfo import request_info
from .resources import ACCESS_REVIEWS, BUILTINS, SPARK_APPLICATIONS, ResourceType
from .secret_data import check_immutable, normalize_secret
from .selectors import fields_match, labels_match, parse_field_selector, parse_label_selector
from .store import Change, Store
from .tls import ClusterCA, KeyPair
from .watch_stream import WatchSilencer, stream_changes
from .workloads import WorkloadControllers, default_service

log = logging.getLogger("kubelite")

APPLY_PATCH = "application/apply-patch+yaml"  # server-side apply (``_apply``)

KUBERNETES_VERSION = {"major": "1", "minor": "36", "gitVersion": "v1.36.0-kubelite", "gitCommit": "kubelite",
                      "gitTreeState": "clean", "buildDate": "2026-01-01T00:00:00Z", "goVersion": "n/a",
                      "compiler": "python", "platform": "linux/amd64"}
_USER = web.RequestKey("user", UserInfo)
_PROTECTED_NAMESPACES = ("default", "kube-system", "kube-public")
_GENERATE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


@dataclass(frozen=True)
class Preconditions:
    """DeleteOptions.preconditions: delete only if the stored object still has this uid / resourceVersion."""

    uid: str | None = None
    resource_version: str | None = None


class DockerUnavailable(RuntimeError):
    """dockerd cannot be reached: kubelite runs pods as real containers and cannot work without it."""


def _json(body: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, text=json.dumps(body), content_type="application/json")


def _truthy(value: str | None) -> bool:
    return value in ("true", "1", "True")


class KubeLite:
    """A small single-node Kubernetes: API server, scheduler and Docker-backed kubelet in one process."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        token: str | None = None,
        node_name: str = "kubelite",
        node_ip: str = "127.0.0.1",
        spark_operator: bool = True,
        unschedulable: bool = False,
        pull_backoff: tuple[float, float] = (1.0, 10.0),
        restart_backoff: tuple[float, float] = (1.0, 10.0),
        history: int = 10000,
        docker_url: str | None = None,
        tls: bool = True,
        bookmark_interval: float = 60.0,
    ) -> None:
        self.host = host
        self.port = port
        #: The cluster CA and the API server's certificate: HTTPS unless ``tls`` is off (plain HTTP, for old tests).
        self.ca: ClusterCA | None = ClusterCA() if tls else None
        self.authn = Authenticator()
        #: The admin token: user ``kubernetes-admin`` in ``system:masters`` (kubeadm's admin.conf identity).
        self.token = self.authn.add_token(UserInfo("kubernetes-admin", (MASTERS,)), token)
        self.store = Store(history)
        self.types: dict[tuple[str, str], ResourceType] = {rt.key: rt for rt in [*BUILTINS, *ACCESS_REVIEWS]}
        self.rbac = RbacAuthorizer(self.store, self.types)
        self.namespaces_rt = self.types[("", "namespaces")]
        self.pods_rt = self.types[("", "pods")]
        self.sa_rt = self.types[("", "serviceaccounts")]
        self.events_rt = self.types[("", "events")]
        self.secrets_rt = self.types[("", "secrets")]
        self.configmaps_rt = self.types[("", "configmaps")]
        self.services_rt = self.types[("", "services")]
        #: Requests answered 403 as RBAC would: (verb, group, plural, namespace or None for any) -> user.
        self._forbidden: dict[tuple[str, str, str, str | None], str] = {}
        self.node = NodeConfig(
            name=node_name, ip=node_ip, instance=secrets.token_hex(6), unschedulable=unschedulable,
            pull_backoff=pull_backoff, restart_backoff=restart_backoff,
            labels={"kubernetes.io/hostname": node_name, "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": "amd64", "node-role.kubernetes.io/control-plane": ""},
        )
        self.recorder = EventRecorder(self.store, self.events_rt, node_name)
        self.admission = PodAdmission(self.store, self.types)
        #: Seconds without a change after which a watch that allows bookmarks gets a BOOKMARK (the API server's
        #: watch cache sends one about every minute).
        self.bookmark_interval = bookmark_interval
        self.watches = WatchSilencer()
        self._spark_enabled = spark_operator
        if spark_operator:
            self.register(SPARK_APPLICATIONS)
        self._docker_url = docker_url
        self.docker: aiodocker.Docker | None = None
        self.kubelet: Kubelet | None = None
        self.pod_network: PodNetwork | None = None
        self._runner: web.AppRunner | None = None
        self._background: set[asyncio.Task[Any]] = set()
        self._controllers: list[Any] = []
        self._serving: KeyPair | None = None
        #: The API's second listener, on the pod network's gateway, for pods' in-cluster clients (``incluster.py``).
        self._pod_site: web.TCPSite | None = None

    # -- lifecycle ----------------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"{'https' if self.ca else 'http'}://{self.host}:{self.port}"

    def register(self, rt: ResourceType) -> None:
        """Serve another resource type, as installing a CRD would."""
        self.types[rt.key] = rt

    async def start(self) -> KubeLite:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, validation.preload)
        self.node.memory_capacity = await loop.run_in_executor(None, _memory_capacity)
        docker = aiodocker.Docker(url=self._docker_url)
        try:
            await docker.version()
        except Exception as err:
            await docker.close()
            raise DockerUnavailable(
                f"kubelite runs pods as Docker containers but dockerd is unreachable ({err}); start dockerd "
                "(e.g. `dockerd &`) or set DOCKER_HOST") from err
        self.docker = docker
        self.pod_network = await PodNetwork(docker, self.node.instance).create()
        self.node.pod_network = self.pod_network.name
        self.node.pod_ips = self.pod_network.ips
        self.node.volume_root = Path(await loop.run_in_executor(None, lambda: tempfile.mkdtemp(
            prefix=f"kubelite-{self.node.instance}-")))
        self.kubelet = Kubelet(self.store, self.pods_rt, self.recorder, docker, self.node)
        for name in ("default", "kube-system", "kube-public", "kube-node-lease"):
            self.create_object(self.namespaces_rt, None, {"metadata": {"name": name}})
        for plural, obj in bootstrap_objects():
            self.create_object(self.types[(RBAC_GROUP, plural)], None, obj)
        await self.start_api()
        self.add_controller(WorkloadControllers(self, self.types[("apps", "deployments")],
                                                self.types[("apps", "daemonsets")]))
        if self._spark_enabled:
            from .spark import SparkOperator

            self.add_controller(SparkOperator(self))
        log.info("kubelite: API server listening on %s", self.url)
        return self

    async def start_api(self) -> None:
        """Serve the API (at start, and again after ``stop_api`` on the same port)."""
        app = web.Application(client_max_size=16 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        # A client that goes away ends its request, as the apiserver's request context does: without it a watch whose
        # client closed the connection (a launch's pod-Events watch, cancelled when the kernel reported) would hold
        # its handler until its timeoutSeconds.
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0, handler_cancellation=True)
        await self._runner.setup()
        ssl_context = None
        if self.ca is not None:
            if self._serving is None:
                gateway = [self.pod_network.gateway] if self.pod_network and self.pod_network.gateway else []
                self._serving = self.ca.serving_pair([self.host, self.node.ip, *gateway])
            ssl_context = self.ca.server_context(self._serving)
        site = web.TCPSite(self._runner, self.host, self.port, ssl_context=ssl_context)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        await self._serve_pods(ssl_context)

    async def _serve_pods(self, ssl_context: Any) -> None:
        """Listen on the pod network's gateway too (same port when free) and tell the kubelet how pods reach the
        API, so that a pod's in-cluster client works (``incluster.py``). Needs TLS: in-cluster clients only speak
        HTTPS, and the token directory carries the CA."""
        if self.ca is None or self.pod_network is None or not self.pod_network.gateway or self._runner is None:
            return
        gateway = self.pod_network.gateway
        if self.host in ("0.0.0.0", "::", gateway):
            port = self.port
        else:
            port = 0
            for wanted in (self.port, 0):
                self._pod_site = web.TCPSite(self._runner, gateway, wanted, ssl_context=ssl_context)
                try:
                    await self._pod_site.start()
                except OSError:
                    continue
                pod_server = self._pod_site._server
                assert pod_server is not None
                port = pod_server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
                break
        host_network_host = self.host if self.host not in ("0.0.0.0", "::") else self.node.ip
        self.node.api_access = ApiAccess(gateway, port, host_network_host, self.port, self.ca.cert_pem,
                                         self.service_account_token)

    async def stop_api(self) -> None:
        """Stop serving the API: open watches end and connections are refused; the store (objects, resourceVersions,
        watch history) and the kubelet's pods stay, as when an API server restarts over the same etcd."""
        self.store.close_watches()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def add_controller(self, controller: Any) -> None:
        """Run a controller (an object with ``async run()``) for the server's lifetime."""
        self._controllers.append(controller)
        self.spawn(controller.run())

    def spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    async def stop(self) -> None:
        self.store.close_watches()
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*list(self._background), return_exceptions=True)
        if self.kubelet is not None:
            await self.kubelet.shutdown()
        if self.pod_network is not None:
            await self.pod_network.remove()
            self.pod_network = None
            root = self.node.volume_root
            await asyncio.get_running_loop().run_in_executor(None, lambda: shutil.rmtree(root, ignore_errors=True))
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self.docker is not None:
            await self.docker.close()
            self.docker = None

    async def __aenter__(self) -> KubeLite:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def kubeconfig(self, namespace: str = "default", *, token: str | None = None,
                   client: KeyPair | None = None) -> dict[str, Any]:
        """A kubeconfig for this server: the cluster's CA as ``certificate-authority-data``, and a user with ``token``
        (the admin token by default) or the client certificate ``client`` (see ``client_certificate``)."""
        cluster: dict[str, Any] = {"server": self.url}
        if self.ca is not None:
            cluster["certificate-authority-data"] = base64.b64encode(self.ca.cert_pem).decode()
        if client is not None:
            user = {"client-certificate-data": base64.b64encode(client.cert_pem).decode(),
                    "client-key-data": base64.b64encode(client.key_pem).decode()}
        else:
            user = {"token": token or self.token}
        return {
            "apiVersion": "v1", "kind": "Config", "current-context": "kubelite", "preferences": {},
            "clusters": [{"name": "kubelite", "cluster": cluster}],
            "users": [{"name": "kubelite", "user": user}],
            "contexts": [{"name": "kubelite",
                          "context": {"cluster": "kubelite", "user": "kubelite", "namespace": namespace}}],
        }

    def write_kubeconfig(self, path: str | Path, namespace: str = "default", *, token: str | None = None,
                         client: KeyPair | None = None) -> Path:
        """Write a kubeconfig (JSON is valid YAML) that ``load_kube_config(config_file=...)`` and kubectl accept."""
        target = Path(path)
        target.write_text(json.dumps(self.kubeconfig(namespace, token=token, client=client), indent=2))
        target.chmod(0o600)
        return target

    # -- identities -----------------------------------------------------------------------------------------

    def user_token(self, user: str, groups: tuple[str, ...] = ()) -> str:
        """A new bearer token that authenticates as ``user`` in ``groups`` (and system:authenticated)."""
        return self.authn.add_token(UserInfo(user, groups))

    def service_account_token(self, namespace: str, name: str) -> str:
        """A new token of the service account ``namespace/name`` (user ``system:serviceaccount:<ns>:<name>``)."""
        return self.authn.add_token(service_account_user(namespace, name))

    def client_certificate(self, user: str, groups: tuple[str, ...] = ()) -> KeyPair:
        """A client certificate signed by the cluster CA: CN ``user``, one O per group."""
        if self.ca is None:
            raise RuntimeError("kubelite serves plain HTTP (tls=False): there is no CA to sign client certificates")
        return self.ca.client_pair(user, groups)

    def write_service_account_dir(self, path: str | Path, namespace: str, name: str) -> dict[str, str]:
        """Lay out what a pod of service account ``namespace/name`` finds under
        ``/var/run/secrets/kubernetes.io/serviceaccount`` (``token``, ``ca.crt``, ``namespace``) in ``path``, and
        return the ``KUBERNETES_SERVICE_HOST`` / ``KUBERNETES_SERVICE_PORT`` its environment has."""
        if self.ca is None:
            raise RuntimeError("in-cluster configuration needs HTTPS: this kubelite serves plain HTTP (tls=False)")
        target = Path(path)
        target.mkdir(parents=True, exist_ok=True)
        (target / "token").write_text(self.service_account_token(namespace, name))
        (target / "ca.crt").write_bytes(self.ca.cert_pem)
        (target / "namespace").write_text(namespace)
        for item in target.iterdir():
            item.chmod(0o600)
        return {"KUBERNETES_SERVICE_HOST": self.host, "KUBERNETES_SERVICE_PORT": str(self.port)}

    def compact(self) -> int:
        """Drop the watch history, so resuming from any older resourceVersion answers 410 Gone."""
        return self.store.compact()

    def set_unschedulable(self, value: bool) -> None:
        """Cordon (True) or uncordon (False) the node; pending unschedulable pods are retried on uncordon."""
        assert self.kubelet is not None
        self.kubelet.set_unschedulable(value)

    def drop_watches_silently(self) -> int:
        """Test hook: every watch open now stops sending anything while its connection stays open, as a connection
        lost without a FIN looks to a client; returns how many. Watches opened later are unaffected."""
        return self.watches.drop_all()

    def forbid(self, verb: str, plural: str, *, group: str = "", namespace: str | None = None,
               user: str = "system:serviceaccount:kernelfleet:kernelfleet") -> None:
        """Answer ``verb`` on ``plural`` (``pods/log`` for a subresource) with RBAC's 403, in ``namespace`` or
        in any, as for a service account without that permission; ``permit`` lifts it."""
        self._forbidden[(verb, group, plural, namespace)] = user

    def permit(self, verb: str, plural: str, *, group: str = "", namespace: str | None = None) -> None:
        self._forbidden.pop((verb, group, plural, namespace), None)

    def _authorize(self, verb: str, rt: ResourceType, namespace: str | None, name: str | None,
                   sub: str | None) -> None:
        """The authorizer's refusal, worded as the API server words an RBAC denial."""
        resource = f"{rt.plural}/{sub}" if sub else rt.plural
        user = self._forbidden.get((verb, rt.group, resource, namespace)) or self._forbidden.get(
            (verb, rt.group, resource, None))
        if user is None:
            return
        scope = f'in the namespace "{namespace}"' if namespace is not None else "at the cluster scope"
        subject = f'{resource_name(rt.plural, rt.group)} "{name}"' if name else resource_name(rt.plural, rt.group)
        details: dict[str, Any] = {"name": name} if name else {}
        if rt.group:
            details["group"] = rt.group
        details["kind"] = rt.plural
        raise ApiError(403, f'{subject} is forbidden: User "{user}" cannot {verb} resource "{resource}" in API '
                       f'group "{rt.group}" {scope}', "Forbidden", details)

    async def remove_all_containers(self) -> int:
        assert self.docker is not None
        return await remove_containers(self.docker, {"kubelite.instance": self.node.instance})

    # -- object operations shared by HTTP and controllers -------------------------------------------------

    def _check_namespace(self, rt: ResourceType, namespace: str, name: str) -> None:
        ns = self.store.find(self.namespaces_rt, "", namespace)
        if ns is None:
            raise not_found("namespaces", "", namespace)
        if ns["metadata"].get("deletionTimestamp"):
            raise forbidden(rt.plural, rt.group, name, f"unable to create new content in namespace {namespace} "
                            "because it is being terminated")

    def _fill_gvk(self, body: dict[str, Any], rt: ResourceType) -> None:
        body.setdefault("apiVersion", rt.api_version)
        body.setdefault("kind", rt.kind)
        if body["apiVersion"] != rt.api_version:
            raise bad_request(f"the API version in the data ({body['apiVersion']}) does not match the expected "
                              f"API version ({rt.api_version})")
        if body["kind"] != rt.kind:
            raise bad_request(f"the kind in the data ({body['kind']}) does not match the expected kind ({rt.kind})")

    def create_object(self, rt: ResourceType, namespace: str | None, body: Any, *, strict: bool = False,
                      dry_run: bool = False) -> dict[str, Any]:
        """Admission, defaulting, validation and storage of a new object, as POST does it."""
        if not isinstance(body, dict):
            raise bad_request(f"the body of the request was not a JSON object for a {rt.kind}")
        body = copy.deepcopy(body)
        self._fill_gvk(body, rt)
        meta = body.get("metadata")
        if meta is None:
            meta = body["metadata"] = {}
        if not isinstance(meta, dict):
            raise bad_request(f"{rt.kind} in version \"{rt.version}\" cannot be handled as a {rt.kind}: json: "
                              "cannot unmarshal into Go struct field .metadata of type v1.ObjectMeta")
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = str(meta["generateName"]) + "".join(secrets.choice(_GENERATE_ALPHABET) for _ in range(5))
        if rt.namespaced:
            assert namespace is not None
            if meta.get("namespace") and meta["namespace"] != namespace:
                raise bad_request("the namespace of the provided object does not match the namespace sent on the "
                                  "request")
            meta["namespace"] = namespace
        else:
            meta.pop("namespace", None)
        if rt is self.secrets_rt:
            normalize_secret(body)
        if rt is self.services_rt:
            default_service(body, {str((s.get("spec") or {}).get("clusterIP")) for s in self.store.list(rt)})
        if rt.builtin:
            validation.validate(body, strict=strict, name_is_label=rt.name_is_label)
        else:
            validation.semantic_check(body, name_is_label=rt.name_is_label)
        if rt.namespaced:
            assert namespace is not None
            self._check_namespace(rt, namespace, str(meta["name"]))
        for key in ("resourceVersion", "deletionTimestamp", "deletionGracePeriodSeconds", "selfLink"):
            meta.pop(key, None)
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = now()
        if rt.status_subresource and rt is not self.namespaces_rt:
            body.pop("status", None)
        if rt is self.pods_rt:
            assert namespace is not None
            self.admission.mutate(body, namespace)
            self._default_pod(body)
            self._admit_service_account(body)
            self.admission.validate(body, namespace)
        elif rt is self.namespaces_rt:
            body.setdefault("spec", {})["finalizers"] = ["kubernetes"]
            body["status"] = {"phase": "Active"}
            meta.setdefault("labels", {})["kubernetes.io/metadata.name"] = meta["name"]
        if rt is self.pods_rt or not rt.builtin or rt.group == "apps":
            meta["generation"] = 1
        if dry_run:
            return body
        created = self.store.create(rt, body)
        if rt is self.namespaces_rt:
            self.store.create(self.sa_rt, {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {
                "name": "default", "namespace": meta["name"], "uid": str(uuid.uuid4()), "creationTimestamp": now()}})
        elif rt is self.pods_rt:
            assert self.kubelet is not None
            self.kubelet.pod_created(created)
        return created

    def _default_pod(self, pod: dict[str, Any]) -> None:
        spec = pod.setdefault("spec", {})
        spec.setdefault("restartPolicy", "Always")
        spec.setdefault("terminationGracePeriodSeconds", 30)
        spec.setdefault("dnsPolicy", "ClusterFirst")
        spec.setdefault("securityContext", {})
        spec.setdefault("schedulerName", "default-scheduler")
        account = spec.get("serviceAccountName") or spec.get("serviceAccount") or "default"
        spec["serviceAccountName"] = spec["serviceAccount"] = account
        spec.setdefault("enableServiceLinks", True)
        spec.setdefault("priority", 0)
        spec.setdefault("preemptionPolicy", "PreemptLowerPriority")
        spec.setdefault("tolerations", [
            {"key": f"node.kubernetes.io/{t}", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}
            for t in ("not-ready", "unreachable")])
        qos_parts: list[str] = []
        for c in spec.get("containers", []):
            image = str(c.get("image", ""))
            tagged = ":" in image.rsplit("/", 1)[-1] or "@" in image
            latest = not tagged or image.endswith(":latest")
            c.setdefault("imagePullPolicy", "Always" if latest else "IfNotPresent")
            c.setdefault("terminationMessagePath", "/dev/termination-log")
            c.setdefault("terminationMessagePolicy", "File")
            resources = c.setdefault("resources", {})
            limits = resources.get("limits") or {}
            requests = resources.setdefault("requests", {}) if limits else resources.get("requests") or {}
            for key, value in limits.items():
                requests.setdefault(key, value)
            if not limits and not requests:
                qos_parts.append("BestEffort")
            elif all(k in limits and str(limits[k]) == str(requests.get(k)) for k in ("cpu", "memory")):
                qos_parts.append("Guaranteed")
            else:
                qos_parts.append("Burstable")
        qos = ("BestEffort" if all(q == "BestEffort" for q in qos_parts)
               else "Guaranteed" if all(q == "Guaranteed" for q in qos_parts) else "Burstable")
        pod["status"] = {"phase": "Pending", "qosClass": qos}

    def _admit_service_account(self, pod: dict[str, Any]) -> None:
        ns = pod["metadata"]["namespace"]
        account = pod["spec"]["serviceAccountName"]
        if self.store.find(self.sa_rt, ns, account) is None:
            raise forbidden("pods", "", pod["metadata"]["name"], f"error looking up service account {ns}/{account}: "
                            f'serviceaccount "{account}" not found')

    def delete_object(self, rt: ResourceType, namespace: str | None, name: str, grace: int | None = None,
                      dry_run: bool = False, preconditions: Preconditions | None = None
                      ) -> tuple[dict[str, Any], bool]:
        """Delete as the API does; returns (object or Status, whether the object itself is the answer).

        ``preconditions`` (DeleteOptions.preconditions) must hold for the stored object, else 409 Conflict with the
        storage layer's wording, and nothing is deleted."""
        obj = self.store.get(rt, namespace or "", name)
        if preconditions is not None:
            self._check_preconditions(rt, obj, preconditions)
        if dry_run:
            return obj, rt.returns_deleted_object
        if rt is self.pods_rt:
            return self._delete_pod(obj, grace), True
        if rt is self.namespaces_rt:
            return self._delete_namespace(obj), True
        removed = self.store.remove(rt, namespace or "", name)
        self._collect_garbage(removed)
        details: dict[str, Any] = {"name": name}
        if rt.group:
            details["group"] = rt.group
        details["kind"] = rt.plural
        details["uid"] = removed["metadata"]["uid"]
        return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details}, False

    def _check_preconditions(self, rt: ResourceType, obj: dict[str, Any], wanted: Preconditions) -> None:
        meta = obj["metadata"]
        name, namespace = meta["name"], meta.get("namespace")
        prefix = f"/registry/{rt.group}/{rt.plural}" if not rt.builtin else f"/registry/{rt.plural}"
        key = f"{prefix}/{namespace}/{name}" if rt.namespaced else f"{prefix}/{name}"
        for field, value, actual in (("UID", wanted.uid, meta.get("uid", "")),
                                     ("ResourceVersion", wanted.resource_version, meta.get("resourceVersion", ""))):
            if value is not None and value != actual:
                raise precondition_failed(rt.plural, rt.group, key, name, field, value, actual)

    def _delete_pod(self, pod: dict[str, Any], grace: int | None) -> dict[str, Any]:
        assert self.kubelet is not None
        meta = pod["metadata"]
        if meta.get("deletionTimestamp"):
            return pod
        if grace is None:
            grace = int(pod["spec"].get("terminationGracePeriodSeconds", 30))
        uid = meta["uid"]
        if grace <= 0 or not self.kubelet.is_bound(uid):
            removed = self.store.remove(self.pods_rt, meta["namespace"], meta["name"])
            self.kubelet.pod_deleted(uid, 0, remove_object=False)
            removed["metadata"]["deletionTimestamp"] = now()
            removed["metadata"]["deletionGracePeriodSeconds"] = 0
            self._collect_garbage(removed)
            return removed
        deadline = (_dt.datetime.now(_dt.UTC) + _dt.timedelta(seconds=grace)).strftime("%Y-%m-%dT%H:%M:%SZ")

        def mark(p: dict[str, Any]) -> None:
            p["metadata"]["deletionTimestamp"] = deadline
            p["metadata"]["deletionGracePeriodSeconds"] = grace

        updated = self.store.mutate(self.pods_rt, meta["namespace"], meta["name"], mark)
        self.kubelet.pod_deleted(uid, grace, remove_object=True)
        self._collect_garbage(pod)
        return updated or pod

    def _delete_namespace(self, ns: dict[str, Any]) -> dict[str, Any]:
        name = ns["metadata"]["name"]
        if name in _PROTECTED_NAMESPACES:
            raise forbidden("namespaces", "", name, "this namespace may not be deleted")
        if ns["metadata"].get("deletionTimestamp"):
            raise conflict("namespaces", "", name, "The system is ensuring all content is removed from this "
                           "namespace.  Upon completion, this namespace will automatically be purged by the system.")

        def terminate(obj: dict[str, Any]) -> None:
            obj["metadata"]["deletionTimestamp"] = now()
            obj["status"]["phase"] = "Terminating"

        updated = self.store.mutate(self.namespaces_rt, "", name, terminate)
        self.spawn(self._purge_namespace(name))
        return updated or ns

    async def _purge_namespace(self, name: str) -> None:
        """The namespace controller: delete all content (pods gracefully), then the namespace itself."""
        assert self.kubelet is not None
        waits: list[asyncio.Task[None]] = []
        for rt in list(self.types.values()):
            if not rt.namespaced or rt is self.events_rt:
                continue
            for obj in self.store.list(rt, name):
                with contextlib.suppress(ApiError):
                    if rt is self.pods_rt:
                        uid = obj["metadata"]["uid"]
                        if not obj["metadata"].get("deletionTimestamp"):
                            self._delete_pod(obj, None)
                        worker_task = self.kubelet.termination_of(uid)
                        if worker_task is not None:
                            waits.append(worker_task)
                    else:
                        self.store.remove(rt, name, obj["metadata"]["name"])
        if waits:
            await asyncio.gather(*waits, return_exceptions=True)
        for pod in self.store.list(self.pods_rt, name):
            with contextlib.suppress(ApiError):
                self.store.remove(self.pods_rt, name, pod["metadata"]["name"])
        for event in self.store.list(self.events_rt, name):
            self.store.remove(self.events_rt, name, event["metadata"]["name"])
        with contextlib.suppress(ApiError):
            self.store.remove(self.namespaces_rt, "", name)

    def _collect_garbage(self, owner: dict[str, Any]) -> None:
        """Background cascading deletion of objects whose ownerReferences name ``owner``."""
        uid = owner["metadata"].get("uid")
        namespace = owner["metadata"].get("namespace")
        for rt in list(self.types.values()):
            if not rt.namespaced:
                continue
            for obj in self.store.list(rt, namespace):
                refs = obj["metadata"].get("ownerReferences") or []
                if any(ref.get("uid") == uid for ref in refs):
                    with contextlib.suppress(ApiError):
                        self.delete_object(rt, obj["metadata"]["namespace"], obj["metadata"]["name"])

    def replace_object(self, rt: ResourceType, namespace: str | None, name: str, new: Any, subresource: str | None,
                       *, strict: bool = False) -> dict[str, Any]:
        """PUT semantics (PATCH lands here too): optimistic concurrency, status/spec split, validation."""
        if not isinstance(new, dict):
            raise bad_request(f"the body of the request was not a JSON object for a {rt.kind}")
        current = self.store.get(rt, namespace or "", name)
        new = copy.deepcopy(new)
        self._fill_gvk(new, rt)
        meta = new.setdefault("metadata", {})
        if meta.get("name", name) != name:
            raise bad_request(f"the name of the object ({meta.get('name')}) does not match the name on the URL "
                              f"({name})")
        wanted_rv = meta.get("resourceVersion")
        if wanted_rv and wanted_rv != current["metadata"]["resourceVersion"]:
            raise conflict(rt.plural, rt.group, name,
                           "the object has been modified; please apply your changes to the latest version and try "
                           "again")
        if subresource == "status":
            result = copy.deepcopy(current)
            result["status"] = new.get("status")
            if result["status"] is None:
                result.pop("status")
        else:
            result = new
            for key in ("uid", "creationTimestamp", "namespace", "deletionTimestamp", "deletionGracePeriodSeconds",
                        "generation"):
                if key in current["metadata"]:
                    meta[key] = current["metadata"][key]
                else:
                    meta.pop(key, None)
            if rt.status_subresource:
                if "status" in current:
                    result["status"] = current["status"]
                else:
                    result.pop("status", None)
            if rt is self.pods_rt:
                self._check_pod_update(current, result)
            if rt is self.secrets_rt:
                normalize_secret(result)
            if rt in (self.secrets_rt, self.configmaps_rt):
                check_immutable(rt.kind, current, result)
            if "generation" in meta and result.get("spec") != current.get("spec"):
                meta["generation"] = int(meta["generation"]) + 1
        if rt.builtin:
            validation.validate(result, strict=strict, name_is_label=rt.name_is_label)
        result["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
        return self.store.update(rt, result)

    def _check_pod_update(self, current: dict[str, Any], new: dict[str, Any]) -> None:
        old_spec = copy.deepcopy(current.get("spec") or {})
        new_spec = copy.deepcopy(new.get("spec") or {})
        for spec in (old_spec, new_spec):
            for c in spec.get("containers", []):
                c.pop("image", None)
            spec.pop("activeDeadlineSeconds", None)
            spec.pop("tolerations", None)
        if old_spec != new_spec:
            from .errors import invalid

            raise invalid("Pod", "", current["metadata"]["name"], [{
                "reason": "FieldValueForbidden", "field": "spec",
                "message": "Forbidden: pod updates may not change fields other than `spec.containers[*].image`,"
                           "`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only "
                           "additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be "
                           "set to 1 if it was previously negative)"}])

    # -- HTTP ---------------------------------------------------------------------------------------------

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        try:
            user = self.authn.authenticate(request)
            if user is None:
                raise ApiError(401, "Unauthorized", "Unauthorized")
            request[_USER] = user
            info = request_info(request.method, request.path, request.query)
            self.rbac.check(Attributes(user, info))
            if info.api_group == AUTHORIZATION_GROUP and request.method == "POST" and not info.name:
                rt = self.types.get((info.api_group, info.resource))
                if rt is not None:
                    body = (protobuf.decode_review(await request.read())
                            if request.content_type == protobuf.CONTENT_TYPE else await self._body(request))
                    return _json(self.rbac.access_review(user, rt.kind, body), 201)
            if info.path.rstrip("/").startswith("/openapi/v3"):
                return self._openapi(info.path)
            return await self._route(request)
        except ApiError as err:
            return _json(err.status(), err.code)
        except (ConnectionResetError, asyncio.CancelledError):
            raise
        except Exception as err:
            log.exception("kubelite: internal error on %s %s", request.method, request.path)
            return _json(ApiError(500, f"Internal error occurred: {err}", "InternalError").status(), 500)

    async def _route(self, request: web.Request) -> web.StreamResponse:
        parts = [p for p in request.path.split("/") if p]
        if not parts:
            return _json({"paths": ["/api", "/api/v1", "/apis", "/version", "/healthz"]})
        head = parts[0]
        if head == "version":
            return _json(KUBERNETES_VERSION)
        if head in ("healthz", "readyz", "livez"):
            return web.Response(text="ok")
        if head == "api":
            if len(parts) == 1:
                return _json({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [
                    {"clientCIDR": "0.0.0.0/0", "serverAddress": f"{self.host}:{self.port}"}]})
            group, version, rest = "", parts[1], parts[2:]
        elif head == "apis":
            if len(parts) == 1:
                return _json(self._group_list())
            if len(parts) == 2:
                groups = [g for g in self._group_list()["groups"] if g["name"] == parts[1]]
                if not groups:
                    raise resource_missing()
                return _json({"kind": "APIGroup", "apiVersion": "v1", **groups[0]})
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            raise resource_missing()
        if not rest:
            return _json(self._resource_list(group, version))
        if rest[0] == "namespaces" and len(rest) >= 3 and rest[2] not in ("status", "finalize"):
            namespace: str | None = rest[1]
            plural, name, sub = rest[2], (rest[3] if len(rest) > 3 else None), (rest[4] if len(rest) > 4 else None)
            extra = rest[5:]
        else:
            namespace = None
            plural, name, sub = rest[0], (rest[1] if len(rest) > 1 else None), (rest[2] if len(rest) > 2 else None)
            extra = rest[3:]
        rt = self.types.get((group, plural))
        if rt is None or rt.version != version or extra or (not rt.namespaced and namespace is not None):
            raise resource_missing()
        if rt.namespaced and namespace is None and (name is not None or request.method == "POST"):
            raise resource_missing()
        method = request.method
        self._authorize(_verb(method, name, request), rt, namespace, name, sub)
        if name is None:
            if method == "GET":
                return await self._list(request, rt, namespace)
            if method == "POST":
                body = await self._body(request)
                self._check_grant(request, rt, namespace, body)
                created = self.create_object(rt, namespace, body, strict=self._strict(request),
                                             dry_run=self._dry_run(request))
                return _json(created, 201)
            if method == "DELETE":
                return await self._delete_collection(request, rt, namespace)
            raise ApiError(405, "the server does not allow this method on the requested resource", "MethodNotAllowed")
        if sub is None:
            if method == "GET":
                return _json(self.store.get(rt, namespace or "", name))
            if method == "DELETE":
                grace, dry, preconditions = await self._delete_options(request)
                obj, _ = self.delete_object(rt, namespace, name, grace, dry, preconditions)
                return _json(obj, 200)
            if method in ("PUT", "PATCH"):
                return await self._update(request, rt, namespace, name, None)
        elif sub == "status" and (rt.status_subresource or method == "GET"):
            if method == "GET":
                return _json(self.store.get(rt, namespace or "", name))
            if method in ("PUT", "PATCH"):
                return await self._update(request, rt, namespace, name, "status")
        elif sub == "log" and rt is self.pods_rt and method == "GET":
            return await self._logs(request, namespace or "", name)
        raise resource_missing()

    def _openapi(self, path: str) -> web.Response:
        """``/openapi/v3`` and ``/openapi/v3/api/v1``, ``/openapi/v3/apis/{group}/{version}``."""
        rest = [p for p in path.split("/") if p][2:]
        if not rest:
            return _json(openapi.root(self.types.values()))
        doc = None
        if rest[0] == "api" and len(rest) == 2:
            doc = openapi.group_version(self.types.values(), "", rest[1])
        elif rest[0] == "apis" and len(rest) == 3:
            doc = openapi.group_version(self.types.values(), rest[1], rest[2])
        if doc is None:
            raise resource_missing()
        return _json(doc)

    def _check_grant(self, request: web.Request, rt: ResourceType, namespace: str | None, body: Any) -> None:
        """RBAC objects grant only what their sender holds (or may ``bind`` / ``escalate``)."""
        if rt.group == RBAC_GROUP and isinstance(body, dict):
            self.rbac.check_grant(request[_USER], rt.plural, namespace, body)

    def _strict(self, request: web.Request) -> bool:
        return request.query.get("fieldValidation") == "Strict"

    def _dry_run(self, request: web.Request) -> bool:
        return "All" in request.query.getall("dryRun", [])

    async def _body(self, request: web.Request) -> Any:
        raw = await request.read()
        if not raw:
            return {}
        if request.content_type == protobuf.CONTENT_TYPE:  # only access reviews are decoded (see protobuf.py)
            raise ApiError(415, "the body of the request was in an unknown format - accepted media types include: "
                           "application/json, application/yaml", "UnsupportedMediaType")
        try:
            return json.loads(raw)
        except ValueError as err:
            raise bad_request(f"the body of the request was in an unknown format - accepted media types include: "
                              f"application/json, application/yaml ({err})") from None

    async def _delete_options(self, request: web.Request) -> tuple[int | None, bool, Preconditions | None]:
        """(gracePeriodSeconds, dry run, preconditions) from the query and the DeleteOptions body."""
        options = await self._body(request) if request.can_read_body else {}
        if not isinstance(options, dict):
            raise bad_request("the body of the request was not a JSON object for a DeleteOptions")
        grace: Any = request.query.get("gracePeriodSeconds", options.get("gracePeriodSeconds"))
        dry = self._dry_run(request) or "All" in (options.get("dryRun") or [])
        try:
            grace = int(grace) if grace is not None else None
        except ValueError:
            raise bad_request(f"invalid gracePeriodSeconds: {grace}") from None
        raw = options.get("preconditions")
        if raw is None:
            return grace, dry, None
        if not isinstance(raw, dict) or not all(isinstance(raw.get(k), str | None) for k in ("uid", "resourceVersion")):
            raise bad_request("DeleteOptions.preconditions: uid and resourceVersion must be strings")
        return grace, dry, Preconditions(uid=raw.get("uid"), resource_version=raw.get("resourceVersion"))

    async def _update(self, request: web.Request, rt: ResourceType, namespace: str | None, name: str,
                      sub: str | None) -> web.Response:
        body = await self._body(request)
        if request.method == "PATCH" and request.content_type == APPLY_PATCH and sub is None:
            return await self._apply(request, rt, namespace, name, body)
        if request.method == "PATCH":
            ctype = request.content_type
            current = self.store.get(rt, namespace or "", name)
            if ctype == "application/json-patch+json":
                body = json_patch(current, body)
            elif ctype == "application/merge-patch+json" or (
                    ctype == "application/strategic-merge-patch+json" and rt.builtin):
                body = merge_patch(current, body)
            else:
                accepted = f"application/json-patch+json, application/merge-patch+json, {APPLY_PATCH}"
                if rt.builtin:
                    accepted += ", application/strategic-merge-patch+json"
                raise ApiError(415, f"the body of the request was in an unknown format - accepted media types "
                               f"include: {accepted}", "UnsupportedMediaType")
            body.setdefault("metadata", {}).pop("resourceVersion", None)
        if sub is None:
            self._check_grant(request, rt, namespace, body)
        return _json(self.replace_object(rt, namespace, name, body, sub, strict=self._strict(request)))

    async def _apply(self, request: web.Request, rt: ResourceType, namespace: str | None, name: str,
                     body: Any) -> web.Response:
        """Server-side apply, as far as a single field manager needs it (spark-submit's fabric8 client applies the
        driver's Service and ConfigMap with ``forceConflicts()``): a missing object is created (201), an existing one
        gets the applied fields merged in (200). Managed fields, ownership conflicts and list merge keys are not
        tracked (README: not emulated)."""
        if not isinstance(body, dict) or (body.get("metadata") or {}).get("name", name) != name:
            raise bad_request("the name of the object does not match the name on the URL")
        if not request.query.get("fieldManager"):
            raise bad_request("PATCH /apply requires a non-empty fieldManager query parameter")
        if self.store.find(rt, namespace or "", name) is None:
            body.setdefault("metadata", {})["name"] = name
            self._check_grant(request, rt, namespace, body)
            created = self.create_object(rt, namespace, body, strict=self._strict(request),
                                         dry_run=self._dry_run(request))
            return _json(created, 201)
        merged = merge_patch(self.store.get(rt, namespace or "", name), body)
        merged.setdefault("metadata", {}).pop("resourceVersion", None)
        self._check_grant(request, rt, namespace, merged)
        return _json(self.replace_object(rt, namespace, name, merged, None, strict=self._strict(request)))

    def _selectors(self, request: web.Request, rt: ResourceType) -> Any:
        labels = parse_label_selector(request.query.get("labelSelector"))
        fields = parse_field_selector(request.query.get("fieldSelector"), rt.fields)

        def match(obj: dict[str, Any]) -> bool:
            return labels_match(labels, obj["metadata"].get("labels")) and fields_match(fields, rt.fields, obj)

        return match

    async def _list(self, request: web.Request, rt: ResourceType, namespace: str | None) -> web.StreamResponse:
        match = self._selectors(request, rt)
        if _truthy(request.query.get("watch")):
            return await self._watch(request, rt, namespace, match)
        items = [o for o in self.store.list(rt, namespace) if match(o)]
        start = 0
        if request.query.get("continue"):
            try:
                start = int(json.loads(base64.urlsafe_b64decode(request.query["continue"]))["start"])
            except (ValueError, KeyError, TypeError):
                raise bad_request("continue key is not valid: illegal base64 data") from None
        meta: dict[str, Any] = {"resourceVersion": str(self.store.revision)}
        limit = int(request.query.get("limit", "0") or 0)
        page = items[start:]
        if limit > 0 and len(page) > limit:
            page = page[:limit]
            token = json.dumps({"start": start + limit, "rv": self.store.revision}).encode()
            meta["continue"] = base64.urlsafe_b64encode(token).decode()
            meta["remainingItemCount"] = len(items) - start - limit
        if tables.wants_table(request.headers.get("Accept", "")):
            return _json(tables.table(rt, page, meta))
        if rt.builtin:
            for item in page:
                item.pop("kind", None)
                item.pop("apiVersion", None)
        return _json({"kind": f"{rt.kind}List", "apiVersion": rt.api_version, "metadata": meta, "items": page})

    async def _watch(self, request: web.Request, rt: ResourceType, namespace: str | None,
                     match: Any) -> web.StreamResponse:
        since = self.store.parse_rv(request.query.get("resourceVersion"))
        timeout = float(request.query.get("timeoutSeconds") or 1800)
        response = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        changes = self.store.watch(rt, namespace, since)

        as_table = tables.wants_table(request.headers.get("Accept", ""))
        sent: list[str] = []

        async def send(kind: str, obj: dict[str, Any]) -> None:
            if as_table and kind not in ("ERROR", "BOOKMARK"):  # one-row Tables, the columns in the first
                obj = tables.table(rt, [obj], {"resourceVersion": obj["metadata"].get("resourceVersion", "")},
                                   with_columns=not sent)
                sent.append(kind)
            await response.write(json.dumps({"type": kind, "object": obj}).encode() + b"\n")

        bookmarks = self.bookmark_interval if _truthy(request.query.get("allowWatchBookmarks")) else None
        try:
            with self.watches.register() as silenced:
                async with asyncio.timeout(timeout):
                    await stream_changes(response, changes, lambda change: _translate(change, match), kind=rt.kind,
                                         api_version=rt.api_version, bookmark_every=bookmarks,
                                         revision=lambda: self.store.revision, silenced=silenced, send=send)
        except TimeoutError:
            pass
        except ApiError as err:
            with contextlib.suppress(ConnectionError):
                await response.write(json.dumps({"type": "ERROR", "object": err.status()}).encode() + b"\n")
        except (ConnectionResetError, ConnectionError):
            return response
        finally:
            await changes.aclose()
        with contextlib.suppress(ConnectionError):
            await response.write_eof()
        return response

    async def _delete_collection(self, request: web.Request, rt: ResourceType,
                                 namespace: str | None) -> web.Response:
        match = self._selectors(request, rt)
        grace, dry, preconditions = await self._delete_options(request)
        deleted = []
        for obj in self.store.list(rt, namespace):
            if match(obj):
                with contextlib.suppress(ApiError):
                    self.delete_object(rt, obj["metadata"].get("namespace"), obj["metadata"]["name"],
                                       grace, dry, preconditions)
                    deleted.append(obj)
        return _json({"kind": f"{rt.kind}List", "apiVersion": rt.api_version,
                      "metadata": {"resourceVersion": str(self.store.revision)}, "items": deleted})

    async def _logs(self, request: web.Request, namespace: str, name: str) -> web.StreamResponse:
        assert self.kubelet is not None
        pod = self.store.get(self.pods_rt, namespace, name)
        names = [c["name"] for c in pod["spec"]["containers"]]
        container_name = request.query.get("container")
        if not container_name:
            if len(names) != 1:
                raise bad_request(f"a container name must be specified for pod {name}, choose one of: "
                                  f"[{' '.join(names)}]")
            container_name = names[0]
        if container_name not in names:
            raise bad_request(f"container {container_name} is not valid for pod {name}")
        containers = [c for c in await self.kubelet.containers_of(pod["metadata"]["uid"])
                      if (c["Labels"] or {}).get("io.kubernetes.container.name") == container_name]
        if not containers:
            statuses = {s["name"]: s for s in (pod.get("status") or {}).get("containerStatuses") or []}
            waiting = statuses.get(container_name, {}).get("state", {}).get("waiting", {})
            reason = waiting.get("reason", "ContainerCreating")
            raise bad_request(f'container "{container_name}" in pod "{name}" is waiting to start: {reason}')
        tail = request.query.get("tailLines")
        kwargs: dict[str, Any] = {"stdout": True, "stderr": True, "tail": tail or "all"}
        if _truthy(request.query.get("follow")):
            response = web.StreamResponse(status=200, headers={"Content-Type": "text/plain"})
            await response.prepare(request)
            with contextlib.suppress(ConnectionError):
                async for chunk in containers[0].log(follow=True, **kwargs):
                    await response.write(chunk.encode())
                await response.write_eof()
            return response
        lines = await containers[0].log(**kwargs)
        return web.Response(text="".join(lines), content_type="text/plain")

    def _group_list(self) -> dict[str, Any]:
        groups: dict[str, set[str]] = {}
        for rt in self.types.values():
            if rt.group:
                groups.setdefault(rt.group, set()).add(rt.version)
        out = []
        for name, versions in sorted(groups.items()):
            vs = [{"groupVersion": f"{name}/{v}", "version": v} for v in sorted(versions)]
            out.append({"name": name, "versions": vs, "preferredVersion": vs[0]})
        return {"kind": "APIGroupList", "apiVersion": "v1", "groups": out}

    def _resource_list(self, group: str, version: str) -> dict[str, Any]:
        resources = []
        for rt in self.types.values():
            if rt.group != group or rt.version != version:
                continue
            verbs = list(rt.verbs)
            resources.append({"name": rt.plural, "singularName": rt.kind.lower(), "namespaced": rt.namespaced,
                              "kind": rt.kind, "verbs": verbs, **({"shortNames": list(rt.short_names)}
                                                                  if rt.short_names else {})})
            if rt.status_subresource:
                resources.append({"name": f"{rt.plural}/status", "singularName": "", "namespaced": rt.namespaced,
                                  "kind": rt.kind, "verbs": ["get", "patch", "update"]})
            if rt is self.pods_rt:
                resources.append({"name": "pods/log", "singularName": "", "namespaced": True, "kind": "Pod",
                                  "verbs": ["get"]})
        if not resources:
            raise resource_missing()
        gv = f"{group}/{version}" if group else version
        return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}


def _verb(method: str, name: str | None, request: web.Request) -> str:
    """The RBAC verb of a request."""
    if method == "GET":
        if name is not None:
            return "get"
        return "watch" if _truthy(request.query.get("watch")) else "list"
    if method == "DELETE":
        return "delete" if name is not None else "deletecollection"
    return {"POST": "create", "PUT": "update", "PATCH": "patch"}.get(method, method.lower())


def _translate(change: Change, match: Any) -> str | None:
    """Selector-filtered watch event type: objects moving into or out of the selection appear or disappear."""
    if change.type == "ADDED":
        return "ADDED" if match(change.obj) else None
    if change.type == "DELETED":
        return "DELETED" if match(change.obj) else None
    now_in = match(change.obj)
    was_in = change.old is not None and match(change.old)
    if now_in and was_in:
        return "MODIFIED"
    if now_in:
        return "ADDED"
    if was_in:
        return "DELETED"
    return None


def _memory_capacity() -> Decimal:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return Decimal(int(line.split()[1]) * 1024)
    except OSError:
        pass
    return Decimal(0)
