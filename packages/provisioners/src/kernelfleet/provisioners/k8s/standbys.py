"""Warm-pool standbys as pods (``kubernetes-provisioner``): the ``StandbyEngine`` of ``kernelfleet.provisioners.pool``
for Kubernetes, and the provisioner's side of taking one from its pool.

A standby pod is what a cold launch of the kernelspec would create from a request without values
(``k8s.standby_spec``): same image, user, service account, resources, volumes, template; its registration token in
a Secret of its own that the pod reads by ``secretKeyRef``, deleted as soon as the container runs. It is named
``kf-standby-<hex>`` and labelled with the server's identity and its pool, without ``kernel_id``. The pool's pods are
followed by one shared watch of the namespace (selected by their pool label): a standby whose pod is deleted or
fails is replaced at once (``WarmPool.engine_lost``), even when its connection to the broker stays open (a lost
node), and nothing is polled.

Pod names cannot change, so at the claim the pod is **relabelled** (a JSON patch tested against its uid) with the
labels a cold pod of the kernel has, ``kernel_id`` and ``component=kernel`` among them, and the provisioner records
the pod's name and uid as its own (``owned``, provisioner info). From then on the namespace's kernel-pod watch, a
shutdown or restart (delete by uid), a reattach (by the recorded name and uid) and the orphan sweep (by the
labels) treat it exactly as a cold kernel's pod. A launch is served from the pool only when its pod would look like
the standby's but for names, labels, working directory and environment, which the claim brings
(``standby_spec.pod_shape``); any other (another image, uid, namespace, resources, volumes, service account, a
KERNEL_POD_NAME, a namespace of its own, a pod template with other objects, spark-submit or an operator's resource)
starts cold.
"""

from __future__ import annotations

import asyncio
import getpass
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from kernelfleet.protocol import contract
from kernelfleet.protocol.standby import Claim
from kernelfleet.provisioners.broker import ResponseBroker
from kernelfleet.provisioners.container import LaunchInputs, settle_container
from kernelfleet.provisioners.k8s.client import KubeApi, describe_api_error
from kernelfleet.provisioners.k8s.owned import POD, Deletion, Owned, delete_by_uid, uid_of
from kernelfleet.provisioners.k8s.standby_spec import StandbyPod, claim_patch, pod_shape, standby_pod
from kernelfleet.provisioners.k8s.status import pod_ended, pod_failure
from kernelfleet.provisioners.k8s.watch import SharedWatch
from kernelfleet.provisioners.k8s.workloads import PodWorkload
from kernelfleet.provisioners.pool import ClaimFailed, WarmPool, pool_for
from kernelfleet.provisioners.pool.engine_calls import start_to_completion, stop_to_completion
from kernelfleet.provisioners.pool.spec import LABEL_POOL, claim_env
from kernelfleet.provisioners.server_identity import SERVER_ID_ENV

if TYPE_CHECKING:
    from kernelfleet.provisioners.k8s.provisioner import KubernetesProvisioner

log = logging.getLogger("kernelfleet.kubernetes")

REFERENCE_ID = f"standby-{'0' * 20}"  # the standby a launch is compared with (``poolable``); never created
STARTED_PHASES = frozenset({"Running", "Succeeded", "Failed"})  # the container was created: its env was read


@dataclass(eq=False)
class KubernetesStandby:
    """One standby pod: the API lease and pool watch it holds (handed to the kernel at its claim) and what it made."""

    api: KubeApi
    watch: SharedWatch
    namespace: str
    name: str
    secret_name: str
    uid: str | None = None
    secret_uid: str | None = None
    monitor: asyncio.Task[None] | None = field(default=None, repr=False)

    def ours(self, pod: dict[str, Any] | None) -> dict[str, Any] | None:
        """``pod`` if it is this standby's (by uid), else None."""
        return pod if pod is not None and self.uid is not None and uid_of(pod) == self.uid else None


class KubernetesStandbys:
    """Creates, watches and deletes one pool's standby pods."""

    name = "kubernetes"

    def __init__(self, pool: str, build: Callable[[str, str], StandbyPod], *, grace_period: int,
                 delete_timeout: float, fail_unschedulable: bool) -> None:
        self.pool = pool
        self.build = build  # (standby id, registration token) -> its pod and Secret
        self.reference = build(REFERENCE_ID, secrets.token_hex(24))  # what launches are compared with
        self.grace_period = grace_period
        self.delete_timeout = delete_timeout
        self.fail_unschedulable = fail_unschedulable
        self.on_gone: Callable[[KubernetesStandby, str], None] | None = None  # WarmPool.engine_lost

    async def start(self, standby_id: str, token: str) -> KubernetesStandby:
        """Create the Secret and the pod; a cancelled start (the pool closing) still deletes what it made."""
        return await start_to_completion(self._start(standby_id, token), self.stop)

    async def _start(self, standby_id: str, token: str) -> KubernetesStandby:
        spec = self.build(standby_id, token)
        api = KubeApi.acquire()
        ns = spec.namespace
        handle = KubernetesStandby(api, SharedWatch.pods(api, ns, f"{LABEL_POOL}={self.pool}"), ns, spec.name,
                                   spec.secret["metadata"]["name"])
        try:
            core = client.CoreV1Api(await api.client())
            handle.secret_uid = uid_of(await core.create_namespaced_secret(ns, spec.secret))
            handle.uid = uid_of(await core.create_namespaced_pod(ns, spec.manifest))
        except Exception as err:  # refused or unreachable: the pool logs it and retries with a back-off
            await self._delete(handle)
            raise RuntimeError(f"Kubernetes could not create standby pod {ns}/{spec.name}: "
                               f"{describe_api_error(err)}") from None
        handle.monitor = asyncio.ensure_future(self._monitor(handle))
        return handle

    async def _monitor(self, handle: KubernetesStandby) -> None:
        """Once the container runs, delete the registration token's Secret (its value was read when the container was
        created); once the pod ends or is deleted, tell the pool (if the standby still waits there)."""
        watch = handle.watch
        try:
            await watch.until(handle.name, lambda pod: handle.ours(pod) is not None)
            pod = await watch.until(handle.name, lambda pod: handle.ours(pod) is None or (
                (handle.ours(pod) or {}).get("status") or {}).get("phase") in STARTED_PHASES)
            await self._delete_secret(handle)
            if handle.ours(pod) is not None:
                pod = await watch.until(handle.name, lambda pod: pod_ended(handle.ours(pod)))
        except (RuntimeError, ApiException, OSError) as err:  # the watch closed (the server's loop ends), or the API
            log.debug("Pool %s: standby pod %s/%s no longer followed: %s", self.pool, handle.namespace, handle.name,
                      describe_api_error(err))
            return
        if self.on_gone is not None:
            self.on_gone(handle, self._describe_end(handle, pod))

    def _describe_end(self, handle: KubernetesStandby, pod: dict[str, Any] | None) -> str:
        pod = handle.ours(pod)
        where = f"pod {handle.namespace}/{handle.name}"
        if pod is None:
            return f"{where} was deleted"
        return f"{where}: {pod_failure(pod, fail_unschedulable=self.fail_unschedulable) or 'the pod ended'}"

    async def exited(self, handle: KubernetesStandby) -> str:
        """Until the watch shows the pod ended, failed (an image that cannot be pulled, unschedulable) or deleted."""
        def over(pod: dict[str, Any] | None) -> bool:
            ours = handle.ours(pod)
            return ours is None or pod_ended(ours) or pod_failure(ours, fail_unschedulable=self.fail_unschedulable) \
                is not None

        await handle.watch.until(handle.name, lambda pod: handle.ours(pod) is not None)
        return self._describe_end(handle, await handle.watch.until(handle.name, over))

    async def stop(self, handle: KubernetesStandby) -> None:
        """Delete the pod (by its uid) and its Secret, wait until the pod is gone, give back the watch and the API
        lease; completes even when cancelled (the pool closing)."""
        await stop_to_completion(self._delete(handle))

    async def _delete(self, handle: KubernetesStandby) -> None:
        if handle.monitor is not None:
            handle.monitor.cancel()
        try:
            await self._delete_secret(handle)
            if handle.uid is not None:
                core = client.CoreV1Api(await handle.api.client())
                outcome = await delete_by_uid(
                    lambda options: core.delete_namespaced_pod(handle.name, handle.namespace, body=options),
                    handle.uid, grace_period_seconds=self.grace_period, propagation_policy="Background")
                if outcome is Deletion.DELETED:
                    await handle.watch.until(handle.name, lambda pod: handle.ours(pod) is None,
                                             timeout=self.delete_timeout)
        except (ApiException, TimeoutError, OSError) as err:  # the orphan sweep takes it once it has ended
            log.warning("Pool %s: standby pod %s/%s could not be deleted: %s", self.pool, handle.namespace,
                        handle.name, describe_api_error(err))
        finally:
            await self.release(handle)

    async def _delete_secret(self, handle: KubernetesStandby) -> None:
        uid, handle.secret_uid = handle.secret_uid, None
        if uid is None:
            return
        core = client.CoreV1Api(await handle.api.client())
        await delete_by_uid(
            lambda options: core.delete_namespaced_secret(handle.secret_name, handle.namespace, body=options), uid)

    @staticmethod
    async def release(handle: KubernetesStandby) -> None:
        await handle.watch.release()
        await handle.api.release()


# ------------------------------------------------------------------------------------- the provisioner's side
def _standby_builder(p: KubernetesProvisioner, pool: str) -> Callable[[str, str], StandbyPod]:
    """How each standby of ``p``'s pool is built: a cold launch's pod, settled from a request without values (the
    server's user as KERNEL_USERNAME, as a request without one gets)."""
    base_env = {
        "KERNEL_LANGUAGE": p.launch_env["KERNEL_LANGUAGE"],
        contract.RESPONSE_ADDRESS: p.launch_env[contract.RESPONSE_ADDRESS],
        contract.PUBLIC_KEY: p.launch_env[contract.PUBLIC_KEY],
        contract.PORT_RANGE: "0..0",
        contract.TRANSPORT_ENCRYPTION: p.launch_env[contract.TRANSPORT_ENCRYPTION],
        SERVER_ID_ENV: p.server_id,
        contract.STANDBY_POOL: pool,
    }
    settings, container_settings, server_id = p.kubernetes_settings(), p.container_settings(), p.server_id
    argv_settings = p.argv_settings()
    spec_env = dict(p.kernel_spec.env) if p.kernel_spec is not None else {}
    template, spec_dir = p.template_path(), p.spec_dir()
    username = getpass.getuser()

    def build(standby_id: str, token: str) -> StandbyPod:
        launch_env = {**base_env, contract.KERNEL_ID: standby_id, contract.STANDBY_ID: standby_id,
                      contract.LAUNCH_TOKEN: token}
        inputs = LaunchInputs(launch_env=launch_env, argv_settings=argv_settings, spec_env=spec_env)
        container = settle_container(standby_id, container_settings, {"KERNEL_USERNAME": username}, inputs)
        return standby_pod(settings, server_id, pool, standby_id, container, username, template, spec_dir)

    return build


def poolable(p: KubernetesProvisioner, engine: KubernetesStandbys | None) -> str | None:
    """Why this launch cannot come from ``p``'s pool (None: it can). Without ``engine`` (before the pool exists):
    only what the kernelspec decides, so that no pool is made for a kernelspec that never could use it."""
    if p.kernel_language.lower() != "python":
        return "only the Python launcher has a standby mode"
    if type(p.workload) is not PodWorkload:
        return "spark-submit and operator resources start cold"
    if p.created_namespace:
        return "a kernel in a namespace of its own starts cold"
    if p.template_objects:  # each kernel gets its own; a standby pod was made without them
        return "the pod template creates other objects with the kernel (template_object_kinds)"
    if engine is None:
        return None
    if p.requested_pod_name:
        return "the request names the pod (KERNEL_POD_NAME)"
    reference = engine.reference
    if p.kernel_namespace != reference.namespace or p.manifest is None:
        return "the request chose another namespace than the pool's"
    names = set(p.container_env) | set(reference.env)
    if pod_shape(p.manifest, names) != pod_shape(reference.manifest, names):
        return "the request's pod differs from the pool's (image, user, resources, volumes or service account)"
    return None


def kubernetes_pool(p: KubernetesProvisioner, broker: ResponseBroker) -> WarmPool:
    """The running loop's pool for ``p``'s kernelspec and settings, created on first use."""
    kernel_name = p.pool_kernel_name()
    identity = p.pool_identity(p.container_settings(), p.kubernetes_settings(), str(p.template_path() or ""))

    def create() -> WarmPool:
        engine = KubernetesStandbys(identity, _standby_builder(p, identity), grace_period=p.delete_grace_period,
                                    delete_timeout=p.delete_timeout, fail_unschedulable=p.fail_on_unschedulable)
        pool = WarmPool(p.pool_settings(identity), engine, broker, p.log)
        engine.on_gone = pool.engine_lost
        p.log.info("Pool %s: created for kernelspec %s (%d standbys, pods in namespace %s)", identity, kernel_name,
                   pool.settings.size, engine.reference.namespace)
        return pool

    return pool_for(identity, create)


async def claim_kubernetes_standby(p: KubernetesProvisioner) -> tuple[WarmPool | None, KubernetesStandby | None]:
    """Take a standby from ``p``'s pool, relabel its pod as the kernel's and claim it: the pool taken from
    (``launched()`` is due when the launch ends) and the claimed standby, None when the launch must go cold."""
    assert p.pending is not None and p.manifest is not None
    why_not = poolable(p, None)
    if why_not is None:
        try:
            pool = kubernetes_pool(p, await ResponseBroker.instance(config=p.config))
        except ValueError as err:  # the standby's pod cannot be built (a template that needs a request value)
            why_not = f"no standby pod can be built: {err}"
        else:
            assert isinstance(pool.engine, KubernetesStandbys)
            engine = pool.engine
            why_not = poolable(p, engine)
    if why_not is not None:
        p.log.debug("Kernel %s: cold launch (%s)", p.kernel_id, why_not)
        return None, None
    link = pool.take()
    if link is None:
        return None, None
    standby: KubernetesStandby = link.handle
    if standby.monitor is not None:
        standby.monitor.cancel()  # the kernel's own watch follows the pod from now on
    kernel_env = {**p.container_env, "KERNEL_POD_NAME": standby.name}
    claim = Claim(str(p.kernel_id), p.pending.token, claim_env(kernel_env, engine.reference.env), p.working_dir,
                  p.launch_env[contract.PORT_RANGE])
    labels = dict(p.manifest["metadata"]["labels"])
    try:
        core = client.CoreV1Api(await standby.api.client())
        await core.patch_namespaced_pod(standby.name, standby.namespace, claim_patch(str(standby.uid), labels))
        await link.claim(claim, timeout=p.comm_timeout)
    except ApiException as err:
        pool.discard(link, f"Kubernetes could not relabel pod {standby.namespace}/{standby.name} as kernel "
                           f"{p.kernel_id}'s: {describe_api_error(err)}")
        return pool, None
    except ClaimFailed as err:
        pool.discard(link, str(err))
        return pool, None
    p.log.info("Kernel %s: claimed standby %s of pool %s (pod %s/%s)", p.kernel_id, link.standby_id, pool.pool_id,
               standby.namespace, standby.name)
    return pool, standby


async def take_over(p: KubernetesProvisioner, standby: KubernetesStandby) -> None:
    """Make the claimed standby's pod the kernel's: its name and uid recorded as a created pod's are, the kernel's
    environment saying so; the standby's API lease becomes the kernel's, its pool watch is given back."""
    p.pod_name, p.pod_uid = standby.name, standby.uid
    p.owned[POD] = Owned(standby.name, standby.uid)
    p.container_env["KERNEL_POD_NAME"] = standby.name
    await standby.watch.release()
    if p.api is None:
        p.api = standby.api
    else:
        await standby.api.release()
