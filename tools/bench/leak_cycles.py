"""Leak check at full length: 100 mixed cycles per engine (issue 11, item 5), counts before and after.

The cycle and the measurement are ``tests/support/leak_cycles.py``'s (the CI tests in ``tests/leaks``,
``tests/ssh``, ``tests/docker`` and ``tests/k8s`` run a few of them): start, execute, interrupt a running cell,
restart, ``kill -9`` of the kernel, restart after the death (every other cycle), shutdown, and a launch that
fails before its kernel reports. Engines: local (distributed-provisioner on localhost), SSH (a real sshd on
127.0.0.2 started for the run), Docker, Docker Swarm, Kubernetes (kubelite). Each engine runs in a fresh event
loop, warmed up by one cycle. Prints one row per engine; exits 1 if anything leaked.

Usage: .venv/bin/python tools/bench/leak_cycles.py [--cycles 100] [--at-once 4]
       [--engines local,ssh,docker,swarm,kubernetes] [--image kernelfleet/kernel-py:dev]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests" / "ssh"))
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests" / "support"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import table
from leak_probe import docker_objects_of_server, kubernetes_objects_of_server, ssh_pool_state
from mixed_cycles import (
    FAILING_KERNEL_CLASS,
    FAILING_LAUNCHER_ARGV,
    LAUNCHER_ARGV,
    LeakReport,
    kernel_manager_for,
    measure_leaks,
)

from kernelfleet.provisioners.broker import ResponseBroker
from kernelfleet.provisioners.container_argv import container_argv
from kernelfleet.provisioners.leases import close_all

ENGINES = ("local", "ssh", "docker", "swarm", "kubernetes")
SSH_HOST = "127.0.0.2"


def write_spec(kernels: Path, name: str, argv: list[str], provisioner: str, config: dict[str, Any]) -> str:
    """A kernelspec for ``provisioner`` with ``config``; its name."""
    (kernels / name).mkdir(parents=True)
    spec = {"argv": argv, "env": {}, "display_name": name, "language": "python", "interrupt_mode": "signal",
            "metadata": {"kernel_provisioner": {"provisioner_name": provisioner, "config": config}}}
    (kernels / name / "kernel.json").write_text(json.dumps(spec))
    return name


def specs_for(engine: str, kernels: Path, image: str, ssh_config: dict[str, Any]) -> tuple[str, str]:
    """The working and the failing kernelspec of ``engine``."""
    if engine in ("local", "ssh"):
        config = {} if engine == "local" else {**ssh_config, "remote_hosts": [SSH_HOST]}
        return (write_spec(kernels, engine, LAUNCHER_ARGV, "distributed-provisioner", config),
                write_spec(kernels, f"{engine}_failing", FAILING_LAUNCHER_ARGV, "distributed-provisioner", config))
    provisioner = {"docker": "docker-provisioner", "swarm": "docker-swarm-provisioner",
                   "kubernetes": "kubernetes-provisioner"}[engine]
    config = {"image_name": image, "launch_timeout": 60}
    if engine != "kubernetes":
        config["network"] = "host"
    return (write_spec(kernels, engine, container_argv(kernel_class_name="ipykernel.ipkernel.IPythonKernel"),
                       provisioner, config),
            write_spec(kernels, f"{engine}_failing", container_argv(kernel_class_name=FAILING_KERNEL_CLASS),
                       provisioner, config))


async def run_engine(engine: str, root: Path, cycles: int, at_once: int, image: str,
                     ssh_config: dict[str, Any]) -> LeakReport:
    server_id = f"leakbench-{engine}-{uuid.uuid4().hex[:8]}"
    os.environ["KF_SERVER_ID"] = server_id
    kernels = root / f"kernels-{engine}"
    name, failing = specs_for(engine, kernels, image, ssh_config)
    mkm = kernel_manager_for(kernels)
    objects: Callable[[], Awaitable[list[str]]] | None = None
    state = ssh_pool_state if engine == "ssh" else None
    kube = None
    api = None
    await ResponseBroker.instance()
    try:
        if engine in ("docker", "swarm"):
            def objects() -> Awaitable[list[str]]:
                return docker_objects_of_server(server_id, swarm=True)
        elif engine == "kubernetes":
            from kubernetes_asyncio import client, config

            from kernelfleet.kubelite import KubeLite

            kube = KubeLite()
            await kube.start()
            kubeconfig = kube.write_kubeconfig(root / "kubeconfig")
            os.environ["KUBECONFIG"] = str(kubeconfig)
            cfg = client.Configuration()
            await config.load_kube_config(config_file=str(kubeconfig), client_configuration=cfg)
            api = client.ApiClient(configuration=cfg)
            core = client.CoreV1Api(api)

            def objects() -> Awaitable[list[str]]:
                return kubernetes_objects_of_server(core, server_id)
        return await measure_leaks(engine, mkm, name, failing, server_id, cycles=cycles, at_once=at_once,
                                   engine_objects=objects, state=state,
                                   warmup=at_once if engine == "kubernetes" else 1)
    finally:
        await mkm.shutdown_all(now=True)
        mkm.context.destroy(linger=0)
        await close_all()
        if api is not None:
            await api.close()
        if kube is not None:
            await kube.stop()
        broker = ResponseBroker._instances.get(asyncio.get_running_loop())
        if broker is not None:
            await broker.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=int(os.environ.get("KF_LEAK_CYCLES") or 100))
    parser.add_argument("--at-once", type=int, default=4, help="cycles running concurrently")
    parser.add_argument("--engines", default=",".join(ENGINES))
    parser.add_argument("--image", default=os.environ.get("KF_TEST_IMAGE") or "kernelfleet/kernel-py:dev")
    args = parser.parse_args()
    engines = [e for e in args.engines.split(",") if e]
    unknown = set(engines) - set(ENGINES)
    if unknown:
        raise SystemExit(f"unknown engines {sorted(unknown)}; choose from {', '.join(ENGINES)}")
    os.environ.update(KF_RESPONSE_IP="127.0.0.1", KF_RESPONSE_PORT="0", KF_KUBERNETES_HOST_NETWORK="true")
    reports: list[LeakReport] = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        cluster = None
        ssh_config: dict[str, Any] = {}
        if "ssh" in engines:
            from sshd import start_cluster

            cluster = start_cluster(root / "sshd", (SSH_HOST,))
            ssh_config = {**cluster.provisioner_config(), "remote_log_dir": str(root)}
        try:
            for engine in engines:
                print(f"{engine}: {args.cycles} cycles, {args.at_once} at once ...", file=sys.stderr, flush=True)
                reports.append(asyncio.run(run_engine(engine, root, args.cycles, args.at_once, args.image,
                                                      ssh_config)))
        finally:
            if cluster is not None:
                cluster.stop()
    rows = [("engine", "cycles", "seconds", "fds before", "fds after", "tasks before", "tasks after",
             "processes left", "engine objects left", "ssh pool before -> after")]
    for r in reports:
        rows.append((r.engine, str(r.cycles), f"{r.seconds:.0f}", str(r.before.fd_count), str(r.after.fd_count),
                     str(r.before.task_count), str(r.after.task_count), str(len(r.leftovers.get("processes", []))),
                     str(len(r.leftovers["engine objects"])) if "engine objects" in r.leftovers else "-",
                     f"{r.before_state} -> {r.after_state}" if r.before_state else "-"))
    table(rows)
    leaked = {r.engine: r.leaked() for r in reports if r.leaked()}
    for engine, what in leaked.items():
        print(f"LEAK {engine}: {what}")
    print(json.dumps({r.engine: r.figures() for r in reports}))
    sys.exit(1 if leaked else 0)


if __name__ == "__main__":
    main()
