"""``kubernetes-provisioner``: each kernel in its own pod, created by this process through ``kubernetes_asyncio``.

Gateway Provisioners ran ``launch_kubernetes.py`` as a subprocess per launch, with the server's credentials and
whole environment, and rendered client values raw into YAML. Here the pod is made in-process from validated,
typed settings (``k8s_pod``) or from the kernelspec's own ``scripts/kernel-pod.yaml.j2`` rendered safely
(``k8s_template``), both checked against the operator's policy before anything is sent. The pod is followed by
its namespace's shared watch (``k8s_watch``): an image that cannot be pulled, a pod that cannot be scheduled or a
container that ends fails the launch at once, with the pod's events in the error, and the pod is deleted.
The launch token never appears in the pod spec: it travels in a per-launch Secret (``k8s_secret``) that the pod
refers to and that is deleted as soon as the kernel has reported or the launch has failed. Every object is deleted
by the uid its create answered (``k8s_owned``), so a request that names someone else's pod, Secret or namespace
fails its launch and leaves that object alone. A template's other documents (a PVC, Secret, ConfigMap or Service,
of the kinds ``template_object_kinds`` allows: ``k8s_template_objects``) are created before the pod and deleted with
it the same way.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar

from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException
from traitlets import Bool, Dict, Float, Integer, List, Unicode, default

from kernelfleet.protocol import Report
from kernelfleet.provisioners.authorization import impersonated_user
from kernelfleet.provisioners.base import LaunchError
from kernelfleet.provisioners.container import ContainerProvisionerBase
from kernelfleet.provisioners.envconfig import env_bool, env_list, env_value
from kernelfleet.provisioners.k8s.client import KubeApi, describe_api_error
from kernelfleet.provisioners.k8s.names import dns_label
from kernelfleet.provisioners.k8s.owned import (
    NAMESPACE,
    POD,
    SECRET,
    Deletion,
    Owned,
    delete_by_uid,
    deletion_started,
    kernel_uid,
    uid_of,
    wait_object_gone,
)
from kernelfleet.provisioners.k8s.pod import SecretKeyRef
from kernelfleet.provisioners.k8s.pod_events import forward_pod_events
from kernelfleet.provisioners.k8s.settings import (
    KubernetesSettings,
    PodLaunch,
    kernel_manifests,
    object_labels,
    settle_pod_launch,
)
from kernelfleet.provisioners.k8s.spark_submit import (
    SparkSubmission,
    SparkSubmitWorkload,
    is_spark_submit,
    spark_opts_words,
)
from kernelfleet.provisioners.k8s.standbys import KubernetesStandby, claim_kubernetes_standby, take_over
from kernelfleet.provisioners.k8s.status import pod_ended, pod_failure
from kernelfleet.provisioners.k8s.template_objects import TEMPLATE_KINDS, owned_key, owned_kind
from kernelfleet.provisioners.k8s.watch import SharedWatch
from kernelfleet.provisioners.k8s.workloads import PodWorkload, Workload
from kernelfleet.provisioners.pool.config import WarmPoolConfig
from kernelfleet.provisioners.presence import Presence
from kernelfleet.provisioners.request_env import Engine

TEMPLATE_NAME = "scripts/kernel-pod.yaml.j2"
EVENT_LINES = 8
LOG_LINES = 20


class KubernetesProvisioner(WarmPoolConfig, ContainerProvisionerBase):
    """``kubernetes-provisioner``: the kernel in its own pod, in a shared or a per-kernel namespace, built from
    validated settings or the kernelspec's pod template. Configured per kernelspec or as
    ``c.KubernetesProvisioner.*``."""

    request_engine: ClassVar[Engine | None] = Engine.KUBERNETES
    launch_engine: ClassVar[str] = "kubernetes"

    namespace = Unicode(
        help="Namespace of kernel pods when namespaces are shared (env KF_NAMESPACE / GP_NAMESPACE; default 'default')."
    ).tag(config=True)
    shared_namespace = Bool(
        help="Run every kernel in `namespace` (default; env GP_SHARED_NAMESPACE). Off: each kernel gets its own "
        "namespace, bound to `kernel_cluster_role`, deleted when the kernel stops.",
    ).tag(config=True)
    kernel_cluster_role = Unicode(
        help="ClusterRole bound to the kernel's service account in a per-kernel namespace (env "
        "GP_KERNEL_CLUSTER_ROLE; default 'kernel-controller', never cluster-admin unless you say so)."
    ).tag(config=True)
    allow_client_namespace = Bool(
        False, help="Let a request place its kernel in an existing namespace with KERNEL_NAMESPACE."
    ).tag(config=True)
    service_account_name = Unicode(
        help="Service account of kernel pods (env GP_DEFAULT_KERNEL_SERVICE_ACCOUNT_NAME; default 'default')."
    ).tag(config=True)
    allow_client_service_account = Bool(
        False, help="Let a request choose the service account with KERNEL_SERVICE_ACCOUNT_NAME."
    ).tag(config=True)
    allow_client_resources = Bool(
        True, help="Let a request set cpu/memory/GPU requests and limits (KERNEL_CPUS, KERNEL_MEMORY_LIMIT, ...)."
    ).tag(config=True)
    allow_client_volumes = Bool(
        False, help="Let a request add volumes and mounts (KERNEL_VOLUMES, KERNEL_VOLUME_MOUNTS, JSON lists)."
    ).tag(config=True)
    allow_host_path_volumes = Bool(
        False, help="Allow hostPath volumes, from the kernelspec or (if allowed at all) from requests."
    ).tag(config=True)
    host_network = Bool(
        help="Run kernel pods on the node's network (env KF_KUBERNETES_HOST_NETWORK; default off). Then the "
        "response broker's advertised address must be reachable from the node.",
    ).tag(config=True)
    resources = Dict(help='Kernel container resources, {"requests": {"cpu": "1"}, "limits": {"memory": "2Gi"}}.').tag(
        config=True
    )
    volumes = List(Dict(), help="Pod volumes of every kernel of this kernelspec.").tag(config=True)
    volume_mounts = List(Dict(), help="Volume mounts of the kernel container.").tag(config=True)
    node_selector = Dict(Unicode(), help="Node selector of kernel pods.").tag(config=True)
    tolerations = List(Dict(), help="Tolerations of kernel pods.").tag(config=True)
    affinity = Dict(help="Affinity of kernel pods (a Kubernetes Affinity object).").tag(config=True)
    image_pull_secrets = List(Unicode(), help="Names of the image pull secrets of kernel pods.").tag(config=True)
    image_pull_policy = Unicode("", help="imagePullPolicy of the kernel container (default: Kubernetes').").tag(
        config=True
    )
    labels = Dict(Unicode(), help="Extra labels of kernel pods.").tag(config=True)
    annotations = Dict(Unicode(), help="Extra annotations of kernel pods.").tag(config=True)
    fs_group = Integer(100, allow_none=True, help="fsGroup of kernel pods (None: not set).").tag(config=True)
    pod_security_restricted = Bool(
        True, help="Kernel pods (built or templated) pass the Pod Security Standards' 'restricted' level: "
        "runAsNonRoot, seccompProfile RuntimeDefault, allowPrivilegeEscalation false, capabilities drop ALL (only "
        "what a template leaves unset is filled in). Off: only allowPrivilegeEscalation false on built pods, for "
        "images that must start as root on a namespace that enforces 'baseline' or nothing."
    ).tag(config=True)
    termination_grace_period = Integer(5, help="terminationGracePeriodSeconds of kernel pods.").tag(config=True)
    pod_template = Unicode(
        help="A Jinja2 pod template; default: the kernelspec's scripts/kernel-pod.yaml.j2 when it has one, else the "
        "built-in pod."
    ).tag(config=True)
    template_object_kinds = List(
        Unicode(), help="Kinds the kernelspec's pod template may create next to the Pod, in the kernel's namespace, "
        "deleted with the kernel (env KF_TEMPLATE_OBJECT_KINDS, comma-separated; default none: a template with other "
        f"documents fails the launch). Only {', '.join(TEMPLATE_KINDS)}; the server's account needs create, get and "
        "delete on them (jupyter k8s-spec rbac --template-kind)."
    ).tag(config=True)
    fail_on_unschedulable = Bool(
        True, help="Fail the launch as soon as the scheduler reports the pod Unschedulable (off: wait for the "
        "launch timeout, e.g. for a cluster autoscaler)."
    ).tag(config=True)
    transient_error_window = Float(
        30.0, help="Seconds a launch lets the kubelet retry what real clusters recover from (an image pull that "
        "fails without 'not found'/'unauthorized'/'manifest unknown', a Secret its cache has not seen yet) before "
        "failing with the kubelet's message; definitive reasons fail at once."
    ).tag(config=True)
    delete_grace_period = Integer(
        1, help="Grace period of a pod deletion: a pod is gone from the API once its containers have stopped (0 "
        "forces it out of the API at once, leaving the containers to stop in the background)."
    ).tag(config=True)
    delete_timeout = Float(60.0, help="Seconds to wait for a deleted pod or namespace to be gone.").tag(config=True)
    executor_image_name = Unicode(
        help="Image of the Spark executor pods of a kernelspec whose argv runs spark-submit in cluster mode (env "
        "KF_EXECUTOR_IMAGE_NAME / GP_EXECUTOR_IMAGE_NAME; default: the kernel image). A pod kernelspec has no "
        "executors: set there, it is reported at each launch as unused."
    ).tag(config=True)

    impersonation_enabled = Bool(
        help="Spark cluster mode (a spark-submit argv, or the Spark operator's SparkApplication): run the Spark "
        "application as the requesting user, spark-submit --proxy-user KERNEL_USERNAME (spec.proxyUser for the "
        "operator), the name checked against authorized_users and unauthorized_users "
        "(env KF_IMPERSONATION_ENABLED / GP_IMPERSONATION_ENABLED; default off). A pod kernelspec's kernel runs as "
        "its pod's uid (KERNEL_UID): set there, it is reported at each launch as unused."
    ).tag(config=True)

    @default("impersonation_enabled")
    def _impersonation_enabled_default(self) -> bool:
        return env_bool(("KF_IMPERSONATION_ENABLED", "GP_IMPERSONATION_ENABLED"), False)

    @default("namespace")
    def _namespace_default(self) -> str:
        return env_value(("KF_NAMESPACE", "GP_NAMESPACE")) or "default"

    @default("shared_namespace")
    def _shared_namespace_default(self) -> bool:
        return env_bool(("KF_SHARED_NAMESPACE", "GP_SHARED_NAMESPACE"), True)

    @default("kernel_cluster_role")
    def _cluster_role_default(self) -> str:
        return env_value(("KF_KERNEL_CLUSTER_ROLE", "GP_KERNEL_CLUSTER_ROLE")) or "kernel-controller"

    @default("service_account_name")
    def _service_account_default(self) -> str:
        return env_value(("KF_KERNEL_SERVICE_ACCOUNT_NAME", "GP_DEFAULT_KERNEL_SERVICE_ACCOUNT_NAME")) or "default"

    @default("executor_image_name")
    def _executor_image_default(self) -> str:
        return env_value(("KF_EXECUTOR_IMAGE_NAME", "GP_EXECUTOR_IMAGE_NAME")) or ""

    @default("template_object_kinds")
    def _template_object_kinds_default(self) -> list[str]:
        return env_list(("KF_TEMPLATE_OBJECT_KINDS",), ())

    @default("host_network")
    def _host_network_default(self) -> bool:
        return env_bool(("KF_KUBERNETES_HOST_NETWORK",), False)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.kernel_namespace: str | None = None
        self.pod_name: str | None = None
        self.created_namespace = False  # the namespace is the kernel's own (made for it, deleted with it)
        self.requested_pod_name: str | None = None  # the request's KERNEL_POD_NAME, for error messages
        self.owned: dict[str, Owned] = {}  # what this kernel created and has not deleted yet, by kind (k8s_owned)
        self.pod_uid: str | None = None  # the kernel pod's uid, kept after its deletion (see kernel_pod)
        self.service_account: str | None = None
        self.pod_launch: PodLaunch | None = None  # what pre_launch decided (k8s.settings), for this launch
        self.manifest: dict[str, Any] | None = None
        self.template_objects: list[dict[str, Any]] = []  # the template's other documents, created before the pod
        self.token_ref: SecretKeyRef | None = None
        self.secret_manifest: dict[str, Any] | None = None
        self.api: KubeApi | None = None
        self.pods: SharedWatch | None = None
        self.end_reason: str | None = None  # how the running kernel's pod ended, once the watch said so
        self.stopping = False  # this server stops or deletes the kernel: how its pod ends is no news
        self.launch_cmd: list[str] = []  # the kernelspec's argv as formatted for this launch (spark-submit's)
        self.launch_request: dict[str, str] = {}  # this launch's checked KERNEL_USERNAME/KERNEL_EXTRA_SPARK_OPTS
        self.workload: Workload = self.make_workload()  # pod or custom resource, chosen once (k8s.workloads)
        self._pod_events: asyncio.Task[None] | None = None  # the pod's Events forwarded during a launch

    def make_workload(self) -> Workload:
        """What this provisioner's kernels are: a pod it creates, or the Spark driver pod of a kernelspec whose argv
        runs spark-submit (``k8s.spark_submit``); ``CustomResourceProvisioner``: a resource."""
        if self.kernel_spec is not None and is_spark_submit(list(self.kernel_spec.argv)):
            return SparkSubmitWorkload(self)
        return PodWorkload(self)

    def spark_submission(self, template_path: str, master: str) -> SparkSubmission:
        """This launch's spark-submit as data (``k8s.spark_submit.submit_argv`` makes the argv): the kernelspec's
        argv as ``pre_launch`` formatted it, and this provisioner's namespace, names, images and labels."""
        assert self.kernel_namespace and self.pod_name
        return SparkSubmission(
            argv=tuple(self.launch_cmd), master=master, namespace=self.kernel_namespace,
            pod_name=self.pod_name, service_account=self.service_account or "default", image=self.image,
            executor_image=self.executor_image_name.strip() or self.image,
            driver_labels=self.object_labels(), executor_labels=self.object_labels({}), template_path=template_path,
            app_name=self.pod_name, proxy_user=self.proxy_user(),
            spark_opts=spark_opts_words(
                self.kernel_id, str(self.spark_submit_env().get("SPARK_OPTS", "")), os.environ,
                {"KERNEL_ID": self.kernel_id, "KERNEL_USERNAME": self.launch_request.get("KERNEL_USERNAME", ""),
                 "KERNEL_NAMESPACE": self.kernel_namespace},
                extra=self.launch_request.get("KERNEL_EXTRA_SPARK_OPTS", "")))

    def runs_as_requesting_user(self) -> bool:
        """Whether ``impersonation_enabled`` can apply: Spark runs the driver as the requesting user (spark-submit's
        ``--proxy-user`` here; the Spark operator's ``spec.proxyUser`` in ``SparkOperatorProvisioner``)."""
        return isinstance(self.workload, SparkSubmitWorkload)

    def proxy_user(self) -> str | None:
        """With ``impersonation_enabled``: this launch's KERNEL_USERNAME, checked as on SSH hosts, for spark-submit's
        ``--proxy-user`` (Spark runs the driver as that user: ``sparkUser()``, Hadoop file systems)."""
        if not self.impersonation_enabled:
            return None
        return impersonated_user(self.kernel_id, self.launch_request.get("KERNEL_USERNAME", ""),
                                 authorized=self.authorized_users, unauthorized=self.unauthorized_users)

    def spark_submit_env(self) -> dict[str, str]:
        """What the kernelspec's env says spark-submit runs with (SPARK_HOME, JAVA_HOME, ...)."""
        return dict(self.kernel_spec.env) if self.kernel_spec is not None else {}

    # ------------------------------------------------------------------------------------- settling
    def kubernetes_settings(self) -> KubernetesSettings:
        """This kernelspec's Kubernetes traits as one value, for the pure builders (``k8s.settings``)."""
        return KubernetesSettings(
            namespace=self.namespace, shared_namespace=self.shared_namespace,
            allow_client_namespace=self.allow_client_namespace, service_account_name=self.service_account_name,
            allow_client_service_account=self.allow_client_service_account,
            allow_client_resources=self.allow_client_resources, allow_client_volumes=self.allow_client_volumes,
            allow_host_path_volumes=self.allow_host_path_volumes, host_network=self.host_network,
            resources=dict(self.resources), volumes=tuple(self.volumes), volume_mounts=tuple(self.volume_mounts),
            node_selector=dict(self.node_selector), tolerations=tuple(self.tolerations), affinity=dict(self.affinity),
            image_pull_secrets=tuple(self.image_pull_secrets), image_pull_policy=self.image_pull_policy,
            labels=dict(self.labels), annotations=dict(self.annotations), fs_group=self.fs_group,
            termination_grace_period=self.termination_grace_period,
            prohibited_uids=frozenset(self.prohibited_uids), prohibited_gids=frozenset(self.prohibited_gids),
            pod_security_restricted=self.pod_security_restricted,
            template_object_kinds=tuple(self.template_object_kinds),
        )

    def closed_request_names(self) -> dict[str, str]:
        return self.kubernetes_settings().closed_request_names()

    def _settle(self, env: dict[str, str]) -> None:
        """Decide the launch (``settle_pod_launch``) and build what will be created; keep the result as state."""
        super()._settle(env)
        self.end_reason, self.stopping = None, False
        assert self.container is not None
        container = self.container
        launch = settle_pod_launch(self.kubernetes_settings(), self.kernel_id, self.server_id, env, container)
        self.pod_launch = launch
        self.container_env = dict(launch.env)
        self.pod_name, self.requested_pod_name = launch.pod_name, launch.requested_pod_name
        self.kernel_namespace, self.created_namespace = launch.namespace, launch.created_namespace
        self.service_account, self.token_ref = launch.service_account, launch.token_ref
        self.secret_manifest = dict(launch.secret)
        self.manifest, self.template_objects = kernel_manifests(launch, self.template_path(), self.spec_dir())
        self.workload.settle(launch)

    def object_labels(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """The labels of every object this kernel creates (``extra``: default the kernelspec's ``labels``), with this
        server's identity, by which the orphan sweep finds what a crashed server left."""
        return object_labels(self.kernel_id, self.server_id, self.labels if extra is None else extra)

    def spec_dir(self) -> str:
        """The kernelspec's directory ('' outside a kernelspec): what a pod template's ``kernel_name`` is made of."""
        return str(getattr(self.kernel_spec, "resource_dir", "") or "") if self.kernel_spec is not None else ""

    def template_path(self) -> Path | None:
        """The kernelspec's pod template, if it has one (None: the built-in pod); cold launches and the warm pool's
        standby pods (``k8s.standbys``) are built from it alike."""
        if self.pod_template:
            return Path(self.pod_template)
        resource_dir = getattr(self.kernel_spec, "resource_dir", None) if self.kernel_spec is not None else None
        if resource_dir:
            candidate = Path(resource_dir) / TEMPLATE_NAME
            if candidate.is_file():
                return candidate
        return None

    # ------------------------------------------------------------------------------------- launch
    def lease_api(self) -> KubeApi:
        if self.api is None:
            self.api = KubeApi.acquire()
        return self.api

    def follow_pods(self) -> SharedWatch:
        assert self.kernel_namespace is not None
        if self.pods is None:
            self.pods = SharedWatch.pods(self.lease_api(), self.kernel_namespace)
        return self.pods

    async def core(self) -> client.CoreV1Api:
        return client.CoreV1Api(await self.lease_api().client())

    async def launch_kernel(self, cmd: list[str], **kwargs: Any) -> Any:
        try:
            info = await super().launch_kernel(cmd, **kwargs)
        except BaseException:
            self._stop_pod_events()
            await self._teardown(delete_namespace=True)
            raise
        self._stop_pod_events()
        await self.delete_launch_secret()  # the report is in: the token has served its purpose
        return info

    async def start_from_pool(self, cmd: list[str], env: dict[str, str], **kwargs: Any) -> bool:
        """A standby pod of this kernelspec's warm pool, relabelled and claimed for this kernel (``k8s.standbys``);
        False when the launch goes cold. Returns once the namespace's kernel-pod watch has the pod, as a created
        pod's launch does, so that the report is matched with the pod's IP."""
        if self.warm_pool_size <= 0:
            return False
        self._taken_from, standby = await claim_kubernetes_standby(self)
        if standby is None:
            return False
        await self.adopt_standby(standby)
        self.pool_chosen()
        return True

    async def adopt_standby(self, standby: KubernetesStandby) -> None:
        """The claimed standby's pod is this kernel's from now on (``take_over``); wait until the kernel-pod watch
        has seen it relabelled."""
        await take_over(self, standby)
        assert self.pod_name is not None
        try:
            await self.follow_pods().until(self.pod_name, lambda pod: self.kernel_pod(pod) is not None,
                                           timeout=self._effective_timeout)
        except TimeoutError:
            raise LaunchError(f"Kernel {self.kernel_id}: the claimed standby pod {self.kernel_namespace}/"
                              f"{self.pod_name} did not appear as the kernel's within {self._effective_timeout:g}s"
                              ) from None
        self.log.info("Kernel %s: running in pod %s/%s (claimed from the warm pool)", self.kernel_id,
                      self.kernel_namespace, self.pod_name)

    async def start_launcher(self, cmd: list[str], env: dict[str, str], **kwargs: Any) -> None:
        assert self.manifest is not None and self.kernel_namespace and self.pod_name
        try:
            core = await self.core()
        except Exception as err:
            raise LaunchError(f"Kernel {self.kernel_id}: cannot reach Kubernetes: {describe_api_error(err)}") from None
        self.launch_cmd = list(cmd)
        self.launch_request = {name: env[name] for name in ("KERNEL_USERNAME", "KERNEL_EXTRA_SPARK_OPTS")
                               if name in env}
        if self.executor_image_name and not isinstance(self.workload, SparkSubmitWorkload):
            self.log.warning("Kernel %s: executor_image_name %s is unused: this kernelspec's argv does not run "
                             "spark-submit, so the kernel has no executors", self.kernel_id, self.executor_image_name)
        if self.runs_as_requesting_user():
            self.proxy_user()  # refuses a user the kernelspec does not allow before anything is created
        elif self.impersonation_enabled:
            self.log.warning("Kernel %s: impersonation_enabled is unused: this kernelspec's kernel runs as its pod's "
                             "uid (KERNEL_UID); only Spark kernelspecs (spark-submit, the Spark operator) run "
                             "as the requesting user (--proxy-user)", self.kernel_id)
        await self.ensure_namespace(core)
        self.follow_pods()
        await self.create_template_objects(core)
        await self.workload.create(core)
        self._stop_pod_events()
        self._pod_events = asyncio.ensure_future(forward_pod_events(
            core, self.kernel_namespace, self.pod_name, lambda: self.pod_uid, self.progress, self._effective_timeout))
        self.log.info("Kernel %s: pod %s/%s created (image %s)", self.kernel_id, self.kernel_namespace, self.pod_name,
                      self.image)

    def _stop_pod_events(self) -> None:
        task, self._pod_events = self._pod_events, None
        if task is not None:
            task.cancel()

    async def ensure_namespace(self, core: client.CoreV1Api) -> None:
        """A per-kernel namespace is made (with its RoleBinding); any other must already exist."""
        ns = self.kernel_namespace
        assert ns is not None
        if not self.created_namespace:
            try:
                await core.read_namespace(ns)
            except ApiException as err:
                raise LaunchError(
                    f"Kernel {self.kernel_id}: namespace {ns!r} is not usable: {describe_api_error(err)}"
                ) from None
            return
        body = {"metadata": {"name": ns, "labels": self.object_labels({})}}
        try:  # kept across a restart; a leftover of this kernel is kept too
            await self.create_owned(NAMESPACE, "namespace", ns, lambda: core.create_namespace(body),
                                    lambda: core.read_namespace(ns), None)
        except LaunchError:
            self.created_namespace = False  # not ours: never delete it
            raise
        self.log.info("Kernel %s: namespace %s ready", self.kernel_id, ns)
        await self._bind_role(ns)

    async def _bind_role(self, ns: str) -> None:
        rbac = client.RbacAuthorizationV1Api(await self.lease_api().client())
        role = self.kernel_cluster_role
        body = {
            "metadata": {"name": dns_label(f"kernel-{role}"), "namespace": ns, "labels": self.object_labels({})},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
            "subjects": [{"kind": "ServiceAccount", "name": self.service_account or "default", "namespace": ns}],
        }
        try:
            await rbac.create_namespaced_role_binding(ns, body)
        except ApiException as err:
            if err.status == 409:
                return
            raise LaunchError(
                f"Kernel {self.kernel_id}: the RoleBinding to ClusterRole {role!r} in namespace {ns} could not be "
                f"created: {describe_api_error(err)}"
            ) from None

    async def create_launch_secret(self, core: client.CoreV1Api) -> None:
        """The Secret the pod reads ``LAUNCH_TOKEN`` from; it must exist before the pod, or the kubelet refuses to
        start the container (CreateContainerConfigError)."""
        assert self.secret_manifest is not None and self.token_ref is not None and self.kernel_namespace
        ns, name = self.kernel_namespace, self.token_ref.name

        def hint(err: ApiException) -> str:
            return (f"; the server's service account needs the create and delete verbs on secrets in namespace "
                    f"{ns}" if err.status == 403 else "")

        await self.create_owned(SECRET, "the launch-token Secret", name,
                                lambda: core.create_namespaced_secret(ns, self.secret_manifest),
                                lambda: core.read_namespaced_secret(name, ns), self.delete_launch_secret, hint)

    async def create_template_objects(self, core: client.CoreV1Api) -> None:
        """The template's other documents, in order, before the pod (which may mount or read them); each recorded by
        uid. A refusal fails the launch naming the document and the API server's message, and the launch's cleanup
        deletes what was already made."""
        ns = self.kernel_namespace
        assert ns is not None
        for obj in self.template_objects:
            kind, name = TEMPLATE_KINDS[obj["kind"]], obj["metadata"]["name"]
            key = owned_key(kind.kind, name)

            def hint(err: ApiException, kind: Any = kind) -> str:
                return (f"; the server's service account needs the create, get and delete verbs on {kind.plural} in "
                        f"namespace {ns} (jupyter k8s-spec rbac --template-kind {kind.kind})"
                        if err.status == 403 else "")

            await self.create_owned(
                key, f"the pod template's {kind.kind}", name,
                lambda kind=kind, obj=obj: getattr(core, kind.method("create"))(ns, obj),
                lambda kind=kind, name=name: getattr(core, kind.method("read"))(name, ns),
                lambda key=key: self.delete_template_object(key), hint)
        if self.template_objects:
            self.log.info("Kernel %s: created %s from the pod template in namespace %s", self.kernel_id,
                          ", ".join(f"{o['kind']} {o['metadata']['name']}" for o in self.template_objects), ns)

    async def delete_template_object(self, key: str) -> None:
        """Delete one template object this kernel created (by its uid); a failure is logged and retried at cleanup."""
        kind, owned, ns = owned_kind(key), self.owned.get(key), self.kernel_namespace
        if kind is None or owned is None or not ns or self.api is None:
            return
        core = await self.core()
        await self.delete_owned(key, f"{kind.kind} {ns}/{owned.name}",
                                lambda options: getattr(core, kind.method("delete"))(owned.name, ns, body=options),
                                lambda: getattr(core, kind.method("read"))(owned.name, ns))

    async def delete_template_objects(self) -> None:
        for key in [key for key in self.owned if owned_kind(key) is not None]:
            await self.delete_template_object(key)

    async def create_owned(self, kind: str, what: str, name: str, create: Callable[[], Awaitable[Any]],
                           read: Callable[[], Awaitable[Any]], remove: Callable[[], Awaitable[Any]] | None,
                           hint: Callable[[ApiException], str] = lambda err: "") -> None:
        """Create one object and record its uid as this kernel's (``owned[kind]``).

        A name already taken by a leftover of this kernel (its ``kernel_id`` label) is freed by ``remove`` and the
        create retried once, or kept as it is when there is no ``remove`` (a per-kernel namespace across a
        restart); taken by anything else, the launch fails with the API server's 409 and the setting the name
        came from, and the object is not touched (it is not in ``owned``, so no cleanup deletes it)."""
        where = name if kind == NAMESPACE else f"{self.kernel_namespace}/{name}"
        for attempt in (1, 2):
            self.owned[kind] = Owned(name, None)  # if the answer is lost, cleanup still finds what may have been made
            try:
                created = await create()
            except ApiException as err:
                del self.owned[kind]  # the API answered: nothing was created
                if err.status == 409 and attempt == 1 and await self._adopt_leftover(kind, name, what, read,
                                                                                     keep=remove is None):
                    if remove is None:
                        return
                    await remove()
                    if kind not in self.owned:
                        continue
                raise LaunchError(f"Kernel {self.kernel_id}: Kubernetes refused {what} {where}: "
                                  f"{describe_api_error(err)}{self._collision_hint(err)}{hint(err)}") from None
            self.owned[kind] = Owned(name, uid_of(created))
            self.log.debug("Kernel %s: %s %s created (uid %s)", self.kernel_id, what, where, self.owned[kind].uid)
            return

    async def _adopt_leftover(self, kind: str, name: str, what: str, read: Callable[[], Awaitable[Any]], *,
                              keep: bool) -> bool:
        """Take over an existing object of the name if it is this kernel's own leftover (by its label; its uid is
        recorded). One to ``keep`` must not be on its way out already."""
        try:
            existing = await read()
        except ApiException as err:
            self.log.warning("Kernel %s: the existing %s %s cannot be read: %s", self.kernel_id, what, name,
                             describe_api_error(err))
            return False
        uid = kernel_uid(existing, self.kernel_id)
        if uid is None or (keep and deletion_started(existing)):
            return False
        self.log.info("Kernel %s: %s its leftover %s %s (uid %s)", self.kernel_id, "keeping" if keep else "removing",
                      what, name, uid)
        self.owned[kind] = Owned(name, uid)
        return True

    def _collision_hint(self, err: ApiException) -> str:
        """Why a name is taken, for a 409: the request chose it (or the namespace it made) with KERNEL_POD_NAME."""
        if err.status != 409 or not self.requested_pod_name:
            return ""
        return (f"; the name comes from the request's KERNEL_POD_NAME={self.requested_pod_name!r} and belongs to an "
                "object this kernel did not create, which is left as it is: choose another KERNEL_POD_NAME")

    def kernel_pod(self, pod: dict[str, Any] | None) -> dict[str, Any] | None:
        """``pod`` (the watch's object of the kernel's pod name) if it is the kernel's own: a pod of the same name
        with another uid (someone else's, made after ours was deleted) is not, and is never taken for the kernel."""
        if pod is not None and self.pod_uid and uid_of(pod) != self.pod_uid:
            return None
        return pod

    async def launch_failure(self) -> str:
        return await self.workload.launch_failure()

    async def launch_diagnostics(self) -> str:
        pod = self.kernel_pod(self.pods.get(self.pod_name or "")) if self.pods else None
        if pod is None:
            return f"pod {self.kernel_namespace}/{self.pod_name} does not exist"
        phase = (pod.get("status") or {}).get("phase")
        return f"pod {self.kernel_namespace}/{self.pod_name} is {phase}{await self.events()}"

    async def events(self) -> str:
        """The pod's recent events, for an error message: what the scheduler and kubelet said."""
        try:
            core = await self.core()
            listed = await core.list_namespaced_event(
                self.kernel_namespace, field_selector=f"involvedObject.name={self.pod_name}"
            )
        except Exception as err:
            return f"; its events could not be read: {describe_api_error(err)}"
        def when(event: Any) -> str:
            stamp = event.last_timestamp or event.event_time or event.metadata.creation_timestamp
            return stamp.isoformat() if stamp is not None else ""

        events = sorted(listed.items, key=when)[-EVENT_LINES:]
        lines = [f"{e.type} {e.reason}: {e.message}" for e in events]
        return ("; events:\n" + "\n".join(lines)) if lines else ""

    async def log_tail(self, pod: dict[str, Any] | None) -> str:
        """The last lines a container that ended wrote: usually the reason it ended."""
        if not pod_ended(pod) or pod is None:
            return ""
        try:
            core = await self.core()
            text = await core.read_namespaced_pod_log(self.pod_name, self.kernel_namespace, tail_lines=LOG_LINES)
        except Exception as err:
            return f"; its output could not be read: {describe_api_error(err)}"
        text = str(text or "").rstrip()
        return f"; its last output:\n{text}" if text else ""

    def kernel_address(self, report: Report) -> str:
        return self.workload.kernel_address(report) or super().kernel_address(report)

    # ------------------------------------------------------------------------------------- state
    async def synced_pods(self) -> SharedWatch | None:
        """The pod watch once it has listed the namespace (None: no watch, or it could not sync in time)."""
        if self.pods is None:
            return None
        try:
            await asyncio.wait_for(self.pods.synced.wait(), self.delete_timeout)
        except TimeoutError:
            return None
        return self.pods

    async def poll(self) -> int | None:
        return await self.workload.poll()

    def note_end(self, pod: dict[str, Any] | None) -> None:
        """Keep (and log once) why the running kernel's pod ended, an OOM kill with the container's memory limit."""
        if self.end_reason is not None or self.stopping:
            return
        reason = pod_failure(pod, fail_unschedulable=False) or "the pod ended"
        if pod is None:
            reason = "the pod was deleted outside this server"
        oom = "OOMKilled" in reason
        if oom:
            limits = [((c.get("resources") or {}).get("limits") or {}).get("memory")
                      for c in ((pod or {}).get("spec") or {}).get("containers") or []]
            limit = next((str(value) for value in limits if value), None)
            reason += f"; its memory limit is {limit}" if limit else "; it has no memory limit (the node ran out)"
        self.end_reason = f"pod {self.kernel_namespace}/{self.pod_name}: {reason}"
        if oom:
            self.log.warning("Kernel %s: %s", self.kernel_id, self.end_reason)
        else:
            self.log.info("Kernel %s: %s", self.kernel_id, self.end_reason)

    async def presence(self) -> Presence:
        """The pod watch's word: no pod of ours, or an ended one, is gone; a watch that cannot sync is unreachable."""
        if self.pods is None:
            return Presence.GONE
        pods = await self.synced_pods()
        if pods is None or not self.pod_name:
            return Presence.UNREACHABLE
        return Presence.GONE if pod_ended(self.kernel_pod(pods.get(self.pod_name))) else Presence.RUNNING

    async def wait(self) -> int | None:
        return await self.workload.wait()

    # ------------------------------------------------------------------------------------- stopping
    async def shutdown_requested(self, restart: bool = False) -> None:
        self.stopping = True
        await super().shutdown_requested(restart)

    async def kill(self, restart: bool = False) -> None:
        await self.workload.delete()

    async def cleanup(self, restart: bool = False) -> None:
        await self._teardown(delete_namespace=not restart)
        await super().cleanup(restart)

    async def delete_pod(self) -> None:
        """Delete the pod this kernel created (by its uid) and wait (on the watch) until the API no longer has it,
        i.e. its containers have stopped."""
        owned, ns = self.owned.get(POD), self.kernel_namespace
        if owned is None or not ns or self.api is None:
            return
        self.stopping = True
        core = await self.core()
        outcome = await self.delete_owned(
            POD, f"pod {ns}/{owned.name}",
            lambda options: core.delete_namespaced_pod(owned.name, ns, body=options),
            lambda: core.read_namespaced_pod(owned.name, ns),
            grace_period_seconds=self.delete_grace_period, propagation_policy="Background")
        if outcome is not Deletion.DELETED:
            return

        def gone(pod: dict[str, Any] | None) -> bool:  # a pod of the name with another uid is not ours
            return pod is None or (owned.uid is not None and uid_of(pod) != owned.uid)

        try:
            await self.follow_pods().until(owned.name, gone, timeout=self.delete_timeout)
        except TimeoutError:
            self.log.warning("Kernel %s: pod %s still exists %ss after its deletion", self.kernel_id, owned.name,
                             self.delete_timeout)

    async def delete_launch_secret(self) -> None:
        """Delete this launch's Secret (gone already is fine); a failure is logged and retried at cleanup."""
        owned, ns = self.owned.get(SECRET), self.kernel_namespace
        if owned is None or not ns or self.api is None:
            return
        core = await self.core()
        await self.delete_owned(SECRET, f"launch Secret {ns}/{owned.name}",
                                lambda options: core.delete_namespaced_secret(owned.name, ns, body=options),
                                lambda: core.read_namespaced_secret(owned.name, ns))

    async def delete_owned(self, kind: str, what: str, delete: Callable[[client.V1DeleteOptions], Awaitable[Any]],
                           read: Callable[[], Awaitable[Any]], **options: Any) -> Deletion | None:
        """Delete ``owned[kind]`` by its uid and forget it; None (and a warning) when the API refused, so that a
        later cleanup tries again. An object whose create answer was lost is deleted only if it is labelled with
        this kernel's id."""
        owned = self.owned.get(kind)
        if owned is None:
            return None
        uid = owned.uid
        try:
            if uid is None:
                try:
                    uid = kernel_uid(await read(), self.kernel_id)
                except ApiException as err:
                    if err.status != 404:
                        raise
                if uid is None:
                    self.owned.pop(kind, None)
                    return Deletion.GONE
            outcome = await delete_by_uid(delete, uid, **options)
        except ApiException as err:
            self.log.warning("Kernel %s: could not delete %s: %s", self.kernel_id, what, describe_api_error(err))
            return None
        self.owned.pop(kind, None)
        if outcome is Deletion.REPLACED:
            self.log.warning("Kernel %s: %s is no longer the object this kernel created (uid %s); left alone",
                             self.kernel_id, what, uid)
        else:
            self.log.debug("Kernel %s: %s %s", self.kernel_id, what, outcome.value)
        return outcome

    async def delete_namespace(self) -> None:
        """Delete the namespace this kernel created (by its uid; its content goes with it) and wait until it is
        gone."""
        owned = self.owned.get(NAMESPACE)
        if owned is None or self.api is None:
            return
        core = await self.core()
        outcome = await self.delete_owned(NAMESPACE, f"namespace {owned.name}",
                                          lambda options: core.delete_namespace(owned.name, body=options),
                                          lambda: core.read_namespace(owned.name))
        if outcome is not Deletion.DELETED:
            return
        try:
            await wait_namespace_gone(core, owned.name, self.delete_timeout, owned.uid)
        except TimeoutError:
            self.log.warning("Kernel %s: namespace %s still exists %ss after its deletion", self.kernel_id,
                             owned.name, self.delete_timeout)

    async def _teardown(self, *, delete_namespace: bool) -> None:
        """Remove what this kernel created on Kubernetes, then give back the watch and the client."""
        namespace_gone = False
        try:
            await self.delete_launch_secret()
            await self.workload.delete()
            await self.delete_template_objects()
            if delete_namespace and NAMESPACE in self.owned:
                await self.delete_namespace()
                namespace_gone = NAMESPACE not in self.owned
                self.created_namespace = not namespace_gone
        except Exception as err:  # the kernel is going away whatever Kubernetes says
            self.log.warning("Kernel %s: cleanup on Kubernetes failed: %s", self.kernel_id, describe_api_error(err))
        finally:
            await self.release(linger=not namespace_gone)

    async def detach(self) -> None:
        await self.release()

    async def release(self, *, linger: bool = True) -> None:
        """Give back the watches and the client (kept open a while for the next kernel unless ``linger`` is off)."""
        await self.workload.release(linger=linger)
        pods, self.pods = self.pods, None
        if pods is not None:
            await pods.release(linger=linger)
        api, self.api = self.api, None
        if api is not None:
            await api.release()

    # ------------------------------------------------------------------------------------- persistence
    async def get_provisioner_info(self) -> dict[str, Any]:
        info = await super().get_provisioner_info()
        info.update(kernel_namespace=self.kernel_namespace, pod_name=self.pod_name,
                    created_namespace=self.created_namespace, pod_uid=self.pod_uid,
                    owned={kind: owned.info() for kind, owned in self.owned.items()})
        info.update(self.workload.info())
        return info

    async def load_provisioner_info(self, provisioner_info: dict[str, Any]) -> None:
        """A restarted server takes over the kernel with the uids of what it created; info written before uids were
        recorded names objects that count as the kernel's only if they carry its label (``k8s_owned``)."""
        await super().load_provisioner_info(provisioner_info)
        self.kernel_namespace = provisioner_info.get("kernel_namespace")
        self.pod_name = provisioner_info.get("pod_name")
        self.created_namespace = bool(provisioner_info.get("created_namespace"))
        self.pod_uid = provisioner_info.get("pod_uid") or None
        recorded = provisioner_info.get("owned")
        if isinstance(recorded, dict):
            self.owned = {kind: owned for kind, info in recorded.items() if (owned := Owned.from_info(info))}
        else:
            self.owned = self.legacy_owned(provisioner_info)
        if self.kernel_namespace and self.pod_name:
            self.follow_pods()
        self.workload.load(provisioner_info)

    def legacy_owned(self, provisioner_info: dict[str, Any]) -> dict[str, Owned]:
        """What provisioner info without uids (an older Kernel Fleet) says the kernel made: label-checked later."""
        owned: dict[str, Owned] = {}
        if self.pod_name:
            owned[POD] = Owned(self.pod_name, None)
        if provisioner_info.get("launch_secret"):
            owned[SECRET] = Owned(str(provisioner_info["launch_secret"]), None)
        if self.created_namespace and self.kernel_namespace:
            owned[NAMESPACE] = Owned(self.kernel_namespace, None)
        return self.workload.legacy_owned(provisioner_info, owned)


async def wait_namespace_gone(core: client.CoreV1Api, name: str, timeout: float, uid: str | None = None) -> None:
    """Follow one namespace until the API has deleted it (its content goes first)."""
    await wait_object_gone(core.list_namespace, name, uid, timeout)
