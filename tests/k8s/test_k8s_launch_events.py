"""Launch events of the Kubernetes engine in process (a real EventLogger and subscriber): a pod whose image cannot
be pulled forwards the kubelet's own Events (Pulling, Failed, BackOff) before the launch fails with its reason."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from launch_events_testing import EventServer, assert_in_order

from kernelfleet.kubelite import KubeLite
from kernelfleet.provisioners.base import LaunchError


async def test_image_pull_failure_is_seen_as_it_happens(kube: KubeLite, kernels_dir: Path,
                                                        k8s_spec: Callable[..., str]) -> None:
    server = EventServer()
    km = server.manager(kernels_dir, k8s_spec("pull_events", image_name="kernelfleet/not-there:404"))
    with pytest.raises(LaunchError) as err:
        await km.start_kernel()
    events = await server.until(km.kernel_id, "failed")
    assert_in_order(events, "accepted", "launcher_started", "scheduled", "image_pull", "failed")
    reasons = [e.get("reason") for e in events]
    assert "Pulling" in reasons and ("Failed" in reasons or "BackOff" in reasons), reasons
    pulling = next(e for e in events if e.get("reason") == "Pulling")
    assert "kernelfleet/not-there:404" in pulling["message"]
    assert events[-1]["message"] == str(err.value) and km.kernel_id in events[-1]["message"]
    assert {e["engine"] for e in events} == {"kubernetes"}
