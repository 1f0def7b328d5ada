"""Using one engine loads nothing of another (issue 10): a server that runs only Docker kernels must not pay for,
nor depend on, ``kubernetes_asyncio`` or ``asyncssh``. Each import runs in a fresh interpreter, since this test
process has long since imported everything."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

ENGINES = {
    "ssh": ("kernelfleet.provisioners.ssh", "asyncssh"),
    "docker": ("kernelfleet.provisioners.docker", "aiodocker"),
    "k8s": ("kernelfleet.provisioners.k8s", "kubernetes_asyncio"),
}
ENTRY_MODULES = {
    "ssh": ["kernelfleet.provisioners.ssh.distributed"],
    "docker": ["kernelfleet.provisioners.docker.provisioner", "kernelfleet.provisioners.docker.swarm"],
    "k8s": ["kernelfleet.provisioners.k8s.provisioner", "kernelfleet.provisioners.k8s.spark_operator"],
}
SHARED = ["kernelfleet.provisioners", "kernelfleet.provisioners.base", "kernelfleet.provisioners.container",
          "kernelfleet.provisioners.request_env", "kernelfleet.provisioners.server_identity"]


def loaded_after(module: str) -> set[str]:
    code = f"import json, sys, {module}; print(json.dumps(sorted(sys.modules)))"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=120)
    assert run.returncode == 0, run.stderr
    return set(json.loads(run.stdout))


def engine_modules(loaded: set[str], engine: str) -> list[str]:
    package, client = ENGINES[engine]
    return sorted(m for m in loaded if m == package or m.startswith(package + ".") or m.split(".")[0] == client)


@pytest.mark.parametrize(("engine", "module"), [(e, m) for e, modules in ENTRY_MODULES.items() for m in modules])
def test_an_engine_loads_no_other_engine(engine: str, module: str) -> None:
    loaded = loaded_after(module)
    assert module in loaded
    for other in ENGINES.keys() - {engine}:
        assert engine_modules(loaded, other) == [], f"importing {module} loaded the {other} engine"


@pytest.mark.parametrize("module", SHARED)
def test_shared_modules_load_no_engine(module: str) -> None:
    loaded = loaded_after(module)
    for engine in ENGINES:
        assert engine_modules(loaded, engine) == [], f"importing {module} loaded the {engine} engine"
