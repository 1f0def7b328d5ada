"""Start-to-first-execute: kubernetes-provisioner through kubelite vs docker-provisioner, same kernel image.

Both kernels run on the host network with the broker on 127.0.0.1, driven by AsyncKernelManager in one process;
kubelite runs every pod as a Docker container, so the difference is what the Kubernetes path adds (API calls,
scheduling, the watch) to what Docker itself costs.

Usage: .venv/bin/python tools/bench/k8s_start.py [--runs 7] [--image kernelfleet/kernel-py:dev]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
from pathlib import Path

from jupyter_client.kernelspec import KernelSpecManager

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import median, start_to_first_execute, table

from kernelfleet.kubelite import KubeLite
from kernelfleet.provisioners.container_argv import container_argv
from kernelfleet.provisioners.leases import close_all


def write_spec(kernels: Path, name: str, provisioner: str, config: dict[str, object]) -> None:
    (kernels / name).mkdir(parents=True)
    spec = {"argv": container_argv(kernel_class_name="ipykernel.ipkernel.IPythonKernel"), "env": {},
            "display_name": name, "language": "python",
            "metadata": {"kernel_provisioner": {"provisioner_name": provisioner, "config": config}}}
    (kernels / name / "kernel.json").write_text(json.dumps(spec))


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--image", default="kernelfleet/kernel-py:dev")
    args = parser.parse_args()
    os.environ.update(KF_RESPONSE_IP="127.0.0.1", KF_RESPONSE_PORT="0", KF_KUBERNETES_HOST_NETWORK="true")
    with tempfile.TemporaryDirectory() as tmp:
        kernels = Path(tmp) / "kernels"
        write_spec(kernels, "docker", "docker-provisioner", {"image_name": args.image, "network": "host"})
        write_spec(kernels, "k8s", "kubernetes-provisioner", {"image_name": args.image})
        ksm = KernelSpecManager(kernel_dirs=[str(kernels)])
        async with KubeLite() as kube:
            os.environ["KUBECONFIG"] = str(kube.write_kubeconfig(Path(tmp) / "kubeconfig"))
            results: dict[str, list[float]] = {"docker": [], "k8s": []}
            await start_to_first_execute(ksm, "docker")  # warm-up: image layers, the broker's key, imports
            await start_to_first_execute(ksm, "k8s")
            for _ in range(args.runs):  # interleaved, so load changes hit both alike
                for name in ("docker", "k8s"):
                    results[name].append(await start_to_first_execute(ksm, name))
        await close_all()
    rows = [("provisioner", "median s", "min s", "max s", "runs")]
    labels = {"docker": "docker-provisioner", "k8s": "kubernetes-provisioner (kubelite)"}
    for name, values in results.items():
        rows.append((labels[name], f"{median(values):.3f}", f"{min(values):.3f}", f"{max(values):.3f}",
                     str(len(values))))
    table(rows)
    diff = median(results["k8s"]) - median(results["docker"])
    print(f"kubernetes - docker (median): {diff:+.3f} s (target: within 0.2 s)")
    print(json.dumps({name: [round(v, 4) for v in values] for name, values in results.items()}))


if __name__ == "__main__":
    asyncio.run(main())
