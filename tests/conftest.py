"""Shared fixtures for cross-package tests: kernelspecs written into a private Jupyter data dir."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kdc import KdcMissing, KerberosRealm, start_kdc

LAUNCHER_ARGV = [
    sys.executable, "-m", "kernelfleet.launcher",
    "--kernel-id", "{kernel_id}", "--port-range", "{port_range}",
    "--response-address", "{response_address}", "--public-key", "{public_key}",
]


@pytest.fixture
def kernels_dir(tmp_path: Path) -> Path:
    path = tmp_path / "share" / "jupyter" / "kernels"
    path.mkdir(parents=True)
    return path


@pytest.fixture
def make_kernelspec(kernels_dir: Path) -> Callable[..., str]:
    """Write a kernelspec for a Kernel Fleet provisioner and return its name."""

    def make(
        name: str = "kf_python",
        *,
        argv: list[str] | None = None,
        provisioner: str = "distributed-provisioner",
        config: dict[str, Any] | None = None,
        language: str = "python",
        env: dict[str, str] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> str:
        spec_dir = kernels_dir / name
        spec_dir.mkdir()
        spec = {
            "argv": argv or LAUNCHER_ARGV,
            "env": env or {},
            "display_name": f"Kernel Fleet test {name}",
            "language": language,
            "interrupt_mode": "signal",
            "metadata": {
                **(metadata or {}),
                "kernel_provisioner": {"provisioner_name": provisioner, "config": config or {}},
            },
        }
        (spec_dir / "kernel.json").write_text(json.dumps(spec, indent=2) + "\n")
        return name

    return make


#: Principals of the tests' realm: users (``root`` logs in to the test sshds), the HTTP and SSH services.
KERBEROS_PRINCIPALS = ("alice", "root", "HTTP/localhost", "host/localhost")


@pytest.fixture(scope="session")
def kdc_realm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KerberosRealm]:
    """A real MIT KDC on loopback with the throwaway realm KERNELFLEET.TEST (tests/support/kdc.py)."""
    try:
        realm = start_kdc(tmp_path_factory.mktemp("kdc"), KERBEROS_PRINCIPALS)
    except KdcMissing as err:
        pytest.fail(str(err))
    yield realm
    realm.stop()


@pytest.fixture
def kdc(kdc_realm: KerberosRealm, monkeypatch: pytest.MonkeyPatch) -> KerberosRealm:
    """The realm with its KDC running and this process's libkrb5 pointed at it (KRB5_CONFIG), with no ticket
    (KRB5CCNAME is a private, empty cache) until the test calls ``kinit``; see ``kerberos_ticket``."""
    kdc_realm.start()  # a test that stopped it left it down
    for name, value in kdc_realm.env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("KRB5CCNAME", f"FILE:{kdc_realm.root}/no-ticket-{id(monkeypatch)}")
    return kdc_realm


@pytest.fixture
def kerberos_ticket(kdc: KerberosRealm, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., str]:
    """``kerberos_ticket(name="alice")``: kinit from the principal's keytab into a private cache and make it this
    process's default (KRB5CCNAME); returns the cache's name."""

    def get(name: str = "alice", lifetime: str | None = None) -> str:
        env = kdc.kinit(name, tmp_path / f"ccache-{name.replace('/', '_')}", lifetime)
        monkeypatch.setenv("KRB5CCNAME", env["KRB5CCNAME"])
        return env["KRB5CCNAME"]

    return get
