"""A kernel started by an operator: the provisioner creates one custom resource and follows its state.

The resource is built from the same validated settings as a kernel pod (image, ids, environment, service
account, namespace), created through ``CustomObjectsApi`` and followed by the namespace's shared watch of that
resource type; the operator's driver pod is followed by the pod watch, as a kernel pod is. A failure state of the
resource fails the launch at once with the operator's own message (Gateway Provisioners only logged it at debug
level and waited for the timeout). Stopping deletes the resource and waits until it and its driver pod are gone.
The launch token reaches the driver as a kernel pod gets it, from the per-launch Secret (``k8s_secret``), which is
made before the resource. The resource is deleted by the uid its create answered and the driver pod only if it
names that resource as its owner (``k8s_owned``): a request whose name collides with someone else's application
fails and leaves it alone. Name and uid are persisted, so a restarted server can still poll and delete it.
"""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from kernelfleet.provisioners.k8s.names import dns_label
from kernelfleet.provisioners.k8s.owned import POD, RESOURCE, Deletion, Owned, owner_uids, uid_of
from kernelfleet.provisioners.k8s.provisioner import KubernetesProvisioner
from kernelfleet.provisioners.k8s.secret import LAUNCH_TOKEN, check_token_absent
from kernelfleet.provisioners.k8s.status import pod_failure, pod_ip
from kernelfleet.provisioners.k8s.watch import SharedWatch
from kernelfleet.provisioners.labels import LABEL_KERNEL_ID


class CustomResourceProvisioner(KubernetesProvisioner):
    """Subclasses name the resource type and build the resource; the lifecycle is here."""

    group: ClassVar[str] = ""
    version: ClassVar[str] = ""
    plural: ClassVar[str] = ""
    kind: ClassVar[str] = ""
    failed_states: ClassVar[frozenset[str]] = frozenset({"FAILED"})
    ended_states: ClassVar[frozenset[str]] = frozenset({"FAILED", "COMPLETED"})

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.resource_name: str | None = None
        self.resource: dict[str, Any] | None = None
        self.resources_watch: SharedWatch | None = None

    # ------------------------------------------------------------------------------------- hooks
    def build_resource(self) -> dict[str, Any]:
        """The custom resource for this kernel, from the settled (validated) values."""
        raise NotImplementedError

    def resource_state(self, obj: dict[str, Any] | None) -> tuple[str, str]:
        """(state, operator's message) of the resource; ("", "") while it has none."""
        raise NotImplementedError

    def driver_pod_name(self, obj: dict[str, Any] | None) -> str:
        """The pod the operator runs the kernel in."""
        raise NotImplementedError

    # ------------------------------------------------------------------------------------- settling
    def _settle(self, env: dict[str, str]) -> None:
        super()._settle(env)
        assert self.pod_name
        self.resource_name = dns_label(self.pod_name, max_length=56)  # room for the operator's "-driver" suffix
        self.resource = self.build_resource()
        check_token_absent(self.kernel_id, self.resource, self.container_env.get(LAUNCH_TOKEN, ""))

    # ------------------------------------------------------------------------------------- launch
    def follow_resources(self) -> SharedWatch:
        assert self.kernel_namespace is not None
        if self.resources_watch is None:
            self.resources_watch = SharedWatch.custom_objects(self.lease_api(), self.group, self.version, self.plural,
                                                              self.kernel_namespace)
        return self.resources_watch

    async def custom_objects(self) -> client.CustomObjectsApi:
        return client.CustomObjectsApi(await self.lease_api().client())

    async def create_object(self, core: client.CoreV1Api) -> None:
        """The launch Secret, then the resource; a leftover of this kernel is removed first, someone else's resource
        of the same name fails the launch and is left alone."""
        assert self.resource is not None and self.kernel_namespace and self.resource_name
        ns, name = self.kernel_namespace, self.resource_name
        self.follow_resources()
        self.pod_name = self.driver_pod_name(None)
        api = await self.custom_objects()
        await self.create_launch_secret(core)

        def hint(err: ApiException) -> str:
            return f" (is the {self.kind} operator installed?)" if err.status == 404 else ""

        await self.create_owned(
            RESOURCE, self.kind, name,
            lambda: api.create_namespaced_custom_object(self.group, self.version, ns, self.plural, self.resource),
            lambda: api.get_namespaced_custom_object(self.group, self.version, ns, self.plural, name),
            self.delete_resources, hint)
        self.log.info("Kernel %s: %s %s/%s created", self.kernel_id, self.kind, ns, name)

    async def launch_failure(self) -> str:
        assert self.resource_name
        watch = self.follow_resources()
        name = self.resource_name

        def failed(obj: dict[str, Any] | None) -> bool:
            return self.resource_state(obj)[0] in self.failed_states

        resource_failed = asyncio.ensure_future(watch.until(name, failed))
        pod_failed = asyncio.ensure_future(self._driver_failure())
        try:
            done, _ = await asyncio.wait({resource_failed, pod_failed}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            resource_failed.cancel()
            pod_failed.cancel()
        if resource_failed in done:
            state, message = self.resource_state(resource_failed.result())
            return f"{self.kind} {self.kernel_namespace}/{name} is {state}: {message or 'no message from the operator'}"
        return pod_failed.result()

    async def _driver_failure(self) -> str:
        """The driver pod, once the operator made it, fails the launch as a kernel pod would."""
        pods = self.follow_pods()
        watch = self.follow_resources()
        obj = await watch.until(self.resource_name or "", lambda o: bool(o and self.resource_state(o)[0]))
        self.pod_name = self.driver_pod_name(obj)
        await pods.until(self.pod_name, lambda p: p is not None)
        pod = await pods.until(self.pod_name, lambda p: pod_failure(p) is not None)
        return (f"driver pod {self.kernel_namespace}/{self.pod_name}: {pod_failure(pod)}{await self._log_tail(pod)}"
                f"{await self._events()}")

    def kernel_address(self, report: Any) -> str:
        obj = self.resources_watch.get(self.resource_name or "") if self.resources_watch else None
        self.pod_name = self.driver_pod_name(obj)
        ip = pod_ip(self.pods.get(self.pod_name) if self.pods else None)
        return ip or str(report.connection_info.get("ip") or "127.0.0.1")

    # ------------------------------------------------------------------------------------- state
    async def poll(self) -> int | None:
        watch = self.resources_watch
        if watch is None:
            return 0
        try:
            await asyncio.wait_for(watch.synced.wait(), self.delete_timeout)
        except TimeoutError:
            return None  # unknown is not dead
        obj = watch.get(self.resource_name or "")
        if obj is None:
            return 0
        state = self.resource_state(obj)[0]
        if state in self.ended_states:
            return 1 if state in self.failed_states else 0
        return await super().poll() if self.pods is not None and self.pods.get(self.pod_name or "") else None

    async def wait(self) -> int | None:
        watch = self.resources_watch
        if watch is None:
            return 0
        obj = await watch.until(self.resource_name or "",
                                lambda o: o is None or self.resource_state(o)[0] in self.ended_states)
        return 1 if obj is not None and self.resource_state(obj)[0] in self.failed_states else 0

    # ------------------------------------------------------------------------------------- stopping
    async def kill(self, restart: bool = False) -> None:
        await self.delete_resources()

    async def delete_resources(self) -> None:
        """Delete the resource this kernel created (by its uid; the operator's pods go with it) and wait until it
        and the driver pod are gone."""
        owned, ns = self.owned.get(RESOURCE), self.kernel_namespace
        if owned is None or not ns or self.api is None:
            return
        api = await self.custom_objects()
        outcome = await self.delete_owned(
            RESOURCE, f"{self.kind} {ns}/{owned.name}",
            lambda options: api.delete_namespaced_custom_object(self.group, self.version, ns, self.plural, owned.name,
                                                                body=options),
            lambda: api.get_namespaced_custom_object(self.group, self.version, ns, self.plural, owned.name),
            grace_period_seconds=0, propagation_policy="Background")
        if outcome is not Deletion.DELETED:
            return

        def gone(obj: dict[str, Any] | None) -> bool:
            return obj is None or (owned.uid is not None and uid_of(obj) != owned.uid)

        try:
            await self.follow_resources().until(owned.name, gone, timeout=self.delete_timeout)
        except TimeoutError:
            self.log.warning("Kernel %s: %s %s still exists %ss after its deletion", self.kernel_id, self.kind,
                             owned.name, self.delete_timeout)
            return
        await self._delete_driver_pod(owned)

    async def _delete_driver_pod(self, application: Owned) -> None:
        """Owner references take the driver pod away; make sure it is gone now, deleting it (by its uid) only if
        it names our application as its owner."""
        pods = await self._synced()
        driver = pods.get(self.pod_name or "") if pods is not None else None
        if driver is not None and application.uid is not None and application.uid in owner_uids(driver):
            self.owned[POD] = Owned(str(self.pod_name), uid_of(driver))
            await super().delete_pod()
        if pods is not None:
            await self._application_pods_gone(pods)

    async def _application_pods_gone(self, pods: SharedWatch) -> None:
        """Wait until the application's other pods (Spark executors, owned by the driver pod and labelled with
        the kernel id) are gone too: the garbage collector removes them after the driver, and a stopped kernel
        must leave nothing running."""
        left = [name for name, pod in pods.objects.items()
                if (pod.get("metadata", {}).get("labels") or {}).get(LABEL_KERNEL_ID) == self.kernel_id]
        try:
            async with asyncio.timeout(self.delete_timeout):
                for name in left:
                    await pods.until(name, lambda pod: pod is None)
        except TimeoutError:
            self.log.warning("Kernel %s: pods %s still exist %ss after the %s was deleted", self.kernel_id,
                             ", ".join(left), self.delete_timeout, self.kind)

    async def release(self, *, linger: bool = True) -> None:
        watch, self.resources_watch = self.resources_watch, None
        if watch is not None:
            await watch.release(linger=linger)
        await super().release(linger=linger)

    # ------------------------------------------------------------------------------------- persistence
    async def get_provisioner_info(self) -> dict[str, Any]:
        info = await super().get_provisioner_info()
        info["resource_name"] = self.resource_name
        return info

    def legacy_owned(self, provisioner_info: dict[str, Any]) -> dict[str, Owned]:
        owned = super().legacy_owned(provisioner_info)
        owned.pop(POD, None)  # the operator's driver pod, not ours
        if provisioner_info.get("resource_name"):
            owned[RESOURCE] = Owned(str(provisioner_info["resource_name"]), None)
        return owned

    async def load_provisioner_info(self, provisioner_info: dict[str, Any]) -> None:
        await super().load_provisioner_info(provisioner_info)
        self.resource_name = provisioner_info.get("resource_name")
        if self.resource_name and self.kernel_namespace:
            self.follow_resources()
