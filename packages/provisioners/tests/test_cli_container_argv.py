"""``kernelfleet.provisioners.container_argv``: reading kernelspec argv, and refusing to run it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kernelfleet.provisioners.container_argv import container_argv, kernelspec_settings, parse_container_argv

# The argv Gateway Provisioners' `jupyter k8s-spec install` writes (predecessor.md 4.4).
GP_K8S_ARGV = [
    "python",
    "/usr/local/share/jupyter/kernels/data_sci_py/scripts/launch_kubernetes.py",
    "--kernel-id",
    "{kernel_id}",
    "--port-range",
    "{port_range}",
    "--response-address",
    "{response_address}",
    "--public-key",
    "{public_key}",
    "--kernel-class-name",
    "ipykernel.ipkernel.IPythonKernel",
]
VALUES = {
    "kernel_id": "0b6d1f7e-2d1c-4c35-9a7d-5f0e4b8c9a11",
    "port_range": "40000..41000",
    "response_address": "10.0.0.5:8877",
    "public_key": "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA",
}
LAUNCH_ENV = {
    "KERNEL_ID": VALUES["kernel_id"],
    "PORT_RANGE": VALUES["port_range"],
    "RESPONSE_ADDRESS": VALUES["response_address"],
    "PUBLIC_KEY": VALUES["public_key"],
}


def fill(argv: list[str]) -> list[str]:
    """What the provisioner does before it reads the argv."""
    return [arg.format(**VALUES) for arg in argv]


def test_our_argv_becomes_the_launcher_environment() -> None:
    argv = container_argv(kernel_class_name="acme.Kernel", spark_init_mode="eager")
    assert parse_container_argv(fill(argv)) == {
        **LAUNCH_ENV,
        "KERNEL_CLASS_NAME": "acme.Kernel",
        "KERNEL_SPARK_CONTEXT_INIT_MODE": "eager",
    }


def test_kernelspec_settings_are_read_from_the_unformatted_argv() -> None:
    """The provisioner reads the kernelspec's own argv once: the settings need no launch values, and the protocol's
    placeholders never become settings."""
    argv = container_argv(kernel_class_name="acme.Kernel", spark_init_mode="eager")
    assert kernelspec_settings(argv) == {"KERNEL_CLASS_NAME": "acme.Kernel", "KERNEL_SPARK_CONTEXT_INIT_MODE": "eager"}
    assert kernelspec_settings([*GP_K8S_ARGV, "--cluster-type=kubernetes"]) == {
        "KERNEL_CLASS_NAME": "ipykernel.ipkernel.IPythonKernel", "KERNEL_CLUSTER_TYPE": "kubernetes"}
    assert kernelspec_settings(container_argv()) == {}


def test_gp_launch_kubernetes_argv_becomes_the_launcher_environment() -> None:
    assert parse_container_argv(fill(GP_K8S_ARGV)) == {
        **LAUNCH_ENV,
        "KERNEL_CLASS_NAME": "ipykernel.ipkernel.IPythonKernel",
    }


def test_gp_r_docker_argv_and_other_spellings() -> None:
    gp_r = ["python", "/k/docker_r/scripts/launch_docker.py", "--kernel-id", "k1", "--port-range", "0..0",
            "--response-address", "h:1", "--public-key", "PK",
            "--spark-context-initialization-mode", "none"]  # fmt: skip
    assert parse_container_argv(gp_r) == {
        "KERNEL_ID": "k1",
        "PORT_RANGE": "0..0",
        "RESPONSE_ADDRESS": "h:1",
        "PUBLIC_KEY": "PK",
        "KERNEL_SPARK_CONTEXT_INIT_MODE": "none",
    }
    eg = ["python", "launch_ipykernel.py", "--RemoteProcessProxy.kernel-id", "k2",
          "--RemoteProcessProxy.spark-context-initialization-mode=lazy", "--cluster-type", "dask",
          "--pod-template", "/tmp/x.yaml", "--kernel-id", "k3"]  # fmt: skip
    assert parse_container_argv(eg) == {
        "KERNEL_ID": "k3",  # the last occurrence wins, as with argparse
        "KERNEL_SPARK_CONTEXT_INIT_MODE": "lazy",
        "KERNEL_CLUSTER_TYPE": "dask",
    }


def test_a_flag_without_value_is_an_error() -> None:
    with pytest.raises(ValueError, match="--kernel-id is not followed by a value"):
        parse_container_argv(["python", "x.py", "--kernel-id", "--port-range", "0..0"])
    with pytest.raises(ValueError, match="--public-key"):
        parse_container_argv(["--public-key"])


def test_the_argv_the_cli_writes_parses_back(tmp_path: Path) -> None:
    script = Path(sys.executable).parent / "jupyter-k8s-spec"
    assert script.exists(), f"{script} is missing: run pip install --no-deps -e packages/provisioners"
    env = {k: v for k, v in os.environ.items() if not k.endswith("IMAGE_NAME")}
    subprocess.run(
        [str(script), "install", "--language", "r", "--spark", "--spark-init-mode", "eager", "--prefix", str(tmp_path),
         "--image-name", "acme/spark-r:1"],
        check=True, capture_output=True, env=env, timeout=60,
    )  # fmt: skip
    spec = json.loads((tmp_path / "share/jupyter/kernels/k8s_r_spark/kernel.json").read_text(encoding="utf-8"))
    assert parse_container_argv(fill(spec["argv"])) == {**LAUNCH_ENV, "KERNEL_SPARK_CONTEXT_INIT_MODE": "eager"}


def test_running_the_argv_directly_refuses_with_one_line() -> None:
    argv = fill(container_argv(kernel_class_name="ipykernel.ipkernel.IPythonKernel"))
    assert argv[0] == "python"
    result = subprocess.run([sys.executable, *argv[1:]], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1
    assert VALUES["kernel_id"] in lines[0]
    assert "container provisioner" in lines[0]
    for name in ("kubernetes-provisioner", "docker-provisioner", "docker-swarm-provisioner"):
        assert name in lines[0]
