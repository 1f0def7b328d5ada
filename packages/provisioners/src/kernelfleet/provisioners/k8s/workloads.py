"""What a Kubernetes kernel is, as a strategy chosen once per provisioner: a pod this server creates
(``PodWorkload``), or a custom resource an operator turns into a driver pod (``CustomResourceWorkload``).

``KubernetesProvisioner`` does everything both share — settle the launch, the namespace, the launch-token Secret,
the pod watch, deleting by uid, persistence — and asks its workload for what differs: what to create, how a launch
fails, where the kernel is, whether it still runs, what a stop deletes, what a restarted server must remember. The
resource type itself is data (``ResourceKind``, e.g. ``spark_application.SPARK_APPLICATION``), so a new operator
needs a builder and a kind, not a subclass overriding the lifecycle.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from kernelfleet.protocol import Report
from kernelfleet.provisioners.k8s.owned import POD, RESOURCE, Deletion, Owned, owner_uids, uid_of
from kernelfleet.provisioners.k8s.secret import check_token_absent
from kernelfleet.provisioners.k8s.settings import PodLaunch
from kernelfleet.provisioners.k8s.status import exit_code, pod_ended, pod_failure, pod_ip, pod_transient
from kernelfleet.provisioners.k8s.watch import SharedWatch
from kernelfleet.provisioners.labels import LABEL_KERNEL_ID
from kernelfleet.provisioners.spec_values import dns_label

if TYPE_CHECKING:
    from kernelfleet.provisioners.k8s.provisioner import KubernetesProvisioner

RESOURCE_NAME_LENGTH = 56  # room for an operator's "-driver" suffix


class Workload:
    """The part of a Kubernetes kernel's lifecycle that depends on what is created; ``p`` is its provisioner."""

    def __init__(self, provisioner: KubernetesProvisioner) -> None:
        self.p = provisioner

    def settle(self, launch: PodLaunch) -> None:
        """Build what this workload creates, once the launch is settled (``pre_launch``)."""

    async def create(self, core: client.CoreV1Api) -> None:
        """Create the launch-token Secret, then the workload's object."""
        raise NotImplementedError

    async def launch_failure(self) -> str:
        """A description as soon as the launch is known to have failed; otherwise waits."""
        raise NotImplementedError

    def kernel_address(self, report: Report) -> str | None:
        """The kernel pod's IP, if known."""
        raise NotImplementedError

    async def poll(self) -> int | None:
        raise NotImplementedError

    async def wait(self) -> int | None:
        raise NotImplementedError

    async def delete(self) -> None:
        """What a kill or a stop deletes."""
        raise NotImplementedError

    async def release(self, *, linger: bool) -> None:
        """Give back this workload's own watches."""

    def info(self) -> dict[str, Any]:
        return {}

    def legacy_owned(self, provisioner_info: Mapping[str, Any], owned: dict[str, Owned]) -> dict[str, Owned]:
        """What provisioner info without uids says this workload made."""
        return owned

    def load(self, provisioner_info: Mapping[str, Any]) -> None:
        """Take the kernel over after a server restart."""


class PodWorkload(Workload):
    """The kernel in a pod this server creates from the settled manifest."""

    async def create(self, core: client.CoreV1Api) -> None:
        """Create the token's Secret, then the pod; a leftover of this kernel (a crashed server, a restart) is
        removed first, someone else's pod of the same name fails the launch and is left alone."""
        p = self.p
        assert p.manifest is not None and p.kernel_namespace and p.pod_name
        ns, name, manifest = p.kernel_namespace, p.pod_name, p.manifest
        await p.create_launch_secret(core)
        p.pod_uid = None
        await p.create_owned(POD, "pod", name, lambda: core.create_namespaced_pod(ns, manifest),
                             lambda: core.read_namespaced_pod(name, ns), p.delete_pod)
        p.pod_uid = p.owned[POD].uid

    async def launch_failure(self) -> str:
        """Why the pod will never report: a definitive reason as soon as the watch shows one; a transient one
        (``pod_transient``) only once the kubelet has retried it for ``transient_error_window`` seconds."""
        p = self.p
        assert p.pod_name
        name, pods = p.pod_name, p.follow_pods()
        unschedulable = p.fail_on_unschedulable

        def failure(pod: dict[str, Any] | None) -> str | None:
            return pod_failure(p.kernel_pod(pod), fail_unschedulable=unschedulable)

        def transient(pod: dict[str, Any] | None) -> str | None:
            return pod_transient(p.kernel_pod(pod))

        await pods.until(name, lambda pod: pod is not None)  # the watch has seen the pod we created
        loop = asyncio.get_running_loop()
        deadline: float | None = None
        while True:  # every transient spell counts against one window from the first
            pod = await pods.until(name, lambda pod: failure(pod) is not None or transient(pod) is not None)
            reason = failure(pod)
            if reason is not None:
                break
            if deadline is None:
                deadline = loop.time() + p.transient_error_window
                p.log.info("Kernel %s: pod %s/%s: %s; retried for up to %gs", p.kernel_id, p.kernel_namespace, name,
                           transient(pod), p.transient_error_window)
            try:
                pod = await pods.until(name, lambda pod: failure(pod) is not None or transient(pod) is None,
                                       timeout=max(0.0, deadline - loop.time()))
            except TimeoutError:
                pod = p.kernel_pod(pods.get(name))
                last = transient(pod) or failure(pod) or "the container did not start"
                reason = (f"{last} (still after the {p.transient_error_window:g}s that transient errors are "
                          "retried, transient_error_window)")
                break
            reason = failure(pod)
            if reason is not None:
                break
        return f"pod {p.kernel_namespace}/{name}: {reason}{await p.log_tail(pod)}{await p.events()}"

    def kernel_address(self, report: Report) -> str | None:
        p = self.p
        return pod_ip(p.kernel_pod(p.pods.get(p.pod_name or "")) if p.pods else None)

    async def poll(self) -> int | None:
        p = self.p
        pods = await p.synced_pods()
        if pods is None or not p.pod_name:
            return 0 if p.pods is None else None  # unknown is not dead
        pod = p.kernel_pod(pods.get(p.pod_name))
        if not pod_ended(pod):
            return None
        p.note_end(pod)
        return exit_code(pod)

    async def wait(self) -> int | None:
        p = self.p
        pods = await p.synced_pods()
        if pods is None or not p.pod_name:
            return 0
        pod = p.kernel_pod(await pods.until(p.pod_name, lambda o: pod_ended(p.kernel_pod(o))))
        p.note_end(pod)
        return exit_code(pod)

    async def delete(self) -> None:
        await self.p.delete_pod()


@dataclass(frozen=True)
class ResourceKind:
    """A custom resource type an operator runs kernels as: where its API is, which of its states mean failed or
    ended, and how its status names its state and its driver pod."""

    group: str
    version: str
    plural: str
    kind: str
    failed_states: frozenset[str]
    ended_states: frozenset[str]
    state: Callable[[Mapping[str, Any] | None], tuple[str, str]]  # (state, the operator's message)
    driver_pod: Callable[[Mapping[str, Any] | None, str], str]  # (resource, its name) -> the driver pod's name


class CustomResourceWorkload(Workload):
    """The kernel as the driver of a custom resource: created through ``CustomObjectsApi``, followed by the
    namespace's shared watch of that type (a failure state fails the launch with the operator's message), its
    driver pod followed as a kernel pod is. Deleted by uid; the driver pod only if it names the resource as its
    owner."""

    def __init__(self, provisioner: KubernetesProvisioner, kind: ResourceKind,
                 build: Callable[[PodLaunch, str], dict[str, Any]]) -> None:
        super().__init__(provisioner)
        self.kind = kind
        self.build = build
        self.driver = PodWorkload(provisioner)  # the operator's driver pod, once it is there
        self.resource_name: str | None = None
        self.resource: dict[str, Any] | None = None
        self.watch: SharedWatch | None = None

    def settle(self, launch: PodLaunch) -> None:
        self.resource_name = dns_label(launch.pod_name, max_length=RESOURCE_NAME_LENGTH)
        self.resource = self.build(launch, self.resource_name)
        check_token_absent(launch.kernel_id, self.resource, launch.token)

    def state(self, obj: Mapping[str, Any] | None) -> str:
        return self.kind.state(obj)[0]

    def driver_pod_name(self, obj: Mapping[str, Any] | None) -> str:
        return self.kind.driver_pod(obj, str(self.resource_name))

    def follow(self) -> SharedWatch:
        p, k = self.p, self.kind
        assert p.kernel_namespace is not None
        if self.watch is None:
            self.watch = SharedWatch.custom_objects(p.lease_api(), k.group, k.version, k.plural, p.kernel_namespace)
        return self.watch

    async def custom_objects(self) -> client.CustomObjectsApi:
        return client.CustomObjectsApi(await self.p.lease_api().client())

    # ------------------------------------------------------------------------------------- launch
    async def create(self, core: client.CoreV1Api) -> None:
        """The launch Secret, then the resource; a leftover of this kernel is removed first, someone else's resource
        of the same name fails the launch and is left alone."""
        p, k = self.p, self.kind
        assert self.resource is not None and p.kernel_namespace and self.resource_name
        ns, name, resource = p.kernel_namespace, self.resource_name, self.resource
        self.follow()
        p.pod_name = self.driver_pod_name(None)
        api = await self.custom_objects()
        await p.create_launch_secret(core)

        def hint(err: ApiException) -> str:
            return f" (is the {k.kind} operator installed?)" if err.status == 404 else ""

        await p.create_owned(
            RESOURCE, k.kind, name,
            lambda: api.create_namespaced_custom_object(k.group, k.version, ns, k.plural, resource),
            lambda: api.get_namespaced_custom_object(k.group, k.version, ns, k.plural, name),
            self.delete, hint)
        p.log.info("Kernel %s: %s %s/%s created", p.kernel_id, k.kind, ns, name)

    async def launch_failure(self) -> str:
        assert self.resource_name
        watch, name = self.follow(), self.resource_name

        def failed(obj: dict[str, Any] | None) -> bool:
            return self.state(obj) in self.kind.failed_states

        resource_failed = asyncio.ensure_future(watch.until(name, failed))
        pod_failed = asyncio.ensure_future(self._driver_failure())
        try:
            done, _ = await asyncio.wait({resource_failed, pod_failed}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            resource_failed.cancel()
            pod_failed.cancel()
        if resource_failed in done:
            state, message = self.kind.state(resource_failed.result())
            return (f"{self.kind.kind} {self.p.kernel_namespace}/{name} is {state}: "
                    f"{message or 'no message from the operator'}")
        return pod_failed.result()

    async def _driver_failure(self) -> str:
        """The driver pod, once the operator made it, fails the launch as a kernel pod would."""
        p = self.p
        pods, watch = p.follow_pods(), self.follow()
        obj = await watch.until(self.resource_name or "", lambda o: bool(o and self.state(o)))
        p.pod_name = self.driver_pod_name(obj)
        await pods.until(p.pod_name, lambda pod: pod is not None)
        pod = await pods.until(p.pod_name, lambda pod: pod_failure(pod) is not None)
        return (f"driver pod {p.kernel_namespace}/{p.pod_name}: {pod_failure(pod)}{await p.log_tail(pod)}"
                f"{await p.events()}")

    def kernel_address(self, report: Report) -> str | None:
        p = self.p
        obj = self.watch.get(self.resource_name or "") if self.watch else None
        p.pod_name = self.driver_pod_name(obj)
        return pod_ip(p.pods.get(p.pod_name) if p.pods else None)

    # ------------------------------------------------------------------------------------- state
    async def poll(self) -> int | None:
        p, watch = self.p, self.watch
        if watch is None:
            return 0
        try:
            await asyncio.wait_for(watch.synced.wait(), p.delete_timeout)
        except TimeoutError:
            return None  # unknown is not dead
        obj = watch.get(self.resource_name or "")
        if obj is None:
            return 0
        state = self.state(obj)
        if state in self.kind.ended_states:
            return 1 if state in self.kind.failed_states else 0
        return await self.driver.poll() if p.pods is not None and p.pods.get(p.pod_name or "") else None

    async def wait(self) -> int | None:
        watch = self.watch
        if watch is None:
            return 0
        obj = await watch.until(self.resource_name or "",
                                lambda o: o is None or self.state(o) in self.kind.ended_states)
        return 1 if obj is not None and self.state(obj) in self.kind.failed_states else 0

    # ------------------------------------------------------------------------------------- stopping
    async def delete(self) -> None:
        """Delete the resource this kernel created (by its uid; the operator's pods go with it) and wait until it
        and the driver pod are gone."""
        p, k = self.p, self.kind
        owned, ns = p.owned.get(RESOURCE), p.kernel_namespace
        if owned is None or not ns or p.api is None:
            return
        api = await self.custom_objects()
        outcome = await p.delete_owned(
            RESOURCE, f"{k.kind} {ns}/{owned.name}",
            lambda options: api.delete_namespaced_custom_object(k.group, k.version, ns, k.plural, owned.name,
                                                                body=options),
            lambda: api.get_namespaced_custom_object(k.group, k.version, ns, k.plural, owned.name),
            grace_period_seconds=0, propagation_policy="Background")
        if outcome is not Deletion.DELETED:
            return

        def gone(obj: dict[str, Any] | None) -> bool:
            return obj is None or (owned.uid is not None and uid_of(obj) != owned.uid)

        try:
            await self.follow().until(owned.name, gone, timeout=p.delete_timeout)
        except TimeoutError:
            p.log.warning("Kernel %s: %s %s still exists %ss after its deletion", p.kernel_id, k.kind, owned.name,
                          p.delete_timeout)
            return
        await self._delete_driver_pod(owned)

    async def _delete_driver_pod(self, application: Owned) -> None:
        """Owner references take the driver pod away; make sure it is gone now, deleting it (by its uid) only if
        it names our resource as its owner."""
        p = self.p
        pods = await p.synced_pods()
        driver = pods.get(p.pod_name or "") if pods is not None else None
        if driver is not None and application.uid is not None and application.uid in owner_uids(driver):
            p.owned[POD] = Owned(str(p.pod_name), uid_of(driver))
            await p.delete_pod()
        if pods is not None:
            await self._application_pods_gone(pods)

    async def _application_pods_gone(self, pods: SharedWatch) -> None:
        """Wait until the application's other pods (Spark executors, owned by the driver pod and labelled with
        the kernel id) are gone too: the garbage collector removes them after the driver, and a stopped kernel
        must leave nothing running."""
        p = self.p
        left = [name for name, pod in pods.objects.items()
                if (pod.get("metadata", {}).get("labels") or {}).get(LABEL_KERNEL_ID) == p.kernel_id]
        try:
            async with asyncio.timeout(p.delete_timeout):
                for name in left:
                    await pods.until(name, lambda pod: pod is None)
        except TimeoutError:
            p.log.warning("Kernel %s: pods %s still exist %ss after its %s was deleted", p.kernel_id,
                          ", ".join(left), p.delete_timeout, self.kind.kind)

    async def release(self, *, linger: bool) -> None:
        watch, self.watch = self.watch, None
        if watch is not None:
            await watch.release(linger=linger)

    # ------------------------------------------------------------------------------------- persistence
    def info(self) -> dict[str, Any]:
        return {"resource_name": self.resource_name}

    def legacy_owned(self, provisioner_info: Mapping[str, Any], owned: dict[str, Owned]) -> dict[str, Owned]:
        owned.pop(POD, None)  # the operator's driver pod, not ours
        if provisioner_info.get("resource_name"):
            owned[RESOURCE] = Owned(str(provisioner_info["resource_name"]), None)
        return owned

    def load(self, provisioner_info: Mapping[str, Any]) -> None:
        self.resource_name = provisioner_info.get("resource_name")
        if self.resource_name and self.p.kernel_namespace:
            self.follow()
