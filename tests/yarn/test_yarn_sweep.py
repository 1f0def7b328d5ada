"""The orphan sweep on YARN (yarnlite): a server killed with SIGKILL after and during launches leaves running
applications tagged ``kf-server-<id>`` (REST-submitted, and submitted by spark-submit — the TEST-ONLY stand-in
that submits over REST — with the tags from the 0600 properties file); ``jupyter kernelfleet sweep --engine yarn``
lists exactly those (not a kernel a session claims, not another server's) and ``--yes`` kills them by
application id, leaving the others running."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from sweep_testing import SILENT_LAUNCHER, crash_server, listed_kernels, sweep_cli, write_session
from yarn_testing import python_spark_submit_argv

from kernelfleet.yarnlite import Cluster, ResourceManager

pytestmark = pytest.mark.timeout(240)
ENGINES = ("--engine", "yarn")


async def test_sweep_finds_and_kills_what_a_killed_server_left_on_yarn(
    kernels_dir: Path, make_kernelspec: Callable[..., str], rm: ResourceManager, cluster: Cluster,
    spark_home: Path, launchers_dir: Path, tmp_path: Path,
) -> None:
    rest = make_kernelspec("yarn_sweep_rest", provisioner="yarn-provisioner",
                           config={"yarn_endpoint": rm.endpoint, "submission": "rest"})
    silent = make_kernelspec("yarn_sweep_silent", provisioner="yarn-provisioner", argv=SILENT_LAUNCHER,
                             config={"yarn_endpoint": rm.endpoint, "submission": "rest"})
    submit = make_kernelspec("yarn_sweep_submit", provisioner="yarn-provisioner", config={"yarn_endpoint": rm.endpoint},
                             argv=python_spark_submit_argv(spark_home, launchers_dir))
    server, other = f"Sweep-{uuid.uuid4().hex[:8]}", f"other-{uuid.uuid4().hex[:8]}"  # YARN lower-cases tags
    kid = {name: f"{name}-{uuid.uuid4().hex[:8]}" for name in ("rest-after", "submit-after", "mid", "other", "claimed")}
    store = tmp_path / "kernelfleet-sessions"

    await crash_server(kernels_dir, server, [
        {"spec": rest, "kernel_id": kid["rest-after"], "mode": "after"},
        {"spec": submit, "kernel_id": kid["submit-after"], "mode": "after"},
        {"spec": rest, "kernel_id": kid["claimed"], "mode": "after"},
        {"spec": silent, "kernel_id": kid["mid"], "mode": "mid"},
    ])
    await crash_server(kernels_dir, other, [{"spec": rest, "kernel_id": kid["other"], "mode": "after"}])
    write_session(store, kid["claimed"])  # the restarted server will reattach this one
    app_of = {app.name: app for app in cluster.apps.values()}
    assert set(app_of) == set(kid.values()) and all(app.state == "RUNNING" for app in app_of.values())

    orphans = {kid[name]: {"yarn application"} for name in ("rest-after", "submit-after", "mid")}
    env = {"KF_SERVER_ID": server, "KF_YARN_ENDPOINT": rm.endpoint}  # the server's own RM setting
    status, out, err = await sweep_cli(*ENGINES, "--store-dir", str(store), "--grace", "0", env=env)
    assert status == 0 and listed_kernels(out) == orphans, out + err
    assert "dry run" in out and all(app.state == "RUNNING" for app in app_of.values())
    for name in ("rest-after", "submit-after", "mid"):
        assert app_of[kid[name]].id in out

    status, out, err = await sweep_cli(*ENGINES, "--store-dir", str(store), "--grace", "0", "--yes",
                                       "--yarn-endpoint", rm.url, env={"KF_SERVER_ID": server})
    assert status == 0 and listed_kernels(out) == orphans and "failed" not in out, out + err
    for kernel_id in orphans:
        app = app_of[kernel_id]
        assert app.state == "KILLED" and app.process is not None and app.process.returncode is not None, app
    assert app_of[kid["claimed"]].state == "RUNNING" and app_of[kid["other"]].state == "RUNNING"

    # Nothing left to find; another server's sweep takes only its own.
    status, out, err = await sweep_cli(*ENGINES, "--store-dir", str(store), "--grace", "0", env=env)
    assert status == 0 and listed_kernels(out) == {}, out + err
    status, out, err = await sweep_cli(*ENGINES, "--server-id", other, "--all-unclaimed", "--grace", "0", "--yes",
                                       env={"KF_YARN_ENDPOINT": rm.endpoint})
    assert status == 0 and set(listed_kernels(out)) == {kid["other"]}, out + err
    assert app_of[kid["other"]].state == "KILLED" and app_of[kid["claimed"]].state == "RUNNING"


async def test_sweep_says_when_no_rm_is_configured_or_answers(tmp_path: Path) -> None:
    status, out, err = await sweep_cli(*ENGINES, "--all-unclaimed", "--server-id", "lonely",
                                       env={"KF_YARN_ENDPOINT": "", "GP_YARN_ENDPOINT": "",
                                            "JUPYTER_PATH": str(tmp_path), "JUPYTER_DATA_DIR": str(tmp_path)})
    assert status == 3 and "yarn not searched: no ResourceManager is configured" in err, out + err
    status, out, err = await sweep_cli(*ENGINES, "--all-unclaimed", "--server-id", "lonely", "--yarn-endpoint",
                                       "http://127.0.0.1:9/ws/v1/cluster")
    assert status == 3 and "no YARN ResourceManager answered" in err and "127.0.0.1:9" in err, out + err
