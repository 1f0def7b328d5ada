"""Scheduler and kubelet for one node: each pod becomes real Docker containers, and the pod's status and events
follow what the containers do, worded as a real kubelet words them."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import aiodocker
from aiodocker.containers import DockerContainer

from .clock import docker_time, now
from .events import EventRecorder
from .incluster import DIRECTORY as API_ACCESS_DIRECTORY
from .incluster import MOUNT_PATH as API_ACCESS_MOUNT_PATH
from .incluster import ApiAccess, automounts, mounts_it_itself, write_directory
from .network import PodIPs
from .pod_dns import service_hosts
from .probes import ReadinessProbe
from .quantity import parse_quantity
from .resources import BUILTINS, ResourceType
from .scheduling import describe_taint, matches_node, untolerated_taint
from .secret_data import EnvConfigError, container_env
from .store import Store
from .volumes import MountError, PodVolumes

log = logging.getLogger("kubelite.kubelet")

T = TypeVar("T")

#: Annotations that make kubelite simulate failures a real cluster would produce.
UNSCHEDULABLE_ANNOTATION = "kubelite.io/unschedulable"
PULL_ERROR_ANNOTATION = "kubelite.io/image-pull-error"
#: A registry that blips: the first N pulls fail with a retryable error (503), then the image is pulled.
PULL_FLAKY_ANNOTATION = "kubelite.io/image-pull-flaky"
#: A kubelet whose Secret cache lags: the first N container creations do not see any Secret yet.
SECRET_CACHE_MISSES_ANNOTATION = "kubelite.io/secret-cache-misses"

LABEL_MANAGED = "kubelite"
LABEL_INSTANCE = "kubelite.instance"
LABEL_POD_NAME = "io.kubernetes.pod.name"
LABEL_POD_NAMESPACE = "io.kubernetes.pod.namespace"
LABEL_POD_UID = "io.kubernetes.pod.uid"
LABEL_CONTAINER_NAME = "io.kubernetes.container.name"

#: The core types a container's environment may refer to (secretKeyRef, configMapKeyRef).
_CORE_TYPES = {rt.plural: rt for rt in BUILTINS if not rt.group and rt.plural in ("secrets", "configmaps")}

_PREEMPTION = "preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling."


@dataclass
class NodeConfig:
    name: str = "kubelite"
    ip: str = "127.0.0.1"
    instance: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    unschedulable: bool = False
    pull_backoff: tuple[float, float] = (1.0, 10.0)
    restart_backoff: tuple[float, float] = (1.0, 10.0)
    cpu_capacity: Decimal = Decimal(os.cpu_count() or 1)
    #: The Docker network pods get their IPs on (``network.PodNetwork``; Docker's default bridge without one).
    pod_network: str = "bridge"
    #: Addresses given to pods before their containers exist (``network.PodIPs``; None: Docker's at start).
    pod_ips: PodIPs | None = None
    #: The node's taints (``{"key", "value", "effect"}``), checked against pods' tolerations by the scheduler.
    taints: list[dict[str, Any]] = field(default_factory=list)
    #: Where emptyDir, configMap and secret volumes live on the node (``volumes.PodVolumes``).
    volume_root: Path = field(default_factory=lambda: Path(tempfile.gettempdir()) / "kubelite-volumes")
    memory_capacity: Decimal = Decimal(0)
    posting_status: bool = True  # False while the node is lost (node_lifecycle.py): pod statuses freeze
    #: How pods reach the API (service-account mount and variables; ``incluster.py``), set once the API serves.
    api_access: ApiAccess | None = None


def normalize_image(image: str) -> str:
    """The fully qualified reference containerd reports in pull errors (``docker.io/library/x:latest``)."""
    name, _, digest = image.partition("@")
    last = name.rsplit("/", 1)[-1]
    if ":" not in last and not digest:
        name += ":latest"
    first = name.split("/", 1)[0]
    if "/" not in name:
        name = "docker.io/library/" + name
    elif not ("." in first or ":" in first or first == "localhost"):
        name = "docker.io/" + name
    return name + (f"@{digest}" if digest else "")


def expand(text: str, env: dict[str, str]) -> str:
    """Kubernetes ``$(VAR)`` expansion in command/args: ``$$`` escapes, unknown references stay as written."""

    def repl(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        return env.get(m.group(1), m.group(0))

    return re.sub(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)", repl, text)


def _count(value: object) -> int:
    """A non-negative count from an annotation (anything else is 0)."""
    try:
        return max(0, int(str(value)))
    except ValueError:
        return 0


def _condition(type_: str, status: bool, reason: str | None = None, message: str | None = None) -> dict[str, Any]:
    cond: dict[str, Any] = {"type": type_, "status": "True" if status else "False", "lastProbeTime": None,
                            "lastTransitionTime": now()}
    if reason:
        cond["reason"] = reason
    if message:
        cond["message"] = message
    return cond


@dataclass
class _Container:
    spec: dict[str, Any]
    docker: DockerContainer | None = None
    state: dict[str, Any] = field(default_factory=lambda: {"waiting": {"reason": "ContainerCreating"}})
    last_state: dict[str, Any] = field(default_factory=dict)
    restart_count: int = 0
    image_id: str = ""
    done: bool = False
    readiness: ReadinessProbe | None = None  # a readiness probe kubelite runs (probes.py)

    def __post_init__(self) -> None:
        probe = self.spec.get("readinessProbe")
        if probe:
            readiness = ReadinessProbe(probe, self.spec)
            self.readiness = readiness if readiness.runnable else None

    @property
    def name(self) -> str:
        return str(self.spec["name"])

    @property
    def ready(self) -> bool:
        return "running" in self.state and (self.readiness is None or self.readiness.ready)

    def status(self) -> dict[str, Any]:
        running = "running" in self.state
        out: dict[str, Any] = {
            "name": self.name, "state": self.state, "lastState": self.last_state, "ready": self.ready,
            "restartCount": self.restart_count, "image": self.spec.get("image"), "imageID": self.image_id,
            "started": running,
        }
        if self.docker is not None:
            out["containerID"] = f"docker://{self.docker.id}"
        return out


class PodWorker:
    """Drives one pod from scheduling to deletion. Docker calls are shielded so cancelling never orphans one."""

    def __init__(self, kubelet: Kubelet, pod: dict[str, Any]) -> None:
        self.k = kubelet
        meta = pod["metadata"]
        self.ns: str = meta["namespace"]
        self.name: str = meta["name"]
        self.uid: str = meta["uid"]
        self.pod = pod
        self.spec: dict[str, Any] = pod["spec"]
        self.containers = [_Container(c) for c in self.spec.get("containers", [])]
        self.terminating = False
        self.phase_override: str | None = None
        self.pod_ip: str | None = None
        self.reserved_ip: str | None = None  # from node.pod_ips, given back when the containers are removed
        self.scheduled = False
        self.started_at: str | None = None
        self._inflight: set[asyncio.Task[Any]] = set()
        self.task: asyncio.Task[None] | None = None
        self.reschedule = asyncio.Event()
        annotations = meta.get("annotations") or {}
        self.flaky_pulls = _count(annotations.get(PULL_FLAKY_ANNOTATION))
        self.secret_cache_misses = _count(annotations.get(SECRET_CACHE_MISSES_ANNOTATION))
        self.volumes = PodVolumes(kubelet.node.volume_root, pod, self._lookup)
        #: The service-account directory and API variables (``incluster.py``), or None without them.
        self.api_access: tuple[str, dict[str, str]] | None = None

    # -- helpers ------------------------------------------------------------------------------------------

    async def _docker(self, make: Callable[[], Awaitable[T]]) -> T:
        async def run() -> T:
            return await make()

        task: asyncio.Task[T] = asyncio.ensure_future(run())
        self._inflight.add(task)
        task.add_done_callback(self._inflight.discard)
        return await asyncio.shield(task)

    def _event(self, type_: str, reason: str, message: str, container: str | None = None,
               component: str = "kubelet") -> None:
        current = self.k.store.find(self.k.pods_rt, self.ns, self.name) or self.pod
        self.k.recorder.record(current, type_, reason, message, component,
                               f"spec.containers{{{container}}}" if container else None)

    def _mutate(self, fn: Callable[[dict[str, Any]], None]) -> None:
        def guarded(pod: dict[str, Any]) -> None:
            if pod["metadata"].get("uid") == self.uid:
                fn(pod)

        self.k.store.mutate(self.k.pods_rt, self.ns, self.name, guarded)

    def _phase(self) -> str:
        if self.phase_override:
            return self.phase_override
        if self.containers and all(c.done for c in self.containers):
            codes = [c.state.get("terminated", {}).get("exitCode", 1) for c in self.containers]
            return "Succeeded" if all(code == 0 for code in codes) else "Failed"
        if any("running" in c.state or c.restart_count or c.done for c in self.containers):
            return "Running"
        return "Pending"

    def publish(self) -> None:
        """Write the pod status the way kubelet's status manager computes it."""
        if not self.k.node.posting_status:
            return  # a lost node's kubelet reaches nobody; node_lifecycle.recover() publishes again
        phase = self._phase()
        ready = phase == "Running" and all(c.ready for c in self.containers)
        if phase in ("Succeeded", "Failed"):
            ready_reason: str | None = "PodCompleted" if phase == "Succeeded" else "PodFailed"
            ready_msg = None
        elif ready:
            ready_reason, ready_msg = None, None
        else:
            ready_reason = "ContainersNotReady"
            unready = ",".join(c.name for c in self.containers if not c.ready)
            ready_msg = f"containers with unready status: [{unready}]"
        sandbox = any(c.docker is not None for c in self.containers) and phase not in ("Succeeded", "Failed")

        def apply(pod: dict[str, Any]) -> None:
            status = pod.setdefault("status", {})
            old = {c["type"]: c for c in status.get("conditions", [])}
            conds = [
                _condition("PodReadyToStartContainers", sandbox),
                _condition("Initialized", True),
                _condition("Ready", ready, ready_reason, ready_msg),
                _condition("ContainersReady", ready, ready_reason, ready_msg),
                _condition("PodScheduled", True),
            ]
            for cond in conds:
                prev = old.get(cond["type"])
                if prev and prev["status"] == cond["status"]:
                    cond["lastTransitionTime"] = prev["lastTransitionTime"]
            status["conditions"] = conds
            status["phase"] = phase
            status["hostIP"] = self.k.node.ip
            status["hostIPs"] = [{"ip": self.k.node.ip}]
            if self.pod_ip:
                status["podIP"] = self.pod_ip
                status["podIPs"] = [{"ip": self.pod_ip}]
            status["startTime"] = self.started_at
            status["containerStatuses"] = [c.status() for c in self.containers]

        self._mutate(apply)

    # -- lifecycle ----------------------------------------------------------------------------------------

    async def run(self) -> None:
        try:
            while not await self._schedule():
                self.reschedule.clear()
                await self.reschedule.wait()
            self.started_at = now()
            self.publish()
            await self._mount_volumes()
            for c in self.containers:
                await self._ensure_image(c)
            for i, c in enumerate(self.containers):
                await self._create_when_configured(c, network_of=self.containers[0] if i else None)
            for c in self.containers:
                await self._start(c)
            await asyncio.gather(*(self._supervise(c) for c in self.containers),
                                 *(self._probe(c) for c in self.containers if c.readiness is not None))
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("kubelite: pod %s/%s failed in the kubelet", self.ns, self.name)

    def _unschedulable_reason(self) -> str | None:
        annotations = self.pod["metadata"].get("annotations") or {}
        if self.k.node.unschedulable or str(annotations.get(UNSCHEDULABLE_ANNOTATION, "")).lower() == "true":
            return f"0/1 nodes are available: 1 node(s) were unschedulable. {_PREEMPTION}"
        if not matches_node(self.spec, self.k.node.labels):
            return f"0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector. {_PREEMPTION}"
        taint = untolerated_taint(self.spec, self.k.node.taints)
        if taint is not None:
            return (f"0/1 nodes are available: 1 node(s) had untolerated taint {describe_taint(taint)}. "
                    f"{_PREEMPTION}")
        for resource, capacity in (("cpu", self.k.node.cpu_capacity), ("memory", self.k.node.memory_capacity)):
            if not capacity:
                continue
            total = Decimal(0)
            for c in self.containers:
                req = (c.spec.get("resources") or {}).get("requests") or {}
                lim = (c.spec.get("resources") or {}).get("limits") or {}
                value = req.get(resource, lim.get(resource))
                if value is not None:
                    with contextlib.suppress(ValueError):
                        total += parse_quantity(value)
            if total > capacity:
                return (f"0/1 nodes are available: 1 Insufficient {resource}. preemption: 0/1 nodes are available: "
                        "1 No preemption victims found for incoming pod.")
        return None

    async def _schedule(self) -> bool:
        reason = self._unschedulable_reason()
        if reason:
            def unschedulable(pod: dict[str, Any]) -> None:
                status = pod.setdefault("status", {})
                status["phase"] = "Pending"
                status["conditions"] = [_condition("PodScheduled", False, "Unschedulable", reason)]

            self._mutate(unschedulable)
            self._event("Warning", "FailedScheduling", reason, component="default-scheduler")
            return False

        def bind(pod: dict[str, Any]) -> None:
            pod["spec"]["nodeName"] = self.k.node.name
            pod.setdefault("status", {})["conditions"] = [_condition("PodScheduled", True)]

        self._mutate(bind)
        self.scheduled = True
        self._event("Normal", "Scheduled", f"Successfully assigned {self.ns}/{self.name} to {self.k.node.name}",
                    component="default-scheduler")
        return True

    async def _ensure_image(self, c: _Container) -> None:
        image = str(c.spec["image"])
        forced = (self.pod["metadata"].get("annotations") or {}).get(PULL_ERROR_ANNOTATION)
        delay, cap = self.k.node.pull_backoff
        ref = normalize_image(image)
        flaky = self.flaky_pulls
        missing = [str(s.get("name")) for s in self.spec.get("imagePullSecrets") or []
                   if self._lookup("secrets", str(s.get("name"))) is None]
        if missing:
            self._event("Warning", "FailedToRetrieveImagePullSecret", f"Unable to retrieve some image pull secrets "
                        f"({', '.join(missing)}); attempting to pull the image may not succeed.")
        while True:
            info: dict[str, Any] | None = None
            if not forced:
                try:
                    info = await self._docker(lambda: self.k.docker.images.inspect(image))
                except aiodocker.DockerError as err:
                    if err.status != 404:
                        raise
            blip = info is not None and self.flaky_pulls > 0
            if info is not None and not blip:
                c.image_id = str(info.get("Id", ""))
                if flaky:
                    self._event("Normal", "Pulling", f'Pulling image "{image}"', c.name)
                    self._event("Normal", "Pulled", f'Successfully pulled image "{image}"', c.name)
                else:
                    self._event("Normal", "Pulled", f'Container image "{image}" already present on machine', c.name)
                return
            if blip:
                self.flaky_pulls -= 1
                error = (f'rpc error: code = Unknown desc = failed to pull and unpack image "{ref}": failed to copy: '
                         "httpReadSeeker: failed open: unexpected status code 503 Service Unavailable")
            elif forced:
                error = str(forced)
            else:
                error = (f"rpc error: code = NotFound desc = failed to pull and unpack image \"{ref}\": failed to "
                         f"resolve reference \"{ref}\": {ref}: not found")
            self._event("Normal", "Pulling", f'Pulling image "{image}"', c.name)
            self._event("Warning", "Failed", f'Failed to pull image "{image}": {error}', c.name)
            self._event("Warning", "Failed", "Error: ErrImagePull", c.name)
            c.state = {"waiting": {"reason": "ErrImagePull", "message": error}}
            self.publish()
            await asyncio.sleep(min(delay, cap) / 2)
            self._event("Normal", "BackOff", f'Back-off pulling image "{image}"', c.name)
            self._event("Warning", "Failed", "Error: ImagePullBackOff", c.name)
            c.state = {"waiting": {"reason": "ImagePullBackOff", "message": f'Back-off pulling image "{image}": '
                                   f"ErrImagePull: {error}"}}
            self.publish()
            await asyncio.sleep(min(delay, cap) / 2)
            delay = min(delay * 2, cap)

    def _user(self, c: _Container, image_user: str) -> tuple[str | None, str | None]:
        """Effective ``user[:group]`` for Docker, and a CreateContainerConfigError message if runAsNonRoot fails."""
        pod_sc = self.spec.get("securityContext") or {}
        sc = c.spec.get("securityContext") or {}
        uid = sc.get("runAsUser", pod_sc.get("runAsUser"))
        gid = sc.get("runAsGroup", pod_sc.get("runAsGroup"))
        non_root = sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot"))
        image_uid = image_user.split(":")[0]
        if non_root:
            if uid is None and image_uid and not image_uid.isdigit():
                return None, (f"container has runAsNonRoot and image has non-numeric user ({image_uid}), cannot "
                              "verify user is non-root")
            effective = uid if uid is not None else int(image_uid or 0)
            if int(effective) == 0:
                return None, (f'container has runAsNonRoot and image will run as root (pod: "{self.name}_{self.ns}'
                              f'({self.uid})", container: {c.name})')
        user = str(uid) if uid is not None else image_uid
        if gid is not None:
            return f"{user or 0}:{gid}", None
        return (user or None), None

    async def _mount_volumes(self) -> None:
        """Set up the pod's volumes before anything else, retrying with back-off (``FailedMount``) until the Secret
        or ConfigMap a volume names exists or the pod is deleted."""
        delay, cap = self.k.node.restart_backoff
        while True:
            try:
                await self.volumes.prepare()
                await self._mount_api_access()
                return
            except MountError as err:
                self._event("Warning", "FailedMount", str(err))
            await asyncio.sleep(delay)
            delay = min(delay * 2, cap)

    async def _mount_api_access(self) -> None:
        """The service-account token directory and the API's variables, as every pod gets them on a cluster."""
        access = self.k.node.api_access
        account = self.k.store.find(self.k.sa_rt, self.ns, str(self.spec.get("serviceAccountName") or "default"))
        if access is None or not automounts(self.pod, account):
            return
        path = self.volumes.dir / API_ACCESS_DIRECTORY
        token = access.issue_token(self.ns, str(self.spec.get("serviceAccountName") or "default"))
        await asyncio.get_running_loop().run_in_executor(None, write_directory, path, token, access.ca_pem, self.ns)
        self.api_access = (str(path), access.environment(bool(self.spec.get("hostNetwork"))))

    async def _create_when_configured(self, c: _Container, network_of: _Container | None) -> None:
        """Like a kubelet, retry (with back-off) a container whose configuration is refused: it is created once
        the missing Secret appears or the pod is deleted, never with a half-made environment."""
        delay, cap = self.k.node.restart_backoff
        while not await self._create(c, network_of):
            await asyncio.sleep(delay)
            delay = min(delay * 2, cap)

    def _lookup(self, plural: str, name: str) -> dict[str, Any] | None:
        if plural == "secrets" and self.secret_cache_misses > 0:
            return None  # the cache has not caught up with the API yet
        return self.k.store.find(_CORE_TYPES[plural], self.ns, name)

    def _field_value(self, path: str) -> str | None:
        """``env[].valueFrom.fieldRef``: the pod fields the downward API offers (None: not supported)."""
        meta = self.pod.get("metadata") or {}
        simple = {"metadata.name": self.name, "metadata.namespace": self.ns, "metadata.uid": self.uid,
                  "spec.nodeName": str(self.spec.get("nodeName") or self.k.node.name),
                  "spec.serviceAccountName": str(self.spec.get("serviceAccountName") or "default"),
                  "status.hostIP": self.k.node.ip, "status.hostIPs": self.k.node.ip,
                  "status.podIP": (self.k.node.ip if self.spec.get("hostNetwork") else
                                   self.reserved_ip or self.pod_ip or "")}
        simple["status.podIPs"] = simple["status.podIP"]
        if path in simple:
            return simple[path]
        for prefix, values in (("metadata.labels", meta.get("labels")), ("metadata.annotations",
                                                                            meta.get("annotations"))):
            if path.startswith(prefix + "['") and path.endswith("']"):
                return str((values or {}).get(path[len(prefix) + 2:-2], ""))
        return None

    def _config_error(self, c: _Container, message: str) -> None:
        """The container cannot be created as configured: CreateContainerConfigError, worded as the kubelet's."""
        c.state = {"waiting": {"reason": "CreateContainerConfigError", "message": message}}
        self._event("Warning", "Failed", f"Error: {message}", c.name)
        self.publish()

    async def _create(self, c: _Container, network_of: _Container | None) -> bool:
        spec = c.spec
        if (network_of is None and not self.spec.get("hostNetwork") and self.reserved_ip is None
                and self.k.node.pod_ips is not None):
            self.reserved_ip = self.k.node.pod_ips.allocate()  # the sandbox's address: known to fieldRef status.podIP
        try:
            env = container_env(list(spec.get("env") or []), self.ns, self._lookup, self._field_value)
            if self.api_access is not None:
                env = {**self.api_access[1], **env}
        except EnvConfigError as err:
            self._config_error(c, str(err))
            return False
        finally:
            self.secret_cache_misses = max(0, self.secret_cache_misses - 1)
        command = [expand(x, env) for x in spec.get("command") or []]
        args = [expand(x, env) for x in spec.get("args") or []]
        image_info = await self._docker(lambda: self.k.docker.images.inspect(str(spec["image"])))
        c.image_id = str(image_info.get("Id", c.image_id))
        user, refusal = self._user(c, str((image_info.get("Config") or {}).get("User") or ""))
        if refusal:
            self._config_error(c, refusal)
            return False
        pod_sc = self.spec.get("securityContext") or {}
        sc = spec.get("securityContext") or {}
        groups = [str(g) for g in pod_sc.get("supplementalGroups") or []]
        if pod_sc.get("fsGroup") is not None:
            groups.append(str(pod_sc["fsGroup"]))
        host_config: dict[str, Any] = {"Init": True}
        if self.spec.get("hostNetwork"):
            host_config["NetworkMode"] = "host"
        elif network_of is not None and network_of.docker is not None:
            host_config["NetworkMode"] = f"container:{network_of.docker.id}"
        else:
            host_config["NetworkMode"] = self.k.node.pod_network
        if host_config["NetworkMode"] != "host":
            hosts = service_hosts(self.k.store, self.ns, self.pod)
            if hosts:
                host_config["ExtraHosts"] = hosts
        if groups:
            host_config["GroupAdd"] = groups
        if sc.get("privileged"):
            host_config["Privileged"] = True
        caps = sc.get("capabilities") or {}
        if caps.get("add"):
            host_config["CapAdd"] = list(caps["add"])
        if caps.get("drop"):
            host_config["CapDrop"] = list(caps["drop"])
        if sc.get("readOnlyRootFilesystem"):
            host_config["ReadonlyRootfs"] = True
        binds, tmpfs = self.volumes.docker_mounts(spec)
        if self.api_access is not None and not mounts_it_itself(spec):
            binds.append(f"{self.api_access[0]}:{API_ACCESS_MOUNT_PATH}:ro")
        if binds:
            host_config["Binds"] = binds
        if tmpfs:
            host_config["Tmpfs"] = tmpfs
        limits = (spec.get("resources") or {}).get("limits") or {}
        with contextlib.suppress(ValueError):
            if "memory" in limits:
                host_config["Memory"] = int(parse_quantity(limits["memory"]))
            if "cpu" in limits:
                host_config["NanoCpus"] = int(parse_quantity(limits["cpu"]) * 1_000_000_000)
        config: dict[str, Any] = {
            "Image": spec["image"],
            "Env": [f"{k}={v}" for k, v in env.items()],
            "Labels": {
                LABEL_MANAGED: "1", LABEL_INSTANCE: self.k.node.instance, LABEL_POD_NAME: self.name,
                LABEL_POD_NAMESPACE: self.ns, LABEL_POD_UID: self.uid, LABEL_CONTAINER_NAME: c.name,
            },
            "Tty": bool(spec.get("tty")),
            "OpenStdin": bool(spec.get("stdin")),
            "HostConfig": host_config,
        }
        if command:
            config["Entrypoint"] = command
        if args:
            config["Cmd"] = args
        elif command:
            config["Cmd"] = []
        if spec.get("workingDir"):
            config["WorkingDir"] = spec["workingDir"]
        if user:
            config["User"] = user
        if host_config["NetworkMode"] == self.k.node.pod_network:
            config["Hostname"] = str(self.spec.get("hostname") or self.name)[:63]
            if self.reserved_ip is not None:
                config["NetworkingConfig"] = {"EndpointsConfig": {self.k.node.pod_network: {
                    "IPAMConfig": {"IPv4Address": self.reserved_ip}}}}
        docker_name = f"k8s_{c.name}_{self.name}_{self.ns}_{self.uid}_0"
        c.docker = await self._docker(lambda: self.k.docker.containers.create(config, name=docker_name))
        self._event("Normal", "Created", f"Created container {c.name}", c.name)
        return True

    async def _start(self, c: _Container) -> bool:
        assert c.docker is not None
        docker = c.docker
        try:
            await self._docker(docker.start)
        except aiodocker.DockerError as err:
            message = str(err.message)
            c.state = {"terminated": {"exitCode": 128, "reason": "StartError", "message": message,
                                     "startedAt": "1970-01-01T00:00:00Z", "finishedAt": now(),
                                     "containerID": f"docker://{docker.id}"}}
            c.done = True
            self._event("Warning", "Failed", f"Error: failed to start container \"{c.name}\": {message}", c.name)
            self.publish()
            return False
        info = await self._docker(docker.show)
        if self.spec.get("hostNetwork"):
            self.pod_ip = self.k.node.ip
        elif self.pod_ip is None:
            networks = (info.get("NetworkSettings") or {}).get("Networks") or {}
            ip = (networks.get(self.k.node.pod_network) or {}).get("IPAddress") or next(
                (n.get("IPAddress") for n in networks.values() if n.get("IPAddress")), None)
            self.pod_ip = ip or None
        started = docker_time((info.get("State") or {}).get("StartedAt")) or now()
        c.state = {"running": {"startedAt": started}}
        if c.readiness is not None:
            c.readiness.ready = False  # a (re)started container is ready once its probe passes again
        self._event("Normal", "Started", f"Started container {c.name}", c.name)
        self.publish()
        return True

    async def _probe(self, c: _Container) -> None:
        """Run the container's readiness probe beside it (probes.py); the pod's status follows its answer."""
        assert c.readiness is not None

        def notify(failure: str | None) -> None:
            if failure is not None:
                self._event("Warning", "Unhealthy", f"Readiness probe failed: {failure}", c.name)
            self.publish()

        host = (lambda: "127.0.0.1") if self.spec.get("hostNetwork") else (lambda: self.pod_ip)
        await c.readiness.run(host, lambda: "running" in c.state, lambda: c.done, notify)

    def _restart_policy_allows(self, exit_code: int) -> bool:
        policy = self.spec.get("restartPolicy", "Always")
        return policy == "Always" or (policy == "OnFailure" and exit_code != 0)

    async def _supervise(self, c: _Container) -> None:
        """Follow the container through Docker's wait endpoint: exits, restarts with back-off, OOM kills."""
        delay, cap = self.k.node.restart_backoff
        while c.docker is not None and "running" in c.state:
            docker = c.docker
            await docker.wait()
            info = await self._docker(docker.show)
            st = info.get("State") or {}
            code = int(st.get("ExitCode", 0))
            reason = "OOMKilled" if st.get("OOMKilled") else ("Completed" if code == 0 else "Error")
            terminated = {"exitCode": code, "reason": reason,
                          "startedAt": docker_time(st.get("StartedAt")) or c.state["running"]["startedAt"],
                          "finishedAt": docker_time(st.get("FinishedAt")) or now(),
                          "containerID": f"docker://{docker.id}"}
            if self.terminating or not self._restart_policy_allows(code):
                c.state = {"terminated": terminated}
                c.done = True
                self.publish()
                return
            c.last_state = {"terminated": terminated}
            c.restart_count += 1
            back_off = f"back-off {int(delay)}s restarting failed container={c.name} pod={self.name}_{self.ns}" \
                       f"({self.uid})"
            c.state = {"waiting": {"reason": "CrashLoopBackOff", "message": back_off}}
            self._event("Warning", "BackOff", f"Back-off restarting failed container {c.name} in pod "
                        f"{self.name}_{self.ns}({self.uid})", c.name)
            self.publish()
            await asyncio.sleep(delay)
            delay = min(delay * 2, cap)
            await self._start(c)

    # -- termination --------------------------------------------------------------------------------------

    async def terminate(self, grace: int, remove_object: bool) -> None:
        """Stop the containers within ``grace`` seconds, record it, remove them, then drop the pod object."""
        self.terminating = True
        if self.task is not None and not self.task.done():
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.task
        if self._inflight:
            await asyncio.gather(*list(self._inflight), return_exceptions=True)
        containers = await self.k.containers_of(self.uid)
        for container in containers:
            info = await container.show()
            name = (info.get("Config") or {}).get("Labels", {}).get(LABEL_CONTAINER_NAME, "")
            if (info.get("State") or {}).get("Running"):
                self._event("Normal", "Killing", f"Stopping container {name}", name)
                with contextlib.suppress(aiodocker.DockerError):
                    await container.stop(t=max(0, grace))
                info = await container.show()
                st = info.get("State") or {}
                for c in self.containers:
                    if c.name == name:
                        code = int(st.get("ExitCode", 137))
                        c.state = {"terminated": {
                            "exitCode": code, "reason": "Completed" if code == 0 else "Error",
                            "startedAt": docker_time(st.get("StartedAt")), "finishedAt": docker_time(
                                st.get("FinishedAt")) or now(), "containerID": f"docker://{container.id}"}}
                        c.done = True
        if any(c.docker is not None for c in self.containers):
            self.publish()
        for container in containers:
            with contextlib.suppress(aiodocker.DockerError):
                await container.delete(force=True)
        await self.volumes.cleanup()
        if self.reserved_ip is not None and self.k.node.pod_ips is not None:
            self.k.node.pod_ips.release(self.reserved_ip)
            self.reserved_ip = None
        if remove_object:
            current = self.k.store.find(self.k.pods_rt, self.ns, self.name)
            if current is not None and current["metadata"].get("uid") == self.uid:
                self.k.store.remove(self.k.pods_rt, self.ns, self.name)


class Kubelet:
    """Owns the pod workers and the Docker client; the API layer tells it about pod creation and deletion."""

    def __init__(self, store: Store, pods_rt: ResourceType, recorder: EventRecorder, docker: aiodocker.Docker,
                 node: NodeConfig) -> None:
        self.store = store
        self.pods_rt = pods_rt
        self.sa_rt = next(rt for rt in BUILTINS if not rt.group and rt.plural == "serviceaccounts")
        self.recorder = recorder
        self.docker = docker
        self.node = node
        self.workers: dict[str, PodWorker] = {}
        self._terminations: dict[str, asyncio.Task[None]] = {}

    def pod_created(self, pod: dict[str, Any]) -> None:
        worker = PodWorker(self, pod)
        self.workers[worker.uid] = worker
        worker.task = asyncio.ensure_future(worker.run())

    def is_bound(self, uid: str) -> bool:
        worker = self.workers.get(uid)
        return worker is not None and worker.scheduled and worker._phase() not in ("Succeeded", "Failed")

    def pod_deleted(self, uid: str, grace: int, remove_object: bool) -> asyncio.Task[None] | None:
        worker = self.workers.pop(uid, None)
        if worker is None:
            return None
        task = asyncio.ensure_future(worker.terminate(grace, remove_object))
        self._terminations[uid] = task
        task.add_done_callback(lambda _: self._terminations.pop(uid, None))
        return task

    def termination_of(self, uid: str) -> asyncio.Task[None] | None:
        return self._terminations.get(uid)

    def set_unschedulable(self, value: bool) -> None:
        self.node.unschedulable = value
        for worker in self.workers.values():
            worker.reschedule.set()

    async def containers_of(self, uid: str) -> list[DockerContainer]:
        return await self.docker.containers.list(
            all=True, filters={"label": [f"{LABEL_POD_UID}={uid}", f"{LABEL_INSTANCE}={self.node.instance}"]})

    async def shutdown(self) -> None:
        """Stop every pod immediately and remove all containers this instance made."""
        for uid in list(self.workers):
            self.pod_deleted(uid, 0, remove_object=False)
        if self._terminations:
            await asyncio.gather(*list(self._terminations.values()), return_exceptions=True)
        await remove_containers(self.docker, {LABEL_INSTANCE: self.node.instance})


async def remove_containers(docker: aiodocker.Docker, labels: dict[str, str]) -> int:
    """Force-remove containers carrying all ``labels``; returns how many went."""
    found = await docker.containers.list(all=True, filters={"label": [f"{k}={v}" for k, v in labels.items()]})
    for container in found:
        with contextlib.suppress(aiodocker.DockerError):
            await container.delete(force=True)
    return len(found)
