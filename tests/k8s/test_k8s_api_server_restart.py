"""The API server restarted under a running Kubernetes kernel (kubelite's API stopped and served again over the
same store; its kubelet and pods keep running, as a real node's do).

jupyter_client's restarter runs throughout: the blink must not make it declare the kernel dead. The shared pod
watch resumes from its resourceVersion, or relists when the history it needs was compacted meanwhile (410), and
then still carries what happens to the pod: a kernel killed afterwards is seen dead through it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from jupyter_client.ioloop import AsyncIOLoopKernelManager
from jupyter_client.kernelspec import KernelSpecManager
from kf_testing import connect, execute, interrupt_busy_cell
from kubernetes_asyncio import client
from reliability_figures import record_figure
from traitlets.config import Config

from kernelfleet.kubelite import KubeLite
from kernelfleet.provisioners.k8s.watch import log as watch_log


class LogSignal(logging.Handler):
    """Sets an asyncio event when a record containing ``text`` is logged (records come from the loop's thread)."""

    def __init__(self, text: str) -> None:
        super().__init__(logging.DEBUG)
        self.text = text
        self.seen = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if self.text in record.getMessage():
            self.seen.set()


@pytest.mark.parametrize("compacted", [False, True], ids=["resume", "410-relist"])
async def test_api_server_restart_declares_no_kernel_dead(
    compacted: bool, kube: KubeLite, core: client.CoreV1Api, k8s_spec: Callable[..., str], kernels_dir: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    caplog.set_level(logging.DEBUG, logger=watch_log.name)
    km = AsyncIOLoopKernelManager(
        kernel_name=k8s_spec(), kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(kernels_dir)]),
        config=Config({"AsyncIOLoopKernelRestarter": {"time_to_dead": 0.5}}),
    )
    events: list[str] = []
    await km.start_kernel()
    km.start_restarter()  # callbacks are kept by the restarter: added after it exists
    km.add_restart_callback(lambda: events.append("dead"), "dead")
    km.add_restart_callback(lambda: events.append("restart"), "restart")
    broke = LogSignal("pods watch in namespace")
    watch_log.addHandler(broke)
    try:
        kc = await connect(km)
        assert (await execute(kc, "x = 42\nx"))["result"] == "42"

        await kube.stop_api()
        async with asyncio.timeout(10):
            await broke.seen.wait()  # the watch noticed and is retrying
        assert await km.provisioner.poll() is None
        assert await km.is_alive()
        assert (await execute(kc, "x + 1"))["result"] == "43"
        await interrupt_busy_cell(km, kc)  # also lets the restarter poll several times while the API is down
        if compacted:  # something changes meanwhile and the history the watch would resume from is compacted
            kube.create_object(kube.configmaps_rt, "default", {"metadata": {"name": "blink"}})
            kube.compact()
        await kube.start_api()
        assert (await execute(kc, "x"))["result"] == "42"
        assert events == [], f"the restarter acted on an API server blink: {events}"
        kc.stop_channels()

        # The watch carries pod changes again: the kernel's container killed now is seen through it at once.
        km.stop_restarter()
        assert kube.kubelet is not None
        pod = (await core.list_namespaced_pod(km.provisioner.namespace,
                                              label_selector=f"kernel_id={km.kernel_id}")).items[0]
        [container] = await kube.kubelet.containers_of(pod.metadata.uid)
        killed = time.monotonic()
        await container.kill()
        async with asyncio.timeout(20):
            code = await km.provisioner.wait()
        record_figure(f"test_api_server_restart_declares_no_kernel_dead[{'410-relist' if compacted else 'resume'}]",
                      "kubernetes", "API server restart" + (" with compacted history" if compacted else ""),
                      "seconds from a kernel killed after the restart to its death seen", time.monotonic() - killed)
        assert code == 137 and not await km.is_alive()
        relisted = "history compacted, relisting" in caplog.text
        assert relisted == compacted, caplog.text
    finally:
        watch_log.removeHandler(broke)
        km.stop_restarter()
        await km.shutdown_kernel(now=True)
        if compacted:
            await core.delete_namespaced_config_map("blink", "default")
