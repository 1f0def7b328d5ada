"""yarnlite's REST API: the shapes and errors YARN documents, AMs as real processes, HA redirects."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp

from kernelfleet.yarnlite import FINAL, Cluster, ResourceManager, ResourceManagerPair


async def submit(http: aiohttp.ClientSession, endpoint: str, command: str, queue: str = "default",
                 env: dict[str, str] | None = None) -> str:
    async with http.post(f"{endpoint}/apps/new-application?user.name=alice") as response:
        assert response.status == 200
        new = await response.json()
    assert set(new) == {"application-id", "maximum-resource-capability"}
    app_id = new["application-id"]
    context = {"application-id": app_id, "application-name": "test", "queue": queue,
               "application-tags": {"tag": ["Kernel-X"]},
               "am-container-spec": {"commands": {"command": command},
                                     "environment": {"entry": [{"key": k, "value": v}
                                                               for k, v in (env or {}).items()]}}}
    async with http.post(f"{endpoint}/apps?user.name=alice", json=context) as response:
        assert response.status == 202, await response.text()
        assert response.headers["Location"].endswith(f"/apps/{app_id}")
    return app_id


async def until_final(cluster: Cluster, app_id: str) -> None:
    await asyncio.wait_for(cluster.apps[app_id].ended.wait(), 30)


async def app(http: aiohttp.ClientSession, endpoint: str, app_id: str) -> dict[str, Any]:
    async with http.get(f"{endpoint}/apps/{app_id}") as response:
        assert response.status == 200
        return dict((await response.json())["app"])


async def test_am_runs_with_its_environment_and_finishes(rm: ResourceManager, cluster: Cluster,
                                                         http: aiohttp.ClientSession) -> None:
    app_id = await submit(http, rm.endpoint, 'echo "$GREETING from $CONTAINER_ID"', env={"GREETING": "hello"})
    await until_final(cluster, app_id)
    body = await app(http, rm.endpoint, app_id)
    assert (body["state"], body["finalStatus"], body["user"], body["applicationTags"]) == (
        "FINISHED", "SUCCEEDED", "alice", "kernel-x")
    assert body["amHostHttpAddress"] == cluster.node_http
    stdout = (cluster.apps[app_id].log_dir / "stdout").read_text()  # type: ignore[operator]
    assert stdout.startswith("hello from container_")


async def test_am_exit_fails_the_app_with_yarns_diagnostics(rm: ResourceManager, cluster: Cluster,
                                                            http: aiohttp.ClientSession) -> None:
    app_id = await submit(http, rm.endpoint, "echo broken >&2; exit 3")
    await until_final(cluster, app_id)
    body = await app(http, rm.endpoint, app_id)
    assert (body["state"], body["finalStatus"]) == ("FAILED", "FAILED")
    assert "exited with  exitCode: 3" in body["diagnostics"] and "broken" in body["diagnostics"]


async def test_unknown_queue_and_unknown_app(rm: ResourceManager, cluster: Cluster,
                                             http: aiohttp.ClientSession) -> None:
    app_id = await submit(http, rm.endpoint, "true", queue="nosuch")
    await until_final(cluster, app_id)
    body = await app(http, rm.endpoint, app_id)
    assert body["state"] == "FAILED"
    assert body["diagnostics"] == f"Application {app_id} submitted by user alice to unknown queue: nosuch"
    async with http.get(f"{rm.endpoint}/apps/application_1_9999") as response:
        assert response.status == 404
        remote = (await response.json())["RemoteException"]
    assert remote == {"exception": "NotFoundException",
                      "message": "java.lang.Exception: app with id: application_1_9999 not found",
                      "javaClassName": "org.apache.hadoop.yarn.webapp.NotFoundException"}


async def test_full_queue_keeps_the_app_accepted_until_killed(rm: ResourceManager, cluster: Cluster,
                                                              http: aiohttp.ClientSession) -> None:
    app_id = await submit(http, rm.endpoint, "sleep 60", queue="full")
    async with http.get(f"{rm.endpoint}/apps/{app_id}/state") as response:
        assert await response.json() == {"state": "ACCEPTED"}
    assert "Queue 'full' is full" in (await app(http, rm.endpoint, app_id))["diagnostics"]
    async with http.put(f"{rm.endpoint}/apps/{app_id}/state", json={"state": "KILLED"}) as response:
        assert response.status == 200 and await response.json() == {"state": "KILLED"}
    async with http.put(f"{rm.endpoint}/apps/{app_id}/state", json={"state": "RUNNING"}) as response:
        assert response.status == 400
        assert (await response.json())["RemoteException"]["exception"] == "BadRequestException"


async def test_kill_stops_a_running_am(rm: ResourceManager, cluster: Cluster, http: aiohttp.ClientSession) -> None:
    app_id = await submit(http, rm.endpoint, "echo started; exec sleep 60")
    application = cluster.apps[app_id]
    await asyncio.wait_for(application.running.wait(), 30)
    async with http.put(f"{rm.endpoint}/apps/{app_id}/state", json={"state": "KILLED"}) as response:
        assert (await response.json()) == {"state": "KILLED"}
    assert application.state in FINAL and application.process is not None
    assert application.process.returncode is not None
    async with http.get(f"{rm.endpoint}/apps", params={"states": "KILLED"}) as response:
        assert [a["id"] for a in (await response.json())["apps"]["app"]] == [app_id]
    async with http.get(f"{rm.endpoint}/apps", params={"states": "RUNNING"}) as response:
        assert await response.json() == {"apps": None}


async def test_standby_redirects_to_the_active_rm(pair: ResourceManagerPair, http: aiohttp.ClientSession) -> None:
    async with http.get(f"{pair.rm2.endpoint}/info") as response:
        assert (await response.json())["clusterInfo"]["haState"] == "STANDBY"
    async with http.get(f"{pair.rm2.endpoint}/apps", allow_redirects=False) as response:
        assert response.status == 307
        assert response.headers["Location"] == f"{pair.rm1.endpoint}/apps"
        assert (await response.text()).startswith("This is standby RM. The redirect url is: ")
    pair.rm1.fail_over_to(pair.rm2)
    async with http.get(f"{pair.rm2.endpoint}/info") as response:
        assert (await response.json())["clusterInfo"]["haState"] == "ACTIVE"
    await pair.rm2.stop()
    async with http.get(f"{pair.rm1.endpoint}/apps", allow_redirects=False) as response:
        assert response.status == 503
