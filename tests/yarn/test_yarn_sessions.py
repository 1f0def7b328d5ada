"""A kernel on YARN survives its server: a real jupyter_server with the sessions extension is ``kill -9``-ed and
started again; it takes the kernel over from the saved provisioner info (the application id) — the same app, not
a new launch, and its orphan sweep at start leaves the claimed app alone — a variable set before the kill is read
back, and DELETE /api/kernels/<id> ends the application."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest
from jupyter_server_process import ServerProcess
from sessions_testing import forgotten, listed, read_back, saved, server_env, start_kernel

from kernelfleet.yarnlite import Cluster, ResourceManager

pytestmark = pytest.mark.timeout(240)


async def test_yarn_kernel_survives_a_killed_server(tmp_path: Path, make_kernelspec: Callable[..., str],
                                                    rm: ResourceManager, cluster: Cluster) -> None:
    make_kernelspec("kf_yarn", provisioner="yarn-provisioner",
                    config={"yarn_endpoint": rm.endpoint, "submission": "rest"})
    process = ServerProcess(tmp_path, server_env(tmp_path), tmp_path / "jupyter_server.log")
    try:
        server = await process.start()
        kernel_id, value = await start_kernel(server, "kf_yarn")
        info = saved(tmp_path)[kernel_id]["provisioner_info"]
        app = cluster.apps[info["application_id"]]
        assert app.state == "RUNNING" and app.name == kernel_id

        await process.kill()
        server = await process.start()
        await listed(server, {kernel_id}, within=60)
        assert await read_back(server, kernel_id) == repr(value)
        assert app.state == "RUNNING" and list(cluster.apps) == [app.id]  # taken over: no second launch
        assert "Traceback" not in process.log()

        await server.call("DELETE", f"/api/kernels/{kernel_id}")
        await asyncio.wait_for(app.ended.wait(), 30)
        assert app.state == "FINISHED", app.diagnostics
        await forgotten(tmp_path)
        assert await server.call("GET", "/api/kernels") == []
    finally:
        await process.stop()
