"""The orphan sweep for local and SSH launchers: a server killed with SIGKILL after and during launches leaves
launchers and kernels running; ``jupyter kernelfleet sweep`` lists exactly those (not a kernel a session claims,
not another server's, not a launch in progress) and ``--yes`` removes them."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from kf_testing import manager
from ssh_testing import processes_with_env, wait_until
from sshd import SshCluster
from sweep_testing import (
    SILENT_LAUNCHER,
    crash_server,
    listed_kernels,
    sweep_away,
    sweep_cli,
    until_made_something,
    write_session,
)

from kernelfleet.provisioners.sweep import claimed_kernel_ids, find_orphans, ssh_targets_from_kernelspecs

ENGINES = ("--engine", "local", "--engine", "ssh")


def alive(kernel_id: str) -> list[int]:
    return processes_with_env("KERNEL_ID", kernel_id)


async def test_sweep_finds_and_removes_what_a_killed_server_left_locally_and_on_ssh_hosts(
    ssh_spec: Callable[..., str], make_kernelspec: Callable[..., str], kernels_dir: Path, tmp_path: Path,
    ssh_cluster: SshCluster, monkeypatch: pytest.MonkeyPatch,
) -> None:
    hosts = ssh_cluster.addresses[:2]
    local_spec = make_kernelspec("local_py")
    local_silent = make_kernelspec("local_silent", argv=SILENT_LAUNCHER, config={"launch_timeout": 300})
    remote_spec = ssh_spec("remote_py", remote_hosts=hosts)
    remote_silent = ssh_spec("remote_silent", argv=SILENT_LAUNCHER, remote_hosts=hosts, launch_timeout=300)
    server, other = f"sweep-{uuid.uuid4().hex[:8]}", f"other-{uuid.uuid4().hex[:8]}"
    kid = {name: f"{name}-{uuid.uuid4().hex[:8]}" for name in
           ("local-after", "remote-after", "local-mid", "remote-mid", "other-local", "other-remote", "claimed",
            "young")}
    monkeypatch.setenv("JUPYTER_PATH", str(kernels_dir.parent))
    store = tmp_path / "kernelfleet-sessions"

    try:
        await crash_server(kernels_dir, server, [
            {"spec": local_spec, "kernel_id": kid["local-after"], "mode": "after"},
            {"spec": remote_spec, "kernel_id": kid["remote-after"], "mode": "after"},
            {"spec": local_silent, "kernel_id": kid["local-mid"], "mode": "mid"},
            {"spec": remote_silent, "kernel_id": kid["remote-mid"], "mode": "mid"},
        ])
        await crash_server(kernels_dir, other, [
            {"spec": local_spec, "kernel_id": kid["other-local"], "mode": "after"},
            {"spec": remote_silent, "kernel_id": kid["other-remote"], "mode": "mid"},
        ])
        # This test process is the restarted server: one kernel its sessions claim, one launch in progress.
        monkeypatch.setenv("KF_SERVER_ID", server)
        # Everything younger than this mark is left alone below: the claimed kernel's start puts seconds between
        # the crashed server's objects and the launch in progress.
        in_progress_since = time.monotonic()
        claimed = manager(kernels_dir, local_spec, kernel_id=kid["claimed"])
        await claimed.start_kernel()
        write_session(store, kid["claimed"])
        young = manager(kernels_dir, local_silent, kernel_id=kid["young"])
        launching = asyncio.ensure_future(young.start_kernel())
        try:
            await until_made_something(young, launching)
            targets = await asyncio.to_thread(ssh_targets_from_kernelspecs)
            assert {t.host for t in targets} == set(hosts)
            found = await find_orphans(claimed_kernel_ids(store), engines=["local", "ssh"], ssh_targets=targets,
                                       min_age=time.monotonic() - in_progress_since)
            assert not found.unavailable
            groups: dict[str, list[str]] = {}
            for orphan in found:
                groups.setdefault(orphan.kernel_id, []).append(orphan.engine)
            assert {k: sorted(v) for k, v in groups.items()} == {
                kid["local-after"]: ["local", "local"],  # the launcher's and the kernel's process groups
                kid["remote-after"]: ["ssh", "ssh"],
                kid["local-mid"]: ["local"],
                kid["remote-mid"]: ["ssh"],
            }
            logs = [Path(o.log_path) for o in found if o.log_path]
            assert [o.kernel_id for o in found if o.log_path].count(kid["remote-mid"]) == 1, found
        finally:
            launching.cancel()
            await asyncio.wait({launching})
        await wait_until(lambda: not alive(kid["young"]), 10, "the cancelled launch left its launcher")

        status, out, err = await sweep_cli(*ENGINES, "--store-dir", str(store))  # default grace: all of it is too young
        assert (status, listed_kernels(out)) == (0, {}), out + err
        status, out, err = await sweep_cli(*ENGINES, "--store-dir", str(store), "--grace", "0")
        assert status == 0, out + err
        assert listed_kernels(out) == {
            kid["local-after"]: {"local process group"}, kid["remote-after"]: {"ssh process group"},
            kid["local-mid"]: {"local process group"}, kid["remote-mid"]: {"ssh process group"},
        }, out
        assert "dry run" in out
        assert all(alive(kid[name]) for name in ("local-after", "remote-after", "local-mid", "remote-mid"))

        status, out, err = await sweep_cli(*ENGINES, "--store-dir", str(store), "--grace", "0", "--yes")
        assert status == 0 and "failed" not in out, out + err
        for name in ("local-after", "remote-after", "local-mid", "remote-mid"):
            await wait_until(lambda name=name: not alive(kid[name]), 10, f"{name} survived the sweep")
        assert alive(kid["other-local"]) and alive(kid["other-remote"]), "another server's kernels were touched"
        assert await claimed.is_alive()
        assert not [log for log in logs if log.exists()], "the sweep left the launchers' log files"

        await claimed.shutdown_kernel(now=True)
        status, out, err = await sweep_cli(*ENGINES, "--server-id", other, "--all-unclaimed", "--grace", "0", "--yes")
        assert status == 0, out + err
        assert set(listed_kernels(out)) == {kid["other-local"], kid["other-remote"]}, out
        await wait_until(lambda: not alive(kid["other-local"]) and not alive(kid["other-remote"]), 10,
                         "the other server's kernels survived their own sweep")
    finally:
        await sweep_away([server, other], ["local", "ssh"], await asyncio.to_thread(ssh_targets_from_kernelspecs))



async def test_sweep_refuses_without_a_session_store(tmp_path: Path) -> None:
    """Without the store every kernel of a running server would look unclaimed: nothing is searched or removed."""
    status, out, err = await sweep_cli(*ENGINES, "--store-dir", str(tmp_path / "missing"), "--engine", "local", "--yes")
    assert status == 2 and "--all-unclaimed" in err and not out, out + err
